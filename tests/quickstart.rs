//! The README's quick start, run as the README writes it: its shell block (read from README.md,
//! so the two cannot drift) starts the demo backends, canary-pilot with
//! `examples/canary-pilot.toml` and a real Traefik with `traefik/traefik-local.yml`, and every
//! command of the console block that follows must print what the README shows — which is that
//! Traefik routes the app to its stable slot and the pin header to the idle one.
//!
//! Also what a new user meets next, the demo: its config catches a fivefold latency regression.
//!
//! The quick start uses its fixed, documented ports (8080-8082, 8091, 8092, 9000); the test
//! fails at once, naming the port, if one is taken.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The README's section `## Running it`, up to the next section.
fn quick_start() -> String {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme
        .find("\n## Running it\n")
        .expect("README.md has a section `## Running it`");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// What the harness does instead of a line of the shell block: `scripts/setup.sh` and the
/// build already happened (the test's binary, `TRAEFIK_BIN` or the installed Traefik).
fn as_run_here(line: &str, bin_dir: &Path, traefik: &Path) -> Option<String> {
    let command = line.split(" #").next().unwrap().trim();
    if command.starts_with("scripts/setup.sh") || command.starts_with("cargo build") {
        return None;
    }
    Some(
        line.replace("$PWD/target/release", &bin_dir.display().to_string())
            .replace(".tools/venv/bin/traefik", &traefik.display().to_string()),
    )
}

/// The shell running the quick start's block, in a process group of its own: dropping it ends
/// the group (the shell and what it started in the background), by its id.
struct Group {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, "--", &group]).status();
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- the quick start's output ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn the_readme_quick_start_runs_as_written_and_routes_the_app() {
    let section = quick_start();
    let shell = common::markdown::blocks(&section, "sh");
    assert_eq!(shell.len(), 1, "one shell block in the quick start");
    let console = common::markdown::blocks(&section, "console");
    assert_eq!(console.len(), 1, "one console block in the quick start");
    for port in [8080, 8081, 8082, 8091, 8092, 9000] {
        assert!(
            port_is_free(port),
            "port {port}, which the quick start uses, is taken"
        );
    }

    // A fresh directory, as a fresh clone: only the files the quick start reads.
    let dir = tempfile::tempdir().unwrap();
    for name in ["examples", "traefik"] {
        std::os::unix::fs::symlink(Path::new(ROOT).join(name), dir.path().join(name)).unwrap();
    }
    let bin_dir = Path::new(common::BIN).parent().unwrap().to_path_buf();
    let traefik = common::traefik_bin();
    let lines: Vec<String> = shell[0]
        .iter()
        .filter_map(|l| as_run_here(l, &bin_dir, &traefik))
        .collect();
    let script = format!("set -e\n{}\nwait\n", lines.join("\n"));
    let log = dir.path().join("quickstart.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env_remove("COLUMNS")
        .env_remove("CANARY_PILOT_SERVER")
        .env_remove("CANARY_PILOT_ADMIN_TOKEN")
        .env_remove("CANARY_PILOT_TOKEN")
        .env_remove("CANARY_PILOT_CONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("run bash");
    let _group = Group { child, log };

    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (cmd, expected) in common::markdown::commands(&console[0]) {
        // A command as typed at the prompt of an 80-column terminal, as every console block of
        // the docs is shown, once Traefik has had the time to converge.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = Command::new("bash")
                .args(["-c", &cmd])
                .current_dir(dir.path())
                .env("PATH", &path)
                .env("COLUMNS", "80")
                .env_remove("CANARY_PILOT_SERVER")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&got.stdout);
            let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
            let wanted: Vec<&str> = expected.iter().map(|l| l.trim_end()).collect();
            if lines == wanted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`{cmd}` printed\n{text}{}\nand the README shows\n{}",
                String::from_utf8_lossy(&got.stderr),
                expected.join("\n")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    assert!(
        dir.path().join("canary-pilot-state.json").exists(),
        "the state file is where the example config says"
    );
}

/// The demo's config (`traefik/demo/canary-pilot.toml.in`) with its placeholders filled in.
fn demo_config() -> canary_pilot::config::Config {
    let template =
        std::fs::read_to_string(Path::new(ROOT).join("traefik/demo/canary-pilot.toml.in")).unwrap();
    let mut text = template.replace("@STATE@", "/tmp/demo-state.json");
    for (name, port) in [("PILOT", 1), ("METRICS", 2), ("BLUE", 3), ("GREEN", 4)] {
        text = text.replace(&format!("@{name}@"), &port.to_string());
    }
    canary_pilot::config::Config::parse(&text, &canary_pilot::config::NoSecrets)
        .expect("the demo config is valid")
}

/// One side of a window: `n` requests, all answered within the bucket whose upper bound is
/// `le` (the buckets of traefik/demo/traefik.yml.in).
fn side(n: f64, le: f64) -> canary_pilot::analysis::SideSample {
    let mut s = canary_pilot::analysis::SideSample {
        requests: n,
        ..Default::default()
    };
    for bound in [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.5, f64::INFINITY] {
        s.latency
            .add_bucket(bound, if bound >= le { n } else { 0.0 });
    }
    s
}

#[test]
fn the_demo_config_catches_a_fivefold_latency_regression() {
    use canary_pilot::analysis::{judge, Verdict};
    let config = demo_config();
    let analysis = &config.apps["api"].analysis;
    // The demo's backends answer in 5 ms: stable's p99 reads ~10 ms. Five times slower, the
    // canary's reads ~50 ms, which a 50 ms tolerance let pass.
    let verdict = |canary_le: f64| {
        let a = judge(&side(500.0, canary_le), &side(500.0, 0.01), analysis);
        let c = a
            .checks
            .iter()
            .find(|c| c.check.starts_with("latency_"))
            .unwrap()
            .clone();
        (c.verdict, c.reason)
    };
    let (slow, why) = verdict(0.05);
    assert_eq!(slow, Verdict::Fail, "{why}");
    assert!(why.contains("49.8ms") && why.contains("10.0ms"), "{why}");
    // The same latency as stable passes, and so does one bucket of jitter.
    assert_eq!(verdict(0.01).0, Verdict::Pass);
    assert_eq!(verdict(0.025).0, Verdict::Pass, "{}", verdict(0.025).1);
}

/// The addresses `traefik/traefik-local.yml` binds (its entry points) and polls (the provider).
fn traefik_local() -> (Vec<String>, String) {
    let text = std::fs::read_to_string(Path::new(ROOT).join("traefik/traefik-local.yml")).unwrap();
    let value = |l: &str, key: &str| {
        l.trim()
            .strip_prefix(key)
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let addresses = text.lines().filter_map(|l| value(l, "address:")).collect();
    let endpoint = text
        .lines()
        .find_map(|l| value(l, "endpoint:"))
        .expect("a provider endpoint");
    (addresses, endpoint)
}

/// Guards the quick start's first failure: the example's slots on Traefik's own API and
/// metrics ports, `traefik_urls` naming a slot, a state file in a directory that does not exist.
#[test]
fn the_example_config_fits_beside_traefik_local_without_a_port_in_common() {
    let src = std::fs::read_to_string(Path::new(ROOT).join("examples/canary-pilot.toml")).unwrap();
    let config = canary_pilot::config::Config::parse(&src, &canary_pilot::config::NoSecrets)
        .expect("the example is valid");
    let (traefik, endpoint) = traefik_local();
    assert_eq!(
        endpoint,
        format!("http://{}/traefik", config.server.listen),
        "Traefik polls where the example listens"
    );
    let metrics = traefik.last().unwrap();
    let scraped: Vec<String> = config
        .metrics
        .traefik_urls
        .iter()
        .map(|u| format!("{}:{}", u.host_str().unwrap(), u.port().unwrap()))
        .collect();
    assert_eq!(
        scraped,
        std::slice::from_ref(metrics),
        "traefik_urls is Traefik's metrics entry point"
    );
    assert!(traefik.iter().any(|a| a.ends_with(":8082")) && metrics.ends_with(":8082"));
    for app in config.apps.values() {
        for url in app.slots.values().flatten() {
            let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
            assert!(
                !traefik.contains(&addr) && addr != config.server.listen.to_string(),
                "the slot {addr} of {} is an address Traefik or canary-pilot binds",
                app.name
            );
        }
    }
    let state = &config.server.state_file;
    let dir = state.parent().filter(|p| !p.as_os_str().is_empty());
    assert!(
        dir.is_none(),
        "the example's state file {} must not need a directory that a fresh machine lacks",
        state.display()
    );
}
