//! The Redis half of the audit outbox: the per-bucket streams read through
//! one consumer group.
//!
//! Every commit script XADDs its audit event (field `e`, JSON) to its
//! bucket's stream (see [`keys`]); [`RedisOutbox`] offers those
//! streams to the audit consumer as an [`Outbox`]: one partition per stream,
//! one command per stream and call (pipelined, `concurrency` in flight), so
//! it works unchanged on Redis Cluster, where the buckets live in different
//! slots.
//!
//! - read: `XREADGROUP … >` (a stream whose group vanished, e.g. after
//!   FLUSHALL, gets it recreated);
//! - ack: `XACK` then `XDEL`, so a stream holds exactly the entries not yet
//!   written and its length is the backlog. This is the only way entries
//!   leave a stream (the scripts' `XADD` has no `MAXLEN`): an event nobody
//!   wrote is never trimmed, a PostgreSQL outage grows the streams instead;
//! - claim: `XAUTOCLAIM` of entries another consumer left pending; the ids
//!   it reports deleted vanished before anyone wrote them (by hand, or
//!   trimmed by an older version that capped the streams);
//! - levels: `XLEN` of every stream and `XRANGE - + COUNT 1` of the busy
//!   ones (an entry id starts with its commit time in ms);
//! - forget: `XINFO CONSUMERS` + `XGROUP DELCONSUMER` of idle consumers.

use super::codec;
use super::keys;
use crate::engine::outbox::{Claimed, Outbox, OutboxEntry, OutboxError, OutboxLevels};
use async_trait::async_trait;
use fred::prelude::*;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The consumer group every instance's audit consumer joins.
pub const GROUP: &str = "synckairos-audit";

/// Redis commands in flight at once during one round over the streams.
const CONCURRENCY: usize = 32;

/// The engine's outbox streams as an [`Outbox`] (see the module doc). Made
/// by `RedisEngine::outbox`.
pub struct RedisOutbox {
    client: Client,
    streams: Vec<String>,
    high_water: u64,
}

impl RedisOutbox {
    /// The outbox of every bucket, read through `client`; `high_water` is
    /// the per-stream length past which the consumer signals (`OUTBOX_MAX_LEN`).
    pub fn new(client: Client, high_water: u64) -> Self {
        RedisOutbox {
            client,
            streams: keys::outbox_keys(),
            high_water,
        }
    }

    /// Runs `f(index, client, stream key)` for the given streams,
    /// [`CONCURRENCY`] at a time (fred pipelines them); the futures own
    /// their data so the consumer's tasks stay `Send + 'static`.
    async fn per_stream<T, F, Fut>(&self, which: Vec<usize>, f: F) -> Vec<(usize, T)>
    where
        F: Fn(usize, Client, String) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let keys: Vec<(usize, String)> = which
            .into_iter()
            .map(|i| (i, self.streams[i].clone()))
            .collect();
        let f = &f;
        let client = &self.client;
        futures::stream::iter(keys)
            .map(move |(i, k)| {
                let fut = f(i, client.clone(), k);
                async move { (i, fut.await) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await
    }

    fn all(&self) -> Vec<usize> {
        (0..self.streams.len()).collect()
    }

    /// An entry as read; a payload that is missing or not an audit event is
    /// logged here (with the raw payload) and yields `event: None`.
    fn entry(&self, stream: usize, id: String, payload: Option<String>) -> OutboxEntry {
        let event = payload
            .as_deref()
            .and_then(|p| match codec::decode_audit(p) {
                Ok(ev) => Some(ev),
                Err(e) => {
                    // Id and size only: a payload can be large or sensitive.
                    tracing::error!(stream = %self.streams[stream], id = %id, error = %e, size = p.len(),
                    "outbox entry is not an audit event; it is not in the audit trail");
                    None
                }
            });
        if payload.is_none() {
            tracing::error!(stream = %self.streams[stream], id = %id,
                "outbox entry without an `e` field; it is not in the audit trail");
        }
        OutboxEntry {
            partition: stream,
            id,
            event,
        }
    }
}

fn outbox_error(e: Error) -> OutboxError {
    OutboxError(e.to_string())
}

#[async_trait]
impl Outbox for RedisOutbox {
    fn partitions(&self) -> usize {
        self.streams.len()
    }

    fn partition_name(&self, partition: usize) -> String {
        self.streams.get(partition).cloned().unwrap_or_default()
    }

    fn high_water(&self) -> u64 {
        self.high_water
    }

    /// Creates the group on every stream (MKSTREAM, from the beginning, so
    /// entries written before the first consumer started are read too).
    async fn prepare(&self) -> Result<(), OutboxError> {
        let results = self
            .per_stream(self.all(), move |_, c, key| async move {
                let r: Result<Value, Error> = c.xgroup_create(key, GROUP, "0", true).await;
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await;
        match results.into_iter().find_map(|(_, r)| r.err()) {
            None => Ok(()),
            Some(e) => Err(outbox_error(e)),
        }
    }

    async fn read(&self, consumer: &str, counts: &[u64]) -> Result<Vec<OutboxEntry>, OutboxError> {
        let counts: Arc<Vec<u64>> = Arc::new(counts.to_vec());
        let consumer = consumer.to_string();
        let replies = self
            .per_stream(self.all(), move |i, c, key| {
                let consumer = consumer.clone();
                let count = counts.get(i).copied().unwrap_or(16);
                async move {
                    c.xreadgroup::<Value, _, _, _, _>(
                        GROUP,
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
                        .xgroup_create(self.streams[i].as_str(), GROUP, "0", true)
                        .await;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if out.is_empty() => Err(outbox_error(e)),
            _ => Ok(out),
        }
    }

    async fn claim(&self, consumer: &str, idle: Duration, count: u64) -> Vec<Claimed> {
        let idle_ms = idle.as_millis() as u64;
        let consumer = consumer.to_string();
        let replies = self
            .per_stream(self.all(), move |_, c, key| {
                let consumer = consumer.clone();
                async move {
                    c.xautoclaim::<Value, _, _, _, _>(
                        key,
                        GROUP,
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
            let trimmed = match parts.get(2) {
                Some(Value::Array(ids)) => ids.len(),
                _ => 0,
            };
            if claimed.is_empty() && trimmed == 0 {
                continue;
            }
            out.push(Claimed {
                partition: i,
                entries: claimed
                    .into_iter()
                    .map(|(id, p)| self.entry(i, id, p))
                    .collect(),
                trimmed,
            });
        }
        out
    }

    /// XACK + XDEL per stream.
    async fn ack(&self, entries: &[OutboxEntry]) -> Vec<OutboxError> {
        let mut by_stream: BTreeMap<usize, Vec<String>> = Default::default();
        for e in entries {
            by_stream.entry(e.partition).or_default().push(e.id.clone());
        }
        let which: Vec<usize> = by_stream.keys().copied().collect();
        let by_stream = Arc::new(by_stream);
        let results = self
            .per_stream(which, move |i, c, key| {
                let ids: Vec<String> = by_stream.get(&i).cloned().unwrap_or_default();
                async move {
                    let acked: Result<Value, Error> =
                        c.xack(key.as_str(), GROUP, ids.clone()).await;
                    match acked {
                        Ok(_) => c.xdel::<Value, _, _>(key, ids).await.err(),
                        Err(e) => Some(e),
                    }
                }
            })
            .await;
        results
            .into_iter()
            .filter_map(|(_, e)| e.map(outbox_error))
            .collect()
    }

    async fn levels(&self) -> Result<OutboxLevels, OutboxError> {
        let lens = self
            .per_stream(self.all(), |_, c, key| async move {
                c.xlen::<u64, _>(key).await
            })
            .await;
        let mut lengths = vec![0u64; self.streams.len()];
        for (i, r) in lens {
            lengths[i] = r.map_err(outbox_error)?;
        }
        let busy: Vec<usize> = (0..lengths.len()).filter(|i| lengths[*i] > 0).collect();
        let oldest_ms = self
            .per_stream(busy, |_, c, key| async move {
                let v: Result<Value, Error> = c.xrange(key, "-", "+", Some(1)).await;
                v.ok()
                    .and_then(|v| entries_in(&v).into_iter().next())
                    .and_then(|(id, _)| id_ms(&id))
            })
            .await
            .into_iter()
            .filter_map(|(_, ms)| ms)
            .min();
        Ok(OutboxLevels { lengths, oldest_ms })
    }

    async fn forget_idle(&self, me: &str, idle: Duration) -> usize {
        let me = me.to_string();
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let removed = self
            .per_stream(self.all(), move |_, c, key| {
                let me = me.clone();
                async move {
                    let info: Result<Value, Error> = c.xinfo_consumers(key.as_str(), GROUP).await;
                    let Ok(info) = info else { return 0usize };
                    let mut n = 0;
                    for (name, pending, idle) in consumers_of(&info) {
                        if name != me && pending == 0 && idle >= idle_ms {
                            let r: Result<Value, Error> = c
                                .xgroup_delconsumer(key.as_str(), GROUP, name.as_str())
                                .await;
                            n += usize::from(r.is_ok());
                        }
                    }
                    n
                }
            })
            .await;
        removed.iter().map(|(_, n)| n).sum()
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
