//! The HTTP surface: [`router`] builds every route of [`ROUTES`] (Traefik provider, health,
//! admin API) over an [`ApiState`]; [`ApiError`] turns failures into JSON `{"error", "detail"}`
//! answers. [`views`] and [`requests`] are the API's types, shared with the client
//! (`client.rs`, above this module).

mod admin;
mod auth;
mod error;
mod extract;
mod health;
mod provider;
pub mod requests;
pub mod views;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::controller::Controller;

pub use error::ApiError;
pub use views::AppView;

/// Largest request body the API reads; larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler sees: the controller, set once state is loaded. The config in force is
/// the controller's; until it is loaded every route but `/healthz` answers 503.
#[derive(Clone, Default)]
pub struct ApiState {
    /// Set once, by [`ApiState::set_controller`].
    controller: Arc<OnceLock<Arc<Controller>>>,
}

impl ApiState {
    /// A state whose controller is not loaded yet.
    pub fn pending() -> Self {
        ApiState::default()
    }

    pub fn loaded(controller: Arc<Controller>) -> Self {
        let state = ApiState::pending();
        state.set_controller(controller);
        state
    }

    /// Hands the loaded controller to every clone of this state; only the first call counts.
    pub fn set_controller(&self, controller: Arc<Controller>) {
        let _ = self.controller.set(controller);
    }

    fn controller(&self) -> Result<Arc<Controller>, ApiError> {
        self.controller.get().cloned().ok_or(ApiError::NotLoaded)
    }
}

/// The methods the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Put => "PUT",
            Verb::Post => "POST",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Post => MethodFilter::POST,
        }
    }
}

/// One route: its method, its path, and its handler for that method.
pub struct Route {
    pub method: Verb,
    pub path: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<ApiState>,
}

/// `route!(Get "/path" => handler)`: one row of [`ROUTES`].
macro_rules! route {
    ($method:ident $path:literal => $handler:path) => {
        Route {
            method: Verb::$method,
            path: $path,
            handler: |m| on(m, $handler),
        }
    };
}

/// Every route. The router is built from this table alone, and a test checks that
/// docs/api.md documents exactly these.
pub const ROUTES: &[Route] = &[
    route!(Get "/traefik" => provider::traefik),
    route!(Get "/healthz" => health::healthz),
    route!(Get "/readyz" => health::readyz),
    route!(Get "/metrics" => health::metrics),
    route!(Get "/api/v1/apps" => admin::list_apps),
    route!(Get "/api/v1/apps/{app}" => admin::get_app),
    route!(Put "/api/v1/apps/{app}/weight" => admin::set_weight),
    route!(Post "/api/v1/apps/{app}/start" => admin::start),
    route!(Post "/api/v1/apps/{app}/deploy" => admin::deploy),
    route!(Post "/api/v1/apps/{app}/pause" => admin::pause),
    route!(Post "/api/v1/apps/{app}/resume" => admin::resume),
    route!(Post "/api/v1/apps/{app}/promote" => admin::promote),
    route!(Post "/api/v1/apps/{app}/abort" => admin::abort),
    route!(Get "/api/v1/events" => admin::list_events),
    route!(Post "/api/v1/reload" => admin::reload),
];

impl Route {
    fn method_router(&self) -> MethodRouter<ApiState> {
        (self.handler)(self.method.filter())
    }
}

pub fn router(state: ApiState) -> Router {
    ROUTES
        .iter()
        .fold(Router::new(), |router, r| {
            router.route(r.path, r.method_router())
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

/// `405`, with the methods the path takes in `Allow`.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let allow = allowed_methods(uri.path());
    let error = ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_string(),
    };
    ([(header::ALLOW, allow)], error).into_response()
}

/// The methods [`ROUTES`] serve on `path` (a `GET` route answers `HEAD` too), as `Allow` lists
/// them.
fn allowed_methods(path: &str) -> String {
    let matches = |pattern: &str| {
        let (mut want, mut got) = (pattern.split('/'), path.split('/'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w == g || (w.starts_with('{') && !g.is_empty()) => {}
                _ => return false,
            }
        }
    };
    let mut methods = Vec::new();
    for r in ROUTES.iter().filter(|r| matches(r.path)) {
        match r.method {
            Verb::Get => methods.extend(["GET", "HEAD"]),
            Verb::Put => methods.push("PUT"),
            Verb::Post => methods.push("POST"),
        }
    }
    methods.join(", ")
}

#[cfg(test)]
mod tests;
