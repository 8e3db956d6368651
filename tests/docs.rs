//! The documentation's examples are checked: every TOML block in the README and docs/ is a valid
//! config, and so is the example file; every example that shows a command and its output is a
//! `console` block that a test runs, comparing what the command prints with what the block shows.

mod common;
mod fake_api;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use canary_pilot::config::{Config, NoSecrets};

fn blocks(text: &str, lang: &str) -> Vec<String> {
    common::markdown::blocks(text, lang)
        .into_iter()
        .map(|lines| lines.iter().map(|l| format!("{l}\n")).collect())
        .collect()
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
    use tower::ServiceExt;
    let app = example_router();
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

/// The README and every page of docs/.
fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    files.sort();
    files
}

/// The API router of a daemon loaded with the example config and an in-memory state.
fn example_router() -> axum::Router {
    use std::sync::Arc;
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
    canary_pilot::api::router(canary_pilot::api::ApiState::loaded(Arc::new(controller)))
}

/// How each console block is run, by its file and first command: against which server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Runs {
    /// tests/quickstart.rs runs it, after the quick start's shell block.
    QuickStart,
    /// Against a fresh `serve` of examples/canary-pilot.toml.
    FreshExample,
    /// Against the recorded answer of a rollback (tests/fixtures/status-rolled-back.json).
    RecordedRollback,
}

const CONSOLE_BLOCKS: &[(&str, &str, Runs)] = &[
    (
        "README.md",
        "curl -s -H 'Host: api.localhost' http://127.0.0.1:8080/",
        Runs::QuickStart,
    ),
    (
        "README.md",
        "canary-pilot set-weight api 10",
        Runs::FreshExample,
    ),
    (
        "analysis.md",
        "canary-pilot status api",
        Runs::RecordedRollback,
    ),
];

/// Every console block of the docs, with how it runs.
fn console_blocks() -> Vec<(String, Vec<String>, Runs)> {
    let mut out = Vec::new();
    for file in doc_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        for (lang, lines) in common::markdown::fenced(&text) {
            let shows_a_prompt = lines.iter().any(|l| l.starts_with("$ "));
            assert!(
                lang == "console" || !shows_a_prompt,
                "{name}: a ```{lang} block shows a `$ ` command; an example with output is a \
                 ```console block that tests/docs.rs runs:\n{}",
                lines.join("\n")
            );
            if lang != "console" {
                continue;
            }
            let first = common::markdown::commands(&lines)[0].0.clone();
            let runs = CONSOLE_BLOCKS
                .iter()
                .find(|(f, c, _)| *f == name && *c == first)
                .map(|(_, _, r)| *r)
                .unwrap_or_else(|| {
                    panic!("{name}: the console block of `{first}` is not in CONSOLE_BLOCKS, so no test runs it")
                });
            out.push((name.clone(), lines, runs));
        }
    }
    out
}

/// Runs a block's commands as typed at a prompt of an 80-column terminal, with `canary-pilot`
/// on the PATH and `CANARY_PILOT_SERVER` set; each must print what the block shows.
fn run_block(name: &str, block: &[String], server: &str, cwd: &Path) {
    let bin_dir = Path::new(common::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (cmd, expected) in common::markdown::commands(block) {
        let out = Command::new("bash")
            .args(["-c", &cmd])
            .current_dir(cwd)
            .env("PATH", &path)
            .env("COLUMNS", "80")
            .env("CANARY_PILOT_SERVER", server)
            .env_remove("CANARY_PILOT_ADMIN_TOKEN")
            .env_remove("CANARY_PILOT_TOKEN")
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        assert_eq!(
            got.join("\n"),
            expected.join("\n"),
            "{name}: `{cmd}` printed something else than the docs show (stderr: {})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_example_with_output_is_a_console_block_that_a_test_runs() {
    let blocks = console_blocks();
    assert_eq!(
        blocks.len(),
        CONSOLE_BLOCKS.len(),
        "CONSOLE_BLOCKS names a block the docs no longer have"
    );
    for (name, block, runs) in blocks {
        match runs {
            Runs::QuickStart => {} // tests/quickstart.rs
            Runs::RecordedRollback => {
                let url = fake_api::serve(fake_api::ROLLED_BACK);
                run_block(&name, &block, &url, Path::new(env!("CARGO_MANIFEST_DIR")));
            }
            Runs::FreshExample => {
                let dir = tempfile::tempdir().unwrap();
                let port = common::free_port();
                let mut cmd = Command::new(common::BIN);
                cmd.args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--config",
                ])
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/canary-pilot.toml"))
                .current_dir(dir.path())
                .env_remove("CANARY_PILOT_ADMIN_TOKEN");
                let proc = common::Proc::spawn("serve", dir.path(), &mut cmd);
                let url = format!("http://127.0.0.1:{port}");
                let ready = format!("{url}/readyz");
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while !Command::new("curl")
                    .args(["-fs", &ready])
                    .output()
                    .is_ok_and(|o| o.status.success())
                {
                    assert!(std::time::Instant::now() < deadline, "{}", proc.log_text());
                    std::thread::sleep(Duration::from_millis(100));
                }
                run_block(&name, &block, &url, dir.path());
            }
        }
    }
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_400_bad_query_as_documented() {
    use tower::ServiceExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/api.md")).unwrap();
    assert!(doc.contains("| 400 | `bad_query` |") && doc.contains("?limit=abc"));
    let app = example_router();
    let req = axum::http::Request::builder()
        .uri("/api/v1/events?limit=abc")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "bad_query", "{v}");
}
