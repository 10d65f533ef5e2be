//! Which state engine a test server runs on.
//!
//! The suites never look inside a backend: they call
//! [`TestServer::start`](crate::TestServer::start) with whatever backend the
//! [`backend_suite!`](crate::backend_suite) macro handed them. Adding an
//! engine (standalone Redis, Redis Cluster) therefore means: a new variant
//! here, its [`Backend::provision`] arm (start the external processes, return
//! the env vars that point the server at them), and an entry in [`Backend::all`].

use std::any::Any;
use std::sync::Arc;

/// A state engine the server can be started against.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// The embedded memory engine: no environment, no external process.
    Memory,
    /// Standalone Redis (`REDIS_URL`), one server shared by the test binary.
    Redis,
    /// A 6-node Redis Cluster (`REDIS_CLUSTER_NODES`, 3 primaries + 3
    /// replicas), one cluster shared by the test binary.
    Cluster,
    /// The memory engine with the audit trail on (`DATABASE_URL`): one
    /// ephemeral PostgreSQL shared by the test binary, migrated with
    /// `synckairos migrate`. Shows that auditing changes no behaviour.
    MemoryAudit,
}

/// What a provisioned backend hands to the server processes that use it.
///
/// Several servers may share one `Provisioned` (multi-instance tests): clone
/// it, and the external processes live until the last clone is dropped.
#[derive(Clone, Default)]
pub struct Provisioned {
    /// Environment variables for `synckairos serve` (e.g. `REDIS_URL`).
    pub env: Vec<(String, String)>,
    /// Keeps external processes (redis-server, …) alive; dropping the last
    /// clone stops them.
    pub guard: Option<Arc<dyn Any + Send + Sync>>,
}

impl Backend {
    /// Every backend the generic suites run on, in order. Adding an engine
    /// to the suites means adding it here.
    pub fn all() -> Vec<Backend> {
        vec![
            Backend::Memory,
            Backend::Redis,
            Backend::Cluster,
            Backend::MemoryAudit,
        ]
    }

    /// Short name, used in test module names and log output.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Cluster => "cluster",
            Backend::MemoryAudit => "memory_audit",
        }
    }

    /// Starts whatever the engine needs and returns how to reach it.
    pub async fn provision(&self) -> anyhow::Result<Provisioned> {
        match self {
            Backend::Memory => Ok(Provisioned::default()),
            Backend::Redis => {
                let r = crate::redis::shared_server().await?;
                Ok(Provisioned {
                    env: r.env(),
                    guard: Some(r),
                })
            }
            Backend::Cluster => {
                let c = crate::redis::shared_cluster().await?;
                Ok(Provisioned {
                    env: c.env(),
                    guard: Some(c),
                })
            }
            Backend::MemoryAudit => {
                let pg = shared_postgres().await?;
                Ok(Provisioned {
                    env: vec![("DATABASE_URL".to_string(), pg.url())],
                    guard: Some(pg),
                })
            }
        }
    }

    /// Whether servers on this backend have an audit store configured
    /// (`GET /v1/sessions/{id}/events` answers 200 rather than 503).
    pub fn has_audit(&self) -> bool {
        match self {
            Backend::Memory | Backend::Redis | Backend::Cluster => false,
            Backend::MemoryAudit => true,
        }
    }
}

/// The PostgreSQL shared by every `MemoryAudit` server of this test binary.
/// This is the only long-lived strong reference: the exit hook takes it, and
/// dropping it (once the servers' guards are gone) stops the server and
/// removes its data dir.
static SHARED_PG: std::sync::Mutex<Option<Arc<crate::postgres::Postgres>>> =
    std::sync::Mutex::new(None);

extern "C" fn stop_shared_pg() {
    let pg = SHARED_PG.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(pg);
}

async fn shared_postgres() -> anyhow::Result<Arc<crate::postgres::Postgres>> {
    static STARTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    STARTED
        .get_or_try_init(|| async {
            let pg = tokio::task::spawn_blocking(crate::postgres::Postgres::start).await??;
            let pg = Arc::new(pg);
            // SAFETY: registers a plain extern "C" fn with no arguments.
            unsafe {
                libc::atexit(stop_shared_pg);
            }
            *SHARED_PG.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&pg));
            // Through the front door: the binary's own migrate subcommand.
            let out = tokio::process::Command::new(crate::server::server_binary())
                .arg("migrate")
                .env("DATABASE_URL", pg.url())
                .output()
                .await?;
            anyhow::ensure!(
                out.status.success(),
                "synckairos migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok::<_, anyhow::Error>(())
        })
        .await?;
    SHARED_PG
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the shared PostgreSQL is already stopped"))
}
