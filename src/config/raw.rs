//! The raw layer: exactly what the file may say, as serde reads it. Unknown keys are refused;
//! every key has its default here (the `Default` impls) or is `Option` when it has none. Nothing
//! is checked yet: that is the sections' validation. docs/config.md documents every key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    /// `[server]`: where canary-pilot listens and keeps its state.
    pub server: RawServer,
    /// `[metrics]`: where the analysis loop reads request, error and latency figures.
    pub metrics: RawMetrics,
    /// `[apps.NAME]`: the apps, by name.
    pub apps: BTreeMap<String, RawApp>,
    /// `[[notifiers]]`: where events are sent.
    pub notifiers: Vec<RawNotifier>,
    /// `[traefik]`: Traefik's own API, to read back what it made of the document.
    pub traefik: RawTraefik,
    /// `[swarm]`: the Docker engine, for slots and Traefik replicas that are Swarm services.
    pub swarm: RawSwarm,
}

/// `[swarm]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSwarm {
    /// The Docker engine's Unix socket (`/var/run/docker.sock` or `unix:///...`).
    pub socket: String,
    /// The overlay network Traefik shares with the services: their tasks' addresses on it are
    /// the servers Traefik is given.
    pub network: Option<String>,
    /// How often the running tasks are read.
    pub poll_interval: String,
    /// Traefik's own services: every running task of them is scraped.
    pub traefik_services: Vec<String>,
    /// The port of Traefik's metrics entry point on its tasks.
    pub traefik_metrics_port: i64,
    /// The path of Traefik's metrics on that port.
    pub traefik_metrics_path: String,
    /// Apps declared with `canary-pilot.*` labels on the services (Swarm-managed apps).
    pub labels: bool,
    /// Never write to the engine: slots and Traefik replicas are followed, nothing is released.
    pub read_only: bool,
    /// `[swarm.defaults]`: keys of `[apps.NAME]` that apps from labels take unless their labels
    /// set them.
    pub defaults: toml::Table,
}

impl Default for RawSwarm {
    fn default() -> Self {
        RawSwarm {
            socket: "/var/run/docker.sock".into(),
            network: None,
            poll_interval: "2s".into(),
            traefik_services: Vec::new(),
            traefik_metrics_port: 8082,
            traefik_metrics_path: "/metrics".into(),
            labels: false,
            read_only: false,
            defaults: toml::Table::new(),
        }
    }
}

/// One slot: its server URLs, or a Swarm service whose running tasks are its servers.
#[derive(Debug)]
pub(super) enum RawSlot {
    Servers(Vec<String>),
    Service(RawSlotService),
}

/// `service = { name, port }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManaged {
    /// The service's full name (`STACK_NAME` for a service of a stack).
    pub name: String,
    /// The port its tasks listen on.
    pub port: i64,
}

/// `{ service, port }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlotService {
    /// The Swarm service's full name (`STACK_NAME` for a service of a stack).
    pub service: String,
    /// The port the tasks listen on.
    pub port: i64,
}

// By hand rather than `#[serde(untagged)]`, which would bury the table's errors under "data did
// not match any variant".
impl<'de> Deserialize<'de> for RawSlot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SlotVisitor;
        impl<'de> Visitor<'de> for SlotVisitor {
            type Value = RawSlot;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of server URLs or a Swarm service { service = \"stack_app\", port = 8080 }",
                )
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<RawSlot, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawSlot::Servers)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSlot, A::Error> {
                RawSlotService::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSlot::Service)
            }
        }
        d.deserialize_any(SlotVisitor)
    }
}

/// `[traefik]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTraefik {
    /// Traefik's API (`api.insecure` or a router to `api@internal`); unset: no read-back.
    pub api_url: Option<String>,
    /// How often the read-back runs.
    pub check_interval: String,
}

impl Default for RawTraefik {
    fn default() -> Self {
        RawTraefik {
            api_url: None,
            check_interval: "5s".into(),
        }
    }
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    /// Address of the HTTP server (provider endpoint, admin API, health, metrics).
    pub listen: String,
    /// Path of the JSON state file.
    pub state_file: PathBuf,
    /// File holding the bearer token for mutating admin calls (a Docker secret).
    pub admin_token_file: Option<PathBuf>,
    /// File holding the bearer token Traefik must send to `GET /traefik`.
    pub provider_token_file: Option<PathBuf>,
    /// Require the admin token for reads of the admin API too.
    pub protect_reads: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:9000".into(),
            state_file: "canary-pilot-state.json".into(),
            admin_token_file: None,
            provider_token_file: None,
            protect_reads: false,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    /// `"traefik"` (scrape Traefik's `/metrics`) or `"prometheus"`.
    pub source: String,
    /// One `/metrics` URL per Traefik replica.
    pub traefik_urls: Vec<String>,
    /// Base URL of Prometheus' HTTP API.
    pub prometheus_url: Option<String>,
    /// Timeout of one scrape or query.
    pub timeout: String,
    /// PromQL templates for the `prometheus` source.
    pub queries: RawQueries,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            source: "traefik".into(),
            traefik_urls: vec!["http://127.0.0.1:8082/metrics".into()],
            prometheus_url: None,
            timeout: "5s".into(),
            queries: RawQueries::default(),
        }
    }
}

/// `[metrics.queries]`: each unset one is the built-in template.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawQueries {
    /// Requests per service over the window.
    pub requests: Option<String>,
    /// 5xx answers per service over the window.
    pub errors: Option<String>,
    /// Duration histogram buckets per service and `le` over the window.
    pub latency: Option<String>,
}

/// `[[notifiers]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNotifier {
    /// Name in logs and metrics. Required.
    pub name: Option<String>,
    /// `"slack"` or `"generic"`. Required.
    pub kind: Option<String>,
    /// Webhook URL (a Slack URL is a secret: prefer `url_file`).
    pub url: Option<String>,
    /// File holding the webhook URL.
    pub url_file: Option<PathBuf>,
    /// File holding the HMAC-SHA256 key that signs generic payloads.
    pub secret_file: Option<PathBuf>,
    /// Event kinds to send; all when unset.
    pub events: Option<Vec<String>>,
    /// Message text with `{app}`, `{kind}`, `{version}`, `{from}`, `{to}`, `{weight}`,
    /// `{reason}`, `{time}`.
    pub template: Option<String>,
    /// Timeout of one delivery attempt.
    pub timeout: String,
    /// Further attempts after a failed one.
    pub retries: i64,
    /// Events waiting for delivery before new ones are dropped.
    pub queue: i64,
}

impl Default for RawNotifier {
    fn default() -> Self {
        RawNotifier {
            name: None,
            kind: None,
            url: None,
            url_file: None,
            secret_file: None,
            events: None,
            template: None,
            timeout: "5s".into(),
            retries: 3,
            queue: 1000,
        }
    }
}

/// `[apps.NAME]`: one public route served by two slots.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApp {
    /// Traefik rule of the public route. Required.
    pub rule: Option<String>,
    /// Traefik entry points of every generated router.
    pub entry_points: Vec<String>,
    /// Exactly two slots, each a list of server URLs or a Swarm service. Required, unless
    /// `service` is set.
    pub slots: Option<BTreeMap<String, RawSlot>>,
    /// Instead of `slots`: the user's Swarm service, which canary-pilot releases on its own.
    pub service: Option<RawManaged>,
    /// The slot that is stable when the app is first seen. Required.
    pub initial_stable: Option<String>,
    /// The header that pins a request to the canary; `X-Canary: true` when unset.
    pub pin_header: Option<RawPinHeader>,
    /// Cookie name; `NAME=true` in the request pins it to the canary.
    pub pin_cookie: Option<String>,
    /// Sticky-session cookie on the weighted service.
    pub sticky_cookie: Option<RawSticky>,
    /// Priority of the main router; pin routers get this plus 100.
    pub priority: u32,
    /// Traefik middlewares (defined elsewhere, e.g. `auth@file`) applied to every router.
    pub middlewares: Vec<String>,
    /// TLS on the routers.
    pub tls: Option<RawTls>,
    /// `[apps.NAME.analysis]`: how the canary is judged and advanced.
    pub analysis: RawAnalysis,
    /// `[apps.NAME.hooks]`: gates and hooks.
    pub hooks: RawHooks,
}

impl Default for RawApp {
    fn default() -> Self {
        RawApp {
            rule: None,
            entry_points: vec!["web".into()],
            slots: None,
            service: None,
            initial_stable: None,
            pin_header: None,
            pin_cookie: None,
            sticky_cookie: None,
            priority: 10,
            middlewares: Vec::new(),
            tls: None,
            analysis: RawAnalysis::default(),
            hooks: RawHooks::default(),
        }
    }
}

/// `pin_header = { name, value }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPinHeader {
    /// Header name. Required.
    pub name: String,
    /// Exact value that pins the request.
    #[serde(default = "default_pin_value")]
    pub value: String,
}

fn default_pin_value() -> String {
    "true".into()
}

/// `sticky_cookie`: a cookie name, or a table.
#[derive(Debug)]
pub(super) enum RawSticky {
    Name(String),
    Full(RawStickyFull),
}

/// `sticky_cookie = { name, secure, http_only, path }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStickyFull {
    /// Cookie name. Required.
    pub name: String,
    /// The cookie's `Secure` attribute.
    #[serde(default)]
    pub secure: bool,
    /// The cookie's `HttpOnly` attribute.
    #[serde(default = "default_true")]
    pub http_only: bool,
    /// The cookie's `Path` attribute.
    pub path: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `error_ratio_tolerance`: a number (points) or a string (`"50%"`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawTolerance {
    Points(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawTolerance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ToleranceVisitor;
        impl<'de> Visitor<'de> for ToleranceVisitor {
            type Value = RawTolerance;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ratio such as 0.01 or a percentage of stable such as \"50%\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawTolerance, E> {
                Ok(RawTolerance::Points(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTolerance, E> {
                Ok(RawTolerance::Points(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTolerance, E> {
                Ok(RawTolerance::Points(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTolerance, E> {
                Ok(RawTolerance::Text(v.to_string()))
            }
        }
        d.deserialize_any(ToleranceVisitor)
    }
}

// By hand rather than `#[serde(untagged)]`, which would bury the table's errors under "data did
// not match any variant".
impl<'de> Deserialize<'de> for RawSticky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StickyVisitor;
        impl<'de> Visitor<'de> for StickyVisitor {
            type Value = RawSticky;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cookie name or a table { name, secure, http_only, path }")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<RawSticky, E> {
                Ok(RawSticky::Name(name.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSticky, A::Error> {
                RawStickyFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSticky::Full)
            }
        }
        d.deserialize_any(StickyVisitor)
    }
}

/// `tls = { cert_resolver }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    /// Traefik certificate resolver of the routers.
    pub cert_resolver: Option<String>,
}

/// `[apps.NAME.analysis]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAnalysis {
    /// Time between two analyses.
    pub interval: String,
    /// Canary weights to walk through.
    pub steps: Option<Vec<i64>>,
    /// Instead of `steps`: advance by this much...
    pub step_weight: Option<i64>,
    /// ...up to this weight.
    pub max_weight: Option<i64>,
    /// Canary requests each step needs before it may advance (its minimum exposure).
    pub min_requests: i64,
    /// Time each step needs at its weight before it may advance.
    pub min_step_duration: Option<String>,
    /// How much higher the canary's 5xx ratio may be than stable's: points as a ratio (0.01),
    /// or relative to stable as a percentage ("50%").
    pub error_ratio_tolerance: RawTolerance,
    /// Probability that a canary within every tolerance is ever rolled back by the release's
    /// sequential harm tests.
    pub false_rollback_bound: f64,
    /// Confidence with which a release's evidence must bound the regression before promotion.
    pub promotion_confidence: f64,
    /// Analyse releases and record what would be done, without changing any weight.
    pub dry_run: bool,
    /// Hard ceiling on the canary's 5xx ratio.
    pub max_error_ratio: f64,
    /// Which latency quantile is compared.
    pub latency_quantile: f64,
    /// Canary quantile / stable quantile above which the latency check fails.
    pub max_latency_ratio: f64,
    /// Absolute limit on the canary's latency quantile.
    pub max_latency: Option<String>,
    /// Latency differences smaller than this never fail the ratio check.
    pub latency_tolerance: String,
    /// Consecutive failed analyses before a rollback.
    pub failure_limit: i64,
    /// How long a rollout may stay without a verdict before it pauses.
    pub max_inconclusive: String,
}

impl Default for RawAnalysis {
    fn default() -> Self {
        RawAnalysis {
            interval: "10s".into(),
            steps: None,
            step_weight: None,
            max_weight: None,
            min_requests: 50,
            min_step_duration: None,
            error_ratio_tolerance: RawTolerance::Points(0.01),
            false_rollback_bound: 0.01,
            promotion_confidence: 0.95,
            dry_run: false,
            max_error_ratio: 0.2,
            latency_quantile: 0.99,
            max_latency_ratio: 1.5,
            max_latency: None,
            latency_tolerance: "10ms".into(),
            failure_limit: 3,
            max_inconclusive: "10m".into(),
        }
    }
}

/// `[apps.NAME.hooks]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHooks {
    /// Gate asked before the first step gets traffic.
    pub confirm_rollout: Option<String>,
    /// Gate asked once every step has passed.
    pub confirm_promotion: Option<String>,
    /// Sent the `started` event.
    pub pre_rollout: Option<String>,
    /// Sent the `promoted` event.
    pub post_rollout: Option<String>,
    /// Sent the `rolled_back` event.
    pub rollback: Option<String>,
    /// Timeout of one gate question or hook attempt.
    pub timeout: String,
}

impl Default for RawHooks {
    fn default() -> Self {
        RawHooks {
            confirm_rollout: None,
            confirm_promotion: None,
            pre_rollout: None,
            post_rollout: None,
            rollback: None,
            timeout: "5s".into(),
        }
    }
}
