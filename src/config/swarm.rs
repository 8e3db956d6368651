//! `[swarm]`: the Docker engine that canary-pilot reads for the running tasks of the services
//! that are slots, and of Traefik's own services; and what it needs of the rest of the file.

use std::path::PathBuf;
use std::time::Duration;

use super::apps::is_service_name;
use super::check::Check;
use super::key::KeyPath;
use super::raw::RawSwarm;
use super::typed::{SwarmConfig, TraefikTasks};

impl SwarmConfig {
    pub(super) fn from_raw(raw: RawSwarm, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let socket_key = at.key("socket");
        let path = raw.socket.strip_prefix("unix://").unwrap_or(&raw.socket);
        let socket = cx.check(
            &socket_key,
            PathBuf::from(path),
            |p| p.is_absolute(),
            |_| {
                format!(
                    "{:?} must be the absolute path of the Docker engine's Unix socket, e.g. \"/var/run/docker.sock\"",
                    raw.socket
                )
            },
        );
        let network_key = at.key("network");
        let network = cx.optional(raw.network, |cx, n| {
            cx.check(
                &network_key,
                n,
                |n| is_service_name(n),
                |n| format!("{n:?} is not a Docker network name (a stack's network is STACK_NAME)"),
            )
        });
        let interval_key = at.key("poll_interval");
        let poll_interval = cx
            .duration(&interval_key, &raw.poll_interval)
            .and_then(|d| {
                cx.check(
                    &interval_key,
                    d,
                    |d| (Duration::from_millis(200)..=Duration::from_secs(60)).contains(d),
                    |_| {
                        "must be within 200ms..=1m: servers follow the tasks only this often".into()
                    },
                )
            });
        let services_key = at.key("traefik_services");
        let services = cx.list(&services_key, raw.traefik_services, |cx, k, s| {
            cx.check(
                k,
                s,
                |s| is_service_name(s),
                |s| format!("{s:?} is not a Swarm service name (a stack's service is STACK_NAME)"),
            )
        });
        let port = cx.int::<u16>(
            &at.key("traefik_metrics_port"),
            raw.traefik_metrics_port,
            1..=65535,
        );
        let path_key = at.key("traefik_metrics_path");
        let metrics_path = cx.check(
            &path_key,
            raw.traefik_metrics_path,
            |p| p.starts_with('/') && !p.contains(['?', '#', ' ']),
            |p| format!("{p:?} must be a path such as \"/metrics\""),
        );
        let traefik = match (services?, port?, metrics_path?) {
            (services, _, _) if services.is_empty() => None,
            (services, port, path) => Some(TraefikTasks {
                services,
                port,
                path,
            }),
        };
        let defaults = defaults(raw.defaults, &at.key("defaults"), cx);
        Some(SwarmConfig {
            socket: socket?,
            network: network?,
            poll_interval: poll_interval?,
            traefik,
            labels: raw.labels,
            read_only: raw.read_only,
            defaults: defaults?,
        })
    }
}

/// The text of a config with `[swarm] network` and one app, `[apps.NAME]` = `table`: how an app
/// from labels (or `[swarm.defaults]`) goes through the file's own checks.
pub fn app_document(name: &str, table: toml::Table, network: &str) -> Result<String, String> {
    let mut apps = toml::Table::new();
    apps.insert(name.into(), toml::Value::Table(table));
    let mut swarm = toml::Table::new();
    swarm.insert("network".into(), toml::Value::String(network.into()));
    let mut doc = toml::Table::new();
    doc.insert("swarm".into(), toml::Value::Table(swarm));
    doc.insert("apps".into(), toml::Value::Table(apps));
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// Keys of `[apps.NAME]` that only the labelled service decides.
pub const NOT_DEFAULTS: [&str; 3] = ["slots", "initial_stable", "service"];

/// `[swarm.defaults]`: checked as the keys of an app, each issue at its own key.
fn defaults(raw: toml::Table, at: &KeyPath, cx: &mut Check) -> Option<toml::Table> {
    if raw.is_empty() {
        return Some(raw);
    }
    let mut ok = true;
    for key in NOT_DEFAULTS {
        if raw.contains_key(key) {
            cx.issue(
                &at.key(key),
                "is not a default: the labelled service is the app (a Swarm-managed app)",
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    const PROBE: &str = "labelled";
    let mut app = raw.clone();
    app.entry("rule")
        .or_insert_with(|| toml::Value::String("Host(`labelled`)".into()));
    let mut service = toml::Table::new();
    service.insert("name".into(), toml::Value::String(PROBE.into()));
    service.insert("port".into(), toml::Value::Integer(1));
    app.insert("service".into(), toml::Value::Table(service));
    let text = app_document(PROBE, app, PROBE).ok()?;
    match super::Config::parse(&text, &super::NoSecrets) {
        Ok(_) => Some(raw),
        Err(issues) => {
            let prefix = format!("apps.{PROBE}.");
            for i in issues {
                let key = i.key.strip_prefix(&prefix).unwrap_or(&i.key);
                let mut path = at.clone();
                for part in key.split('.') {
                    path = path.key(part.split('[').next().unwrap_or(part));
                }
                cx.issue(&path, i.message);
            }
            None
        }
    }
}

/// What a `[swarm]` that is used needs from the other sections: the network, and Traefik's
/// tasks as the only Traefik source.
pub(super) fn check_uses(
    swarm: &SwarmConfig,
    uses: &[String],
    managed: &[String],
    traefik_source: bool,
    traefik_urls_set: bool,
    cx: &mut Check,
) {
    let at = KeyPath::root().key("swarm");
    if swarm.read_only {
        let writers: Vec<String> = managed
            .iter()
            .cloned()
            .chain(swarm.labels.then(|| "swarm.labels".to_string()))
            .collect();
        if !writers.is_empty() {
            cx.issue(
                &at.key("read_only"),
                format!(
                    "forbids the writes that {} need: a Swarm-managed app's services are updated and scaled by canary-pilot; use slots of services to only follow tasks",
                    writers.join(", ")
                ),
            );
        }
    }
    if swarm.network.is_none() && !uses.is_empty() {
        cx.issue(
            &at.key("network"),
            format!(
                "is required by {}: the overlay network that Traefik shares with those services, whose tasks' addresses on it Traefik is given (a stack's network is STACK_NAME)",
                uses.join(", ")
            ),
        );
    }
    if swarm.traefik.is_some() {
        let key = at.key("traefik_services");
        if !traefik_source {
            cx.issue(&key, "is read by the metrics source \"traefik\" only; with \"prometheus\", let Prometheus find Traefik's tasks (dns_sd_configs), or remove it");
        } else if traefik_urls_set {
            cx.issue(
                &key,
                "replaces metrics.traefik_urls, which is set too: keep one of them",
            );
        }
    }
}
