//! The documentation's examples are checked: every TOML block in the README and docs/ is a valid
//! config, and so is the example file.

use std::path::Path;

use canary_pilot::config::{Config, NoSecrets};

fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == fence => current = Some(String::new()),
            Some(_) if line.trim() == "```" => out.push(current.take().unwrap()),
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_toml_block_in_the_docs_is_a_valid_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, block) in blocks(&text, "toml").iter().enumerate() {
            if let Err(issues) = Config::parse(block, &NoSecrets) {
                panic!(
                    "{} TOML block {i} is not a valid config: {issues:#?}\n{block}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the docs to hold config examples, found {checked}"
    );
    let example = std::fs::read_to_string(root.join("examples/canary-pilot.toml")).unwrap();
    Config::parse(&example, &NoSecrets).expect("examples/canary-pilot.toml is valid");
}

/// Every `METHOD /path` written in docs/api.md; a heading like
/// ``### `POST /a/{app}/pause`, `/resume` `` documents `POST /a/{app}/resume` too.
fn documented_routes(text: &str) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for line in text.lines() {
        let items: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        let mut last: Option<(String, String)> = None;
        for item in items {
            let mut words = item.split_whitespace();
            match (words.next(), words.next()) {
                (Some(m @ ("GET" | "PUT" | "POST" | "DELETE" | "PATCH")), Some(path))
                    if path.starts_with('/') =>
                {
                    let path = path.split('?').next().unwrap().to_string();
                    out.insert((m.to_string(), path.clone()));
                    last = Some((m.to_string(), path));
                }
                (Some(sibling), None) if sibling.starts_with('/') && line.starts_with("###") => {
                    if let Some((m, p)) = &last {
                        let parent = &p[..p.rfind('/').unwrap()];
                        out.insert((m.clone(), format!("{parent}{sibling}")));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/api.md")).unwrap();
    let documented = documented_routes(&text);
    let routes: std::collections::BTreeSet<(String, String)> = canary_pilot::api::ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/api.md: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "docs/api.md documents routes that do not exist: {missing:?}"
    );
}

#[tokio::test]
async fn every_listed_route_is_served() {
    use std::sync::Arc;
    use tower::ServiceExt;
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/canary-pilot.toml"),
    )
    .unwrap();
    let config = Arc::new(Config::parse(&src, &NoSecrets).unwrap());
    let store = Arc::new(canary_pilot::store::MemStore::default());
    let controller = canary_pilot::controller::Controller::load(
        config,
        canary_pilot::controller::Dependencies::new(store),
    )
    .unwrap();
    let app = canary_pilot::api::router(canary_pilot::api::ApiState::loaded(Arc::new(controller)));
    for route in canary_pilot::api::ROUTES {
        let (method, uri) = (route.method.as_str(), route.path.replace("{app}", "api"));
        let req = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !(status == 404 && text.contains("\"not_found\"")) && status != 405,
            "{method} {uri} is not routed: {status} {text}"
        );
    }
}
