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
        }
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
            tracing::warn!("audit queue full: audit event dropped");
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
