//! What the API accepts, as types: the bodies of the mutating calls (unknown fields refused by
//! serde), the release [`Action`]s and the events query. The server parses them, the client
//! sends them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ApiError;
use crate::rollout::Input;

/// A body type, with what its errors are called. An empty body stands for `{}` unless the
/// type says otherwise.
pub trait RequestBody: serde::de::DeserializeOwned {
    /// The body's shape, for error details.
    const SHAPE: &'static str;
    const MAY_BE_EMPTY: bool = true;

    /// JSON of the wrong type or value, a missing field.
    fn invalid(detail: String) -> ApiError {
        ApiError::InvalidField(format!("{detail}; the body is {}", Self::SHAPE))
    }

    /// JSON that is not an object.
    fn not_an_object() -> ApiError {
        ApiError::InvalidBody(format!("the body must be a JSON object: {}", Self::SHAPE))
    }
}

/// `POST /api/v1/apps/{app}/deploy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// The image the app's service is to run, e.g. `registry.example.com/shop/api:v4`.
    pub image: String,
}

impl RequestBody for DeployBody {
    const SHAPE: &'static str = r#"{"image": "REFERENCE"}, the image the app's service is to run"#;
    const MAY_BE_EMPTY: bool = false;
}

/// `POST /api/v1/apps/{app}/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The version deployed on the canary slot.
    pub version: String,
}

impl RequestBody for StartBody {
    const SHAPE: &'static str = r#"{"version": "LABEL"}, the version deployed on the canary slot"#;
}

/// `pause` and `abort`: an optional reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RequestBody for ReasonBody {
    const SHAPE: &'static str = r#"{"reason": "TEXT"} or nothing"#;
}

/// `resume` and `promote` take no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

impl RequestBody for NoBody {
    const SHAPE: &'static str = "{} or nothing";
}

/// `PUT /api/v1/apps/{app}/weight`. The range is the controller's to check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightBody {
    #[serde(deserialize_with = "integer")]
    pub weight: i64,
}

/// An integer written as one (`10`) or as a number without a fraction (`10.0`, `1e1`): JSON
/// does not tell them apart, and clients that hold numbers as floats send the latter.
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::{Error, Unexpected};
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // Exactly representable in an i64 (the bounds are powers of two).
        Some(f)
            if f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) =>
        {
            Ok(f as i64)
        }
        Some(f) => Err(D::Error::invalid_value(Unexpected::Float(f), &"an integer")),
        None => Err(D::Error::invalid_value(
            Unexpected::Other(&n.to_string()),
            &"an integer",
        )),
    }
}

impl RequestBody for WeightBody {
    const SHAPE: &'static str = r#"{"weight": N} with N an integer 0..=100"#;
    const MAY_BE_EMPTY: bool = false;

    fn invalid(detail: String) -> ApiError {
        ApiError::InvalidWeight(format!("{detail}; the body is {}", Self::SHAPE))
    }

    fn not_an_object() -> ApiError {
        ApiError::InvalidWeight(format!("the body must be {}", Self::SHAPE))
    }
}

/// `POST /api/v1/reload`: `force` also removes apps whose release is under way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadBody {
    pub force: Option<bool>,
}

impl RequestBody for ReloadBody {
    const SHAPE: &'static str = r#"{"force": true|false} or nothing"#;
}

/// `GET /api/v1/events?app=NAME&limit=N`. Other parameters are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// A release action, `POST /api/v1/apps/{app}/{name}`, with its body.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Start(StartBody),
    Pause(ReasonBody),
    Resume,
    Promote,
    Abort(ReasonBody),
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start(_) => "start",
            Action::Pause(_) => "pause",
            Action::Resume => "resume",
            Action::Promote => "promote",
            Action::Abort(_) => "abort",
        }
    }

    /// The path of the call for `app`.
    pub fn path(&self, app: &str) -> String {
        format!("/api/v1/apps/{app}/{}", self.name())
    }

    /// The body the call sends.
    pub fn body(&self) -> Value {
        let body = match self {
            Action::Start(b) => serde_json::to_value(b),
            Action::Pause(b) | Action::Abort(b) => serde_json::to_value(b),
            Action::Resume | Action::Promote => Ok(json!({})),
        };
        body.expect("request bodies serialize")
    }

    /// What the state machine is given; a missing reason says who acted.
    pub fn into_input(self) -> Input {
        match self {
            Action::Start(StartBody { version }) => Input::Start { version },
            Action::Pause(ReasonBody { reason }) => Input::Pause {
                reason: reason.unwrap_or_else(|| "paused by an operator".into()),
            },
            Action::Resume => Input::Resume,
            Action::Promote => Input::Promote,
            Action::Abort(ReasonBody { reason }) => Input::Abort {
                reason: reason.unwrap_or_else(|| "aborted by an operator".into()),
            },
        }
    }
}
