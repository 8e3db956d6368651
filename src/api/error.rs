//! [`ApiError`]: every way a request can fail, with the status code and the error name each one
//! answers with. The body is [`ErrorBody`], `{"error": name, "detail": ...}`; 5xx answers carry
//! only fixed, safe text.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::views::ErrorBody;
use crate::config::ConfigError;
use crate::controller::{ControlError, ReloadError};
use crate::rollout::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("state is not loaded yet")]
    NotLoaded,
    /// `/readyz` while the state cannot be written.
    #[error("{0}")]
    NotReady(String),
    #[error("this endpoint needs one Authorization: Bearer <token> header")]
    Unauthorized,
    #[error("the bearer token is not valid")]
    Forbidden,
    #[error("no app named {0:?}; GET /api/v1/apps lists them")]
    UnknownApp(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: Method, path: String },
    #[error("{0}")]
    BadPath(String),
    #[error("{0}")]
    BadQuery(String),
    /// The body could not be read (too large, cut short); `status` is the rejection's.
    #[error("{detail}")]
    BadBody { status: StatusCode, detail: String },
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// Valid JSON, but not an object.
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    InvalidWeight(String),
    #[error("{0}")]
    UnknownField(String),
    #[error("{0}")]
    Conflict(String),
    /// The Docker engine refused or could not be reached.
    #[error("{0}")]
    EngineFailed(String),
    /// A reload read a config file with errors: every one of them.
    #[error("the config file has errors: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// The state file could not be written; the text says what did not happen.
    #[error("{0}")]
    NotPersisted(&'static str),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotLoaded | ApiError::NotReady(_) | ApiError::NotPersisted(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::UnknownApp(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadPath(_) | ApiError::BadQuery(_) | ApiError::MalformedJson(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::BadBody { status, .. } => *status,
            ApiError::InvalidBody(_)
            | ApiError::InvalidField(_)
            | ApiError::InvalidWeight(_)
            | ApiError::UnknownField(_)
            | ApiError::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::EngineFailed(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `error` of the answer: what a script matches on.
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::NotLoaded | ApiError::NotReady(_) => "not_ready",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::UnknownApp(_) => "unknown_app",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BadPath(_) => "bad_path",
            ApiError::BadQuery(_) => "bad_query",
            ApiError::BadBody { .. } => "bad_body",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidField(_) => "invalid_field",
            ApiError::InvalidWeight(_) => "invalid_weight",
            ApiError::UnknownField(_) => "unknown_field",
            ApiError::Conflict(_) => "conflict",
            ApiError::EngineFailed(_) => "engine_failed",
            ApiError::InvalidConfig(_) => "invalid_config",
            ApiError::NotPersisted(_) => "not_persisted",
        }
    }

    /// The `detail` of the answer: the list of issues for a bad config, else the message.
    fn detail(&self) -> Value {
        match self {
            ApiError::InvalidConfig(issues) => json!(issues),
            other => json!(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.name().to_string(),
            detail: self.detail(),
        };
        (self.status(), Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::UnknownApp(name) => ApiError::UnknownApp(name),
            ControlError::Refused(r @ Refusal::WeightOutOfRange(_)) => {
                ApiError::InvalidWeight(r.to_string())
            }
            ControlError::Refused(r @ (Refusal::BadVersion | Refusal::ReasonTooLong(_))) => {
                ApiError::InvalidField(r.to_string())
            }
            ControlError::Refused(
                r @ (Refusal::Busy { .. }
                | Refusal::NotActive(_)
                | Refusal::NotPaused(_)
                | Refusal::NotSucceeded(_)
                | Refusal::RolledBack(_)),
            ) => ApiError::Conflict(r.to_string()),
            ControlError::Persist(_) => ApiError::NotPersisted(
                "the state could not be written, so nothing changed; see the controller's log and /readyz",
            ),
        }
    }
}

impl From<crate::controller::DeployError> for ApiError {
    fn from(e: crate::controller::DeployError) -> Self {
        use crate::controller::DeployError;
        match e {
            DeployError::UnknownApp(app) => ApiError::UnknownApp(app),
            e @ (DeployError::NotManaged(_) | DeployError::NoService(_)) => {
                ApiError::Conflict(e.to_string())
            }
            e @ DeployError::BadImage(_) => ApiError::InvalidField(e.to_string()),
            e @ DeployError::Engine(_) => ApiError::EngineFailed(e.to_string()),
        }
    }
}

impl From<ReloadError> for ApiError {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::Invalid(ConfigError::Invalid { issues, .. }) => {
                ApiError::InvalidConfig(issues.iter().map(|i| i.to_string()).collect())
            }
            ReloadError::Invalid(other) => ApiError::InvalidConfig(vec![other.to_string()]),
            ReloadError::Refused(why) => ApiError::Conflict(why.to_string()),
            ReloadError::Persist(_) => ApiError::NotPersisted(
                "the state could not be written, so the reload was not applied",
            ),
        }
    }
}
