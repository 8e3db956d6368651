//! Reading back from Traefik's API (`GET /api/rawdata`) what it made of the document: every
//! router and service generated for an app must be there and enabled. A router Traefik
//! disabled (an unknown entry point, a TLS option it lacks) or a service it could not build is
//! a route that silently does not exist, whatever the weights say.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Config;
use crate::names::{AppNames, HTTP_PROVIDER};

/// One object of the document as Traefik's runtime shows it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RuntimeObject {
    /// `enabled`, `disabled` or `warning`.
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "error")]
    pub errors: Vec<String>,
}

/// The part of `/api/rawdata` the check reads: routers and services by name (`api@http`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Runtime {
    #[serde(default)]
    pub routers: BTreeMap<String, RuntimeObject>,
    #[serde(default)]
    pub services: BTreeMap<String, RuntimeObject>,
}

/// What is wrong with one generated object in Traefik.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub app: String,
    /// `router` or `service`.
    pub kind: String,
    /// The name as Traefik shows it, `api-canary-header@http`.
    pub name: String,
    /// `missing`, `disabled` or `warning`.
    pub status: String,
    /// Traefik's own words, or why the object counts as missing.
    pub errors: Vec<String>,
}

/// Decodes an `/api/rawdata` answer.
pub fn parse(body: &[u8]) -> Result<Runtime, String> {
    serde_json::from_slice(body).map_err(|e| format!("not Traefik's /api/rawdata answer: {e}"))
}

/// Every generated object of every app of `config` that `runtime` does not show enabled.
/// `missing` is reported as such; the caller decides how long a missing object may take to
/// appear (Traefik loads a new document only at its next poll).
pub fn findings(config: &Config, runtime: &Runtime) -> Vec<Finding> {
    let mut out = Vec::new();
    for app in config.apps.values() {
        let names = AppNames::of(&app.name);
        let objects = names
            .routers(app.pin_cookie.is_some())
            .into_iter()
            .map(|n| ("router", n, &runtime.routers))
            .chain(
                names
                    .services()
                    .into_iter()
                    .map(|n| ("service", n, &runtime.services)),
            );
        for (kind, name, seen) in objects {
            let name = format!("{name}{HTTP_PROVIDER}");
            let finding = |status: &str, errors: Vec<String>| Finding {
                app: app.name.clone(),
                kind: kind.to_string(),
                name: name.clone(),
                status: status.to_string(),
                errors,
            };
            match seen.get(&name) {
                None => out.push(finding(
                    "missing",
                    vec!["Traefik has not loaded it from canary-pilot's provider".into()],
                )),
                Some(o) if o.status == "enabled" && o.errors.is_empty() => {}
                Some(o) => out.push(finding(
                    if o.status.is_empty() {
                        "disabled"
                    } else {
                        &o.status
                    },
                    o.errors.clone(),
                )),
            }
        }
    }
    out
}

/// Reads `/api/rawdata` from Traefik's API at `base`.
pub async fn fetch(
    http: &reqwest::Client,
    base: &Url,
    timeout: Duration,
) -> Result<Runtime, String> {
    let url = base
        .join("api/rawdata")
        .map_err(|e| format!("cannot build the rawdata URL: {e}"))?;
    let shown = crate::redact::redacted(&url);
    let resp = http.get(url).timeout(timeout).send().await.map_err(|e| {
        format!(
            "Traefik's API at {shown} is unreachable: {}",
            crate::redact::error_text(e)
        )
    })?;
    if !resp.status().is_success() {
        return Err(format!(
            "Traefik's API at {shown} answered {}",
            resp.status()
        ));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("Traefik's API at {shown}: {}", crate::redact::error_text(e)))?;
    parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::sample_config;

    #[test]
    fn every_generated_object_enabled_is_no_finding_and_each_other_state_is_one() {
        let config = sample_config();
        let enabled = |names: &[&str]| {
            names
                .iter()
                .map(|n| {
                    let o = RuntimeObject {
                        status: "enabled".into(),
                        errors: vec![],
                    };
                    (format!("{n}@http"), o)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut all_routers = Vec::new();
        let mut all_services = Vec::new();
        for app in config.apps.values() {
            let n = AppNames::of(&app.name);
            all_routers.extend(n.routers(app.pin_cookie.is_some()));
            all_services.extend(n.services());
        }
        let r: Vec<&str> = all_routers.iter().map(String::as_str).collect();
        let s: Vec<&str> = all_services.iter().map(String::as_str).collect();
        let mut runtime = Runtime {
            routers: enabled(&r),
            services: enabled(&s),
        };
        assert_eq!(findings(&config, &runtime), vec![]);

        runtime.routers.insert(
            "api@http".into(),
            RuntimeObject {
                status: "disabled".into(),
                errors: vec!["entryPoint \"nope\" doesn't exist".into()],
            },
        );
        runtime.services.remove("api-canary@http");
        let found = findings(&config, &runtime);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].name.as_str(), found[0].status.as_str()),
            ("api@http", "disabled")
        );
        assert_eq!(found[0].errors, vec!["entryPoint \"nope\" doesn't exist"]);
        assert_eq!(
            (found[1].kind.as_str(), found[1].status.as_str()),
            ("service", "missing")
        );
    }

    #[test]
    fn rawdata_is_read_as_traefik_writes_it() {
        let body = br#"{"routers":{"api@http":{"entryPoints":["nope"],"service":"api",
            "rule":"Host(`a`)","status":"disabled","error":["entryPoint \"nope\" doesn't exist"],
            "using":[]}},"middlewares":{},"services":{"api@http":{"weighted":{},"status":"enabled",
            "usedBy":["api@http"]}}}"#;
        let runtime = parse(body).unwrap();
        assert_eq!(runtime.routers["api@http"].status, "disabled");
        assert_eq!(runtime.routers["api@http"].errors.len(), 1);
        assert_eq!(runtime.services["api@http"].status, "enabled");
        assert!(parse(b"<html>").unwrap_err().contains("rawdata"));
    }
}
