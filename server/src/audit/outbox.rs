//! The consumer of a durable outbox (`engine::outbox::Outbox`; the Redis
//! engine's streams).
//!
//! The engine appends every audit event to its outbox atomically with the
//! commit. Each instance runs one consumer of the outbox's group:
//!
//! 1. it reads a round from every partition, polling faster while there is
//!    work and spreading one batch over the partitions that had entries;
//! 2. the batch is written in one PostgreSQL transaction, retried with
//!    backoff while PostgreSQL is down (entries stay pending meanwhile);
//! 3. only after COMMIT are the entries acknowledged (and removed, so the
//!    outbox holds exactly the entries not yet written and its length is
//!    the backlog);
//! 4. every `claim_interval`, it takes over entries that another consumer
//!    read but did not acknowledge within `claim_idle` (an instance that
//!    died or hung); redelivery is harmless because the rows are keyed by
//!    (session, version).
//!
//! An outbox is never trimmed below what this group acknowledged: while
//! PostgreSQL is down it grows. Past its high-water mark
//! (`Outbox::high_water`, `OUTBOX_MAX_LEN` per partition) the consumer sets
//! `synckairos_audit_outbox_high_water`, logs an error every 10 s and
//! reports `high_water` in `/ready` (which stays ready). Entries found
//! missing while pending are counted in `synckairos_audit_dropped_total`.

use super::store::AuditStore;
use super::writer::{AuditHandle, Progress, Writer};
use super::{AuditConfig, AuditError, AuditMetrics};
use crate::engine::AuditEvent;
use crate::engine::outbox::{Outbox, OutboxEntry};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Tunables of the outbox consumer: its name and its pace.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// This consumer's name; unique per process (see [`default_consumer_name`]).
    pub consumer: String,
    /// Pending entries idle this long are taken over from their consumer.
    /// Must exceed a live consumer's longest write attempt plus ack.
    pub claim_idle: Duration,
    /// How often pending entries of other consumers are checked.
    pub claim_interval: Duration,
    /// Longest pause between polls while the outbox is empty.
    pub poll_max: Duration,
    /// How often the outbox's length (backlog) and oldest entry (lag) are measured.
    pub measure_interval: Duration,
    /// Other consumers idle this long with nothing pending are removed from
    /// the group (names of stopped instances would otherwise accumulate).
    pub forget_idle: Duration,
    /// How often idle consumers are looked for.
    pub forget_interval: Duration,
}

/// `HOSTNAME` (the pod name on Kubernetes) plus the pid and a random
/// suffix: unique per process, and readable in the group's consumer list.
pub fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "synckairos".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            consumer: default_consumer_name(),
            claim_idle: Duration::from_secs(60),
            claim_interval: Duration::from_secs(5),
            poll_max: Duration::from_millis(200),
            measure_interval: Duration::from_secs(1),
            forget_idle: Duration::from_secs(3600),
            forget_interval: Duration::from_secs(600),
        }
    }
}

struct Consumer {
    outbox: Arc<dyn Outbox>,
    cfg: OutboxConfig,
    writer: Writer,
    warned_unreadable: AtomicBool,
    last_high_water_log: Mutex<Option<Instant>>,
}

/// Starts the consumer of `outbox` (the Redis engine's `outbox()`). Never
/// fails because the outbox or PostgreSQL is down: both are retried in the
/// background.
pub fn start_outbox_consumer(
    outbox: Arc<dyn Outbox>,
    cfg: AuditConfig,
    consumer: OutboxConfig,
    metrics: AuditMetrics,
) -> Result<AuditHandle, AuditError> {
    let store = AuditStore::connect_lazy(&cfg)?;
    Ok(start_outbox_consumer_with(
        store, outbox, cfg, consumer, metrics,
    ))
}

/// [`start_outbox_consumer`] over an existing store (tests, shared pools).
pub fn start_outbox_consumer_with(
    store: AuditStore,
    outbox: Arc<dyn Outbox>,
    cfg: AuditConfig,
    consumer: OutboxConfig,
    metrics: AuditMetrics,
) -> AuditHandle {
    let progress = Arc::new(Progress::new(cfg.writers));
    let cancel = CancellationToken::new();
    let consumer = Arc::new(Consumer {
        outbox,
        cfg: consumer,
        writer: Writer {
            store,
            cfg,
            metrics: metrics.clone(),
            progress: Arc::clone(&progress),
            queue: None,
            last_loud: Arc::new(Mutex::new(None)),
            slot: 0,
        },
        warned_unreadable: AtomicBool::new(false),
        last_high_water_log: Mutex::new(None),
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
        metrics,
    }
}

/// Sleeps unless cancelled first; false when cancelled.
async fn pause(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

impl Consumer {
    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if !self.prepare(&cancel).await {
            return;
        }
        tracing::info!(consumer = %self.cfg.consumer,
            partitions = self.outbox.partitions(), "audit outbox consumer started");
        let size = self.writer.cfg.batch_size.max(1);
        // Batches go to `writers` tasks, so one commits while the next is
        // read and sent; the channel's small capacity is the backpressure.
        let writers = self.writer.progress.slots.len();
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<OutboxEntry>>(writers);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // A JoinSet aborts its tasks when dropped: aborting this task at the
        // end of the shutdown grace stops the workers too.
        let mut workers = tokio::task::JoinSet::new();
        for i in 0..writers {
            workers.spawn(Arc::clone(&self).worker(i, Arc::clone(&rx), cancel.clone()));
        }
        let mut next_claim = Instant::now();
        let mut busy = vec![false; self.outbox.partitions()];
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
                        if let Some(b) = busy.get_mut(x.partition) {
                            *b = true;
                        }
                    }
                    entries.append(&mut e);
                    backoff = self.writer.cfg.retry_min;
                    if self.warned_unreadable.swap(false, Ordering::Relaxed) {
                        tracing::info!("audit outbox readable again");
                    }
                }
                Err(e) => {
                    if !self.warned_unreadable.swap(true, Ordering::Relaxed) {
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
                let chunk: Vec<OutboxEntry> = it.by_ref().take(size).collect();
                if chunk.is_empty() {
                    break;
                }
                // Entries not handed over stay pending in the outbox (claimable).
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
        rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Vec<OutboxEntry>>>>,
        cancel: CancellationToken,
    ) {
        let writer = self.writer.for_slot(slot);
        loop {
            let next = rx.lock().await.recv().await;
            let Some(mut chunk) = next else { break };
            // Moved out, not cloned: the ack needs only partition and id.
            let events: Vec<AuditEvent> = chunk.iter_mut().filter_map(|e| e.event.take()).collect();
            if !writer.write(events, Some(&cancel)).await {
                return;
            }
            self.ack(&chunk).await;
        }
        writer.release();
    }

    /// Makes the outbox readable by the group, retrying with backoff until
    /// it is (false when shut down first).
    async fn prepare(&self, cancel: &CancellationToken) -> bool {
        let mut backoff = self.writer.cfg.retry_min;
        loop {
            match self.outbox.prepare().await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the audit consumer group yet; retrying");
                    if !pause(backoff, cancel).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(self.writer.cfg.retry_max);
                }
            }
        }
    }

    /// One read over every partition; per-partition counts keep a round
    /// near `size` entries.
    async fn read_round(
        &self,
        size: usize,
        busy: &[bool],
    ) -> Result<Vec<OutboxEntry>, crate::engine::outbox::OutboxError> {
        // Spread one batch over the partitions that had entries last round,
        // so a backlog left in a few of them still drains in full batches;
        // the others get a small count, which bounds one round to about
        // `size + 16 × partitions` entries.
        let busy_count = busy.iter().filter(|b| **b).count();
        let big = (size / busy_count.max(1)).clamp(16, size) as u64;
        let counts: Vec<u64> = (0..self.outbox.partitions())
            .map(|i| {
                if busy.get(i).copied().unwrap_or(false) {
                    big
                } else {
                    16
                }
            })
            .collect();
        let entries = self.outbox.read(&self.cfg.consumer, &counts).await?;
        self.count_unreadable(&entries);
        Ok(entries)
    }

    /// Entries that were not audit events (the outbox logged each one) are
    /// failures; they are acknowledged with their batch so they do not block.
    fn count_unreadable(&self, entries: &[OutboxEntry]) {
        let bad = entries.iter().filter(|e| e.event.is_none()).count();
        if bad > 0 {
            self.writer.metrics.failures.inc_by(bad as u64);
        }
    }

    /// Entries other consumers left pending, taken over.
    async fn claim(&self) -> Vec<OutboxEntry> {
        let count = self.writer.cfg.batch_size.max(1) as u64;
        let claims = self
            .outbox
            .claim(&self.cfg.consumer, self.cfg.claim_idle, count)
            .await;
        let mut out = Vec::new();
        for c in claims {
            let name = self.outbox.partition_name(c.partition);
            if c.trimmed > 0 {
                self.writer.metrics.dropped.inc_by(c.trimmed as u64);
                tracing::error!(stream = %name, entries = c.trimmed,
                    "pending outbox entries vanished before they were written \
                     (deleted outside synckairos): these audit events are lost");
            }
            if !c.entries.is_empty() {
                self.writer.metrics.claimed.inc_by(c.entries.len() as u64);
                tracing::info!(stream = %name, entries = c.entries.len(),
                    "claimed outbox entries left pending by another consumer");
            }
            self.count_unreadable(&c.entries);
            out.extend(c.entries);
        }
        out
    }

    /// Acknowledges a written batch. A failed ack only means redelivery
    /// later, which the unique keys absorb.
    async fn ack(&self, chunk: &[OutboxEntry]) {
        let failures = self.outbox.ack(chunk).await;
        if let Some(e) = failures.first() {
            tracing::warn!(error = %e, streams = failures.len(),
                "audit outbox ack failed; those entries will be redelivered (no duplicates are stored)");
        }
    }

    /// Removes other consumers that have been idle for `forget_idle` with
    /// nothing pending (stopped instances). A live consumer polls every
    /// `poll_max` at most, so its idle time never gets near the threshold.
    async fn forget_idle_consumers(&self) {
        let total = self
            .outbox
            .forget_idle(&self.cfg.consumer, self.cfg.forget_idle)
            .await;
        if total > 0 {
            tracing::info!(
                removed = total,
                "forgot idle audit consumers of stopped instances"
            );
        }
    }

    /// Raises (metric, `/ready` detail, an error line every 10 s) or clears
    /// the high-water signal from the fullest partition `(length, index)`.
    /// Nothing is trimmed either way: the outbox only grows while
    /// PostgreSQL is behind.
    fn signal_high_water(&self, fullest: (u64, usize)) {
        let mark = self.outbox.high_water();
        let over = mark > 0 && fullest.0 > mark;
        let was = self
            .writer
            .progress
            .outbox_high
            .swap(over, Ordering::Relaxed);
        self.writer.metrics.outbox_high_water.set(i64::from(over));
        if over {
            let mut last = self.last_high_water_log.lock();
            if !was || last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::error!(stream = %self.outbox.partition_name(fullest.1), length = fullest.0,
                    high_water = mark, "audit outbox above its high-water mark: PostgreSQL is behind, \
                    unwritten events wait in Redis (nothing is dropped; Redis memory grows)");
                *last = Some(Instant::now());
            }
        } else if was {
            tracing::info!(
                length = fullest.0,
                high_water = mark,
                "audit outbox back under its high-water mark"
            );
        }
    }

    /// Measures the backlog (total outbox length: entries not yet written)
    /// and the oldest entry (lag), and signals a partition past its
    /// high-water mark; now and then forgets idle consumers.
    async fn measure_loop(self: Arc<Self>, cancel: CancellationToken) {
        let mut next_forget = Instant::now() + self.cfg.forget_interval;
        while pause(self.cfg.measure_interval, &cancel).await {
            if Instant::now() >= next_forget {
                self.forget_idle_consumers().await;
                next_forget = Instant::now() + self.cfg.forget_interval;
            }
            let Ok(levels) = self.outbox.levels().await else {
                continue; // outbox unreachable: keep the last measurement
            };
            let total: u64 = levels.lengths.iter().sum();
            let fullest = levels
                .lengths
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, i))
                .max()
                .unwrap_or((0, 0));
            let p = &self.writer.progress;
            p.waiting.store(total, Ordering::Relaxed);
            p.source_oldest_ms
                .store(levels.oldest_ms.unwrap_or(0), Ordering::Relaxed);
            self.writer.observe_backlog();
            self.signal_high_water(fullest);
        }
    }
}
