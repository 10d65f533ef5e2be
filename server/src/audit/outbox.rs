//! The Redis engine's outbox streams, read through a consumer group.
//!
//! Every commit script XADDs its audit event (field `e`, JSON) to its
//! bucket's stream `sk:{b<k>}:o`. Each instance runs one consumer of the
//! group [`OutboxConfig::group`] over all streams:
//!
//! 1. `XREADGROUP … >` on every stream (pipelined, one key per command so it
//!    works unchanged on Redis Cluster, where the buckets live in different
//!    slots), polling faster while there is work;
//! 2. the batch is written in one PostgreSQL transaction, retried with
//!    backoff while PostgreSQL is down (entries stay pending meanwhile);
//! 3. only after COMMIT: `XACK` and `XDEL` (so a stream holds exactly the
//!    entries not yet written, and its length is the backlog);
//! 4. every `claim_interval`, `XAUTOCLAIM` takes over entries that another
//!    consumer read but did not acknowledge within `claim_idle` (an instance
//!    that died or hung); redelivery is harmless because the rows are
//!    keyed by (session, version).
//!
//! A stream is capped by the engine's `XADD MAXLEN ~`: if PostgreSQL stays
//! down long enough for a stream to reach its cap, Redis trims the oldest
//! entries. The consumer warns loudly well before (at 80 % of the cap) and
//! counts entries found trimmed while pending in `synckairos_audit_dropped_total`.

use super::store::AuditStore;
use super::writer::{AuditHandle, Progress, Writer};
use super::{AuditConfig, AuditError, AuditMetrics};
use crate::engine::AuditEvent;
use fred::prelude::*;
use futures::StreamExt;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Tunables of the outbox consumer.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Consumer group shared by every instance.
    pub group: String,
    /// This consumer's name; unique per process (see [`default_consumer_name`]).
    pub consumer: String,
    /// The outbox streams (the engine's `keys::outbox_keys()`).
    pub streams: Vec<String>,
    /// Pending entries idle this long are taken over from their consumer.
    /// Must exceed a live consumer's longest write attempt plus ack.
    pub claim_idle: Duration,
    /// How often pending entries of other consumers are checked.
    pub claim_interval: Duration,
    /// Longest pause between polls while the streams are empty.
    pub poll_max: Duration,
    /// How often stream lengths (backlog) and the oldest entry (lag) are measured.
    pub measure_interval: Duration,
    /// The engine's `XADD MAXLEN ~` per stream, for the near-cap warning.
    pub stream_max_len: u64,
    /// Redis commands in flight at once during a polling round.
    pub concurrency: usize,
    /// Other consumers idle this long with nothing pending are removed from
    /// the group (names of stopped instances would otherwise accumulate).
    pub forget_idle: Duration,
    /// How often idle consumers are looked for.
    pub forget_interval: Duration,
}

/// `HOSTNAME` (the pod name on Kubernetes) plus the pid and a random
/// suffix: unique per process, and readable in `XINFO CONSUMERS`.
pub fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "synckairos".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

impl OutboxConfig {
    /// Defaults for the given streams.
    pub fn new(streams: Vec<String>) -> Self {
        OutboxConfig {
            group: "synckairos-audit".into(),
            consumer: default_consumer_name(),
            streams,
            claim_idle: Duration::from_secs(60),
            claim_interval: Duration::from_secs(5),
            poll_max: Duration::from_millis(200),
            measure_interval: Duration::from_secs(1),
            stream_max_len: 1000,
            concurrency: 32,
            forget_idle: Duration::from_secs(3600),
            forget_interval: Duration::from_secs(600),
        }
    }
}

/// One stream entry as read: its stream, id, and the event (None when the
/// payload was missing or not an audit event).
struct Entry {
    stream: usize,
    id: String,
    event: Option<AuditEvent>,
}

struct Consumer {
    client: Client,
    cfg: OutboxConfig,
    writer: Writer,
    warned_redis: AtomicBool,
    last_cap_warning: Mutex<Option<Instant>>,
}

/// Starts the outbox consumer on `client` (the Redis engine's client, or
/// another one to the same Redis / Redis Cluster). Never fails because Redis
/// or PostgreSQL is down: both are retried in the background.
pub fn start_outbox_consumer(
    client: Client,
    cfg: AuditConfig,
    outbox: OutboxConfig,
    metrics: AuditMetrics,
) -> Result<AuditHandle, AuditError> {
    let store = AuditStore::connect_lazy(&cfg)?;
    Ok(start_outbox_consumer_with(
        store, client, cfg, outbox, metrics,
    ))
}

/// [`start_outbox_consumer`] over an existing store (tests, shared pools).
pub fn start_outbox_consumer_with(
    store: AuditStore,
    client: Client,
    cfg: AuditConfig,
    outbox: OutboxConfig,
    metrics: AuditMetrics,
) -> AuditHandle {
    let progress = Arc::new(Progress::new(cfg.writers));
    let cancel = CancellationToken::new();
    let consumer = Arc::new(Consumer {
        client,
        cfg: outbox,
        writer: Writer {
            store,
            cfg,
            metrics,
            progress: Arc::clone(&progress),
            queue: None,
            last_loud: Arc::new(Mutex::new(None)),
            slot: 0,
        },
        warned_redis: AtomicBool::new(false),
        last_cap_warning: Mutex::new(None),
    });
    let measure = tokio::spawn(Arc::clone(&consumer).measure_loop(cancel.clone()));
    let run_cancel = cancel.clone();
    let task = tokio::spawn(async move {
        consumer.run(run_cancel).await;
        measure.abort();
    });
    AuditHandle {
        progress,
        queue: None,
        cancel,
        task: Mutex::new(Some(task)),
    }
}

/// Sleeps unless cancelled first; false when cancelled.
async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_string()
}

/// `[id, [field, value, …]]` (or a map of fields) → (id, value of `e`).
fn parse_entry(v: &Value) -> Option<(String, Option<String>)> {
    let Value::Array(parts) = v else { return None };
    let id = text(parts.first()?)?;
    let payload = match parts.get(1) {
        Some(Value::Array(kv)) => kv
            .chunks(2)
            .find(|c| c.len() == 2 && text(&c[0]).as_deref() == Some("e"))
            .and_then(|c| text(&c[1])),
        Some(Value::Map(m)) => m
            .clone()
            .inner()
            .into_iter()
            .find(|(k, _)| k.as_str() == Some("e"))
            .and_then(|(_, v)| text(&v)),
        _ => None,
    };
    Some((id, payload))
}

fn entries_in(v: &Value) -> Vec<(String, Option<String>)> {
    match v {
        Value::Array(items) => items.iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    }
}

/// An XREADGROUP reply (RESP2 `[[key, entries]]` or RESP3 `{key: entries}`).
fn read_reply(v: Value) -> Vec<(String, Option<String>)> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .flat_map(|s| match s {
                Value::Array(p) if p.len() == 2 => entries_in(&p[1]),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(m) => m.inner().values().flat_map(entries_in).collect(),
        _ => Vec::new(),
    }
}

/// Field/value pairs of a RESP2 flat array or a RESP3 map.
fn fields(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(kv) => kv
            .chunks(2)
            .filter(|c| c.len() == 2)
            .filter_map(|c| Some((text(&c[0])?, c[1].clone())))
            .collect(),
        Value::Map(m) => m
            .clone()
            .inner()
            .into_iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `XINFO CONSUMERS` → (name, pending, idle ms).
fn consumers_of(v: &Value) -> Vec<(String, i64, i64)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let f = fields(item);
            let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let int = |k: &str| match get(k) {
                Some(Value::Integer(i)) => Some(i),
                Some(other) => text(&other).and_then(|t| t.parse().ok()),
                None => None,
            };
            Some((text(&get("name")?)?, int("pending")?, int("idle")?))
        })
        .collect()
}

/// The millisecond part of a stream id (`<ms>-<seq>`).
fn id_ms(id: &str) -> Option<i64> {
    id.split('-').next()?.parse().ok()
}

impl Consumer {
    /// Runs `f(index, client, stream key)` for the given streams, `concurrency` at
    /// a time (fred pipelines them); the futures own their data so the
    /// consumer task stays `Send + 'static`.
    async fn per_stream<T, F, Fut>(&self, which: Vec<usize>, f: F) -> Vec<(usize, T)>
    where
        F: Fn(usize, Client, String) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let keys: Vec<(usize, String)> = which
            .into_iter()
            .map(|i| (i, self.cfg.streams[i].clone()))
            .collect();
        let f = &f;
        let client = &self.client;
        futures::stream::iter(keys)
            .map(move |(i, k)| {
                let fut = f(i, client.clone(), k);
                async move { (i, fut.await) }
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await
    }

    fn all(&self) -> Vec<usize> {
        (0..self.cfg.streams.len()).collect()
    }

    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if !self.ensure_groups(&cancel).await {
            return;
        }
        tracing::info!(consumer = %self.cfg.consumer, group = %self.cfg.group,
            streams = self.cfg.streams.len(), "audit outbox consumer started");
        let size = self.writer.cfg.batch_size.max(1);
        // Batches go to `writers` tasks, so one commits while the next is
        // read and sent; the channel's small capacity is the backpressure.
        let writers = self.writer.progress.slots.len();
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Entry>>(writers);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // A JoinSet aborts its tasks when dropped: aborting this task at the
        // end of the shutdown grace stops the workers too.
        let mut workers = tokio::task::JoinSet::new();
        for i in 0..writers {
            workers.spawn(Arc::clone(&self).worker(i, Arc::clone(&rx), cancel.clone()));
        }
        let mut next_claim = Instant::now();
        let mut busy = vec![false; self.cfg.streams.len()];
        let mut idle = Duration::from_millis(5);
        let mut backoff = self.writer.cfg.retry_min;
        'read: while !cancel.is_cancelled() {
            let mut entries = Vec::new();
            // Claiming while PostgreSQL is down would only take entries away
            // from consumers that are retrying them too.
            if Instant::now() >= next_claim && self.writer.progress.db_ok.load(Ordering::Relaxed) {
                entries = self.claim().await;
                next_claim = Instant::now() + self.cfg.claim_interval;
            }
            match self.read_round(size, &busy).await {
                Ok(mut e) => {
                    busy.iter_mut().for_each(|b| *b = false);
                    for x in &e {
                        busy[x.stream] = true;
                    }
                    entries.append(&mut e);
                    backoff = self.writer.cfg.retry_min;
                    if self.warned_redis.swap(false, Ordering::Relaxed) {
                        tracing::info!("audit outbox readable again");
                    }
                }
                Err(e) => {
                    if !self.warned_redis.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, "audit outbox unreadable; retrying");
                    }
                    if entries.is_empty() {
                        if !pause(backoff, &cancel).await {
                            break;
                        }
                        backoff = (backoff * 2).min(self.writer.cfg.retry_max);
                        continue;
                    }
                }
            }
            if entries.is_empty() {
                if !pause(idle, &cancel).await {
                    break;
                }
                idle = (idle * 2).min(self.cfg.poll_max);
                continue;
            }
            idle = Duration::from_millis(5);
            let mut it = entries.into_iter();
            loop {
                let chunk: Vec<Entry> = it.by_ref().take(size).collect();
                if chunk.is_empty() {
                    break;
                }
                // Entries not handed over stay pending in Redis (claimable).
                let sent = tokio::select! {
                    r = tx.send(chunk) => r.is_ok(),
                    _ = cancel.cancelled() => false,
                };
                if !sent {
                    break 'read;
                }
            }
        }
        drop(tx);
        while workers.join_next().await.is_some() {}
    }

    /// Writes batches from the reader and acknowledges each after COMMIT.
    /// Stops when the reader is done, or on shutdown in the middle of a
    /// write (those entries stay pending, counted in hand, for a claim).
    async fn worker(
        self: Arc<Self>,
        slot: usize,
        rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Vec<Entry>>>>,
        cancel: CancellationToken,
    ) {
        let writer = self.writer.for_slot(slot);
        loop {
            let next = rx.lock().await.recv().await;
            let Some(chunk) = next else { break };
            let events: Vec<AuditEvent> = chunk.iter().filter_map(|e| e.event.clone()).collect();
            if !writer.write(events, Some(&cancel)).await {
                return;
            }
            self.ack(&chunk).await;
        }
        writer.release();
    }

    /// Creates the group on every stream (MKSTREAM, from the beginning, so
    /// entries written before the first consumer started are read too).
    async fn ensure_groups(&self, cancel: &CancellationToken) -> bool {
        let mut backoff = self.writer.cfg.retry_min;
        loop {
            let group = self.cfg.group.clone();
            let results = self
                .per_stream(self.all(), move |_, c, key| {
                    let group = group.clone();
                    async move {
                        let r: Result<Value, Error> = c.xgroup_create(key, group, "0", true).await;
                        match r {
                            Ok(_) => Ok(()),
                            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                })
                .await;
            match results.into_iter().find_map(|(_, r)| r.err()) {
                None => return true,
                Some(e) => {
                    tracing::warn!(error = %e, "cannot create the audit consumer group yet; retrying");
                    if !pause(backoff, cancel).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(self.writer.cfg.retry_max);
                }
            }
        }
    }

    /// One XREADGROUP per stream, pipelined; per-stream counts keep a round
    /// near `size` entries.
    async fn read_round(&self, size: usize, busy: &[bool]) -> Result<Vec<Entry>, Error> {
        // Spread one batch over the streams that had entries last round, so
        // a backlog left in a few streams still drains in full batches; the
        // others get a small count, which bounds one round to about
        // `size + 16 × streams` entries.
        let busy_count = busy.iter().filter(|b| **b).count();
        let big = (size / busy_count.max(1)).clamp(16, size) as u64;
        let counts: Arc<Vec<u64>> = Arc::new(
            (0..self.cfg.streams.len())
                .map(|i| {
                    if busy.get(i).copied().unwrap_or(false) {
                        big
                    } else {
                        16
                    }
                })
                .collect(),
        );
        let (group, consumer) = (self.cfg.group.clone(), self.cfg.consumer.clone());
        let replies = self
            .per_stream(self.all(), move |i, c, key| {
                let (group, consumer) = (group.clone(), consumer.clone());
                let count = counts[i];
                async move {
                    c.xreadgroup::<Value, _, _, _, _>(
                        group,
                        consumer,
                        Some(count),
                        None,
                        false,
                        key,
                        ">",
                    )
                    .await
                }
            })
            .await;
        let mut out = Vec::new();
        let mut first_err = None;
        for (i, r) in replies {
            match r {
                Ok(v) => out.extend(
                    read_reply(v)
                        .into_iter()
                        .map(|(id, p)| self.entry(i, id, p)),
                ),
                Err(e) if e.details().contains("NOGROUP") => {
                    // The stream was deleted (e.g. FLUSHALL): recreate the group.
                    let _: Result<Value, Error> = self
                        .client
                        .xgroup_create(
                            self.cfg.streams[i].as_str(),
                            self.cfg.group.as_str(),
                            "0",
                            true,
                        )
                        .await;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    fn entry(&self, stream: usize, id: String, payload: Option<String>) -> Entry {
        let event = payload.as_deref().and_then(|p| match serde_json::from_str::<AuditEvent>(p) {
            Ok(ev) => Some(ev),
            Err(e) => {
                tracing::error!(stream = %self.cfg.streams[stream], id = %id, error = %e, payload = %p,
                    "outbox entry is not an audit event; it is not in the audit trail");
                None
            }
        });
        if payload.is_none() {
            tracing::error!(stream = %self.cfg.streams[stream], id = %id,
                "outbox entry without an `e` field; it is not in the audit trail");
        }
        if event.is_none() {
            self.writer.metrics.failures.inc();
        }
        Entry { stream, id, event }
    }

    /// XAUTOCLAIM on every stream: entries other consumers left pending.
    async fn claim(&self) -> Vec<Entry> {
        let idle_ms = self.cfg.claim_idle.as_millis() as u64;
        let (group, consumer) = (self.cfg.group.clone(), self.cfg.consumer.clone());
        let count = self.writer.cfg.batch_size.max(1) as u64;
        let replies = self
            .per_stream(self.all(), move |_, c, key| {
                let (group, consumer) = (group.clone(), consumer.clone());
                async move {
                    c.xautoclaim::<Value, _, _, _, _>(
                        key,
                        group,
                        consumer,
                        idle_ms,
                        "0-0",
                        Some(count),
                        false,
                    )
                    .await
                }
            })
            .await;
        let mut out = Vec::new();
        for (i, r) in replies {
            let Ok(Value::Array(parts)) = r else { continue };
            let claimed = parts.get(1).map(entries_in).unwrap_or_default();
            let gone = match parts.get(2) {
                Some(Value::Array(ids)) => ids.len(),
                _ => 0,
            };
            if gone > 0 {
                self.writer.metrics.dropped.inc_by(gone as u64);
                tracing::error!(stream = %self.cfg.streams[i], entries = gone,
                    "pending outbox entries were trimmed before they were written: \
                     these audit events are lost (raise the outbox MAXLEN)");
            }
            if !claimed.is_empty() {
                self.writer.metrics.claimed.inc_by(claimed.len() as u64);
                tracing::info!(stream = %self.cfg.streams[i], entries = claimed.len(),
                    "claimed outbox entries left pending by another consumer");
            }
            out.extend(claimed.into_iter().map(|(id, p)| self.entry(i, id, p)));
        }
        out
    }

    /// XACK + XDEL per stream. A failed ack only means redelivery later,
    /// which the unique keys absorb.
    async fn ack(&self, chunk: &[Entry]) {
        let mut by_stream: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
        for e in chunk {
            by_stream.entry(e.stream).or_default().push(e.id.clone());
        }
        let which: Vec<usize> = by_stream.keys().copied().collect();
        let by_stream = Arc::new(by_stream);
        let group = self.cfg.group.clone();
        let results = self
            .per_stream(which, {
                let by_stream = Arc::clone(&by_stream);
                move |i, c, key| {
                    let group = group.clone();
                    let ids: Vec<String> = by_stream.get(&i).cloned().unwrap_or_default();
                    async move {
                        let acked: Result<Value, Error> =
                            c.xack(key.as_str(), group, ids.clone()).await;
                        match acked {
                            Ok(_) => c.xdel::<Value, _, _>(key, ids).await.err(),
                            Err(e) => Some(e),
                        }
                    }
                }
            })
            .await;
        let failures: Vec<Error> = results.into_iter().filter_map(|(_, e)| e).collect();
        if let Some(e) = failures.first() {
            tracing::warn!(error = %e, streams = failures.len(),
                "audit outbox ack failed; those entries will be redelivered (no duplicates are stored)");
        }
    }

    /// Measures the backlog (total stream length: entries not yet written)
    /// and the oldest entry (lag), and warns before a stream reaches its cap.
    /// Removes other consumers that have been idle for `forget_idle` with
    /// nothing pending (stopped instances). A live consumer polls every
    /// `poll_max` at most, so its idle time never gets near the threshold.
    async fn forget_idle_consumers(&self) {
        let (group, me) = (self.cfg.group.clone(), self.cfg.consumer.clone());
        let idle_ms = i64::try_from(self.cfg.forget_idle.as_millis()).unwrap_or(i64::MAX);
        let removed = self
            .per_stream(self.all(), move |_, c, key| {
                let (group, me) = (group.clone(), me.clone());
                async move {
                    let info: Result<Value, Error> =
                        c.xinfo_consumers(key.as_str(), group.as_str()).await;
                    let Ok(info) = info else { return 0usize };
                    let mut n = 0;
                    for (name, pending, idle) in consumers_of(&info) {
                        if name != me && pending == 0 && idle >= idle_ms {
                            let r: Result<Value, Error> = c
                                .xgroup_delconsumer(key.as_str(), group.as_str(), name.as_str())
                                .await;
                            n += usize::from(r.is_ok());
                        }
                    }
                    n
                }
            })
            .await;
        let total: usize = removed.iter().map(|(_, n)| n).sum();
        if total > 0 {
            tracing::info!(
                removed = total,
                "forgot idle audit consumers of stopped instances"
            );
        }
    }

    async fn measure_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut next_forget = Instant::now() + self.cfg.forget_interval;
        while pause(self.cfg.measure_interval, &cancel).await {
            if Instant::now() >= next_forget {
                self.forget_idle_consumers().await;
                next_forget = Instant::now() + self.cfg.forget_interval;
            }
            let lens = self
                .per_stream(self.all(), |_, c, key| async move {
                    c.xlen::<u64, _>(key).await
                })
                .await;
            if lens.iter().any(|(_, r)| r.is_err()) {
                continue; // Redis unreachable: keep the last measurement
            }
            let total: u64 = lens.iter().filter_map(|(_, r)| r.as_ref().ok()).sum();
            let fullest = lens
                .iter()
                .filter_map(|(i, r)| r.as_ref().ok().map(|n| (*n, *i)))
                .max()
                .unwrap_or((0, 0));
            let busy: Vec<usize> = lens
                .iter()
                .filter(|(_, r)| matches!(r, Ok(n) if *n > 0))
                .map(|(i, _)| *i)
                .collect();
            let oldest: Vec<i64> = self
                .per_stream(busy, |_, c, key| async move {
                    let v: Result<Value, Error> = c.xrange(key, "-", "+", Some(1)).await;
                    v.ok()
                        .and_then(|v| entries_in(&v).into_iter().next())
                        .and_then(|(id, _)| id_ms(&id))
                })
                .await
                .into_iter()
                .filter_map(|(_, ms)| ms)
                .collect();
            let p = &self.writer.progress;
            p.waiting.store(total, Ordering::Relaxed);
            p.source_oldest_ms
                .store(oldest.into_iter().min().unwrap_or(0), Ordering::Relaxed);
            self.writer.observe_backlog();
            let cap = self.cfg.stream_max_len;
            if cap > 0 && fullest.0 * 10 >= cap * 8 {
                let mut last = self.last_cap_warning.lock();
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    tracing::error!(stream = %self.cfg.streams[fullest.1], length = fullest.0, cap,
                        "audit outbox stream near its MAXLEN: if PostgreSQL does not come back, \
                         Redis will trim unwritten audit events");
                    *last = Some(Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn parses_resp2_xreadgroup_replies() {
        let reply = Value::Array(vec![Value::Array(vec![
            s("sk:{b1}:o"),
            Value::Array(vec![
                Value::Array(vec![s("1-0"), Value::Array(vec![s("e"), s("{\"x\":1}")])]),
                Value::Array(vec![s("2-0"), Value::Null]),
            ]),
        ])]);
        assert_eq!(
            read_reply(reply),
            vec![
                ("1-0".to_string(), Some("{\"x\":1}".to_string())),
                ("2-0".to_string(), None)
            ]
        );
        assert!(read_reply(Value::Null).is_empty());
    }

    #[test]
    fn parses_xinfo_consumers() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                s("name"),
                s("a"),
                s("pending"),
                Value::Integer(0),
                s("idle"),
                Value::Integer(5000),
            ]),
            Value::Array(vec![s("name"), s("b"), s("pending"), Value::Integer(2)]),
        ]);
        assert_eq!(consumers_of(&reply), vec![("a".to_string(), 0, 5000)]);
    }

    #[test]
    fn stream_ids_carry_milliseconds() {
        assert_eq!(id_ms("1764064800123-7"), Some(1_764_064_800_123));
        assert_eq!(id_ms("garbage"), None);
    }
}
