//! The configuration file, read in two phases: serde reads the TOML into the `raw` layer (which
//! mirrors the file exactly and refuses unknown keys), then each section's validation turns it
//! into the `typed` config. Every problem of a file is reported in one run, each with its key
//! and line.
//!
//! - `raw`: the serde structs, one doc comment per key;
//! - `de`: the one walk over the document, which knows every value's key path and span;
//! - `check`: the validation context and the checks shared by the sections;
//! - `server`, `metrics`, `notifiers`, `apps`, `analysis`, `swarm`: one section each;
//! - `typed`: what the rest of the program reads.
//!
//! Adding a key is one field in `raw` (with its default) and one check in its section.

mod analysis;
mod apps;
mod check;
mod de;
mod issue;
mod key;
mod metrics;
mod notifiers;
mod raw;
pub mod rule;
mod secret;
mod server;
mod swarm;
mod tolerance;
mod typed;

use std::path::Path;

use toml::de::DeTable;

pub use issue::{ConfigError, ConfigIssue};
pub use key::KeyPath;
pub use secret::{NoSecrets, OsSecrets, Secret, SecretSource};
pub use swarm::{app_document, NOT_DEFAULTS};
pub use tolerance::{Tolerance, ToleranceError, RELATIVE_FLOOR};
pub use typed::{
    AnalysisConfig, AppConfig, Config, HooksConfig, ManagedService, MetricsConfig,
    MetricsSourceKind, NotifierConfig, NotifierKind, PinHeader, Queries, ServerConfig, SlotService,
    StickyCookie, SwarmConfig, Tls, TraefikConfig, TraefikTasks, CANARY_SLOT, DEFAULT_ERRORS,
    DEFAULT_LATENCY, DEFAULT_REQUESTS, PIN_PRIORITY_OFFSET, PRIMARY_SLOT,
};

use check::Check;
use raw::RawConfig;

/// Environment variable that holds the admin API token when `server.admin_token_file` is unset.
pub const ADMIN_TOKEN_ENV: &str = "CANARY_PILOT_ADMIN_TOKEN";
/// Environment variable that holds the provider token when `server.provider_token_file` is unset.
pub const PROVIDER_TOKEN_ENV: &str = "CANARY_PILOT_PROVIDER_TOKEN";

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
        let doc = DeTable::parse(src).map_err(|e| {
            vec![ConfigIssue {
                key: String::new(),
                line: e.span().map(|s| issue::line_of(src, s.start)),
                message: format!("invalid TOML: {}", e.message().trim()),
            }]
        })?;
        let parsed = de::deserialize::<RawConfig>(&doc);
        let mut cx = Check::new(src, doc.get_ref(), &parsed.left_out, secrets);
        for refusal in parsed.refusals {
            cx.refused(refusal);
        }
        let config = parsed.value.and_then(|raw| Config::from_raw(raw, &mut cx));
        let issues = cx.into_issues();
        match config {
            Some(config) if issues.is_empty() => Ok(config),
            _ => {
                debug_assert!(!issues.is_empty(), "a refused config names its issues");
                Err(issues)
            }
        }
    }

    fn from_raw(raw: RawConfig, cx: &mut Check) -> Option<Config> {
        let root = KeyPath::root();
        let traefik_urls_set = raw.metrics.traefik_urls != raw::RawMetrics::default().traefik_urls;
        let server = ServerConfig::from_raw(raw.server, &root.key("server"), cx);
        let metrics = MetricsConfig::from_raw(raw.metrics, &root.key("metrics"), cx);
        let apps = apps::apps(raw.apps, &root.key("apps"), cx);
        let notifiers = notifiers::notifiers(raw.notifiers, &root.key("notifiers"), cx);
        let traefik = TraefikConfig::from_raw(raw.traefik, &root.key("traefik"), cx);
        let swarm = SwarmConfig::from_raw(raw.swarm, &root.key("swarm"), cx);
        if let (Some(swarm), Some(apps), Some(metrics)) = (&swarm, &apps, &metrics) {
            let managed: Vec<String> = apps
                .values()
                .filter(|a| a.managed.is_some())
                .map(|a| format!("apps.{}.service", a.name))
                .collect();
            let slots = apps.values().filter(|a| a.managed.is_none()).flat_map(|a| {
                a.slot_services
                    .keys()
                    .map(move |slot| format!("apps.{}.slots.{slot}", a.name))
            });
            let uses: Vec<String> = slots
                .chain(managed.iter().cloned())
                .chain(
                    swarm
                        .traefik
                        .iter()
                        .map(|_| "swarm.traefik_services".into()),
                )
                .chain(swarm.labels.then(|| "swarm.labels".to_string()))
                .collect();
            let traefik_source = metrics.source == MetricsSourceKind::Traefik;
            swarm::check_uses(swarm, &uses, &managed, traefik_source, traefik_urls_set, cx);
        }
        Some(Config {
            server: server?,
            metrics: metrics?,
            apps: apps?,
            notifiers: notifiers?,
            traefik: traefik?,
            swarm: swarm?,
        })
    }
}

#[cfg(test)]
mod tests;

/// The example config shipped in `examples/`, parsed, for tests across the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../../examples/canary-pilot.toml");

    /// An app whose two slots are Swarm services.
    pub const SERVICE_SLOTS: &str = r#"
[swarm]
network = "shop_canary-net"

[apps.api]
rule = "Host(`api.localhost`)"
initial_stable = "blue"
slots = { blue = { service = "shop_api-blue", port = 8080 }, green = { service = "shop_api-green", port = 8080 } }
"#;

    pub use super::NoSecrets;

    pub fn sample_config() -> Config {
        Config::parse(EXAMPLE, &NoSecrets).expect("the example config is valid")
    }
}
