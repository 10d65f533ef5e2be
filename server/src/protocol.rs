//! WebSocket messages of the wire contract, rendered to bytes once per
//! update so that fan-out shares the same buffer across clients.

use crate::domain::{Millis, SyncState, TimeoutAction};
use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

#[derive(Serialize)]
struct StateMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "sessionId")]
    session_id: Uuid,
    timestamp: Millis,
    state: &'a SyncState,
}

#[derive(Serialize)]
struct ExpiredMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "sessionId")]
    session_id: Uuid,
    timestamp: Millis,
    participant_id: Option<&'a str>,
    action: &'a TimeoutAction,
}

#[derive(Serialize)]
struct BareMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "sessionId")]
    session_id: Uuid,
    timestamp: Millis,
}

fn to_bytes<T: Serialize>(v: &T) -> Bytes {
    // Serializing these plain structs cannot fail; an empty frame is the
    // harmless fallback rather than a panic.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// `STATE_UPDATE` (a committed change) or `STATE_SYNC` (a full resync).
pub fn state_message(kind: &'static str, state: &SyncState) -> Bytes {
    to_bytes(&StateMessage {
        kind,
        session_id: state.session_id,
        timestamp: state.server_time_ms,
        state,
    })
}

/// `TIME_EXPIRED`: the server applied a timeout.
pub fn time_expired(
    session_id: Uuid,
    at: Millis,
    participant_id: Option<&str>,
    action: &TimeoutAction,
) -> Bytes {
    to_bytes(&ExpiredMessage {
        kind: "TIME_EXPIRED",
        session_id,
        timestamp: at,
        participant_id,
        action,
    })
}

/// `CONNECTED` / `SESSION_DELETED`: messages with no payload.
pub fn bare(kind: &'static str, session_id: Uuid, at: Millis) -> Bytes {
    to_bytes(&BareMessage {
        kind,
        session_id,
        timestamp: at,
    })
}
