//! Connecting: build and open the clients, refuse servers that cannot run
//! the engine, load the scripts, register the metrics, and start pub/sub,
//! the watchdogs and the commit batcher. Errors are one line, ready for a
//! startup failure.

use super::config::RedisConfig;
use super::engine::{RedisEngine, read_state};
use super::pubsub::{self, GapSignal, PubSub, PubSubMetrics};
use super::watchdog::{spawn_subscriber_heartbeat, spawn_topology_watch};
use super::{batch, cache};
use crate::engine::Hub;
use crate::metrics::Metrics;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::InfoKind;
use fred::types::scripts::Script;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

const CREATE_LUA: &str = include_str!("create.lua");
const COMMIT_LUA: &str = include_str!("commit.lua");
const DELETE_LUA: &str = include_str!("delete.lua");

/// Parses `INFO server` for `redis_version` and refuses servers below 7
/// (sharded pub/sub, SPUBLISH in scripts, GETRANGE on strings as used here).
pub fn check_version(info: &str) -> Result<String, String> {
    let version = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .ok_or("Redis did not report redis_version in INFO server")?
        .trim()
        .to_string();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("cannot parse Redis version {version:?}"))?;
    if major < 7 {
        return Err(format!(
            "Redis {version} is too old: SyncKairos needs Redis >= 7 (sharded pub/sub)"
        ));
    }
    Ok(version)
}

/// A `redis://` URL gives a non-cluster client; against a cluster node it
/// would fail on every key of another node's slots (MOVED). Refuse early.
pub fn check_not_cluster(info_cluster: &str) -> Result<(), String> {
    if info_cluster
        .lines()
        .any(|l| l.trim() == "cluster_enabled:1")
    {
        return Err(
            "REDIS_URL points at a Redis Cluster node: set REDIS_CLUSTER_NODES=host:port,... instead"
                .into(),
        );
    }
    Ok(())
}

fn register<C: prometheus::core::Collector + Clone + 'static>(metrics: &Metrics, c: &C) {
    // Registering twice (several engines on one registry in tests) is harmless.
    let _ = metrics.registry.register(Box::new(c.clone()));
}

/// Connects, checks the server version, loads the scripts and starts the
/// pub/sub worker. Errors are one line, ready for a startup failure.
pub async fn connect(cfg: RedisConfig, metrics: &Metrics) -> Result<Arc<RedisEngine>, String> {
    let where_ = if cfg.url.is_some() {
        "Redis (REDIS_URL)".to_string()
    } else {
        format!("Redis Cluster ({})", cfg.cluster_nodes.join(","))
    };
    let (mut clients, sub) = open_clients(&cfg, &where_).await?;
    // The audit consumer gets a connection of its own: its rounds of 256
    // XREADGROUPs with ~1 KB entries would otherwise queue commits behind
    // them (one outstanding commit batch per connection).
    let outbox_client = if cfg.audit && clients.len() > 1 {
        clients.pop()
    } else {
        None
    };
    let client = clients[0].clone();
    let version = check_server(&client, &where_).await?;
    let [create, commit, delete] = load_scripts(&client, &where_).await?;
    let (pm, errors, batch_sizes) = engine_metrics(metrics)?;
    let hub = Hub::new();
    let loader_client = client.clone();
    let loader: pubsub::Loader = Arc::new(move |id| {
        let c = loader_client.clone();
        Box::pin(async move { read_state(&c, id).await.map_err(|e| e.to_string()) })
    });
    let events = gap_signals(&sub, &clients);
    let sub_for_heartbeat = sub.clone();
    let pubsub = PubSub::start(sub, hub.clone(), loader, pm, cfg.command_timeout, events);
    spawn_subscriber_heartbeat(
        sub_for_heartbeat,
        Arc::downgrade(&pubsub),
        cfg.subscriber_heartbeat,
        cfg.command_timeout,
    );
    if client.is_clustered() {
        spawn_topology_watch(
            client.clone(),
            Arc::downgrade(&pubsub),
            cfg.topology_check_interval,
        );
    }
    tracing::info!(target = %where_, version = %version, "redis engine connected");
    // One outstanding batch per connection: measured, 1, 2 and 4 give the
    // same throughput within noise (29-33k switches/s on 2 cores).
    let commits = batch::Batcher::start(clients.clone(), commit, clients.len(), batch_sizes);
    Ok(Arc::new(RedisEngine {
        clients,
        next: AtomicUsize::new(0),
        hub,
        pubsub,
        create,
        commits,
        delete,
        audit: cfg.audit,
        outbox_high_water: cfg.outbox_max_len,
        outbox_client,
        errors,
        cache: cache::SessionCache::new(cfg.cache_sessions),
    }))
}

/// Builds and connects the command clients and the subscriber client, each
/// within the connect timeout.
async fn open_clients(
    cfg: &RedisConfig,
    where_: &str,
) -> Result<(Vec<Client>, SubscriberClient), String> {
    let mut clients = Vec::new();
    // One more for the audit consumer when there is one (see `connect`).
    for _ in 0..cfg.connections.max(1) + usize::from(cfg.audit) {
        clients.push(cfg.builder(32)?.build().map_err(|e| e.to_string())?);
    }
    // Bursts of updates must not overflow the message channel before the
    // pump drains it (a lag forces a full resync).
    let sub: SubscriberClient = cfg
        .builder(65_536)?
        .build_subscriber_client()
        .map_err(|e| e.to_string())?;
    let limit = cfg.connect_timeout * 2 + Duration::from_millis(500);
    let mut all: Vec<(Client, &str)> = clients.iter().map(|c| (c.clone(), "commands")).collect();
    all.push((sub.to_client(), "subscriber"));
    for (c, what) in &all {
        match tokio::time::timeout(limit, c.init()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("cannot connect to {where_} ({what}): {e}")),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {where_} ({what}): no answer within {} ms",
                    limit.as_millis()
                ));
            }
        }
    }
    Ok((clients, sub))
}

/// Refuses servers below Redis 7 and a `redis://` URL aimed at a cluster
/// node; returns the server version.
async fn check_server(client: &Client, where_: &str) -> Result<String, String> {
    let info: String = client
        .info(Some(InfoKind::Server))
        .await
        .map_err(|e| format!("{where_}: INFO failed: {e}"))?;
    let version = check_version(&info)?;
    if !client.is_clustered() {
        let cluster_info: String = client
            .info(Some(InfoKind::Cluster))
            .await
            .map_err(|e| format!("{where_}: INFO failed: {e}"))?;
        check_not_cluster(&cluster_info)?;
    }
    Ok(version)
}

/// SCRIPT LOAD of create, commit and delete (on every primary of a cluster).
async fn load_scripts(client: &Client, where_: &str) -> Result<[Script; 3], String> {
    let scripts = [
        Script::from_lua(CREATE_LUA),
        Script::from_lua(COMMIT_LUA),
        Script::from_lua(DELETE_LUA),
    ];
    for s in &scripts {
        s.load(client)
            .await
            .map_err(|e| format!("{where_}: SCRIPT LOAD failed: {e}"))?;
    }
    Ok(scripts)
}

/// The engine's own metrics, registered in the service's registry.
fn engine_metrics(metrics: &Metrics) -> Result<(PubSubMetrics, IntCounterVec, Histogram), String> {
    let e = |e: prometheus::Error| e.to_string();
    let pm = PubSubMetrics {
        resyncs: IntCounter::new(
            "synckairos_redis_resyncs_total",
            "Full pub/sub resubscribe + client resync passes (after reconnects, failovers)",
        )
        .map_err(e)?,
        received: IntCounter::new(
            "synckairos_redis_updates_received_total",
            "Session updates received over sharded pub/sub",
        )
        .map_err(e)?,
        subscribed: IntGauge::new(
            "synckairos_redis_subscribed_sessions",
            "Sessions whose update channel this instance subscribes to",
        )
        .map_err(e)?,
    };
    let errors = IntCounterVec::new(
        Opts::new(
            "synckairos_redis_errors_total",
            "Engine operations that failed on Redis (timeout, connection, cluster errors)",
        ),
        &["op"],
    )
    .map_err(e)?;
    let batch_sizes = Histogram::with_opts(
        HistogramOpts::new(
            "synckairos_redis_commit_batch_size",
            "Commits sent together in one commit script call (sum / count = mean batch)",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
    )
    .map_err(e)?;
    register(metrics, &errors);
    register(metrics, &batch_sizes);
    register(metrics, &pm.resyncs);
    register(metrics, &pm.received);
    register(metrics, &pm.subscribed);
    Ok((pm, errors, batch_sizes))
}

/// Every event after which pub/sub messages may have been lost.
fn gap_signals(sub: &SubscriberClient, clients: &[Client]) -> Vec<GapSignal> {
    let mut events = vec![GapSignal::Reconnect(
        sub.reconnect_rx(),
        "subscriber reconnected",
    )];
    for c in clients {
        events.push(GapSignal::Reconnect(
            c.reconnect_rx(),
            "command connection reconnected",
        ));
    }
    if sub.is_clustered() {
        events.push(GapSignal::ClusterChange(
            sub.cluster_change_rx(),
            "cluster topology changed",
        ));
        for c in clients {
            events.push(GapSignal::ClusterChange(
                c.cluster_change_rx(),
                "cluster topology changed",
            ));
        }
    }
    events
}
