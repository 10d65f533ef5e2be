//! The few pieces of the SyncKairos wire contract (shared/API.md) the scenarios use:
//! request bodies, the fields read back from responses, and WebSocket messages.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::http::{ReqSpec, Target, batch};

/// Connections used for (unmeasured) setup and teardown requests.
pub const SETUP_CONCURRENCY: usize = 32;

/// The create body of a per_participant session with two participants `p1`, `p2`
/// that both start with `bank_ms`.
pub fn create_body(session_id: Uuid, bank_ms: u64) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "session_id": session_id,
            "sync_mode": "per_participant",
            "total_time_ms": bank_ms,
            "participants": [
                {"participant_id": "p1", "participant_index": 0, "total_time_ms": bank_ms},
                {"participant_id": "p2", "participant_index": 1, "total_time_ms": bank_ms},
            ],
            "metadata": {"bench": true},
        })
        .to_string(),
    )
}

/// The fields of a `SyncState` or `SwitchResult` the generator looks at.
#[derive(Debug, Clone, Deserialize)]
pub struct StateLite {
    /// Committed version.
    pub version: u64,
    /// Server time at which the running clock hits zero.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Envelope {
    data: StateLite,
}

/// Parses `{"data": {..., "version": N, "deadline_ms": ...}}`.
pub fn parse_state(body: &[u8]) -> Result<StateLite> {
    let env: Envelope = serde_json::from_slice(body).with_context(|| {
        format!(
            "unexpected response body: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    Ok(env.data)
}

/// Fails with the server's answer unless the status is `expected`.
pub fn expect_status(
    what: &str,
    status: StatusCode,
    body: &[u8],
    expected: StatusCode,
) -> Result<()> {
    if status != expected {
        bail!(
            "{what}: expected {expected}, got {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(())
}

/// Creates one session per bank in `banks_ms` and returns their ids.
pub async fn create_sessions(target: &Arc<Target>, banks_ms: Vec<u64>) -> Result<Vec<Uuid>> {
    let ids: Arc<Vec<Uuid>> = Arc::new(banks_ms.iter().map(|_| Uuid::new_v4()).collect());
    let banks = Arc::new(banks_ms);
    let spec_ids = Arc::clone(&ids);
    let resps = batch(target, ids.len(), SETUP_CONCURRENCY, move |i| ReqSpec {
        method: Method::POST,
        path: "/v1/sessions".into(),
        body: Some(create_body(spec_ids[i], banks[i])),
        authorization: None,
    })
    .await?;
    for (status, body) in &resps {
        expect_status("create session", *status, body, StatusCode::CREATED)?;
    }
    Ok(ids.to_vec())
}

/// Starts the sessions and returns the state each start produced.
pub async fn start_sessions(target: &Arc<Target>, ids: &[Uuid]) -> Result<Vec<StateLite>> {
    let ids: Arc<Vec<Uuid>> = Arc::new(ids.to_vec());
    let spec_ids = Arc::clone(&ids);
    let resps = batch(target, ids.len(), SETUP_CONCURRENCY, move |i| ReqSpec {
        method: Method::POST,
        path: format!("/v1/sessions/{}/start", spec_ids[i]),
        body: Some(Bytes::from_static(b"{}")),
        authorization: None,
    })
    .await?;
    resps
        .iter()
        .map(|(status, body)| {
            expect_status("start session", *status, body, StatusCode::OK)?;
            parse_state(body)
        })
        .collect()
}

/// Mints a controller session token per session (`POST
/// /v1/sessions/{id}/tokens`, needs --api-key) and returns each as its
/// `Authorization` header value.
pub async fn mint_controller_tokens(
    target: &Arc<Target>,
    ids: &[Uuid],
) -> Result<Vec<HeaderValue>> {
    let ids: Arc<Vec<Uuid>> = Arc::new(ids.to_vec());
    let resps = batch(target, ids.len(), SETUP_CONCURRENCY, move |i| ReqSpec {
        method: Method::POST,
        path: format!("/v1/sessions/{}/tokens", ids[i]),
        body: Some(Bytes::from_static(br#"{"role":"controller"}"#)),
        authorization: None,
    })
    .await?;
    #[derive(Deserialize)]
    struct Minted {
        data: Token,
    }
    #[derive(Deserialize)]
    struct Token {
        token: String,
    }
    resps
        .iter()
        .map(|(status, body)| {
            expect_status("mint token", *status, body, StatusCode::CREATED)?;
            let m: Minted = serde_json::from_slice(body).context("mint token: unexpected body")?;
            HeaderValue::from_str(&format!("Bearer {}", m.data.token)).context("token header")
        })
        .collect()
}

/// Deletes the sessions a scenario created, so runs against one server do not pile up.
pub async fn delete_sessions(target: &Arc<Target>, ids: &[Uuid]) -> Result<()> {
    let ids: Arc<Vec<Uuid>> = Arc::new(ids.to_vec());
    let resps = batch(target, ids.len(), SETUP_CONCURRENCY, move |i| ReqSpec {
        method: Method::DELETE,
        path: format!("/v1/sessions/{}", ids[i]),
        body: None,
        authorization: None,
    })
    .await?;
    for (status, body) in &resps {
        expect_status("delete session", *status, body, StatusCode::NO_CONTENT)?;
    }
    Ok(())
}

/// A server → client WebSocket message, reduced to what the scenarios measure.
#[derive(Debug, Deserialize)]
pub struct WsMsg {
    /// `CONNECTED`, `STATE_SYNC`, `STATE_UPDATE`, `TIME_EXPIRED`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The state of `STATE_SYNC` / `STATE_UPDATE`.
    #[serde(default)]
    pub state: Option<StateLite>,
    /// Server timestamp (epoch ms when numeric).
    #[serde(default)]
    pub timestamp: Option<serde_json::Value>,
}

impl WsMsg {
    /// Parses a text frame; `None` for anything that is not a JSON object with a `type`.
    pub fn parse(text: &str) -> Option<WsMsg> {
        serde_json::from_str(text).ok()
    }

    /// The server timestamp in epoch ms, when it is a number.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp.as_ref().and_then(serde_json::Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_matches_the_contract() {
        let id = Uuid::new_v4();
        let v: serde_json::Value = serde_json::from_slice(&create_body(id, 3_600_000)).unwrap();
        assert_eq!(v["session_id"], id.to_string());
        assert_eq!(v["sync_mode"], "per_participant");
        assert_eq!(v["total_time_ms"], 3_600_000);
        assert_eq!(v["participants"].as_array().unwrap().len(), 2);
        assert_eq!(v["participants"][1]["participant_id"], "p2");
        assert_eq!(v["participants"][1]["total_time_ms"], 3_600_000);
    }

    #[test]
    fn state_and_ws_messages_parse() {
        let s =
            parse_state(br#"{"data":{"version":7,"deadline_ms":1700000000123,"participants":[]}}"#)
                .unwrap();
        assert_eq!((s.version, s.deadline_ms), (7, Some(1_700_000_000_123)));
        let s = parse_state(br#"{"data":{"version":1,"deadline_ms":null}}"#).unwrap();
        assert_eq!(s.deadline_ms, None);
        assert!(parse_state(br#"{"error":{"code":"X","message":"y"}}"#).is_err());

        let m = WsMsg::parse(
            r#"{"type":"STATE_UPDATE","sessionId":"x","timestamp":5,"state":{"version":3,"status":"running"}}"#,
        )
        .unwrap();
        assert_eq!(m.kind, "STATE_UPDATE");
        assert_eq!(m.state.unwrap().version, 3);
        let m = WsMsg::parse(
            r#"{"type":"TIME_EXPIRED","timestamp":1700000000999,"participant_id":"p1"}"#,
        )
        .unwrap();
        assert_eq!(m.timestamp_ms(), Some(1_700_000_000_999));
        let m =
            WsMsg::parse(r#"{"type":"CONNECTED","timestamp":"2026-11-25T14:30:00.000Z"}"#).unwrap();
        assert_eq!(m.timestamp_ms(), None);
        assert!(WsMsg::parse("not json").is_none());
    }

    #[test]
    fn expect_status_reports_the_body() {
        let err = expect_status(
            "x",
            StatusCode::BAD_REQUEST,
            b"{\"error\":1}",
            StatusCode::OK,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("400") && err.contains("error"), "{err}");
    }
}
