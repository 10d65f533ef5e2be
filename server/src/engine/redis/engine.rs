//! [`RedisEngine`]: the [`Engine`] contract on Redis — each change one
//! atomic script call (create, batched commit, delete), reads through the
//! session cache, and the sweep over the 256 deadline indexes.

use super::outbox::RedisOutbox;
use super::pubsub::PubSub;
use super::{batch, cache, codec, keys};
use crate::clock::now_ms;
use crate::domain::{Millis, Session};
use crate::engine::outbox::Outbox;
use crate::engine::{AuditEvent, Commit, DueTimer, Engine, EngineError, Hub, Update};
use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::*;
use fred::types::scripts::Script;
use prometheus::IntCounterVec;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// Sessions in Redis; see the module doc. Made by `connect`, which fills
/// the parts.
pub struct RedisEngine {
    pub(super) clients: Vec<Client>,
    pub(super) next: AtomicUsize,
    pub(super) hub: Hub,
    pub(super) pubsub: Arc<PubSub>,
    pub(super) create: Script,
    pub(super) commits: batch::Batcher,
    pub(super) delete: Script,
    pub(super) audit: bool,
    /// Per-stream outbox length past which the consumer raises its
    /// high-water signal (nothing is trimmed).
    pub(super) outbox_high_water: u64,
    /// The audit consumer's own connection (None without an audit trail).
    pub(super) outbox_client: Option<Client>,
    pub(super) errors: IntCounterVec,
    pub(super) cache: cache::SessionCache,
}

fn unavailable(e: Error) -> EngineError {
    EngineError::Unavailable(e.to_string())
}

/// The session stored under `id`, if any (also the pub/sub resync's loader).
pub(super) async fn read_state(client: &Client, id: Uuid) -> Result<Option<Session>, EngineError> {
    let raw: Option<Bytes> = client
        .get(keys::state_key(&id))
        .await
        .map_err(unavailable)?;
    raw.map(|raw| codec::decode_session(id, &raw)).transpose()
}

fn ttl_ms(expire_at_ms: Millis) -> String {
    (expire_at_ms - now_ms()).max(1).to_string()
}

fn encode_update(update: Option<&Update>) -> Value {
    match update {
        Some(u) => Value::Bytes(codec::encode_update(u)),
        None => Value::from(""),
    }
}

impl RedisEngine {
    /// A command client (round-robin over the connections).
    pub fn client(&self) -> &Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.clients[i % self.clients.len()]
    }

    /// Forces a pub/sub resubscribe + resync of every local subscriber.
    pub fn request_resync(&self) {
        self.pubsub.request_resync("requested");
    }

    /// The engine's audit outbox streams, for the audit consumer (read
    /// through a connection of its own when the engine was built with
    /// `audit`, so consumer rounds never delay commits).
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        let client = self
            .outbox_client
            .clone()
            .unwrap_or_else(|| self.client().clone());
        Arc::new(RedisOutbox::new(client, self.outbox_high_water))
    }

    fn stored(session: &Session) -> Result<Value, EngineError> {
        Ok(Value::Bytes(codec::encode_session(session)?))
    }

    fn commit_keys(id: &Uuid) -> [String; 3] {
        let b = keys::bucket(id);
        [
            keys::state_key(id),
            keys::deadlines_key(b),
            keys::outbox_key(b),
        ]
    }

    async fn run<R: FromValue>(
        &self,
        op: &'static str,
        script: &Script,
        id: &Uuid,
        args: Vec<Value>,
    ) -> Result<R, EngineError> {
        let r = script
            .evalsha_with_reload(self.client(), Vec::from(Self::commit_keys(id)), args)
            .await
            .map_err(unavailable);
        self.counted(op, r)
    }

    /// Caches the stored value a refused commit returned; an unreadable one
    /// is dropped so the retry reads (and reports) it properly.
    fn keep_reply(&self, id: Uuid, raw: &[u8]) {
        match codec::decode_session(id, raw) {
            Ok(s) => self.cache.put(Arc::new(s)),
            Err(_) => self.cache.remove(&id),
        }
    }

    /// Counts store failures by operation (a metric), passing `r` through.
    fn counted<T>(&self, op: &'static str, r: Result<T, EngineError>) -> Result<T, EngineError> {
        if matches!(r, Err(EngineError::Unavailable(_))) {
            self.errors.with_label_values(&[op]).inc();
        }
        r
    }

    /// Turns one bucket's due index entries into timers, reaping entries
    /// long past due whose session is gone.
    async fn collect_due(
        &self,
        bucket: u32,
        entries: Vec<(String, f64)>,
        now: Millis,
        out: &mut Vec<DueTimer>,
    ) {
        let mut stale = Vec::new();
        for (m, score) in entries {
            let Some((session_id, version)) = keys::parse_member(&m) else {
                continue;
            };
            let deadline_ms = score as Millis;
            if deadline_ms < now - STALE_AFTER_MS {
                stale.push((session_id, version, m));
            }
            out.push(DueTimer {
                session_id,
                version,
                deadline_ms,
            });
        }
        if !stale.is_empty() {
            self.reap(bucket, stale).await;
        }
    }

    /// Removes deadline entries whose session is gone or moved on (its state
    /// expired or was replaced while an entry survived); only entries well
    /// past due are checked, so live timers are never touched.
    async fn reap(&self, bucket: u32, stale: Vec<(Uuid, u64, String)>) {
        for (id, version, m) in stale {
            let head: Result<Option<Bytes>, _> = self
                .client()
                .getrange(keys::state_key(&id), 0, keys::HEAD_BYTES - 1)
                .await;
            let current = match head {
                Ok(h) => h.as_deref().and_then(keys::decode_state).map(|s| s.version),
                Err(_) => return,
            };
            if current != Some(version) {
                let _: Result<i64, _> = self.client().zrem(keys::deadlines_key(bucket), m).await;
            }
        }
    }
}

/// Entries this far past due get checked for staleness by `due`.
const STALE_AFTER_MS: Millis = 30_000;

#[async_trait]
impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn load(&self, id: Uuid) -> Result<Option<Session>, EngineError> {
        self.pubsub.wait_ready(id).await;
        let r = read_state(self.client(), id).await;
        match &r {
            Ok(Some(s)) => {
                self.pubsub.note_exists(id);
                self.cache.put(Arc::new(s.clone()));
            }
            Ok(None) => self.cache.remove(&id),
            Err(_) => {}
        }
        self.counted("load", r)
    }

    fn cached(&self, id: Uuid) -> Option<Arc<Session>> {
        self.cache.get(&id)
    }

    async fn create(&self, c: Commit<'_>) -> Result<(), EngineError> {
        let id = c.session.session_id;
        let args = vec![
            Self::stored(c.session)?,
            Value::from(ttl_ms(c.expire_at_ms)),
            Value::from(keys::member(&id, c.session.version)),
            Value::from(c.deadline_ms.map(|d| d.to_string()).unwrap_or_default()),
            Value::from(codec::encode_audit(c.audit.as_ref())?),
            Value::from(keys::channel(&id)),
            encode_update(c.update.as_ref()),
        ];
        match self.run::<i64>("create", &self.create, &id, args).await? {
            1 => {
                self.cache.put(Arc::new(c.session.clone()));
                Ok(())
            }
            0 => Err(EngineError::Exists),
            n => Err(EngineError::Unavailable(format!(
                "create script returned {n}"
            ))),
        }
    }

    async fn commit(&self, c: Commit<'_>) -> Result<(), EngineError> {
        let id = c.session.session_id;
        let Some(expected) = c.session.version.checked_sub(1) else {
            return Err(EngineError::VersionMismatch);
        };
        let args = vec![
            Value::from(keys::cas_token(expected, c.session.incarnation)),
            Self::stored(c.session)?,
            Value::from(ttl_ms(c.expire_at_ms)),
            Value::from(keys::member(&id, expected)),
            Value::from(keys::member(&id, c.session.version)),
            Value::from(c.deadline_ms.map(|d| d.to_string()).unwrap_or_default()),
            Value::from(codec::encode_audit(c.audit.as_ref())?),
            Value::from(keys::channel(&id)),
            encode_update(c.update.as_ref()),
        ];
        let reply = self
            .commits
            .commit(keys::bucket(&id), Self::commit_keys(&id), args)
            .await
            .map_err(unavailable);
        match self.counted("commit", reply)? {
            Value::Integer(1) => {
                self.cache.put(Arc::new(c.session.clone()));
                Ok(())
            }
            Value::Integer(-1) => {
                self.cache.remove(&id);
                Err(EngineError::NotFound)
            }
            // Another change got there first: the reply is the stored value,
            // kept so the retry starts from it without a read.
            other => match other.as_bytes() {
                Some(raw) => {
                    self.keep_reply(id, raw);
                    Err(EngineError::VersionMismatch)
                }
                None => Err(EngineError::Unavailable(format!(
                    "commit script returned {other:?}"
                ))),
            },
        }
    }

    async fn delete(
        &self,
        id: Uuid,
        update: Update,
        audit: Option<AuditEvent>,
    ) -> Result<bool, EngineError> {
        let args = vec![
            Value::from(id.to_string()),
            Value::from(codec::encode_audit(audit.as_ref())?),
            Value::from(keys::channel(&id)),
            encode_update(Some(&update)),
        ];
        let r = self.run::<i64>("delete", &self.delete, &id, args).await;
        self.cache.remove(&id);
        Ok(r? == 1)
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, EngineError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        let scan = |b: u32| async move {
            let r: Result<Vec<(String, f64)>, Error> = self
                .client()
                .zrangebyscore(keys::deadlines_key(b), 0i64, now, true, Some((0, lim)))
                .await;
            (b, r)
        };
        let mut out = Vec::new();
        let mut retry = Vec::new();
        for (b, r) in futures::future::join_all((0..keys::BUCKETS).map(scan)).await {
            match r {
                Ok(entries) => self.collect_due(b, entries, now, &mut out).await,
                Err(_) => retry.push(b),
            }
        }
        // A bucket that fails must not stop the sweep of the others (one
        // slot down in a cluster). Its error may also have made the client
        // reset the connection under concurrent scans, so the failed ones
        // are retried one at a time; what still fails waits for next sweep.
        let (mut failed, mut first_error) = (0u32, None);
        for b in retry {
            match scan(b).await {
                (_, Ok(entries)) => self.collect_due(b, entries, now, &mut out).await,
                (_, Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            if failed == keys::BUCKETS {
                return self.counted("due", Err(unavailable(e)));
            }
            tracing::warn!(buckets = failed, error = %e, "sweep skipped unreachable buckets");
        }
        out.sort_by_key(|d| d.deadline_ms);
        out.truncate(limit);
        Ok(out)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        let r: Result<String, _> = self.client().ping(None).await.map_err(unavailable);
        self.counted("ping", r).map(|_| ())
    }

    async fn live_sessions(&self) -> Option<u64> {
        // Counting keys by pattern is not cheap on Redis; not reported.
        None
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn wants_frames(&self, _id: Uuid) -> bool {
        // Other instances may have subscribers: always publish.
        true
    }

    fn audit_enabled(&self) -> bool {
        self.audit
    }
}
