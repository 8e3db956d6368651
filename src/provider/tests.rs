use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::config::tests_support::sample_config;

fn states(config: &Config, weight: u8, stable: &str) -> BTreeMap<String, AppState> {
    config
        .apps
        .values()
        .map(|a| {
            let mut s = AppState::initial(a, 0);
            s.canary_weight = weight;
            s.stable_slot = stable.to_string();
            (a.name.clone(), s)
        })
        .collect()
}

fn doc(config: &Config, weight: u8, stable: &str) -> Value {
    serde_json::from_slice(&render(config, &states(config, weight, stable))).unwrap()
}

/// The invariants Traefik needs: every router has entry points and names a service in the
/// document; every weighted child exists; weights add up to 100.
fn assert_complete(d: &Value) {
    let services = d["http"]["services"].as_object().unwrap();
    let routers = d["http"]["routers"].as_object().unwrap();
    assert!(!routers.is_empty() && !services.is_empty());
    for (name, r) in routers {
        let eps = r["entryPoints"].as_array().unwrap();
        assert!(!eps.is_empty(), "router {name} without entryPoints");
        let svc = r["service"].as_str().unwrap();
        assert!(
            services.contains_key(svc),
            "router {name} names missing service {svc}"
        );
        assert!(
            r["priority"].as_u64().is_some(),
            "router {name} without explicit priority"
        );
    }
    for (name, s) in services {
        if let Some(w) = s.get("weighted") {
            let children = w["services"].as_array().unwrap();
            let mut total = 0;
            for c in children {
                let child = c["name"].as_str().unwrap();
                assert!(
                    services.contains_key(child),
                    "{name} names missing child {child}"
                );
                total += c["weight"].as_u64().unwrap();
            }
            assert_eq!(total, 100, "{name}");
        } else {
            assert!(!s["loadBalancer"]["servers"].as_array().unwrap().is_empty());
        }
    }
}

#[test]
fn renders_role_named_services_and_pin_routers() {
    let config = sample_config();
    let d = doc(&config, 10, "blue");
    assert_complete(&d);
    let s = &d["http"]["services"];
    assert_eq!(
        s["api"]["weighted"]["services"][0],
        serde_json::json!({"name": "api-stable", "weight": 90})
    );
    assert_eq!(
        s["api"]["weighted"]["services"][1],
        serde_json::json!({"name": "api-canary", "weight": 10})
    );
    assert_eq!(
        s["api-stable"]["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:8091"
    );
    assert_eq!(
        s["api-canary"]["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:8092"
    );
    assert_eq!(s["api"]["weighted"]["sticky"]["cookie"]["name"], "api_lb");

    let r = &d["http"]["routers"];
    assert_eq!(r["api"]["service"], "api");
    assert_eq!(r["api"]["priority"], 10);
    assert_eq!(r["api-canary-header"]["service"], "api-canary");
    assert_eq!(r["api-canary-header"]["priority"], 110);
    assert_eq!(
        r["api-canary-header"]["rule"],
        "(Host(`api.localhost`)) && Header(`X-Canary`, `true`)"
    );
    assert_eq!(r["api-canary-cookie"]["service"], "api-canary");
}

#[test]
fn cookie_rule_matches_the_form_traefik_accepted() {
    // ../shared/fixtures/dynamic-cookie-rule.json holds a rule that a real Traefik 3.7 applied.
    let fixture = r"Host(`app.localhost`) && HeaderRegexp(`Cookie`, `(^|;\s*)canary=true(;|$)`)";
    let d = doc(&sample_config(), 0, "blue");
    let ours = d["http"]["routers"]["api-canary-cookie"]["rule"]
        .as_str()
        .unwrap();
    let matcher = &fixture[fixture.find("HeaderRegexp").unwrap()..];
    assert!(ours.ends_with(matcher), "{ours}");
}

#[test]
fn promotion_swap_renders_the_promoted_slot_as_stable() {
    let config = sample_config();
    let d = doc(&config, 0, "green");
    assert_complete(&d);
    let s = &d["http"]["services"];
    assert_eq!(
        s["api-stable"]["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:8092"
    );
    assert_eq!(
        s["api-canary"]["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:8091"
    );
    assert_eq!(s["api"]["weighted"]["services"][0]["weight"], 100);
}

#[test]
fn every_weight_renders_a_complete_document() {
    let config = sample_config();
    for w in 0..=100u8 {
        assert_complete(&doc(&config, w, "blue"));
    }
}

#[test]
fn unchanged_state_renders_identical_bytes() {
    let config = sample_config();
    let st = states(&config, 25, "blue");
    assert_eq!(render(&config, &st), render(&config, &st));
    let mut other = st.clone();
    other.get_mut("api").unwrap().canary_weight = 26;
    assert_ne!(render(&config, &st), render(&config, &other));
}

#[test]
fn app_without_state_is_rendered_all_stable_not_left_out() {
    let config = sample_config();
    let d: Value = serde_json::from_slice(&render(&config, &BTreeMap::new())).unwrap();
    assert_complete(&d);
    assert_eq!(
        d["http"]["services"]["api"]["weighted"]["services"][1]["weight"],
        0
    );
}

#[test]
fn generated_names_are_exactly_what_is_rendered() {
    let config = sample_config();
    let d = doc(&config, 5, "blue");
    let mut rendered: BTreeSet<String> = d["http"]["routers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    rendered.extend(d["http"]["services"].as_object().unwrap().keys().cloned());
    let names: BTreeSet<String> = config.apps["api"].generated_names().into_iter().collect();
    assert_eq!(rendered, names);
}

#[test]
fn middlewares_and_tls_are_set_on_every_router() {
    let mut config = sample_config();
    let app = config.apps.get_mut("api").unwrap();
    app.middlewares = vec!["auth@file".into()];
    app.tls = Some(crate::config::Tls {
        cert_resolver: Some("le".into()),
    });
    let d = doc(&config, 5, "blue");
    for (_, r) in d["http"]["routers"].as_object().unwrap() {
        assert_eq!(r["middlewares"][0], "auth@file");
        assert_eq!(r["tls"]["certResolver"], "le");
    }
}

#[test]
fn regex_escape_escapes_go_metacharacters() {
    assert_eq!(regex_escape("a.b+c"), r"a\.b\+c");
    assert_eq!(regex_escape("plain_name-1"), "plain_name-1");
}
