//! The HTTP surface: [`router`] builds every route (Traefik provider, health, admin API) over an
//! [`ApiState`]; [`ApiError`] turns failures into JSON `{"error", "detail"}` answers.

mod admin;
mod auth;
mod provider;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::config::Config;
use crate::controller::Controller;

pub use admin::AppView;

/// Largest request body the API reads; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler sees. The controller is set once state is loaded; until then the provider
/// endpoint and readiness answer 503.
#[derive(Clone)]
pub struct ApiState {
    /// The config read at start-up, in force until the controller is loaded.
    initial: Arc<Config>,
    pub controller: Arc<OnceLock<Arc<Controller>>>,
}

impl ApiState {
    pub fn new(config: Arc<Config>) -> Self {
        ApiState {
            initial: config,
            controller: Arc::new(OnceLock::new()),
        }
    }

    /// The config in force: the controller's (a reload replaces it), or the start-up one.
    pub fn config(&self) -> Arc<Config> {
        match self.controller.get() {
            Some(c) => c.config(),
            None => self.initial.clone(),
        }
    }

    pub fn loaded(controller: Arc<Controller>) -> Self {
        let state = ApiState::new(controller.config().clone());
        let _ = state.controller.set(controller);
        state
    }

    fn controller(&self) -> Result<&Arc<Controller>, ApiError> {
        self.controller.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                json!("state is not loaded yet"),
            )
        })
    }
}

/// Every route, as `METHOD path`. The router is built from this list alone, and a test checks
/// that docs/api.md documents exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/traefik"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/apps"),
    ("GET", "/api/v1/apps/{app}"),
    ("PUT", "/api/v1/apps/{app}/weight"),
    ("POST", "/api/v1/apps/{app}/start"),
    ("POST", "/api/v1/apps/{app}/pause"),
    ("POST", "/api/v1/apps/{app}/resume"),
    ("POST", "/api/v1/apps/{app}/promote"),
    ("POST", "/api/v1/apps/{app}/abort"),
    ("GET", "/api/v1/events"),
    ("POST", "/api/v1/reload"),
];

fn handler(method: &str, path: &str) -> MethodRouter<ApiState> {
    let action = |a: &'static str| post(move |st, h, p, b| admin::post_action(st, h, p, b, a));
    match (method, path) {
        ("GET", "/traefik") => get(provider::traefik),
        ("GET", "/healthz") => get(healthz),
        ("GET", "/readyz") => get(readyz),
        ("GET", "/metrics") => get(metrics),
        ("GET", "/api/v1/apps") => get(admin::list_apps),
        ("GET", "/api/v1/apps/{app}") => get(admin::get_app),
        ("PUT", "/api/v1/apps/{app}/weight") => put(admin::put_weight),
        ("POST", "/api/v1/apps/{app}/start") => action("start"),
        ("POST", "/api/v1/apps/{app}/pause") => action("pause"),
        ("POST", "/api/v1/apps/{app}/resume") => action("resume"),
        ("POST", "/api/v1/apps/{app}/promote") => action("promote"),
        ("POST", "/api/v1/apps/{app}/abort") => action("abort"),
        ("GET", "/api/v1/events") => get(admin::list_events),
        ("POST", "/api/v1/reload") => post(admin::reload),
        other => unreachable!("ROUTES lists {other:?} without a handler"),
    }
}

pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (method, path) in ROUTES {
        router = router.route(path, handler(method, path));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An error answer: `{"error": kind, "detail": ...}` with its status code. 5xx answers carry
/// only what is safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: Value) -> Self {
        ApiError {
            status,
            error,
            detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.error, "detail": self.detail }));
        (self.status, body).into_response()
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    let controller = match state.controller() {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match controller.persist_error() {
        None => Json(json!({ "status": "ready" })).into_response(),
        Some(why) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            json!(format!(
                "state cannot be persisted, so no weight can change: {why}"
            )),
        )
        .into_response(),
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<ApiState>) -> Response {
    match state.controller() {
        Ok(c) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            c.metrics().render(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        json!(format!("no route for {}", uri.path())),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        json!(format!("{method} is not allowed on {}", uri.path())),
    )
}

#[cfg(test)]
mod tests;
