//! What must hold when things move or break: traffic during weight changes, a controller that
//! crashes and comes back, a state file that is corrupt.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{count, Options, Proc, Stack, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_under_concurrent_traffic_across_ten_weight_changes() {
    let stack = Arc::new(Stack::start(Options::default()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let canary = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    // 16 connections, each bounded in count and time.
    for _ in 0..16 {
        let (stack, stop, ok, failed, canary) = (
            stack.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            canary.clone(),
        );
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            for _ in 0..200_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                match stack.get(&[]).await {
                    Ok((200, v)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if v == "v2" {
                            canary.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok((status, v)) => {
                        eprintln!("failed request: {status} from {v}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("failed request: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let weights = [5u8, 10, 25, 50, 100, 75, 30, 0, 60, 0];
    for w in weights {
        stack.set_weight(w).await;
        stack.wait_applied(w as u64).await;
        let before = ok.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        eprintln!(
            "weight {w}: {} requests in 1.5 s",
            ok.load(Ordering::Relaxed) - before
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed, canary) = (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        canary.load(Ordering::Relaxed),
    );
    eprintln!("{ok} requests succeeded ({canary} on the canary), {failed} failed, across {} weight changes", weights.len());
    assert_eq!(failed, 0);
    assert!(ok > 1000, "too little traffic to show anything: {ok}");
    assert!(
        canary > 0 && canary < ok,
        "traffic should have reached both versions: {canary}/{ok}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_keeps_routing_when_the_controller_dies_and_a_restart_serves_the_same_weights() {
    let mut stack = Stack::start(Options::default()).await;
    stack.set_weight(30).await;
    stack.wait_applied(30).await;
    let before = stack.provider_bytes().await;
    let c = stack.versions(1000, &[]).await;
    assert!((270..=330).contains(&count(&c, "v2")), "{c:?}");

    stack.pilot.as_mut().unwrap().kill();
    // Several poll intervals with the provider gone: Traefik keeps its last good config.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let c = stack.versions(1000, &[]).await;
    assert!(
        (270..=330).contains(&count(&c, "v2")),
        "after the controller died: {c:?}"
    );
    assert_eq!(stack.applied_canary_weight().await, Some(30));

    stack.start_pilot().await;
    assert_eq!(
        stack.provider_bytes().await,
        before,
        "a restart must serve the same document"
    );
    let view = stack.get_json("/api/v1/apps/api").await;
    assert_eq!(view["weights"]["canary"], 30);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.applied_canary_weight().await, Some(30));
    let c = stack.versions(1000, &[]).await;
    assert!(
        (270..=330).contains(&count(&c, "v2")),
        "after the restart: {c:?}"
    );
}

fn write_config(dir: &std::path::Path, state: &std::path::Path) -> std::path::PathBuf {
    let port = common::free_port();
    let config = dir.join("canary-pilot.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_file = \"{}\"\n\n[apps.api]\nrule = \"Host(`a`)\"\nslots = {{ blue = [\"http://127.0.0.1:1\"], green = [\"http://127.0.0.1:2\"] }}\ninitial_stable = \"blue\"\n",
            state.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn corrupt_state_file_stops_start_up_with_a_clear_message_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let config = write_config(dir.path(), &state);
    let garbage = b"{\"format\":1,\"apps\":{\"api\":{\"stable_slot\":\"green\",\"canary_we";
    std::fs::write(&state, garbage).unwrap();
    let mut proc = Proc::spawn(
        "serve",
        dir.path(),
        Command::new(BIN).args(["serve", "--config"]).arg(&config),
    );
    let status = proc
        .wait_exit(Duration::from_secs(20))
        .expect("serve must exit by itself");
    assert_eq!(status.code(), Some(2), "{}", proc.log_text());
    let log = proc.log_text();
    assert!(log.contains("is corrupt"), "{log}");
    assert!(log.contains(&state.display().to_string()), "{log}");
    assert!(log.contains("move it away"), "{log}");
    assert_eq!(
        std::fs::read(&state).unwrap(),
        garbage,
        "the state file must not be touched"
    );
}

#[test]
fn state_file_naming_a_slot_the_config_lacks_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let config = write_config(dir.path(), &state);
    let text = r#"{"format":1,"apps":{"api":{"stable_slot":"red","canary_weight":20,"phase":"idle","generation":3,"updated_at_ms":1}}}"#;
    std::fs::write(&state, text).unwrap();
    let mut proc = Proc::spawn(
        "serve",
        dir.path(),
        Command::new(BIN).args(["serve", "--config"]).arg(&config),
    );
    let status = proc
        .wait_exit(Duration::from_secs(20))
        .expect("serve must exit by itself");
    assert_eq!(status.code(), Some(2));
    assert!(proc.log_text().contains("\"red\""), "{}", proc.log_text());
    assert_eq!(std::fs::read_to_string(&state).unwrap(), text);
}
