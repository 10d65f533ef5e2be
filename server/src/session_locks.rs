//! One queue per session for the changes this instance makes.
//!
//! Two changes of one session computed from the same state cannot both
//! commit: the loser retries from the winner's state. Racing on the store
//! is how instances settle it, but within one instance it only wastes round
//! trips — and with batched commits (several commits per Redis call) it is
//! worse: a burst of N changes of one session would settle one per round
//! trip and exhaust the retry budget. So each instance lets one change per
//! session at a time compute and commit (FIFO); the next one starts from the
//! state just committed and wins at once. Other sessions are unaffected.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Per session with a change in progress: who waits next, in order.
type Held = Arc<Mutex<HashMap<Uuid, VecDeque<oneshot::Sender<()>>>>>;

/// The sessions with a change in progress here (an entry lives while
/// someone holds it).
#[derive(Default)]
pub struct SessionLocks {
    held: Held,
}

/// The right to change one session; on drop it passes to the next waiter.
pub struct SessionGuard {
    id: Uuid,
    held: Held,
}

/// Most changes of one session waiting behind the one in progress. When
/// the store is slow a burst would otherwise queue here without limit; past
/// this a change is refused at once ([`Busy`]).
pub const MAX_WAITERS: usize = 64;

/// The session's queue is full: refuse the change (503, retry shortly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl SessionLocks {
    /// Waits (FIFO) until no other change of `id` is in progress here; [`Busy`]
    /// when [`MAX_WAITERS`] changes already wait.
    pub async fn lock(&self, id: Uuid) -> Result<SessionGuard, Busy> {
        let rx = {
            let mut held = self.held.lock();
            match held.get_mut(&id) {
                None => {
                    held.insert(id, VecDeque::new());
                    None
                }
                Some(queue) if queue.len() >= MAX_WAITERS => {
                    // Senders of cancelled waiters still count until a
                    // handover skips them; drop those first.
                    queue.retain(|tx| !tx.is_closed());
                    if queue.len() >= MAX_WAITERS {
                        return Err(Busy);
                    }
                    let (tx, rx) = oneshot::channel();
                    queue.push_back(tx);
                    Some(rx)
                }
                Some(queue) => {
                    let (tx, rx) = oneshot::channel();
                    queue.push_back(tx);
                    Some(rx)
                }
            }
        };
        if let Some(rx) = rx {
            let mut waiting = Waiting {
                id,
                rx: Some(rx),
                held: Arc::clone(&self.held),
            };
            // The sender is only dropped by a handover, so this resolves Ok.
            let _ = waiting.rx.as_mut().expect("set above").await;
            waiting.rx = None;
        }
        Ok(SessionGuard {
            id,
            held: Arc::clone(&self.held),
        })
    }
}

/// Hands the session to the next live waiter, or frees it.
fn release(held: &Held, id: Uuid) {
    let mut held = held.lock();
    if let Some(queue) = held.get_mut(&id) {
        while let Some(next) = queue.pop_front() {
            if next.send(()).is_ok() {
                return;
            }
        }
    }
    held.remove(&id);
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        release(&self.held, self.id);
    }
}

/// A waiter; dropped before its turn arrives (the request was cancelled),
/// it must not strand a turn that was handed to it meanwhile.
struct Waiting {
    id: Uuid,
    rx: Option<oneshot::Receiver<()>>,
    held: Held,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                release(&self.held, self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! On paused tokio time: a lock that is wrongly held makes its
    //! `timeout` fire at once (the clock jumps when every task waits)
    //! instead of after seconds of real time, and the 1 ms timeout that
    //! cancels a waiter no longer depends on the machine's load.
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_change_per_session_at_a_time_in_arrival_order() {
        let locks = Arc::new(SessionLocks::default());
        let id = Uuid::new_v4();
        let first = locks.lock(id).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..3 {
            let (l, order) = (Arc::clone(&locks), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let _g = l.lock(id).await.unwrap();
                order.lock().push(n);
            }));
            // Let waiter n queue before n + 1 is spawned.
            while locks.held.lock()[&id].len() < n + 1 {
                tokio::task::yield_now().await;
            }
        }
        // Another session is not held up.
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock(Uuid::new_v4()))
            .await
            .expect("another session's lock is free");
        drop(other);
        assert!(
            order.lock().is_empty(),
            "nobody ran while the first held it"
        );
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock(), vec![0, 1, 2]);
        assert!(
            locks.held.lock().is_empty(),
            "entries go away with their last user"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_at_once_and_frees_with_its_waiters() {
        let locks = Arc::new(SessionLocks::default());
        let id = Uuid::new_v4();
        let first = locks.lock(id).await.unwrap();
        let mut waiters = Vec::new();
        for _ in 0..MAX_WAITERS {
            let l = Arc::clone(&locks);
            waiters.push(tokio::spawn(async move { l.lock(id).await.map(drop) }));
        }
        while locks.held.lock()[&id].len() < MAX_WAITERS {
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(locks.lock(id).await, Err(Busy)),
            "one more is refused"
        );
        // Cancelled waiters make room again.
        let cancelled = waiters.pop().unwrap();
        cancelled.abort();
        assert!(cancelled.await.unwrap_err().is_cancelled());
        let extra = {
            let l = Arc::clone(&locks);
            tokio::spawn(async move { l.lock(id).await.map(drop) })
        };
        drop(first);
        for w in waiters {
            let _ = w.await;
        }
        assert_eq!(extra.await.unwrap(), Ok(()));
        assert!(locks.held.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_no_entry_behind() {
        let locks = SessionLocks::default();
        let id = Uuid::new_v4();
        let held = locks.lock(id).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(1), locks.lock(id)).await;
        assert!(waiting.is_err());
        drop(held);
        assert!(locks.held.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_cancelled_after_its_turn_came_passes_the_turn_on() {
        let locks = Arc::new(SessionLocks::default());
        let id = Uuid::new_v4();
        let first = locks.lock(id).await.unwrap();
        let l = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let _g = l.lock(id).await;
            std::future::pending::<()>().await;
        });
        while locks.held.lock()[&id].is_empty() {
            tokio::task::yield_now().await;
        }
        // The turn goes to the waiter, which is cancelled before it runs.
        drop(first);
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        let again = tokio::time::timeout(Duration::from_secs(5), locks.lock(id))
            .await
            .expect("the session is not stranded");
        drop(again);
        assert!(locks.held.lock().is_empty());
    }
}
