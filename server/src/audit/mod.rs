//! The audit trail: every committed change of every session, written to
//! PostgreSQL off the hot path, exactly once (DESIGN.md principle 5).
//!
//! Where things live:
//! - [`migrate`] / [`MIGRATOR`]: the embedded `migrations/` (run by
//!   `synckairos migrate`; idempotent and safe to run concurrently because
//!   sqlx holds a PostgreSQL advisory lock while it migrates).
//! - [`store`]: the PostgreSQL side — batched, idempotent inserts (UNNEST
//!   arrays, `ON CONFLICT DO NOTHING`) plus the `sync_sessions` upsert, and
//!   the cursor-paginated history read by `GET /v1/sessions/{id}/events`.
//! - [`writer`]: the consumer loop shared by both engines — collect a batch
//!   (size / linger), write it with retries and backoff while PostgreSQL is
//!   down, acknowledge only after commit — and the memory engine's bounded
//!   in-process queue.
//! - [`outbox`]: the consumer of a durable outbox (`engine::outbox::Outbox`,
//!   which the Redis engine implements): read rounds, acknowledge after
//!   commit, claim what dead consumers left, measure backlog and lag. The
//!   commands and key layout stay in the engine.
//! - [`metrics`]: backlog, lag, batch latency, rows written, failures.
//! - [`start`]: the two calls `serve` makes ([`start_for_memory`],
//!   [`start_for_outbox`]).
//! - [`history`]: the typed reader ([`History`], [`AuditHistory`]) behind
//!   the events endpoint and `/ready`. It answers `HistoryPage` or
//!   [`AuditError`]; the API maps those to HTTP, audit knows no HTTP.

pub mod history;
pub mod metrics;
pub mod outbox;
pub mod start;
pub mod store;
pub mod writer;

pub use history::{AuditHistory, AuditStatus, History};
pub use metrics::AuditMetrics;
pub use start::{Audit, start_for_memory, start_for_outbox};
pub use store::{AuditStore, HistoryEvent, HistoryPage};
pub use writer::{AuditHandle, start_memory_writer};

/// The `sqlx` this module is built on, re-exported so tests and tools talk to
/// the audit database with exactly the same driver version.
pub use sqlx;

use std::time::Duration;

/// The migrations in `migrations/`, embedded at build time (see build.rs) so
/// the binary alone can bring a database up to date.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Failures of the audit trail, typed so the API maps them once
/// (everything here is a 503 `AUDIT_UNAVAILABLE` or a startup error).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// PostgreSQL could not be reached or a statement failed.
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("audit migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A history cursor that this server did not produce.
    #[error("invalid cursor")]
    BadCursor,
    /// The outbox could not be read or acknowledged, or the audit metrics
    /// could not be registered.
    #[error("audit outbox: {0}")]
    Outbox(String),
}

/// Tunables of the audit consumers. Defaults suit one instance writing
/// ~10k events/s into a local PostgreSQL.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `postgres://…` of the audit database.
    pub database_url: String,
    /// Most events written in one transaction.
    pub batch_size: usize,
    /// How long a partial batch waits for more events before it is written.
    pub linger: Duration,
    /// Capacity of the memory engine's in-process queue (events).
    pub queue_capacity: usize,
    /// Above this many unwritten events the consumer logs an error and sets
    /// `synckairos_audit_backlog_over_bound` to 1.
    pub backlog_bound: u64,
    /// First retry delay after a failed write; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest retry delay while PostgreSQL is down.
    pub retry_max: Duration,
    /// Batches written concurrently (each on its own connection).
    pub writers: usize,
    /// Connections in the writer's pool (at least `writers`).
    pub max_connections: u32,
    /// How long to wait for a connection before a write or read fails.
    pub connect_timeout: Duration,
}

impl AuditConfig {
    /// Defaults for everything but the database URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        AuditConfig {
            database_url: database_url.into(),
            batch_size: 4000,
            linger: Duration::from_millis(50),
            queue_capacity: 100_000,
            backlog_bound: 50_000,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            writers: 2,
            max_connections: 4,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Applies every pending migration, then returns. Safe to run twice and from
/// several processes at once: sqlx takes `pg_advisory_lock` on its
/// connection before it looks at `_sqlx_migrations`. The one-connection pool
/// is closed afterwards, so a failed run never leaves the lock held.
pub async fn migrate(database_url: &str) -> Result<(), AuditError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(database_url)
        .await?;
    let result = MIGRATOR.run(&pool).await;
    // Closing ends the session, which releases the advisory lock even when
    // the run failed half-way.
    pool.close().await;
    result.map_err(AuditError::from)
}
