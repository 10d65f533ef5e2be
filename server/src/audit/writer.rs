//! The consumer loop shared by both engines, and the memory engine's queue.
//!
//! A batch is collected (up to `batch_size`, waiting at most `linger` for a
//! partial one), written in one transaction, and only then acknowledged.
//! While PostgreSQL is down the same batch is retried with exponential
//! backoff; nothing is skipped. A batch that PostgreSQL rejects as data (not
//! an outage) is split in halves until the rejected events stand alone, so
//! one bad row cannot block the trail; each rejected event is moved to the
//! dead-letter table and logged by id and size (never its content).

use super::store::{AuditStore, WriteOutcome, is_transient};
use super::{AuditConfig, AuditError, AuditMetrics};
use crate::clock::now_ms;
use crate::engine::AuditEvent;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What one writer task holds: events taken from the source, not yet committed.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Events in hand.
    pub(crate) in_hand: AtomicU64,
    /// Commit time (ms) of the oldest event in hand; 0 when none.
    pub(crate) oldest_ms: AtomicI64,
}

/// Progress shared between a consumer's tasks and its [`AuditHandle`].
#[derive(Debug)]
pub(crate) struct Progress {
    /// One slot per writer task.
    pub(crate) slots: Vec<Slot>,
    /// Events still waiting in the source (outbox streams), last measured.
    pub(crate) waiting: AtomicU64,
    /// Commit time (ms) of the oldest event still waiting in the source, last
    /// measured (outbox streams); 0 when none or unknown.
    pub(crate) source_oldest_ms: AtomicI64,
    /// Whether the last write attempt succeeded.
    pub(crate) db_ok: AtomicBool,
    /// Whether the backlog is currently over the bound.
    pub(crate) over_bound: AtomicBool,
    /// Whether an outbox partition is over its high-water mark, last measured.
    pub(crate) outbox_high: AtomicBool,
}

impl Progress {
    pub(crate) fn new(writers: usize) -> Self {
        Progress {
            slots: (0..writers.max(1)).map(|_| Slot::default()).collect(),
            waiting: AtomicU64::new(0),
            source_oldest_ms: AtomicI64::new(0),
            db_ok: AtomicBool::new(true),
            over_bound: AtomicBool::new(false),
            outbox_high: AtomicBool::new(false),
        }
    }

    /// Events held by all writer tasks.
    pub(crate) fn in_hand(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.in_hand.load(Ordering::Relaxed))
            .sum()
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.slots
            .iter()
            .map(|s| s.oldest_ms.load(Ordering::Relaxed))
            .chain(std::iter::once(
                self.source_oldest_ms.load(Ordering::Relaxed),
            ))
            .filter(|ms| *ms > 0)
            .min()
    }
}

/// A running audit consumer: readiness information and shutdown.
pub struct AuditHandle {
    pub(crate) progress: Arc<Progress>,
    pub(crate) queue: Option<mpsc::WeakSender<AuditEvent>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    pub(crate) metrics: AuditMetrics,
}

impl AuditHandle {
    /// Events committed by the engine but not yet in PostgreSQL (for `/ready`
    /// and the backlog gauge).
    pub fn backlog(&self) -> u64 {
        backlog_of(&self.progress, self.queue.as_ref())
    }

    /// Age of the oldest event not yet written (zero when caught up).
    pub fn lag(&self) -> Duration {
        lag_of(&self.progress)
    }

    /// Whether the last write to PostgreSQL succeeded (`/ready` reports it but
    /// stays ready either way: the audit trail is not on the hot path).
    pub fn database_ok(&self) -> bool {
        self.progress.db_ok.load(Ordering::Relaxed)
    }

    /// Whether the backlog is over its bound or an outbox partition over
    /// its high-water mark (`/ready` reports it and stays ready).
    pub fn high_water(&self) -> bool {
        self.progress.over_bound.load(Ordering::Relaxed)
            || self.progress.outbox_high.load(Ordering::Relaxed)
    }

    /// Stops taking new work and waits up to `grace` for the batch in hand
    /// (and, for the memory queue, everything already queued) to be written.
    /// Returns the number of events this consumer leaves unwritten (0 on a
    /// clean stop): for the memory queue they are lost; for the outbox they
    /// stay pending in the outbox for another consumer.
    pub async fn shutdown(&self, grace: Duration) -> u64 {
        self.cancel.cancel();
        let task = self.task.lock().take();
        if let Some(mut t) = task
            && tokio::time::timeout(grace, &mut t).await.is_err()
        {
            t.abort();
        }
        if self.queue.is_some() {
            let left = self.backlog();
            if left > 0 {
                tracing::error!(
                    unwritten = left,
                    "audit queue stopped with events not written: they are lost"
                );
            }
            left
        } else {
            // Outbox entries outlive the process: what this consumer held stays
            // pending and another instance claims it.
            let left = self.progress.in_hand();
            if left > 0 {
                tracing::warn!(
                    pending = left,
                    "audit outbox consumer stopped mid-batch; another instance will claim its entries"
                );
            }
            left
        }
    }
}

/// Unwritten events: the memory queue's length plus the batch in hand, or,
/// for outbox streams (which keep in-hand entries until they are acked and
/// deleted), the measured stream lengths.
fn backlog_of(p: &Progress, queue: Option<&mpsc::WeakSender<AuditEvent>>) -> u64 {
    let in_hand = p.in_hand();
    match queue {
        Some(w) => {
            let queued = w
                .upgrade()
                .map(|tx| (tx.max_capacity() - tx.capacity()) as u64)
                .unwrap_or(0);
            queued + in_hand
        }
        None => p.waiting.load(Ordering::Relaxed).max(in_hand),
    }
}

fn lag_of(p: &Progress) -> Duration {
    match p.oldest_ms() {
        Some(ms) => Duration::from_millis((now_ms() - ms).max(0) as u64),
        None => Duration::ZERO,
    }
}

/// Starts the consumer of the memory engine's bounded in-process queue.
///
/// Give the returned sender to `MemoryEngine::new`. The engine never waits
/// for PostgreSQL: when the queue is full it drops the event, counts it in
/// `metrics.dropped` (see `MemoryEngine::with_dropped_metric`) and warns at
/// most every 10 s. The queue lives in process
/// memory, so events not yet written are lost if the process crashes; on a
/// graceful stop [`AuditHandle::shutdown`] drains it. Use the Redis engine
/// when the audit trail must survive crashes.
pub fn start_memory_writer(
    cfg: AuditConfig,
    metrics: AuditMetrics,
) -> Result<(mpsc::Sender<AuditEvent>, AuditHandle), AuditError> {
    let store = AuditStore::connect_lazy(&cfg)?;
    Ok(start_memory_writer_with(store, cfg, metrics))
}

/// [`start_memory_writer`] over an existing store (tests, shared pools).
pub fn start_memory_writer_with(
    store: AuditStore,
    cfg: AuditConfig,
    metrics: AuditMetrics,
) -> (mpsc::Sender<AuditEvent>, AuditHandle) {
    let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
    let progress = Arc::new(Progress::new(cfg.writers));
    let cancel = CancellationToken::new();
    let weak = tx.downgrade();
    let writer = Writer {
        store,
        cfg,
        metrics: metrics.clone(),
        progress: Arc::clone(&progress),
        queue: Some(weak.clone()),
        last_loud: Arc::new(Mutex::new(None)),
        slot: 0,
    };
    let task = tokio::spawn(writer.run_memory(rx, cancel.clone()));
    (
        tx,
        AuditHandle {
            progress,
            queue: Some(weak),
            cancel,
            task: Mutex::new(Some(task)),
            metrics,
        },
    )
}

/// The batch writer: retries, metrics and backlog warnings, shared by the
/// memory queue consumer and the outbox consumer. Each writer task
/// has its own copy with its own progress slot.
#[derive(Clone)]
pub(crate) struct Writer {
    pub(crate) store: AuditStore,
    pub(crate) cfg: AuditConfig,
    pub(crate) metrics: AuditMetrics,
    pub(crate) progress: Arc<Progress>,
    pub(crate) queue: Option<mpsc::WeakSender<AuditEvent>>,
    pub(crate) last_loud: Arc<Mutex<Option<Instant>>>,
    pub(crate) slot: usize,
}

impl Writer {
    /// This writer for progress slot `slot` (one per concurrent writer task).
    pub(crate) fn for_slot(&self, slot: usize) -> Writer {
        Writer {
            slot: slot.min(self.progress.slots.len() - 1),
            ..self.clone()
        }
    }

    /// Runs `cfg.writers` tasks over the queue: while one commits a batch,
    /// the next collects and sends its own, which keeps PostgreSQL busy.
    async fn run_memory(self, rx: mpsc::Receiver<AuditEvent>, cancel: CancellationToken) {
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // A JoinSet aborts its tasks when dropped, so aborting this task (at
        // the end of the shutdown grace) stops the workers too.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.progress.slots.len() {
            let w = self.for_slot(i);
            tasks.spawn(w.memory_worker(Arc::clone(&rx), cancel.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn memory_worker(
        self,
        rx: Arc<tokio::sync::Mutex<mpsc::Receiver<AuditEvent>>>,
        cancel: CancellationToken,
    ) {
        let size = self.cfg.batch_size.max(1);
        loop {
            let mut batch: Vec<AuditEvent> = Vec::with_capacity(size);
            {
                let mut rx = rx.lock().await;
                // Wait for the first event, or for shutdown: then close the
                // queue and keep writing until it is drained.
                let stopping = tokio::select! {
                    n = rx.recv_many(&mut batch, size) => {
                        if n == 0 {
                            break; // every sender is gone and the queue is empty
                        }
                        false
                    }
                    _ = cancel.cancelled() => true,
                };
                if stopping {
                    rx.close();
                    if rx.recv_many(&mut batch, size).await == 0 {
                        break;
                    }
                } else {
                    self.hold(&batch);
                    // Linger for a fuller batch.
                    let deadline = tokio::time::Instant::now() + self.cfg.linger;
                    while batch.len() < size {
                        let room = size - batch.len();
                        match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room))
                            .await
                        {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
            }
            // No cancel here: queued events exist nowhere else, so even on
            // shutdown they are retried until the grace period ends.
            self.write(batch, None).await;
        }
        self.release();
    }

    /// Records a batch as taken from its source.
    pub(crate) fn hold(&self, batch: &[AuditEvent]) {
        let oldest = batch.iter().map(|e| e.at_ms).min().unwrap_or(0).max(1);
        let slot = &self.progress.slots[self.slot];
        slot.in_hand.store(batch.len() as u64, Ordering::Relaxed);
        slot.oldest_ms.store(oldest, Ordering::Relaxed);
    }

    /// Records the slot's batch as committed (or given up).
    pub(crate) fn release(&self) {
        let slot = &self.progress.slots[self.slot];
        slot.in_hand.store(0, Ordering::Relaxed);
        slot.oldest_ms.store(0, Ordering::Relaxed);
        self.observe_backlog();
    }

    /// Writes `batch` until it is committed. With `cancel` set, retrying stops
    /// when it fires (the caller then leaves the batch unacknowledged); with
    /// `None` it retries until success (used while draining on shutdown,
    /// bounded by the shutdown grace).
    ///
    /// A batch PostgreSQL rejects as data (not an outage) is split in
    /// halves until each rejected event stands alone; the good parts are
    /// written and each rejected event goes to the dead-letter table: about
    /// 2·log2(n) transactions per poisoned event, never a retry loop.
    pub(crate) async fn write(
        &self,
        batch: Vec<AuditEvent>,
        cancel: Option<&CancellationToken>,
    ) -> bool {
        if batch.is_empty() {
            return true;
        }
        self.hold(&batch);
        let mut parts: Vec<&[AuditEvent]> = vec![&batch];
        while let Some(part) = parts.pop() {
            match self.commit_retrying(part, cancel).await {
                Some(Ok(())) => {}
                None => return false,
                Some(Err(e)) if part.len() == 1 => {
                    if !self.dead_letter(&part[0], &e, cancel).await {
                        return false;
                    }
                }
                Some(Err(e)) => {
                    if part.len() == batch.len() {
                        tracing::warn!(error = %e, events = batch.len(),
                            "audit batch rejected as data; splitting it to isolate the rejected events");
                    }
                    let (a, b) = part.split_at(part.len() / 2);
                    parts.push(b);
                    parts.push(a);
                }
            }
        }
        self.release();
        true
    }

    /// One part of a batch, retried while PostgreSQL is unreachable.
    /// `Some(Err)` when it is rejected as data; `None` when cancelled.
    async fn commit_retrying(
        &self,
        part: &[AuditEvent],
        cancel: Option<&CancellationToken>,
    ) -> Option<Result<(), AuditError>> {
        let mut delay = self.cfg.retry_min;
        let mut attempts = 0u32;
        loop {
            let started = Instant::now();
            match self.store.write_batch(part).await {
                Ok(out) => {
                    self.committed(part, out, started);
                    if attempts > 0 {
                        tracing::info!(attempts, events = part.len(), "audit writes resumed");
                    }
                    return Some(Ok(()));
                }
                Err(e) if !is_transient(&e) => {
                    self.progress.db_ok.store(true, Ordering::Relaxed);
                    return Some(Err(e));
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    self.progress.db_ok.store(false, Ordering::Relaxed);
                    attempts += 1;
                    if attempts == 1 || attempts.is_multiple_of(20) {
                        tracing::warn!(error = %e, attempts, retry_in_ms = delay.as_millis() as u64,
                            "audit write failed; retrying (nothing is dropped)");
                    }
                    self.observe_backlog();
                    if !self.pause(delay, cancel).await {
                        return None;
                    }
                    delay = (delay * 2).min(self.cfg.retry_max);
                }
            }
        }
    }

    /// Moves an event PostgreSQL rejected into `sync_events_dead_letter`,
    /// retried while PostgreSQL is unreachable; false when cancelled. Logged
    /// by id and size only: the payload may be large or sensitive.
    async fn dead_letter(
        &self,
        ev: &AuditEvent,
        error: &AuditError,
        cancel: Option<&CancellationToken>,
    ) -> bool {
        self.metrics.failures.inc();
        let reason = error.to_string();
        let mut delay = self.cfg.retry_min;
        loop {
            match self.store.dead_letter(ev, &reason).await {
                Ok(size) => {
                    self.metrics.dead_letters.inc();
                    tracing::error!(session_id = %ev.session_id, version = ev.version,
                        event_type = ev.event_type.as_str(), size, error = %reason,
                        "audit event rejected by PostgreSQL; moved to sync_events_dead_letter");
                    return true;
                }
                Err(e) if !is_transient(&e) => {
                    self.metrics.dropped.inc();
                    tracing::error!(session_id = %ev.session_id, version = ev.version,
                        error = %reason, dead_letter_error = %e,
                        "audit event rejected by PostgreSQL and by the dead-letter table: it is lost");
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit dead-letter write failed; retrying");
                    if !self.pause(delay, cancel).await {
                        return false;
                    }
                    delay = (delay * 2).min(self.cfg.retry_max);
                }
            }
        }
    }

    /// Sleeps `d` unless `cancel` fires first (false then).
    async fn pause(&self, d: Duration, cancel: Option<&CancellationToken>) -> bool {
        let sleep = tokio::time::sleep(d);
        match cancel {
            Some(c) => tokio::select! {
                _ = sleep => true,
                _ = c.cancelled() => false,
            },
            None => {
                sleep.await;
                true
            }
        }
    }

    fn committed(&self, batch: &[AuditEvent], out: WriteOutcome, started: Instant) {
        self.progress.db_ok.store(true, Ordering::Relaxed);
        self.metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.rows_written.inc_by(out.inserted);
        self.metrics.duplicates.inc_by(out.duplicates);
        if let Some(oldest) = batch.iter().map(|e| e.at_ms).min() {
            let delay = (now_ms() - oldest).max(0) as f64 / 1000.0;
            self.metrics.event_delay_seconds.observe(delay);
        }
        // The measured oldest waiting entry is stale once a batch reaching
        // past it commits; the next measurement restores it if older entries
        // still wait.
        if let Some(newest) = batch.iter().map(|e| e.at_ms).max() {
            let measured = self.progress.source_oldest_ms.load(Ordering::Relaxed);
            if measured > 0 && newest >= measured {
                let _ = self.progress.source_oldest_ms.compare_exchange(
                    measured,
                    0,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Updates the backlog gauges and is loud when the bound is crossed.
    pub(crate) fn observe_backlog(&self) {
        let backlog = backlog_of(&self.progress, self.queue.as_ref());
        self.metrics.backlog.set(backlog as i64);
        self.metrics
            .lag_seconds
            .set(lag_of(&self.progress).as_secs_f64());
        let bound = self.cfg.backlog_bound;
        let was_over = self.progress.over_bound.load(Ordering::Relaxed);
        if backlog > bound {
            let mut last = self.last_loud.lock();
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if !was_over || due {
                tracing::error!(
                    backlog,
                    bound,
                    lag_s = lag_of(&self.progress).as_secs(),
                    "audit backlog above bound: PostgreSQL is not keeping up"
                );
                *last = Some(Instant::now());
            }
            self.progress.over_bound.store(true, Ordering::Relaxed);
            self.metrics.backlog_over_bound.set(1);
        } else if was_over && backlog <= bound / 10 * 9 {
            tracing::info!(backlog, bound, "audit backlog back under bound");
            self.progress.over_bound.store(false, Ordering::Relaxed);
            self.metrics.backlog_over_bound.set(0);
        }
    }
}
