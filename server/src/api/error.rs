//! The one place where failures become HTTP responses. Internal details are
//! logged, never sent.

use crate::domain::{DomainError, FieldError};
use crate::service::ServiceError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// Every error the API returns.
#[derive(Debug)]
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
    /// 413 PAYLOAD_TOO_LARGE.
    TooLarge,
    /// 415 UNSUPPORTED_MEDIA_TYPE.
    UnsupportedMediaType,
    /// 503 SERVICE_UNAVAILABLE.
    Unavailable,
    /// 503 AUDIT_UNAVAILABLE.
    AuditUnavailable(String),
    /// 500 INTERNAL_ERROR (logged).
    Internal(String),
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

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Exists => ApiError::Exists,
            ServiceError::Domain(DomainError::Invalid(f)) => ApiError::Validation(f),
            ServiceError::Domain(DomainError::Conflict(m)) => ApiError::Conflict(m),
            ServiceError::Domain(d @ DomainError::InvalidTransition { .. }) => {
                ApiError::InvalidTransition(d.to_string())
            }
            ServiceError::Domain(DomainError::NotDue) => {
                ApiError::Internal("timeout not due".into())
            }
            ServiceError::Contention => {
                ApiError::Conflict("too many concurrent changes to this session; retry".into())
            }
            ServiceError::Unavailable(m) => {
                tracing::warn!(error = %m, "state store unavailable");
                ApiError::Unavailable
            }
            ServiceError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = match self {
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
            ApiError::InvalidTransition(m) => {
                (StatusCode::BAD_REQUEST, "INVALID_STATE_TRANSITION", m, None)
            }
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "CONFLICT", m, None),
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
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "the state store is unavailable; retry shortly".to_string(),
                None,
            ),
            ApiError::AuditUnavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "AUDIT_UNAVAILABLE",
                m,
                None,
            ),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "internal error".to_string(),
                    None,
                )
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                details,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
