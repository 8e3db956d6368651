//! `/healthz`, `/readyz` and `/metrics`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::extract::Loaded;
use super::views::HealthView;
use super::ApiError;

/// `200` while the process runs.
pub async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
    })
}

/// `200` once the state is loaded and the last state write succeeded.
pub async fn readyz(Loaded(controller): Loaded) -> Result<Json<HealthView>, ApiError> {
    match controller.persist_error() {
        None => Ok(Json(HealthView {
            status: "ready".into(),
        })),
        Some(why) => Err(ApiError::NotReady(why)),
    }
}

/// canary-pilot's own metrics, in the Prometheus text format.
pub async fn metrics(Loaded(controller): Loaded) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        controller.metrics().render(),
    )
}
