//! Validation of a create request into a checked `CreateSpec`.
//!
//! Validation walks the raw JSON so every violation, including a wrong type,
//! names the exact field (`participants[1].total_time_ms`) instead of a serde
//! line/column.

use super::model::{
    GroupBank, Millis, Participant, Session, Status, SyncMode, TimeoutAction, TimeoutKind,
};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Smallest and largest bank a client may ask for (1 s ..= 24 h).
pub const BANK_RANGE: (i64, i64) = (1_000, 86_400_000);
/// Largest increment (60 s).
pub const MAX_INCREMENT_MS: i64 = 60_000;
/// Participants per session.
pub const MAX_PARTICIPANTS: usize = 1_000;
/// Serialized metadata size cap.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// A violation that names the offending field, so clients can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `participants[0].participant_id`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One participant of a checked create request.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateParticipant {
    /// Unique id.
    pub participant_id: String,
    /// Rotation position.
    pub participant_index: u32,
    /// Group (required in per_group).
    pub group_id: Option<String>,
    /// Own bank.
    pub total_time_ms: i64,
}

/// A create request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSpec {
    /// The session id.
    pub session_id: Uuid,
    /// Mode.
    pub sync_mode: SyncMode,
    /// Participants in rotation order.
    pub participants: Vec<CreateParticipant>,
    /// Session budget.
    pub total_time_ms: i64,
    /// Per-turn budget.
    pub time_per_cycle_ms: Option<i64>,
    /// End-of-turn increment.
    pub increment_ms: i64,
    /// Cap.
    pub max_time_ms: Option<i64>,
    /// Timeout behaviour.
    pub action_on_timeout: TimeoutAction,
    /// Advance on auto_action.
    pub auto_advance: bool,
    /// Client data.
    pub metadata: Value,
}

/// Ids and group ids: 1..=128 chars of `[A-Za-z0-9._:@-]`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn int_in(v: &Value, field: &str, lo: i64, hi: i64) -> Result<i64, FieldError> {
    let n = v
        .as_i64()
        .or_else(|| v.as_u64().map(|_| i64::MAX))
        .ok_or_else(|| FieldError::new(field, "must be an integer"))?;
    if n < lo || n > hi {
        return Err(FieldError::new(
            field,
            format!("must be between {lo} and {hi}"),
        ));
    }
    Ok(n)
}

fn opt_int(
    obj: &Map<String, Value>,
    key: &str,
    lo: i64,
    hi: i64,
) -> Result<Option<i64>, FieldError> {
    get(obj, key).map(|v| int_in(v, key, lo, hi)).transpose()
}

fn id_string(v: &Value, field: &str) -> Result<String, FieldError> {
    let s = v
        .as_str()
        .ok_or_else(|| FieldError::new(field, "must be a string"))?;
    if !valid_id(s) {
        return Err(FieldError::new(
            field,
            "must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -",
        ));
    }
    Ok(s.to_string())
}

/// Parses `sync_mode` strings.
pub fn parse_mode(v: &Value, field: &str) -> Result<SyncMode, FieldError> {
    serde_json::from_value::<SyncMode>(v.clone()).map_err(|_| {
        FieldError::new(
            field,
            "must be one of per_participant, per_cycle, per_group, global, count_up",
        )
    })
}

fn parse_action(v: &Value) -> Result<TimeoutAction, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new("action_on_timeout", "must be an object"))?;
    let kind = match obj.get("type") {
        None | Some(Value::Null) => {
            return Err(FieldError::new("action_on_timeout.type", "is required"));
        }
        Some(t) => serde_json::from_value::<TimeoutKind>(t.clone()).map_err(|_| {
            FieldError::new(
                "action_on_timeout.type",
                "must be one of end_session, skip_cycle, auto_action",
            )
        })?,
    };
    let mut extra = obj.clone();
    extra.remove("type");
    Ok(TimeoutAction { kind, extra })
}

fn parse_participant(
    v: &Value,
    i: usize,
    default_bank: i64,
    mode: SyncMode,
) -> Result<CreateParticipant, FieldError> {
    let f = |k: &str| format!("participants[{i}].{k}");
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new(format!("participants[{i}]"), "must be an object"))?;
    let participant_id = match get(obj, "participant_id") {
        Some(v) => id_string(v, &f("participant_id"))?,
        None => return Err(FieldError::new(f("participant_id"), "is required")),
    };
    let participant_index = match get(obj, "participant_index") {
        Some(v) => int_in(v, &f("participant_index"), 0, i64::from(u32::MAX))? as u32,
        None => i as u32,
    };
    let group_id = get(obj, "group_id")
        .map(|v| id_string(v, &f("group_id")))
        .transpose()?;
    if mode == SyncMode::PerGroup && group_id.is_none() {
        return Err(FieldError::new(
            f("group_id"),
            "is required in per_group mode",
        ));
    }
    let total_time_ms = match get(obj, "total_time_ms") {
        Some(v) => int_in(v, &f("total_time_ms"), BANK_RANGE.0, BANK_RANGE.1)?,
        None => default_bank,
    };
    Ok(CreateParticipant {
        participant_id,
        participant_index,
        group_id,
        total_time_ms,
    })
}

impl CreateSpec {
    /// Validates a create body. The first violation found is reported.
    pub fn from_json(body: &Value) -> Result<CreateSpec, FieldError> {
        let obj = body
            .as_object()
            .ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        let session_id = match get(obj, "session_id") {
            None => return Err(FieldError::new("session_id", "is required")),
            Some(v) => v
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| FieldError::new("session_id", "must be a UUID string"))?,
        };
        let sync_mode = match get(obj, "sync_mode") {
            None => return Err(FieldError::new("sync_mode", "is required")),
            Some(v) => parse_mode(v, "sync_mode")?,
        };
        let total_time_ms = opt_int(obj, "total_time_ms", BANK_RANGE.0, BANK_RANGE.1)?
            .ok_or_else(|| FieldError::new("total_time_ms", "is required"))?;
        let time_per_cycle_ms = opt_int(obj, "time_per_cycle_ms", BANK_RANGE.0, BANK_RANGE.1)?;
        if sync_mode == SyncMode::PerCycle && time_per_cycle_ms.is_none() {
            return Err(FieldError::new(
                "time_per_cycle_ms",
                "is required in per_cycle mode",
            ));
        }
        let increment_ms = opt_int(obj, "increment_ms", 0, MAX_INCREMENT_MS)?.unwrap_or(0);
        let max_time_ms = opt_int(obj, "max_time_ms", BANK_RANGE.0, BANK_RANGE.1)?;
        let action_on_timeout = get(obj, "action_on_timeout")
            .map(parse_action)
            .transpose()?
            .unwrap_or_default();
        let auto_advance = match get(obj, "auto_advance") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| FieldError::new("auto_advance", "must be a boolean"))?,
        };
        let metadata = match get(obj, "metadata") {
            None => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => {
                let size = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
                if size > MAX_METADATA_BYTES {
                    return Err(FieldError::new(
                        "metadata",
                        format!("must be at most {MAX_METADATA_BYTES} bytes serialized"),
                    ));
                }
                v.clone()
            }
            Some(_) => return Err(FieldError::new("metadata", "must be an object")),
        };
        let raw = match get(obj, "participants") {
            None => return Err(FieldError::new("participants", "is required")),
            Some(v) => v
                .as_array()
                .ok_or_else(|| FieldError::new("participants", "must be an array"))?,
        };
        if raw.is_empty() || raw.len() > MAX_PARTICIPANTS {
            return Err(FieldError::new(
                "participants",
                format!("must hold 1 to {MAX_PARTICIPANTS} participants"),
            ));
        }
        let mut participants = raw
            .iter()
            .enumerate()
            .map(|(i, v)| parse_participant(v, i, total_time_ms, sync_mode))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids = std::collections::HashSet::new();
        let mut indexes = std::collections::HashSet::new();
        for p in &participants {
            if !ids.insert(p.participant_id.as_str()) {
                return Err(FieldError::new(
                    "participants",
                    format!("participant_id {} appears twice", p.participant_id),
                ));
            }
            if !indexes.insert(p.participant_index) {
                return Err(FieldError::new(
                    "participants",
                    format!("participant_index {} appears twice", p.participant_index),
                ));
            }
        }
        participants.sort_by_key(|p| p.participant_index);
        Ok(CreateSpec {
            session_id,
            sync_mode,
            participants,
            total_time_ms,
            time_per_cycle_ms,
            increment_ms,
            max_time_ms,
            action_on_timeout,
            auto_advance,
            metadata,
        })
    }

    /// The new session, version 1, pending.
    pub fn into_session(self, now: Millis) -> Session {
        let per_cycle = self.time_per_cycle_ms;
        let participants: Vec<Participant> = self
            .participants
            .iter()
            .map(|p| Participant {
                participant_id: p.participant_id.clone(),
                participant_index: p.participant_index,
                group_id: p.group_id.clone(),
                bank_ms: match (self.sync_mode, per_cycle) {
                    (SyncMode::PerCycle, Some(c)) => c,
                    _ => p.total_time_ms,
                },
                time_used_ms: 0,
                cycle_count: 0,
                has_expired: false,
            })
            .collect();
        let mut groups: Vec<GroupBank> = Vec::new();
        if self.sync_mode == SyncMode::PerGroup {
            for p in &self.participants {
                if let Some(g) = &p.group_id
                    && !groups.iter().any(|x| &x.group_id == g)
                {
                    groups.push(GroupBank {
                        group_id: g.clone(),
                        bank_ms: p.total_time_ms,
                        next_member: 0,
                        has_expired: false,
                    });
                }
            }
        }
        let session_bank_ms = match self.sync_mode {
            SyncMode::Global => self.total_time_ms,
            _ => 0,
        };
        Session {
            session_id: self.session_id,
            sync_mode: self.sync_mode,
            status: Status::Pending,
            version: 1,
            participants,
            active: None,
            groups,
            session_bank_ms,
            total_time_ms: self.total_time_ms,
            time_per_cycle_ms: self.time_per_cycle_ms,
            increment_ms: self.increment_ms,
            max_time_ms: self.max_time_ms,
            action_on_timeout: self.action_on_timeout,
            auto_advance: self.auto_advance,
            cycle_started_at: None,
            awaiting_switch: false,
            session_started_at: None,
            session_completed_at: None,
            created_at: now,
            updated_at: now,
            metadata: self.metadata,
            incarnation: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "session_id": "550e8400-e29b-41d4-a716-446655440000",
            "sync_mode": "per_participant",
            "total_time_ms": 60000,
            "participants": [{"participant_id": "a"}, {"participant_id": "b"}]
        })
    }

    fn err_field(v: Value) -> String {
        CreateSpec::from_json(&v).unwrap_err().field
    }

    #[test]
    fn accepts_minimal_body() {
        let s = CreateSpec::from_json(&base()).unwrap();
        assert_eq!(s.participants.len(), 2);
        assert_eq!(s.participants[1].participant_index, 1);
        assert_eq!(s.participants[1].total_time_ms, 60000);
    }

    #[test]
    fn names_the_field() {
        let mut v = base();
        v["participants"][1]["total_time_ms"] = json!("ten");
        assert_eq!(err_field(v), "participants[1].total_time_ms");
        let mut v = base();
        v["total_time_ms"] = json!(999);
        assert_eq!(err_field(v), "total_time_ms");
        let mut v = base();
        v["session_id"] = json!("nope");
        assert_eq!(err_field(v), "session_id");
        let mut v = base();
        v["sync_mode"] = json!("per_cycle");
        assert_eq!(err_field(v), "time_per_cycle_ms");
        let mut v = base();
        v["participants"][0]["participant_id"] = json!("b");
        assert_eq!(err_field(v), "participants");
        let mut v = base();
        v["action_on_timeout"] = json!({"type": "explode"});
        assert_eq!(err_field(v), "action_on_timeout.type");
        let mut v = base();
        v.as_object_mut().unwrap().remove("total_time_ms");
        assert_eq!(err_field(v), "total_time_ms");
        let mut v = base();
        v["action_on_timeout"] = json!({"action": "fold"});
        assert_eq!(err_field(v), "action_on_timeout.type");
        let mut v = base();
        v["increment_ms"] = json!(1.5);
        assert_eq!(err_field(v), "increment_ms");
        let mut v = base();
        v["participants"][0]["participant_id"] = json!("has space");
        assert_eq!(err_field(v), "participants[0].participant_id");
    }

    #[test]
    fn huge_integers_are_out_of_range_not_wrapped() {
        let mut v = base();
        v["total_time_ms"] = json!(u64::MAX);
        assert_eq!(err_field(v), "total_time_ms");
    }
}
