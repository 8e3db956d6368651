//! The configuration file: a serde `Raw*` layer that mirrors the TOML exactly (unknown keys are
//! errors), validated into typed [`Config`] with every problem reported at once, each naming its
//! key and line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;
use url::Url;

use crate::names::AppNames;

/// Environment variable that holds the admin API token when `server.admin_token_file` is unset.
pub const ADMIN_TOKEN_ENV: &str = "CANARY_PILOT_ADMIN_TOKEN";
/// Environment variable that holds the provider token when `server.provider_token_file` is unset.
pub const PROVIDER_TOKEN_ENV: &str = "CANARY_PILOT_PROVIDER_TOKEN";

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly what the file may say.
// ---------------------------------------------------------------------------------------------

/// `[server]`: where canary-pilot listens and keeps its state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    /// Address of the HTTP server (provider endpoint, admin API, health, metrics).
    #[serde(default = "default_listen")]
    listen: String,
    /// Path of the JSON state file.
    #[serde(default = "default_state_file")]
    state_file: PathBuf,
    /// File holding the bearer token for mutating admin calls (a Docker secret).
    admin_token_file: Option<PathBuf>,
    /// File holding the bearer token Traefik must send to `GET /traefik`.
    provider_token_file: Option<PathBuf>,
    /// Require the admin token for reads of the admin API too.
    #[serde(default)]
    protect_reads: bool,
}

/// `[metrics]`: where the analysis loop reads request, error and latency figures.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// `"traefik"` (scrape Traefik's `/metrics`) or `"prometheus"`.
    #[serde(default = "default_source")]
    source: String,
    /// One `/metrics` URL per Traefik replica.
    #[serde(default = "default_traefik_urls")]
    traefik_urls: Vec<String>,
    /// Base URL of Prometheus' HTTP API.
    prometheus_url: Option<String>,
    /// Timeout of one scrape or query.
    #[serde(default = "default_metrics_timeout")]
    timeout: String,
    /// PromQL templates for the `prometheus` source.
    queries: Option<RawQueries>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueries {
    requests: Option<String>,
    errors: Option<String>,
    latency: Option<String>,
}

/// `[[notifiers]]`: where events are sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifier {
    /// Name in logs and metrics.
    name: String,
    /// `"slack"` or `"generic"`.
    kind: String,
    /// Webhook URL (a Slack URL is a secret: prefer `url_file`).
    url: Option<String>,
    /// File holding the webhook URL.
    url_file: Option<PathBuf>,
    /// File holding the HMAC-SHA256 key that signs generic payloads.
    secret_file: Option<PathBuf>,
    /// Event kinds to send; all when unset.
    events: Option<Vec<String>>,
    /// Message text with `{app}`, `{kind}`, `{version}`, `{from}`, `{to}`, `{weight}`, `{reason}`, `{time}`.
    template: Option<String>,
    #[serde(default = "default_delivery_timeout")]
    timeout: String,
    #[serde(default = "default_retries")]
    retries: i64,
    #[serde(default = "default_queue")]
    queue: i64,
}

/// `[apps.NAME.hooks]`: gates and hooks of one app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    confirm_rollout: Option<String>,
    confirm_promotion: Option<String>,
    pre_rollout: Option<String>,
    post_rollout: Option<String>,
    rollback: Option<String>,
    #[serde(default = "default_delivery_timeout")]
    timeout: String,
}

/// `[apps.NAME]`: one public route served by two slots.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    /// Traefik rule of the public route.
    rule: String,
    /// Traefik entry points of every generated router.
    #[serde(default = "default_entry_points")]
    entry_points: Vec<String>,
    /// Exactly two slots, each a list of server URLs.
    slots: BTreeMap<String, Vec<String>>,
    /// The slot that is stable when the app is first seen.
    initial_stable: String,
    /// The header that pins a request to the canary.
    #[serde(default)]
    pin_header: Option<RawPinHeader>,
    /// Cookie name; `NAME=true` in the request pins it to the canary.
    pin_cookie: Option<String>,
    /// Sticky-session cookie on the weighted service.
    sticky_cookie: Option<RawSticky>,
    /// Priority of the main router; pin routers get this plus 100.
    #[serde(default = "default_priority")]
    priority: u32,
    /// Traefik middlewares (defined elsewhere, e.g. `auth@file`) applied to every router.
    #[serde(default)]
    middlewares: Vec<String>,
    /// TLS on the routers.
    tls: Option<RawTls>,
    /// `[apps.NAME.analysis]`, validated on its own so its errors name their keys.
    #[serde(default)]
    #[allow(dead_code)]
    analysis: Option<serde::de::IgnoredAny>,
    /// `[apps.NAME.hooks]`, validated on its own too.
    #[serde(default)]
    #[allow(dead_code)]
    hooks: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPinHeader {
    name: String,
    #[serde(default = "default_pin_value")]
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSticky {
    Name(String),
    Full(RawStickyFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStickyFull {
    name: String,
    #[serde(default)]
    secure: bool,
    #[serde(default = "default_true")]
    http_only: bool,
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_resolver: Option<String>,
}

/// `[apps.NAME.analysis]`: how the canary is judged and advanced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnalysis {
    #[serde(default = "default_interval")]
    interval: String,
    steps: Option<Vec<i64>>,
    step_weight: Option<i64>,
    max_weight: Option<i64>,
    #[serde(default = "default_min_requests")]
    min_requests: i64,
    #[serde(default = "default_error_ratio_tolerance")]
    error_ratio_tolerance: f64,
    #[serde(default = "default_max_error_ratio")]
    max_error_ratio: f64,
    #[serde(default = "default_latency_quantile")]
    latency_quantile: f64,
    #[serde(default = "default_max_latency_ratio")]
    max_latency_ratio: f64,
    max_latency: Option<String>,
    #[serde(default = "default_latency_tolerance")]
    latency_tolerance: String,
    #[serde(default = "default_failure_limit")]
    failure_limit: i64,
    #[serde(default = "default_max_inconclusive")]
    max_inconclusive: String,
}

fn default_listen() -> String {
    "127.0.0.1:9000".into()
}
fn default_state_file() -> PathBuf {
    "canary-pilot-state.json".into()
}
fn default_source() -> String {
    "traefik".into()
}
fn default_traefik_urls() -> Vec<String> {
    vec!["http://127.0.0.1:8082/metrics".into()]
}
fn default_delivery_timeout() -> String {
    "5s".into()
}
fn default_retries() -> i64 {
    3
}
fn default_queue() -> i64 {
    1000
}
fn default_metrics_timeout() -> String {
    "5s".into()
}
fn default_entry_points() -> Vec<String> {
    vec!["web".into()]
}
fn default_pin_value() -> String {
    "true".into()
}
fn default_priority() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_interval() -> String {
    "10s".into()
}
fn default_min_requests() -> i64 {
    100
}
fn default_error_ratio_tolerance() -> f64 {
    0.01
}
fn default_max_error_ratio() -> f64 {
    0.2
}
fn default_latency_quantile() -> f64 {
    0.99
}
fn default_max_latency_ratio() -> f64 {
    1.5
}
fn default_latency_tolerance() -> String {
    "10ms".into()
}
fn default_failure_limit() -> i64 {
    3
}
fn default_max_inconclusive() -> String {
    "10m".into()
}

// ---------------------------------------------------------------------------------------------
// Validated layer.
// ---------------------------------------------------------------------------------------------

/// A secret read from a file or the environment. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub metrics: MetricsConfig,
    pub apps: BTreeMap<String, AppConfig>,
    pub notifiers: Vec<NotifierConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierKind {
    /// Slack incoming-webhook JSON (also Mattermost, Rocket.Chat, Discord's `/slack`).
    Slack,
    /// The event as JSON, signed with HMAC-SHA256 when a secret is set.
    Generic,
}

#[derive(Debug, Clone)]
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

/// Gates (asked every tick until they answer 2xx) and hooks (sent the event) of one app.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HooksConfig {
    pub confirm_rollout: Option<Url>,
    pub confirm_promotion: Option<Url>,
    pub pre_rollout: Option<Url>,
    pub post_rollout: Option<Url>,
    pub rollback: Option<Url>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub source: MetricsSourceKind,
    pub traefik_urls: Vec<Url>,
    pub prometheus_url: Option<Url>,
    pub timeout: Duration,
    pub queries: crate::analysis::prometheus::Queries,
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

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub name: String,
    pub rule: String,
    pub entry_points: Vec<String>,
    /// Exactly two slots, by name.
    pub slots: BTreeMap<String, Vec<Url>>,
    pub initial_stable: String,
    pub pin_header: PinHeader,
    pub pin_cookie: Option<String>,
    pub sticky_cookie: Option<StickyCookie>,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisConfig {
    pub interval: Duration,
    /// Canary weights to walk through, strictly ascending, each 1..=100.
    pub steps: Vec<u8>,
    pub min_requests: u64,
    pub error_ratio_tolerance: f64,
    pub max_error_ratio: f64,
    pub latency_quantile: f64,
    pub max_latency_ratio: f64,
    pub max_latency: Option<Duration>,
    /// Latency differences below this are never a regression, whatever the ratio.
    pub latency_tolerance: Duration,
    pub failure_limit: u32,
    pub max_inconclusive: Duration,
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// One problem in the file: which key, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `apps.api.analysis.steps[2]`; empty for a syntax error.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Everything wrong with a config file, reported together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_issues(.path, .issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

fn render_issues(path: &Path, issues: &[ConfigIssue]) -> String {
    let mut out = format!(
        "config {} has {} error{}:",
        path.display(),
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for issue in issues {
        out.push_str("\n  ");
        out.push_str(&issue.to_string());
    }
    out
}

impl ConfigError {
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { issues, .. } => issues,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.
// ---------------------------------------------------------------------------------------------

/// Where secrets come from; the real one reads files and the process environment.
pub trait SecretSource {
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    fn env(&self, name: &str) -> Option<String>;
}

/// Reads secret files from disk and variables from the process environment.
pub struct OsSecrets;

impl SecretSource for OsSecrets {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// No secrets at all: every secret file is missing and no variable is set. For validating
/// config text on its own (tests, tools).
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not read here", path.display()),
        ))
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

impl Config {
    /// Reads and validates a config file, with secrets from files and the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&src, &OsSecrets).map_err(|issues| ConfigError::Invalid {
            path: path.to_owned(),
            issues,
        })
    }

    /// Parses and validates TOML text; returns every issue found.
    pub fn parse(src: &str, secrets: &dyn SecretSource) -> Result<Config, Vec<ConfigIssue>> {
        let mut v = Validator::new(src);
        let doc = match DeTable::parse(src) {
            Ok(doc) => doc,
            Err(e) => {
                let line = e.span().map(|s| line_of(src, s.start));
                return Err(vec![ConfigIssue {
                    key: String::new(),
                    line,
                    message: format!("invalid TOML: {}", e.message().trim()),
                }]);
            }
        };
        v.doc = Some(doc.get_ref().clone());

        let mut top: BTreeMap<String, Spanned<DeValue>> = BTreeMap::new();
        for (k, val) in doc.get_ref().iter() {
            top.insert(k.get_ref().to_string(), val.clone());
        }
        for key in top.keys() {
            if !matches!(key.as_str(), "server" | "metrics" | "apps" | "notifiers") {
                v.issue(
                    &[key.as_str()],
                    format!("unknown section `{key}`; expected `server`, `metrics`, `apps` or `notifiers`"),
                );
            }
        }

        let server = v.section::<RawServer>(top.get("server"), "server");
        let metrics = v.section::<RawMetrics>(top.get("metrics"), "metrics");
        let server = server.and_then(|raw| v.server(raw, secrets));
        let metrics = metrics.and_then(|raw| v.metrics(raw));

        let mut apps = BTreeMap::new();
        match top.get("apps").map(|a| a.get_ref()) {
            None => {}
            Some(DeValue::Table(table)) => {
                for (name, value) in table.iter() {
                    let name = name.get_ref().to_string();
                    let path = format!("apps.{name}");
                    if let Some(raw) = v.section::<RawApp>(Some(value), &path) {
                        if let Some(app) = v.app(&name, raw) {
                            apps.insert(name, app);
                        }
                    }
                }
            }
            Some(_) => v.issue(&["apps"], "must be a table of apps: [apps.NAME]".into()),
        }
        v.names_unique(&apps);

        let mut notifiers = Vec::new();
        match top.get("notifiers") {
            None => {}
            Some(value) => match value.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("notifiers[{i}]");
                        if let Some(raw) = v.section::<RawNotifier>(Some(item), &path) {
                            if let Some(n) = v.notifier(&path, raw, secrets) {
                                notifiers.push(n);
                            }
                        }
                    }
                }
                _ => v.issue(
                    &["notifiers"],
                    "must be an array of tables: [[notifiers]]".into(),
                ),
            },
        }
        let mut names = BTreeSet::new();
        for n in &notifiers {
            if !names.insert(n.name.clone()) {
                v.issue(
                    &["notifiers"],
                    format!("two notifiers are named {:?}", n.name),
                );
            }
        }

        if v.issues.is_empty() {
            Ok(Config {
                server: server.expect("no issues implies a server section"),
                metrics: metrics.expect("no issues implies a metrics section"),
                apps,
                notifiers,
            })
        } else {
            v.issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
            Err(v.issues)
        }
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Validator<'s> {
    src: &'s str,
    doc: Option<DeTable<'s>>,
    issues: Vec<ConfigIssue>,
}

impl<'s> Validator<'s> {
    fn new(src: &'s str) -> Self {
        Validator {
            src,
            doc: None,
            issues: Vec::new(),
        }
    }

    /// Span of the value at a dotted path (segments; `[n]` indexes arrays), or of the deepest
    /// existing parent.
    fn span_of(&self, path: &[&str]) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut table = doc;
        let mut current: Option<&Spanned<DeValue>> = None;
        for seg in path {
            let (key, index) = split_index(seg);
            let next = match current.map(|c| c.get_ref()) {
                None => table.get(key),
                Some(DeValue::Table(t)) => t.get(key),
                _ => None,
            };
            let Some(mut next) = next else { break };
            best = Some(next.span());
            if let Some(i) = index {
                match next.get_ref() {
                    DeValue::Array(a) => match a.get(i) {
                        Some(item) => {
                            next = item;
                            best = Some(item.span());
                        }
                        None => break,
                    },
                    _ => break,
                }
            }
            if let DeValue::Table(t) = next.get_ref() {
                table = t;
            }
            current = Some(next);
        }
        best
    }

    fn issue(&mut self, path: &[&str], message: String) {
        let line = self.span_of(path).map(|s| line_of(self.src, s.start));
        self.issues.push(ConfigIssue {
            key: path.join("."),
            line,
            message,
        });
    }

    fn issue_at(&mut self, base: &str, key: &str, message: String) {
        let mut path: Vec<&str> = base.split('.').collect();
        path.extend(key.split('.'));
        self.issue(&path, message);
    }

    /// Deserializes one section; a missing section deserializes from an empty table.
    fn section<T: DeserializeOwned>(
        &mut self,
        value: Option<&Spanned<DeValue<'s>>>,
        path: &str,
    ) -> Option<T> {
        let value = value
            .cloned()
            .unwrap_or_else(|| Spanned::new(0..0, DeValue::Table(DeTable::new())));
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            let segs: Vec<&str> = path.split('.').collect();
            self.issue(&segs, "must be a table".into());
            return None;
        }
        match T::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => Some(t),
            Err(e) => {
                let message = e.message().trim().to_string();
                // Name the offending key: the unknown field itself, or the key whose value
                // holds the error's span.
                let key = backticked(&message)
                    .filter(|_| message.starts_with("unknown field"))
                    .map(str::to_string)
                    .or_else(|| e.span().and_then(|s| self.key_at(path, &s)));
                let line = e
                    .span()
                    .filter(|s| s.end > 0)
                    .map(|s| line_of(self.src, s.start))
                    .or_else(|| {
                        let segs: Vec<&str> = path.split('.').collect();
                        self.span_of(&segs).map(|s| line_of(self.src, s.start))
                    });
                let key = match key {
                    Some(k) => format!("{path}.{k}"),
                    None => path.to_string(),
                };
                let line = match (line, self.span_of(&key.split('.').collect::<Vec<_>>())) {
                    (_, Some(s)) if message.starts_with("unknown field") => {
                        Some(line_of(self.src, s.start))
                    }
                    (l, _) => l,
                };
                self.issues.push(ConfigIssue { key, line, message });
                None
            }
        }
    }

    /// The key, directly under the table at `path`, whose value contains `span`.
    fn key_at(&self, path: &str, span: &Range<usize>) -> Option<String> {
        let segs: Vec<&str> = path.split('.').collect();
        let doc = self.doc.as_ref()?;
        let mut table = doc;
        for seg in &segs {
            match table.get(*seg).map(|v| v.get_ref()) {
                Some(DeValue::Table(t)) => table = t,
                _ => return None,
            }
        }
        table
            .iter()
            .find(|(_, v)| v.span().start <= span.start && span.end <= v.span().end)
            .map(|(k, _)| k.get_ref().to_string())
    }

    fn duration(&mut self, base: &str, key: &str, text: &str) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.issue_at(
                    base,
                    key,
                    format!(
                        "{text:?} is not a duration ({e}); write e.g. \"30s\", \"500ms\", \"10m\""
                    ),
                );
                None
            }
        }
    }

    fn url(&mut self, base: &str, key: &str, text: &str) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            Ok(_) => {
                self.issue_at(
                    base,
                    key,
                    format!("{text:?} must be an http:// or https:// URL with a host"),
                );
                None
            }
            Err(e) => {
                self.issue_at(base, key, format!("{text:?} is not a URL ({e})"));
                None
            }
        }
    }

    fn secret(
        &mut self,
        key: &str,
        file: Option<&Path>,
        env: &str,
        secrets: &dyn SecretSource,
    ) -> Option<Secret> {
        match file {
            Some(path) => match secrets.read_file(path) {
                Ok(text) if !text.trim().is_empty() => Some(Secret(text.trim().to_string())),
                Ok(_) => {
                    self.issue_at("server", key, format!("{} is empty", path.display()));
                    None
                }
                Err(e) => {
                    self.issue_at(
                        "server",
                        key,
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
            None => secrets
                .env(env)
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Secret),
        }
    }

    fn server(&mut self, raw: RawServer, secrets: &dyn SecretSource) -> Option<ServerConfig> {
        let before = self.issues.len();
        let listen = match raw.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.issue_at(
                    "server",
                    "listen",
                    format!(
                        "{:?} is not an address; write IP:PORT, e.g. \"0.0.0.0:9000\"",
                        raw.listen
                    ),
                );
                None
            }
        };
        if raw.state_file.as_os_str().is_empty() {
            self.issue_at("server", "state_file", "must not be empty".into());
        }
        let admin_token = self.secret(
            "admin_token_file",
            raw.admin_token_file.as_deref(),
            ADMIN_TOKEN_ENV,
            secrets,
        );
        let provider_token = self.secret(
            "provider_token_file",
            raw.provider_token_file.as_deref(),
            PROVIDER_TOKEN_ENV,
            secrets,
        );
        (self.issues.len() == before).then(|| ServerConfig {
            listen: listen.expect("checked"),
            state_file: raw.state_file,
            admin_token,
            provider_token,
            protect_reads: raw.protect_reads,
        })
    }

    fn metrics(&mut self, raw: RawMetrics) -> Option<MetricsConfig> {
        let before = self.issues.len();
        let source = match raw.source.as_str() {
            "traefik" => Some(MetricsSourceKind::Traefik),
            "prometheus" => Some(MetricsSourceKind::Prometheus),
            other => {
                self.issue_at(
                    "metrics",
                    "source",
                    format!("{other:?} is not a source; use \"traefik\" or \"prometheus\""),
                );
                None
            }
        };
        let mut traefik_urls = Vec::new();
        for (i, u) in raw.traefik_urls.iter().enumerate() {
            if let Some(url) = self.url("metrics", &format!("traefik_urls[{i}]"), u) {
                traefik_urls.push(url);
            }
        }
        let prometheus_url = raw
            .prometheus_url
            .as_deref()
            .and_then(|u| self.url("metrics", "prometheus_url", u));
        match source {
            Some(MetricsSourceKind::Traefik) if raw.traefik_urls.is_empty() => self.issue_at(
                "metrics",
                "traefik_urls",
                "source \"traefik\" needs at least one Traefik /metrics URL".into(),
            ),
            Some(MetricsSourceKind::Prometheus) if raw.prometheus_url.is_none() => self.issue_at(
                "metrics",
                "prometheus_url",
                "source \"prometheus\" needs prometheus_url, e.g. \"http://prometheus:9090\""
                    .into(),
            ),
            _ => {}
        }
        let timeout = self.duration("metrics", "timeout", &raw.timeout);
        let mut queries = crate::analysis::prometheus::Queries::default();
        if let Some(q) = raw.queries {
            for (key, value, slot) in [
                ("requests", q.requests, &mut queries.requests),
                ("errors", q.errors, &mut queries.errors),
                ("latency", q.latency, &mut queries.latency),
            ] {
                match value {
                    Some(v) if !v.contains("{service}") => self.issue_at(
                        "metrics",
                        &format!("queries.{key}"),
                        "must contain {service} (the managed services) so one query serves every app".into(),
                    ),
                    Some(v) => *slot = v,
                    None => {}
                }
            }
        }
        (self.issues.len() == before).then(|| MetricsConfig {
            source: source.expect("checked"),
            traefik_urls,
            prometheus_url,
            timeout: timeout.expect("checked"),
            queries,
        })
    }

    fn app(&mut self, name: &str, raw: RawApp) -> Option<AppConfig> {
        let base = format!("apps.{name}");
        let before = self.issues.len();
        if !is_name(name) {
            self.issue(
                &["apps", name],
                format!("app name {name:?} must be 1-63 characters of a-z, A-Z, 0-9, '-' or '_', starting with a letter or digit"),
            );
        }
        if raw.rule.trim().is_empty() {
            self.issue_at(
                &base,
                "rule",
                "must not be empty; e.g. \"Host(`api.example.com`)\"".into(),
            );
        }
        if raw.entry_points.is_empty() {
            self.issue_at(
                &base,
                "entry_points",
                "must name at least one entry point: a router without one attaches to every entry point, the metrics one included".into(),
            );
        }
        for (i, ep) in raw.entry_points.iter().enumerate() {
            if !is_name(ep) {
                self.issue_at(
                    &base,
                    &format!("entry_points[{i}]"),
                    format!("{ep:?} is not an entry point name"),
                );
            }
        }
        if raw.slots.len() != 2 {
            self.issue_at(
                &base,
                "slots",
                format!(
                    "needs exactly two slots (e.g. blue and green), found {}",
                    raw.slots.len()
                ),
            );
        }
        let mut slots = BTreeMap::new();
        for (slot, urls) in &raw.slots {
            let key = format!("slots.{slot}");
            if !is_name(slot) {
                self.issue_at(
                    &base,
                    &key,
                    format!("slot name {slot:?} must be letters, digits, '-' or '_'"),
                );
            }
            if urls.is_empty() {
                self.issue_at(&base, &key, "needs at least one server URL".into());
            }
            let mut parsed = Vec::new();
            let mut seen = BTreeSet::new();
            for (i, u) in urls.iter().enumerate() {
                if !seen.insert(u) {
                    self.issue_at(
                        &base,
                        &format!("{key}[{i}]"),
                        format!("{u:?} is listed twice"),
                    );
                }
                if let Some(url) = self.url(&base, &format!("{key}[{i}]"), u) {
                    parsed.push(url);
                }
            }
            slots.insert(slot.clone(), parsed);
        }
        if !raw.slots.contains_key(&raw.initial_stable) {
            let known: Vec<&str> = raw.slots.keys().map(String::as_str).collect();
            self.issue_at(
                &base,
                "initial_stable",
                format!("{:?} is not one of the slots {known:?}", raw.initial_stable),
            );
        }
        let pin_header = match raw.pin_header {
            Some(p) => {
                if !is_token(&p.name) {
                    self.issue_at(
                        &base,
                        "pin_header.name",
                        format!("{:?} is not a valid header name", p.name),
                    );
                }
                if p.value.is_empty() || p.value.contains('`') {
                    self.issue_at(
                        &base,
                        "pin_header.value",
                        "must be non-empty and contain no backtick".into(),
                    );
                }
                PinHeader {
                    name: p.name,
                    value: p.value,
                }
            }
            None => PinHeader {
                name: "X-Canary".into(),
                value: "true".into(),
            },
        };
        if let Some(c) = &raw.pin_cookie {
            if !is_token(c) {
                self.issue_at(
                    &base,
                    "pin_cookie",
                    format!("{c:?} is not a valid cookie name"),
                );
            }
        }
        let sticky_cookie = raw.sticky_cookie.map(|s| match s {
            RawSticky::Name(name) => StickyCookie {
                name,
                secure: false,
                http_only: true,
                path: None,
            },
            RawSticky::Full(f) => StickyCookie {
                name: f.name,
                secure: f.secure,
                http_only: f.http_only,
                path: f.path,
            },
        });
        if let Some(s) = &sticky_cookie {
            if !is_token(&s.name) {
                self.issue_at(
                    &base,
                    "sticky_cookie",
                    format!("{:?} is not a valid cookie name", s.name),
                );
            }
            if raw.pin_cookie.as_deref() == Some(s.name.as_str()) {
                self.issue_at(&base, "sticky_cookie", "must differ from pin_cookie".into());
            }
        }
        if raw.priority > u32::MAX - 100 {
            self.issue_at(&base, "priority", "is too large".into());
        }
        for (i, m) in raw.middlewares.iter().enumerate() {
            if m.trim().is_empty() {
                self.issue_at(
                    &base,
                    &format!("middlewares[{i}]"),
                    "must not be empty".into(),
                );
            }
        }
        let analysis = self.analysis(&base);
        let hooks = self.hooks(&base);
        (self.issues.len() == before).then(|| AppConfig {
            name: name.to_string(),
            rule: raw.rule,
            entry_points: raw.entry_points,
            slots,
            initial_stable: raw.initial_stable,
            pin_header,
            pin_cookie: raw.pin_cookie,
            sticky_cookie,
            priority: raw.priority,
            middlewares: raw.middlewares,
            tls: raw.tls.map(|t| Tls {
                cert_resolver: t.cert_resolver,
            }),
            analysis: analysis.expect("no issues implies analysis"),
            hooks: hooks.expect("no issues implies hooks"),
        })
    }

    fn hooks(&mut self, app_base: &str) -> Option<HooksConfig> {
        let base = format!("{app_base}.hooks");
        let segs: Vec<String> = base.split('.').map(str::to_string).collect();
        let spanned = self.spanned_at(&segs);
        let raw = self.section::<RawHooks>(spanned.as_ref(), &base)?;
        let before = self.issues.len();
        let mut url =
            |key: &str, v: &Option<String>| v.as_deref().and_then(|u| self.url(&base, key, u));
        let hooks = HooksConfig {
            confirm_rollout: url("confirm_rollout", &raw.confirm_rollout),
            confirm_promotion: url("confirm_promotion", &raw.confirm_promotion),
            pre_rollout: url("pre_rollout", &raw.pre_rollout),
            post_rollout: url("post_rollout", &raw.post_rollout),
            rollback: url("rollback", &raw.rollback),
            timeout: Duration::ZERO,
        };
        let timeout = self.duration(&base, "timeout", &raw.timeout);
        (self.issues.len() == before).then(|| HooksConfig {
            timeout: timeout.expect("checked"),
            ..hooks
        })
    }

    fn notifier(
        &mut self,
        path: &str,
        raw: RawNotifier,
        secrets: &dyn SecretSource,
    ) -> Option<NotifierConfig> {
        let before = self.issues.len();
        let kind = match raw.kind.as_str() {
            "slack" => Some(NotifierKind::Slack),
            "generic" => Some(NotifierKind::Generic),
            other => {
                self.issue_at(
                    path,
                    "kind",
                    format!("{other:?} is not a notifier kind; use \"slack\" or \"generic\""),
                );
                None
            }
        };
        if !is_name(&raw.name) {
            self.issue_at(
                path,
                "name",
                format!("{:?} must be letters, digits, '-' or '_'", raw.name),
            );
        }
        let url_text = match (&raw.url, &raw.url_file) {
            (Some(u), None) => Some(u.clone()),
            (None, Some(f)) => match secrets.read_file(f) {
                Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                Ok(_) => {
                    self.issue_at(path, "url_file", format!("{} is empty", f.display()));
                    None
                }
                Err(e) => {
                    self.issue_at(
                        path,
                        "url_file",
                        format!("cannot read {}: {e}", f.display()),
                    );
                    None
                }
            },
            _ => {
                self.issue_at(path, "url", "set exactly one of url and url_file".into());
                None
            }
        };
        // Validate without echoing the URL: it may be a secret.
        if let Some(u) = &url_text {
            match Url::parse(u) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https")
                        && parsed.host_str().is_some() => {}
                _ => self.issue_at(
                    path,
                    "url",
                    "must be an http:// or https:// URL with a host".into(),
                ),
            }
        }
        let secret = match &raw.secret_file {
            None => None,
            Some(f) => match secrets.read_file(f) {
                Ok(t) if !t.trim().is_empty() => Some(Secret(t.trim().to_string())),
                Ok(_) => {
                    self.issue_at(path, "secret_file", format!("{} is empty", f.display()));
                    None
                }
                Err(e) => {
                    self.issue_at(
                        path,
                        "secret_file",
                        format!("cannot read {}: {e}", f.display()),
                    );
                    None
                }
            },
        };
        let events = raw.events.clone().unwrap_or_default();
        for (i, e) in events.iter().enumerate() {
            if !crate::event::EventKind::ALL.iter().any(|k| k.as_str() == e) {
                let known: Vec<&str> = crate::event::EventKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                self.issue_at(
                    path,
                    &format!("events[{i}]"),
                    format!("{e:?} is not an event kind; one of {known:?}"),
                );
            }
        }
        let timeout = self.duration(path, "timeout", &raw.timeout);
        if !(0..=10).contains(&raw.retries) {
            self.issue_at(
                path,
                "retries",
                format!("= {}: must be 0..=10", raw.retries),
            );
        }
        if !(1..=100_000).contains(&raw.queue) {
            self.issue_at(
                path,
                "queue",
                format!("= {}: must be 1..=100000", raw.queue),
            );
        }
        (self.issues.len() == before).then(|| NotifierConfig {
            name: raw.name,
            kind: kind.expect("checked"),
            url: Secret(url_text.expect("checked")),
            secret,
            events,
            template: raw.template,
            timeout: timeout.expect("checked"),
            retries: raw.retries as u32,
            queue: raw.queue as usize,
        })
    }

    fn analysis(&mut self, app_base: &str) -> Option<AnalysisConfig> {
        let base = format!("{app_base}.analysis");
        let segs: Vec<String> = base.split('.').map(str::to_string).collect();
        let spanned = self.spanned_at(&segs);
        let raw = self.section::<RawAnalysis>(spanned.as_ref(), &base)?;
        let before = self.issues.len();
        let interval = self.duration(&base, "interval", &raw.interval);
        if let Some(d) = interval {
            if d < Duration::from_millis(100) {
                self.issue_at(&base, "interval", "must be at least 100ms".into());
            }
        }
        let steps = match (raw.steps, raw.step_weight, raw.max_weight) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                self.issue_at(
                    &base,
                    "steps",
                    "set either steps or step_weight/max_weight, not both".into(),
                );
                Vec::new()
            }
            (Some(steps), None, None) => {
                if !steps.iter().any(|w| (1..100).contains(w)) {
                    self.issue_at(
                        &base,
                        "steps",
                        "needs at least one weight below 100 (a final 100 is the promotion itself)"
                            .into(),
                    );
                }
                let mut out = Vec::new();
                for (i, w) in steps.iter().enumerate() {
                    if !(1..=100).contains(w) {
                        self.issue_at(
                            &base,
                            &format!("steps[{i}]"),
                            format!("= {w}: weights must be 1..=100"),
                        );
                    } else if i > 0 && *w <= steps[i - 1] {
                        self.issue_at(
                            &base,
                            &format!("steps[{i}]"),
                            format!(
                                "= {w}: steps must be strictly ascending (previous is {})",
                                steps[i - 1]
                            ),
                        );
                    }
                    out.push(*w as u8);
                }
                out
            }
            (None, sw, mw) => {
                let sw = sw.unwrap_or(0);
                let mw = mw.unwrap_or(100);
                if sw == 0 {
                    vec![5, 10, 25, 50, 100]
                } else if !(1..=100).contains(&sw) {
                    self.issue_at(&base, "step_weight", format!("= {sw}: must be 1..=100"));
                    Vec::new()
                } else if !(sw..=100).contains(&mw) {
                    self.issue_at(
                        &base,
                        "max_weight",
                        format!("= {mw}: must be step_weight..=100"),
                    );
                    Vec::new()
                } else {
                    (1..=mw / sw).map(|k| (k * sw) as u8).collect()
                }
            }
        };
        if raw.min_requests < 1 {
            self.issue_at(&base, "min_requests", "must be at least 1".into());
        }
        for (key, value, lo, hi) in [
            ("error_ratio_tolerance", raw.error_ratio_tolerance, 0.0, 1.0),
            (
                "max_error_ratio",
                raw.max_error_ratio,
                f64::MIN_POSITIVE,
                1.0,
            ),
        ] {
            if !(lo..=hi).contains(&value) {
                self.issue_at(&base, key, format!("= {value}: must be within {lo}..=1"));
            }
        }
        if !(raw.latency_quantile > 0.0 && raw.latency_quantile < 1.0) {
            self.issue_at(
                &base,
                "latency_quantile",
                format!(
                    "= {}: must be between 0 and 1, e.g. 0.99",
                    raw.latency_quantile
                ),
            );
        }
        if !(raw.max_latency_ratio >= 1.0 && raw.max_latency_ratio.is_finite()) {
            self.issue_at(
                &base,
                "max_latency_ratio",
                format!("= {}: must be at least 1.0", raw.max_latency_ratio),
            );
        }
        let max_latency = raw
            .max_latency
            .as_deref()
            .and_then(|t| self.duration(&base, "max_latency", t));
        let latency_tolerance = self.duration(&base, "latency_tolerance", &raw.latency_tolerance);
        if raw.failure_limit < 1 || raw.failure_limit > 1000 {
            self.issue_at(
                &base,
                "failure_limit",
                format!("= {}: must be 1..=1000", raw.failure_limit),
            );
        }
        let max_inconclusive = self.duration(&base, "max_inconclusive", &raw.max_inconclusive);
        (self.issues.len() == before).then(|| AnalysisConfig {
            interval: interval.expect("checked"),
            steps,
            min_requests: raw.min_requests as u64,
            error_ratio_tolerance: raw.error_ratio_tolerance,
            max_error_ratio: raw.max_error_ratio,
            latency_quantile: raw.latency_quantile,
            max_latency_ratio: raw.max_latency_ratio,
            max_latency,
            latency_tolerance: latency_tolerance.expect("checked"),
            failure_limit: raw.failure_limit as u32,
            max_inconclusive: max_inconclusive.expect("checked"),
        })
    }

    fn spanned_at(&self, path: &[String]) -> Option<Spanned<DeValue<'s>>> {
        let doc = self.doc.as_ref()?;
        let (first, rest) = path.split_first()?;
        let mut cur = doc.get(first.as_str())?;
        for seg in rest {
            match cur.get_ref() {
                DeValue::Table(t) => cur = t.get(seg.as_str())?,
                _ => return None,
            }
        }
        Some(cur.clone())
    }

    /// Every Traefik router and service name an app generates must be unique across apps.
    fn names_unique(&mut self, apps: &BTreeMap<String, AppConfig>) {
        let mut owner: BTreeMap<String, &str> = BTreeMap::new();
        for app in apps.values() {
            for n in app.generated_names() {
                if let Some(other) = owner.insert(n.clone(), &app.name) {
                    if other != app.name {
                        self.issue(
                            &["apps", &app.name],
                            format!("generates the Traefik name {n:?}, which app {other:?} also generates; rename one of them"),
                        );
                    }
                }
            }
        }
    }
}

fn split_index(seg: &str) -> (&str, Option<usize>) {
    match seg.find('[') {
        Some(i) if seg.ends_with(']') => (&seg[..i], seg[i + 1..seg.len() - 1].parse().ok()),
        _ => (seg, None),
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// An HTTP token (RFC 9110): what header and cookie names may contain.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~".contains(&b))
}

#[cfg(test)]
mod tests;

/// The example config shipped in `examples/`, parsed, for tests across the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../examples/canary-pilot.toml");

    pub use super::NoSecrets;

    pub fn sample_config() -> Config {
        Config::parse(EXAMPLE, &NoSecrets).expect("the example config is valid")
    }
}
