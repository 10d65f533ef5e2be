//! Request bodies the suites start from; tests adjust fields in place
//! (`body["increment_ms"] = json!(500)`).

use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;

/// A fresh session id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A create body: `mode`, participants with the given ids (array order =
/// rotation order) and `total_time_ms` for the session and every participant.
pub fn session_body(mode: &str, ids: &[&str], total_time_ms: i64) -> Value {
    let participants: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"participant_id": id, "participant_index": i, "total_time_ms": total_time_ms}))
        .collect();
    let mut body = json!({
        "session_id": new_id(),
        "sync_mode": mode,
        "participants": participants,
        "total_time_ms": total_time_ms,
    });
    if mode == "per_cycle" {
        body["time_per_cycle_ms"] = json!(total_time_ms);
    }
    body
}

/// The session id of a create body.
pub fn id_of(body: &Value) -> String {
    body["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("body has no session_id: {body}"))
        .to_string()
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after
/// `within`. For conditions that no event announces (e.g. idle expiry).
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
