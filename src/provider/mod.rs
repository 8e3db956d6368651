//! Pure rendering of the Traefik dynamic configuration served at `GET /traefik`.
//!
//! Per app it renders the weighted parent `<app>`, the role-named children `<app>-stable` and
//! `<app>-canary`, the main router, the header-pin router and, when configured, the cookie-pin
//! router and the sticky cookie. The document is complete by construction: every service a router
//! or weighted service names is rendered in the same document, and every router has
//! `entryPoints`. Apps come in name order and each app's routers and services in name order,
//! so an unchanged state renders to identical bytes and Traefik, which hashes the body, sees no
//! change. Each app renders to its own [`Fragment`], so the controller re-renders only the apps
//! that changed and joins the rest as they were.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::config::{AppConfig, Config};
use crate::rollout::AppState;

pub use crate::config::PIN_PRIORITY_OFFSET;

/// One app's part of the document: its routers and its services as JSON object members
/// (`"name":{...}`, comma-separated), with what they were rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    routers: String,
    services: String,
    stable_slot: String,
    canary_weight: u8,
}

impl Fragment {
    /// Whether this fragment is what `state` renders to (for the same app config): only the
    /// stable slot and the canary weight reach the document.
    pub fn renders(&self, state: &AppState) -> bool {
        self.stable_slot == state.stable_slot && self.canary_weight == state.canary_weight
    }
}

/// Renders one app's routers and services.
pub fn render_fragment(app: &AppConfig, state: &AppState) -> Fragment {
    let mut routers = Map::new();
    let mut services = Map::new();
    render_app(app, state, &mut routers, &mut services);
    let members = |m: Map<String, Value>| {
        let object = serde_json::to_string(&Value::Object(m)).expect("a JSON value serializes");
        // `{"a":1,"b":2}` without its braces.
        object[1..object.len() - 1].to_string()
    };
    Fragment {
        routers: members(routers),
        services: members(services),
        stable_slot: state.stable_slot.clone(),
        canary_weight: state.canary_weight,
    }
}

/// Joins the apps' fragments, in the order given, into the document.
pub fn assemble<'a>(fragments: impl Iterator<Item = &'a Fragment> + Clone) -> Vec<u8> {
    let size: usize = fragments
        .clone()
        .map(|f| f.routers.len() + f.services.len() + 2)
        .sum();
    let mut doc = Vec::with_capacity(size + 64);
    let section = |doc: &mut Vec<u8>, part: fn(&Fragment) -> &str| {
        let mut first = true;
        for f in fragments.clone() {
            let members = part(f);
            if members.is_empty() {
                continue;
            }
            if !first {
                doc.push(b',');
            }
            doc.extend_from_slice(members.as_bytes());
            first = false;
        }
    };
    doc.extend_from_slice(br#"{"http":{"routers":{"#);
    section(&mut doc, |f| &f.routers);
    doc.extend_from_slice(br#"},"services":{"#);
    section(&mut doc, |f| &f.services);
    doc.extend_from_slice(b"}}}");
    doc
}

/// Renders the full dynamic configuration for every configured app.
///
/// `states` must hold a state for every app in `config` (the controller guarantees it); an app
/// without one is rendered all-stable on its initial slot rather than left out, so the document is
/// never partial.
pub fn render(config: &Config, states: &BTreeMap<String, AppState>) -> Vec<u8> {
    let fragments: Vec<Fragment> = config
        .apps
        .values()
        .map(|app| render_fragment(app, &state_or_initial(app, states)))
        .collect();
    assemble(fragments.iter())
}

/// An app's state, or its initial one when it has none.
pub fn state_or_initial<'a>(
    app: &AppConfig,
    states: &'a BTreeMap<String, AppState>,
) -> std::borrow::Cow<'a, AppState> {
    match states.get(&app.name) {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(AppState::initial(app, 0)),
    }
}

fn render_app(
    app: &AppConfig,
    state: &AppState,
    routers: &mut Map<String, Value>,
    services: &mut Map<String, Value>,
) {
    let names = app.names();
    let stable = names.stable();
    let canary = names.canary();
    let canary_slot = app.other_slot(&state.stable_slot);

    let mut weighted = json!({
        "services": [
            { "name": stable, "weight": state.stable_weight() },
            { "name": canary, "weight": state.canary_weight },
        ]
    });
    if let Some(sticky) = &app.sticky_cookie {
        let mut cookie = json!({
            "name": sticky.name,
            "httpOnly": sticky.http_only,
            "secure": sticky.secure,
        });
        if let Some(path) = &sticky.path {
            cookie["path"] = json!(path);
        }
        weighted["sticky"] = json!({ "cookie": cookie });
    }
    services.insert(names.service().to_string(), json!({ "weighted": weighted }));
    services.insert(stable, load_balancer(app, &state.stable_slot));
    services.insert(canary.clone(), load_balancer(app, canary_slot));

    routers.insert(
        names.router().to_string(),
        router(app, app.rule.clone(), names.service(), app.priority),
    );
    let pin_priority = app.pin_priority();
    let header_rule = format!(
        "({}) && Header(`{}`, `{}`)",
        app.rule, app.pin_header.name, app.pin_header.value
    );
    routers.insert(
        names.header_router(),
        router(app, header_rule, &canary, pin_priority),
    );
    if let Some(cookie) = &app.pin_cookie {
        let cookie_rule = format!(
            "({}) && HeaderRegexp(`Cookie`, `(^|;\\s*){}=true(;|$)`)",
            app.rule,
            regex_escape(cookie)
        );
        routers.insert(
            names.cookie_router(),
            router(app, cookie_rule, &canary, pin_priority),
        );
    }
}

fn load_balancer(app: &AppConfig, slot: &str) -> Value {
    let servers: Vec<Value> = app
        .slots
        .get(slot)
        .map(|urls| {
            urls.iter()
                .map(|u| json!({ "url": server_url(u) }))
                .collect()
        })
        .unwrap_or_default();
    json!({ "loadBalancer": { "servers": servers } })
}

/// `http://host:8080/` is written as `http://host:8080`, as operators write it; a path is kept.
fn server_url(u: &url::Url) -> &str {
    if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        u.as_str().trim_end_matches('/')
    } else {
        u.as_str()
    }
}

fn router(app: &AppConfig, rule: String, service: &str, priority: u32) -> Value {
    let mut r = json!({
        "rule": rule,
        "entryPoints": app.entry_points,
        "service": service,
        "priority": priority,
    });
    if !app.middlewares.is_empty() {
        r["middlewares"] = json!(app.middlewares);
    }
    if let Some(tls) = &app.tls {
        r["tls"] = match &tls.cert_resolver {
            Some(resolver) => json!({ "certResolver": resolver }),
            None => json!({}),
        };
    }
    r
}

/// Escapes the characters a Go regexp treats specially.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
