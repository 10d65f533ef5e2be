//! The one place where failures become HTTP responses: every typed error
//! of the layers below (`FieldError`, `ServiceError`, `AuditError`) is
//! mapped here, once. Internal details are logged, never sent: the response
//! carries its `ApiError` in an extension and [`log_errors`] (a middleware)
//! logs it, so building a response has no side effects (the shape of axum's
//! `examples/error-handling`).

use crate::audit::AuditError;
use crate::auth::Unauthorized;
use crate::domain::{DomainError, FieldError};
use crate::limits::RetryAfter;
use crate::service::ServiceError;
use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// Every error the API returns. Variants that hold a `String` other than a
/// client-facing message say so: that text is the internal cause, logged
/// and never sent.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400 VALIDATION_ERROR naming the field.
    Validation(FieldError),
    /// 404 SESSION_NOT_FOUND.
    NotFound,
    /// 404 NOT_FOUND for unknown routes.
    NoRoute,
    /// 409 SESSION_EXISTS.
    Exists,
    /// 400 INVALID_STATE_TRANSITION.
    InvalidTransition(String),
    /// 409 CONFLICT.
    Conflict(String),
    /// 403 NOT_YOUR_TURN: a participant's device pressed another's clock.
    NotYourTurn(String),
    /// 413 PAYLOAD_TOO_LARGE.
    TooLarge,
    /// 415 UNSUPPORTED_MEDIA_TYPE.
    UnsupportedMediaType,
    /// 503 SERVICE_UNAVAILABLE; holds the cause (logged).
    Unavailable(String),
    /// 503 AUDIT_UNAVAILABLE: no audit store is configured.
    AuditNotConfigured,
    /// 503 AUDIT_UNAVAILABLE: the audit store failed; holds the cause
    /// (logged).
    AuditUnavailable(String),
    /// 401 UNAUTHORIZED with `WWW-Authenticate: Bearer`: no usable credential.
    Unauthorized(Unauthorized),
    /// 403 FORBIDDEN: the credential does not allow this; the message says why.
    Forbidden(String),
    /// 503 TOKENS_UNAVAILABLE: minting needs TOKEN_SECRET, which is not set.
    TokensNotConfigured,
    /// 500 INTERNAL_ERROR; holds the cause (logged).
    Internal(String),
    /// 429 RATE_LIMITED with `Retry-After`.
    RateLimited(RetryAfter),
    /// 429 QUOTA_EXCEEDED naming the quota (`details.quota`).
    QuotaExceeded(&'static str),
    /// 503 SERVICE_UNAVAILABLE: the request missed its deadline.
    Deadline,
    /// 503 SERVICE_UNAVAILABLE: a per-instance capacity (named) is full.
    AtCapacity(&'static str),
}

/// The error body schema (`{"error": {...}}`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Error code, message and optional details object.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `VALIDATION_ERROR`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Extra facts, e.g. `{"field": "total_time_ms"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// 400 for `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(FieldError::new(field, message))
    }
}

impl From<FieldError> for ApiError {
    fn from(f: FieldError) -> Self {
        ApiError::Validation(f)
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::BadCursor => {
                ApiError::field("cursor", "is not a next_cursor returned by this endpoint")
            }
            other => ApiError::AuditUnavailable(other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Exists => ApiError::Exists,
            ServiceError::Domain(DomainError::Invalid(f)) => ApiError::Validation(f),
            ServiceError::Domain(DomainError::Conflict(m)) => ApiError::Conflict(m),
            ServiceError::Domain(d @ DomainError::NotYourTurn(_)) => {
                ApiError::NotYourTurn(d.to_string())
            }
            ServiceError::Domain(d @ DomainError::InvalidTransition { .. }) => {
                ApiError::InvalidTransition(d.to_string())
            }
            ServiceError::Domain(DomainError::NotDue) => {
                ApiError::Internal("timeout not due".into())
            }
            ServiceError::Contention => {
                ApiError::Conflict("too many concurrent changes to this session; retry".into())
            }
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
            ServiceError::QuotaExceeded(q) => ApiError::QuotaExceeded(q),
            ServiceError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl ApiError {
    /// Logs the internal cause, if this error has one worth a look:
    /// `error` for a failed request, `warn` for a store that is down
    /// (CONTRIBUTING.md's levels). Client errors are not logged.
    fn log(&self, method: &str, route: &str) {
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(%method, %route, error = %cause, "internal error");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%method, %route, error = %cause, "state store unavailable");
            }
            ApiError::Deadline => {
                tracing::warn!(%method, %route, "request missed its deadline");
            }
            ApiError::AuditUnavailable(cause) => {
                tracing::warn!(%method, %route, error = %cause, "audit history read failed");
            }
            _ => {}
        }
    }
}

/// Middleware: logs the [`ApiError`] a response carries, with the method
/// and route template of the request that got it.
pub async fn log_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    if let Some(err) = resp.extensions().get::<ApiError>() {
        let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        err.log(method.as_str(), route);
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = match &self {
            ApiError::Validation(f) => (
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("{}: {}", f.field, f.message),
                Some(json!({"field": f.field})),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "SESSION_NOT_FOUND",
                "session not found".to_string(),
                None,
            ),
            ApiError::NoRoute => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such route".to_string(),
                None,
            ),
            ApiError::Exists => (
                StatusCode::CONFLICT,
                "SESSION_EXISTS",
                "a live session with this session_id exists".to_string(),
                None,
            ),
            ApiError::InvalidTransition(m) => (
                StatusCode::BAD_REQUEST,
                "INVALID_STATE_TRANSITION",
                m.clone(),
                None,
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "CONFLICT", m.clone(), None),
            ApiError::NotYourTurn(m) => (StatusCode::FORBIDDEN, "NOT_YOUR_TURN", m.clone(), None),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "request body exceeds 1 MiB".to_string(),
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "request bodies must be application/json".to_string(),
                None,
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "the state store is unavailable; retry shortly".to_string(),
                None,
            ),
            ApiError::AuditNotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
                "the audit store is not configured (set DATABASE_URL)".to_string(),
                None,
            ),
            ApiError::AuditUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
                "the audit store is unreachable; retry shortly".to_string(),
                None,
            ),
            ApiError::Unauthorized(why) => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                why.to_string(),
                None,
            ),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, "FORBIDDEN", why.clone(), None),
            ApiError::TokensNotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "TOKENS_UNAVAILABLE",
                "minting session tokens needs a token secret (set TOKEN_SECRET)".to_string(),
                None,
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "internal error".to_string(),
                None,
            ),
            ApiError::RateLimited(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!("too many requests; retry in {} s", wait.seconds()),
                Some(json!({"retry_after_seconds": wait.seconds()})),
            ),
            ApiError::QuotaExceeded(quota) => (
                StatusCode::TOO_MANY_REQUESTS,
                "QUOTA_EXCEEDED",
                format!("quota {quota} is used up"),
                Some(json!({"quota": quota})),
            ),
            ApiError::Deadline => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "the request did not complete within its deadline; retry shortly".to_string(),
                None,
            ),
            ApiError::AtCapacity(what) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                format!("this instance is at capacity ({what}); retry shortly"),
                Some(json!({"capacity": what})),
            ),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                details,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::RateLimited(wait) => Some(wait.seconds()),
            ApiError::QuotaExceeded(_) => Some(60),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        // RFC 6750 §3: the scheme the client must use.
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"synckairos\""),
            );
        }
        resp.extensions_mut().insert(self);
        resp
    }
}
