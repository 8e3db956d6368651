//! A client of the admin API, for the CLI. It sends the API's request types and reads every
//! answer into the API's view types ([`crate::api::views`]): an answer that does not fit them
//! (another server, not JSON) is [`ClientError::NotCanaryPilot`], naming the URL.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::requests::{Action, DeployBody, EventsQuery, ReloadBody, WeightBody};
use crate::api::views::{
    AppDetail, AppList, AppView, DeployAnswer, ErrorBody, EventList, EventView, ReloadAnswer,
};

/// The variable `serve` reads the admin token from, which the CLI reads too.
pub const TOKEN_ENV: &str = "CANARY_PILOT_ADMIN_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach canary-pilot at {url}: {source}; is `canary-pilot serve` running there? (set --server or CANARY_PILOT_SERVER)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// canary-pilot answered with an error; `hint` says what to do about a 401 or 403.
    #[error("{status}: {error}: {detail}{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    Refused {
        status: u16,
        error: String,
        detail: String,
        hint: Option<String>,
    },
    #[error("{url} did not answer as canary-pilot's API: {detail}")]
    NotCanaryPilot { url: String, detail: String },
}

pub struct Client {
    base: String,
    token: Option<String>,
    /// Where the token came from (`--token-file F`, a variable's name), for a 403's hint.
    token_from: String,
    http: reqwest::Client,
}

/// How much of an answer that is not canary-pilot's an error message quotes.
const QUOTED: usize = 120;

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            token_from: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// Names where the token came from, so that a refused token's message can say it.
    pub fn token_from(mut self, from: &str) -> Self {
        self.token_from = from.to_string();
        self
    }

    /// `GET /api/v1/apps`.
    pub async fn apps(&self) -> Result<Vec<AppView>, ClientError> {
        let list: AppList = self.read(self.request(Method::GET, "/api/v1/apps")).await?;
        Ok(list.apps)
    }

    /// `GET /api/v1/apps/{app}`.
    pub async fn app(&self, app: &str) -> Result<AppDetail, ClientError> {
        self.read(self.request(Method::GET, &format!("/api/v1/apps/{app}")))
            .await
    }

    /// `GET /api/v1/events`: the newest events, oldest first.
    pub async fn events(&self, query: &EventsQuery) -> Result<Vec<EventView>, ClientError> {
        let req = self.request(Method::GET, "/api/v1/events").query(query);
        let list: EventList = self.read(req).await?;
        Ok(list.events)
    }

    /// `POST /api/v1/apps/{app}/{action}`.
    pub async fn act(&self, app: &str, action: &Action) -> Result<AppDetail, ClientError> {
        let req = self.request(Method::POST, &action.path(app));
        self.read(req.json(&action.body())).await
    }

    /// `POST /api/v1/apps/{app}/deploy`.
    pub async fn deploy(&self, app: &str, image: &str) -> Result<DeployAnswer, ClientError> {
        let req = self.request(Method::POST, &format!("/api/v1/apps/{app}/deploy"));
        self.read(req.json(&DeployBody {
            image: image.to_string(),
        }))
        .await
    }

    /// `PUT /api/v1/apps/{app}/weight`.
    pub async fn set_weight(&self, app: &str, weight: i64) -> Result<AppDetail, ClientError> {
        let req = self.request(Method::PUT, &format!("/api/v1/apps/{app}/weight"));
        self.read(req.json(&WeightBody { weight })).await
    }

    /// `POST /api/v1/reload`.
    pub async fn reload(&self, force: bool) -> Result<ReloadAnswer, ClientError> {
        let req = self.request(Method::POST, "/api/v1/reload");
        self.read(req.json(&ReloadBody { force: Some(force) }))
            .await
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn read<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            url: self.base.clone(),
            source,
        };
        let req = req.build().map_err(unreachable)?;
        let url = req.url().to_string();
        let resp = self.http.execute(req).await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        read_answer(&url, status, &bytes).map_err(|e| self.with_hint(e))
    }

    /// Adds to a 401 how to give the CLI a token, and to a 403 where the refused one came from.
    fn with_hint(&self, e: ClientError) -> ClientError {
        match e {
            ClientError::Refused {
                status,
                error,
                detail,
                hint: None,
            } if status == 401 || status == 403 => {
                let hint = if status == 401 {
                    format!("give the CLI the admin token with --token-file FILE or the environment's {TOKEN_ENV}")
                } else {
                    let from = if self.token_from.is_empty() {
                        "the token sent".to_string()
                    } else {
                        format!("the token from {}", self.token_from)
                    };
                    format!("{from} is not the server's admin token (server.admin_token_file or the server's {TOKEN_ENV})")
                };
                ClientError::Refused {
                    status,
                    error,
                    detail,
                    hint: Some(hint),
                }
            }
            other => other,
        }
    }
}

/// A 2xx answer as `T`, an error answer as [`ClientError::Refused`]; anything else is not
/// canary-pilot's.
fn read_answer<T: DeserializeOwned>(
    url: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    let foreign = |e: serde_json::Error| ClientError::NotCanaryPilot {
        url: url.to_string(),
        detail: format!("HTTP {status}, {e}; the answer: {}", quote(bytes)),
    };
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(foreign);
    }
    let body: ErrorBody = serde_json::from_slice(bytes).map_err(foreign)?;
    Err(ClientError::Refused {
        status: status.as_u16(),
        error: body.error,
        detail: match body.detail {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        },
        hint: None,
    })
}

/// The start of an answer, on one line.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(QUOTED) {
        None if line.is_empty() => "(empty)".to_string(),
        None => format!("{line:?}"),
        Some((cut, _)) => format!("{:?}...", &line[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_of_another_shape_is_not_canary_pilots() {
        let url = "http://127.0.0.1:1/api/v1/apps/api/start";
        let other = br#"{"version": "v1", "status": 200}"#;
        let e = read_answer::<AppDetail>(url, StatusCode::OK, other).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "{url} did not answer as canary-pilot's API: HTTP 200 OK"
            )),
            "{text}"
        );
        assert!(text.contains("missing field"), "{text}");
        let html = b"<html><body>Not Found</body></html>";
        let e = read_answer::<AppDetail>(url, StatusCode::NOT_FOUND, html).unwrap_err();
        assert!(matches!(e, ClientError::NotCanaryPilot { .. }), "{e}");
        assert!(e.to_string().contains("<html>"), "{e}");
        let e = read_answer::<AppDetail>(url, StatusCode::OK, b"").unwrap_err();
        assert!(e.to_string().contains("(empty)"), "{e}");
    }

    #[test]
    fn an_error_answer_is_a_refusal_with_its_name_and_detail() {
        let body = br#"{"error": "unknown_app", "detail": "no app named \"x\""}"#;
        let e = read_answer::<AppDetail>("u", StatusCode::NOT_FOUND, body).unwrap_err();
        assert_eq!(e.to_string(), "404: unknown_app: no app named \"x\"");
    }

    #[test]
    fn long_answers_are_quoted_in_part() {
        let long = "x".repeat(1000);
        let q = quote(long.as_bytes());
        assert!(q.len() < 200 && q.ends_with("..."), "{q}");
    }
}
