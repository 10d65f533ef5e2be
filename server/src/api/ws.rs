//! `GET /ws?sessionId=…`: one task per connection that forwards the hub's
//! pre-rendered frames, answers PING / RECONNECT, pings the client, and
//! closes with 1001 on shutdown.
//!
//! The subscription is taken before the initial state is read, so no change
//! can fall between STATE_SYNC and the first STATE_UPDATE; versions at or
//! below the one already sent are skipped, so a client never goes back.

use super::AppState;
use super::auth::Caller;
use crate::auth::policy::Operation;
use crate::clock::now_ms;
use crate::engine::{Subscription, UpdateKind};
use crate::protocol;
use crate::service::ServiceError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// Largest client message accepted; anything bigger closes with 1009.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

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
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            app.metrics.ws_connections.inc();
            let _guard = app.tasks.token();
            match session {
                Ok(id) => run(app.clone(), socket, id, expires).await,
                Err(reason) => close(socket, 1008, reason).await,
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

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

struct Conn {
    app: AppState,
    socket: WebSocket,
    id: Uuid,
    last_version: u64,
}

impl Conn {
    async fn send_text(&mut self, bytes: bytes::Bytes) -> bool {
        match Utf8Bytes::try_from(bytes) {
            Ok(text) => {
                let ok = self.socket.send(Message::Text(text)).await.is_ok();
                if ok {
                    self.app.metrics.ws_messages_sent.inc();
                }
                ok
            }
            Err(_) => true,
        }
    }

    async fn send_json(&mut self, v: Value) -> bool {
        self.send_text(bytes::Bytes::from(v.to_string())).await
    }

    /// Sends a full STATE_SYNC; false when the socket is gone.
    async fn sync(&mut self, not_found_is_error: bool) -> bool {
        match self.app.service.get(self.id).await {
            Ok(state) => {
                self.last_version = state.version;
                self.send_text(protocol::state_message("STATE_SYNC", &state)).await
            }
            Err(ServiceError::NotFound) if not_found_is_error => {
                self.send_json(json!({"type": "ERROR", "code": "SESSION_NOT_FOUND", "message": "session not found"}))
                    .await
            }
            Err(ServiceError::NotFound) => true,
            Err(_) if not_found_is_error => {
                self.send_json(json!({"type": "ERROR", "code": "SERVICE_UNAVAILABLE", "message": "the state store is unavailable; retry shortly"}))
                    .await
            }
            Err(_) => true,
        }
    }

    /// Handles one client text message; false when the socket is gone.
    async fn on_text(&mut self, text: &str) -> bool {
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
                self.send_json(pong).await
            }
            Some("RECONNECT") => self.sync(true).await,
            Some(other) => {
                let message = format!("unknown message type {other:?}");
                self.send_json(json!({"type": "ERROR", "code": "INVALID_MESSAGE", "message": message}))
                    .await
            }
            None => {
                self.send_json(json!({"type": "ERROR", "code": "INVALID_MESSAGE", "message": "expected a JSON object with a string \"type\""}))
                    .await
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
            let _ = self
                .socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: Utf8Bytes::from_static("session deleted"),
                })))
                .await;
            return false;
        }
        self.last_version = self.last_version.max(update.version);
        true
    }
}

async fn run(app: AppState, socket: WebSocket, id: Uuid, expires: Option<tokio::time::Instant>) {
    let mut sub: Subscription = app.service.subscribe(id);
    let shutdown = app.shutdown.clone();
    let ping_every = app.ws_ping_interval;
    let mut conn = Conn {
        app,
        socket,
        id,
        last_version: 0,
    };
    if !conn
        .send_text(protocol::bare("CONNECTED", id, now_ms()))
        .await
        || !conn.sync(false).await
    {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut alive = true;
    let token_expired = async {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(token_expired);
    loop {
        tokio::select! {
            () = &mut token_expired => {
                let _ = conn.socket.send(Message::Close(Some(CloseFrame {
                    code: 1008,
                    reason: Utf8Bytes::from_static("token expired"),
                }))).await;
                break;
            }
            _ = shutdown.cancelled() => {
                let _ = conn.socket.send(Message::Close(Some(CloseFrame {
                    code: 1001,
                    reason: Utf8Bytes::from_static("server shutting down"),
                }))).await;
                break;
            }
            update = sub.next() => match update {
                Some(u) => if !conn.on_update(&u).await { break },
                None => break,
            },
            msg = conn.socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => if !conn.on_text(t.as_str()).await { break },
                Some(Ok(Message::Binary(_))) => {
                    if !conn.send_json(json!({"type": "ERROR", "code": "INVALID_MESSAGE", "message": "binary frames are not supported"})).await { break }
                }
                Some(Ok(Message::Pong(_))) => alive = true,
                Some(Ok(Message::Ping(_))) => alive = true,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            },
            _ = ping.tick() => {
                if !alive {
                    tracing::debug!(session = %id, "websocket client stopped answering pings");
                    break;
                }
                alive = false;
                if conn.socket.send(Message::Ping(bytes::Bytes::new())).await.is_err() { break }
            }
        }
    }
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
