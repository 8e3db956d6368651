use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::config::tests_support::sample_config;
use crate::config::{Config, Secret};
use crate::controller::Dependencies;
use crate::store::MemStore;

fn loaded_with(config: Config) -> (Router, Arc<MemStore>) {
    let store = Arc::new(MemStore::default());
    let controller = Controller::load(Arc::new(config), Dependencies::new(store.clone())).unwrap();
    (router(ApiState::loaded(Arc::new(controller))), store)
}

fn loaded() -> Router {
    loaded_with(sample_config()).0
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn json_call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let (s, b) = call(app, method, uri, None, Body::from(body.to_string())).await;
    let v: Value = serde_json::from_slice(&b)
        .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&b)));
    (s, v)
}

#[tokio::test]
async fn provider_answers_503_until_state_is_loaded_then_the_same_bytes() {
    let state = ApiState::pending();
    let app = router(state.clone());
    let (s, body) = call(&app, "GET", "/traefik", None, Body::empty()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.is_empty());
    assert_eq!(
        call(&app, "GET", "/readyz", None, Body::empty()).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&app, "GET", "/healthz", None, Body::empty()).await.0,
        StatusCode::OK
    );

    let controller = Controller::load(
        Arc::new(sample_config()),
        Dependencies::new(Arc::new(MemStore::default())),
    )
    .unwrap();
    state.set_controller(Arc::new(controller));
    let (s1, b1) = call(&app, "GET", "/traefik", None, Body::empty()).await;
    let (s2, b2) = call(&app, "GET", "/traefik", None, Body::empty()).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(b1, b2);
    let doc: Value = serde_json::from_slice(&b1).unwrap();
    assert!(doc["http"]["services"]["api"]["weighted"].is_object());
    assert_eq!(
        call(&app, "GET", "/readyz", None, Body::empty()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn weight_change_is_served_by_the_provider() {
    let app = loaded();
    let (s, v) = json_call(&app, "PUT", "/api/v1/apps/api/weight", r#"{"weight": 30}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["weights"]["canary"], 30);
    assert_eq!(v["weights"]["stable"], 70);
    let (_, doc) = json_call(&app, "GET", "/traefik", "").await;
    assert_eq!(
        doc["http"]["services"]["api"]["weighted"]["services"][1]["weight"],
        30
    );
    let (_, one) = json_call(&app, "GET", "/api/v1/apps/api", "").await;
    assert_eq!(one["weights"]["canary"], 30);
    assert_eq!(one["stable"]["slot"], "blue");
    assert_eq!(one["canary"]["slot"], "green");
    let (_, all) = json_call(&app, "GET", "/api/v1/apps", "").await;
    assert_eq!(all["apps"][0]["name"], "api");
}

/// JSON does not tell `10.0` from `10`: a weight written with a zero fraction is an integer.
#[tokio::test]
async fn a_weight_written_as_a_float_without_fraction_is_an_integer() {
    let app = loaded();
    for (body, weight) in [
        (r#"{"weight": 11.0}"#, 11),
        (r#"{"weight": 2e1}"#, 20),
        (r#"{"weight": 0.0}"#, 0),
    ] {
        let (s, v) = json_call(&app, "PUT", "/api/v1/apps/api/weight", body).await;
        assert_eq!(s, StatusCode::OK, "{body}: {v}");
        assert_eq!(v["weights"]["canary"], weight, "{body}: {v}");
    }
}

#[tokio::test]
async fn bad_requests_get_4xx_json_errors() {
    let app = loaded();
    let huge = format!(
        "{{\"weight\": 1, \"pad\": \"{}\"}}",
        "x".repeat(MAX_BODY_BYTES + 10)
    );
    const W: &str = "/api/v1/apps/api/weight";
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, u16, &str); 22] = [
        ("PUT", W, "{", 400, "malformed_json"),
        ("PUT", W, "", 400, "malformed_json"),
        ("PUT", W, r#"{"weight": 101}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": -1}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": 1e400}"#, 400, "malformed_json"),
        ("PUT", W, r#"{"weight": 99999999999999999999}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": 10.5}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": 101.0}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": 1e19}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": "10"}"#, 422, "invalid_weight"),
        ("PUT", W, r#"[10]"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"wieght": 10}"#, 422, "invalid_weight"),
        ("PUT", W, r#"{"weight": 10, "x": 1}"#, 422, "unknown_field"),
        ("PUT", W, &huge, 413, "bad_body"),
        ("PUT", "/api/v1/apps/nope/weight", r#"{"weight": 10}"#, 404, "unknown_app"),
        ("GET", "/api/v1/apps/nope", "", 404, "unknown_app"),
        ("GET", "/api/v1/apps/..%2F..%2Fetc", "", 404, "unknown_app"),
        ("GET", "/api/v1/apps/%FF", "", 400, "bad_path"),
        ("GET", "/api/v1/apps/api/../../traefik", "", 404, "not_found"),
        ("GET", "/nothing/here", "", 404, "not_found"),
        ("POST", W, r#"{"weight": 10}"#, 405, "method_not_allowed"),
        ("DELETE", "/traefik", "", 405, "method_not_allowed"),
    ];
    for (method, uri, body, status, error) in cases {
        let (s, v) = json_call(&app, method, uri, body).await;
        let shown = &body[..body.len().min(40)];
        assert_eq!(s.as_u16(), status, "{method} {uri} {shown}: {v}");
        assert_eq!(v["error"], error, "{method} {uri}: {v}");
        assert!(v.get("detail").is_some(), "{v}");
    }
    // Nothing above changed the state.
    let (_, one) = json_call(&app, "GET", "/api/v1/apps/api", "").await;
    assert_eq!(one["weights"]["canary"], 0);
    assert_eq!(one["generation"], 1);
}

#[tokio::test]
async fn a_405_says_in_allow_which_methods_the_path_takes() {
    let app = loaded();
    for (method, uri, allow) in [
        ("POST", "/api/v1/apps/api/weight", "PUT"),
        ("DELETE", "/traefik", "GET, HEAD"),
        ("PUT", "/api/v1/apps/web", "GET, HEAD"),
        ("GET", "/api/v1/reload", "POST"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(resp.headers()["allow"], allow, "{method} {uri}");
    }
    // What Allow says of GET paths holds: HEAD is answered.
    let head = Request::builder()
        .method("HEAD")
        .uri("/healthz")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(head).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn mutations_need_the_admin_token_when_one_is_set_and_reads_stay_open() {
    let mut config = sample_config();
    config.server.admin_token = Some(Secret::new("adm1n"));
    let (app, _) = loaded_with(config);
    let body = || Body::from(r#"{"weight": 5}"#);
    let uri = "/api/v1/apps/api/weight";
    assert_eq!(
        call(&app, "PUT", uri, None, body()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "PUT", uri, Some("wrong"), body()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "PUT", uri, Some("adm1n"), body()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/api/v1/apps", None, Body::empty())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/traefik", None, Body::empty()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn provider_token_protects_the_provider_endpoint() {
    let mut config = sample_config();
    config.server.provider_token = Some(Secret::new("tr4efik"));
    let (app, _) = loaded_with(config);
    assert_eq!(
        call(&app, "GET", "/traefik", None, Body::empty()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/traefik", Some("nope"), Body::empty())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "GET", "/traefik", Some("tr4efik"), Body::empty())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unpersistable_change_is_refused_with_503_and_readiness_says_why() {
    let (app, store) = loaded_with(sample_config());
    let (_, before) = call(&app, "GET", "/traefik", None, Body::empty()).await;
    store.fail_writes(true);
    let (s, v) = json_call(&app, "PUT", "/api/v1/apps/api/weight", r#"{"weight": 40}"#).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "not_persisted");
    let (_, after) = call(&app, "GET", "/traefik", None, Body::empty()).await;
    assert_eq!(before, after, "the provider keeps serving the last config");
    let (s, v) = json_call(&app, "GET", "/readyz", "").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be persisted"),
        "{v}"
    );
}

#[tokio::test]
async fn protect_reads_closes_the_admin_reads_but_not_health_or_the_provider() {
    let mut config = sample_config();
    config.server.admin_token = Some(Secret::new("adm1n"));
    config.server.protect_reads = true;
    let (app, _) = loaded_with(config);
    for uri in ["/api/v1/apps", "/api/v1/apps/api", "/api/v1/events"] {
        assert_eq!(
            call(&app, "GET", uri, None, Body::empty()).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            call(&app, "GET", uri, Some("x"), Body::empty()).await.0,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
        assert_eq!(
            call(&app, "GET", uri, Some("adm1n"), Body::empty()).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
    for uri in ["/healthz", "/readyz", "/traefik", "/metrics"] {
        assert_eq!(
            call(&app, "GET", uri, None, Body::empty()).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
}

#[test]
fn every_action_is_a_post_route() {
    use requests::{Action, ReasonBody, StartBody};
    let actions = [
        Action::Start(StartBody {
            version: "v2".into(),
        }),
        Action::Pause(ReasonBody::default()),
        Action::Resume,
        Action::Promote,
        Action::Abort(ReasonBody::default()),
    ];
    for action in actions {
        let path = action.path("{app}");
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method == Verb::Post && r.path == path),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_admin_route_answers_503_until_state_is_loaded() {
    let app = router(ApiState::pending());
    for r in ROUTES.iter().filter(|r| r.path != "/healthz") {
        let uri = r.path.replace("{app}", "api");
        let (s, v) = json_call(&app, r.method.as_str(), &uri, "{}").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {v}");
        assert_eq!(v["error"], "not_ready", "{uri}: {v}");
    }
}

#[tokio::test]
async fn answers_read_back_into_the_view_types_without_losing_a_field() {
    let app = loaded();
    json_call(
        &app,
        "POST",
        "/api/v1/apps/api/start",
        r#"{"version": "v2"}"#,
    )
    .await;
    fn same<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) {
        let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(serde_json::to_value(typed).unwrap(), v);
    }
    same::<views::AppList>(json_call(&app, "GET", "/api/v1/apps", "").await.1);
    same::<views::AppDetail>(json_call(&app, "GET", "/api/v1/apps/api", "").await.1);
    same::<views::EventList>(json_call(&app, "GET", "/api/v1/events", "").await.1);
    same::<views::ErrorBody>(json_call(&app, "GET", "/api/v1/apps/nope", "").await.1);
    same::<views::HealthView>(json_call(&app, "GET", "/readyz", "").await.1);
}

#[tokio::test]
async fn every_mutating_body_refuses_unknown_fields_and_wrong_types() {
    let app = loaded();
    #[rustfmt::skip]
    let cases = [
        ("/api/v1/apps/api/start", r#"{"version": "v2", "x": 1}"#, "unknown_field"),
        ("/api/v1/apps/api/start", r#"{"version": 2}"#, "invalid_field"),
        ("/api/v1/apps/api/start", "", "invalid_field"),
        ("/api/v1/apps/api/pause", r#"{"reason": "r", "x": 1}"#, "unknown_field"),
        ("/api/v1/apps/api/pause", r#"{"reason": 1}"#, "invalid_field"),
        ("/api/v1/apps/api/pause", "[1]", "invalid_body"),
        ("/api/v1/apps/api/resume", r#"{"x": 1}"#, "unknown_field"),
        ("/api/v1/apps/api/promote", r#"{"x": 1}"#, "unknown_field"),
        ("/api/v1/apps/api/abort", r#"{"why": "r"}"#, "unknown_field"),
        ("/api/v1/reload", r#"{"force": "yes"}"#, "invalid_field"),
        ("/api/v1/reload", r#"{"forse": true}"#, "unknown_field"),
    ];
    for (uri, body, error) in cases {
        let (s, v) = json_call(&app, "POST", uri, body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{uri} {body}: {v}");
        assert_eq!(v["error"], error, "{uri} {body}: {v}");
    }
    let (s, v) = json_call(&app, "POST", "/api/v1/apps/api/pause", "").await;
    assert_eq!(s, StatusCode::CONFLICT, "an empty body is no body: {v}");
}

#[tokio::test]
async fn a_reloaded_config_is_the_one_the_api_uses() {
    let controller = Arc::new(
        Controller::load(
            Arc::new(sample_config()),
            Dependencies::new(Arc::new(MemStore::default())),
        )
        .unwrap(),
    );
    let app = router(ApiState::loaded(controller.clone()));
    let body = || Body::from(r#"{"weight": 5}"#);
    let uri = "/api/v1/apps/api/weight";
    assert_eq!(call(&app, "PUT", uri, None, body()).await.0, StatusCode::OK);
    let mut config = sample_config();
    config.server.admin_token = Some(Secret::new("adm1n"));
    controller.reload(config, false).await.unwrap();
    assert_eq!(
        call(&app, "PUT", uri, None, body()).await.0,
        StatusCode::UNAUTHORIZED
    );
}
