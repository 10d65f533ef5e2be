//! Commit batching: concurrent commits share one call of `commit.lua`.
//!
//! One command per commit costs, at load, a write syscall and a wake-up on
//! each side plus a pass through fred's router per commit (measured: writev
//! was ~30% of the server's CPU in the switch benchmark, and fred flushes
//! whenever its queue is momentarily empty, which on a busy 2-core machine
//! is almost always). So commits queue here and one worker sends them:
//!
//! - It takes the first queued commit, waits for a free slot in the window
//!   of outstanding batches, yields once (handlers woken in the same tick
//!   get to enqueue theirs), then takes everything queued, up to
//!   [`MAX_BATCH`].
//! - Standalone Redis gets the whole batch in one `EVALSHA`; a cluster gets
//!   one per bucket (a script's keys must share a slot), sent concurrently.
//! - The script applies the commits in order, each all-or-nothing on its
//!   own, and answers one reply per commit, so batching changes no outcome:
//!   two commits of one session in a batch behave exactly as if sent one
//!   after the other.
//!
//! An idle engine therefore sends a lone commit at once (one yield later),
//! and a busy one sends fewer, larger batches: the window, not a timer,
//! decides how much is batched, so no commit ever waits for a clock.

use fred::prelude::*;
use fred::types::scripts::Script;
use prometheus::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most commits in one script call (bounds its run time inside Redis).
pub const MAX_BATCH: usize = 128;

/// Most commits waiting for the worker. When Redis is slow the window stays
/// full and commits would queue without limit; past this they fail at once
/// (the client gets 503 with `Retry-After`) instead of waiting and holding
/// memory.
pub const MAX_QUEUED: usize = 1024;

/// One queued commit: its keys and arguments in `commit.lua`'s order.
struct Job {
    bucket: u32,
    keys: [String; 3],
    args: Vec<Value>,
    reply: oneshot::Sender<Result<Value, Error>>,
}

/// The queue in front of the commit worker (dropping it stops the worker).
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

/// What the worker needs to send a batch.
struct Sender {
    clients: Vec<Client>,
    script: Script,
    clustered: bool,
    sizes: Histogram,
}

impl Batcher {
    /// Starts the worker; `window` batches may be outstanding at once.
    pub fn start(clients: Vec<Client>, script: Script, window: usize, sizes: Histogram) -> Self {
        let clustered = clients.first().is_some_and(|c| c.is_clustered());
        let sender = Arc::new(Sender {
            clients,
            script,
            clustered,
            sizes,
        });
        let (jobs, rx) = mpsc::channel(MAX_QUEUED);
        tokio::spawn(run(rx, sender, Arc::new(Semaphore::new(window.max(1)))));
        Batcher { jobs }
    }

    /// Commits through the next batch; the reply is this commit's own
    /// (`1`, `-1` or the stored value, see `commit.lua`).
    pub async fn commit(
        &self,
        bucket: u32,
        keys: [String; 3],
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            bucket,
            keys,
            args,
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(Error::new(
                    ErrorKind::Backpressure,
                    "commit queue full (Redis is slow)",
                ));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(stopped()),
        }
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> Error {
    Error::new(ErrorKind::Canceled, "commit worker stopped")
}

async fn run(mut rx: mpsc::Receiver<Job>, sender: Arc<Sender>, window: Arc<Semaphore>) {
    let mut next_client = 0usize;
    while let Some(first) = rx.recv().await {
        let Ok(permit) = Arc::clone(&window).acquire_owned().await else {
            return;
        };
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let groups = group(batch, sender.clustered);
        let client = sender.clients[next_client % sender.clients.len()].clone();
        next_client = next_client.wrapping_add(1);
        let sender = Arc::clone(&sender);
        tokio::spawn(async move {
            futures::future::join_all(groups.into_iter().map(|g| sender.send(&client, g))).await;
            drop(permit);
        });
    }
}

/// Splits a batch into script calls: one per bucket in a cluster (one slot
/// each), a single one on standalone Redis. Order within a group is kept.
fn group(batch: Vec<Job>, clustered: bool) -> Vec<Vec<Job>> {
    if !clustered {
        return vec![batch];
    }
    let mut by_bucket: BTreeMap<u32, Vec<Job>> = BTreeMap::new();
    for job in batch {
        by_bucket.entry(job.bucket).or_default().push(job);
    }
    by_bucket.into_values().collect()
}

impl Sender {
    /// One script call for `jobs`; every job gets its own reply, or the
    /// call's error.
    async fn send(&self, client: &Client, jobs: Vec<Job>) {
        self.sizes.observe(jobs.len() as f64);
        let mut keys = Vec::with_capacity(jobs.len() * 3);
        let mut args = Vec::with_capacity(jobs.len() * 9);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            keys.extend(job.keys);
            args.extend(job.args);
            replies.push(job.reply);
        }
        let result: Result<Value, Error> =
            self.script.evalsha_with_reload(client, keys, args).await;
        match split_replies(result, replies.len()) {
            Ok(values) => {
                for (reply, value) in replies.into_iter().zip(values) {
                    let _ = reply.send(Ok(value));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The script's array reply as one value per commit, or why it is not one.
fn split_replies(result: Result<Value, Error>, n: usize) -> Result<Vec<Value>, Error> {
    match result? {
        Value::Array(values) if values.len() == n => Ok(values),
        other => Err(Error::new(
            ErrorKind::Protocol,
            format!("commit script returned {other:?} for {n} commits"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(bucket: u32, tag: &str) -> Job {
        let (reply, _) = oneshot::channel();
        Job {
            bucket,
            keys: [tag.into(), String::new(), String::new()],
            args: Vec::new(),
            reply,
        }
    }

    fn tags(groups: &[Vec<Job>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.iter().map(|j| j.keys[0].as_str()).collect())
            .collect()
    }

    #[test]
    fn standalone_sends_one_group_in_arrival_order() {
        let groups = group(vec![job(3, "a"), job(1, "b"), job(3, "c")], false);
        assert_eq!(tags(&groups), vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn cluster_groups_by_bucket_keeping_order() {
        let groups = group(vec![job(3, "a"), job(1, "b"), job(3, "c")], true);
        assert_eq!(tags(&groups), vec![vec!["b"], vec!["a", "c"]]);
    }

    #[test]
    fn replies_must_match_the_commits() {
        let two = Value::Array(vec![Value::Integer(1), Value::Integer(-1)]);
        assert_eq!(split_replies(Ok(two.clone()), 2).unwrap().len(), 2);
        assert!(split_replies(Ok(two), 3).is_err());
        assert!(split_replies(Ok(Value::Integer(1)), 1).is_err());
        let e = Error::new(ErrorKind::Timeout, "slow");
        assert_eq!(
            split_replies(Err(e), 1).unwrap_err().kind(),
            &ErrorKind::Timeout
        );
    }
}
