//! A bounded traffic generator for demos and benchmarks: `rps` requests per second for
//! `duration`, over `workers` connections, reporting every `report` which version answered
//! and with what status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct TrafficSettings {
    pub url: String,
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    pub rps: f64,
    pub workers: usize,
    pub duration: Duration,
    pub report: Duration,
}

/// Answers counted by (version, status); transport failures as ("-", 0).
pub type Counts = BTreeMap<(String, u16), u64>;

pub async fn run(s: TrafficSettings, mut on_report: impl FnMut(Duration, &Counts)) -> Counts {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(s.workers)
        .build()
        .expect("a plain HTTP client builds");
    let window: Arc<Mutex<Counts>> = Arc::default();
    let total: Arc<Mutex<Counts>> = Arc::default();
    let start = Instant::now();
    let end = start + s.duration;
    let gap = Duration::from_secs_f64(s.workers as f64 / s.rps.max(0.001));
    let mut tasks = Vec::new();
    for w in 0..s.workers {
        let (http, s, window, total) = (http.clone(), s.clone(), window.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the workers over one gap so requests do not come in bursts.
            let mut next = start + gap.mul_f64(w as f64 / s.workers as f64);
            while next < end {
                tokio::time::sleep_until(next).await;
                next += gap;
                let mut req = http.get(&s.url);
                if let Some(h) = &s.host {
                    req = req.header("host", h);
                }
                for (k, v) in &s.headers {
                    req = req.header(k, v);
                }
                let key = match req.send().await {
                    Ok(resp) => {
                        let version = resp
                            .headers()
                            .get("x-version")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("none")
                            .to_string();
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        (version, status)
                    }
                    Err(_) => ("-".to_string(), 0),
                };
                *window
                    .lock()
                    .expect("poisoned")
                    .entry(key.clone())
                    .or_insert(0) += 1;
                *total.lock().expect("poisoned").entry(key).or_insert(0) += 1;
            }
        }));
    }
    let mut tick = tokio::time::interval_at(start + s.report, s.report);
    loop {
        tick.tick().await;
        let snapshot = std::mem::take(&mut *window.lock().expect("poisoned"));
        on_report(start.elapsed(), &snapshot);
        if Instant::now() >= end {
            break;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let leftover = std::mem::take(&mut *window.lock().expect("poisoned"));
    if !leftover.is_empty() {
        on_report(start.elapsed(), &leftover);
    }
    let out = total.lock().expect("poisoned").clone();
    out
}

/// `v1 180 (2 err)  v2 20 (0 err)`: per version, answers and 5xx.
pub fn summarize(c: &Counts) -> String {
    let mut by_version: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for ((v, status), n) in c {
        let e = by_version.entry(v.as_str()).or_default();
        e.0 += n;
        if *status >= 500 || *status == 0 {
            e.1 += n;
        }
    }
    by_version
        .iter()
        .map(|(v, (n, e))| format!("{v} {n} ({e} err)"))
        .collect::<Vec<_>>()
        .join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_answers_and_errors_per_version() {
        let mut c = Counts::new();
        c.insert(("v1".into(), 200), 90);
        c.insert(("v1".into(), 500), 2);
        c.insert(("v2".into(), 200), 10);
        c.insert(("-".into(), 0), 1);
        assert_eq!(summarize(&c), "- 1 (1 err)  v1 92 (2 err)  v2 10 (0 err)");
    }

    #[tokio::test]
    async fn sends_about_the_rate_for_the_duration_and_stops() {
        let app = crate::demo_backend::router(crate::demo_backend::DemoSettings {
            version: "v9".into(),
            error_rate: 0.0,
            latency_ms: 0,
            seed: 1,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut reports = 0;
        let total = run(
            TrafficSettings {
                url: format!("http://{addr}/"),
                host: None,
                headers: vec![],
                rps: 100.0,
                workers: 4,
                duration: Duration::from_millis(1000),
                report: Duration::from_millis(250),
            },
            |_, _| reports += 1,
        )
        .await;
        let n = total.get(&("v9".to_string(), 200)).copied().unwrap_or(0);
        // 100 per second for 1 s, scheduled: exactly 100 requests are sent.
        assert_eq!(n, 100, "{total:?}");
        assert!(reports >= 4);
    }
}
