//! Faults with real processes: config reload (SIGHUP and the API), crashes at random points of
//! real releases, a state directory that cannot be written, and a metrics source that is down,
//! answers garbage or hangs.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Options, Receiver, Stack, Traffic};
use serde_json::{json, Value};

fn sighup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn reload(stack: &Stack, force: bool) -> (u16, Value) {
    let resp = stack
        .http
        .post(stack.pilot_url("/api/v1/reload"))
        .json(&json!({ "force": force }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_applies_a_good_file_and_refuses_a_bad_one_without_losing_anything() {
    let stack = Stack::start(Options::default()).await;
    let original = std::fs::read_to_string(&stack.config_path).unwrap();

    // A new backend replaces green's server, and a second app appears: SIGHUP applies both.
    let new_port = common::free_port();
    let _v9 = common::Proc::spawn(
        "v9",
        stack.dir.path(),
        Command::new(common::BIN).args([
            "demo-backend",
            "--listen",
            &format!("127.0.0.1:{new_port}"),
            "--version",
            "v9",
        ]),
    );
    let changed = original.replace(&format!("127.0.0.1:{}\"]", stack.green_port), &format!("127.0.0.1:{new_port}\"]"))
        + "\n[apps.shop]\nrule = \"Host(`shop.localhost`)\"\nslots = { a = [\"http://127.0.0.1:1\"], b = [\"http://127.0.0.1:2\"] }\ninitial_stable = \"a\"\n";
    std::fs::write(&stack.config_path, &changed).unwrap();
    sighup(stack.pilot.as_ref().unwrap().pid());
    let http = stack.http.clone();
    let url = stack.pilot_url("/api/v1/apps/shop");
    common::eventually(
        "SIGHUP applied the new app",
        Duration::from_secs(10),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        },
    )
    .await;
    stack.set_weight(100).await;
    stack.wait_applied(100).await;
    let c = stack.versions(20, &[]).await;
    assert_eq!(
        common::count(&c, "v9"),
        20,
        "Traefik routes to the reloaded server: {c:?}"
    );

    // A file with errors: refused through the API with every error, and through SIGHUP with a
    // log line; the running config stays, byte for byte.
    let before = stack.provider_bytes().await;
    let broken = changed
        .replace(
            "initial_stable = \"a\"",
            "initial_stable = \"a\"\nbogus = 1",
        )
        .replace(
            "[apps.api.analysis]\n",
            "[apps.api.analysis]\nsteps = [120]\n",
        );
    std::fs::write(&stack.config_path, broken).unwrap();
    let (status, v) = reload(&stack, false).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("invalid_config")),
        "{v}"
    );
    let issues = v["detail"].as_array().unwrap();
    assert!(
        issues
            .iter()
            .any(|i| i.as_str().unwrap().contains("apps.shop.bogus")),
        "{v}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.as_str().unwrap().contains("apps.api.analysis.steps[0]")),
        "{v}"
    );
    sighup(stack.pilot.as_ref().unwrap().pid());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stack
        .pilot
        .as_ref()
        .unwrap()
        .log_text()
        .contains("SIGHUP: config not reloaded"));
    assert_eq!(stack.provider_bytes().await, before);

    // Removing an app whose release is under way needs force.
    std::fs::write(&stack.config_path, &changed).unwrap();
    let (s, _) = reload(&stack, false).await;
    assert_eq!(s, 200);
    let r = stack
        .http
        .post(stack.pilot_url("/api/v1/apps/shop/start"))
        .json(&json!({"version": "s2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::write(&stack.config_path, &original).unwrap();
    let (status, v) = reload(&stack, false).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("\"shop\", whose release is progressing"),
        "{v}"
    );
    let (status, v) = reload(&stack, true).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["report"]["removed"], json!(["shop"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_twenty_random_points_it_resumes_loses_no_event_and_serves_no_partial_config() {
    let opts = Options {
        analysis: "interval = \"1s\"\nsteps = [10, 20, 30, 40, 50, 60, 70, 80, 90]\nmin_requests = 10\nerror_ratio_tolerance = 0.1\nfailure_limit = 2\nlatency_tolerance = \"100ms\"\n",
        ..Options::default()
    };
    let stack = Stack::start(opts).await;
    // Watch every config document the provider serves while the controller comes and goes.
    let bad_doc = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (http, url, bad, stop) = (
            stack.http.clone(),
            stack.pilot_url("/traefik"),
            bad_doc.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(r) = http.get(&url).send().await {
                    if r.status() == 200 {
                        let body = r.bytes().await.unwrap_or_default();
                        let ok = serde_json::from_slice::<Value>(&body).is_ok_and(|d| {
                            ["api", "api-stable", "api-canary"]
                                .iter()
                                .all(|s| d["http"]["services"][*s].is_object())
                                && ["api", "api-canary-header"]
                                    .iter()
                                    .all(|r| d["http"]["routers"][*r].is_object())
                        });
                        if !ok {
                            bad.store(true, Ordering::Relaxed);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut seed = 0x5eed_u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let stack = Arc::new(stack);
    let traffic = Traffic::start(&stack, 8, 200.0, Duration::from_secs(300));
    let mut versions = 2;
    stack.action("start", json!({"version": "v2"})).await;
    let mut events_seen: Vec<Value> = Vec::new();
    let mut rolled_back_version: Option<String> = None;
    for kill in 0..20 {
        tokio::time::sleep(Duration::from_millis(1500 + rand(2500))).await;
        stack.kill_pilot();
        let saved: Value =
            serde_json::from_slice(&std::fs::read(&stack.state_path).unwrap()).unwrap();
        stack.restart_pilot().await;
        let v = stack.app().await;
        let app = &saved["apps"]["api"];
        // Resumed exactly where the state file was: same phase, weight and generation.
        assert_eq!(v["phase"], app["phase"], "kill {kill}");
        assert_eq!(v["weights"]["canary"], app["canary_weight"], "kill {kill}");
        assert_eq!(v["generation"], app["generation"], "kill {kill}");
        // Every event from before the crash is still there, in order.
        let events = stack.get_json("/api/v1/events?limit=1000").await;
        let events = events["events"].as_array().unwrap().clone();
        assert!(
            events.len() >= events_seen.len() && events[..events_seen.len()] == events_seen[..],
            "kill {kill}: events lost"
        );
        events_seen = events;
        // A rolled-back canary never gets traffic again.
        if let Some(bad) = &rolled_back_version {
            if v["canary"]["version"].as_str() == Some(bad) {
                assert_eq!(
                    v["weights"]["canary"], 0,
                    "kill {kill}: the rolled-back {bad} has traffic"
                );
            }
        }
        match v["phase"].as_str().unwrap() {
            "succeeded" | "rolled_back" => {
                if v["phase"] == "rolled_back" {
                    rolled_back_version = v["canary"]["version"].as_str().map(str::to_string);
                }
                // Next release on the idle slot: every other one fails every request.
                versions += 1;
                let idle = v["canary"]["slot"].as_str().unwrap().to_string();
                stack.wait_applied(0).await;
                tokio::time::sleep(common::SWAP_SETTLE).await;
                let rate = if versions % 2 == 1 { 1.0 } else { 0.0 };
                stack.control(&idle, json!({"error_rate": rate})).await;
                stack
                    .action("start", json!({"version": format!("v{versions}")}))
                    .await;
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let transport_errors = traffic.transport_errors.load(Ordering::Relaxed);
    let counts = traffic.stop().await;
    assert!(
        !bad_doc.load(Ordering::Relaxed),
        "the provider served an empty or partial document"
    );
    // A 5xx answered by a backend names its version: those were injected by the test. Nothing
    // else may fail.
    let not_injected: u64 = counts
        .iter()
        .filter(|((v, s), _)| v == "none" && *s != 200)
        .map(|(_, n)| n)
        .sum();
    assert_eq!((transport_errors, not_injected), (0, 0), "{counts:?}");
    let kinds: BTreeSet<String> = events_seen
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    eprintln!("20 kills; {} events: {kinds:?}", events_seen.len());
    assert!(
        kinds.contains("advanced"),
        "the releases moved on between kills: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_state_stops_weight_changes_reports_not_ready_and_keeps_serving() {
    let stack = Stack::start(Options::default()).await;
    stack.set_weight(20).await;
    stack.wait_applied(20).await;
    let before = stack.provider_bytes().await;
    // The atomic write goes through <state>.tmp: a directory there makes every write fail, as a
    // read-only or full disk would (the tests run as root, whom permissions do not stop).
    let tmp = stack.state_path.with_file_name("state.json.tmp");
    std::fs::create_dir(&tmp).unwrap();
    let r = stack
        .http
        .put(stack.pilot_url("/api/v1/apps/api/weight"))
        .json(&json!({"weight": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "not_persisted");
    let r = stack
        .http
        .get(stack.pilot_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let why: Value = r.json().await.unwrap();
    assert!(
        why["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be persisted"),
        "{why}"
    );
    assert_eq!(
        stack.provider_bytes().await,
        before,
        "still serving the last config"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.applied_canary_weight().await, Some(20));
    let r = stack
        .http
        .post(stack.pilot_url("/api/v1/apps/api/start"))
        .json(&json!({"version": "v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "no release can start either");

    std::fs::remove_dir(&tmp).unwrap();
    stack.set_weight(50).await;
    assert_eq!(
        stack
            .http
            .get(stack.pilot_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    stack.wait_applied(50).await;
}

/// A metrics endpoint whose behaviour the test switches: down, garbage, slow.
async fn metrics_server(mode: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().fallback(move || {
        let mode = mode.clone();
        async move {
            match mode.load(Ordering::SeqCst) {
                0 => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "down".to_string(),
                ),
                1 => (
                    axum::http::StatusCode::OK,
                    "{{{ garbage \u{1} traefik_service_requests_total{service=".to_string(),
                ),
                _ => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    (axum::http::StatusCode::OK, String::new())
                }
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_source_down_garbage_or_slow_holds_the_release_then_pauses_and_notifies() {
    let mode = Arc::new(AtomicU64::new(0));
    let url = metrics_server(mode.clone()).await;
    let rx = Receiver::start().await;
    let opts = Options {
        analysis:
            "interval = \"1s\"\nsteps = [20, 50]\nmin_requests = 10\nmax_inconclusive = \"8s\"\n",
        metrics_url: Some(url),
        extra: format!(
            "[[notifiers]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"{}/slack\"\n",
            rx.base
        ),
        ..Options::default()
    };
    let stack = Arc::new(Stack::start(opts).await);
    let traffic = Traffic::start(&stack, 4, 50.0, Duration::from_secs(60));
    stack.action("start", json!({"version": "v2"})).await;
    let mut reasons = BTreeSet::new();
    for m in [0u64, 1, 2] {
        mode.store(m, Ordering::SeqCst);
        // Long enough for the 2 s source timeout and a fresh analysis.
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let v = stack.app().await;
        if v["phase"] == "paused" {
            break;
        }
        assert_eq!(
            (v["phase"].as_str(), v["weights"]["canary"].as_u64()),
            (Some("progressing"), Some(20)),
            "mode {m}: {v}"
        );
        assert_eq!(v["last_analysis"]["verdict"], "inconclusive", "mode {m}");
        reasons.insert(v["last_analysis"]["reason"].as_str().unwrap().to_string());
    }
    let v = stack.wait_phase("paused", Duration::from_secs(30)).await;
    assert!(
        v["reason"].as_str().unwrap().contains("no verdict"),
        "{}",
        v["reason"]
    );
    assert_eq!(v["weights"]["canary"], 20);
    traffic.stop().await;
    assert!(
        reasons.iter().any(|r| r.contains("HTTP 503")),
        "{reasons:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let notified: Vec<String> = rx
        .on("/slack")
        .iter()
        .map(|r| r.headers["x-canary-pilot-event"].clone())
        .collect();
    assert_eq!(notified, ["started", "paused"], "the pause is notified");
    let m = stack.metrics_text().await;
    // Summed over the failure reasons (unreachable, invalid).
    let errors: f64 = m
        .lines()
        .filter(|l| l.starts_with("canary_pilot_source_errors_total{"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 3.0, "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_traefik_rejects_of_the_document_is_read_back_and_shown() {
    let stack = Stack::start(Options {
        extra:
            "[traefik]\napi_url = \"http://127.0.0.1:{traefik_api}/\"\ncheck_interval = \"500ms\"\n"
                .into(),
        ..Options::default()
    })
    .await;
    // Everything enabled: read back, nothing to say.
    common::eventually("a read-back", Duration::from_secs(20), || async {
        let m = stack.metrics_text().await;
        m.contains("canary_pilot_traefik_check_up 1").then_some(())
    })
    .await;
    let ready = stack.get_json("/readyz").await;
    assert!(ready.get("traefik").is_none(), "{ready}");
    assert!(stack.app().await.get("traefik_rejected").is_none());

    // An entry point Traefik does not have: it disables every router of the app.
    let original = std::fs::read_to_string(&stack.config_path).unwrap();
    let bad = original.replace("entry_points = [\"web\"]", "entry_points = [\"nope\"]");
    assert_ne!(bad, original);
    std::fs::write(&stack.config_path, &bad).unwrap();
    let (code, body) = reload(&stack, false).await;
    assert_eq!(code, 200, "{body}");
    let v = common::eventually(
        "Traefik's rejection shown",
        Duration::from_secs(30),
        || async {
            let v = stack.app().await;
            v["traefik_rejected"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
                .then_some(v)
        },
    )
    .await;
    let main = v["traefik_rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "api@http")
        .unwrap_or_else(|| panic!("the main router: {v}"))
        .clone();
    assert_eq!(main["kind"], "router", "{main}");
    assert_eq!(main["status"], "disabled", "{main}");
    assert!(
        main["errors"].to_string().contains("nope"),
        "Traefik's reason: {main}"
    );
    let ready = stack.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(
        ready["traefik"].as_str().unwrap().contains("api@http"),
        "{ready}"
    );
    let metrics = stack.metrics_text().await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("canary_pilot_traefik_rejected{app=\"api\"}") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );

    // Fixed: the findings clear by themselves.
    std::fs::write(&stack.config_path, &original).unwrap();
    let (code, body) = reload(&stack, false).await;
    assert_eq!(code, 200, "{body}");
    common::eventually("the rejection cleared", Duration::from_secs(30), || async {
        stack
            .app()
            .await
            .get("traefik_rejected")
            .is_none()
            .then_some(())
    })
    .await;
}
