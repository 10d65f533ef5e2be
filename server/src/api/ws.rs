//! `GET /ws?sessionId=…`: one task per connection that forwards the hub's
//! pre-rendered frames, answers PING / RECONNECT, pings the client, and
//! closes with 1001 on shutdown.
//!
//! Every client is assumed hostile ([`WsLimits`]): the connections are
//! capped per instance, a send that does not complete within its deadline
//! drops the client (one that stops reading pins nothing), client messages
//! are rate limited (ERROR `RATE_LIMITED`, then close 1008), a RECONNECT is
//! answered at most once per version or per [`RESYNC_INTERVAL`], and a
//! session that does not exist gets ERROR `SESSION_NOT_FOUND` and close 1008.
//!
//! The subscription is taken before the initial state is read, so no change
//! can fall between STATE_SYNC and the first STATE_UPDATE; versions at or
//! below the one already sent are skipped, so a client never goes back.

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::auth::policy::Operation;
use crate::clock::now_ms;
use crate::engine::{Subscription, UpdateKind};
use crate::limits::{Admit, MessageBudget};
use crate::protocol;
use crate::service::ServiceError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

/// Largest client message accepted; anything bigger closes with 1009.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// A RECONNECT within this long of the last STATE_SYNC, with no new version
/// since, is not answered: a flood of them cannot turn into a flood of states.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The WebSocket limits of an instance.
#[derive(Clone)]
pub struct WsLimits {
    /// A send (or close) that takes longer drops the client.
    pub send_timeout: Duration,
    /// Client messages per second per connection (0: unlimited).
    pub messages_per_second: u32,
    /// One permit per open connection: the per-instance cap.
    pub slots: Arc<Semaphore>,
}

impl WsLimits {
    /// Limits with `max_connections` slots.
    pub fn new(max_connections: usize, send_timeout: Duration, messages_per_second: u32) -> Self {
        WsLimits {
            send_timeout,
            messages_per_second,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
        }
    }
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits::new(10_000, Duration::from_secs(10), 20)
    }
}

fn session_param(query: Option<&str>) -> Result<Uuid, &'static str> {
    let raw = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("sessionId="))
        .ok_or("missing sessionId query parameter")?;
    Uuid::parse_str(raw).map_err(|_| "sessionId must be a UUID")
}

/// Upgrades to a WebSocket for one session.
#[utoipa::path(get, path = "/ws", tag = "realtime",
    params(("sessionId" = Uuid, Query, description = "session to follow")),
    responses((status = 101, description = "WebSocket: CONNECTED, STATE_SYNC, then STATE_UPDATE / TIME_EXPIRED / SESSION_DELETED; PING → PONG, RECONNECT → STATE_SYNC; close 1008 on a bad sessionId"),
        (status = 400, body = String, content_type = "text/plain", description = "Not a WebSocket handshake (no `Connection: upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13` or `Sec-WebSocket-Key`)")))]
pub async fn upgrade(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let session = session_param(query.as_deref());
    // Authorized before the upgrade: a refusal is a plain HTTP 403. A bad
    // sessionId is left to the 1008 close below (nothing is sent before it).
    if let Ok(id) = session
        && let Err(e) = caller.authorize(Operation::Read, Some(id))
    {
        return e.into_response();
    }
    let expires = token_deadline(&app, &caller);
    let Ok(slot) = Arc::clone(&app.ws_limits.slots).try_acquire_owned() else {
        return ApiError::AtCapacity("websocket_connections").into_response();
    };
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            app.metrics.ws_connections.inc();
            let _guard = app.tasks.token();
            let send_timeout = app.ws_limits.send_timeout;
            match session {
                Ok(id) => run(app.clone(), socket, id, expires, slot).await,
                Err(reason) => close(socket, 1008, reason, send_timeout).await,
            }
            app.metrics.ws_connections.dec();
        })
}

/// When a connection opened with a session token must close: its `exp`
/// plus the clock leeway its acceptance allowed.
fn token_deadline(app: &AppState, caller: &Caller) -> Option<tokio::time::Instant> {
    let exp_ms = caller.0.expires_at()? as i64 * 1000 + app.auth.leeway_ms();
    let left = Duration::from_millis((exp_ms - now_ms()).max(0) as u64);
    Some(tokio::time::Instant::now() + left)
}

/// Sends a close frame, giving up after `within` (a client that does not
/// read does not get to hold the task).
async fn close(mut socket: WebSocket, code: u16, reason: &'static str, within: Duration) {
    let _ = tokio::time::timeout(within, socket.send(close_frame(code, reason))).await;
}

struct Conn {
    app: AppState,
    socket: WebSocket,
    id: Uuid,
    last_version: u64,
    /// The version and time of the last STATE_SYNC sent.
    last_sync: Option<(u64, Instant)>,
    /// A RECONNECT that came too soon is answered at this instant (one at
    /// most, however many came).
    resync_at: Option<Instant>,
    budget: MessageBudget,
}

/// Why a connection ends early.
enum Outcome {
    /// Keep going.
    Open,
    /// The socket is gone, or the client cannot keep up: just stop.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

impl Conn {
    /// Sends one message within the send deadline; false when the socket is
    /// gone or the client did not take it in time.
    async fn send(&mut self, msg: Message) -> bool {
        match tokio::time::timeout(self.app.ws_limits.send_timeout, self.socket.send(msg)).await {
            Ok(r) => r.is_ok(),
            Err(_) => {
                tracing::debug!(session = %self.id, "websocket client did not take a message in time; dropping it");
                false
            }
        }
    }

    async fn send_text(&mut self, bytes: bytes::Bytes) -> bool {
        match Utf8Bytes::try_from(bytes) {
            Ok(text) => {
                let ok = self.send(Message::Text(text)).await;
                if ok {
                    self.app.metrics.ws_messages_sent.inc();
                }
                ok
            }
            Err(_) => true,
        }
    }

    /// Sends a close frame, then reads (and drops) what the client still
    /// sends until its close reply, for at most [`CLOSE_DRAIN`]: closing a
    /// socket with unread input resets it, and the client would lose the
    /// close frame (and the errors before it).
    async fn close(&mut self, code: u16, reason: &'static str) {
        if !self.send(close_frame(code, reason)).await {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_DRAIN, async {
            while let Some(Ok(m)) = self.socket.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    async fn send_json(&mut self, v: Value) -> bool {
        self.send_text(bytes::Bytes::from(v.to_string())).await
    }

    /// Sends a full STATE_SYNC. A session that does not exist gets ERROR
    /// `SESSION_NOT_FOUND` and close 1008; a store failure, ERROR
    /// `SERVICE_UNAVAILABLE` (nothing on the greeting: a resync follows).
    async fn sync(&mut self, greeting: bool) -> Outcome {
        let sent = match self.app.service.get(self.id).await {
            Ok(state) => {
                self.last_version = state.version;
                self.last_sync = Some((state.version, Instant::now()));
                self.send_text(protocol::state_message("STATE_SYNC", &state)).await
            }
            Err(ServiceError::NotFound) => {
                return if self
                    .send_json(json!({"type": "ERROR", "code": "SESSION_NOT_FOUND", "message": "session not found"}))
                    .await
                {
                    Outcome::Close(1008, "session not found")
                } else {
                    Outcome::Gone
                };
            }
            Err(_) if greeting => true,
            Err(_) => {
                self.send_json(json!({"type": "ERROR", "code": "SERVICE_UNAVAILABLE", "message": "the state store is unavailable; retry shortly"}))
                    .await
            }
        };
        if sent { Outcome::Open } else { Outcome::Gone }
    }

    /// Counts one client message against the budget: `Some` ends or
    /// answers it (ERROR `RATE_LIMITED`) instead of handling it.
    async fn over_budget(&mut self) -> Option<Outcome> {
        match self.budget.admit() {
            Admit::Yes => None,
            Admit::Refuse => Some(
                if self
                    .send_json(json!({"type": "ERROR", "code": "RATE_LIMITED", "message": "too many messages; slow down"}))
                    .await
                {
                    Outcome::Open
                } else {
                    Outcome::Gone
                },
            ),
            Admit::Close => Some(Outcome::Close(1008, "message rate limit exceeded")),
        }
    }

    /// When a RECONNECT may be answered: now, unless a STATE_SYNC of the
    /// same version went out less than [`RESYNC_INTERVAL`] ago; then at the
    /// end of that interval.
    fn resync_time(&self) -> Option<Instant> {
        match self.last_sync {
            Some((v, at)) if v == self.last_version && at.elapsed() < RESYNC_INTERVAL => {
                Some(at + RESYNC_INTERVAL)
            }
            _ => None,
        }
    }

    /// Handles one client text message.
    async fn on_text(&mut self, text: &str) -> Outcome {
        if let Some(o) = self.over_budget().await {
            return o;
        }
        let open = |ok: bool| if ok { Outcome::Open } else { Outcome::Gone };
        let msg: Option<Value> = serde_json::from_str(text).ok();
        let kind = msg
            .as_ref()
            .and_then(|m| m.get("type"))
            .and_then(Value::as_str);
        match kind {
            Some("PING") => {
                let mut pong = json!({"type": "PONG", "timestamp": now_ms()});
                if let Some(ct) = msg.as_ref().and_then(|m| m.get("client_time")).filter(|v| v.is_number()) {
                    pong["client_time"] = ct.clone();
                }
                open(self.send_json(pong).await)
            }
            Some("RECONNECT") => match self.resync_time() {
                // Deferred (coalesced): a flood gets one STATE_SYNC a second.
                Some(at) => {
                    self.resync_at.get_or_insert(at);
                    Outcome::Open
                }
                None => self.sync(false).await,
            },
            Some(other) => {
                let message = format!("unknown message type {other:?}");
                open(self.send_json(json!({"type": "ERROR", "code": "INVALID_MESSAGE", "message": message}))
                    .await)
            }
            None => {
                open(self.send_json(json!({"type": "ERROR", "code": "INVALID_MESSAGE", "message": "expected a JSON object with a string \"type\""}))
                    .await)
            }
        }
    }

    /// Forwards one hub update; false when the connection should end.
    async fn on_update(&mut self, update: &crate::engine::Update) -> bool {
        match update.kind {
            UpdateKind::State if update.version <= self.last_version => return true,
            UpdateKind::State
                if self.last_version > 0 && update.version > self.last_version + 1 =>
            {
                self.app
                    .metrics
                    .ws_messages_dropped
                    .inc_by(update.version - self.last_version - 1);
            }
            _ => {}
        }
        for f in &update.frames {
            if !self.send_text(f.clone()).await {
                return false;
            }
        }
        if update.kind == UpdateKind::Deleted {
            let _ = self.send(close_frame(1000, "session deleted")).await;
            return false;
        }
        self.last_version = self.last_version.max(update.version);
        true
    }
}

/// The connection loop. `expires` (a credential's expiry, when access
/// control sets one) closes it with 1008 at that instant; `_slot` is its
/// place under the per-instance cap, freed when the loop ends.
pub async fn run(
    app: AppState,
    socket: WebSocket,
    id: Uuid,
    expires: Option<Instant>,
    _slot: OwnedSemaphorePermit,
) {
    let mut sub: Subscription = app.service.subscribe(id);
    let shutdown = app.shutdown.clone();
    let ping_every = app.ws_ping_interval;
    let budget = MessageBudget::new(app.ws_limits.messages_per_second);
    let mut conn = Conn {
        app,
        socket,
        id,
        last_version: 0,
        last_sync: None,
        resync_at: None,
        budget,
    };
    if !conn
        .send_text(protocol::bare("CONNECTED", id, now_ms()))
        .await
    {
        return;
    }
    match conn.sync(true).await {
        Outcome::Open => {}
        Outcome::Gone => return,
        Outcome::Close(code, reason) => {
            conn.close(code, reason).await;
            return;
        }
    }
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let expiry = sleep_until_some(expires);
    tokio::pin!(expiry);
    let mut alive = true;
    let outcome = loop {
        let step = tokio::select! {
            _ = shutdown.cancelled() => Outcome::Close(1001, "server shutting down"),
            _ = &mut expiry => Outcome::Close(1008, "token expired"),
            _ = sleep_until_some(conn.resync_at) => {
                conn.resync_at = None;
                conn.sync(false).await
            }
            update = sub.next() => match update {
                Some(u) => if conn.on_update(&u).await { Outcome::Open } else { Outcome::Gone },
                None => Outcome::Gone,
            },
            msg = conn.socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => conn.on_text(t.as_str()).await,
                Some(Ok(Message::Binary(_))) => match conn.over_budget().await {
                    Some(o) => o,
                    None if conn.send_json(json!({"type": "ERROR", "code": "INVALID_MESSAGE", "message": "binary frames are not supported"})).await => Outcome::Open,
                    None => Outcome::Gone,
                },
                Some(Ok(Message::Pong(_))) => { alive = true; Outcome::Open }
                // tungstenite queues the pong itself; a flood of pings still
                // counts against the budget.
                Some(Ok(Message::Ping(_))) => {
                    alive = true;
                    match conn.budget.admit() {
                        Admit::Close => Outcome::Close(1008, "message rate limit exceeded"),
                        _ => Outcome::Open,
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Outcome::Gone,
            },
            _ = ping.tick() => {
                if !alive {
                    tracing::debug!(session = %id, "websocket client stopped answering pings");
                    Outcome::Gone
                } else {
                    alive = false;
                    if conn.send(Message::Ping(bytes::Bytes::new())).await { Outcome::Open } else { Outcome::Gone }
                }
            }
        };
        match step {
            Outcome::Open => continue,
            done => break done,
        }
    };
    if let Outcome::Close(code, reason) = outcome {
        conn.close(code, reason).await;
    }
}

/// How long a closing connection keeps reading for the client's close reply.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);

/// Sleeps until `at`, or forever when there is none.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Idle time after which an unanswered ping drops the connection.
pub fn default_ping_interval() -> Duration {
    Duration::from_secs(20)
}

#[cfg(test)]
mod tests {
    use super::session_param;

    #[test]
    fn session_param_rules() {
        let id = "550e8400-e29b-41d4-a716-446655440000";
        assert!(session_param(Some(&format!("sessionId={id}"))).is_ok());
        assert!(session_param(Some(&format!("x=1&sessionId={id}"))).is_ok());
        assert!(session_param(None).is_err());
        assert!(session_param(Some("sessionId=nope")).is_err());
    }
}
