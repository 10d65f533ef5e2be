//! Configuration by flags and environment. Every value is checked before
//! startup, so a bad one stops the process with one clear line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

/// The `synckairos` command line.
#[derive(Debug, Parser)]
#[command(
    name = "synckairos",
    version = crate::BUILD_VERSION,
    about = "Real-time timer synchronization service"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP + WebSocket service.
    Serve(ServeConfig),
    /// Apply the audit database migrations (idempotent, safe concurrently).
    Migrate(MigrateConfig),
    /// Validate the serve configuration and print what it resolves to.
    CheckConfig(ServeConfig),
    /// Print the OpenAPI document `GET /openapi.json` serves, without starting
    /// a server: clients (the SDK's `make sdk-types`) generate their types from it.
    Openapi,
    /// Mint a session token (HS256, with TOKEN_SECRET or TOKEN_SECRET_FILE) and
    /// print it: for scripts and for trying a deployment with auth on.
    GenToken(GenTokenConfig),
}

/// A secret from the command line or environment. Its `Debug` is masked,
/// so printing a configuration can never reveal it.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Whether requests need a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// On when any credential is configured, else off (and then only a
    /// loopback address may be bound).
    Auto,
    /// On; startup fails unless a credential is configured.
    On,
    /// Off, explicitly: anyone who reaches the port has full access.
    Off,
}

/// Algorithm of a backend's token public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublicKeyAlgorithm {
    /// ECDSA P-256 / SHA-256.
    Es256,
    /// Ed25519.
    Eddsa,
}

/// How session tokens are signed: shared by `serve` (verify, mint) and
/// `gen-token` (mint).
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// HS256 secret of session tokens (at least 32 bytes): the server verifies
    /// and mints tokens with it.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<Secret>,
    /// File holding the HS256 secret (a mounted Secret). Several lines are a
    /// rotation: the first signs, every line verifies.
    #[arg(long, env = "TOKEN_SECRET_FILE")]
    pub token_secret_file: Option<PathBuf>,
    /// Required `iss` of session tokens (written into minted ones).
    #[arg(long, env = "TOKEN_ISSUER")]
    pub token_issuer: Option<String>,
    /// Required `aud` of session tokens (written into minted ones).
    #[arg(long, env = "TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,
    /// Longest session-token lifetime accepted (exp - iat, and exp - now), seconds.
    #[arg(long, env = "TOKEN_MAX_TTL_SECONDS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub token_max_ttl_seconds: u64,
}

/// Credentials of `serve` (API.md "Authentication and authorization").
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// auto: auth is on when a credential is configured. off: open to anyone
    /// (required to bind a non-loopback address without credentials).
    #[arg(long, env = "AUTH", value_enum, default_value_t = AuthMode::Auto)]
    pub auth: AuthMode,
    /// API keys as `name=secret,...`; a secret may be `sha256:<64 hex>`.
    #[arg(long, env = "API_KEYS", hide_env_values = true)]
    pub api_keys: Option<Secret>,
    /// File of API keys, one `name=secret` per line (a mounted Secret).
    #[arg(long, env = "API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Token signing settings.
    #[command(flatten)]
    pub token: TokenArgs,
    /// PEM public key verifying session tokens a backend signs (ES256 or EdDSA).
    #[arg(long, env = "TOKEN_PUBLIC_KEY_FILE")]
    pub token_public_key_file: Option<PathBuf>,
    /// Algorithm of TOKEN_PUBLIC_KEY_FILE (default: read from the key).
    #[arg(long, env = "TOKEN_ALGORITHM", value_enum)]
    pub token_algorithm: Option<PublicKeyAlgorithm>,
    /// Clock skew tolerated on a token's `exp`, seconds.
    #[arg(long, env = "TOKEN_LEEWAY_SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub token_leeway_seconds: u64,
}

/// Settings of `synckairos gen-token`.
#[derive(Debug, Clone, Args)]
pub struct GenTokenConfig {
    /// The session the token is for.
    #[arg(long)]
    pub session_id: uuid::Uuid,
    /// What it may do there.
    #[arg(long, value_parser = ["viewer", "participant", "controller"])]
    pub role: String,
    /// The participant it speaks for (required for `participant`).
    #[arg(long)]
    pub participant_id: Option<String>,
    /// Lifetime in seconds (default 3600, at most TOKEN_MAX_TTL_SECONDS).
    #[arg(long)]
    pub ttl_seconds: Option<u64>,
    /// Signing settings.
    #[command(flatten)]
    pub token: TokenArgs,
}

/// Whether the server hosts demo sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoMode {
    /// `POST /demo/sessions` creates demo clocks and, with auth on, hands
    /// out their session tokens (needs TOKEN_SECRET then).
    On,
    /// The demo page is still served; with auth on it cannot create clocks.
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Settings of `synckairos serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Port of a second listener serving `/metrics`, `/ready` and `/health`
    /// (same address; 0 picks a free one); when set, the main port no longer
    /// serves `/metrics` and `/ready`.
    #[arg(long, env = "ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Credentials.
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Standalone Redis (`redis://` or `rediss://`, password allowed): switches to the Redis engine.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Comma-separated Redis Cluster seed nodes (`host:port,...`): Redis engine in cluster mode.
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,
    /// Password for the Redis Cluster nodes (a REDIS_URL carries its own).
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// Redis connect timeout in milliseconds.
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub redis_connect_timeout_ms: u64,
    /// Redis command timeout in milliseconds.
    #[arg(long, env = "REDIS_COMMAND_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub redis_command_timeout_ms: u64,
    /// Multiplexed command connections to Redis (per node), used round-robin.
    #[arg(long, env = "REDIS_CONNECTIONS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub redis_connections: u64,
    /// Sessions whose last state an instance keeps to skip the read before a change
    /// (a stale copy costs a retry, never a wrong state); 0 turns it off.
    #[arg(long, env = "REDIS_CACHE_SESSIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub redis_cache_sessions: u64,
    /// PostgreSQL URL: turns the audit trail on.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Per-bucket high-water mark of the Redis audit outbox streams (256 buckets): past it
    /// the audit consumer logs, sets `synckairos_audit_outbox_high_water` and a `/ready`
    /// detail. Nothing is trimmed: unwritten events wait in Redis (≈1 KB each).
    #[arg(long, env = "OUTBOX_MAX_LEN", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub outbox_max_len: u64,
    /// Idle sessions expire this many seconds after their last change.
    #[arg(long, env = "SESSION_TTL_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub session_ttl_seconds: u64,
    /// How often each instance sweeps for deadlines another instance lost (ms).
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub sweep_interval_ms: u64,
    /// WebSocket ping interval (seconds); a client that misses a ping is dropped.
    #[arg(long, env = "WS_PING_INTERVAL_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_ping_interval_seconds: u64,
    /// Seconds to wait for in-flight work on SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub shutdown_grace_seconds: u64,
    /// Seconds a client has to send a request's headers; also how long an idle
    /// keep-alive connection stays open (hyper starts the timer when it waits
    /// for the next request). Slowloris clients are cut off after this.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub http_header_timeout_seconds: u64,
    /// Deadline of one HTTP request, body included (ms): past it the answer is
    /// 503 SERVICE_UNAVAILABLE with `Retry-After`, whatever the request waited on.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_request_timeout_ms: u64,
    /// Open HTTP connections at once (WebSockets count separately); more are
    /// closed on accept. Lowered at startup to fit the descriptor limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Open WebSocket connections at once; more get 503 on upgrade.
    #[arg(long, env = "MAX_WS_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_ws_connections: u64,
    /// A WebSocket client that has not taken a message within this many ms is dropped.
    #[arg(long, env = "WS_SEND_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub ws_send_timeout_ms: u64,
    /// Client messages per second one WebSocket may send (burst: twice that); over
    /// it: ERROR `RATE_LIMITED`, and close 1008 if it keeps on. 0 turns it off.
    #[arg(long, env = "WS_MESSAGES_PER_SECOND", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub ws_messages_per_second: u32,
    /// Requests per second one client address may send (burst: twice that); over
    /// it: 429 `RATE_LIMITED` with `Retry-After`. 0 turns it off.
    #[arg(long, env = "RATE_LIMIT_PER_ADDRESS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub rate_limit_per_address: u32,
    /// Commands per second on one session (burst: twice that); over it: 429
    /// `RATE_LIMITED` with `Retry-After`. 0 turns it off.
    #[arg(long, env = "RATE_LIMIT_PER_SESSION", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub rate_limit_per_session: u32,
    /// Header naming the client address, set by a trusted proxy (e.g.
    /// `x-forwarded-for`). Unset (the default): the peer address is the client.
    #[arg(long, env = "TRUSTED_PROXY_HEADER")]
    pub trusted_proxy_header: Option<String>,
    /// Proxies in front of this server that append to TRUSTED_PROXY_HEADER: the
    /// client is the entry this many places from the right.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub trusted_proxy_hops: u64,
    /// Live sessions the memory engine holds at most; creates past it get 429
    /// `QUOTA_EXCEEDED`. 0 turns it off.
    #[arg(long, env = "MAX_LIVE_SESSIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub max_live_sessions: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// on: the demo page can create chess clocks even with auth on (the
    /// server mints their tokens; rate-limited and capped below).
    #[arg(long, env = "DEMO", value_enum, default_value_t = DemoMode::Off)]
    pub demo: DemoMode,
    /// Demo clocks one client address may create per minute (DEMO=on).
    #[arg(long, env = "DEMO_SESSIONS_PER_MINUTE", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub demo_sessions_per_minute: u32,
    /// Demo clocks live at once on this instance (DEMO=on); each holds its
    /// slot until it ends or its tokens expire (2 h).
    #[arg(long, env = "DEMO_MAX_SESSIONS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub demo_max_sessions: u64,
}

impl ServeConfig {
    /// Cross-field checks clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.admin_port.is_some_and(|a| a != 0 && a == self.port) {
            return Err("ADMIN_PORT must differ from PORT".into());
        }
        if self.redis_url.is_some() && !self.redis_cluster_nodes.is_empty() {
            return Err("set either REDIS_URL or REDIS_CLUSTER_NODES, not both".into());
        }
        if let Some(u) = &self.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            return Err(format!(
                "REDIS_URL must start with redis:// or rediss:// (got {u:?})"
            ));
        }
        for n in &self.redis_cluster_nodes {
            let ok = n
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("REDIS_CLUSTER_NODES entry {n:?} is not host:port"));
            }
        }
        if let Some(u) = &self.database_url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return Err("DATABASE_URL must start with postgres:// or postgresql://".into());
        }
        if let Some(h) = &self.trusted_proxy_header
            && axum::http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            return Err(format!("TRUSTED_PROXY_HEADER {h:?} is not a header name"));
        }
        Ok(())
    }

    /// The rate limits as configured.
    pub fn rate_limits(&self) -> crate::limits::RateLimitConfig {
        crate::limits::RateLimitConfig {
            per_address: self.rate_limit_per_address,
            per_session: self.rate_limit_per_session,
            trusted_proxy_header: self
                .trusted_proxy_header
                .as_deref()
                .and_then(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).ok()),
            trusted_proxy_hops: self.trusted_proxy_hops as usize,
        }
    }
}

/// Settings of `synckairos migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateConfig {
    /// PostgreSQL URL of the audit database.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServeConfig, String> {
        let mut v = vec!["synckairos", "serve"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).map_err(|e| e.to_string())?.command {
            Command::Serve(c) => c.validate().map(|_| c),
            _ => Err("not serve".into()),
        }
    }

    #[test]
    fn defaults_are_the_embedded_service() {
        let c = parse(&[]).unwrap();
        assert!(
            c.redis_url.is_none() && c.redis_cluster_nodes.is_empty() && c.database_url.is_none()
        );
    }

    #[test]
    fn rejects_bad_values_naming_them() {
        assert!(parse(&["--port", "x"]).unwrap_err().contains("--port"));
        assert!(
            parse(&["--redis-url", "http://x"])
                .unwrap_err()
                .contains("REDIS_URL")
        );
        assert!(
            parse(&["--redis-cluster-nodes", "a:1,b"])
                .unwrap_err()
                .contains("\"b\"")
        );
        assert!(
            parse(&["--sweep-interval-ms", "0"])
                .unwrap_err()
                .contains("sweep")
        );
    }
}
