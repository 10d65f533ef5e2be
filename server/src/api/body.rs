//! Request-body extraction with the contract's rules: 1 MiB cap (413),
//! `application/json` only (415), malformed JSON is a 400 naming `body`, a
//! well-formed body of the wrong shape is a 400 naming the field (the typed
//! bodies are in [`super::requests`]).

use super::error::ApiError;
use super::requests::Root;
use crate::domain::FieldError;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body read as `T`, or `None` when the request had no body at all
/// (or only whitespace).
pub struct JsonBody<T>(pub Option<T>);

fn is_json(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::TooLarge);
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::TooLarge)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        if !content_type.as_deref().is_some_and(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse(&bytes)
            .map(|v| JsonBody(Some(v)))
            .map_err(ApiError::from)
    }
}

fn malformed(e: impl std::fmt::Display) -> FieldError {
    FieldError::new("body", format!("malformed JSON: {e}"))
}

/// Reads a request body as `T`. Syntax is checked first, over the whole
/// body, so malformed JSON anywhere is reported on `body` whatever comes
/// before it; then the typed read reports the first wrong value at its path.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let text = std::str::from_utf8(bytes).map_err(malformed)?;
    serde_json::from_str::<IgnoredAny>(text).map_err(malformed)?;
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de)
        .map(|Root(v)| v)
        .map_err(field_error)
}

/// Reads a body already held as JSON as `T`, with the same errors as
/// [`parse`].
pub fn from_value<T: DeserializeOwned>(body: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(body)
        .map(|Root(v)| v)
        .map_err(field_error)
}

/// The field a typed read failed at (`body` for the root) and the message
/// without serde_json's ` at line L column C`.
fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let field = if path == "." {
        "body".to_string()
    } else {
        path
    };
    let inner = e.into_inner();
    if !inner.is_data() {
        return malformed(inner);
    }
    let text = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    FieldError::new(field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::requests::{CreateSessionBody, SwitchBody};

    #[test]
    fn malformed_json_is_reported_on_body() {
        let raws: [&[u8]; 7] = [
            b"{\"session_id\": ",
            b"{]",
            b"{}x",
            b"{'a': 1}",
            b"{\"a\":1,}",
            b"{\"total_time_ms\": \"x\", ]",
            &[0xff, 0xfe, 0x00, 0x7b],
        ];
        for raw in raws {
            let e = parse::<CreateSessionBody>(raw).err();
            assert_eq!(e.map(|e| e.field), Some("body".into()), "{raw:?}");
        }
    }

    #[test]
    fn wrong_values_are_reported_at_their_path_without_a_position() {
        let e = parse::<SwitchBody>(b"{\n  \"expected_version\": \"two\"\n}").err();
        assert_eq!(
            e,
            Some(FieldError::new(
                "expected_version",
                "must be a positive integer"
            ))
        );
        let e = parse::<SwitchBody>(b"null").err();
        assert_eq!(e, Some(FieldError::new("body", "must be a JSON object")));
    }

    #[test]
    fn json_media_types() {
        assert!(super::is_json("application/json"));
        assert!(super::is_json("Application/JSON; charset=utf-8"));
        assert!(super::is_json("application/merge-patch+json"));
        assert!(!super::is_json("text/plain"));
        assert!(!super::is_json("application/x-www-form-urlencoded"));
    }
}
