//! `JsonBody<T>`: a JSON request body, read with a size limit and decoded
//! so that every error names the field at fault.
//!
//! actix-web's `web::Json` reports serde's message alone, which for a value
//! of the wrong type names no field (`{"sensor_value": true}` gave
//! `invalid type: boolean`); the field is in the path serde was at, which
//! `serde_path_to_error` keeps.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::mime;
use actix_web::{http::header, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// Largest JSON request body accepted.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// A request body decoded from JSON into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    /// The decoded body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
            });
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::bad_request(
                    "body",
                    "Content-Type must be application/json",
                ));
            }
            if declared.is_some_and(|n| n > MAX_JSON_BODY) {
                return Err(ApiError::PayloadTooLarge(MAX_JSON_BODY));
            }
            let mut body = Vec::with_capacity(declared.unwrap_or(0));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::bad_request("body", e.to_string()))?;
                if body.len() + chunk.len() > MAX_JSON_BODY {
                    return Err(ApiError::PayloadTooLarge(MAX_JSON_BODY));
                }
                body.extend_from_slice(&chunk);
            }
            decode(&body).map(JsonBody)
        })
    }
}

/// Decodes `bytes` as a `T`, naming the field at fault on error: the path
/// serde was at (`sensor_value`, `items[2].name`), or for an unknown or
/// missing field at the top level the field serde names, else `body`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = if path == "." {
            named_in(&message).unwrap_or("body").to_owned()
        } else {
            path
        };
        ApiError::bad_request(field, message)
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request("body", e.to_string()))?;
    Ok(value)
}

/// The field serde names between backticks (`missing field `password``),
/// when it is a plain identifier.
fn named_in(message: &str) -> Option<&str> {
    message
        .split('`')
        .nth(1)
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read by the decoder only
    struct Patch {
        sensor_value: f64,
        note: Option<String>,
    }

    fn field_of(body: &str) -> String {
        match decode::<Patch>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_field() {
        assert_eq!(field_of(r#"{"sensor_value": true}"#), "sensor_value");
        assert_eq!(field_of(r#"{"sensor_value": 1, "note": 5}"#), "note");
    }

    #[test]
    fn a_missing_or_unknown_field_is_named() {
        assert_eq!(field_of(r#"{}"#), "sensor_value");
        assert_eq!(field_of(r#"{"sensor_value": 1, "colour": 2}"#), "colour");
    }

    #[test]
    fn broken_json_and_trailing_data_are_the_body() {
        assert_eq!(field_of("not json"), "body");
        assert_eq!(field_of(r#"{"sensor_value": 1} {}"#), "body");
        assert_eq!(field_of(r#"[]"#), "body");
    }

    #[test]
    fn a_number_too_large_for_f64_names_its_field() {
        assert_eq!(field_of(r#"{"sensor_value": 1e400}"#), "sensor_value");
    }
}
