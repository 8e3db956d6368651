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

/// Grafana's `$__rate_interval` with the shipped datasource: at least four scrape intervals
/// (`timeInterval: 5s`), the test's 1 s scrapes included.
const RATE_INTERVAL: &str = "20s";

fn substitute(expr: &str, app: &str) -> String {
    expr.replace("${app}", app)
        .replace("$app", app)
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", "1m")
        .replace("$__range", "5m")
}

fn dashboard() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards/canary-releases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A rollback takes about 12 s: a one-minute rate spreads it thin. Every `rate()` of the
/// dashboard is over Grafana's `$__rate_interval`, which the datasource's `timeInterval`
/// (Prometheus' scrape interval) brings down to 20 s.
#[test]
fn the_rates_of_the_dashboard_are_short_enough_to_show_a_12_s_rollback() {
    let exprs = expressions(&dashboard());
    let rates: Vec<&String> = exprs.iter().filter(|e| e.contains("rate(")).collect();
    assert!(rates.len() >= 5, "{rates:?}");
    for e in rates {
        let ranges = e.matches('[').count();
        assert_eq!(
            ranges,
            e.matches("[$__rate_interval]").count(),
            "a rate over a fixed range: {e}"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let datasource =
        std::fs::read_to_string(root.join("grafana/provisioning/datasources/prometheus.yml"))
            .unwrap();
    let scrape = std::fs::read_to_string(root.join("prometheus/prometheus.yml")).unwrap();
    let value = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let interval = value(&scrape, "scrape_interval:");
    assert_eq!(value(&datasource, "timeInterval:"), interval);
    let seconds: u64 = interval.trim_end_matches('s').parse().unwrap();
    assert_eq!(format!("{}s", 4 * seconds), RATE_INTERVAL);
}

/// The annotations say which check failed, beside the event's kind.
#[test]
fn the_annotations_name_the_event_and_the_failed_check() {
    let d = dashboard();
    let list = d["annotations"]["list"].as_array().unwrap();
    let by_name = |name: &str| {
        list.iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no annotation {name}"))
    };
    assert!(by_name("Release events")["titleFormat"]
        .as_str()
        .unwrap()
        .contains("{{kind}}"));
    let failed = by_name("Failed checks");
    assert!(failed["expr"].as_str().unwrap().contains("fail|critical"));
    assert_eq!(failed["titleFormat"], "{{check}}: {{verdict}}");
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
    stack
        .wait_phase("succeeded", Duration::from_secs(150))
        .await;
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
