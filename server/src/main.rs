//! The `synckairos` binary: configuration, logging, engine selection,
//! serving, graceful shutdown.

use clap::Parser;

/// mimalloc: the request path is allocation-heavy (JSON in and out), and
/// glibc malloc showed up at the top of the switch profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use synckairos::api::demo_sessions::{DemoLimits, DemoMinter, DemoSessions};
use synckairos::api::ws::WsLimits;
use synckairos::api::{self, AppInner, AppState};
use synckairos::audit::{self, Audit, AuditConfig};
use synckairos::auth::{self as authn, Auth};
use synckairos::config::{Cli, Command, DemoMode, GenTokenConfig, LogFormat, ServeConfig};
use synckairos::engine::Engine;
use synckairos::engine::memory::MemoryEngine;
use synckairos::engine::redis::RedisConfig;
use synckairos::limits::RateLimits;
use synckairos::listener::{self, ListenConfig};
use synckairos::metrics::Metrics;
use synckairos::service::{Service, ServiceConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("synckairos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(cfg) => serve(cfg).await,
            Command::CheckConfig(cfg) => check_config(cfg),
            Command::Migrate(cfg) => migrate(&cfg.database_url).await,
            Command::Openapi => print_openapi(),
            Command::GenToken(cfg) => gen_token(cfg),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synckairos: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Validates the configuration, builds the credentials and applies the
/// exposure rule: everything `serve` and `check-config` refuse alike.
fn checked_auth(cfg: &ServeConfig) -> Result<Auth, String> {
    cfg.validate()?;
    let auth = authn::setup::build(&cfg.auth)?;
    authn::setup::check_exposure(cfg.auth.auth, &auth, cfg.bind)?;
    Ok(auth)
}

fn check_config(cfg: ServeConfig) -> Result<(), String> {
    let auth = Arc::new(checked_auth(&cfg)?);
    demo_sessions(&cfg, &auth)?;
    let engine = if cfg.redis_url.is_some() {
        "redis (standalone)"
    } else if !cfg.redis_cluster_nodes.is_empty() {
        "redis (cluster)"
    } else {
        "memory"
    };
    println!("configuration ok");
    println!("listen: {}:{}", cfg.bind, cfg.port);
    match cfg.admin_port {
        Some(p) => println!(
            "admin listener: {}:{p} (/metrics, /ready, /health)",
            cfg.bind
        ),
        None => println!("admin listener: off (/metrics, /ready on the main port)"),
    }
    for line in auth.describe() {
        println!("{line}");
    }
    println!("engine: {engine}");
    println!(
        "audit: {}",
        if cfg.database_url.is_some() {
            "postgresql"
        } else {
            "off"
        }
    );
    println!(
        "session ttl: {} s, sweep every {} ms",
        cfg.session_ttl_seconds, cfg.sweep_interval_ms
    );
    let off = |n: u32| {
        if n == 0 {
            "off".to_string()
        } else {
            format!("{n}/s")
        }
    };
    println!(
        "limits: {} per address (client address from {}), {} per session, {} WebSocket messages per connection",
        off(cfg.rate_limit_per_address),
        cfg.trusted_proxy_header
            .as_deref()
            .map_or("the peer".to_string(), |h| format!(
                "{h}, {} hop(s)",
                cfg.trusted_proxy_hops
            )),
        off(cfg.rate_limit_per_session),
        off(cfg.ws_messages_per_second)
    );
    println!(
        "caps: {} HTTP connections, {} WebSockets, {} live sessions (memory engine); header timeout {} s, request deadline {} ms",
        cfg.max_connections,
        cfg.max_ws_connections,
        cfg.max_live_sessions,
        cfg.http_header_timeout_seconds,
        cfg.http_request_timeout_ms
    );
    println!("demo sessions: {}", demo_summary(&cfg));
    Ok(())
}

/// `check-config`'s line about `DEMO`.
fn demo_summary(cfg: &ServeConfig) -> String {
    match cfg.demo {
        DemoMode::Off => "off".into(),
        DemoMode::On => format!(
            "on ({} per client address per minute, at most {} live)",
            cfg.demo_sessions_per_minute, cfg.demo_max_sessions
        ),
    }
}

/// The demo endpoint's state from `DEMO` and the credentials: with auth on
/// it mints with the server's token secret, and refuses to start without one.
fn demo_sessions(cfg: &ServeConfig, auth: &Arc<Auth>) -> Result<DemoSessions, String> {
    let auth_on = auth.enabled();
    let minter = auth
        .minter()
        .is_some()
        .then(|| auth.clone() as Arc<dyn DemoMinter>);
    match cfg.demo {
        DemoMode::Off => Ok(DemoSessions::off(auth_on)),
        DemoMode::On => DemoSessions::on(
            auth_on,
            minter,
            DemoLimits {
                per_minute: cfg.demo_sessions_per_minute,
                max_live: usize::try_from(cfg.demo_max_sessions).unwrap_or(usize::MAX),
            },
        ),
    }
}

/// Prints one HS256 session token (stdout: the token alone, so
/// `TOKEN=$(synckairos gen-token ...)` works; stderr: its expiry).
fn gen_token(cfg: GenTokenConfig) -> Result<(), String> {
    let minter = authn::setup::minter(&cfg.token)?;
    let role = authn::token::Role::parse(&cfg.role)
        .ok_or("--role must be viewer, participant or controller")?;
    let minted = minter
        .mint(
            cfg.session_id,
            role,
            cfg.participant_id,
            cfg.ttl_seconds,
            authn::now_seconds(),
        )
        .map_err(|e| format!("--{}: {}", e.field.replace('_', "-"), e.message))?;
    println!("{}", minted.token);
    eprintln!(
        "expires at {}",
        synckairos::domain::time::iso_millis(minted.exp as i64 * 1000)
    );
    Ok(())
}

/// The document `GET /openapi.json` serves, pretty-printed for diffs.
fn print_openapi() -> Result<(), String> {
    use utoipa::OpenApi;
    let doc = api::ApiDoc::openapi()
        .to_pretty_json()
        .map_err(|e| format!("cannot render the OpenAPI document: {e}"))?;
    println!("{doc}");
    Ok(())
}

async fn migrate(database_url: &str) -> Result<(), String> {
    synckairos::audit::migrate(database_url)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    println!("migrations applied");
    Ok(())
}

/// The state engine and, with `DATABASE_URL`, the audit consumer that
/// feeds PostgreSQL from it.
async fn build_engine(
    cfg: &ServeConfig,
    metrics: &Metrics,
) -> Result<(Arc<dyn Engine>, Option<Audit>), String> {
    let audit_cfg = cfg.database_url.clone().map(AuditConfig::new);
    let audit_err = |e: synckairos::audit::AuditError| format!("audit store: {e}");
    if cfg.redis_url.is_some() || !cfg.redis_cluster_nodes.is_empty() {
        let rc = RedisConfig {
            url: cfg.redis_url.clone(),
            cluster_nodes: cfg.redis_cluster_nodes.clone(),
            cluster_password: cfg.redis_password.clone(),
            connect_timeout: Duration::from_millis(cfg.redis_connect_timeout_ms),
            command_timeout: Duration::from_millis(cfg.redis_command_timeout_ms),
            audit: audit_cfg.is_some(),
            outbox_max_len: cfg.outbox_max_len,
            connections: cfg.redis_connections as usize,
            cache_sessions: cfg.redis_cache_sessions as usize,
            ..RedisConfig::default()
        };
        let engine = synckairos::engine::redis::connect(rc, metrics).await?;
        let audit = match audit_cfg {
            Some(ac) => Some(
                audit::start_for_outbox(ac, engine.outbox(), &metrics.registry)
                    .map_err(audit_err)?,
            ),
            None => None,
        };
        return Ok((engine, audit));
    }
    match audit_cfg {
        Some(ac) => {
            let (tx, audit) = audit::start_for_memory(ac, &metrics.registry).map_err(audit_err)?;
            let engine = MemoryEngine::new(Some(tx))
                .with_dropped_metric(audit.metrics.dropped.clone())
                .with_max_sessions(cfg.max_live_sessions as usize);
            Ok((Arc::new(engine), Some(audit)))
        }
        None => Ok((
            Arc::new(MemoryEngine::new(None).with_max_sessions(cfg.max_live_sessions as usize)),
            None,
        )),
    }
}

/// Installs the SIGTERM/ctrl-c handlers now and returns a future that resolves
/// on the first of them. Installing before the `listening on` line matters:
/// an orchestrator may send SIGTERM the moment it sees the process ready, and
/// an uninstalled handler means the default action (exit 143, no drain).
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = wait(term) => {}, _ = wait(int) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn serve(cfg: ServeConfig) -> Result<(), String> {
    let auth = Arc::new(checked_auth(&cfg)?);
    let demo = demo_sessions(&cfg, &auth)?;
    init_logs(cfg.log_format);
    let metrics = Arc::new(Metrics::new());
    let (engine, audit) = build_engine(&cfg, &metrics).await?;
    let service = Service::new(
        engine,
        metrics.clone(),
        ServiceConfig {
            session_ttl_ms: cfg.session_ttl_seconds as i64 * 1000,
            sweep_interval: Duration::from_millis(cfg.sweep_interval_ms),
            ..ServiceConfig::default()
        },
    );
    let shutdown = CancellationToken::new();
    service.spawn_sweeper(shutdown.clone());
    let tasks = TaskTracker::new();
    let (max_connections, max_ws) = listener::fit_caps(
        cfg.max_connections,
        cfg.max_ws_connections,
        listener::descriptor_limit(),
    );
    if (max_connections, max_ws) != (cfg.max_connections, cfg.max_ws_connections) {
        tracing::warn!(
            max_connections,
            max_ws_connections = max_ws,
            "connection caps lowered to fit the descriptor limit"
        );
    }
    let rate_limits = RateLimits::new(cfg.rate_limits());
    rate_limits.spawn_cleanup(Duration::from_secs(10), shutdown.clone());
    let app = AppState::new(AppInner {
        service,
        metrics,
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
        history: audit
            .as_ref()
            .map(|a| a.history.clone() as Arc<dyn audit::History>),
        ws_ping_interval: Duration::from_secs(cfg.ws_ping_interval_seconds),
        ws_limits: WsLimits::new(
            max_ws as usize,
            Duration::from_millis(cfg.ws_send_timeout_ms),
            cfg.ws_messages_per_second,
        ),
        rate_limits,
        request_timeout: Duration::from_millis(cfg.http_request_timeout_ms),
        demo,
        auth: auth.clone(),
    });
    let addr = SocketAddr::new(cfg.bind, cfg.port);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = tcp
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let admin = match cfg.admin_port {
        Some(port) => {
            let addr = SocketAddr::new(cfg.bind, port);
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (ADMIN_PORT): {e}"))?;
            Some(l)
        }
        None => None,
    };
    let signalled = shutdown_signal();
    println!("listening on http://{local}");
    tracing::info!(%local, auth = auth.enabled(), "synckairos serving");
    if let Some(l) = admin {
        let admin_local = l
            .local_addr()
            .map_err(|e| format!("cannot read the admin listening address: {e}"))?;
        println!("admin listening on http://{admin_local}");
        let router = api::admin_router(app.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(l, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    let router = api::main_router(app, cfg.admin_port.is_none());
    let stop = shutdown.clone();
    // One deadline for the whole shutdown: HTTP drain, WebSocket closes and
    // the audit flush share SHUTDOWN_GRACE_SECONDS, whatever clients do.
    let grace = Duration::from_secs(cfg.shutdown_grace_seconds);
    let deadline = Arc::new(std::sync::OnceLock::new());
    let started = Arc::clone(&deadline);
    listener::serve(
        tcp,
        router,
        ListenConfig {
            header_timeout: Duration::from_secs(cfg.http_header_timeout_seconds),
            max_connections: max_connections as usize,
            grace,
        },
        async move {
            signalled.await;
            let _ = started.set(tokio::time::Instant::now() + grace);
            tracing::info!("shutdown requested: closing WebSockets and draining requests");
            stop.cancel();
        },
    )
    .await;
    let deadline = deadline
        .get()
        .copied()
        .unwrap_or_else(|| tokio::time::Instant::now() + grace);
    tasks.close();
    if tokio::time::timeout_at(deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some WebSocket connections did not close within the grace period");
    }
    if let Some(a) = &audit {
        let left = a
            .handle
            .shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
        if left > 0 {
            tracing::warn!(
                unwritten = left,
                "audit consumer stopped with events not yet written"
            );
        }
    }
    tracing::info!("bye");
    Ok(())
}
