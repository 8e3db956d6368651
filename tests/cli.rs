//! The command line as a user meets it: exit codes, messages, output formats.

mod common;
mod fake_api;

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

/// Starts the CLI with its output captured, for a command that waits.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
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

/// The CLI without any token variable of the caller's environment.
fn bare(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("CANARY_PILOT_ADMIN_TOKEN")
        .env_remove("CANARY_PILOT_TOKEN")
        .env_remove("COLUMNS");
    cmd
}

#[test]
fn the_cli_reads_the_admin_token_from_the_servers_variable_a_file_or_the_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve_with(dir.path(), &[("CANARY_PILOT_ADMIN_TOKEN", "t0ken")]);
    let set = ["set-weight", "api", "5", "--server", url.as_str()];

    // The variable `serve` reads is the one the CLI reads.
    let out = bare(&set)
        .env("CANARY_PILOT_ADMIN_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The older name still works, as an alias.
    let out = bare(&set)
        .env("CANARY_PILOT_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let right = dir.path().join("right");
    std::fs::write(&right, "t0ken\n").unwrap();
    let file = [&set[..], &["--token-file", right.to_str().unwrap()]].concat();
    let out = bare(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let file = [&set[..], &["--token-file", wrong.to_str().unwrap()]].concat();
    let out = bare(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("403")
            && err.contains(&format!("the token from --token-file {}", wrong.display())),
        "{err}"
    );
    let out = bare(&set)
        .env("CANARY_PILOT_ADMIN_TOKEN", "nope")
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("the token from CANARY_PILOT_ADMIN_TOKEN is not"),
        "{}",
        text(&out.stderr)
    );
    // Reads stay open.
    assert_eq!(run(&["status", "--server", &url]).status.code(), Some(0));
}

#[test]
fn a_401_tells_how_to_give_the_cli_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve_with(dir.path(), &[("CANARY_PILOT_ADMIN_TOKEN", "t0ken")]);
    let out = bare(&["set-weight", "api", "5", "--server", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("401: unauthorized"), "{err}");
    assert!(
        err.contains("--token-file FILE") && err.contains("CANARY_PILOT_ADMIN_TOKEN"),
        "{err}"
    );
}

#[test]
fn output_json_is_a_global_flag_in_any_position() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve(dir.path());
    for args in [
        &["--output", "json", "status", "--server", &url][..],
        &["status", "--output", "json", "--server", &url],
        &["status", "--server", &url, "--output", "json"],
        &["--output", "json", "status", "api", "--server", &url],
        &["--output", "json", "events", "--server", &url],
        &[
            "--output",
            "json",
            "set-weight",
            "api",
            "0",
            "--server",
            &url,
        ],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out.stdout)));
        assert!(v.is_object(), "{args:?}: {v}");
    }
}

/// A server whose metrics source is never reachable: every analysis is inconclusive.
fn serve_without_metrics(dir: &Path) -> (Proc, String) {
    let port = common::free_port();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_file = \"{}\"\n\n[metrics]\ntraefik_urls = [\"http://127.0.0.1:{}/metrics\"]\ntimeout = \"200ms\"\n\n[apps.api]\nrule = \"Host(`a`)\"\nslots = {{ blue = [\"http://127.0.0.1:1\"], green = [\"http://127.0.0.1:2\"] }}\ninitial_stable = \"blue\"\n\n[apps.api.analysis]\ninterval = \"200ms\"\n",
            dir.join("state.json").display(),
            common::free_port(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"]).arg(&config);
    let proc = Proc::spawn("serve", dir, &mut cmd);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while run(&["status", "--server", &url]).status.code() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "{}", proc.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, url)
}

fn wait_for_phase(url: &str, phase: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&["status", "api", "--server", url, "--output", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["phase"] == phase {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "not {phase}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_finished_release_says_how_it_ended_not_the_verdict_of_its_last_window() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve_without_metrics(dir.path());
    // Promoted by hand: the one analysis at 100 % is inconclusive, and it succeeds anyway.
    run(&["start", "api", "--version", "v2", "--server", &url]);
    run(&["promote", "api", "--server", &url]);
    wait_for_phase(&url, "succeeded");
    let out = run(&["status", "--server", &url]);
    let line = text(&out.stdout);
    assert!(
        line.contains("succeeded") && line.contains("ended: release v2 promoted: it is now stable"),
        "{line}"
    );
    assert!(!line.contains("last: inconclusive"), "{line}");
    let out = run(&["status", "api", "--server", &url]);
    let detail = text(&out.stdout);
    let ended = detail.lines().nth(1).unwrap_or_default();
    assert!(
        ended.starts_with("  ended at ")
            && ended.ends_with(": release v2 promoted: it is now stable"),
        "{detail}"
    );
    assert!(
        !detail.lines().next().unwrap().contains("last:"),
        "{detail}"
    );

    run(&["start", "api", "--version", "v3", "--server", &url]);
    run(&[
        "abort",
        "api",
        "--reason",
        "p99 doubled on the dashboards",
        "--server",
        &url,
    ]);
    let out = run(&["status", "--server", &url]);
    let line = text(&out.stdout);
    assert!(
        line.contains("rolled_back") && line.contains("ended: p99 doubled on the dashboards"),
        "{line}"
    );
}

#[test]
fn status_fits_80_columns_when_columns_says_so() {
    let url = fake_api::serve(fake_api::ROLLED_BACK);
    for args in [&["status"][..], &["status", "api"], &["events", "api"]] {
        let out = bare(&[args, &["--server", &url]].concat())
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let shown = text(&out.stdout);
        for line in shown.lines() {
            assert!(
                line.chars().count() <= 80,
                "{args:?}: {} columns: {line:?}\n{shown}",
                line.chars().count()
            );
        }
        // Nothing is lost but what a line had to cut: every check and its reason is there.
        if args == ["events", "api"] {
            assert!(
                shown.contains("(P = 0.9968)") && shown.contains(" v3"),
                "{shown}"
            );
        }
        if args == ["status", "api"] {
            for needle in [
                "error_ratio",
                "critical",
                "latency_p99",
                "(P = 0.9968)",
                "canary <= 1.5x stable",
            ] {
                assert!(shown.contains(needle), "{needle:?} missing:\n{shown}");
            }
        }
    }
    // Piped without COLUMNS, a line is whole, as scripts expect.
    let out = bare(&["status", "--server", &url]).output().unwrap();
    let line = text(&out.stdout);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.chars().count() > 80, "{line}");
}

#[test]
fn status_watch_with_output_json_streams_one_json_line_per_change() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve(dir.path());
    let mut watch = Proc::spawn(
        "watch",
        dir.path(),
        Command::new(BIN).args([
            "status", "--watch", "--every", "100ms", "--output", "json", "--server", &url,
        ]),
    );
    std::thread::sleep(Duration::from_millis(600));
    run(&["set-weight", "api", "30", "--server", &url]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let log = watch.log_text();
        let lines: Vec<String> = log.lines().map(str::to_string).collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    watch.kill();
    let views: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect();
    assert_eq!(views[0]["name"], "api");
    assert_eq!(views[0]["weights"]["canary"], 0);
    assert_eq!(views[1]["weights"]["canary"], 30, "{}", lines[1]);
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

/// A tmux session of `columns` × `rows` running `cmd`; killed when dropped.
struct Tmux(String);

impl Tmux {
    fn start(name: &str, columns: u16, rows: u16, cmd: &str) -> Tmux {
        let out = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                &columns.to_string(),
                "-y",
                &rows.to_string(),
            ])
            .arg(cmd)
            .output()
            .expect("tmux is installed by scripts/setup.sh");
        assert!(out.status.success(), "{}", text(&out.stderr));
        Tmux(name.to_string())
    }

    /// The screen's rows; with `join`, rows that the terminal wrapped are joined again.
    fn screen(&self, join: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.0];
        if join {
            args.push("-J");
        }
        text(&Command::new("tmux").args(&args).output().unwrap().stdout)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn status_watch_fits_an_80_column_terminal_without_wrapping() {
    let url = fake_api::serve(fake_api::ROLLED_BACK);
    for (name, app) in [("list", ""), ("one", "api")] {
        let session = Tmux::start(
            &format!("cp-80-{name}-{}", std::process::id()),
            80,
            30,
            &format!("env -u COLUMNS {BIN} status {app} --watch --every 200ms --server {url}"),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let screen = loop {
            let screen = session.screen(false);
            if screen.contains("rolled_back") && (app.is_empty() || screen.contains("latency_p99"))
            {
                break screen;
            }
            assert!(std::time::Instant::now() < deadline, "{screen}");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(screen.contains("(Ctrl-C to stop)"), "{screen}");
        // Capturing with wrapped rows joined gives the same rows: nothing wrapped. (The title
        // is left out: its clock may have ticked between the two captures.)
        let below_title = |s: &str| s.trim_end().lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(
            below_title(&screen),
            below_title(&session.screen(true)),
            "a line wrapped at 80 columns"
        );
        assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");
        assert!(
            screen.contains("  stable=green (v2)  canary=blue (v3)  ended: error_ratio")
                || screen.contains("  stable=green (v2)  canary=blue (v3)\n"),
            "{screen}"
        );
        eprintln!(
            "--- status {app} --watch at 80 columns ---\n{}",
            screen.trim_end()
        );
    }
}

#[test]
fn status_watch_keeps_its_title_on_a_short_terminal() {
    let url = fake_api::serve(fake_api::ROLLED_BACK);
    let session = Tmux::start(
        &format!("cp-short-{}", std::process::id()),
        80,
        10,
        &format!("env -u COLUMNS {BIN} status api --watch --every 200ms --server {url}"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let screen = loop {
        let screen = session.screen(false);
        if screen.contains("more lines") {
            break screen;
        }
        assert!(std::time::Instant::now() < deadline, "{screen}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        screen.starts_with("canary-pilot "),
        "the title scrolled away:\n{screen}"
    );
    assert!(screen.lines().count() <= 10, "{screen}");
}

#[test]
fn wait_exits_0_on_promotion_1_on_rollback_and_3_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve_without_metrics(dir.path());
    let out = run(&["wait", "api", "--server", &url]);
    assert_eq!(out.status.code(), Some(1), "idle: nothing to wait for");
    assert!(
        text(&out.stderr).contains("no release of api"),
        "{}",
        text(&out.stderr)
    );

    // Without metrics the release holds: the timeout ends the wait, with code 3.
    run(&["start", "api", "--version", "v2", "--server", &url]);
    let out = run(&[
        "wait",
        "api",
        "--timeout",
        "1s",
        "--every",
        "200ms",
        "--server",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("release v2 of api still progressing after 1s"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("progressing"),
        "a progress line: {}",
        text(&out.stdout)
    );

    // Promoted while waiting: the wait ends with 0, having shown each move.
    let waiting = spawn(&[
        "wait",
        "api",
        "--every",
        "100ms",
        "--timeout",
        "30s",
        "--server",
        &url,
    ]);
    std::thread::sleep(Duration::from_millis(500));
    run(&["promote", "api", "--server", &url]);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert!(
        lines.contains("progressing") && lines.contains("succeeded"),
        "{lines}"
    );

    run(&["start", "api", "--version", "v3", "--server", &url]);
    run(&["abort", "api", "--reason", "bad p99", "--server", &url]);
    let out = run(&["wait", "api", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("release v3 of api was rolled back: bad p99"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_with_a_docker_socket_that_is_missing_or_refuses_stops_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = dir.path().join("refusing.sock");
    let listener = std::os::unix::net::UnixListener::bind(&refusing).unwrap();
    // Accepts and hangs up at once: not an engine.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let missing = dir.path().join("missing.sock");
    for socket in [&missing, &refusing] {
        let config = dir.path().join("swarm.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nstate_file = \"{}\"\n\n[swarm]\nsocket = \"{}\"\nnetwork = \"shop_net\"\n\n[apps.api]\nrule = \"Host(`a`)\"\ninitial_stable = \"blue\"\nslots = {{ blue = {{ service = \"shop_blue\", port = 8080 }}, green = [\"http://127.0.0.1:1\"] }}\n",
                dir.path().join("state.json").display(),
                socket.display()
            ),
        )
        .unwrap();
        let out = run(&["serve", "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "cannot reach the Docker engine at {}",
                socket.display()
            )),
            "{err}"
        );
        assert!(err.contains("mount the engine's socket"), "{err}");
        assert!(
            !dir.path().join("state.json").exists(),
            "nothing was served or written before the engine answered"
        );
    }
}

#[test]
fn wait_for_a_version_waits_through_other_releases_and_deploy_needs_a_managed_app() {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, url) = serve_without_metrics(dir.path());
    run(&["start", "api", "--version", "v2", "--server", &url]);
    run(&["promote", "api", "--server", &url]);
    wait_for_phase(&url, "succeeded");
    // v2 ended; a wait for v3 goes on until v3's own release ends.
    let waiting = spawn(&[
        "wait",
        "api",
        "--version",
        "v3",
        "--every",
        "100ms",
        "--timeout",
        "30s",
        "--server",
        &url,
    ]);
    std::thread::sleep(Duration::from_millis(600));
    run(&["start", "api", "--version", "v3", "--server", &url]);
    std::thread::sleep(Duration::from_millis(300));
    run(&["abort", "api", "--reason", "bad p99", "--server", &url]);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("release v3 of api was rolled back: bad p99"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "wait",
        "api",
        "--version",
        "v2",
        "--timeout",
        "1s",
        "--server",
        &url,
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "v2 is not the release there now: {}",
        text(&out.stderr)
    );

    // deploy: only for an app whose config names its Swarm service.
    let out = run(&["deploy", "api", "--image", "shop/api:v4", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("409") && err.contains("is not a Swarm-managed app"),
        "{err}"
    );
    let out = run(&["deploy", "api", "--image", "shop api", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("is not a Swarm-managed app"),
        "an unmanaged app is refused first: {err}"
    );
}
