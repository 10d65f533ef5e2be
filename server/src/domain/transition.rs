//! Transitions: `apply(state, command, now)` → the next state plus what
//! happened. Every rule of modes, increments and timeouts lives here; both
//! engines call these same functions.

use super::model::{EventKind, Millis, Session, Status, SyncMode, TimeoutKind};
use super::spec::FieldError;

/// Optional arguments of a switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchArgs {
    /// Jump to this participant instead of the next in rotation.
    pub next_participant_id: Option<String>,
    /// Refuse unless the live version matches (ext).
    pub expected_version: Option<u64>,
    /// Refuse unless this participant is the active one (ext).
    pub current_participant_id: Option<String>,
    /// Set for a participant's own device (its token's `sub`): refuse with
    /// [`DomainError::NotYourTurn`] unless that participant's clock runs
    /// (per_group: its group's). Checked against the very state the switch
    /// is computed from, so the version-checked commit makes it atomic.
    pub turn_of: Option<String>,
}

/// A request to change a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// pending → running.
    Start,
    /// End the active turn.
    Switch(SwitchArgs),
    /// running → paused.
    Pause,
    /// paused → running.
    Resume,
    /// Any non-terminal → completed.
    Complete,
    /// Any non-terminal → cancelled.
    Cancel,
    /// Apply the timeout action if the clock of this version has run out.
    Timeout {
        /// The version whose deadline the caller saw.
        expected_version: u64,
    },
}

impl Command {
    /// The verb used in error messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Switch(_) => "switch",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Complete => "complete",
            Command::Cancel => "cancel",
            Command::Timeout { .. } => "expire",
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// The command does not apply in the current status.
    InvalidTransition {
        /// The refused verb.
        verb: &'static str,
        /// The status it met.
        status: Status,
    },
    /// A client guard (`expected_version`, `current_participant_id`) failed.
    Conflict(String),
    /// A command argument is invalid.
    Invalid(FieldError),
    /// A timeout was requested but its clock has not run out (or moved on).
    NotDue,
    /// A participant tried to switch while another's clock runs.
    NotYourTurn(String),
}

impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainError::InvalidTransition { verb, status } => {
                write!(f, "cannot {verb}: session is {}", status.as_str())
            }
            DomainError::Conflict(m) => write!(f, "{m}"),
            DomainError::Invalid(e) => write!(f, "{}: {}", e.field, e.message),
            DomainError::NotDue => write!(f, "no timeout is due"),
            DomainError::NotYourTurn(who) => {
                write!(
                    f,
                    "it is not {who}'s turn: only the running clock's owner may switch"
                )
            }
        }
    }
}

/// The outcome of a command: the state to commit and what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The new state (version already incremented).
    pub next: Session,
    /// Audit event type.
    pub event: EventKind,
    /// The participant the event concerns (the one whose turn ended, …).
    pub participant_id: Option<String>,
    /// Set when a timeout was applied.
    pub expired_participant_id: Option<String>,
    /// Time charged to a bank by this change.
    pub charged_ms: i64,
    /// A due timeout was applied instead of the command: the command itself
    /// still has to be applied to `next` (except a switch, which it consumes).
    pub preempted: bool,
}

/// Whether the running clock has reached zero at `now`.
pub fn due_timeout(s: &Session, now: Millis) -> bool {
    s.deadline_ms().is_some_and(|d| d <= now)
}

/// Applies `cmd` to `s` at `now`.
pub fn apply(s: &Session, cmd: &Command, now: Millis) -> Result<Transition, DomainError> {
    let invalid = || DomainError::InvalidTransition {
        verb: cmd.verb(),
        status: s.status,
    };
    match cmd {
        Command::Timeout { expected_version } => {
            if s.version != *expected_version || !due_timeout(s, now) {
                return Err(DomainError::NotDue);
            }
            fire_timeout(s, now)
        }
        Command::Switch(args) => {
            if let Some(who) = &args.turn_of
                && s.status == Status::Running
                && !holds_turn(s, who)
            {
                return Err(DomainError::NotYourTurn(who.clone()));
            }
            if let Some(v) = args.expected_version
                && v != s.version
            {
                return Err(DomainError::Conflict(format!(
                    "expected_version {v} does not match the live version {}",
                    s.version
                )));
            }
            if let Some(want) = &args.current_participant_id {
                let live = s.active_participant().map(|p| p.participant_id.as_str());
                if live != Some(want.as_str()) {
                    return Err(DomainError::Conflict(format!(
                        "current_participant_id {want} is not the active participant ({})",
                        live.unwrap_or("none")
                    )));
                }
            }
            if s.status != Status::Running {
                return Err(invalid());
            }
            if due_timeout(s, now) {
                return preempt(s, now);
            }
            let target = match &args.next_participant_id {
                None => None,
                Some(id) => Some(switch_target(s, id)?),
            };
            Ok(switch(s, target, now))
        }
        _ if due_timeout(s, now) => preempt(s, now),
        Command::Start => {
            if s.status != Status::Pending {
                return Err(invalid());
            }
            let mut n = bump(s, now);
            n.status = Status::Running;
            n.session_started_at = Some(now);
            begin_cycle(&mut n, 0, now);
            Ok(plain(n, EventKind::SessionStarted, 0))
        }
        Command::Pause => {
            if s.status != Status::Running {
                return Err(invalid());
            }
            let mut n = bump(s, now);
            let charged = charge_active(&mut n, s.elapsed(now));
            n.status = Status::Paused;
            n.cycle_started_at = None;
            Ok(plain(n, EventKind::SessionPaused, charged))
        }
        Command::Resume => {
            if s.status != Status::Paused {
                return Err(invalid());
            }
            let mut n = bump(s, now);
            n.status = Status::Running;
            n.cycle_started_at = Some(now);
            Ok(plain(n, EventKind::SessionResumed, 0))
        }
        Command::Complete | Command::Cancel => {
            if s.status.is_terminal() {
                return Err(invalid());
            }
            let mut n = bump(s, now);
            let charged = charge_active(&mut n, s.elapsed(now));
            let (status, event) = if matches!(cmd, Command::Complete) {
                (Status::Completed, EventKind::SessionCompleted)
            } else {
                (Status::Cancelled, EventKind::SessionCancelled)
            };
            let who = s.active_participant().map(|p| p.participant_id.clone());
            finish(&mut n, status, now);
            let mut t = plain(n, event, charged);
            t.participant_id = who;
            Ok(t)
        }
    }
}

/// Whether `participant_id`'s clock is the one running: it is the active
/// participant, or (per_group) a member of the active group.
pub fn holds_turn(s: &Session, participant_id: &str) -> bool {
    let Some(active) = s.active.map(|a| a as usize) else {
        return false;
    };
    let Some(pos) = s.position_of(participant_id) else {
        return false;
    };
    pos == active
        || (s.sync_mode == SyncMode::PerGroup
            && s.participants[pos].group_id.is_some()
            && s.participants[pos].group_id == s.participants[active].group_id)
}

fn preempt(s: &Session, now: Millis) -> Result<Transition, DomainError> {
    let mut t = fire_timeout(s, now)?;
    t.preempted = true;
    Ok(t)
}

fn plain(next: Session, event: EventKind, charged_ms: i64) -> Transition {
    let participant_id = next.active_participant().map(|p| p.participant_id.clone());
    Transition {
        next,
        event,
        participant_id,
        expired_participant_id: None,
        charged_ms,
        preempted: false,
    }
}

/// A copy with the version and `updated_at` of the next commit.
fn bump(s: &Session, now: Millis) -> Session {
    let mut n = s.clone();
    n.version += 1;
    n.updated_at = now.max(s.updated_at);
    n
}

fn switch_target(s: &Session, id: &str) -> Result<usize, DomainError> {
    let pos = s.position_of(id).ok_or_else(|| {
        DomainError::Invalid(FieldError::new(
            "next_participant_id",
            format!("{id} is not a participant of this session"),
        ))
    })?;
    if is_expired_at(s, pos) {
        return Err(DomainError::Invalid(FieldError::new(
            "next_participant_id",
            format!("{id} has expired"),
        )));
    }
    Ok(pos)
}

fn switch(s: &Session, target: Option<usize>, now: Millis) -> Transition {
    let mut n = bump(s, now);
    let from = s.active.unwrap_or(0) as usize;
    let who = s.participants.get(from).map(|p| p.participant_id.clone());
    let charged = charge_active(&mut n, s.elapsed(now));
    end_turn(&mut n, from);
    n.awaiting_switch = false;
    advance(&mut n, from, target, now);
    let mut t = plain(n, EventKind::CycleSwitched, charged);
    t.participant_id = who;
    t
}

/// Applies the timeout action at the deadline (which is <= now).
fn fire_timeout(s: &Session, now: Millis) -> Result<Transition, DomainError> {
    let (Some(deadline), Some(from)) = (s.deadline_ms(), s.active) else {
        return Err(DomainError::NotDue);
    };
    let from = from as usize;
    let mut n = bump(s, now);
    let who = s.participants.get(from).map(|p| p.participant_id.clone());
    let charged = charge_active(&mut n, s.bank_of(from));
    match (s.sync_mode, s.action_on_timeout.kind) {
        (SyncMode::Global | SyncMode::CountUp, _) => finish(&mut n, Status::Expired, deadline),
        (_, TimeoutKind::EndSession) => {
            mark_expired(&mut n, from);
            finish(&mut n, Status::Expired, deadline);
        }
        (SyncMode::PerCycle, TimeoutKind::SkipCycle) => {
            end_turn(&mut n, from);
            advance(&mut n, from, None, deadline);
        }
        (_, TimeoutKind::SkipCycle) => {
            n.participants[from].cycle_count += 1;
            mark_expired(&mut n, from);
            advance(&mut n, from, None, deadline);
        }
        (_, TimeoutKind::AutoAction) if s.auto_advance => {
            end_turn(&mut n, from);
            advance(&mut n, from, None, deadline);
        }
        (_, TimeoutKind::AutoAction) => {
            n.awaiting_switch = true;
        }
    }
    Ok(Transition {
        next: n,
        event: EventKind::ParticipantExpired,
        participant_id: who.clone(),
        expired_participant_id: who,
        charged_ms: charged,
        preempted: false,
    })
}

/// Charges `elapsed` to the active bank (never below zero); returns what was
/// charged.
fn charge_active(n: &mut Session, elapsed: i64) -> i64 {
    let Some(pos) = n.active.map(|a| a as usize) else {
        return 0;
    };
    let e = match n.sync_mode {
        SyncMode::CountUp => elapsed.max(0),
        _ => elapsed.clamp(0, n.bank_of(pos)),
    };
    match n.sync_mode {
        SyncMode::PerParticipant | SyncMode::PerCycle => n.participants[pos].bank_ms -= e,
        SyncMode::PerGroup => {
            if let Some(gi) = group_index_of(n, pos) {
                n.groups[gi].bank_ms -= e;
            }
        }
        SyncMode::Global => n.session_bank_ms -= e,
        SyncMode::CountUp => n.session_bank_ms += e,
    }
    n.participants[pos].time_used_ms += e;
    e
}

/// End-of-turn bookkeeping: increment (capped), cycle count, and expiry of
/// a carried bank that is still empty.
fn end_turn(n: &mut Session, pos: usize) {
    n.participants[pos].cycle_count += 1;
    if let (SyncMode::PerCycle, Some(c)) = (n.sync_mode, n.time_per_cycle_ms) {
        // Nothing carries over: a waiting participant shows a fresh turn.
        n.participants[pos].bank_ms = c;
    }
    if !n.sync_mode.has_carried_banks() {
        return;
    }
    let inc = n.increment_ms;
    let cap = n.max_time_ms;
    let bank = match n.sync_mode {
        SyncMode::PerGroup => match group_index_of(n, pos) {
            Some(gi) => &mut n.groups[gi].bank_ms,
            None => return,
        },
        _ => &mut n.participants[pos].bank_ms,
    };
    *bank += inc;
    if let Some(cap) = cap {
        *bank = (*bank).min(cap);
    }
    if *bank <= 0 {
        mark_expired(n, pos);
    }
}

fn group_index_of(n: &Session, pos: usize) -> Option<usize> {
    let g = n.participants.get(pos)?.group_id.as_deref()?;
    n.group_position(g)
}

fn is_expired_at(n: &Session, pos: usize) -> bool {
    match n.sync_mode {
        SyncMode::PerGroup => group_index_of(n, pos).is_some_and(|gi| n.groups[gi].has_expired),
        _ => n.participants[pos].has_expired,
    }
}

fn mark_expired(n: &mut Session, pos: usize) {
    if n.sync_mode == SyncMode::PerGroup {
        if let Some(gi) = group_index_of(n, pos) {
            n.groups[gi].has_expired = true;
            let g = n.groups[gi].group_id.clone();
            for m in n.group_members(&g) {
                n.participants[m].has_expired = true;
            }
        }
    } else {
        n.participants[pos].has_expired = true;
    }
}

/// Moves the turn from `from` to `target` (or the next in rotation that has
/// not expired), starting its cycle at `at`; ends the session when nobody is
/// left.
fn advance(n: &mut Session, from: usize, target: Option<usize>, at: Millis) {
    let next = match (target, n.sync_mode) {
        (Some(t), _) => Some(t),
        (None, SyncMode::PerGroup) => next_in_groups(n, from),
        (None, _) => {
            let len = n.participants.len();
            (1..=len)
                .map(|k| (from + k) % len)
                .find(|&p| !n.participants[p].has_expired)
        }
    };
    if n.sync_mode == SyncMode::PerGroup
        && let Some(gi) = group_index_of(n, from)
    {
        let g = n.groups[gi].group_id.clone();
        let members = n.group_members(&g);
        if let Some(k) = members.iter().position(|&m| m == from) {
            n.groups[gi].next_member = ((k + 1) % members.len().max(1)) as u32;
        }
    }
    match next {
        Some(p) => begin_cycle(n, p, at),
        None => finish(n, Status::Expired, at),
    }
}

fn next_in_groups(n: &Session, from: usize) -> Option<usize> {
    let len = n.groups.len();
    let cur = group_index_of(n, from).unwrap_or(0);
    let gi = (1..=len)
        .map(|k| (cur + k) % len)
        .find(|&g| !n.groups[g].has_expired)?;
    let members = n.group_members(&n.groups[gi].group_id);
    let k = n.groups[gi].next_member as usize;
    // When the group we leave is the one we land on, its pointer has not been
    // advanced yet: skip past the member who just played.
    let k = if gi == cur {
        members.iter().position(|&m| m == from).map_or(k, |p| p + 1)
    } else {
        k
    };
    members.get(k % members.len().max(1)).copied()
}

fn begin_cycle(n: &mut Session, pos: usize, at: Millis) {
    n.active = Some(pos as u32);
    n.cycle_started_at = Some(at);
    n.awaiting_switch = false;
    if let (SyncMode::PerCycle, Some(c)) = (n.sync_mode, n.time_per_cycle_ms) {
        n.participants[pos].bank_ms = c;
    }
    if n.sync_mode == SyncMode::PerGroup
        && let Some(gi) = group_index_of(n, pos)
    {
        let g = n.groups[gi].group_id.clone();
        let members = n.group_members(&g);
        if let Some(k) = members.iter().position(|&m| m == pos) {
            n.groups[gi].next_member = k as u32;
        }
    }
}

fn finish(n: &mut Session, status: Status, at: Millis) {
    n.status = status;
    n.active = None;
    n.cycle_started_at = None;
    n.awaiting_switch = false;
    n.session_completed_at = Some(at);
}
