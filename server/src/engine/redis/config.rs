//! How to reach Redis and how patient to be with it: [`RedisConfig`] and
//! the fred client configuration built from it.

use fred::prelude::*;
use fred::types::config::ClusterDiscoveryPolicy;
use std::time::Duration;

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
    /// Per-bucket high-water mark of each outbox stream: past it the audit
    /// consumer logs, raises a metric and a `/ready` detail. Nothing is
    /// trimmed: entries leave a stream only once written to PostgreSQL.
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
    /// change (see [`cache`](super::cache)); 0 disables it.
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
    pub(super) fn fred_config(&self) -> Result<Config, String> {
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

    /// A client builder with every limit of this configuration applied.
    pub(super) fn builder(&self, broadcast_capacity: usize) -> Result<Builder, String> {
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
