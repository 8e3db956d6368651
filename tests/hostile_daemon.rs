//! The daemon against what a hostile or careless environment does to it: sockets that never
//! finish, more of them than it serves, too few file descriptors, a config file emptied before a
//! SIGHUP, a SIGHUP while the state loads. Real processes: canary-pilot and, where it says so, a
//! real Traefik polling it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Opens `n` connections to `port` that never send a byte.
fn silent_connections(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect()
}

/// A config for one app whose slots nothing serves, listening on `port`.
fn lone_config(dir: &std::path::Path, port: u16, state: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("canary-pilot.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_file = \"{}\"\n\n\
             [apps.api]\nrule = \"Host(`{HOST}`)\"\nentry_points = [\"web\"]\n\
             slots = {{ blue = [\"http://127.0.0.1:1\"], green = [\"http://127.0.0.1:2\"] }}\n\
             initial_stable = \"blue\"\n",
            state.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_keeps_polling_under_a_slowloris_beyond_the_connection_limit() {
    let stack = Stack::start(Options::default()).await;
    // More silent sockets than the daemon serves at once (512 by default).
    let port = stack.pilot_port;
    let held = tokio::task::spawn_blocking(move || silent_connections(port, 600))
        .await
        .unwrap();
    assert!(held.len() >= 550, "opened {}", held.len());
    // A weight change still reaches Traefik through its poll, and the API still answers.
    stack.set_weight(30).await;
    stack.wait_applied(30).await;
    let ready = stack
        .http
        .get(stack.pilot_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_few_file_descriptors_silent_sockets_neither_lock_clients_out_nor_stop_state_writes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let state = dir.path().join("state.json");
    let config = lone_config(dir.path(), port, &state);
    // 64 descriptors: the daemon serves 32 connections at once and keeps the rest for itself.
    let _pilot = Proc::spawn(
        "canary-pilot",
        dir.path(),
        Command::new("sh").arg("-c").arg(format!(
            "ulimit -n 64 && exec '{BIN}' serve --config '{}'",
            config.display()
        )),
    );
    let http = client();
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(
        &http,
        "ready",
        format!("{base}/readyz"),
        Duration::from_secs(20),
    )
    .await;
    let held = tokio::task::spawn_blocking(move || silent_connections(port, 100))
        .await
        .unwrap();
    for _ in 0..5 {
        let doc = http.get(format!("{base}/traefik")).send().await.unwrap();
        assert_eq!(doc.status(), 200);
        assert!(doc.text().await.unwrap().contains("api-canary"));
    }
    let resp = http
        .put(format!("{base}/api/v1/apps/api/weight"))
        .json(&serde_json::json!({"weight": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a state write needs a descriptor too");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_config_file_and_a_sighup_keep_every_route() {
    let stack = Stack::start(Options::default()).await;
    let before = stack.provider_bytes().await;
    // What an editor that truncates before it writes leaves, then a HUP.
    std::fs::write(&stack.config_path, "").unwrap();
    let pid = stack.pilot.as_ref().unwrap().pid();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let log = eventually("the reload refused", Duration::from_secs(10), || async {
        let text = stack.pilot.as_ref().unwrap().log_text();
        text.contains("config not reloaded").then_some(text)
    })
    .await;
    assert!(log.contains("has no apps"), "{log}");
    assert_eq!(
        stack.provider_bytes().await,
        before,
        "Traefik keeps every route"
    );
    let (status, _) = stack.get(&[]).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_while_the_state_loads_does_not_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A named pipe as the state file: loading blocks until something writes it.
    let state = dir.path().join("state.json");
    assert!(Command::new("mkfifo")
        .arg(&state)
        .status()
        .unwrap()
        .success());
    let config = lone_config(dir.path(), port, &state);
    let mut pilot = Proc::spawn(
        "canary-pilot",
        dir.path(),
        Command::new(BIN).args(["serve", "--config"]).arg(&config),
    );
    eventually("loading", Duration::from_secs(10), || async {
        pilot.log_text().contains("loading state").then_some(())
    })
    .await;
    assert!(Command::new("kill")
        .args(["-HUP", &pilot.pid().to_string()])
        .status()
        .unwrap()
        .success());
    eventually("the HUP logged", Duration::from_secs(10), || async {
        pilot
            .log_text()
            .contains("SIGHUP while the state is loading")
            .then_some(())
    })
    .await;
    // Now let the load finish: a state with no app yet.
    std::fs::write(&state, r#"{"format": 1, "apps": {}, "events": []}"#).unwrap();
    let http = client();
    wait_ok(
        &http,
        "ready after the HUP",
        format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(20),
    )
    .await;
    assert!(
        pilot.wait_exit(Duration::from_millis(100)).is_none(),
        "still running"
    );
}
