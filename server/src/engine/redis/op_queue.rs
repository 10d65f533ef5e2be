//! The pub/sub worker's inbox: interest changes and resync requests,
//! coalesced so it stays bounded however slow Redis is.
//!
//! A channel of ops grew by two entries per WebSocket connect/disconnect
//! while the worker waited on a stalled Redis. Here a session appears at
//! most once however often its interest changed (the worker reads the
//! hub's current interest anyway), resync requests collapse into one, and
//! past [`MAX_PENDING`] distinct sessions the list is dropped for a full
//! resync, which reconciles every session at once.

use parking_lot::Mutex;
use std::collections::HashSet;
use tokio::sync::Notify;
use uuid::Uuid;

/// Distinct sessions with a pending interest change before the queue
/// gives up on them one by one and asks for a full resync instead.
pub const MAX_PENDING: usize = 100_000;

/// What the worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The local interest in a session may have changed.
    Changed(Uuid),
    /// Broadcast may have had a gap: resubscribe everything and resync.
    Resync(&'static str),
}

#[derive(Default)]
struct Pending {
    order: Vec<Uuid>,
    seen: HashSet<Uuid>,
    resync: Option<&'static str>,
    closed: bool,
}

/// A coalescing, bounded multi-producer queue of [`Op`]s for one consumer.
#[derive(Default)]
pub struct OpQueue {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl OpQueue {
    /// Queues `op` (coalesced); false once the queue is closed.
    pub fn send(&self, op: Op) -> bool {
        {
            let mut p = self.pending.lock();
            if p.closed {
                return false;
            }
            match op {
                Op::Changed(id) if p.resync.is_some() => {
                    // A resync covers it; the worker still releases its waiter.
                    if p.seen.len() < MAX_PENDING && p.seen.insert(id) {
                        p.order.push(id);
                    }
                }
                Op::Changed(id) if p.seen.len() >= MAX_PENDING => {
                    let _ = id;
                    p.resync = Some("interest changes overflowed");
                }
                Op::Changed(id) => {
                    if p.seen.insert(id) {
                        p.order.push(id);
                    }
                }
                Op::Resync(why) => p.resync = Some(why),
            }
        }
        self.wake.notify_one();
        true
    }

    /// The next op without waiting (a resync first).
    pub fn try_recv(&self) -> Option<Op> {
        let mut p = self.pending.lock();
        if let Some(why) = p.resync.take() {
            return Some(Op::Resync(why));
        }
        let id = p.order.pop()?;
        p.seen.remove(&id);
        Some(Op::Changed(id))
    }

    /// Waits for the next op; `None` once closed and drained.
    pub async fn recv(&self) -> Option<Op> {
        loop {
            let notified = self.wake.notified();
            if let Some(op) = self.try_recv() {
                return Some(op);
            }
            if self.pending.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// Ends the consumer once it has drained what is queued.
    pub fn close(&self) {
        self.pending.lock().closed = true;
        self.wake.notify_one();
    }

    /// Sessions with a pending change.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_of_one_session_coalesce_and_resyncs_collapse() {
        let q = OpQueue::default();
        let a = Uuid::new_v4();
        for _ in 0..1000 {
            assert!(q.send(Op::Changed(a)));
        }
        q.send(Op::Resync("x"));
        q.send(Op::Resync("y"));
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_recv(), Some(Op::Resync("y")));
        assert_eq!(q.try_recv(), Some(Op::Changed(a)));
        assert_eq!(q.try_recv(), None);
    }

    #[test]
    fn too_many_distinct_sessions_turn_into_one_resync() {
        let q = OpQueue::default();
        for _ in 0..MAX_PENDING + 10 {
            q.send(Op::Changed(Uuid::new_v4()));
        }
        assert_eq!(q.len(), MAX_PENDING);
        assert!(matches!(q.try_recv(), Some(Op::Resync(_))));
    }

    #[tokio::test]
    async fn recv_wakes_on_send_and_ends_on_close() {
        let q = std::sync::Arc::new(OpQueue::default());
        let r = std::sync::Arc::clone(&q);
        let got = tokio::spawn(async move { r.recv().await });
        let id = Uuid::new_v4();
        q.send(Op::Changed(id));
        assert_eq!(got.await.unwrap(), Some(Op::Changed(id)));
        q.close();
        assert_eq!(q.recv().await, None);
        assert!(!q.send(Op::Resync("late")));
    }
}
