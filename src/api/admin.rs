//! The admin API under `/api/v1`: read apps, analyses and events; start, pause, resume, promote
//! and abort releases; set a weight by hand.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{auth, ApiError, ApiState};
use crate::config::AppConfig;
use crate::controller::{AnalysisRecord, ControlError, Controller, ReloadError};
use crate::rollout::{AppState, Event, Input, Refusal};

/// One app as the API shows it.
#[derive(Debug, Serialize)]
pub struct AppView {
    pub name: String,
    pub rule: String,
    pub phase: &'static str,
    pub weights: Weights,
    pub stable: SlotView,
    pub canary: SlotView,
    pub step: StepView,
    pub failures: u32,
    pub failure_limit: u32,
    /// Why the app is in its phase: the last transition's reason.
    pub reason: Option<String>,
    /// Since when analyses have had no verdict, if they have not.
    pub inconclusive_since: Option<String>,
    /// The newest analysis, if any.
    pub last_analysis: Option<AnalysisSummary>,
    pub generation: u64,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    /// 1-based step of the release (0 when none is under way).
    pub current: usize,
    pub total: usize,
    pub weights: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct AnalysisSummary {
    pub time: String,
    pub verdict: &'static str,
    pub reason: String,
}

/// One app with its recent analyses and events: `GET /api/v1/apps/{app}`.
#[derive(Debug, Serialize)]
pub struct AppDetail {
    #[serde(flatten)]
    pub app: AppView,
    /// The last analyses, newest first, with every check's figures.
    pub analyses: Vec<AnalysisRecord>,
    /// The app's last events, oldest first.
    pub events: Vec<EventView>,
}

/// An event as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(flatten)]
    pub event: Event,
    pub time: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            event: e.clone(),
            time: crate::clock::rfc3339(e.time_ms),
        }
    }
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
    pub fn new(app: &AppConfig, state: &AppState, last: Option<&AnalysisRecord>) -> Self {
        let slot = |name: &str, version: &Option<String>| SlotView {
            slot: name.to_string(),
            servers: app
                .slots
                .get(name)
                .map(|urls| urls.iter().map(|u| u.to_string()).collect())
                .unwrap_or_default(),
            version: version.clone(),
        };
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
            step: StepView {
                current: if state.phase.is_active() {
                    state.step_index + 1
                } else {
                    0
                },
                total: app.analysis.steps.iter().filter(|w| **w < 100).count(),
                weights: app.analysis.steps.clone(),
            },
            failures: state.failures,
            failure_limit: app.analysis.failure_limit,
            reason: state.reason.clone(),
            inconclusive_since: state.inconclusive_since_ms.map(crate::clock::rfc3339),
            last_analysis: last.map(|r| AnalysisSummary {
                time: crate::clock::rfc3339(r.time_ms),
                verdict: r.analysis.verdict.as_str(),
                reason: r.analysis.reason.clone(),
            }),
            generation: state.generation,
            updated_at: crate::clock::rfc3339(state.updated_at_ms),
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

/// Reads need the admin token only with `server.protect_reads`.
fn require_read(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config().server.protect_reads {
        auth::require(state.config().server.admin_token.as_ref(), headers)?;
    }
    Ok(())
}

pub async fn list_apps(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_read(&state, &headers)?;
    let controller = state.controller()?;
    let published = controller.published();
    let apps: Vec<AppView> = state
        .config()
        .apps
        .values()
        .filter_map(|app| {
            let last = controller.analyses(&app.name).into_iter().next();
            published
                .apps
                .get(&app.name)
                .map(|s| AppView::new(app, s, last.as_ref()))
        })
        .collect();
    Ok(Json(json!({ "apps": apps })))
}

/// Events of one app kept in an app's detail view.
const DETAIL_EVENTS: usize = 20;

pub async fn get_app(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AppDetail>, ApiError> {
    require_read(&state, &headers)?;
    let name = app_name(path)?;
    let controller = state.controller()?;
    let published = controller.published();
    match (state.config().apps.get(&name), published.apps.get(&name)) {
        (Some(app), Some(s)) => Ok(Json(detail(controller, app, s))),
        _ => Err(unknown_app(&name)),
    }
}

fn detail(controller: &Controller, app: &AppConfig, s: &AppState) -> AppDetail {
    let analyses = controller.analyses(&app.name);
    let published = controller.published();
    let mut events: Vec<EventView> = published
        .events
        .iter()
        .rev()
        .filter(|e| e.app == app.name)
        .take(DETAIL_EVENTS)
        .map(EventView::from)
        .collect();
    events.reverse();
    AppDetail {
        app: AppView::new(app, s, analyses.first()),
        analyses,
        events,
    }
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    app: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/events?app=NAME&limit=N`: the newest `limit` (default 100) events, oldest first.
pub async fn list_events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    require_read(&state, &headers)?;
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", json!(e.body_text())))?;
    if let Some(app) = &q.app {
        if !state.config().apps.contains_key(app) {
            return Err(unknown_app(app));
        }
    }
    let limit = q.limit.unwrap_or(100).min(crate::controller::MAX_EVENTS);
    let published = state.controller()?.published();
    let mut events: Vec<EventView> = published
        .events
        .iter()
        .rev()
        .filter(|e| q.app.as_ref().is_none_or(|a| &e.app == a))
        .take(limit)
        .map(EventView::from)
        .collect();
    events.reverse();
    Ok(Json(json!({ "events": events })))
}

/// The body of a mutating call: a JSON object, or nothing. Unknown fields are refused.
fn object_body(
    body: Result<Bytes, BytesRejection>,
    allowed: &[&str],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let empty = matches!(&body, Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()));
    if empty {
        return Ok(serde_json::Map::new());
    }
    let Value::Object(map) = json_body(body)? else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            json!("the body must be a JSON object"),
        ));
    };
    if let Some(extra) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            json!(format!("unknown field {extra:?}; allowed: {allowed:?}")),
        ));
    }
    Ok(map)
}

fn string_field(
    map: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            json!(format!("{key} must be a string, got {other}")),
        )),
    }
}

/// `POST /api/v1/apps/{app}/{start|pause|resume|promote|abort}`.
pub async fn post_action(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    action: &'static str,
) -> Result<Json<AppDetail>, ApiError> {
    auth::require(state.config().server.admin_token.as_ref(), &headers)?;
    let name = app_name(path)?;
    let config = state.config();
    let app = config.apps.get(&name).ok_or_else(|| unknown_app(&name))?;
    let input = match action {
        "start" => {
            let map = object_body(body, &["version"])?;
            let version = string_field(&map, "version")?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    json!("start needs {\"version\": \"LABEL\"}: the version deployed on the canary slot"),
                )
            })?;
            Input::Start { version }
        }
        "pause" => {
            let map = object_body(body, &["reason"])?;
            let reason =
                string_field(&map, "reason")?.unwrap_or_else(|| "paused by an operator".into());
            Input::Pause { reason }
        }
        "resume" => {
            object_body(body, &[])?;
            Input::Resume
        }
        "promote" => {
            object_body(body, &[])?;
            Input::Promote
        }
        "abort" => {
            let map = object_body(body, &["reason"])?;
            let reason =
                string_field(&map, "reason")?.unwrap_or_else(|| "aborted by an operator".into());
            Input::Abort { reason }
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                json!(format!(
                    "no action {other:?}; use start, pause, resume, promote or abort"
                )),
            ))
        }
    };
    let controller = state.controller()?;
    let s = controller
        .command(&name, input)
        .await
        .map_err(control_error)?;
    Ok(Json(detail(controller, app, &s)))
}

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::UnknownApp(n) => unknown_app(&n),
        ControlError::Refused(r) => {
            let (status, kind) = match r {
                Refusal::WeightOutOfRange(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_weight"),
                Refusal::BadVersion => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
                Refusal::Busy { .. } | Refusal::NotActive(_) | Refusal::NotPaused(_) | Refusal::RolledBack(_) => {
                    (StatusCode::CONFLICT, "conflict")
                }
            };
            ApiError::new(status, kind, json!(r.to_string()))
        }
        ControlError::Persist(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_persisted",
            json!("the state could not be written, so nothing changed; see the controller's log and /readyz"),
        ),
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
) -> Result<Json<AppDetail>, ApiError> {
    auth::require(state.config().server.admin_token.as_ref(), &headers)?;
    let name = app_name(path)?;
    let config = state.config();
    let app = config.apps.get(&name).ok_or_else(|| unknown_app(&name))?;
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
    let s = controller
        .set_weight(&name, weight)
        .await
        .map_err(control_error)?;
    Ok(Json(detail(controller, app, &s)))
}

/// `POST /api/v1/reload` (body optional: `{"force": true}`): reads the config file again and
/// applies it; a config with errors, or one that needs a restart, changes nothing.
pub async fn reload(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::require(state.config().server.admin_token.as_ref(), &headers)?;
    let map = object_body(body, &["force"])?;
    let force = match map.get("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                json!(format!("force must be true or false, got {other}")),
            ))
        }
    };
    let controller = state.controller()?;
    match controller.reload_from_file(force).await {
        Ok(report) => Ok(Json(json!({ "reloaded": true, "report": report }))),
        Err(ReloadError::Invalid(e)) => {
            let issues: Vec<String> = match &e {
                crate::config::ConfigError::Invalid { issues, .. } => {
                    issues.iter().map(|i| i.to_string()).collect()
                }
                other => vec![other.to_string()],
            };
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                json!(issues),
            ))
        }
        Err(ReloadError::Refused(why)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            json!(why.to_string()),
        )),
        Err(ReloadError::Persist(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_persisted",
            json!("the state could not be written, so the reload was not applied"),
        )),
    }
}
