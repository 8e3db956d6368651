//! Hostile input, seeded and bounded (a short fuzz run in the suite): mutated configs, garbage
//! metrics pages and Prometheus answers, and random admin API requests. Nothing may panic; every
//! bad input must come back as a clear error.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use canary_pilot::analysis::{prometheus, scrape};
use canary_pilot::config::{Config, NoSecrets};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// xorshift64*, seeded: the same run every time.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Mutates text: deletes, duplicates, inserts fragments, truncates, flips bytes.
fn mutate(rng: &mut Rng, text: &str, fragments: &[&str]) -> String {
    let mut s: Vec<u8> = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(6) {
            0 => {
                let end = (at + rng.below(40)).min(s.len());
                s.drain(at..end);
            }
            1 => {
                let f = rng.pick(fragments).as_bytes().to_vec();
                s.splice(at..at, f);
            }
            2 => s.truncate(at),
            3 if !s.is_empty() => {
                let i = at.min(s.len() - 1);
                s[i] = (rng.next() & 0xff) as u8;
            }
            4 => {
                let end = (at + rng.below(80)).min(s.len());
                let chunk = s[at..end].to_vec();
                s.splice(at..at, chunk);
            }
            _ => {
                let f = rng.pick(fragments).as_bytes().to_vec();
                s.extend(f);
            }
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

#[test]
fn mutated_configs_never_panic_and_errors_name_what_is_wrong() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/canary-pilot.toml"),
    )
    .unwrap();
    let fragments = [
        "\n[apps.x]\n",
        "= 1e999",
        "\"",
        "[[",
        "]]",
        "steps = [0, -1, 101]\n",
        "interval = \"-5s\"\n",
        "\n[server]\nlisten = 7\n",
        "{ a = ",
        "\u{0}",
        "ü",
        "'''",
        "\n[notifiers]\n",
        "\n[[notifiers]]\nkind=1\n",
        "slots = {}\n",
        "rule = \"\"\n",
        "min_requests = 99999999999999999999\n",
        "\n[apps.api.hooks]\nx=1\n",
    ];
    let mut rng = Rng(0xC0FFEE);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..3000 {
        let text = mutate(&mut rng, &example, &fragments);
        match Config::parse(&text, &NoSecrets) {
            Ok(_) => ok += 1,
            Err(issues) => {
                refused += 1;
                assert!(!issues.is_empty());
                for i in &issues {
                    assert!(
                        !i.message.trim().is_empty(),
                        "an issue without a message for:\n{text}"
                    );
                }
            }
        }
    }
    assert!(
        refused > 1000 && ok > 10,
        "the mutations should hit both sides: {ok} ok, {refused} refused"
    );
}

#[test]
fn garbage_huge_and_truncated_metrics_pages_never_panic_and_keep_the_invariants() {
    let fixture = include_str!("fixtures/traefik-3.7.15-metrics.txt");
    let fragments = [
        "traefik_service_requests_total{code=\"500\",service=\"app-canary@http\"} 5\n",
        "traefik_service_requests_total{code=\"200\",service=\"app-canary@http\"} -7\n",
        "traefik_service_requests_total{code=\"500\",service=\"app-canary@http\"} NaN\n",
        "traefik_service_requests_total{code=\"200\",service=\"app-stable@http\"} +Inf\n",
        "# TYPE traefik_service_request_duration_seconds histogram\n",
        "traefik_service_request_duration_seconds_bucket{service=\"app-canary@http\",le=\"abc\"} 3\n",
        "traefik_service_request_duration_seconds_bucket{service=\"app-canary@http\",le=\"-1\"} 3\n",
        "{", "}", "\"", "\n", "=", ",", "\u{0}", "é",
    ];
    let wanted = vec!["app-canary@http".to_string(), "app-stable@http".to_string()];
    let mut rng = Rng(0xBADC0DE);
    let mut prev = scrape::parse_page(fixture, &wanted).unwrap();
    for round in 0..400 {
        let text = mutate(&mut rng, fixture, &fragments);
        let Ok(page) = scrape::parse_page(&text, &wanted) else {
            continue;
        };
        for (service, side) in scrape::increases(&prev, &page).unwrap_or_default() {
            assert!(wanted.contains(&service));
            if side.requests.is_finite() && side.errors.is_finite() {
                assert!(
                    side.errors <= side.requests + 1e-9,
                    "round {round}: {side:?}"
                );
            }
        }
        prev = page;
    }
    // Huge: a page of 200,000 series parses, keeping the services asked for (the size limit is
    // enforced when reading).
    let mut huge = String::new();
    for i in 0..200_000 {
        huge.push_str(&format!(
            "traefik_service_requests_total{{code=\"200\",service=\"s{i}@http\"}} {i}\n"
        ));
    }
    let every_thousandth: Vec<String> = (0..200).map(|i| format!("s{}@http", i * 1000)).collect();
    let page = scrape::parse_page(&huge, &every_thousandth).unwrap();
    assert_eq!(page.len(), 200);
}

#[test]
fn malformed_prometheus_answers_are_errors_not_panics() {
    let good = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service":"a@http","le":"0.1"},"value":[1.5,"3"]}]}}"#;
    let fragments = [
        "NaN",
        "\"+Inf\"",
        "null",
        "[]",
        "{}",
        "\"matrix\"",
        "1e999",
        "-1",
        "\"",
        "{",
        "]",
        ",",
        "true",
    ];
    let mut rng = Rng(0xFEED);
    let mut errors = 0;
    for _ in 0..3000 {
        let text = mutate(&mut rng, good, &fragments);
        if prometheus::decode(text.as_bytes()).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 1000, "{errors}");
    // Values of every JSON type in every position.
    for v in [
        "1", "\"x\"", "null", "true", "[]", "{}", "[1]", "[1,2,3]", "\"NaN\"",
    ] {
        for body in [
            format!(r#"{{"status":{v}}}"#),
            format!(r#"{{"status":"success","data":{v}}}"#),
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{v}}}}}"#),
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{v},"value":[1,"2"]}}]}}}}"#
            ),
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":{v}}}]}}}}"#
            ),
        ] {
            let _ = prometheus::decode(body.as_bytes());
        }
    }
}

#[tokio::test]
async fn random_admin_requests_get_json_4xx_never_5xx_or_a_panic() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/canary-pilot.toml"),
    )
    .unwrap();
    let config = Arc::new(Config::parse(&src, &NoSecrets).unwrap());
    let controller = canary_pilot::controller::Controller::load(
        config,
        canary_pilot::controller::Dependencies::new(Arc::new(
            canary_pilot::store::MemStore::default(),
        )),
    )
    .unwrap();
    let app = canary_pilot::api::router(canary_pilot::api::ApiState::loaded(Arc::new(controller)));
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"];
    let paths = [
        "/api/v1/apps/api/weight",
        "/api/v1/apps/api/start",
        "/api/v1/apps/api/pause",
        "/api/v1/apps/api/resume",
        "/api/v1/apps/api/promote",
        "/api/v1/apps/api/abort",
        "/api/v1/apps/api",
        "/api/v1/apps/%00",
        "/api/v1/apps/..%2f..%2fetc%2fpasswd/weight",
        "/api/v1/apps/api/../../traefik",
        "/api/v1/events?limit=-1",
        "/api/v1/events?limit=abc&app=nope",
        "/api/v1/reload",
        "/api/v1/apps/%ZZ",
        "//api//v1",
        "/api/v1/apps/a%20b/start",
    ];
    let bodies = [
        "",
        "{",
        "null",
        "[]",
        "{\"weight\": 5}",
        "{\"weight\": \"5\"}",
        "{\"weight\": 1e308}",
        "{\"weight\": -0}",
        "{\"version\": 7}",
        "{\"version\": \"\"}",
        "{\"version\": \"v\\u0000\"}",
        "{\"reason\": [1]}",
        "{\"force\": \"yes\"}",
        "{\"version\": \"v2\", \"extra\": 1}",
        "\u{0}\u{1}\u{2}",
        "{\"weight\": 50}",
    ];
    let mut rng = Rng(0xAB1DE);
    for _ in 0..1500 {
        let method = rng.pick(&methods);
        let path = rng.pick(&paths);
        let mut body = rng.pick(&bodies).to_string();
        if rng.below(10) == 0 {
            body = "x".repeat(70_000);
        }
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.clone()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            !status.is_server_error(),
            "{method} {path} {}: {status} {}",
            &body[..body.len().min(40)],
            String::from_utf8_lossy(&bytes)
        );
        if status.is_client_error() && method != "HEAD" {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{method} {path}: {status} is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            assert!(v["error"].is_string() && v.get("detail").is_some(), "{v}");
        }
    }
}
