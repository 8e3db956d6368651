//! The command line as a user meets it: exit codes, messages, output formats.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Proc, BIN};

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run canary-pilot")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/canary-pilot.toml");

#[test]
fn check_prints_the_traefik_config_for_the_example() {
    let out = run(&["check", "--config", EXAMPLE, "--state", "none"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON document");
    assert_eq!(
        doc["http"]["services"]["api"]["weighted"]["services"][0]["weight"],
        100
    );
    assert_eq!(
        doc["http"]["routers"]["api-canary-header"]["service"],
        "api-canary"
    );
}

#[test]
fn check_reports_every_error_with_lines_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"nowhere\"\n\n[apps.api]\nrule = \"Host(`a`)\"\nslots = { blue = [\"http://a:1\"], green = [\"http://b:1\"] }\ninitial_stable = \"red\"\n\n[apps.api.analysis]\nsteps = [5, 120]\n",
    )
    .unwrap();
    let out = run(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("has 3 errors"), "{err}");
    assert!(err.contains("line 2: server.listen"), "{err}");
    assert!(err.contains("line 7: apps.api.initial_stable"), "{err}");
    assert!(
        err.contains("line 10: apps.api.analysis.steps[1]: = 120: weights must be 1..=100"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is rendered from a bad config"
    );

    let out = run(&["check", "--config", "/nonexistent/canary.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/canary.toml"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["set-weight", "api"]).status.code(), Some(2));
    let out = run(&[
        "demo-backend",
        "--listen",
        "127.0.0.1:1",
        "--version",
        "v",
        "--error-rate",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--error-rate 2 must be within 0..=1"));
}

fn serve(dir: &Path) -> (Proc, String) {
    serve_with(dir, &[])
}

fn serve_with(dir: &Path, env: &[(&str, &str)]) -> (Proc, String) {
    let port = common::free_port();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_file = \"{}\"\n\n[apps.api]\nrule = \"Host(`a`)\"\nslots = {{ blue = [\"http://127.0.0.1:1\"], green = [\"http://127.0.0.1:2\"] }}\ninitial_stable = \"blue\"\n",
            dir.join("state.json").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"]).arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = Proc::spawn("serve", dir, &mut cmd);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while run(&["status", "--server", &url]).status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up: {}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, url)
}

#[test]
fn set_weight_and_status_talk_to_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve(dir.path());

    let out = run(&["set-weight", "api", "40", "--server", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains("api")
            && line.contains("canary  40%")
            && line.contains("[########............]"),
        "{line}"
    );

    let out = run(&["status", "api", "--server", &url, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["weights"]["canary"], 40);
    assert_eq!(v["stable"]["slot"], "blue");

    let out = run(&["status", "--server", &url, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apps"][0]["name"], "api");

    let out = run(&["set-weight", "api", "101", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("weight 101 is outside 0..=100"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["status", "nope", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no app named \"nope\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unreachable_server_is_a_clear_failure() {
    let port = common::free_port();
    let out = run(&["status", "--server", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach canary-pilot") && err.contains("--server"),
        "{err}"
    );
}

#[test]
fn mutating_commands_send_the_token_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve_with(dir.path(), &[("CANARY_PILOT_ADMIN_TOKEN", "t0ken")]);
    let no_token = Command::new(BIN)
        .args(["set-weight", "api", "5", "--server", &url])
        .env_remove("CANARY_PILOT_TOKEN")
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(1));
    assert!(
        text(&no_token.stderr).contains("401"),
        "{}",
        text(&no_token.stderr)
    );

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let out = run(&[
        "set-weight",
        "api",
        "5",
        "--server",
        &url,
        "--token-file",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));

    let right = Command::new(BIN)
        .args(["set-weight", "api", "5", "--server", &url])
        .env("CANARY_PILOT_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert_eq!(right.status.code(), Some(0), "{}", text(&right.stderr));
    // Reads stay open.
    assert_eq!(run(&["status", "--server", &url]).status.code(), Some(0));
}

/// Waits until something listens on `port`, for at most 20 s.
fn wait_listening(port: u16, proc: &Proc) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}: {}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_against_a_server_that_is_not_canary_pilot_fails_naming_the_url() {
    // A demo backend answers every path with 200 and JSON of its own: `start` used to print
    // `? ? [....] stable=? canary=?` and exit 0.
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["demo-backend", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--version", "v1"]);
    let backend = Proc::spawn("backend", dir.path(), &mut cmd);
    wait_listening(port, &backend);
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&["start", "api", "--version", "v2", "--server", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "error: {url}/api/v1/apps/api/start did not answer as canary-pilot's API: "
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    for args in [&["status"][..], &["events", "api"], &["status", "api"]] {
        let out = run(&[args, &["--server", &url]].concat());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stderr).contains("did not answer as canary-pilot's API"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn an_html_answer_is_not_taken_for_canary_pilots() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request);
        let body = "<html><body><h1>404 Not Found</h1></body></html>";
        let _ = write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let out = run(&["set-weight", "api", "10", "--server", &url]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{url}/api/v1/apps/api/weight did not answer as canary-pilot's API: HTTP 404 Not Found"
        )) && err.contains("<html>"),
        "{err}"
    );
}
