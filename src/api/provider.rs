//! `GET /traefik`: the dynamic configuration Traefik's HTTP provider polls.
//!
//! Always the full document with 200, served from memory as the same bytes until the state
//! changes; 503 until state is loaded (Traefik then keeps its last good config), never an empty
//! body (Traefik would delete every route).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{auth, ApiError, ApiState};

pub async fn traefik(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require(state.config().server.provider_token.as_ref(), &headers)?;
    let published = state.controller()?.published();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        published.document.clone(),
    )
        .into_response())
}
