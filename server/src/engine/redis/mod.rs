//! The Redis engine: Redis (standalone or Redis Cluster, ≥ 7) is the single
//! source of truth; instances hold nothing another instance cannot redo.
//!
//! Where things live:
//! - `config`: [`RedisConfig`] (URL or cluster seeds, timeouts, pool and
//!   cache sizes) and the fred client configuration built from it.
//! - `connect`: [`connect`] — open the clients, refuse servers below
//!   Redis 7 or a `redis://` URL aimed at a cluster, load the scripts,
//!   register the metrics, start pub/sub, the watchdogs and the batcher.
//! - `engine`: [`RedisEngine`], the `Engine` contract as script calls.
//! - [`keys`]: the key layout. Every key one commit touches shares the
//!   session's *bucket* hash tag, so each script runs on one cluster slot.
//! - `codec`: the values inside those keys — stored session, audit
//!   payload, pub/sub update.
//! - `create.lua`, `commit.lua`, `delete.lua`: the atomic steps, loaded
//!   once and called by SHA (reloaded on `NOSCRIPT`, e.g. after a restart or
//!   failover). Commit compares the version, writes state with its TTL,
//!   moves the deadline index entry, appends to the outbox, and SPUBLISHes
//!   the update — all or nothing.
//! - `batch`: concurrent commits share one call of `commit.lua` (one round
//!   trip, one write per side), so throughput grows with load.
//! - [`cache`]: the last seen state of sessions, to skip the read before a
//!   change.
//! - [`pubsub`]: per-session sharded pub/sub while local WebSocket clients
//!   listen, with resubscribe + resync after reconnects and failovers.
//! - `watchdog`: the two watchdogs that feed that resync where fred stays
//!   silent: a cluster slot-owner check (`CLUSTER SLOTS`, a manual failover
//!   moves slots without any reconnect) and a subscriber heartbeat (a
//!   connection that died without a reset).
//! - [`outbox`]: the audit outbox streams as an `engine::outbox::Outbox`,
//!   read by the audit consumer through a consumer group.
//!
//! Every command carries the configured command timeout, so an unreachable
//! Redis turns into [`EngineError::Unavailable`](crate::engine::EngineError::Unavailable)
//! quickly instead of a hang. The sweep (`due`) scans the 256 deadline
//! indexes concurrently and skips buckets whose slot fails, so one bad slot
//! does not stop the others.

mod batch;
pub mod cache;
mod codec;
mod config;
mod connect;
mod engine;
pub mod keys;
mod op_queue;
pub mod outbox;
pub mod pubsub;
mod watchdog;

pub use config::RedisConfig;
pub use connect::{check_not_cluster, check_version, connect};
pub use engine::RedisEngine;
pub use outbox::RedisOutbox;
pub use watchdog::slot_owners;

// What `tests.rs` takes from `use super::*`.
#[cfg(test)]
use {
    crate::clock::now_ms,
    crate::domain::{Millis, Session},
    crate::engine::{AuditEvent, Commit, DueTimer, Engine, EngineError, Update},
    crate::metrics::Metrics,
    bytes::Bytes,
    fred::prelude::*,
    std::time::Duration,
    uuid::Uuid,
};

#[cfg(test)]
mod tests;
