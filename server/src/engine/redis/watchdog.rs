//! The two watchdogs that feed the pub/sub resync where fred stays silent:
//! a cluster slot-owner check (`CLUSTER SLOTS`; a manual failover moves
//! slots without any reconnect) and a subscriber heartbeat (a connection
//! that died without a reset). Both end with the engine.

use super::pubsub::PubSub;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use std::sync::Weak;
use std::time::Duration;

/// The primary owning each slot range, from `CLUSTER SLOTS`: a fingerprint
/// of where shard channels live (replicas are left out on purpose).
pub fn slot_owners(v: &Value) -> Vec<(i64, i64, String)> {
    let Value::Array(ranges) = v else {
        return Vec::new();
    };
    let mut out: Vec<(i64, i64, String)> = ranges
        .iter()
        .filter_map(|r| {
            let Value::Array(r) = r else { return None };
            let (start, end) = (r.first()?.as_i64()?, r.get(1)?.as_i64()?);
            let Value::Array(node) = r.get(2)? else {
                return None;
            };
            let who = node
                .iter()
                .filter_map(|x| {
                    x.as_str()
                        .map(|s| s.to_string())
                        .or_else(|| x.as_i64().map(|n| n.to_string()))
                })
                .collect::<Vec<_>>()
                .join(" ");
            Some((start, end, who))
        })
        .collect();
    out.sort();
    out
}

/// Watches the slot owners of a cluster and asks for a pub/sub resync when
/// they change (see [`RedisConfig::topology_check_interval`](super::RedisConfig::topology_check_interval)). Ends with
/// the engine.
pub(super) fn spawn_topology_watch(client: Client, pubsub: Weak<PubSub>, every: Duration) {
    tokio::spawn(async move {
        let mut last: Option<Vec<(i64, i64, String)>> = None;
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(pubsub) = pubsub.upgrade() else {
                break;
            };
            let Ok(v) = client.cluster_slots::<Value>().await else {
                continue;
            };
            let owners = slot_owners(&v);
            if owners.is_empty() {
                continue;
            }
            if last.as_ref().is_some_and(|l| *l != owners) {
                tracing::info!("cluster slot owners changed; resubscribing");
                pubsub.request_resync("cluster slot owners changed");
            }
            last = Some(owners);
        }
    });
}

/// PINGs every subscriber connection (each cluster node) and forces a
/// reconnect when one does not answer (see
/// [`RedisConfig::subscriber_heartbeat`](super::RedisConfig::subscriber_heartbeat)). Ends with the engine.
pub(super) fn spawn_subscriber_heartbeat(
    sub: SubscriberClient,
    pubsub: Weak<PubSub>,
    every: Duration,
    timeout: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if pubsub.upgrade().is_none() {
                break;
            }
            for server in sub.active_connections() {
                let opts = Options {
                    cluster_node: Some(server.clone()),
                    timeout: Some(timeout),
                    ..Options::default()
                };
                let r: Result<Value, Error> = sub.with_options(&opts).ping(None).await;
                if let Err(e) = r {
                    tracing::warn!(node = %server, error = %e, "subscriber connection unresponsive; reconnecting");
                    let _ = sub.force_reconnection().await;
                    break;
                }
            }
        }
    });
}
