//! WebSocket client helpers: await the next message (never sleep), check its
//! type and envelope, and inspect close frames.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long `expect_type` waits for a message by default.
pub const WS_WAIT: Duration = Duration::from_secs(5);

/// What the server did next on the connection.
#[derive(Debug)]
pub enum WsEvent {
    /// A text frame holding JSON.
    Json(Value),
    /// A text frame that is not JSON (always a failure for our server).
    Text(String),
    /// A binary frame (the server never sends these).
    Binary(usize),
    /// A close frame (`code`, `reason`), or `None` for an end of the stream
    /// without a close frame.
    Closed(Option<(u16, String)>),
    /// The connection failed (reset, protocol error): what tungstenite said.
    Broken(String),
}

/// A test's WebSocket connection.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The URL it connected to.
    pub url: String,
}

impl WsClient {
    /// Connects with an optional `Authorization` header value; an upgrade
    /// the server refuses is `Err((status, body))`.
    pub async fn try_connect(
        url: &str,
        authorization: Option<&str>,
    ) -> Result<WsClient, (u16, String)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url
            .into_client_request()
            .unwrap_or_else(|e| panic!("WebSocket URL {url}: {e}"));
        if let Some(a) = authorization {
            let v = a
                .parse()
                .unwrap_or_else(|e| panic!("Authorization value {a:?}: {e}"));
            req.headers_mut().insert("authorization", v);
        }
        let fut = tokio_tungstenite::connect_async_with_config(req, None, false);
        match tokio::time::timeout(WS_WAIT, fut).await {
            Err(_) => panic!("WebSocket connect to {url} timed out"),
            Ok(Ok((stream, _))) => Ok(WsClient {
                stream,
                url: url.to_string(),
            }),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((resp.status().as_u16(), body))
            }
            Ok(Err(e)) => panic!("WebSocket connect to {url} failed: {e}"),
        }
    }

    /// Connects; panics if the HTTP upgrade fails.
    pub async fn connect(url: &str) -> WsClient {
        let cfg = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let fut = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false);
        let (stream, _resp) = tokio::time::timeout(WS_WAIT, fut)
            .await
            .unwrap_or_else(|_| panic!("WebSocket connect to {url} timed out"))
            .unwrap_or_else(|e| panic!("WebSocket connect to {url} failed: {e}"));
        WsClient {
            stream,
            url: url.to_string(),
        }
    }

    /// Sends a JSON text frame.
    pub async fn send_json(&mut self, v: &Value) {
        self.send(Message::text(v.to_string())).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, s: impl Into<String>) {
        self.send(Message::text(s.into())).await;
    }

    /// Sends a text frame, reporting instead of panicking when the server
    /// has already dropped the connection (used for frames it may refuse).
    pub async fn try_send_text(&mut self, s: impl Into<String>) -> bool {
        self.stream.send(Message::text(s.into())).await.is_ok()
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.send(Message::binary(b)).await;
    }

    async fn send(&mut self, m: Message) {
        self.stream
            .send(m)
            .await
            .unwrap_or_else(|e| panic!("WebSocket send on {}: {e}", self.url));
    }

    /// The next thing the server did, skipping protocol pings/pongs; panics
    /// if nothing happens within `within`.
    pub async fn next_event(&mut self, within: Duration) -> WsEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no WebSocket message within {within:?} on {}", self.url)
                });
            match next {
                None => return WsEvent::Closed(None),
                Some(Err(e)) => return WsEvent::Broken(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    let s = t.as_str();
                    return match serde_json::from_str(s) {
                        Ok(v) => WsEvent::Json(v),
                        Err(_) => WsEvent::Text(s.to_string()),
                    };
                }
                Some(Ok(Message::Binary(b))) => return WsEvent::Binary(b.len()),
                Some(Ok(Message::Close(frame))) => {
                    return WsEvent::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.as_str().to_string())),
                    );
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            }
        }
    }

    /// Waits for a protocol-level ping frame from the server (the reading
    /// itself makes tungstenite queue the pong reply). Panics on any other
    /// message or a close.
    pub async fn expect_ping_frame(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no ping frame within {within:?} on {}", self.url));
            match next {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                other => panic!("expected a ping frame on {}, got {other:?}", self.url),
            }
        }
    }

    /// The next JSON message; panics on a close, a non-JSON frame or timeout.
    /// Checks the envelope every server message shares (`type`, integer
    /// `timestamp`).
    pub async fn next_json(&mut self, within: Duration) -> Value {
        match self.next_event(within).await {
            WsEvent::Json(v) => {
                assert!(
                    v["type"].is_string(),
                    "WS message without a string `type`: {v}"
                );
                // Every server message carries an integer epoch-ms timestamp,
                // except ERROR, whose contract shape is {type, code, message}.
                if v["type"] != "ERROR" || v.get("timestamp").is_some() {
                    assert!(
                        v["timestamp"].is_i64(),
                        "WS message `timestamp` must be integer epoch ms: {v}"
                    );
                }
                v
            }
            other => panic!("expected a JSON message on {}, got {other:?}", self.url),
        }
    }

    /// The next message, asserted to be of type `ty`.
    pub async fn expect_type(&mut self, ty: &str) -> Value {
        let v = self.next_json(WS_WAIT).await;
        assert_eq!(v["type"], ty, "unexpected WS message: {v}");
        v
    }

    /// Skips messages until one of type `ty` arrives (within `within`).
    /// Returns it together with the messages skipped.
    pub async fn wait_for_type(&mut self, ty: &str, within: Duration) -> (Value, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.next_json(left).await;
            if v["type"] == ty {
                return (v, skipped);
            }
            skipped.push(v);
        }
    }

    /// The next event must be a close frame; returns (code, reason).
    pub async fn expect_close(&mut self, within: Duration) -> (u16, String) {
        match self.next_event(within).await {
            WsEvent::Closed(Some(cr)) => cr,
            other => panic!("expected a close frame on {}, got {other:?}", self.url),
        }
    }

    /// Asserts that the server sends nothing for `dur` (used only to show
    /// the absence of an event, never to wait for one).
    pub async fn expect_silence(&mut self, dur: Duration) {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence on {}, got {other:?}", self.url),
            }
        }
    }

    /// The answer to following a session that does not exist (API.md
    /// "Limits"): CONNECTED, ERROR `SESSION_NOT_FOUND`, then close 1008.
    pub async fn expect_session_not_found(&mut self) {
        self.expect_type("CONNECTED").await;
        let err = self.expect_type("ERROR").await;
        assert_eq!(err["code"], "SESSION_NOT_FOUND", "{err}");
        let (code, _) = self.expect_close(WS_WAIT).await;
        assert_eq!(code, 1008, "close code after SESSION_NOT_FOUND");
    }

    /// Sends a PING with `client_time` and returns the PONG.
    pub async fn ping(&mut self, client_time: i64) -> Value {
        self.send_json(&serde_json::json!({"type": "PING", "client_time": client_time}))
            .await;
        let pong = self.expect_type("PONG").await;
        assert_eq!(
            pong["client_time"], client_time,
            "PONG echoes client_time: {pong}"
        );
        pong
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
