//! Shape checks of the wire contract, applied to every state a test sees:
//! field presence and types, strict timestamps, and the invariants that
//! hold in every state (one active participant while running, none when
//! terminal, remaining time = deadline − server time, …).

use serde_json::Value;

const MODES: [&str; 5] = [
    "per_participant",
    "per_cycle",
    "per_group",
    "global",
    "count_up",
];
const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "paused",
    "expired",
    "completed",
    "cancelled",
];

/// Whether `s` is exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` and a real instant.
pub fn is_iso_ms(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'.',
        23 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    shape_ok && chrono::NaiveDateTime::parse_from_str(&s[..23], "%Y-%m-%dT%H:%M:%S%.3f").is_ok()
}

/// Parses a strict timestamp to epoch milliseconds; panics otherwise.
pub fn iso_ms(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a timestamp string, got {v}"));
    assert!(
        is_iso_ms(s),
        "timestamp not in YYYY-MM-DDTHH:MM:SS.mmmZ form: {s:?}"
    );
    chrono::NaiveDateTime::parse_from_str(&s[..23], "%Y-%m-%dT%H:%M:%S%.3f")
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or_else(|e| panic!("timestamp {s:?}: {e}"))
}

/// Renders epoch ms the way the contract requires (for expected values).
pub fn to_iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_else(|| panic!("epoch ms out of range: {ms}"))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// An integer field; panics with the whole object when it is not one.
pub fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("`{key}` must be an integer in {v}"))
}

/// The participant with `id` in a state or switch result.
pub fn participant<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["participant_id"] == id))
        .unwrap_or_else(|| panic!("no participant {id:?} in {state}"))
}

fn ts_or_null(obj: &Value, key: &str) {
    let v = obj
        .get(key)
        .unwrap_or_else(|| panic!("`{key}` missing (must be string or null) in {obj}"));
    if !v.is_null() {
        iso_ms(v);
    }
}

fn int_or_null(obj: &Value, key: &str) {
    let v = obj
        .get(key)
        .unwrap_or_else(|| panic!("`{key}` missing (must be integer or null) in {obj}"));
    assert!(
        v.is_null() || v.is_i64(),
        "`{key}` must be integer or null in {obj}"
    );
}

/// A field that is absent when unset and never `null` (API.md's `| absent`):
/// TS 2.0 clients validate such fields as optional and non-nullable.
fn int_or_absent(obj: &Value, key: &str) {
    if let Some(v) = obj.get(key) {
        assert!(
            v.is_i64(),
            "`{key}` must be an integer or absent, never null, in {obj}"
        );
    }
}

fn str_or_null(obj: &Value, key: &str) {
    let v = obj
        .get(key)
        .unwrap_or_else(|| panic!("`{key}` missing (must be string or null) in {obj}"));
    assert!(
        v.is_null() || v.is_string(),
        "`{key}` must be string or null in {obj}"
    );
}

fn valid_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:@".contains(c))
}

/// Checks one `SyncParticipant`.
pub fn check_participant(p: &Value) {
    let id = p["participant_id"]
        .as_str()
        .unwrap_or_else(|| panic!("participant_id must be a string: {p}"));
    assert!(valid_id(id), "participant_id charset: {p}");
    assert!(
        int(p, "participant_index") >= 0,
        "participant_index >= 0: {p}"
    );
    if let Some(g) = p.get("group_id") {
        assert!(
            g.as_str().is_some_and(valid_id),
            "group_id is a valid id when present, never null: {p}"
        );
    }
    int(p, "total_time_ms");
    assert!(int(p, "time_used_ms") >= 0, "time_used_ms >= 0: {p}");
    assert!(
        int(p, "time_remaining_ms") >= 0,
        "time_remaining_ms never below 0: {p}"
    );
    assert!(int(p, "cycle_count") >= 0, "cycle_count >= 0: {p}");
    assert!(p["is_active"].is_boolean(), "is_active boolean: {p}");
    assert!(p["has_expired"].is_boolean(), "has_expired boolean: {p}");
}

fn check_participants(s: &Value) -> &Vec<Value> {
    let ps = s["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants must be an array: {s}"));
    assert!(!ps.is_empty(), "participants never empty: {s}");
    for p in ps {
        check_participant(p);
    }
    let idx: Vec<i64> = ps.iter().map(|p| int(p, "participant_index")).collect();
    assert!(
        idx.windows(2).all(|w| w[0] < w[1]),
        "participants in rotation order (strictly increasing participant_index): {idx:?}"
    );
    ps
}

/// Checks a full `SyncState`: every field's presence and type, and the
/// invariants that hold in every state.
pub fn check_state(s: &Value) {
    assert!(s.is_object(), "state must be an object: {s}");
    let id = s["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("session_id string: {s}"));
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "session_id is a uuid: {s}"
    );
    let mode = s["sync_mode"].as_str().unwrap_or_default();
    assert!(MODES.contains(&mode), "sync_mode: {s}");
    let status = s["status"].as_str().unwrap_or_default();
    assert!(STATUSES.contains(&status), "status: {s}");
    assert!(int(s, "version") >= 1, "version >= 1: {s}");
    let ps = check_participants(s);
    str_or_null(s, "active_participant_id");
    if let Some(g) = s.get("active_group_id") {
        assert!(
            g.is_null() || g.is_string(),
            "active_group_id string or null: {s}"
        );
    }
    int(s, "total_time_ms");
    int_or_null(s, "time_per_cycle_ms");
    assert!(int(s, "increment_ms") >= 0, "increment_ms: {s}");
    int_or_absent(s, "max_time_ms");
    assert!(
        s["action_on_timeout"]["type"].is_string(),
        "action_on_timeout.type: {s}"
    );
    assert!(s["auto_advance"].is_boolean(), "auto_advance boolean: {s}");
    ts_or_null(s, "cycle_started_at");
    ts_or_null(s, "session_started_at");
    ts_or_null(s, "session_completed_at");
    let created = iso_ms(&s["created_at"]);
    let updated = iso_ms(&s["updated_at"]);
    assert!(updated >= created, "updated_at >= created_at: {s}");
    assert!(s["metadata"].is_object(), "metadata object: {s}");
    let now = int(s, "server_time_ms");
    int_or_null(s, "deadline_ms");

    let active = s["active_participant_id"].as_str();
    let flagged: Vec<&str> = ps
        .iter()
        .filter(|p| p["is_active"] == true)
        .filter_map(|p| p["participant_id"].as_str())
        .collect();
    match status {
        "running" => {
            let a = active.unwrap_or_else(|| panic!("running needs an active participant: {s}"));
            assert_eq!(
                flagged,
                vec![a],
                "exactly the active participant is_active: {s}"
            );
            assert!(
                !s["cycle_started_at"].is_null(),
                "running has cycle_started_at: {s}"
            );
            assert!(
                !s["session_started_at"].is_null(),
                "running has session_started_at: {s}"
            );
            if mode == "per_group" {
                let g = &participant(s, a)["group_id"];
                assert_eq!(
                    &s["active_group_id"], g,
                    "active_group_id is the active member's group: {s}"
                );
            }
        }
        "pending" => {
            assert!(
                active.is_none() && flagged.is_empty(),
                "pending has nobody active: {s}"
            );
            assert!(
                s["cycle_started_at"].is_null() && s["session_started_at"].is_null(),
                "pending: {s}"
            );
        }
        "paused" => {
            assert!(
                s["cycle_started_at"].is_null(),
                "paused: cycle_started_at null: {s}"
            );
            assert!(s["deadline_ms"].is_null(), "paused: deadline_ms null: {s}");
        }
        _ => {
            assert!(
                active.is_none() && flagged.is_empty(),
                "terminal: nobody active: {s}"
            );
            assert!(
                s["cycle_started_at"].is_null(),
                "terminal: cycle_started_at null: {s}"
            );
            assert!(
                s["deadline_ms"].is_null(),
                "terminal: deadline_ms null: {s}"
            );
            assert!(
                !s["session_completed_at"].is_null(),
                "terminal: session_completed_at set: {s}"
            );
        }
    }
    if let (Some(deadline), Some(a)) = (s["deadline_ms"].as_i64(), active) {
        assert_eq!(status, "running", "deadline_ms only while running: {s}");
        if mode != "count_up" {
            let p = participant(s, a);
            let start = iso_ms(&s["cycle_started_at"]);
            assert_eq!(
                deadline,
                start + int(p, "total_time_ms"),
                "deadline_ms = cycle_started_at + active bank: {s}"
            );
            assert_eq!(
                int(p, "time_remaining_ms"),
                (deadline - now).max(0),
                "active time_remaining_ms = deadline_ms - server_time_ms: {s}"
            );
        }
    }
}

/// Checks a `SwitchResult` (the switch endpoint's `data`).
pub fn check_switch_result(r: &Value) {
    let id = r["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("session_id string: {r}"));
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "session_id is a uuid: {r}"
    );
    str_or_null(r, "active_participant_id");
    ts_or_null(r, "cycle_started_at");
    check_participants(r);
    let status = r["status"].as_str().unwrap_or_default();
    assert!(STATUSES.contains(&status), "status: {r}");
    if let Some(e) = r.get("expired_participant_id") {
        assert!(
            e.is_string(),
            "expired_participant_id is a string when present, never null: {r}"
        );
    }
    assert!(int(r, "version") >= 1, "version: {r}");
    int(r, "server_time_ms");
    int_or_null(r, "deadline_ms");
}

/// Samples of the metric `name` in Prometheus text: (label block, value)
/// for every series whose name is exactly `name`.
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (n == name).then(|| (labels.to_string(), value.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

/// Sum of all series of the metric `name` (0 when absent).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    metric_samples(text, name).iter().map(|(_, v)| v).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_timestamps() {
        assert!(is_iso_ms("2026-11-25T14:30:00.000Z"));
        assert_eq!(iso_ms(&json!("1970-01-01T00:00:01.250Z")), 1250);
        assert_eq!(to_iso_ms(1250), "1970-01-01T00:00:01.250Z");
        for bad in [
            "2026-11-25T14:30:00.000+00:00",
            "2026-11-25T14:30:00Z",
            "2026-11-25T14:30:00.000000Z",
            "2026-11-25T14:30:00.00Z",
            "2026-11-25 14:30:00.000Z",
            "2026-11-25T14:30:00.000z",
            "2026-02-30T00:00:00.000Z",
            "2026-11-25T24:00:00.000Z",
        ] {
            assert!(!is_iso_ms(bad), "{bad} must be rejected");
        }
    }

    fn running() -> Value {
        json!({
            "session_id": "4d7c1a52-7f0e-4a4e-9a7c-2f2d3b1e0c11",
            "sync_mode": "per_participant", "status": "running", "version": 2,
            "participants": [
                {"participant_id": "a", "participant_index": 0, "total_time_ms": 60000,
                 "time_used_ms": 0, "time_remaining_ms": 59000, "cycle_count": 0,
                 "is_active": true, "has_expired": false},
                {"participant_id": "b", "participant_index": 1, "total_time_ms": 60000,
                 "time_used_ms": 0, "time_remaining_ms": 60000, "cycle_count": 0,
                 "is_active": false, "has_expired": false}
            ],
            "active_participant_id": "a", "active_group_id": null,
            "total_time_ms": 60000, "time_per_cycle_ms": null, "increment_ms": 0,
            "action_on_timeout": {"type": "end_session"},
            "auto_advance": false,
            "cycle_started_at": "2026-11-25T14:30:00.000Z",
            "session_started_at": "2026-11-25T14:30:00.000Z",
            "session_completed_at": null,
            "created_at": "2026-11-25T14:29:00.000Z", "updated_at": "2026-11-25T14:30:00.000Z",
            "metadata": {},
            "server_time_ms": iso_ms(&json!("2026-11-25T14:30:01.000Z")),
            "deadline_ms": iso_ms(&json!("2026-11-25T14:31:00.000Z")),
        })
    }

    fn rejected(s: Value) -> bool {
        std::panic::catch_unwind(|| check_state(&s)).is_err()
    }

    #[test]
    fn check_state_accepts_a_valid_state_and_rejects_broken_ones() {
        check_state(&running());
        let mut s = running();
        s["created_at"] = json!("2026-11-25T14:29:00.000+00:00");
        assert!(rejected(s), "offset timestamp");
        let mut s = running();
        s["participants"][0]["time_remaining_ms"] = json!(58_999);
        assert!(rejected(s), "remaining != deadline - server time");
        let mut s = running();
        s["participants"][1]["is_active"] = json!(true);
        assert!(rejected(s), "two active participants");
        let mut s = running();
        s.as_object_mut().map(|o| o.remove("deadline_ms"));
        assert!(rejected(s), "missing field");
        let mut s = running();
        s["status"] = json!("completed");
        assert!(rejected(s), "terminal with an active participant");
        let mut s = running();
        s["participants"][0]["participant_index"] = json!(3);
        assert!(rejected(s), "not in rotation order");
        let mut s = running();
        s["max_time_ms"] = json!(null);
        assert!(rejected(s), "max_time_ms null (TS 2.0 clients reject it)");
        let mut s = running();
        s["max_time_ms"] = json!(90_000);
        check_state(&s);
        let mut s = running();
        s["participants"][0]["group_id"] = json!(null);
        assert!(rejected(s), "group_id null");
    }

    #[test]
    fn metric_parsing() {
        let text = "# TYPE x_total counter\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3.5\nx_total_other 9\ny 1\n";
        assert_eq!(metric_sum(text, "x_total"), 5.5);
        assert_eq!(metric_samples(text, "y"), vec![(String::new(), 1.0)]);
        assert_eq!(metric_sum(text, "absent"), 0.0);
    }
}
