//! `GET /traefik`: the dynamic configuration Traefik's HTTP provider polls.
//!
//! Always the full document with 200, served from memory as the same bytes until the state
//! changes; 503 until state is loaded (Traefik then keeps its last good config), never an empty
//! body (Traefik would delete every route).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::extract::Loaded;
use super::{auth, ApiError};

pub async fn traefik(Loaded(controller): Loaded, headers: HeaderMap) -> Result<Response, ApiError> {
    let published = controller.published();
    auth::require(published.config.server.provider_token.as_ref(), &headers)?;
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
