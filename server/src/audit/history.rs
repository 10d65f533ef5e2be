//! Reading the audit trail back: the typed reader the API serves
//! `GET /v1/sessions/{id}/events` and the audit part of `/ready` from. It
//! answers in audit terms ([`HistoryPage`], [`AuditError`]); turning those
//! into HTTP is the API's business (`api/error.rs`), so audit knows no HTTP.

use super::store::{AuditStore, HistoryPage};
use super::{AuditError, AuditHandle};
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Read access to the audit trail. A trait so the API holds "an audit
/// trail, if configured" without knowing how it is stored, and tests can
/// stand one in.
#[async_trait]
pub trait History: Send + Sync {
    /// One page of a session's events in version order, `limit` at most,
    /// after `cursor` (a `next_cursor` of an earlier page).
    /// [`AuditError::BadCursor`] when the cursor is not one of ours.
    async fn page(
        &self,
        session_id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, AuditError>;
    /// The consumer's progress, reported by `/ready` (never fatal there).
    async fn status(&self) -> AuditStatus;
}

/// How far the audit trail is behind the committed changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditStatus {
    /// Committed events not yet written to PostgreSQL.
    pub backlog: u64,
    /// Age of the oldest unwritten event, in milliseconds.
    pub lag_ms: u64,
    /// Whether the last write or probe reached PostgreSQL.
    pub database_ok: bool,
    /// Whether the backlog is above its bound or an outbox partition above
    /// its high-water mark: PostgreSQL is not keeping up. A detail, not a
    /// reason to be unready (clocks keep running).
    pub high_water: bool,
    /// Events lost before they were written since start (memory queue full).
    pub dropped: u64,
    /// Events moved to the dead-letter table since start.
    pub dead_letters: u64,
}

/// The PostgreSQL-backed [`History`]: pages from the store, progress from
/// the running consumer.
pub struct AuditHistory {
    store: AuditStore,
    handle: Arc<AuditHandle>,
}

impl AuditHistory {
    /// A reader over `store` reporting `handle`'s progress.
    pub fn new(store: AuditStore, handle: Arc<AuditHandle>) -> Self {
        AuditHistory { store, handle }
    }
}

#[async_trait]
impl History for AuditHistory {
    async fn page(
        &self,
        session_id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, AuditError> {
        self.store.history(session_id, cursor, limit).await
    }

    async fn status(&self) -> AuditStatus {
        AuditStatus {
            backlog: self.handle.backlog(),
            lag_ms: u64::try_from(self.handle.lag().as_millis()).unwrap_or(u64::MAX),
            database_ok: self.handle.database_ok(),
            high_water: self.handle.high_water(),
            dropped: self.handle.metrics.dropped.get(),
            dead_letters: self.handle.metrics.dead_letters.get(),
        }
    }
}
