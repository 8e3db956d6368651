//! The validated configuration: what the rest of the program reads. Durations, URLs, weights
//! and secrets are already typed; every value here passed its checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::secret::Secret;
use crate::names::AppNames;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub metrics: MetricsConfig,
    pub apps: BTreeMap<String, AppConfig>,
    pub notifiers: Vec<NotifierConfig>,
    pub traefik: TraefikConfig,
    pub swarm: SwarmConfig,
}

impl Config {
    /// Every Swarm service whose running tasks canary-pilot follows: the apps' service slots
    /// and Traefik's own services.
    pub fn swarm_services(&self) -> std::collections::BTreeSet<String> {
        let slots = self
            .apps
            .values()
            .flat_map(|a| a.slot_services.values().map(|s| s.service.clone()));
        let traefik = self.swarm.traefik.iter().flat_map(|t| t.services.clone());
        slots.chain(traefik).collect()
    }
}

/// `[swarm]`: the Docker engine, read for the tasks of the services that are slots or Traefik.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmConfig {
    pub socket: PathBuf,
    /// Required once a service is named (checked).
    pub network: Option<String>,
    pub poll_interval: Duration,
    /// Traefik's tasks, scraped instead of `metrics.traefik_urls`.
    pub traefik: Option<TraefikTasks>,
    /// Apps are declared with labels on the services too.
    pub labels: bool,
    /// canary-pilot never writes to the engine.
    pub read_only: bool,
    /// `[swarm.defaults]`, checked: what apps from labels take unless their labels say.
    pub defaults: toml::Table,
}

impl SwarmConfig {
    /// The engine is needed: a service is named, or apps come from labels.
    pub fn used(&self, config: &Config) -> bool {
        self.labels || !config.swarm_services().is_empty()
    }
}

/// Traefik's services, whose every running task is scraped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraefikTasks {
    pub services: Vec<String>,
    pub port: u16,
    pub path: String,
}

/// The user's service of a Swarm-managed app, and the primary service kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedService {
    pub service: String,
    pub port: u16,
    /// `SERVICE-primary`.
    pub primary: String,
}

/// The slots of a Swarm-managed app.
pub const PRIMARY_SLOT: &str = "primary";
pub const CANARY_SLOT: &str = "canary";

/// A slot that is a Swarm service: one server per running task, at its address on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotService {
    pub service: String,
    pub port: u16,
}

/// `[traefik]`: reading back from Traefik's API whether it enabled what it was given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraefikConfig {
    pub api_url: Option<Url>,
    pub check_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub state_file: PathBuf,
    pub admin_token: Option<Secret>,
    pub provider_token: Option<Secret>,
    /// Reads of `/api/v1` need the admin token too.
    pub protect_reads: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSourceKind {
    Traefik,
    Prometheus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub source: MetricsSourceKind,
    pub traefik_urls: Vec<Url>,
    pub prometheus_url: Option<Url>,
    pub timeout: Duration,
    pub queries: Queries,
}

pub const DEFAULT_REQUESTS: &str = r#"sum by (service) (increase(traefik_service_requests_total{service=~"{service}"}[{window}]))"#;
pub const DEFAULT_ERRORS: &str = r#"sum by (service) (increase(traefik_service_requests_total{service=~"{service}",code=~"5.."}[{window}]))"#;
pub const DEFAULT_LATENCY: &str = r#"sum by (service, le) (increase(traefik_service_request_duration_seconds_bucket{service=~"{service}"}[{window}]))"#;

/// The three PromQL templates of the `prometheus` source: `{service}` becomes a regex
/// alternation of every managed service, `{window}` the time since the previous collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    /// Requests per service over the window.
    pub requests: String,
    /// 5xx answers per service over the window.
    pub errors: String,
    /// Duration histogram buckets per service and `le` over the window.
    pub latency: String,
}

impl Default for Queries {
    fn default() -> Self {
        Queries {
            requests: DEFAULT_REQUESTS.into(),
            errors: DEFAULT_ERRORS.into(),
            latency: DEFAULT_LATENCY.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierKind {
    /// Slack incoming-webhook JSON (also Mattermost, Rocket.Chat, Discord's `/slack`).
    Slack,
    /// The event as JSON, signed with HMAC-SHA256 when a secret is set.
    Generic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub name: String,
    pub kind: NotifierKind,
    /// The URL may hold a secret (Slack's does): never logged.
    pub url: Secret,
    pub secret: Option<Secret>,
    /// Event kinds sent; empty means all.
    pub events: Vec<String>,
    pub template: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub queue: usize,
}

/// How much higher than the main router the pin routers' priority is.
pub const PIN_PRIORITY_OFFSET: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    pub name: String,
    pub rule: String,
    pub entry_points: Vec<String>,
    /// Exactly two slots, by name, with their servers. A slot in `slot_services` has the
    /// servers its service's running tasks were last seen at (none before the first look).
    pub slots: BTreeMap<String, Vec<Url>>,
    /// The slots that are Swarm services.
    pub slot_services: BTreeMap<String, SlotService>,
    /// A Swarm-managed app (`service = { name, port }`): its slots are `primary`, the service
    /// canary-pilot keeps with the last promoted spec, and `canary`, the user's own service.
    pub managed: Option<ManagedService>,
    pub initial_stable: String,
    pub pin_header: PinHeader,
    pub pin_cookie: Option<String>,
    pub sticky_cookie: Option<StickyCookie>,
    /// Priority of the main router; at most `u32::MAX - PIN_PRIORITY_OFFSET`.
    pub priority: u32,
    pub middlewares: Vec<String>,
    pub tls: Option<Tls>,
    pub analysis: AnalysisConfig,
    pub hooks: HooksConfig,
}

impl AppConfig {
    /// The slot that is not `slot` (every app has exactly two).
    pub fn other_slot<'a>(&'a self, slot: &'a str) -> &'a str {
        self.slots
            .keys()
            .find(|s| s.as_str() != slot)
            .map(String::as_str)
            .unwrap_or(slot)
    }

    /// The names of the Traefik objects generated for this app.
    pub fn names(&self) -> AppNames<'_> {
        AppNames::of(&self.name)
    }

    /// Every router and service name this app generates.
    pub fn generated_names(&self) -> Vec<String> {
        self.names().all(self.pin_cookie.is_some())
    }

    /// Priority of the pin routers, above the main one.
    pub fn pin_priority(&self) -> u32 {
        self.priority + PIN_PRIORITY_OFFSET
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyCookie {
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert_resolver: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    pub interval: Duration,
    /// Canary weights to walk through, strictly ascending, each 1..=100.
    pub steps: Vec<u8>,
    /// Canary requests a step needs before it may advance.
    pub min_requests: u64,
    /// Time a step needs at its weight before it may advance.
    pub min_step_duration: Duration,
    pub error_ratio_tolerance: super::Tolerance,
    /// False-rollback bound of a release's sequential harm tests.
    pub false_rollback_bound: f64,
    /// Confidence of the bound a release needs before promotion.
    pub promotion_confidence: f64,
    /// Releases are analysed beside the served state, which they never change.
    pub dry_run: bool,
    pub max_error_ratio: f64,
    pub latency_quantile: f64,
    pub max_latency_ratio: f64,
    pub max_latency: Option<Duration>,
    /// Latency differences below this are never a regression, whatever the ratio.
    pub latency_tolerance: Duration,
    pub failure_limit: u32,
    pub max_inconclusive: Duration,
}

impl AnalysisConfig {
    /// How many steps are analysed: the weights below 100 % (100 % is the promotion itself).
    pub fn analysed_steps(&self) -> usize {
        self.steps.iter().filter(|w| **w < 100).count().max(1)
    }
}

/// Gates (asked every tick until they answer 2xx) and hooks (sent the event) of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HooksConfig {
    pub confirm_rollout: Option<Url>,
    pub confirm_promotion: Option<Url>,
    pub pre_rollout: Option<Url>,
    pub post_rollout: Option<Url>,
    pub rollback: Option<Url>,
    pub timeout: Duration,
}
