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
        vec![Backend::Memory, Backend::Redis, Backend::Cluster]
    }

    /// Short name, used in test module names and log output.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Cluster => "cluster",
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
        }
    }

    /// Whether servers on this backend have an audit store configured
    /// (`GET /v1/sessions/{id}/events` answers 200 rather than 503).
    pub fn has_audit(&self) -> bool {
        match self {
            Backend::Memory | Backend::Redis | Backend::Cluster => false,
        }
    }
}
