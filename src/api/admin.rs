//! The admin API under `/api/v1`: read the apps, change a weight by hand.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::{auth, ApiError, ApiState};
use crate::config::AppConfig;
use crate::controller::ControlError;
use crate::rollout::AppState;

/// One app as the API shows it.
#[derive(Debug, Serialize)]
pub struct AppView {
    pub name: String,
    pub rule: String,
    pub phase: &'static str,
    pub weights: Weights,
    pub stable: SlotView,
    pub canary: SlotView,
    pub generation: u64,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct Weights {
    pub stable: u8,
    pub canary: u8,
}

#[derive(Debug, Serialize)]
pub struct SlotView {
    pub slot: String,
    pub servers: Vec<String>,
    pub version: Option<String>,
}

impl AppView {
    pub fn new(app: &AppConfig, state: &AppState) -> Self {
        let slot = |name: &str, version: &Option<String>| SlotView {
            slot: name.to_string(),
            servers: app
                .slots
                .get(name)
                .map(|urls| urls.iter().map(|u| u.to_string()).collect())
                .unwrap_or_default(),
            version: version.clone(),
        };
        let updated = UNIX_EPOCH + Duration::from_millis(state.updated_at_ms);
        AppView {
            name: app.name.clone(),
            rule: app.rule.clone(),
            phase: state.phase.as_str(),
            weights: Weights {
                stable: state.stable_weight(),
                canary: state.canary_weight,
            },
            stable: slot(&state.stable_slot, &state.stable_version),
            canary: slot(app.other_slot(&state.stable_slot), &state.canary_version),
            generation: state.generation,
            updated_at: humantime::format_rfc3339_millis(updated).to_string(),
        }
    }
}

fn unknown_app(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_app",
        json!(format!(
            "no app named {name:?}; GET /api/v1/apps lists them"
        )),
    )
}

fn app_name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", json!(e.body_text())))
}

pub async fn list_apps(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let published = state.controller()?.published();
    let apps: Vec<AppView> = state
        .config
        .apps
        .values()
        .filter_map(|app| published.apps.get(&app.name).map(|s| AppView::new(app, s)))
        .collect();
    Ok(Json(json!({ "apps": apps })))
}

pub async fn get_app(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AppView>, ApiError> {
    let name = app_name(path)?;
    let published = state.controller()?.published();
    match (state.config.apps.get(&name), published.apps.get(&name)) {
        (Some(app), Some(s)) => Ok(Json(AppView::new(app, s))),
        _ => Err(unknown_app(&name)),
    }
}

/// Parses a JSON body whatever its Content-Type, mapping every failure to a 4xx JSON error.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, "bad_body", json!(e.body_text()))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            json!(format!("the body is not valid JSON: {e}")),
        )
    })
}

/// `PUT /api/v1/apps/{app}/weight` with `{"weight": 0..=100}`.
pub async fn put_weight(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AppView>, ApiError> {
    auth::require(state.config.server.admin_token.as_ref(), &headers)?;
    let name = app_name(path)?;
    let app = state
        .config
        .apps
        .get(&name)
        .ok_or_else(|| unknown_app(&name))?;
    let body = json_body(body)?;
    let weight = match body.get("weight") {
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_weight",
                json!(format!("weight must be an integer 0..=100, got {other}")),
            ))
        }
        None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_weight",
                json!("the body must be {\"weight\": N} with N an integer 0..=100"),
            ))
        }
    };
    if let Some(obj) = body.as_object() {
        if let Some(extra) = obj.keys().find(|k| k.as_str() != "weight") {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_field",
                json!(format!(
                    "unknown field {extra:?}; the body is {{\"weight\": N}}"
                )),
            ));
        }
    }
    let controller = state.controller()?;
    match controller.set_weight(&name, weight).await {
        Ok(s) => Ok(Json(AppView::new(app, &s))),
        Err(ControlError::UnknownApp(n)) => Err(unknown_app(&n)),
        Err(ControlError::Refused(r)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_weight",
            json!(r.to_string()),
        )),
        Err(ControlError::Persist(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_persisted",
            json!("the state could not be written, so the weight was not changed; see the controller's log and /readyz"),
        )),
    }
}
