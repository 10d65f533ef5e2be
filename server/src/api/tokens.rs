//! `POST /v1/sessions/{id}/tokens` (ext): an API key holder mints a session
//! token for an end-user device, signed HS256 with the server's secret.

use super::AppState;
use super::auth::Caller;
use super::body::JsonBody;
use super::error::{ApiError, ErrorBody};
use super::sessions::SessionId;
use crate::auth::now_seconds;
use crate::auth::policy::Operation;
use crate::auth::token::Role;
use crate::domain::{FieldError, Millis, time};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Body of a mint request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MintTokenBody {
    /// What the token may do on the session.
    pub role: Role,
    /// The participant it speaks for: required for `participant`, and must
    /// be one of the session's participants whenever given.
    #[schema(min_length = 1, max_length = 128)]
    pub participant_id: Option<String>,
    /// Lifetime in seconds (default 3600, at most TOKEN_MAX_TTL_SECONDS).
    #[schema(minimum = 1)]
    pub ttl_seconds: Option<u64>,
}

/// A minted token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MintedToken {
    /// The JWT: send it as `Authorization: Bearer <token>` (WebSocket: `?token=`).
    pub token: String,
    /// When it stops being accepted (its `exp`).
    #[serde(serialize_with = "time::iso::serialize")]
    #[schema(value_type = String)]
    pub expires_at: Millis,
    /// Its role.
    pub role: Role,
    /// The participant it speaks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
}

/// `{data: MintedToken}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MintedEnvelope {
    /// The token.
    pub data: MintedToken,
}

/// Mint a session token (API key only).
#[utoipa::path(post, path = "/v1/sessions/{id}/tokens", tag = "auth",
    params(("id" = Uuid, Path, description = "session id")),
    request_body(content = MintTokenBody, description = "Required: a JSON object."),
    responses(
        (status = 201, body = MintedEnvelope),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR naming `role`, `participant_id` (missing for a participant, or not in the session) or `ttl_seconds`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 413, body = ErrorBody, description = "PAYLOAD_TOO_LARGE: over 1 MiB"),
        (status = 415, body = ErrorBody, description = "UNSUPPORTED_MEDIA_TYPE: a body that is not application/json"),
        (status = 503, body = ErrorBody, description = "TOKENS_UNAVAILABLE: the server has no TOKEN_SECRET to sign with; SERVICE_UNAVAILABLE: the state store failed")))]
pub async fn mint(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
    JsonBody(body): JsonBody<MintTokenBody>,
) -> Result<Response, ApiError> {
    caller.authorize(Operation::Admin, Some(id))?;
    let body = body.ok_or_else(|| ApiError::field("body", "a JSON object is required"))?;
    let minter = app.auth.minter().ok_or(ApiError::TokensNotConfigured)?;
    let state = app.service.get(id).await?;
    if let Some(p) = &body.participant_id
        && !state.participants.iter().any(|x| &x.participant_id == p)
    {
        return Err(
            FieldError::new("participant_id", "is not a participant of this session").into(),
        );
    }
    let minted = minter.mint(
        id,
        body.role,
        body.participant_id.clone(),
        body.ttl_seconds,
        now_seconds(),
    )?;
    let data = MintedToken {
        token: minted.token,
        expires_at: minted.exp as Millis * 1000,
        role: body.role,
        participant_id: body.participant_id,
    };
    Ok((StatusCode::CREATED, Json(MintedEnvelope { data })).into_response())
}
