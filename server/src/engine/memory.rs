//! The embedded default engine: sessions in process memory.
//!
//! Commits are atomic per session (one shard lock), broadcast goes straight
//! to the local hub, idle sessions expire, and audit rows go to an optional
//! bounded in-process queue (which, unlike the Redis outbox, cannot survive
//! a crash).

use super::{AuditEvent, Commit, DueTimer, Engine, EngineError, Hub, Update};
use crate::clock::now_ms;
use crate::domain::{Millis, Session};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

const SHARDS: usize = 64;

struct Stored {
    session: Session,
    deadline_ms: Option<Millis>,
    expire_at_ms: Millis,
}

/// Sessions in memory, sharded by id.
pub struct MemoryEngine {
    shards: Vec<Mutex<HashMap<Uuid, Stored>>>,
    hub: Hub,
    audit: Option<mpsc::Sender<AuditEvent>>,
    dropped: Dropped,
}

/// Audit events lost to a full queue: counted (the audit metric when one is
/// given) and reported in at most one warning per [`WARN_EVERY`], so a
/// PostgreSQL outage under load does not become a log flood.
#[derive(Default)]
struct Dropped {
    metric: Option<prometheus::IntCounter>,
    /// When the last warning went out, and the drops since then.
    unreported: Mutex<(Option<Instant>, u64)>,
}

const WARN_EVERY: Duration = Duration::from_secs(10);

impl Dropped {
    fn record(&self) {
        if let Some(m) = &self.metric {
            m.inc();
        }
        let mut u = self.unreported.lock();
        u.1 += 1;
        if u.0.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                dropped = u.1,
                "audit queue full: audit events dropped (synckairos_audit_dropped_total)"
            );
            *u = (Some(Instant::now()), 0);
        }
    }
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(None)
    }
}

impl MemoryEngine {
    /// A new engine; `audit` receives audit rows when an audit store is set.
    pub fn new(audit: Option<mpsc::Sender<AuditEvent>>) -> Self {
        MemoryEngine {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hub: Hub::new(),
            audit,
            dropped: Dropped::default(),
        }
    }

    /// Counts audit events dropped on a full queue in `dropped` (the audit
    /// trail's `synckairos_audit_dropped_total`).
    pub fn with_dropped_metric(mut self, dropped: prometheus::IntCounter) -> Self {
        self.dropped.metric = Some(dropped);
        self
    }

    fn shard(&self, id: &Uuid) -> &Mutex<HashMap<Uuid, Stored>> {
        &self.shards[(id.as_u128() as usize) % SHARDS]
    }

    fn emit(&self, update: Option<Update>, audit: Option<AuditEvent>) {
        if let Some(u) = update {
            self.hub.publish(u);
        }
        if let (Some(tx), Some(ev)) = (&self.audit, audit)
            && tx.try_send(ev).is_err()
        {
            self.dropped.record();
        }
    }
}

#[async_trait]
impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn load(&self, id: Uuid) -> Result<Option<Session>, EngineError> {
        let now = now_ms();
        let mut map = self.shard(&id).lock();
        match map.get(&id) {
            Some(s) if s.expire_at_ms <= now => {
                map.remove(&id);
                Ok(None)
            }
            Some(s) => Ok(Some(s.session.clone())),
            None => Ok(None),
        }
    }

    async fn create(&self, c: Commit<'_>) -> Result<(), EngineError> {
        {
            let now = now_ms();
            let mut map = self.shard(&c.session.session_id).lock();
            if map
                .get(&c.session.session_id)
                .is_some_and(|s| s.expire_at_ms > now)
            {
                return Err(EngineError::Exists);
            }
            map.insert(
                c.session.session_id,
                Stored {
                    session: c.session.clone(),
                    deadline_ms: c.deadline_ms,
                    expire_at_ms: c.expire_at_ms,
                },
            );
            // Publish under the lock so concurrent commits reach the hub in
            // version order.
            self.emit(c.update, c.audit);
        }
        Ok(())
    }

    async fn commit(&self, c: Commit<'_>) -> Result<(), EngineError> {
        let mut map = self.shard(&c.session.session_id).lock();
        let stored = map
            .get_mut(&c.session.session_id)
            .ok_or(EngineError::NotFound)?;
        if stored.session.version + 1 != c.session.version
            || stored.session.incarnation != c.session.incarnation
        {
            return Err(EngineError::VersionMismatch);
        }
        stored.session = c.session.clone();
        stored.deadline_ms = c.deadline_ms;
        stored.expire_at_ms = c.expire_at_ms;
        self.emit(c.update, c.audit);
        Ok(())
    }

    async fn delete(
        &self,
        id: Uuid,
        update: Update,
        audit: Option<AuditEvent>,
    ) -> Result<bool, EngineError> {
        let mut map = self.shard(&id).lock();
        let existed = map.remove(&id).is_some_and(|s| s.expire_at_ms > now_ms());
        if existed {
            self.emit(Some(update), audit);
        }
        Ok(existed)
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, EngineError> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock();
            map.retain(|_, s| s.expire_at_ms > now);
            for (id, s) in map.iter() {
                if let Some(d) = s.deadline_ms
                    && d <= now
                    && out.len() < limit
                {
                    out.push(DueTimer {
                        session_id: *id,
                        version: s.session.version,
                        deadline_ms: d,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn live_sessions(&self) -> Option<u64> {
        Some(self.shards.iter().map(|s| s.lock().len() as u64).sum())
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn wants_frames(&self, id: Uuid) -> bool {
        self.hub.has_subscribers(id)
    }

    fn audit_enabled(&self) -> bool {
        self.audit.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CreateSpec, EventKind};

    fn session() -> Session {
        CreateSpec::from_json(&serde_json::json!({
            "session_id": Uuid::new_v4(),
            "sync_mode": "per_participant",
            "participants": [{"participant_id": "a", "participant_index": 0, "total_time_ms": 1000}],
            "total_time_ms": 1000
        }))
        .unwrap()
        .into_session(now_ms())
    }

    #[tokio::test]
    async fn a_full_audit_queue_counts_every_event_it_drops() {
        let (tx, mut rx) = mpsc::channel(1);
        let dropped = prometheus::IntCounter::new("dropped", "test").unwrap();
        let engine = MemoryEngine::new(Some(tx)).with_dropped_metric(dropped.clone());
        for _ in 0..3 {
            let s = session();
            let audit = AuditEvent {
                session_id: s.session_id,
                version: 1,
                event_type: EventKind::SessionCreated,
                participant_id: None,
                time_remaining_ms: None,
                time_elapsed_ms: 0,
                at_ms: now_ms(),
                state: serde_json::Value::Null,
                actor: crate::domain::Actor::anonymous(),
            };
            let c = Commit {
                session: &s,
                deadline_ms: None,
                expire_at_ms: now_ms() + 60_000,
                update: None,
                audit: Some(audit),
            };
            engine.create(c).await.unwrap();
        }
        // One fits the queue, two are dropped and counted; the commits
        // themselves never wait for the audit trail.
        assert_eq!(dropped.get(), 2);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }
}
