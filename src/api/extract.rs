//! What a handler needs before it runs, checked in this order: the state is loaded (else 503),
//! the token ([`Admin`], [`Reader`]), the app in the path ([`AppName`]), the body ([`Body`]).
//! Each failure is an [`ApiError`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::requests::RequestBody;
use super::{auth, ApiError, ApiState};
use crate::controller::Controller;

/// The loaded controller: until the state is loaded, a route that needs it answers 503.
pub struct Loaded(pub Arc<Controller>);

impl FromRequestParts<ApiState> for Loaded {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        state.controller().map(Loaded)
    }
}

/// The loaded controller, for a request that passed the admin token.
pub struct Admin(pub Arc<Controller>);

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let controller = state.controller()?;
        auth::require(
            controller.config().server.admin_token.as_ref(),
            &parts.headers,
        )?;
        Ok(Admin(controller))
    }
}

/// The loaded controller, for a read: it needs the admin token only with
/// `server.protect_reads`.
pub struct Reader(pub Arc<Controller>);

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let controller = state.controller()?;
        let server = &controller.config().server;
        if server.protect_reads {
            auth::require(server.admin_token.as_ref(), &parts.headers)?;
        }
        Ok(Reader(controller))
    }
}

/// The `{app}` of the path: the name of a configured app.
pub struct AppName(pub String);

impl FromRequestParts<ApiState> for AppName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadPath(e.body_text()))?;
        if !state.controller()?.config().apps.contains_key(&name) {
            return Err(ApiError::UnknownApp(name));
        }
        Ok(AppName(name))
    }
}

/// A JSON body of type `T`, whatever the Content-Type.
pub struct Body<T>(pub T);

impl<T: RequestBody> FromRequest<ApiState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            ApiError::BadBody {
                status: if status.is_client_error() {
                    status
                } else {
                    StatusCode::BAD_REQUEST
                },
                detail: e.body_text(),
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// Parses a body: not JSON is `malformed_json`; a known field of the wrong type or a missing
/// one is `T::invalid`, and wins over an unknown field (so `{"wieght": 10}` says what the
/// weight needs); an unknown field alone is `unknown_field`.
pub fn parse<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if T::MAY_BE_EMPTY && bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(T::not_an_object());
    };
    let error = match T::deserialize(Value::Object(fields.clone())) {
        Ok(body) => return Ok(body),
        Err(e) => e,
    };
    let names = field_names::<T>();
    let known: Map<String, Value> = fields
        .into_iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .collect();
    match T::deserialize(Value::Object(known)) {
        // Without the fields it does not know, the body is fine: serde refused an unknown one.
        Ok(_) => Err(ApiError::UnknownField(error.to_string())),
        Err(e) => Err(T::invalid(e.to_string())),
    }
}

/// The field names serde's derive gives a struct, read by letting it deserialize from a
/// deserializer that only records them.
fn field_names<T: de::DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut names));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::requests::{NoBody, ReasonBody, StartBody, WeightBody};

    #[test]
    fn field_names_come_from_the_derive() {
        assert_eq!(field_names::<WeightBody>(), ["weight"]);
        assert_eq!(field_names::<ReasonBody>(), ["reason"]);
        assert!(field_names::<NoBody>().is_empty());
    }

    #[test]
    fn a_bad_known_field_wins_over_an_unknown_one() {
        let name = |r: Result<StartBody, ApiError>| r.map(|_| "ok").unwrap_or_else(|e| e.name());
        assert_eq!(name(parse(br#"{"version": "v2"}"#)), "ok");
        assert_eq!(
            name(parse(br#"{"version": "v2", "x": 1}"#)),
            "unknown_field"
        );
        assert_eq!(name(parse(br#"{"x": 1}"#)), "invalid_field");
        assert_eq!(name(parse(br#"{"a": 1, "version": 2}"#)), "invalid_field");
        assert_eq!(name(parse(b"  ")), "invalid_field");
        assert_eq!(name(parse(b"[]")), "invalid_body");
        assert_eq!(name(parse(b"{")), "malformed_json");
    }
}
