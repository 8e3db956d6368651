use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::rollout::Phase;

fn event(kind: EventKind) -> Event {
    Event {
        dry_run: false,
        app: "api".into(),
        kind,
        version: Some("v2".into()),
        from: Phase::Progressing,
        to: Phase::RolledBack,
        weight: 0,
        reason: "canary 35% is above the 20% ceiling".into(),
        time_ms: 1_795_305_003_120,
    }
}

#[test]
fn slack_payload_has_text_and_a_coloured_attachment() {
    let p = slack_payload(&event(EventKind::RolledBack), None);
    assert_eq!(
        p["text"],
        "api: rolled_back v2 (canary at 0%): canary 35% is above the 20% ceiling"
    );
    let a = &p["attachments"][0];
    assert_eq!(a["color"], "#a30200");
    assert_eq!(a["title"], "api: rolled back");
    assert_eq!(a["fields"][2]["value"], "progressing → rolled_back");
    assert_eq!(a["ts"], 1_795_305_003u64);
    assert_eq!(
        slack_payload(&event(EventKind::Promoted), None)["attachments"][0]["color"],
        "#2eb886"
    );
    assert_eq!(
        slack_payload(&event(EventKind::Paused), None)["attachments"][0]["color"],
        "#daa038"
    );
}

#[test]
fn a_dry_run_decision_is_marked_in_every_payload() {
    let ev = Event {
        dry_run: true,
        ..event(EventKind::RolledBack)
    };
    let slack = slack_payload(&ev, None);
    assert_eq!(
        slack["attachments"][0]["title"],
        "api: rolled back (dry run)"
    );
    assert_eq!(generic_payload(&ev, None)["dry_run"], true);
    assert!(generic_payload(&event(EventKind::RolledBack), None)
        .get("dry_run")
        .is_none());
}

#[test]
fn templates_fill_every_placeholder() {
    let t = "{app}|{kind}|{version}|{from}|{to}|{weight}|{reason}|{time}";
    assert_eq!(
        render_template(t, &event(EventKind::RolledBack)),
        "api|rolled_back|v2|progressing|rolled_back|0|canary 35% is above the 20% ceiling|2026-11-21T23:50:03.120Z"
    );
    let p = slack_payload(&event(EventKind::Started), Some(":rocket: {app} {version}"));
    assert_eq!(p["text"], ":rocket: api v2");
}

#[test]
fn signature_is_hmac_sha256_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        sign(&Secret::new("Jefe"), b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn generic_payload_is_the_event_with_time_and_message() {
    let p = generic_payload(&event(EventKind::Advanced), None);
    assert_eq!(p["kind"], "advanced");
    assert_eq!(p["app"], "api");
    assert_eq!(p["time"], "2026-11-21T23:50:03.120Z");
    assert_eq!(p["severity"], "good");
    assert!(p["message"]
        .as_str()
        .unwrap()
        .starts_with("api: advanced v2"));
}

/// A receiver answering `status` and counting requests.
async fn receiver(status: u16) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/hook"), hits)
}

#[tokio::test]
async fn failing_receiver_is_retried_then_counted_as_failed() {
    let (url, hits) = receiver(500).await;
    let m = Metrics::new();
    let d = Delivery {
        body: b"{}".to_vec(),
        headers: vec![],
    };
    let r = post_with_retries(
        &reqwest::Client::new(),
        &url,
        &d,
        Duration::from_secs(2),
        2,
        &m,
        "ops",
    )
    .await;
    assert_eq!(
        r.map_err(|e| e.to_string()),
        Err("HTTP 500 Internal Server Error".into())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let text = m.render();
    assert!(
        text.contains("canary_pilot_notifications_total{notifier=\"ops\",result=\"retried\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("canary_pilot_notifications_total{notifier=\"ops\",result=\"failed\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn hanging_receiver_times_out_without_leaking_the_url() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // Accepts connections and never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }
    });
    let m = Metrics::new();
    let d = Delivery {
        body: b"{}".to_vec(),
        headers: vec![],
    };
    let url = format!("http://{addr}/secret-token-in-path");
    let r = post_with_retries(
        &reqwest::Client::new(),
        &url,
        &d,
        Duration::from_millis(200),
        0,
        &m,
        "ops",
    )
    .await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("no answer within"), "{e}");
    assert!(!e.contains("secret-token"), "{e}");
}

#[tokio::test]
async fn notify_filters_by_kind_and_drops_when_the_queue_is_full() {
    let (url, hits) = receiver(200).await;
    let metrics = Arc::new(Metrics::new());
    let cfg = NotifierConfig {
        name: "ops".into(),
        kind: NotifierKind::Slack,
        url: Secret::new(url),
        secret: None,
        events: vec!["rolled_back".into()],
        template: None,
        timeout: Duration::from_secs(2),
        retries: 0,
        queue: 1,
    };
    let n = Notifiers::start(&[cfg], metrics.clone(), None);
    n.notify(&event(EventKind::Started));
    for _ in 0..50 {
        n.notify(&event(EventKind::RolledBack));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = hits.load(Ordering::SeqCst);
    assert!((1..50).contains(&delivered), "{delivered}");
    let text = metrics.render();
    assert!(text.contains("result=\"dropped\""), "{text}");
}

#[tokio::test]
async fn a_restart_keeps_unchanged_notifiers_and_stops_the_others_even_mid_delivery() {
    use tokio::io::AsyncReadExt;
    // A receiver that reads requests and never answers: every delivery hangs for its timeout.
    // `open` counts the connections the notifiers hold open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    let _hold = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let cfg = |name: &str| NotifierConfig {
        name: name.into(),
        kind: NotifierKind::Generic,
        url: Secret::new(url.clone()),
        secret: None,
        events: vec![],
        template: None,
        timeout: Duration::from_secs(60),
        retries: 0,
        queue: 10,
    };
    let metrics = Arc::new(Metrics::new());
    let settle = || tokio::time::sleep(Duration::from_millis(200));
    let first = Notifiers::start(&[cfg("ops"), cfg("audit")], metrics.clone(), None);
    first.notify(&event(EventKind::Started));
    settle().await;
    assert_eq!(open.load(Ordering::SeqCst), 2, "both deliveries hang");

    // The same configs: the same two workers, their deliveries still under way.
    let same = first.restart(&[cfg("ops"), cfg("audit")], metrics.clone(), None);
    drop(first);
    settle().await;
    assert_eq!(open.load(Ordering::SeqCst), 2);

    // "audit" removed, "pager" added: audit's hanging delivery stops with the old set.
    let next = same.restart(&[cfg("ops"), cfg("pager")], metrics.clone(), None);
    settle().await;
    assert_eq!(
        open.load(Ordering::SeqCst),
        2,
        "the old set runs until dropped"
    );
    drop(same);
    settle().await;
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "only ops is still delivering"
    );
    drop(next);
    settle().await;
    assert_eq!(open.load(Ordering::SeqCst), 0);
}
