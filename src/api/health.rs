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
        traefik: None,
        swarm: None,
    })
}

/// `200` once the state is loaded, the last state write succeeded and, with Swarm services,
/// the last look at the Docker engine did.
pub async fn readyz(Loaded(controller): Loaded) -> Result<Json<HealthView>, ApiError> {
    if let Some(why) = controller.persist_error() {
        return Err(ApiError::NotReady(format!(
            "state cannot be persisted, so no weight can change: {why}"
        )));
    }
    if let Some(why) = controller.engine_error() {
        return Err(ApiError::NotReady(format!(
            "the Swarm services' tasks cannot be read, so Traefik keeps the servers last seen: {why}"
        )));
    }
    let problems = controller.swarm_problems();
    Ok(Json(HealthView {
        status: "ready".into(),
        traefik: traefik_summary(&controller.traefik_check()),
        swarm: (!problems.is_empty()).then(|| problems.join("; ")),
    }))
}

/// One line on what Traefik does not serve of the document, if anything.
fn traefik_summary(check: &crate::controller::TraefikCheck) -> Option<String> {
    if let Some(error) = &check.error {
        return Some(format!("not read back: {error}"));
    }
    if check.findings.is_empty() {
        return None;
    }
    let each: Vec<String> = check
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {}: {}",
                f.kind,
                f.name,
                f.status,
                f.errors.join("; ")
            )
        })
        .collect();
    Some(format!(
        "Traefik does not serve {} generated object(s): {}",
        each.len(),
        each.join(", ")
    ))
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
