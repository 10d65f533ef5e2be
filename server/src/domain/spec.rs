//! The rules of a create request: a typed [`SessionDraft`] in, a checked
//! [`CreateSpec`] out, or a [`FieldError`] naming the offending field
//! (`participants[1].total_time_ms`).
//!
//! The JSON wire form of the request is not read here: `api::requests`
//! deserializes the body (wrong types and missing fields are reported
//! there) and hands over a draft, so these rules are plain functions of
//! plain values and are property-tested as such.

use super::model::{GroupBank, Millis, Participant, Session, Status, SyncMode, TimeoutAction};
use super::storable::check_storable;
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
/// Longest participant or group id.
pub const MAX_ID_LEN: usize = 128;
/// Serialized `action_on_timeout` size cap (its client extras are echoed in
/// every TIME_EXPIRED and read).
pub const MAX_TIMEOUT_ACTION_BYTES: usize = 16 * 1024;
/// Cap of a session's client-supplied stored state: metadata,
/// `action_on_timeout` and participants together (see [`stored_size`]).
pub const MAX_STATE_BYTES: usize = 128 * 1024;
/// What one participant costs in [`stored_size`] besides its ids (its
/// numbers and field names, as stored).
pub const PARTICIPANT_OVERHEAD_BYTES: usize = 64;

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

/// A create request as typed values whose rules are not checked yet: the
/// fields a client must send are present, every other one is as sent
/// (`None` when absent). [`CreateSpec::validate`] turns it into a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDraft {
    /// The session id.
    pub session_id: Uuid,
    /// Mode.
    pub sync_mode: SyncMode,
    /// Participants in the order sent.
    pub participants: Vec<ParticipantDraft>,
    /// Session budget.
    pub total_time_ms: i64,
    /// Per-turn budget (required in per_cycle).
    pub time_per_cycle_ms: Option<i64>,
    /// End-of-turn increment (default 0).
    pub increment_ms: Option<i64>,
    /// Cap.
    pub max_time_ms: Option<i64>,
    /// Timeout behaviour (default end_session).
    pub action_on_timeout: Option<TimeoutAction>,
    /// Advance on auto_action (default false).
    pub auto_advance: Option<bool>,
    /// Client data (default `{}`).
    pub metadata: Option<Map<String, Value>>,
}

impl SessionDraft {
    /// A draft with only the required fields; the rest take their defaults.
    /// Lets tests and tools state just what they care about.
    pub fn new(
        session_id: Uuid,
        sync_mode: SyncMode,
        total_time_ms: i64,
        participants: Vec<ParticipantDraft>,
    ) -> Self {
        SessionDraft {
            session_id,
            sync_mode,
            participants,
            total_time_ms,
            time_per_cycle_ms: None,
            increment_ms: None,
            max_time_ms: None,
            action_on_timeout: None,
            auto_advance: None,
            metadata: None,
        }
    }
}

/// One participant of a [`SessionDraft`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantDraft {
    /// Client-chosen id.
    pub participant_id: String,
    /// Rotation position (default: position in the array).
    pub participant_index: Option<i64>,
    /// Group (required in per_group).
    pub group_id: Option<String>,
    /// Own bank (default: the session's `total_time_ms`).
    pub total_time_ms: Option<i64>,
}

impl ParticipantDraft {
    /// A participant with only an id; the rest take their defaults.
    pub fn new(participant_id: impl Into<String>) -> Self {
        ParticipantDraft {
            participant_id: participant_id.into(),
            participant_index: None,
            group_id: None,
            total_time_ms: None,
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
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

fn json_size<T: serde::Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// The bytes a session's client-supplied state takes: serialized metadata
/// and `action_on_timeout`, plus each participant's ids and a fixed
/// overhead. Capped by [`MAX_STATE_BYTES`], so every session read, written
/// and broadcast has a known worst-case size.
pub fn stored_size(metadata: usize, action: usize, participants: &[CreateParticipant]) -> usize {
    participants
        .iter()
        .map(|p| {
            p.participant_id.len()
                + p.group_id.as_ref().map_or(0, String::len)
                + PARTICIPANT_OVERHEAD_BYTES
        })
        .fold(metadata.saturating_add(action), usize::saturating_add)
}

fn in_range(n: i64, field: &str, lo: i64, hi: i64) -> Result<i64, FieldError> {
    if n < lo || n > hi {
        return Err(FieldError::new(
            field,
            format!("must be between {lo} and {hi}"),
        ));
    }
    Ok(n)
}

fn opt_in_range(n: Option<i64>, field: &str, lo: i64, hi: i64) -> Result<Option<i64>, FieldError> {
    n.map(|n| in_range(n, field, lo, hi)).transpose()
}

fn id(s: String, field: &str) -> Result<String, FieldError> {
    if !valid_id(&s) {
        return Err(FieldError::new(
            field,
            "must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -",
        ));
    }
    Ok(s)
}

fn participant(
    p: ParticipantDraft,
    i: usize,
    default_bank: i64,
    mode: SyncMode,
) -> Result<CreateParticipant, FieldError> {
    let f = |k: &str| format!("participants[{i}].{k}");
    let participant_id = id(p.participant_id, &f("participant_id"))?;
    let participant_index = match p.participant_index {
        Some(n) => in_range(n, &f("participant_index"), 0, i64::from(u32::MAX))? as u32,
        None => i as u32,
    };
    let group_id = p.group_id.map(|g| id(g, &f("group_id"))).transpose()?;
    if mode == SyncMode::PerGroup && group_id.is_none() {
        return Err(FieldError::new(
            f("group_id"),
            "is required in per_group mode",
        ));
    }
    let total_time_ms = opt_in_range(
        p.total_time_ms,
        &f("total_time_ms"),
        BANK_RANGE.0,
        BANK_RANGE.1,
    )?
    .unwrap_or(default_bank);
    Ok(CreateParticipant {
        participant_id,
        participant_index,
        group_id,
        total_time_ms,
    })
}

impl CreateSpec {
    /// Checks a draft against the rules (ranges, id charset, mode-dependent
    /// requirements, unique ids and indexes, metadata size) and applies the
    /// defaults. The first violation found is reported.
    pub fn validate(d: SessionDraft) -> Result<CreateSpec, FieldError> {
        let (lo, hi) = BANK_RANGE;
        let total_time_ms = in_range(d.total_time_ms, "total_time_ms", lo, hi)?;
        let time_per_cycle_ms = opt_in_range(d.time_per_cycle_ms, "time_per_cycle_ms", lo, hi)?;
        if d.sync_mode == SyncMode::PerCycle && time_per_cycle_ms.is_none() {
            return Err(FieldError::new(
                "time_per_cycle_ms",
                "is required in per_cycle mode",
            ));
        }
        let increment_ms =
            opt_in_range(d.increment_ms, "increment_ms", 0, MAX_INCREMENT_MS)?.unwrap_or(0);
        let max_time_ms = opt_in_range(d.max_time_ms, "max_time_ms", lo, hi)?;
        let metadata = Value::Object(d.metadata.unwrap_or_default());
        let size = json_size(&metadata);
        if size > MAX_METADATA_BYTES {
            return Err(FieldError::new(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes serialized"),
            ));
        }
        check_storable("metadata", &metadata)?;
        if let Some(a) = &d.action_on_timeout {
            for (k, v) in &a.extra {
                check_storable(&format!("action_on_timeout.{k}"), v)?;
            }
            if a.extra.keys().any(|k| k.contains('\0')) {
                return Err(FieldError::new(
                    "action_on_timeout",
                    "must not have keys containing NUL (\\u0000) characters",
                ));
            }
        }
        let action_size = d.action_on_timeout.as_ref().map_or(0, json_size);
        if action_size > MAX_TIMEOUT_ACTION_BYTES {
            return Err(FieldError::new(
                "action_on_timeout",
                format!("must be at most {MAX_TIMEOUT_ACTION_BYTES} bytes serialized"),
            ));
        }
        if d.participants.is_empty() || d.participants.len() > MAX_PARTICIPANTS {
            return Err(FieldError::new(
                "participants",
                format!("must hold 1 to {MAX_PARTICIPANTS} participants"),
            ));
        }
        let mut participants = d
            .participants
            .into_iter()
            .enumerate()
            .map(|(i, p)| participant(p, i, total_time_ms, d.sync_mode))
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
        if stored_size(size, action_size, &participants) > MAX_STATE_BYTES {
            return Err(FieldError::new(
                "participants",
                format!(
                    "with metadata and action_on_timeout, the session's stored state must be at most {MAX_STATE_BYTES} bytes"
                ),
            ));
        }
        participants.sort_by_key(|p| p.participant_index);
        Ok(CreateSpec {
            session_id: d.session_id,
            sync_mode: d.sync_mode,
            participants,
            total_time_ms,
            time_per_cycle_ms,
            increment_ms,
            max_time_ms,
            action_on_timeout: d.action_on_timeout.unwrap_or_default(),
            auto_advance: d.auto_advance.unwrap_or(false),
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

    fn base() -> SessionDraft {
        SessionDraft::new(
            Uuid::nil(),
            SyncMode::PerParticipant,
            60_000,
            vec![ParticipantDraft::new("a"), ParticipantDraft::new("b")],
        )
    }

    fn err_field(d: SessionDraft) -> String {
        CreateSpec::validate(d).unwrap_err().field
    }

    #[test]
    fn accepts_minimal_draft_and_applies_defaults() {
        let s = CreateSpec::validate(base()).unwrap();
        assert_eq!(s.participants.len(), 2);
        assert_eq!(s.participants[1].participant_index, 1);
        assert_eq!(s.participants[1].total_time_ms, 60000);
        assert_eq!(s.increment_ms, 0);
        assert_eq!(s.metadata, Value::Object(Map::new()));
        assert_eq!(s.action_on_timeout, TimeoutAction::default());
    }

    #[test]
    fn names_the_field() {
        let mut d = base();
        d.participants[1].total_time_ms = Some(999);
        assert_eq!(err_field(d), "participants[1].total_time_ms");
        let mut d = base();
        d.total_time_ms = 999;
        assert_eq!(err_field(d), "total_time_ms");
        let mut d = base();
        d.sync_mode = SyncMode::PerCycle;
        assert_eq!(err_field(d), "time_per_cycle_ms");
        let mut d = base();
        d.participants[0].participant_id = "b".into();
        assert_eq!(err_field(d), "participants");
        let mut d = base();
        d.participants[0].participant_id = "has space".into();
        assert_eq!(err_field(d), "participants[0].participant_id");
        let mut d = base();
        d.sync_mode = SyncMode::PerGroup;
        d.participants[0].group_id = Some("g".into());
        assert_eq!(err_field(d), "participants[1].group_id");
        let mut d = base();
        d.participants[0].participant_index = Some(-1);
        assert_eq!(err_field(d), "participants[0].participant_index");
        let mut d = base();
        d.increment_ms = Some(60_001);
        assert_eq!(err_field(d), "increment_ms");
        let mut d = base();
        d.participants.clear();
        assert_eq!(err_field(d), "participants");
    }

    #[test]
    fn huge_integers_are_out_of_range_not_wrapped() {
        let mut d = base();
        d.total_time_ms = i64::MAX;
        assert_eq!(err_field(d), "total_time_ms");
    }
}
