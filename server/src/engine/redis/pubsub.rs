//! Cross-instance delivery: one sharded pub/sub channel per session,
//! subscribed while this instance has local WebSocket clients for it.
//!
//! The hub tells us (synchronously) when the first local subscriber of a
//! session arrives and when the last one leaves; one worker task turns that
//! into SSUBSCRIBE / SUNSUBSCRIBE on a dedicated subscriber connection,
//! batched by bucket (one slot per batch). Received messages are decoded and
//! handed to the hub.
//!
//! Two gaps are closed explicitly:
//! - **Subscribe race.** A client subscribes to the hub, then reads the
//!   state. Until SSUBSCRIBE is confirmed, a commit made elsewhere would be
//!   lost to it. So the session is marked *pending* in the listener callback
//!   and [`PubSub::wait_ready`] (called by the engine's `load`) waits until
//!   the worker has confirmed the subscription: the client's first read
//!   happens after the channel is live.
//! - **Broadcast gaps.** After a reconnect, a cluster topology change, or a
//!   lagging receiver, messages may have been lost and (DEPS.md) fred's
//!   sharded subscriber can go silent after a failover. The worker then
//!   re-subscribes every locally wanted session, retrying with backoff until
//!   Redis accepts, and pushes each one a fresh `STATE_SYNC` read from Redis
//!   (or `SESSION_DELETED` if a session this instance saw exist is gone), so
//!   no client keeps a stale clock. A session that never existed (a client
//!   waiting for it to be created) is left alone.

use super::op_queue::{Op, OpQueue};
use super::{codec, keys};
use crate::clock::now_ms;
use crate::domain::{Session, SyncState};
use crate::engine::{Hub, SubscriptionListener, Update, UpdateKind};
use crate::protocol;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use futures::StreamExt;
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Reads a session's current state; the engine's `load` without the
/// pending wait (the worker must not wait for itself).
pub type Loader = Arc<
    dyn Fn(Uuid) -> Pin<Box<dyn Future<Output = Result<Option<Session>, String>> + Send>>
        + Send
        + Sync,
>;

/// Counters of the pub/sub side, registered in the service's registry.
#[derive(Clone)]
pub struct PubSubMetrics {
    /// Full resubscribe + resync passes.
    pub resyncs: IntCounter,
    /// Updates received from Redis and handed to the hub.
    pub received: IntCounter,
    /// Sessions with a live channel subscription on this instance.
    pub subscribed: IntGauge,
}

/// Tells the worker about first/last local subscribers (installed in the hub).
struct Listener {
    ops: Arc<OpQueue>,
    pending: Arc<Mutex<HashMap<Uuid, watch::Sender<bool>>>>,
}

impl SubscriptionListener for Listener {
    fn first_subscriber(&self, id: Uuid) {
        self.pending
            .lock()
            .entry(id)
            .or_insert_with(|| watch::Sender::new(false));
        let _ = self.ops.send(Op::Changed(id));
    }

    fn last_unsubscribed(&self, id: Uuid) {
        let _ = self.ops.send(Op::Changed(id));
    }
}

/// Subscribed sessions this instance has seen exist (read or updated): only
/// those may be announced deleted when a resync finds them gone.
type Known = Arc<Mutex<HashSet<Uuid>>>;

/// The pub/sub side of the Redis engine.
pub struct PubSub {
    pending: Arc<Mutex<HashMap<Uuid, watch::Sender<bool>>>>,
    known: Known,
    hub: Hub,
    ops: Arc<OpQueue>,
    ready_timeout: Duration,
}

impl PubSub {
    /// Starts the worker and the message pump, and installs the hub listener.
    /// `events` are the broadcast receivers (reconnects, cluster changes) of
    /// every client whose trouble may have cost us messages.
    pub fn start(
        sub: SubscriberClient,
        hub: Hub,
        load: Loader,
        metrics: PubSubMetrics,
        ready_timeout: Duration,
        events: Vec<GapSignal>,
    ) -> Arc<PubSub> {
        let tx = Arc::new(OpQueue::default());
        let rx = Arc::clone(&tx);
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let known: Known = Arc::new(Mutex::new(HashSet::new()));
        hub.set_listener(Arc::new(Listener {
            ops: Arc::clone(&tx),
            pending: Arc::clone(&pending),
        }));
        spawn_pump(
            sub.message_rx(),
            hub.clone(),
            Arc::clone(&known),
            metrics.clone(),
            Arc::clone(&tx),
        );
        for signal in events {
            spawn_gap_watch(signal, Arc::clone(&tx));
        }
        let worker = Worker {
            sub,
            hub: hub.clone(),
            load,
            metrics,
            pending: Arc::clone(&pending),
            known: Arc::clone(&known),
            active: HashSet::new(),
        };
        tokio::spawn(worker.run(rx));
        Arc::new(PubSub {
            pending,
            known,
            hub,
            ops: tx,
            ready_timeout,
        })
    }

    /// Waits (bounded) until a just-requested subscription of `id` is live.
    pub async fn wait_ready(&self, id: Uuid) {
        let rx = self.pending.lock().get(&id).map(|tx| tx.subscribe());
        if let Some(mut rx) = rx {
            let _ = tokio::time::timeout(self.ready_timeout, rx.wait_for(|done| *done)).await;
        }
    }

    /// Records that a session with local subscribers exists (the engine's
    /// `load` found it), so a resync that finds it gone announces it.
    pub fn note_exists(&self, id: Uuid) {
        if self.hub.has_subscribers(id) {
            self.known.lock().insert(id);
        }
    }

    /// Asks for a full resubscribe + resync (tests and operators).
    pub fn request_resync(&self, why: &'static str) {
        let _ = self.ops.send(Op::Resync(why));
    }
}

impl Drop for PubSub {
    /// The worker ends with the engine (it would otherwise hold the
    /// subscriber connection forever).
    fn drop(&mut self) {
        self.ops.close();
    }
}

/// A source of "messages may have been lost" events.
pub enum GapSignal {
    /// A client reconnected.
    Reconnect(broadcast::Receiver<Server>, &'static str),
    /// A cluster client saw the topology change.
    ClusterChange(
        broadcast::Receiver<Vec<fred::types::ClusterStateChange>>,
        &'static str,
    ),
}

fn spawn_gap_watch(signal: GapSignal, tx: Arc<OpQueue>) {
    match signal {
        GapSignal::Reconnect(rx, why) => watch_events(rx, why, tx),
        GapSignal::ClusterChange(rx, why) => watch_events(rx, why, tx),
    }
}

/// Turns every event (or a lag, which hides events) into a resync request.
fn watch_events<T: Clone + Send + 'static>(
    mut rx: broadcast::Receiver<T>,
    why: &'static str,
    tx: Arc<OpQueue>,
) {
    tokio::spawn(async move {
        while !matches!(rx.recv().await, Err(broadcast::error::RecvError::Closed)) {
            if !tx.send(Op::Resync(why)) {
                break;
            }
        }
    });
}

/// Decodes every received message into the hub (no awaits: it keeps up).
fn spawn_pump(
    mut rx: broadcast::Receiver<fred::types::Message>,
    hub: Hub,
    known: Known,
    metrics: PubSubMetrics,
    ops: Arc<OpQueue>,
) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(msg) => {
                    tracing::trace!(channel = %msg.channel, "pub/sub message");
                    let Some(id) = keys::parse_channel(&msg.channel) else {
                        continue;
                    };
                    let Some(raw) = msg.value.as_bytes() else {
                        continue;
                    };
                    match codec::decode_update(id, raw) {
                        Some(u) => {
                            metrics.received.inc();
                            let deleted = u.kind == UpdateKind::Deleted;
                            if hub.publish(u) {
                                let mut known = known.lock();
                                if deleted {
                                    known.remove(&id);
                                } else {
                                    known.insert(id);
                                }
                            }
                        }
                        None => tracing::warn!(session = %id, "undecodable update on the channel"),
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "pub/sub receiver lagged; resyncing");
                    let _ = ops.send(Op::Resync("receiver lagged"));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

struct Worker {
    sub: SubscriberClient,
    hub: Hub,
    load: Loader,
    metrics: PubSubMetrics,
    pending: Arc<Mutex<HashMap<Uuid, watch::Sender<bool>>>>,
    known: Known,
    /// Sessions whose channel this instance believes it is subscribed to.
    active: HashSet<Uuid>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Worker {
    async fn run(mut self, rx: Arc<OpQueue>) {
        let mut changed = Vec::new();
        let mut resync: Option<&'static str> = None;
        while let Some(op) = rx.recv().await {
            Self::note(op, &mut changed, &mut resync);
            while let Some(op) = rx.try_recv() {
                Self::note(op, &mut changed, &mut resync);
            }
            if let Some(why) = resync.take() {
                self.resync_until_done(why, &rx, &mut changed).await;
            }
            if !changed.is_empty() {
                let ids = std::mem::take(&mut changed);
                if let Err(e) = self.reconcile(&ids).await {
                    tracing::warn!(error = %e, "pub/sub subscribe failed; resyncing");
                    resync = Some("subscribe failed");
                }
                self.release_pending(&ids);
                if let Some(why) = resync.take() {
                    self.resync_until_done(why, &rx, &mut changed).await;
                }
            }
        }
    }

    fn note(op: Op, changed: &mut Vec<Uuid>, resync: &mut Option<&'static str>) {
        match op {
            Op::Changed(id) => changed.push(id),
            Op::Resync(why) => *resync = Some(why),
        }
    }

    fn release_pending(&self, ids: &[Uuid]) {
        let mut pending = self.pending.lock();
        for id in ids {
            if let Some(tx) = pending.remove(id) {
                tx.send_replace(true);
            }
        }
    }

    /// Brings the channel subscriptions of `ids` in line with the hub.
    async fn reconcile(&mut self, ids: &[Uuid]) -> Result<(), Error> {
        let mut subscribe: BTreeMap<u32, Vec<Uuid>> = BTreeMap::new();
        let mut unsubscribe: BTreeMap<u32, Vec<Uuid>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let want = self.hub.has_subscribers(*id);
            let have = self.active.contains(id);
            if want && !have {
                subscribe.entry(keys::bucket(id)).or_default().push(*id);
            } else if !want && have {
                unsubscribe.entry(keys::bucket(id)).or_default().push(*id);
            }
        }
        for group in unsubscribe.into_values() {
            let channels: Vec<String> = group.iter().map(keys::channel).collect();
            self.sub.sunsubscribe(channels).await?;
            let mut known = self.known.lock();
            for id in group {
                self.active.remove(&id);
                known.remove(&id);
            }
        }
        for group in subscribe.into_values() {
            let channels: Vec<String> = group.iter().map(keys::channel).collect();
            tracing::debug!(?channels, "ssubscribe");
            self.sub.ssubscribe(channels).await?;
            self.active.extend(group);
        }
        self.metrics.subscribed.set(self.active.len() as i64);
        Ok(())
    }

    /// Retries a full resync with backoff until it succeeds; interest
    /// changes that arrive meanwhile are folded in (a resync covers them).
    async fn resync_until_done(
        &mut self,
        why: &'static str,
        rx: &OpQueue,
        changed: &mut Vec<Uuid>,
    ) {
        let mut backoff = MIN_BACKOFF;
        loop {
            while let Some(op) = rx.try_recv() {
                if let Op::Changed(id) = op {
                    changed.push(id);
                }
            }
            let started = std::time::Instant::now();
            match self.resync_all().await {
                Ok(n) => {
                    self.metrics.resyncs.inc();
                    tracing::info!(
                        reason = why,
                        sessions = n,
                        took_ms = started.elapsed().as_millis() as u64,
                        "pub/sub resubscribed and resynced"
                    );
                    let ids = std::mem::take(changed);
                    self.release_pending(&ids);
                    return;
                }
                Err(e) => {
                    tracing::warn!(reason = why, error = %e, retry_in_ms = backoff.as_millis() as u64, "pub/sub resync failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Resubscribes every locally wanted session and pushes each a fresh
    /// state. Returns how many sessions were resynced.
    async fn resync_all(&mut self) -> Result<usize, String> {
        let wanted: HashSet<Uuid> = self.hub.subscribed_sessions().into_iter().collect();
        let mut groups: BTreeMap<u32, Vec<Uuid>> = BTreeMap::new();
        for id in &wanted {
            groups.entry(keys::bucket(id)).or_default().push(*id);
        }
        // Subscribing again on a live subscription is harmless; on a new
        // connection (or a new slot owner) it is what restores delivery.
        for group in groups.values() {
            let channels: Vec<String> = group.iter().map(keys::channel).collect();
            tracing::debug!(?channels, "ssubscribe (resync)");
            self.sub
                .ssubscribe(channels)
                .await
                .map_err(|e| e.to_string())?;
        }
        let stale: Vec<Uuid> = self.active.difference(&wanted).copied().collect();
        {
            let mut known = self.known.lock();
            for id in &stale {
                known.remove(id);
            }
        }
        self.active = wanted.clone();
        self.metrics.subscribed.set(self.active.len() as i64);
        if !stale.is_empty() {
            let channels: Vec<String> = stale.iter().map(keys::channel).collect();
            let mut by_slot: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            for (id, ch) in stale.iter().zip(channels) {
                by_slot.entry(keys::bucket(id)).or_default().push(ch);
            }
            for chs in by_slot.into_values() {
                // Best effort: a stale subscription only costs bandwidth.
                let _ = self.sub.sunsubscribe(chs).await;
            }
        }
        // Push a fresh state to every local subscriber. Reads run 32 at a
        // time; any failure restarts the whole pass (Redis is still unwell).
        let load = Arc::clone(&self.load);
        let hub = self.hub.clone();
        let known = Arc::clone(&self.known);
        let results: Vec<Result<(), String>> = futures::stream::iter(wanted.iter().copied())
            .map(|id| {
                let load = Arc::clone(&load);
                let hub = hub.clone();
                let known = Arc::clone(&known);
                async move {
                    let now = now_ms();
                    let update = match load(id).await? {
                        Some(s) => {
                            known.lock().insert(id);
                            Update {
                                session_id: id,
                                version: s.version,
                                kind: UpdateKind::Resync,
                                frames: vec![protocol::state_message(
                                    "STATE_SYNC",
                                    &SyncState::render(&s, now),
                                )],
                            }
                        }
                        // Gone, and it did exist: tell the clients.
                        None if known.lock().remove(&id) => Update {
                            session_id: id,
                            version: 0,
                            kind: UpdateKind::Deleted,
                            frames: vec![protocol::bare("SESSION_DELETED", id, now)],
                        },
                        // Never seen: clients are waiting for its creation.
                        None => return Ok(()),
                    };
                    hub.publish(update);
                    Ok(())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(wanted.len())
    }
}
