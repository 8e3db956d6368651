//! Bearer-token checks for the admin API and the provider endpoint.

use axum::http::{header, HeaderMap};

use super::ApiError;
use crate::config::Secret;

/// Passes when no token is configured or the request carries the right one. Missing: 401;
/// wrong: 403. The comparison takes the same time wherever the first difference is.
pub fn require(expected: Option<&Secret>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    // Two headers are refused, not resolved: which one counts would depend on who added it.
    let mut sent = headers.get_all(header::AUTHORIZATION).iter();
    let (first, second) = (sent.next(), sent.next());
    let presented = first
        .filter(|_| second.is_none())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => Err(ApiError::Unauthorized),
        Some(token) if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Forbidden),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_equality() {
        for (a, b) in [
            ("", ""),
            ("a", "a"),
            ("a", "b"),
            ("ab", "a"),
            ("a", "ab"),
            ("", "x"),
        ] {
            assert_eq!(
                constant_time_eq(a.as_bytes(), b.as_bytes()),
                a == b,
                "{a:?} {b:?}"
            );
        }
        // A length difference that is a multiple of 256 is still a difference.
        let long = "x".repeat(256);
        assert!(!constant_time_eq(long.as_bytes(), b""));
    }

    #[test]
    fn two_authorization_headers_are_refused_even_if_one_is_right() {
        let token = Secret::new("s3cret".to_string());
        let mut headers = HeaderMap::new();
        headers.append(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(require(Some(&token), &headers).is_ok());
        headers.append(header::AUTHORIZATION, "Bearer other".parse().unwrap());
        assert!(matches!(
            require(Some(&token), &headers),
            Err(ApiError::Unauthorized)
        ));
    }
}
