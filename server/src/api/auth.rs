//! The HTTP side of access control: [`authenticate`] (a middleware on every
//! non-public route) reads `Authorization: Bearer` — on `/ws` also
//! `?token=`, since browsers cannot set headers on a WebSocket — and leaves
//! the [`Principal`] in the request's extensions, or answers 401. Handlers
//! take a [`Caller`] and authorize their own operation on their own session
//! (403). [`admin_only`] guards `/metrics` and `/ready` on the main port.

use super::AppState;
use super::error::ApiError;
use crate::auth::policy::{Grant, Operation, authorize};
use crate::auth::{Principal, Unauthorized, now_seconds};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// The Bearer credential of a request: the `Authorization` header, or, when
/// `query_token` (the WebSocket route), a `token` query parameter. `Ok(None)`
/// when there is none; an `Authorization` header of another scheme is an
/// error rather than silently ignored.
pub fn bearer<'a>(
    authorization: Option<&'a [u8]>,
    query: Option<&'a str>,
    query_token: bool,
) -> Result<Option<&'a str>, Unauthorized> {
    if let Some(raw) = authorization {
        let value = std::str::from_utf8(raw).map_err(|_| Unauthorized::NotBearer)?;
        let (scheme, credential) = value.split_once(' ').ok_or(Unauthorized::NotBearer)?;
        let credential = credential.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
            return Err(Unauthorized::NotBearer);
        }
        return Ok(Some(credential));
    }
    if !query_token {
        return Ok(None);
    }
    // Tokens and API keys are URL-safe as issued (base64url and the key
    // charset), so the raw value is the credential.
    Ok(query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty()))
}

/// Middleware: authenticates the request (401 `UNAUTHORIZED` with
/// `WWW-Authenticate: Bearer`), then hands it on with its [`Principal`].
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    // Auth off means off: a header is not even parsed (a client that always
    // sends one, even a malformed one, is served as anonymous).
    let principal = if !app.auth.enabled() {
        Ok(Principal::Anonymous)
    } else {
        let is_ws = req.uri().path() == "/ws";
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        bearer(header, req.uri().query(), is_ws)
            .and_then(|cred| app.auth.authenticate(cred, now_seconds()))
    };
    match principal {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(why) => ApiError::Unauthorized(why).into_response(),
    }
}

/// Middleware for `/metrics` and `/ready` on the main port when auth is on:
/// API keys only (on the admin listener they are open).
pub async fn admin_only(req: Request, next: Next) -> Response {
    let allowed = req
        .extensions()
        .get::<Principal>()
        .map(|p| authorize(p, Operation::Admin, None));
    match allowed {
        Some(Ok(_)) => next.run(req).await,
        Some(Err(d)) => ApiError::Forbidden(d.to_string()).into_response(),
        None => ApiError::Unauthorized(Unauthorized::Missing).into_response(),
    }
}

/// The authenticated caller of a handler. Behind [`authenticate`] it is
/// always there; a route without that layer fails closed (401).
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthorized(Unauthorized::Missing))
    }
}

impl Caller {
    /// May the caller perform `op` on `session`? A refusal is a 403
    /// `FORBIDDEN` saying why.
    pub fn authorize(&self, op: Operation, session: Option<Uuid>) -> Result<Grant, ApiError> {
        authorize(&self.0, op, session).map_err(|d| ApiError::Forbidden(d.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_header_then_the_ws_query() {
        assert_eq!(bearer(Some(b"Bearer abc"), None, false), Ok(Some("abc")));
        assert_eq!(bearer(Some(b"bearer  abc "), None, false), Ok(Some("abc")));
        assert_eq!(
            bearer(Some(b"Basic abc"), None, false),
            Err(Unauthorized::NotBearer)
        );
        assert_eq!(
            bearer(Some(b"Bearer "), None, false),
            Err(Unauthorized::NotBearer)
        );
        assert_eq!(
            bearer(Some(b"Bearer"), None, false),
            Err(Unauthorized::NotBearer)
        );
        assert_eq!(
            bearer(None, Some("sessionId=x&token=t.k.n"), true),
            Ok(Some("t.k.n"))
        );
        assert_eq!(
            bearer(None, Some("token=t"), false),
            Ok(None),
            "?token= only on /ws"
        );
        assert_eq!(bearer(None, Some("token="), true), Ok(None));
        assert_eq!(
            bearer(Some(b"Bearer h"), Some("token=q"), true),
            Ok(Some("h"))
        );
    }
}
