//! The durable audit outbox as its consumer sees it.
//!
//! An engine whose commits append audit events to storage that outlives the
//! process (the Redis engine's streams) offers them through [`Outbox`]: the
//! audit consumer reads entries, writes them to PostgreSQL, and only then
//! acknowledges them; entries a dead consumer held are claimed by another.
//! The trait speaks of partitions, entries and consumers, never of keys or
//! commands, so `audit/` drives any such outbox without knowing the store.
//! (The memory engine's queue is not one of these: its events exist only in
//! the process, so its consumer drains it on stop instead of acknowledging;
//! see `audit::writer`.)

use super::AuditEvent;
use async_trait::async_trait;
use std::time::Duration;

/// One entry read from an outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The partition it was read from (`0..Outbox::partitions()`).
    pub partition: usize,
    /// Its id within the partition, for the acknowledgement.
    pub id: String,
    /// The event; `None` when the entry was not a readable audit event (the
    /// outbox has logged it; it is acknowledged so it does not block).
    pub event: Option<AuditEvent>,
}

/// What a claim found in one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The partition.
    pub partition: usize,
    /// Entries taken over from consumers that did not acknowledge them.
    pub entries: Vec<OutboxEntry>,
    /// Pending entries that vanished from the outbox before anyone wrote
    /// them (deleted by hand, or trimmed by an older version): lost events.
    pub trimmed: usize,
}

/// How much waits in the outbox, for the backlog and lag metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxLevels {
    /// Entries not yet acknowledged, per partition.
    pub lengths: Vec<u64>,
    /// Commit time (ms) of the oldest entry still waiting, if any.
    pub oldest_ms: Option<i64>,
}

/// The outbox could not be read, prepared or acknowledged (the store is
/// unreachable or refused); the consumer retries.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct OutboxError(pub String);

/// A durable outbox read by a group of consumers, one per instance (see the
/// module doc). Every call is one round over the partitions; pacing,
/// batching, retries and metrics belong to the caller.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Number of partitions, read independently (the Redis engine: one
    /// stream per bucket).
    fn partitions(&self) -> usize;
    /// A partition's name, for logs.
    fn partition_name(&self, partition: usize) -> String;
    /// Entries per partition past which the consumer raises its high-water
    /// signal (0: none). An outbox never trims entries that were not
    /// acknowledged: a long outage grows it instead of losing events.
    fn high_water(&self) -> u64;
    /// Makes the outbox readable by the consumer group, from its first entry
    /// (idempotent).
    async fn prepare(&self) -> Result<(), OutboxError>;
    /// New entries for `consumer`: at most `counts[i]` from partition `i`.
    /// Fails only when no partition could be read.
    async fn read(&self, consumer: &str, counts: &[u64]) -> Result<Vec<OutboxEntry>, OutboxError>;
    /// Takes over for `consumer` up to `count` entries per partition that
    /// other consumers read but left unacknowledged for `idle`.
    async fn claim(&self, consumer: &str, idle: Duration, count: u64) -> Vec<Claimed>;
    /// Acknowledges and removes entries that are in the audit store. Returns
    /// one error per partition that failed (those entries are redelivered).
    async fn ack(&self, entries: &[OutboxEntry]) -> Vec<OutboxError>;
    /// What waits now; fails when any partition cannot be measured.
    async fn levels(&self) -> Result<OutboxLevels, OutboxError>;
    /// Removes consumers other than `me` idle for `idle` with nothing
    /// pending (stopped instances); returns how many.
    async fn forget_idle(&self, me: &str, idle: Duration) -> usize;
}
