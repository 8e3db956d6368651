//! Apps declared with labels on the user's service, as Traefik reads routers from labels:
//! `canary-pilot.enable=true`, `canary-pilot.port=8080`, `canary-pilot.rule=Host(...)` and any
//! key of `[apps.NAME]`, e.g. `canary-pilot.analysis.steps=[10, 50]`. Such an app is
//! Swarm-managed (`service = { name, port }`, the labelled service). The labels become the
//! app's TOML table and go through the config's own validation, so a label takes exactly what
//! the key takes in the file; an issue is reported for the service and the label.

use std::collections::BTreeMap;

use crate::config::{self, AppConfig, Config, SecretSource, NOT_DEFAULTS};

/// The label that makes a service an app.
pub const ENABLE: &str = "canary-pilot.enable";
const PREFIX: &str = "canary-pilot.";
/// Labels that are not keys of the app's table.
const APP: &str = "app";
const PORT: &str = "port";

/// The app a labelled service declares, or every problem of its labels (each naming the
/// service and the label). `defaults` (`[swarm.defaults]`) fills the keys its labels leave out.
pub fn label_app(
    service: &str,
    labels: &BTreeMap<String, String>,
    network: &str,
    defaults: &toml::Table,
    secrets: &dyn SecretSource,
) -> Result<AppConfig, Vec<String>> {
    let (name, doc) = app_document(service, labels, network, defaults)?;
    let config = Config::parse(&doc, secrets).map_err(|issues| {
        issues
            .iter()
            .map(|i| {
                format!(
                    "service {service:?}, label {}: {}",
                    label_of(&name, &i.key),
                    i.message
                )
            })
            .collect::<Vec<_>>()
    })?;
    config
        .apps
        .get(&name)
        .cloned()
        .ok_or_else(|| vec![format!("service {service:?}: its labels declare no app")])
}

/// The app's name and a config document with its table: `[swarm] network` and `[apps.NAME]`.
fn app_document(
    service: &str,
    labels: &BTreeMap<String, String>,
    network: &str,
    defaults: &toml::Table,
) -> Result<(String, String), Vec<String>> {
    let mut problems = Vec::new();
    let mut table = toml::Table::new();
    let mut port = None;
    for (label, value) in labels {
        let Some(key) = label.strip_prefix(PREFIX) else {
            continue;
        };
        match key {
            "enable" => {}
            APP | PORT => {}
            k if NOT_DEFAULTS.contains(&k.split('.').next().unwrap_or(k)) => problems.push(format!(
                "service {service:?}, label {label}: not set by labels; the labelled service is the app (a Swarm-managed app)"
            )),
            k => {
                if let Err(why) = insert(&mut table, k, parse_value(value)) {
                    problems.push(format!("service {service:?}, label {label}: {why}"));
                }
            }
        }
        if key == PORT {
            port = Some(parse_value(value));
        }
    }
    let name = labels
        .get(&format!("{PREFIX}{APP}"))
        .cloned()
        .unwrap_or_else(|| default_name(service, labels));
    match port {
        Some(port) => {
            let mut s = toml::Table::new();
            s.insert("name".into(), toml::Value::String(service.into()));
            s.insert("port".into(), port);
            table.insert("service".into(), toml::Value::Table(s));
        }
        None => problems.push(format!(
            "service {service:?}: label {PREFIX}{PORT} is required: the port its tasks listen on"
        )),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    fill(&mut table, defaults);
    let text = config::app_document(&name, table, network)
        .map_err(|e| vec![format!("service {service:?}: {e}")])?;
    Ok((name, text))
}

/// A service of stack `shop` named `shop_api` is the app `api`; any other keeps its name.
fn default_name(service: &str, labels: &BTreeMap<String, String>) -> String {
    labels
        .get("com.docker.stack.namespace")
        .and_then(|stack| service.strip_prefix(&format!("{stack}_")))
        .unwrap_or(service)
        .to_string()
}

/// A label's value as TOML takes it: a number, a boolean, a list, an inline table or a quoted
/// string when it parses as one; else the text itself (`Host(`a`)`, `5s`).
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Adds to `table` what `defaults` has and it has not, table by table.
fn fill(table: &mut toml::Table, defaults: &toml::Table) {
    for (key, value) in defaults {
        match (table.get_mut(key), value) {
            (Some(toml::Value::Table(t)), toml::Value::Table(d)) => fill(t, d),
            (Some(_), _) => {}
            (None, v) => {
                table.insert(key.clone(), v.clone());
            }
        }
    }
}

/// Puts `value` at the dotted `key` of `table`.
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|p| !p.is_empty())
        .ok_or("an empty key")?;
    let mut at = table;
    for part in parts {
        if part.is_empty() {
            return Err("an empty key".into());
        }
        let next = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match next {
            toml::Value::Table(t) => t,
            _ => return Err(format!("{part} is set to a value already, not a table")),
        };
    }
    if at.contains_key(last) {
        return Err("set twice".into());
    }
    at.insert(last.to_string(), value);
    Ok(())
}

/// The label a config key came from: `apps.NAME.analysis.steps[1]` is
/// `canary-pilot.analysis.steps`; `apps.NAME.service.port`, `canary-pilot.port`.
fn label_of(app: &str, key: &str) -> String {
    let inner = key
        .strip_prefix(&format!("apps.{app}"))
        .map(|k| k.trim_start_matches('.'))
        .unwrap_or(key);
    let inner = inner.split('[').next().unwrap_or(inner);
    match inner {
        "" => format!("{PREFIX}{APP}"),
        "service.port" | "service" => format!("{PREFIX}{PORT}"),
        "service.name" => "the service's name".to_string(),
        k => format!("{PREFIX}{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoSecrets;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_declare_a_managed_app_with_any_key_of_its_table() {
        let l = labels(&[
            ("com.docker.stack.namespace", "shop"),
            ("canary-pilot.enable", "true"),
            ("canary-pilot.port", "8080"),
            ("canary-pilot.rule", "Host(`shop.example.com`)"),
            ("canary-pilot.analysis.steps", "[10, 50]"),
            ("canary-pilot.analysis.interval", "2s"),
            ("canary-pilot.analysis.error_ratio_tolerance", "\"50%\""),
            ("canary-pilot.pin_header.name", "X-Beta"),
            ("traefik.enable", "false"),
        ]);
        let app = label_app("shop_api", &l, "shop_net", &toml::Table::new(), &NoSecrets).unwrap();
        assert_eq!(app.name, "api", "the stack's prefix is left out");
        assert_eq!(app.rule, "Host(`shop.example.com`)");
        assert_eq!(app.analysis.steps, vec![10, 50]);
        assert_eq!(app.analysis.interval, std::time::Duration::from_secs(2));
        assert_eq!(app.pin_header.name, "X-Beta");
        let m = app.managed.unwrap();
        assert_eq!(
            (m.service.as_str(), m.port, m.primary.as_str()),
            ("shop_api", 8080, "shop_api-primary")
        );

        let named = labels(&[
            ("canary-pilot.app", "web"),
            ("canary-pilot.port", "80"),
            ("canary-pilot.rule", "Host(`w`)"),
        ]);
        assert_eq!(
            label_app("frontend", &named, "n", &toml::Table::new(), &NoSecrets)
                .unwrap()
                .name,
            "web"
        );
    }

    #[test]
    fn bad_labels_are_reported_per_service_and_label_all_at_once() {
        let l = labels(&[
            ("canary-pilot.enable", "true"),
            ("canary-pilot.port", "80800"),
            ("canary-pilot.rule", "Host(`a`))"),
            ("canary-pilot.analysis.stepz", "[10]"),
        ]);
        let problems =
            label_app("shop_api", &l, "shop_net", &toml::Table::new(), &NoSecrets).unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains("service \"shop_api\", label canary-pilot.analysis.stepz: unknown field `stepz`; did you mean `steps`?"), "{all}");
        // serde stops at the unknown key and leaves the analysis table out; the rest is checked.
        assert!(
            all.contains("label canary-pilot.port: = 80800: must be 1..=65535"),
            "{all}"
        );
        assert!(all.contains("label canary-pilot.rule:"), "{all}");

        let missing = label_app(
            "x",
            &labels(&[("canary-pilot.rule", "Host(`a`)")]),
            "n",
            &toml::Table::new(),
            &NoSecrets,
        )
        .unwrap_err();
        assert!(
            missing[0].contains("label canary-pilot.port is required"),
            "{missing:?}"
        );
        let slots = labels(&[
            ("canary-pilot.port", "80"),
            ("canary-pilot.rule", "Host(`a`)"),
            ("canary-pilot.slots.blue", "[\"http://a\"]"),
        ]);
        let refused = label_app("x", &slots, "n", &toml::Table::new(), &NoSecrets).unwrap_err();
        assert!(
            refused[0].contains("label canary-pilot.slots.blue: not set by labels"),
            "{refused:?}"
        );
    }

    #[test]
    fn the_files_defaults_fill_what_the_labels_leave_out() {
        let defaults: toml::Table = toml::from_str(
            "entry_points = [\"websecure\"]\n[analysis]\ninterval = \"30s\"\nsteps = [5, 50]\n",
        )
        .unwrap();
        let l = labels(&[
            ("canary-pilot.port", "8080"),
            ("canary-pilot.rule", "Host(`a`)"),
            ("canary-pilot.analysis.steps", "[20]"),
        ]);
        let app = label_app("api", &l, "n", &defaults, &NoSecrets).unwrap();
        assert_eq!(app.entry_points, ["websecure"]);
        assert_eq!(app.analysis.interval, std::time::Duration::from_secs(30));
        assert_eq!(
            app.analysis.steps,
            vec![20],
            "the label wins over the default"
        );
    }
}
