//! Rendering a stored session for a given `now`: the `SyncState` clients
//! see, with live remaining times and the deadline.

use super::model::{Millis, Session, Status, SyncMode, TimeoutAction};
use super::time;
use serde::Serialize;
use uuid::Uuid;

/// A participant as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RenderedParticipant {
    /// Client-chosen id.
    pub participant_id: String,
    /// Rotation position.
    pub participant_index: u32,
    /// Group (per_group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Bank as of the start of the current cycle.
    pub total_time_ms: i64,
    /// Time consumed in completed cycles.
    pub time_used_ms: i64,
    /// Live remaining bank at `server_time_ms`, never below 0.
    pub time_remaining_ms: i64,
    /// Turns completed.
    pub cycle_count: u64,
    /// Whether it is this participant's turn.
    pub is_active: bool,
    /// Out of time.
    pub has_expired: bool,
}

/// The session state of the wire contract (`SyncState`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncState {
    /// Session id.
    pub session_id: Uuid,
    /// Mode.
    pub sync_mode: crate::domain::SyncMode,
    /// Lifecycle.
    pub status: Status,
    /// 1 on create, +1 per committed change.
    pub version: u64,
    /// Participants in rotation order.
    pub participants: Vec<RenderedParticipant>,
    /// Whose turn it is.
    #[schema(required = true)]
    pub active_participant_id: Option<String>,
    /// The active group (per_group).
    #[schema(required = true)]
    pub active_group_id: Option<String>,
    /// Session budget.
    pub total_time_ms: i64,
    /// Per-turn budget (per_cycle).
    #[schema(required = true)]
    pub time_per_cycle_ms: Option<i64>,
    /// End-of-turn increment.
    pub increment_ms: i64,
    /// Cap. Omitted when unset, never null: TS 2.0 clients validate it as
    /// an optional, non-nullable integer and reject a `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub max_time_ms: Option<i64>,
    /// Timeout behaviour, echoed.
    pub action_on_timeout: TimeoutAction,
    /// Advance on auto_action.
    pub auto_advance: bool,
    /// When the current cycle began.
    #[serde(serialize_with = "time::opt_iso::serialize")]
    #[schema(value_type = Option<String>, example = "2026-11-25T14:30:00.000Z", required = true)]
    pub cycle_started_at: Option<Millis>,
    /// When the session started.
    #[serde(serialize_with = "time::opt_iso::serialize")]
    #[schema(value_type = Option<String>, required = true)]
    pub session_started_at: Option<Millis>,
    /// When the session reached a terminal status.
    #[serde(serialize_with = "time::opt_iso::serialize")]
    #[schema(value_type = Option<String>, required = true)]
    pub session_completed_at: Option<Millis>,
    /// Creation time.
    #[serde(serialize_with = "time::iso::serialize")]
    #[schema(value_type = String)]
    pub created_at: Millis,
    /// Last change.
    #[serde(serialize_with = "time::iso::serialize")]
    #[schema(value_type = String)]
    pub updated_at: Millis,
    /// Client data.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The server clock when this state was rendered (ext).
    pub server_time_ms: Millis,
    /// When the running clock hits zero if nothing happens (ext).
    #[schema(required = true)]
    pub deadline_ms: Option<Millis>,
}

impl SyncState {
    /// Renders `s` as seen at `now`.
    pub fn render(s: &Session, now: Millis) -> SyncState {
        let active = s.active.map(|a| a as usize);
        let elapsed = s.elapsed(now);
        let active_group = active
            .and_then(|a| s.participants.get(a))
            .and_then(|p| p.group_id.clone())
            .filter(|_| s.sync_mode == SyncMode::PerGroup);
        let shares_clock = |pos: usize| -> bool {
            match s.sync_mode {
                SyncMode::Global | SyncMode::CountUp => true,
                SyncMode::PerGroup => {
                    active_group.is_some()
                        && s.participants[pos].group_id.as_deref() == active_group.as_deref()
                }
                _ => Some(pos) == active,
            }
        };
        let running = s.status == Status::Running;
        let participants = s
            .participants
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let bank = s.bank_of(i);
                let live = if running && s.awaiting_switch && shares_clock(i) {
                    0
                } else if running && shares_clock(i) && s.can_expire() {
                    bank - elapsed
                } else {
                    bank
                };
                RenderedParticipant {
                    participant_id: p.participant_id.clone(),
                    participant_index: p.participant_index,
                    group_id: p.group_id.clone(),
                    total_time_ms: bank,
                    time_used_ms: p.time_used_ms,
                    time_remaining_ms: live.max(0),
                    cycle_count: p.cycle_count,
                    is_active: Some(i) == active,
                    has_expired: p.has_expired,
                }
            })
            .collect();
        SyncState {
            session_id: s.session_id,
            sync_mode: s.sync_mode,
            status: s.status,
            version: s.version,
            participants,
            active_participant_id: s.active_participant().map(|p| p.participant_id.clone()),
            active_group_id: active_group,
            total_time_ms: s.total_time_ms,
            time_per_cycle_ms: s.time_per_cycle_ms,
            increment_ms: s.increment_ms,
            max_time_ms: s.max_time_ms,
            action_on_timeout: s.action_on_timeout.clone(),
            auto_advance: s.auto_advance,
            cycle_started_at: s.cycle_started_at,
            session_started_at: s.session_started_at,
            session_completed_at: s.session_completed_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
            metadata: s.metadata.clone(),
            server_time_ms: now,
            deadline_ms: s.deadline_ms(),
        }
    }
}
