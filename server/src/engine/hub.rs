//! Local fan-out: one `watch` channel per session with local subscribers.
//!
//! A watch channel holds only the newest value, which is exactly the
//! contract for slow clients: they may skip versions but never see them out
//! of order, and one slow socket never holds memory for the others. The hub
//! refuses to publish a version older than the one it holds, so racing
//! publishers cannot reorder updates either.

use super::{Update, UpdateKind};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// Told when this instance starts / stops caring about a session, so a
/// distributed engine can (un)subscribe its broadcast channel.
pub trait SubscriptionListener: Send + Sync {
    /// The first local subscriber of `id` arrived.
    fn first_subscriber(&self, id: Uuid);
    /// The last local subscriber of `id` left.
    fn last_unsubscribed(&self, id: Uuid);
}

type Slot = Option<Arc<Update>>;

struct Entry {
    tx: watch::Sender<Slot>,
    subscribers: usize,
}

const SHARDS: usize = 32;

struct Inner {
    shards: Vec<Mutex<HashMap<Uuid, Entry>>>,
    listener: Mutex<Option<Arc<dyn SubscriptionListener>>>,
}

/// The per-instance registry of session channels.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                listener: Mutex::new(None),
            }),
        }
    }

    /// Installs the listener told about first/last subscribers.
    pub fn set_listener(&self, l: Arc<dyn SubscriptionListener>) {
        *self.inner.listener.lock() = Some(l);
    }

    fn shard(&self, id: &Uuid) -> &Mutex<HashMap<Uuid, Entry>> {
        &self.inner.shards[(id.as_u128() as usize) % SHARDS]
    }

    /// Subscribes to `id`; the subscription ends when dropped.
    pub fn subscribe(&self, id: Uuid) -> Subscription {
        let (rx, first) = {
            let mut map = self.shard(&id).lock();
            let entry = map.entry(id).or_insert_with(|| Entry {
                tx: watch::Sender::new(None),
                subscribers: 0,
            });
            entry.subscribers += 1;
            (entry.tx.subscribe(), entry.subscribers == 1)
        };
        if first && let Some(l) = self.inner.listener.lock().clone() {
            l.first_subscriber(id);
        }
        Subscription {
            hub: self.clone(),
            id,
            rx,
        }
    }

    /// Whether any local client listens to `id`.
    pub fn has_subscribers(&self, id: Uuid) -> bool {
        self.shard(&id).lock().contains_key(&id)
    }

    /// Sessions with local subscribers (for resync after a broadcast gap).
    pub fn subscribed_sessions(&self) -> Vec<Uuid> {
        self.inner
            .shards
            .iter()
            .flat_map(|s| s.lock().keys().copied().collect::<Vec<_>>())
            .collect()
    }

    /// Local subscriber count (a metric).
    pub fn subscriber_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().values().map(|e| e.subscribers).sum::<usize>())
            .sum()
    }

    /// Hands `update` to local subscribers unless they already hold a newer
    /// version (or the session's deletion). Returns whether it was accepted.
    pub fn publish(&self, update: Update) -> bool {
        let map = self.shard(&update.session_id).lock();
        let Some(entry) = map.get(&update.session_id) else {
            return false;
        };
        let accept = match entry.tx.borrow().as_deref() {
            None => true,
            Some(cur) if cur.kind == UpdateKind::Deleted => false,
            Some(_) if update.kind == UpdateKind::Deleted => true,
            Some(cur) if update.kind == UpdateKind::Resync => update.version >= cur.version,
            Some(cur) => update.version > cur.version,
        };
        if accept {
            entry.tx.send_replace(Some(Arc::new(update)));
        }
        accept
    }

    fn release(&self, id: Uuid) {
        let last = {
            let mut map = self.shard(&id).lock();
            match map.get_mut(&id) {
                Some(e) if e.subscribers > 1 => {
                    e.subscribers -= 1;
                    false
                }
                Some(_) => {
                    map.remove(&id);
                    true
                }
                None => false,
            }
        };
        if last && let Some(l) = self.inner.listener.lock().clone() {
            l.last_unsubscribed(id);
        }
    }
}

/// One local subscriber of one session.
pub struct Subscription {
    hub: Hub,
    id: Uuid,
    rx: watch::Receiver<Slot>,
}

impl Subscription {
    /// Waits for the next update newer than the last one seen; `None` when
    /// the hub dropped the channel.
    pub async fn next(&mut self) -> Option<Arc<Update>> {
        loop {
            self.rx.changed().await.ok()?;
            if let Some(u) = self.rx.borrow_and_update().clone() {
                return Some(u);
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.release(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(id: Uuid, version: u64, kind: UpdateKind) -> Update {
        Update {
            session_id: id,
            version,
            kind,
            frames: vec![],
        }
    }

    #[tokio::test]
    async fn slow_subscriber_gets_latest_never_older() {
        let hub = Hub::new();
        let id = Uuid::new_v4();
        let mut sub = hub.subscribe(id);
        assert!(hub.publish(upd(id, 2, UpdateKind::State)));
        assert!(hub.publish(upd(id, 3, UpdateKind::State)));
        assert!(!hub.publish(upd(id, 2, UpdateKind::State)));
        assert_eq!(sub.next().await.unwrap().version, 3);
        assert!(hub.publish(upd(id, 3, UpdateKind::Resync)));
        assert_eq!(sub.next().await.unwrap().kind, UpdateKind::Resync);
        assert!(hub.publish(upd(id, 0, UpdateKind::Deleted)));
        assert!(!hub.publish(upd(id, 9, UpdateKind::State)));
    }

    #[test]
    fn last_subscriber_leaving_removes_the_channel() {
        let hub = Hub::new();
        let id = Uuid::new_v4();
        let a = hub.subscribe(id);
        let b = hub.subscribe(id);
        drop(a);
        assert!(hub.has_subscribers(id));
        drop(b);
        assert!(!hub.has_subscribers(id));
        assert!(!hub.publish(upd(id, 1, UpdateKind::State)));
    }
}
