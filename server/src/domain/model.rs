//! The stored form of a session: what an engine persists and what every
//! transition reads and writes. Rendering for clients lives in `render`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Unix epoch milliseconds; the only unit of time on the server.
pub type Millis = i64;

/// How the session's clocks are organised (see API.md "Modes and timeouts").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Each participant has its own bank (chess clock).
    PerParticipant,
    /// Every turn gets `time_per_cycle_ms`; nothing carries over.
    PerCycle,
    /// Members of a group share the group's bank.
    PerGroup,
    /// One session clock; switching only changes whose turn it is.
    Global,
    /// A stopwatch that expires only at `max_time_ms`.
    CountUp,
}

impl SyncMode {
    /// Whether the active participant's turn draws on a bank that an
    /// increment can refill (per_participant and per_group).
    pub fn has_carried_banks(self) -> bool {
        matches!(self, SyncMode::PerParticipant | SyncMode::PerGroup)
    }
}

/// Lifecycle of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, not started.
    Pending,
    /// A clock is running.
    Running,
    /// Stopped by a client; resumable.
    Paused,
    /// Time ran out.
    Expired,
    /// Ended normally by a client.
    Completed,
    /// Abandoned by a client.
    Cancelled,
}

impl Status {
    /// Terminal sessions accept nothing but delete.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Expired | Status::Completed | Status::Cancelled
        )
    }

    /// The word clients see, used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Expired => "expired",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// What the server does when a running clock reaches zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutKind {
    /// Mark expired and stop the session.
    EndSession,
    /// Mark the participant expired and pass the turn on.
    SkipCycle,
    /// Tell clients to apply their default move (optionally advance).
    AutoAction,
}

/// `action_on_timeout` as the client sent it: the type the server acts on,
/// plus any extra fields (echoed back untouched for the clients' own use).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeoutAction {
    /// The behaviour the server applies.
    #[serde(rename = "type")]
    pub kind: TimeoutKind,
    /// Client-defined extras such as `action` or `penalty`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for TimeoutAction {
    fn default() -> Self {
        TimeoutAction {
            kind: TimeoutKind::EndSession,
            extra: serde_json::Map::new(),
        }
    }
}

/// One participant as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Client-chosen id, unique in the session.
    #[serde(rename = "id")]
    pub participant_id: String,
    /// Rotation position; participants are kept sorted by it.
    #[serde(rename = "ix")]
    pub participant_index: u32,
    /// Group membership (per_group).
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Own bank as of the start of the current cycle (per_participant,
    /// per_cycle); for shared-bank modes the bank lives elsewhere.
    #[serde(rename = "b")]
    pub bank_ms: i64,
    /// Time charged in completed cycles.
    #[serde(rename = "u")]
    pub time_used_ms: i64,
    /// Turns completed.
    #[serde(rename = "c")]
    pub cycle_count: u64,
    /// Out of time for good.
    #[serde(rename = "x", default)]
    pub has_expired: bool,
}

/// A group's shared bank (per_group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupBank {
    /// The group's id.
    pub group_id: String,
    /// Remaining as of the start of the current cycle.
    pub bank_ms: i64,
    /// Position (inside the group's members) of the member to play next.
    pub next_member: u32,
    /// Out of time for good.
    #[serde(default)]
    pub has_expired: bool,
}

/// Audit event kinds, named as in the seed architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Session created.
    SessionCreated,
    /// pending → running.
    SessionStarted,
    /// The turn moved.
    CycleSwitched,
    /// running → paused.
    SessionPaused,
    /// paused → running.
    SessionResumed,
    /// A clock hit zero and the server applied the timeout action.
    ParticipantExpired,
    /// Ended by a client.
    SessionCompleted,
    /// Abandoned by a client.
    SessionCancelled,
    /// Removed.
    SessionDeleted,
}

impl EventKind {
    /// The event type string stored in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionCreated => "session_created",
            EventKind::SessionStarted => "session_started",
            EventKind::CycleSwitched => "cycle_switched",
            EventKind::SessionPaused => "session_paused",
            EventKind::SessionResumed => "session_resumed",
            EventKind::ParticipantExpired => "participant_expired",
            EventKind::SessionCompleted => "session_completed",
            EventKind::SessionCancelled => "session_cancelled",
            EventKind::SessionDeleted => "session_deleted",
        }
    }
}

/// A session as stored by an engine: the single source of truth.
///
/// A running clock is `(bank, cycle_started_at)`; nothing ticks. Field names
/// are short where they repeat per participant, to keep Redis memory small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The session's id.
    pub session_id: Uuid,
    /// Clock organisation.
    pub sync_mode: SyncMode,
    /// Lifecycle.
    pub status: Status,
    /// 1 on create, +1 per committed change.
    pub version: u64,
    /// Sorted by `participant_index`.
    pub participants: Vec<Participant>,
    /// Index into `participants` of the active one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<u32>,
    /// Group banks, in rotation order (per_group only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupBank>,
    /// global: remaining session clock; count_up: elapsed so far. Both as of
    /// the start of the current cycle.
    #[serde(default)]
    pub session_bank_ms: i64,
    /// Session budget as created.
    pub total_time_ms: i64,
    /// Per-turn budget (per_cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_per_cycle_ms: Option<i64>,
    /// Added to a bank at the end of its turn.
    #[serde(default)]
    pub increment_ms: i64,
    /// Bank cap after increment; count_up's expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_ms: Option<i64>,
    /// What happens at zero.
    #[serde(default)]
    pub action_on_timeout: TimeoutAction,
    /// With auto_action: the server also advances the turn.
    #[serde(default)]
    pub auto_advance: bool,
    /// When the current cycle began (running only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle_started_at: Option<Millis>,
    /// auto_action without auto_advance fired: the clock sits at zero until a
    /// client switches.
    #[serde(default)]
    pub awaiting_switch: bool,
    /// When the session was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_started_at: Option<Millis>,
    /// When it reached a terminal status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_completed_at: Option<Millis>,
    /// Creation time.
    pub created_at: Millis,
    /// Last committed change.
    pub updated_at: Millis,
    /// Client data, echoed.
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
    /// Which create this state descends from: random per create, drawn by
    /// the service and compared with the version on every commit, so a stale
    /// copy of a session that was deleted and created again under the same
    /// id can never commit over the new one. The domain carries it
    /// untouched; it is not part of the JSON (0: not assigned).
    #[serde(skip)]
    pub incarnation: u32,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Session {
    /// The active participant, if any.
    pub fn active_participant(&self) -> Option<&Participant> {
        self.active.and_then(|i| self.participants.get(i as usize))
    }

    /// Position of a participant by id.
    pub fn position_of(&self, participant_id: &str) -> Option<usize> {
        self.participants
            .iter()
            .position(|p| p.participant_id == participant_id)
    }

    /// Position of a group in `groups`.
    pub fn group_position(&self, group_id: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.group_id == group_id)
    }

    /// Members of a group (positions into `participants`), in index order.
    pub fn group_members(&self, group_id: &str) -> Vec<usize> {
        self.participants
            .iter()
            .enumerate()
            .filter(|(_, p)| p.group_id.as_deref() == Some(group_id))
            .map(|(i, _)| i)
            .collect()
    }

    /// The bank the participant at `pos` draws on, as of the cycle start.
    pub fn bank_of(&self, pos: usize) -> i64 {
        match self.sync_mode {
            SyncMode::PerParticipant | SyncMode::PerCycle => {
                self.participants.get(pos).map_or(0, |p| p.bank_ms)
            }
            SyncMode::PerGroup => self
                .participants
                .get(pos)
                .and_then(|p| p.group_id.as_deref())
                .and_then(|g| self.group_position(g))
                .map_or(0, |gi| self.groups[gi].bank_ms),
            SyncMode::Global => self.session_bank_ms,
            SyncMode::CountUp => match self.max_time_ms {
                Some(cap) => (cap - self.session_bank_ms).max(0),
                None => self.total_time_ms,
            },
        }
    }

    /// Whether a running clock in this session can ever reach zero.
    pub fn can_expire(&self) -> bool {
        !(self.sync_mode == SyncMode::CountUp && self.max_time_ms.is_none())
    }

    /// Elapsed time of the current cycle at `now` (0 unless running).
    pub fn elapsed(&self, now: Millis) -> i64 {
        match (self.status, self.cycle_started_at) {
            (Status::Running, Some(start)) if !self.awaiting_switch => (now - start).max(0),
            _ => 0,
        }
    }

    /// When the running clock reaches zero if nothing happens.
    pub fn deadline_ms(&self) -> Option<Millis> {
        if self.status != Status::Running || self.awaiting_switch || !self.can_expire() {
            return None;
        }
        let start = self.cycle_started_at?;
        let pos = self.active? as usize;
        Some(start + self.bank_of(pos))
    }
}
