//! A small HTTP backend for demos, tests and benchmarks: it answers with its version, and its
//! error rate and latency can be changed while it runs through `/_control`.
//!
//! - any path: after `latency_ms`, `500` with probability `error_rate`, else `200`; both carry
//!   `X-Version` and a JSON body `{"version", "status"}`.
//! - `GET /_control`: current settings and counters; `PUT /_control` with any of
//!   `{"version": "v4", "error_rate": 0.0..=1.0, "latency_ms": N}` changes them (a new
//!   version label stands for a redeploy of the slot, without restarting the process).
//! - `GET /_health`: always `200`, without latency or errors (for Swarm health checks).
//!
//! Errors are drawn from a seeded generator, so a run is reproducible.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct DemoSettings {
    pub version: String,
    pub error_rate: f64,
    pub latency_ms: u64,
    pub seed: u64,
}

struct Demo {
    version: RwLock<String>,
    /// `error_rate` as the bit pattern of an f64, so it can change without a lock.
    error_rate_bits: AtomicU64,
    latency_ms: AtomicU64,
    seed: u64,
    draws: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Demo {
    fn version(&self) -> String {
        self.version
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate_bits.load(Ordering::Relaxed))
    }

    /// A uniform draw in [0, 1) from SplitMix64 over a shared counter.
    fn uniform(&self) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn router(settings: DemoSettings) -> Router {
    let demo = Arc::new(Demo {
        version: RwLock::new(settings.version),
        error_rate_bits: AtomicU64::new(settings.error_rate.to_bits()),
        latency_ms: AtomicU64::new(settings.latency_ms),
        seed: settings.seed,
        draws: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    Router::new()
        .route("/_health", get(health))
        .route(
            "/_control",
            get(get_control).put(put_control).post(put_control),
        )
        .fallback(serve)
        .with_state(demo)
}

pub async fn run(listen: SocketAddr, settings: DemoSettings) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, version = %settings.version, "demo backend listening");
    axum::serve(listener, router(settings))
        .with_graceful_shutdown(crate::signals::shutdown_signal())
        .await
}

fn with_version(version: &str, mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(version) {
        response.headers_mut().insert("x-version", v);
    }
    response
}

async fn serve(State(demo): State<Arc<Demo>>) -> Response {
    demo.requests.fetch_add(1, Ordering::Relaxed);
    let latency = demo.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = demo.uniform() < demo.error_rate();
    let status = if fail {
        demo.errors.fetch_add(1, Ordering::Relaxed);
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let version = demo.version();
    let body = Json(json!({ "version": version, "status": status.as_u16() }));
    with_version(&version, (status, body).into_response())
}

async fn health(State(demo): State<Arc<Demo>>) -> Response {
    with_version(
        &demo.version(),
        Json(json!({ "status": "ok" })).into_response(),
    )
}

fn control_view(demo: &Demo) -> Json<serde_json::Value> {
    Json(json!({
        "version": demo.version(),
        "error_rate": demo.error_rate(),
        "latency_ms": demo.latency_ms.load(Ordering::Relaxed),
        "requests": demo.requests.load(Ordering::Relaxed),
        "errors": demo.errors.load(Ordering::Relaxed),
    }))
}

async fn get_control(State(demo): State<Arc<Demo>>) -> Json<serde_json::Value> {
    control_view(&demo)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlChange {
    version: Option<String>,
    error_rate: Option<f64>,
    latency_ms: Option<u64>,
}

async fn put_control(State(demo): State<Arc<Demo>>, body: Bytes) -> Response {
    let change: ControlChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "bad_body", "detail": e.to_string() })),
            )
                .into_response()
        }
    };
    if let Some(v) = &change.version {
        if v.is_empty() || v.len() > 128 || HeaderValue::from_str(v).is_err() {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "invalid_version", "detail": "version must be 1-128 characters that fit a header" })),
            )
                .into_response();
        }
    }
    if let Some(rate) = change.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "invalid_error_rate", "detail": "error_rate must be within 0..=1" })),
            )
                .into_response();
        }
        demo.error_rate_bits
            .store(rate.to_bits(), Ordering::Relaxed);
    }
    if let Some(ms) = change.latency_ms {
        demo.latency_ms.store(ms, Ordering::Relaxed);
    }
    if let Some(v) = change.version {
        *demo.version.write().unwrap_or_else(|e| e.into_inner()) = v;
    }
    tracing::info!(
        version = %demo.version(),
        error_rate = demo.error_rate(),
        latency_ms = demo.latency_ms.load(Ordering::Relaxed),
        "demo backend changed"
    );
    control_view(&demo).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn settings(error_rate: f64) -> DemoSettings {
        DemoSettings {
            version: "v2".into(),
            error_rate,
            latency_ms: 0,
            seed: 7,
        }
    }

    async fn status_of(
        app: &Router,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn answers_with_version_and_the_configured_error_rate() {
        let app = router(settings(0.3));
        let mut errors = 0;
        for _ in 0..2000 {
            let (status, body) = status_of(&app, "GET", "/anything", "").await;
            assert_eq!(body["version"], "v2");
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                errors += 1;
            }
        }
        // 2000 draws at p = 0.3: mean 600, sd ~20.5; 5 sd either side.
        assert!((497..=703).contains(&errors), "{errors} errors");
        let (_, control) = status_of(&app, "GET", "/_control", "").await;
        assert_eq!(control["requests"], 2000);
        assert_eq!(control["errors"], errors);
    }

    #[tokio::test]
    async fn control_changes_error_rate_at_run_time_and_rejects_bad_input() {
        let app = router(settings(0.0));
        assert_eq!(status_of(&app, "GET", "/", "").await.0, StatusCode::OK);
        let (s, _) = status_of(&app, "PUT", "/_control", r#"{"error_rate": 1.0}"#).await;
        assert_eq!(s, StatusCode::OK);
        for _ in 0..20 {
            assert_eq!(
                status_of(&app, "GET", "/x", "").await.0,
                StatusCode::INTERNAL_SERVER_ERROR
            );
        }
        assert_eq!(
            status_of(&app, "GET", "/_health", "").await.0,
            StatusCode::OK
        );
        assert_eq!(
            status_of(&app, "PUT", "/_control", r#"{"error_rate": 2}"#)
                .await
                .0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status_of(&app, "PUT", "/_control", r#"{"eror_rate": 0}"#)
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_of(&app, "PUT", "/_control", "{").await.0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn control_changes_the_version_label_at_run_time() {
        let app = router(settings(0.0));
        let (s, body) = status_of(&app, "PUT", "/_control", r#"{"version": "v4"}"#).await;
        assert_eq!((s, &body["version"]), (StatusCode::OK, &json!("v4")));
        let req = Request::builder().uri("/x").body(Body::empty()).unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["x-version"], "v4");
        let (_, body) = status_of(&app, "GET", "/", "").await;
        assert_eq!(body["version"], "v4");
        for bad in [r#"{"version": ""}"#, r#"{"version": "a\nb"}"#] {
            let (s, _) = status_of(&app, "PUT", "/_control", bad).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
        assert_eq!(
            status_of(&app, "GET", "/_control", "").await.1["version"],
            "v4"
        );
    }
}
