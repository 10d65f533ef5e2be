//! Where session state lives and how committed changes travel.
//!
//! The [`Engine`] trait is the whole contract between the service and a
//! store: load, create-if-absent, compare-version-and-commit (state, TTL,
//! deadline index, audit outbox, broadcast — all or nothing), delete, and a
//! sweep of due deadlines. Implementations: [`memory::MemoryEngine`] (the
//! embedded default) and the Redis engine. Local WebSocket fan-out goes
//! through the [`hub::Hub`] every engine owns. An engine whose audit outbox
//! outlives the process offers it to the audit consumer as an
//! [`outbox::Outbox`].

pub mod hub;
pub mod memory;
pub mod outbox;
pub mod redis;

use crate::domain::{Actor, EventKind, Millis, Session};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

pub use hub::{Hub, Subscription, SubscriptionListener};

/// What an update means to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateKind {
    /// A committed change (frames: STATE_UPDATE, maybe TIME_EXPIRED).
    State,
    /// A fresh full state after a broadcast gap (frames: STATE_SYNC).
    Resync,
    /// The session was deleted (frames: SESSION_DELETED); final.
    Deleted,
}

/// A change as subscribers receive it: pre-rendered WebSocket frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The session.
    pub session_id: Uuid,
    /// The version the frames describe.
    pub version: u64,
    /// Meaning.
    pub kind: UpdateKind,
    /// WebSocket text frames, in send order.
    pub frames: Vec<Bytes>,
}

/// One row of the audit trail, appended to the outbox atomically with the
/// commit (consumed by the audit writer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The session.
    pub session_id: Uuid,
    /// The version this change produced (event id = session id + version).
    pub version: u64,
    /// Seed event type.
    pub event_type: EventKind,
    /// The participant concerned.
    pub participant_id: Option<String>,
    /// The concerned participant's remaining bank after the change.
    pub time_remaining_ms: Option<i64>,
    /// Time charged by this change.
    pub time_elapsed_ms: i64,
    /// Commit time.
    pub at_ms: Millis,
    /// The rendered state after the change (null for deletions).
    pub state: serde_json::Value,
    /// Who made the change (entries written before access control existed
    /// read as anonymous).
    #[serde(default)]
    pub actor: Actor,
}

/// Everything one atomic commit writes.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    /// The new state; `version` is one more than the stored one (or 1 on create).
    pub session: &'a Session,
    /// The deadline index entry (None removes it).
    pub deadline_ms: Option<Millis>,
    /// The state may be dropped after this instant (idle expiry).
    pub expire_at_ms: Millis,
    /// Frames for subscribers, when anyone may listen.
    pub update: Option<Update>,
    /// The audit row, when an audit trail is configured.
    pub audit: Option<AuditEvent>,
}

/// A deadline found by a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueTimer {
    /// The session.
    pub session_id: Uuid,
    /// The version whose deadline it is.
    pub version: u64,
    /// The deadline.
    pub deadline_ms: Millis,
}

/// Failures of a store, typed so the API can map them once.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Create found a live session with that id.
    #[error("session exists")]
    Exists,
    /// The stored version is not the one the commit was computed from.
    #[error("version mismatch")]
    VersionMismatch,
    /// Commit on a session that is gone.
    #[error("session not found")]
    NotFound,
    /// The store cannot be reached or timed out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read.
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}

/// A fresh [`Session::incarnation`] for a create: random, never 0.
pub fn new_incarnation() -> u32 {
    (Uuid::new_v4().as_u128() as u32).max(1)
}

/// The contract every state store implements (see the module doc).
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Short name for logs and `/ready`.
    fn name(&self) -> &'static str;
    /// The session, if it is live.
    async fn load(&self, id: Uuid) -> Result<Option<Session>, EngineError>;
    /// A copy of the session this instance already holds, without asking
    /// the store; it may be stale. A change computed from it commits only if
    /// the store still holds exactly that version, so a stale copy costs a
    /// retry, never a wrong state; it saves the read round trip when this
    /// instance made the last change. Engines whose `load` is local return
    /// `None`.
    fn cached(&self, _id: Uuid) -> Option<Arc<Session>> {
        None
    }
    /// Stores a new session unless a live one has its id (with the
    /// incarnation the caller gave it: the service draws a fresh one).
    async fn create(&self, commit: Commit<'_>) -> Result<(), EngineError>;
    /// Stores `commit.session` if the stored version is exactly one less
    /// and of the same incarnation.
    async fn commit(&self, commit: Commit<'_>) -> Result<(), EngineError>;
    /// Removes a session and broadcasts `update`; false when it was absent.
    async fn delete(
        &self,
        id: Uuid,
        update: Update,
        audit: Option<AuditEvent>,
    ) -> Result<bool, EngineError>;
    /// Deadlines at or before `now`, at most `limit`.
    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, EngineError>;
    /// Whether the store answers.
    async fn ping(&self) -> Result<(), EngineError>;
    /// Live sessions, when cheaply known.
    async fn live_sessions(&self) -> Option<u64>;
    /// Local subscribers for this instance.
    fn hub(&self) -> &Hub;
    /// Whether commits for `id` need rendered frames (someone may listen).
    fn wants_frames(&self, id: Uuid) -> bool;
    /// Whether commits carry audit rows.
    fn audit_enabled(&self) -> bool;
}
