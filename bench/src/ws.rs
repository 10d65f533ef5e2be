//! WebSocket client helpers shared by the WebSocket scenarios.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::api::WsMsg;

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Upper bound on opening one WebSocket connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections are opened at once: enough to be quick, few enough
/// not to overflow the server's accept backlog.
pub const CONNECT_PARALLELISM: usize = 64;

/// Opens a WebSocket connection (TCP_NODELAY on).
pub async fn connect(url: &str) -> Result<Ws> {
    let (ws, _resp) = timeout(CONNECT_TIMEOUT, connect_async_with_config(url, None, true))
        .await
        .map_err(|_| anyhow!("WebSocket connect to {url} timed out"))?
        .with_context(|| format!("WebSocket connect to {url}"))?;
    Ok(ws)
}

/// Reads until the first message carrying a state (the `STATE_SYNC` the server
/// sends after `CONNECTED`) and returns its version; later updates are then
/// known to be measured from a consistent starting point.
pub async fn await_state(ws: &mut Ws, deadline: Instant) -> Result<u64> {
    loop {
        let msg = timeout_at(deadline, ws.next())
            .await
            .map_err(|_| anyhow!("no STATE_SYNC before the deadline"))?;
        match msg {
            Some(Ok(Message::Text(text))) => {
                if let Some(WsMsg {
                    state: Some(state), ..
                }) = WsMsg::parse(text.as_str())
                {
                    return Ok(state.version);
                }
            }
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            None => bail!("connection ended before STATE_SYNC"),
        }
    }
}

/// Closes politely, but never waits more than a second for it.
pub async fn close(mut ws: Ws) {
    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
}
