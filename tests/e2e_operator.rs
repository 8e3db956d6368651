//! The operator's surface end to end: Slack and generic notifications from a real rollout,
//! receivers that fail or hang, a confirm-promotion gate, hooks, our own /metrics, and
//! `status --watch` in a terminal.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{Options, Receiver, Stack, Traffic};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

/// Latency is not the subject here: on a loaded machine p99s are noisy, so it gets room.
const ANALYSIS: &str = "interval = \"1s\"\nsteps = [20, 50, 100]\nmin_requests = 50\nerror_ratio_tolerance = 0.05\nfailure_limit = 2\nlatency_tolerance = \"100ms\"\n";

fn kinds(events: &[common::Received], field: &str) -> Vec<String> {
    events
        .iter()
        .map(|r| {
            r.body
                .pointer(field)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_generic_notifications_follow_a_release_and_a_rollback() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hmac");
    std::fs::write(&secret, "s3cret-key\n").unwrap();
    let extra = format!(
        "[[notifiers]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{0}/slack\"\n\n[[notifiers]]\nname = \"audit\"\nkind = \"generic\"\nurl = \"{0}/generic\"\nsecret_file = \"{1}\"\nevents = [\"started\", \"promoted\", \"rolled_back\"]\ntemplate = \"{{app}} {{kind}} {{version}}\"\n",
        rx.base,
        secret.display()
    );
    let stack = Arc::new(
        Stack::start(Options {
            analysis: ANALYSIS,
            extra,
            ..Options::default()
        })
        .await,
    );
    let traffic = Traffic::start(&stack, 8, 150.0, Duration::from_secs(240));
    stack.action("start", json!({"version": "v2"})).await;
    stack
        .wait_phase("succeeded", Duration::from_secs(150))
        .await;
    // Once Traefik routes by the swapped roles, the idle blue slot gets a release that fails
    // every request.
    stack.wait_applied(0).await;
    stack.control("blue", json!({"error_rate": 1.0})).await;
    stack.action("start", json!({"version": "v3"})).await;
    stack
        .wait_phase("rolled_back", Duration::from_secs(90))
        .await;
    traffic.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let slack = rx.on("/slack");
    let slack_kinds: Vec<String> = slack
        .iter()
        .map(|r| r.headers["x-canary-pilot-event"].clone())
        .collect();
    assert_eq!(
        slack_kinds,
        [
            "started",
            "advanced",
            "promoting",
            "promoted",
            "started",
            "rolled_back"
        ],
        "{slack:#?}"
    );
    for r in &slack {
        // What Slack's incoming webhooks accept: a JSON object with text and attachments.
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(
            r.body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("api: ")),
            "{}",
            r.body
        );
        let a = &r.body["attachments"][0];
        assert!(a["color"].as_str().unwrap().starts_with('#'));
        assert!(a["title"].is_string() && a["text"].is_string() && a["fields"].is_array());
    }
    assert_eq!(
        slack.last().unwrap().body["attachments"][0]["color"],
        "#a30200",
        "rollback is red"
    );
    assert_eq!(
        slack[3].body["attachments"][0]["color"], "#2eb886",
        "promotion is green"
    );

    let generic = rx.on("/generic");
    assert_eq!(
        kinds(&generic, "/kind"),
        ["started", "promoted", "started", "rolled_back"]
    );
    for r in &generic {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"s3cret-key").unwrap();
        mac.update(&r.raw);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            r.headers["x-canary-pilot-signature"],
            format!("sha256={expected}")
        );
    }
    assert_eq!(generic[0].body["message"], "api started v2");

    // Our own metrics saw it all.
    let m = stack.metrics_text().await;
    for line in [
        "canary_pilot_events_total{app=\"api\",kind=\"promoted\"} 1",
        "canary_pilot_events_total{app=\"api\",kind=\"rolled_back\"} 1",
        "canary_pilot_notifications_total{notifier=\"slack\",result=\"delivered\"} 6",
        "canary_pilot_notifications_total{notifier=\"audit\",result=\"delivered\"} 4",
        "canary_pilot_app_phase{app=\"api\",phase=\"rolled_back\"} 1",
        "canary_pilot_canary_weight{app=\"api\"} 0",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
    assert!(m.contains("canary_pilot_analysis_verdicts_total{app=\"api\",check=\"overall\",verdict=\"critical\"}"), "{m}");
    assert!(
        m.contains(
            "canary_pilot_analysis_value{app=\"api\",check=\"error_ratio\",side=\"canary\"} 1.0\n"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_hanging_receivers_do_not_slow_the_rollout_and_are_visible() {
    let rx = Receiver::start().await;
    let extra = format!(
        "[[notifiers]]\nname = \"down\"\nkind = \"slack\"\nurl = \"{0}/fail/slack\"\nretries = 2\ntimeout = \"1s\"\n\n[[notifiers]]\nname = \"stuck\"\nkind = \"generic\"\nurl = \"{0}/hang/generic\"\nretries = 3\ntimeout = \"5s\"\n\n[apps.api.hooks]\npre_rollout = \"{0}/fail/pre\"\npost_rollout = \"{0}/hang/post\"\ntimeout = \"1s\"\n",
        rx.base
    );
    let stack = Arc::new(
        Stack::start(Options {
            analysis: ANALYSIS,
            extra,
            ..Options::default()
        })
        .await,
    );
    let traffic = Traffic::start(&stack, 8, 150.0, Duration::from_secs(240));
    stack.action("start", json!({"version": "v2"})).await;
    let done = stack
        .wait_phase("succeeded", Duration::from_secs(150))
        .await;
    traffic.stop().await;

    // Analyses kept their rhythm (1 s) while every delivery failed or hung for seconds.
    let times: Vec<u64> = done["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["time_ms"].as_u64().unwrap())
        .collect();
    for pair in times.windows(2) {
        let gap = pair[0] - pair[1];
        assert!(
            gap <= 2500,
            "analyses {gap} ms apart: the loop was held up: {times:?}"
        );
    }
    // The failed pre-rollout hook is an event of its own, and notified.
    let events = stack.get_json("/api/v1/events").await;
    let failed: Vec<&serde_json::Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "hook_failed")
        .collect();
    assert!(!failed.is_empty(), "{events}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("pre_rollout hook"),
        "{}",
        failed[0]
    );
    // Retries and failures are counted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = stack.metrics_text().await;
    assert!(
        m.contains("canary_pilot_notifications_total{notifier=\"down\",result=\"retried\"}"),
        "{m}"
    );
    assert!(
        m.contains("canary_pilot_notifications_total{notifier=\"down\",result=\"failed\"}"),
        "{m}"
    );
    assert!(
        m.contains(
            "canary_pilot_notifications_total{notifier=\"hook:pre_rollout\",result=\"failed\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("canary_pilot_events_total{app=\"api\",kind=\"hook_failed\"} 1"),
        "{m}"
    );
    let attempts = rx.on("/fail/slack").len();
    assert!(
        attempts >= 3,
        "each notification is tried 1 + retries times: {attempts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_confirm_promotion_gate_holds_the_last_step_and_opening_it_promotes() {
    let rx = Receiver::start().await;
    let extra = format!(
        "[apps.api.hooks]\nconfirm_promotion = \"{}/gate/promote\"\ntimeout = \"1s\"\n",
        rx.base
    );
    let stack = Arc::new(
        Stack::start(Options {
            analysis: ANALYSIS,
            extra,
            ..Options::default()
        })
        .await,
    );
    let traffic = Traffic::start(&stack, 8, 150.0, Duration::from_secs(240));
    stack.action("start", json!({"version": "v2"})).await;
    // Bounding the p99 share to 0.1 point takes about 3,000 canary requests: some 45 s at this
    // rate on an idle machine, more beside the rest of the suite.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while rx.on("/gate/promote").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gate was never asked: {}",
            stack.app().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Closed: held at the last step (50 %) for several more intervals.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let v = stack.app().await;
    assert_eq!(
        (v["phase"].as_str(), v["weights"]["canary"].as_u64()),
        (Some("progressing"), Some(50)),
        "{v}"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("confirm-promotion gate"),
        "{}",
        v["reason"]
    );
    let asked = rx.on("/gate/promote");
    assert!(asked.len() >= 3, "asked again every tick: {}", asked.len());
    assert_eq!(asked[0].body["gate"], "confirm_promotion");
    assert_eq!(asked[0].body["version"], "v2");

    rx.gate_open.store(true, Ordering::SeqCst);
    let done = stack.wait_phase("succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["stable"]["version"], "v2");
    traffic.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_renders_a_live_view_in_a_terminal() {
    let stack = Stack::start(Options {
        analysis: ANALYSIS,
        ..Options::default()
    })
    .await;
    stack.action("start", json!({"version": "v2"})).await;
    let session = format!("cp-watch-{}", stack.pilot_port);
    let cmd = format!(
        "{} status --watch --every 200ms --server {}",
        common::BIN,
        stack.pilot_url("")
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux is installed by scripts/setup.sh")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "200",
        "-y",
        "20",
        &cmd,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .output();
        }
    }
    let _kill = Kill(session.clone());
    let mut screen = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout)
            .into_owned();
        if screen.contains("progressing") {
            break;
        }
    }
    assert!(screen.contains("canary-pilot status"), "{screen}");
    assert!(screen.contains("(Ctrl-C to stop)"), "{screen}");
    assert!(
        screen.contains("api") && screen.contains("progressing"),
        "{screen}"
    );
    assert!(
        screen.contains("[####................] canary  20%"),
        "{screen}"
    );
    // It is live: a change shows up on the same screen.
    stack.action("pause", json!({"reason": "watching"})).await;
    let mut updated = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout)
            .into_owned();
        if s.contains("paused") {
            updated = true;
            break;
        }
    }
    assert!(updated, "the view did not follow the pause");
}
