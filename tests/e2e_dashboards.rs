//! Every PromQL expression in the shipped Grafana dashboards runs against a real Prometheus —
//! scraping a real Traefik and canary-pilot every second, with the shipped recording rules —
//! during a real release and rollback, and returns data.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Options, Stack, Traffic};
use serde_json::{json, Value};

/// Every `expr` in a dashboard: panel targets (nested rows too) and annotation queries.
fn expressions(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                for child in m.values() {
                    walk(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out.sort();
    out.dedup();
    out
}

fn substitute(expr: &str, app: &str) -> String {
    expr.replace("${app}", app)
        .replace("$app", app)
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "5m")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_expression_returns_data_during_a_real_rollout() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut dashboards = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            dashboards.push((p, v));
        }
    }
    assert!(!dashboards.is_empty(), "no dashboards in {}", dir.display());

    let opts = Options {
        analysis: "interval = \"2s\"\nsteps = [20, 50, 100]\nmin_requests = 50\nerror_ratio_tolerance = 0.05\nfailure_limit = 2\nmax_latency = \"500ms\"\nlatency_tolerance = \"100ms\"\n",
        prometheus: true,
        error_rates: (0.01, 0.01),
        ..Options::default()
    };
    // The analysis reads Prometheus too (so the interval holds two 1 s scrapes).
    let stack = Arc::new(Stack::start(opts).await);
    let traffic = Traffic::start(&stack, 8, 150.0, Duration::from_secs(240));
    stack.action("start", json!({"version": "v2"})).await;
    stack.wait_phase("succeeded", Duration::from_secs(90)).await;
    stack.wait_applied(0).await;
    tokio::time::sleep(common::SWAP_SETTLE).await;
    stack.control("blue", json!({"error_rate": 0.9})).await;
    stack.action("start", json!({"version": "v3"})).await;
    stack
        .wait_phase("rolled_back", Duration::from_secs(90))
        .await;

    let prom = format!("http://127.0.0.1:{}", stack.prometheus_port);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, dashboard) in &dashboards {
        for expr in expressions(dashboard) {
            let q = substitute(&expr, "api");
            assert!(
                !q.contains('$'),
                "{}: unsubstituted variable in {q}",
                path.display()
            );
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut last = Value::Null;
            let ok = loop {
                let resp: Value = stack
                    .http
                    .get(format!("{prom}/api/v1/query"))
                    .query(&[("query", q.as_str())])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let has_data = resp["status"] == "success"
                    && match &resp["data"]["result"] {
                        Value::Array(a) => !a.is_empty(),
                        Value::Null => false,
                        _ => true,
                    };
                if has_data {
                    break true;
                }
                last = resp;
                if Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            checked += 1;
            if !ok {
                failures.push(format!("{}: {q}\n  -> {last}", path.display()));
            }
        }
    }
    traffic.stop().await;
    assert!(checked >= 5, "only {checked} expressions found");
    assert!(
        failures.is_empty(),
        "expressions without data:\n{}",
        failures.join("\n")
    );
    eprintln!("{checked} dashboard expressions returned data");
}
