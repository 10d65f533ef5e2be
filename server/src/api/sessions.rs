//! REST handlers for `/v1/sessions`: parse and check input, call the
//! service, shape the `{data: ...}` response.

use super::AppState;
use super::auth::Caller;
use super::body::JsonBody;
use super::error::{ApiError, ErrorBody};
use super::requests::{CreateSessionBody, SwitchBody};
use crate::audit::HistoryPage;
use crate::auth::policy::Operation;
use crate::domain::{Command, Millis, RenderedParticipant, Status, SwitchArgs, SyncState, time};
use crate::limits::RateKey;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{data: SyncState}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StateEnvelope {
    /// The session state.
    pub data: SyncState,
}

/// The result of a switch (`SwitchResult`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SwitchResult {
    /// Session id.
    pub session_id: Uuid,
    /// Whose turn it is now.
    #[schema(required = true)]
    pub active_participant_id: Option<String>,
    /// When the new cycle began.
    #[serde(serialize_with = "time::opt_iso::serialize")]
    #[schema(value_type = Option<String>, required = true)]
    pub cycle_started_at: Option<Millis>,
    /// Participants after the switch.
    pub participants: Vec<RenderedParticipant>,
    /// Status after the switch.
    pub status: Status,
    /// Present when the active clock had already run out: the timeout was
    /// applied instead of the switch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_participant_id: Option<String>,
    /// Version after the switch (ext).
    pub version: u64,
    /// Server clock at commit (ext).
    pub server_time_ms: Millis,
    /// Next deadline (ext).
    #[schema(required = true)]
    pub deadline_ms: Option<Millis>,
}

/// `{data: SwitchResult}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SwitchEnvelope {
    /// The switch result.
    pub data: SwitchResult,
}

/// The `{id}` path segment as a session id; any undecodable or malformed
/// segment is a 400 naming `session_id`, in the JSON error envelope.
pub struct SessionId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for SessionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::field("session_id", "must be a UUID"))?;
        Uuid::parse_str(&raw)
            .map(SessionId)
            .map_err(|_| ApiError::field("session_id", "must be a UUID"))
    }
}

/// The success envelope, serialized straight from the payload.
#[derive(Serialize)]
struct Data<T> {
    data: T,
}

fn data<T: Serialize>(status: StatusCode, value: T) -> Response {
    (status, Json(Data { data: value })).into_response()
}

/// Create a session.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body(content = CreateSessionBody, description = "Required: a JSON object (an absent body is a 400 naming `body`)."),
    responses(
        (status = 201, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR naming the field"),
        (status = 409, body = ErrorBody, description = "SESSION_EXISTS"),
        (status = 413, body = ErrorBody, description = "PAYLOAD_TOO_LARGE: over 1 MiB"),
        (status = 415, body = ErrorBody, description = "UNSUPPORTED_MEDIA_TYPE: a body that is not application/json"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateSessionBody>,
) -> Result<Response, ApiError> {
    caller.authorize(Operation::Admin, None)?;
    let body = body.ok_or_else(|| ApiError::field("body", "a JSON object is required"))?;
    let spec = body.into_spec()?;
    let state = app.service.create_by(spec, &caller.0.actor()).await?;
    Ok(data(StatusCode::CREATED, state))
}

/// Read a session's live state.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR naming `session_id`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    caller.authorize(Operation::Read, Some(id))?;
    let state = app.service.get(id).await?;
    Ok(data(StatusCode::OK, state))
}

/// The per-session command rate limit (429 `RATE_LIMITED`): a burst of
/// commands on one session cannot monopolise its queue or the store.
fn admit_command(app: &AppState, id: Uuid) -> Result<(), ApiError> {
    app.rate_limits
        .check(&RateKey::Session(id))
        .map_err(ApiError::RateLimited)
}

async fn simple(
    app: AppState,
    caller: Caller,
    id: Uuid,
    cmd: Command,
) -> Result<Response, ApiError> {
    caller.authorize(Operation::Control, Some(id))?;
    admit_command(&app, id)?;
    let out = app.service.command_by(id, cmd, &caller.0.actor()).await?;
    Ok(data(StatusCode::OK, out.state))
}

/// pending → running; the lowest-index participant becomes active.
#[utoipa::path(post, path = "/v1/sessions/{id}/start", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "INVALID_STATE_TRANSITION naming the status, or VALIDATION_ERROR naming `session_id`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONFLICT: a lost concurrency race that could not be retried"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn start(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    simple(app, caller, id, Command::Start).await
}

/// running → paused; the elapsed part of the cycle is charged.
#[utoipa::path(post, path = "/v1/sessions/{id}/pause", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "INVALID_STATE_TRANSITION naming the status, or VALIDATION_ERROR naming `session_id`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONFLICT: a lost concurrency race that could not be retried"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn pause(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    simple(app, caller, id, Command::Pause).await
}

/// paused → running; a new cycle starts for the same participant.
#[utoipa::path(post, path = "/v1/sessions/{id}/resume", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "INVALID_STATE_TRANSITION naming the status, or VALIDATION_ERROR naming `session_id`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONFLICT: a lost concurrency race that could not be retried"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn resume(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    simple(app, caller, id, Command::Resume).await
}

/// Any non-terminal status → completed.
#[utoipa::path(post, path = "/v1/sessions/{id}/complete", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "INVALID_STATE_TRANSITION naming the status, or VALIDATION_ERROR naming `session_id`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONFLICT: a lost concurrency race that could not be retried"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn complete(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    simple(app, caller, id, Command::Complete).await
}

/// Any non-terminal status → cancelled (ext).
#[utoipa::path(post, path = "/v1/sessions/{id}/cancel", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 200, body = StateEnvelope),
        (status = 400, body = ErrorBody, description = "INVALID_STATE_TRANSITION naming the status, or VALIDATION_ERROR naming `session_id`"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONFLICT: a lost concurrency race that could not be retried"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    simple(app, caller, id, Command::Cancel).await
}

/// End the active turn (the hot path).
#[utoipa::path(post, path = "/v1/sessions/{id}/switch", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    request_body(content = SwitchBody, description = "Optional: an absent or empty (whitespace-only) body is the same as `{}`. A body that is present must be a JSON object; `null` is refused (400 naming `body`)."),
    responses((status = 200, body = SwitchEnvelope),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR or INVALID_STATE_TRANSITION"),
        (status = 404, body = ErrorBody, description = "SESSION_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONFLICT: a guard did not match, or a lost concurrency race"),
        (status = 413, body = ErrorBody, description = "PAYLOAD_TOO_LARGE: over 1 MiB"),
        (status = 415, body = ErrorBody, description = "UNSUPPORTED_MEDIA_TYPE: a body that is not application/json"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn switch(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
    JsonBody(body): JsonBody<SwitchBody>,
) -> Result<Response, ApiError> {
    let mut args = SwitchArgs::from(body.unwrap_or_default());
    let jump = args.next_participant_id.is_some();
    // A participant's switch is bound to its own turn; the domain checks it
    // against the state the switch is computed from.
    args.turn_of = caller
        .authorize(Operation::Switch { jump }, Some(id))?
        .turn_of;
    admit_command(&app, id)?;
    let out = app
        .service
        .command_by(id, Command::Switch(args), &caller.0.actor())
        .await?;
    let s = out.state;
    Ok(data(
        StatusCode::OK,
        SwitchResult {
            session_id: s.session_id,
            active_participant_id: s.active_participant_id,
            cycle_started_at: s.cycle_started_at,
            participants: s.participants,
            status: s.status,
            expired_participant_id: out.expired_participant_id,
            version: s.version,
            server_time_ms: s.server_time_ms,
            deadline_ms: s.deadline_ms,
        },
    ))
}

/// Delete a session; idempotent. Live WebSocket clients get SESSION_DELETED.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id")),
    responses((status = 204, description = "deleted (or already absent)"),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR naming `session_id`"),
        (status = 503, body = ErrorBody, description = "SERVICE_UNAVAILABLE: the state store failed (with `Retry-After`)")))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Response, ApiError> {
    caller.authorize(Operation::Admin, Some(id))?;
    app.service.delete_by(id, &caller.0.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Cursor query of the events endpoint.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1..=500 (default 100). Read as text so that a bad value
    /// is a 400 naming `limit`, not a generic query rejection.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// The audit history of a session (ext), from PostgreSQL.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", tag = "sessions",
    params(("id" = Uuid, Path, description = "session id"), EventsQuery),
    responses((status = 200, body = HistoryPage, description = "`{data: [AuditEvent], next_cursor}`; `next_cursor` is null on the last page"),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR naming `session_id`, `limit` or `cursor`"),
        (status = 503, body = ErrorBody, description = "AUDIT_UNAVAILABLE: no audit store is configured, or it is unreachable")))]
pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.authorize(Operation::Read, Some(id))?;
    let Query(q) = q.map_err(query_error)?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::field("limit", "must be an integer from 1 to 500"))?,
    };
    let history = app.history.as_ref().ok_or(ApiError::AuditNotConfigured)?;
    let page = history.page(id, q.cursor.as_deref(), limit).await?;
    Ok((StatusCode::OK, Json(page)).into_response())
}

/// A query string the events endpoint cannot read (a parameter given twice,
/// say) is a 400 in the JSON error envelope naming the parameter, like any
/// other bad input, not axum's plain-text rejection.
fn query_error(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    let field = ["limit", "cursor"]
        .into_iter()
        .find(|f| text.contains(&format!("`{f}`")))
        .unwrap_or("query");
    ApiError::field(field, "is given twice or cannot be read")
}
