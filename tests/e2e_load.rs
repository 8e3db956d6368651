//! Load during a complete release: traffic offered at 2,000 requests per second through a real
//! Traefik while canary-pilot walks every step and promotes, with all its weight changes and the
//! role swap. No request may fail. The figures are printed, not asserted (on two cores about
//! 2,000 per second get through).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{by_version, Options, Stack, Traffic};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_under_load_through_a_whole_release() {
    let opts = Options {
        // The test is about failed requests; with every core saturated the p99s are noise, so
        // the latency check is given room.
        analysis: "interval = \"5s\"\nsteps = [5, 10, 20, 35, 50, 75, 100]\nmin_requests = 200\nerror_ratio_tolerance = 0.01\nfailure_limit = 2\nmax_latency_ratio = 4.0\nlatency_tolerance = \"250ms\"\n",
        ..Options::default()
    };
    let stack = Arc::new(Stack::start(opts).await);
    let started = Instant::now();
    let traffic = Traffic::start(&stack, 48, 2000.0, Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.action("start", json!({"version": "v2"})).await;
    let done = stack
        .wait_phase("succeeded", Duration::from_secs(110))
        .await;
    assert_eq!(done["stable"]["version"], "v2");
    // Keep the load on through the swap until Traefik routes by the new roles.
    stack.wait_applied(0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let transport_errors = traffic.transport_errors.load(Ordering::Relaxed);
    let counts = traffic.stop().await;
    let seconds = started.elapsed().as_secs_f64();
    let total: u64 = counts.values().sum::<u64>() + transport_errors;
    let failed: u64 = counts
        .iter()
        .filter(|((_, s), _)| *s != 200)
        .map(|(_, n)| n)
        .sum::<u64>()
        + transport_errors;
    let events = stack.get_json("/api/v1/events").await;
    let changes = events["events"].as_array().unwrap().len();
    eprintln!(
        "load: {total} requests in {seconds:.1} s ({:.0}/s), {failed} failed; v1 {} / v2 {}; {changes} transitions",
        total as f64 / seconds,
        by_version(&counts, "v1"),
        by_version(&counts, "v2"),
    );
    assert_eq!(failed, 0, "{counts:?}, {transport_errors} transport errors");
    assert!(total > 20_000, "too little load to show anything: {total}");
    assert!(by_version(&counts, "v1") > 0 && by_version(&counts, "v2") > 0);
}
