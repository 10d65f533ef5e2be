//! The Redis engine: Redis (standalone or Redis Cluster, ≥ 7) is the single
//! source of truth; instances hold nothing another instance cannot redo.
//!
//! - [`keys`]: the key layout. Every key one commit touches shares the
//!   session's *bucket* hash tag, so each script runs on one cluster slot.
//! - `create.lua`, `commit.lua`, `delete.lua`: the atomic steps, loaded
//!   once and called by SHA (reloaded on `NOSCRIPT`, e.g. after a restart or
//!   failover). Commit compares the version, writes state with its TTL,
//!   moves the deadline index entry, appends to the outbox, and SPUBLISHes
//!   the update — all or nothing.
//! - `batch`: concurrent commits share one call of `commit.lua` (one round
//!   trip, one write per side), so throughput grows with load.
//! - [`pubsub`]: per-session sharded pub/sub while local WebSocket clients
//!   listen, with resubscribe + resync after reconnects and failovers.
//! - Two watchdogs feed that resync where fred stays silent: a cluster
//!   slot-owner check (`CLUSTER SLOTS`, a manual failover moves slots
//!   without any reconnect) and a subscriber heartbeat (a connection that
//!   died without a reset).
//!
//! Every command carries the configured command timeout, so an unreachable
//! Redis turns into [`EngineError::Unavailable`] quickly instead of a hang.
//! The sweep (`due`) scans the 256 deadline indexes concurrently and skips
//! buckets whose slot fails, so one bad slot does not stop the others.

mod batch;
pub mod cache;
pub mod keys;
pub mod pubsub;

use super::{AuditEvent, Commit, DueTimer, Engine, EngineError, Hub, Update};
use crate::clock::now_ms;
use crate::domain::{Millis, Session};
use crate::metrics::Metrics;
use async_trait::async_trait;
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::InfoKind;
use fred::types::config::ClusterDiscoveryPolicy;
use fred::types::scripts::Script;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
use pubsub::{GapSignal, PubSub, PubSubMetrics};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

const CREATE_LUA: &str = include_str!("create.lua");
const COMMIT_LUA: &str = include_str!("commit.lua");
const DELETE_LUA: &str = include_str!("delete.lua");

/// How to reach Redis and how patient to be with it (wired from
/// `REDIS_URL` / `REDIS_CLUSTER_NODES` and the timeout flags).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Standalone server: `redis://[user:pass@]host:port[/db]` or `rediss://`.
    pub url: Option<String>,
    /// Redis Cluster seed nodes `host:port` (any subset of the cluster).
    pub cluster_nodes: Vec<String>,
    /// Password for the cluster nodes (a URL carries its own).
    pub cluster_password: Option<String>,
    /// Limit for establishing a connection (TCP + TLS + handshake).
    pub connect_timeout: Duration,
    /// Limit for every command; past it the request fails with 503.
    pub command_timeout: Duration,
    /// First reconnect delay; doubles up to `reconnect_max_delay`.
    pub reconnect_min_delay: Duration,
    /// Largest reconnect delay.
    pub reconnect_max_delay: Duration,
    /// Whether commits carry audit rows into the outbox streams.
    pub audit: bool,
    /// Approximate per-bucket cap of each outbox stream (`XADD MAXLEN ~`):
    /// bounds memory while no audit consumer trims it.
    pub outbox_max_len: u64,
    /// Command connections (per node), used round-robin: one multiplexed
    /// connection leaves the server waiting on round trips under load. Also
    /// how many commit batches may be outstanding at once.
    pub connections: usize,
    /// Cluster only: how often the slot owners are compared with the last
    /// look. A slot that moved without a reconnect (manual failover,
    /// resharding) silently ends its shard-channel subscriptions; a change
    /// triggers the resubscribe + resync.
    pub topology_check_interval: Duration,
    /// Sessions whose last seen state is kept to skip the read before a
    /// change (see [`cache`]); 0 disables it.
    pub cache_sessions: usize,
    /// How often the subscriber connection(s) are PINGed. A connection that
    /// died without a reset (a vanished node) would otherwise leave
    /// subscriptions silent forever; a PING that fails forces a reconnect,
    /// and the reconnect a resubscribe + resync.
    pub subscriber_heartbeat: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            cluster_nodes: Vec::new(),
            cluster_password: None,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            reconnect_min_delay: Duration::from_millis(50),
            reconnect_max_delay: Duration::from_secs(1),
            audit: false,
            outbox_max_len: 1000,
            connections: 2,
            topology_check_interval: Duration::from_secs(1),
            subscriber_heartbeat: Duration::from_secs(5),
            cache_sessions: 100_000,
        }
    }
}

impl RedisConfig {
    /// The fred configuration: standalone from the URL, or cluster from the
    /// seeds (a `redis://` URL would silently give a non-cluster client).
    fn fred_config(&self) -> Result<Config, String> {
        if let Some(url) = &self.url {
            if !self.cluster_nodes.is_empty() {
                return Err("set either REDIS_URL or REDIS_CLUSTER_NODES, not both".into());
            }
            return Config::from_url_centralized(url)
                .map_err(|e| format!("REDIS_URL is not a valid Redis URL: {}", e.details()));
        }
        if self.cluster_nodes.is_empty() {
            return Err("the Redis engine needs REDIS_URL or REDIS_CLUSTER_NODES".into());
        }
        let mut hosts = Vec::new();
        for n in &self.cluster_nodes {
            let (h, p) = n
                .trim()
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| format!("REDIS_CLUSTER_NODES entry {n:?} is not host:port"))?;
            hosts.push(Server::new(h, p));
        }
        Ok(Config {
            server: ServerConfig::Clustered {
                hosts,
                // Seeds and the last known topology: survives a seed dying.
                policy: ClusterDiscoveryPolicy::UseCache,
            },
            password: self.cluster_password.clone(),
            ..Config::default()
        })
    }

    fn builder(&self, broadcast_capacity: usize) -> Result<Builder, String> {
        let mut config = self.fred_config()?;
        config.fail_fast = true;
        let mut b = Builder::from_config(config);
        b.with_connection_config(|c| {
            c.connection_timeout = self.connect_timeout;
            c.internal_command_timeout = self.connect_timeout;
            // A commit whose reply was lost must not be replayed: the retry
            // would meet its own new version and the service would apply
            // the command twice. Fail it (503) instead.
            c.max_command_attempts = 1;
            c.tcp.nodelay = Some(true);
            // A command unanswered this long means the connection is dead
            // (e.g. a node vanished without a TCP reset): reconnect rather
            // than time out every command until the kernel gives up.
            c.unresponsive.max_timeout =
                Some((self.command_timeout * 3).max(Duration::from_secs(2)));
            c.unresponsive.interval = (self.command_timeout / 2).max(Duration::from_millis(100));
        })
        .with_performance_config(|p| {
            p.default_command_timeout = self.command_timeout;
            p.broadcast_channel_capacity = broadcast_capacity;
        })
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            self.reconnect_min_delay.as_millis().max(1) as u32,
            self.reconnect_max_delay.as_millis().max(1) as u32,
            2,
        ));
        Ok(b)
    }
}

/// Sessions in Redis; see the module doc.
pub struct RedisEngine {
    clients: Vec<Client>,
    next: AtomicUsize,
    hub: Hub,
    pubsub: Arc<PubSub>,
    create: Script,
    commits: batch::Batcher,
    delete: Script,
    audit: bool,
    outbox_max_len: String,
    errors: IntCounterVec,
    cache: cache::SessionCache,
}

fn unavailable(e: Error) -> EngineError {
    EngineError::Unavailable(e.to_string())
}

fn corrupt(id: &Uuid, what: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(format!("session {id}: {what}"))
}

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
    let (clients, sub) = open_clients(&cfg, &where_).await?;
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
        outbox_max_len: cfg.outbox_max_len.max(1).to_string(),
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
    for _ in 0..cfg.connections.max(1) {
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
/// they change (see [`RedisConfig::topology_check_interval`]). Ends with
/// the engine.
fn spawn_topology_watch(client: Client, pubsub: std::sync::Weak<PubSub>, every: Duration) {
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
/// [`RedisConfig::subscriber_heartbeat`]). Ends with the engine.
fn spawn_subscriber_heartbeat(
    sub: SubscriberClient,
    pubsub: std::sync::Weak<PubSub>,
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

async fn read_state(client: &Client, id: Uuid) -> Result<Option<Session>, EngineError> {
    let raw: Option<Bytes> = client
        .get(keys::state_key(&id))
        .await
        .map_err(unavailable)?;
    raw.map(|raw| parse_state(id, &raw)).transpose()
}

/// A stored value as a session, its incarnation taken from the prefix.
fn parse_state(id: Uuid, raw: &[u8]) -> Result<Session, EngineError> {
    let stored = keys::decode_state(raw).ok_or_else(|| corrupt(&id, "bad stored value"))?;
    let mut s: Session = serde_json::from_slice(stored.json).map_err(|e| corrupt(&id, e))?;
    if s.version != stored.version {
        return Err(corrupt(&id, "version prefix disagrees with the state"));
    }
    s.incarnation = stored.incarnation;
    Ok(s)
}

fn ttl_ms(expire_at_ms: Millis) -> String {
    (expire_at_ms - now_ms()).max(1).to_string()
}

fn encode_audit(audit: Option<&AuditEvent>) -> Result<String, EngineError> {
    match audit {
        Some(a) => serde_json::to_string(a).map_err(|e| EngineError::Corrupt(e.to_string())),
        None => Ok(String::new()),
    }
}

fn encode_update(update: Option<&Update>) -> Value {
    match update {
        Some(u) => Value::Bytes(u.encode()),
        None => Value::from(""),
    }
}

impl RedisEngine {
    /// A command client (round-robin over the connections).
    pub fn client(&self) -> &Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.clients[i % self.clients.len()]
    }

    /// Forces a pub/sub resubscribe + resync of every local subscriber.
    pub fn request_resync(&self) {
        self.pubsub.request_resync("requested");
    }

    fn stored(session: &Session) -> Result<Value, EngineError> {
        let json = serde_json::to_vec(session).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        Ok(Value::Bytes(Bytes::from(keys::encode_state(
            session.version,
            session.incarnation,
            &json,
        ))))
    }

    fn commit_keys(id: &Uuid) -> [String; 3] {
        let b = keys::bucket(id);
        [
            keys::state_key(id),
            keys::deadlines_key(b),
            keys::outbox_key(b),
        ]
    }

    async fn run<R: FromValue>(
        &self,
        op: &'static str,
        script: &Script,
        id: &Uuid,
        args: Vec<Value>,
    ) -> Result<R, EngineError> {
        let r = script
            .evalsha_with_reload(self.client(), Vec::from(Self::commit_keys(id)), args)
            .await
            .map_err(unavailable);
        self.counted(op, r)
    }

    /// Caches the stored value a refused commit returned; an unreadable one
    /// is dropped so the retry reads (and reports) it properly.
    fn keep_reply(&self, id: Uuid, raw: &[u8]) {
        match parse_state(id, raw) {
            Ok(s) => self.cache.put(Arc::new(s)),
            Err(_) => self.cache.remove(&id),
        }
    }

    /// Counts store failures by operation (a metric), passing `r` through.
    fn counted<T>(&self, op: &'static str, r: Result<T, EngineError>) -> Result<T, EngineError> {
        if matches!(r, Err(EngineError::Unavailable(_))) {
            self.errors.with_label_values(&[op]).inc();
        }
        r
    }

    /// Turns one bucket's due index entries into timers, reaping entries
    /// long past due whose session is gone.
    async fn collect_due(
        &self,
        bucket: u32,
        entries: Vec<(String, f64)>,
        now: Millis,
        out: &mut Vec<DueTimer>,
    ) {
        let mut stale = Vec::new();
        for (m, score) in entries {
            let Some((session_id, version)) = keys::parse_member(&m) else {
                continue;
            };
            let deadline_ms = score as Millis;
            if deadline_ms < now - STALE_AFTER_MS {
                stale.push((session_id, version, m));
            }
            out.push(DueTimer {
                session_id,
                version,
                deadline_ms,
            });
        }
        if !stale.is_empty() {
            self.reap(bucket, stale).await;
        }
    }

    /// Removes deadline entries whose session is gone or moved on (its state
    /// expired or was replaced while an entry survived); only entries well
    /// past due are checked, so live timers are never touched.
    async fn reap(&self, bucket: u32, stale: Vec<(Uuid, u64, String)>) {
        for (id, version, m) in stale {
            let head: Result<Option<Bytes>, _> = self
                .client()
                .getrange(keys::state_key(&id), 0, keys::HEAD_BYTES - 1)
                .await;
            let current = match head {
                Ok(h) => h.as_deref().and_then(keys::decode_state).map(|s| s.version),
                Err(_) => return,
            };
            if current != Some(version) {
                let _: Result<i64, _> = self.client().zrem(keys::deadlines_key(bucket), m).await;
            }
        }
    }
}

/// Entries this far past due get checked for staleness by `due`.
const STALE_AFTER_MS: Millis = 30_000;

#[async_trait]
impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn load(&self, id: Uuid) -> Result<Option<Session>, EngineError> {
        self.pubsub.wait_ready(id).await;
        let r = read_state(self.client(), id).await;
        match &r {
            Ok(Some(s)) => {
                self.pubsub.note_exists(id);
                self.cache.put(Arc::new(s.clone()));
            }
            Ok(None) => self.cache.remove(&id),
            Err(_) => {}
        }
        self.counted("load", r)
    }

    fn cached(&self, id: Uuid) -> Option<Arc<Session>> {
        self.cache.get(&id)
    }

    async fn create(&self, c: Commit<'_>) -> Result<(), EngineError> {
        let id = c.session.session_id;
        let args = vec![
            Self::stored(c.session)?,
            Value::from(ttl_ms(c.expire_at_ms)),
            Value::from(keys::member(&id, c.session.version)),
            Value::from(c.deadline_ms.map(|d| d.to_string()).unwrap_or_default()),
            Value::from(encode_audit(c.audit.as_ref())?),
            Value::from(self.outbox_max_len.as_str()),
            Value::from(keys::channel(&id)),
            encode_update(c.update.as_ref()),
        ];
        match self.run::<i64>("create", &self.create, &id, args).await? {
            1 => {
                self.cache.put(Arc::new(c.session.clone()));
                Ok(())
            }
            0 => Err(EngineError::Exists),
            n => Err(EngineError::Unavailable(format!(
                "create script returned {n}"
            ))),
        }
    }

    async fn commit(&self, c: Commit<'_>) -> Result<(), EngineError> {
        let id = c.session.session_id;
        let Some(expected) = c.session.version.checked_sub(1) else {
            return Err(EngineError::VersionMismatch);
        };
        let args = vec![
            Value::from(keys::cas_token(expected, c.session.incarnation)),
            Self::stored(c.session)?,
            Value::from(ttl_ms(c.expire_at_ms)),
            Value::from(keys::member(&id, expected)),
            Value::from(keys::member(&id, c.session.version)),
            Value::from(c.deadline_ms.map(|d| d.to_string()).unwrap_or_default()),
            Value::from(encode_audit(c.audit.as_ref())?),
            Value::from(self.outbox_max_len.as_str()),
            Value::from(keys::channel(&id)),
            encode_update(c.update.as_ref()),
        ];
        let reply = self
            .commits
            .commit(keys::bucket(&id), Self::commit_keys(&id), args)
            .await
            .map_err(unavailable);
        match self.counted("commit", reply)? {
            Value::Integer(1) => {
                self.cache.put(Arc::new(c.session.clone()));
                Ok(())
            }
            Value::Integer(-1) => {
                self.cache.remove(&id);
                Err(EngineError::NotFound)
            }
            // Another change got there first: the reply is the stored value,
            // kept so the retry starts from it without a read.
            other => match other.as_bytes() {
                Some(raw) => {
                    self.keep_reply(id, raw);
                    Err(EngineError::VersionMismatch)
                }
                None => Err(EngineError::Unavailable(format!(
                    "commit script returned {other:?}"
                ))),
            },
        }
    }

    async fn delete(
        &self,
        id: Uuid,
        update: Update,
        audit: Option<AuditEvent>,
    ) -> Result<bool, EngineError> {
        let args = vec![
            Value::from(id.to_string()),
            Value::from(encode_audit(audit.as_ref())?),
            Value::from(self.outbox_max_len.as_str()),
            Value::from(keys::channel(&id)),
            encode_update(Some(&update)),
        ];
        let r = self.run::<i64>("delete", &self.delete, &id, args).await;
        self.cache.remove(&id);
        Ok(r? == 1)
    }

    async fn due(&self, now: Millis, limit: usize) -> Result<Vec<DueTimer>, EngineError> {
        let lim = limit.min(i64::MAX as usize) as i64;
        let scan = |b: u32| async move {
            let r: Result<Vec<(String, f64)>, Error> = self
                .client()
                .zrangebyscore(keys::deadlines_key(b), 0i64, now, true, Some((0, lim)))
                .await;
            (b, r)
        };
        let mut out = Vec::new();
        let mut retry = Vec::new();
        for (b, r) in futures::future::join_all((0..keys::BUCKETS).map(scan)).await {
            match r {
                Ok(entries) => self.collect_due(b, entries, now, &mut out).await,
                Err(_) => retry.push(b),
            }
        }
        // A bucket that fails must not stop the sweep of the others (one
        // slot down in a cluster). Its error may also have made the client
        // reset the connection under concurrent scans, so the failed ones
        // are retried one at a time; what still fails waits for next sweep.
        let (mut failed, mut first_error) = (0u32, None);
        for b in retry {
            match scan(b).await {
                (_, Ok(entries)) => self.collect_due(b, entries, now, &mut out).await,
                (_, Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            if failed == keys::BUCKETS {
                return self.counted("due", Err(unavailable(e)));
            }
            tracing::warn!(buckets = failed, error = %e, "sweep skipped unreachable buckets");
        }
        out.sort_by_key(|d| d.deadline_ms);
        out.truncate(limit);
        Ok(out)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        let r: Result<String, _> = self.client().ping(None).await.map_err(unavailable);
        self.counted("ping", r).map(|_| ())
    }

    async fn live_sessions(&self) -> Option<u64> {
        // Counting keys by pattern is not cheap on Redis; not reported.
        None
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }

    fn wants_frames(&self, _id: Uuid) -> bool {
        // Other instances may have subscribers: always publish.
        true
    }

    fn audit_enabled(&self) -> bool {
        self.audit
    }
}

#[cfg(test)]
mod tests;
