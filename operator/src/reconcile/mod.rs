//! The reconcile pipeline, one named step per module (the steps of stackable's
//! zookeeper-operator), in the order they run:
//!
//! 1. **validate** ([`crate::validate`], pure): a [`Checked`] value, or a reason the spec
//!    cannot be acted on (reported in status, and nothing is written, until it changes).
//!    Our checks need nothing read from the API, so it runs before dereference.
//! 2. **dereference** ([`dereference`]): resolve what the spec points to — the Secrets with
//!    the Redis and PostgreSQL passwords, generated once when the spec names none.
//! 3. **build** ([`crate::build`], pure): every desired object, walked in apply order by
//!    [`crate::build::Desired::walk`].
//! 4. **apply** ([`apply`]): one walker writes the desired objects with server-side apply
//!    under one field manager, each through its gate ([`crate::verdict::admit`]): the
//!    migration Job of the spec's image and database once PostgreSQL is ready, the server
//!    Deployment only once that Job succeeded — so neither a new image nor another database
//!    reaches the server before its migrations ran there. Then the Redis Cluster is formed
//!    or healed, and what this operator created that the spec no longer wants is deleted
//!    ([`crate::prune`] decides; the managed stores only once no server pod may use them).
//! 5. **status** ([`status`]): the pure verdicts ([`crate::verdict`],
//!    [`crate::status::compute`]) of what was applied, written at every reconcile, also on
//!    failure.
//!
//! Everything carries a controller owner reference, so deleting the `SyncKairosCluster`
//! garbage-collects every object (PVCs of the StatefulSets are kept, as Kubernetes does by
//! default): no finalizer is needed and none is added. Generated Secrets and PVCs are never
//! deleted.

mod apply;
mod dereference;
mod probes;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};

pub use self::probes::{LiveProbes, Probes, http_ok};
use crate::build::{self, FIELD_MANAGER};
use crate::crd::SyncKairosCluster;
use crate::metrics::Metrics;
use crate::status::Part;
use crate::validate::{Checked, validate};
use crate::verdict;

/// A reconcile failure. The category labels metrics and Events; every error requeues with
/// backoff (invalid specs are not errors: they wait for a spec change instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed; displayed as one sentence ([`crate::explain`]).
    #[error("{}", crate::explain::api_failure(.verb, .kind, .name, .source))]
    Kube {
        /// What we tried.
        verb: &'static str,
        /// Object kind.
        kind: String,
        /// Object name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A Secret we depend on lacks a key.
    #[error("{}", crate::explain::missing_key(.0, .1))]
    SecretKey(String, String),
    /// The external Redis Secret is missing or names no Redis.
    #[error("{}", crate::explain::no_redis_address(.secret, *.exists))]
    NoRedisAddress {
        /// `redis.externalSecret`.
        secret: String,
        /// Whether the Secret exists (it then lacks both address keys).
        exists: bool,
    },
}

impl Error {
    /// Static category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "api",
            Error::SecretKey(..) | Error::NoRedisAddress { .. } => "secret",
        }
    }
}

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client (a mock in tests).
    pub client: Client,
    /// Redis and server probes.
    pub probes: Arc<dyn Probes>,
    /// Operator metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Consecutive failures per object, for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Requeue interval while something is still converging.
    pub poll: Duration,
    /// The startup verdict on the API server's version, written as a condition on every
    /// cluster ([`crate::apiserver::check`]; `None` when it could not be read).
    pub api_server: Option<Part>,
}

impl Context {
    /// A context publishing Events as `synckairos-operator` (instance = pod name).
    pub fn new(
        client: Client,
        probes: Arc<dyn Probes>,
        metrics: Metrics,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance,
            },
        );
        Self {
            client,
            probes,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
            poll: Duration::from_secs(10),
            api_server: None,
        }
    }

    fn key(skc: &SyncKairosCluster) -> String {
        format!("{}/{}", skc.namespace().unwrap_or_default(), skc.name_any())
    }
}

/// Maps a client error of one call to [`Error::Kube`], naming the call.
fn kube_err(verb: &'static str, kind: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
    let (kind, name) = (kind.to_string(), name.to_string());
    move |source| Error::Kube {
        verb,
        kind,
        name,
        source,
    }
}

/// Publishes an Event on the cluster; a failure is logged, never fails the reconcile.
async fn publish(
    ctx: &Context,
    skc: &SyncKairosCluster,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &skc.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

/// The pipeline for one object. Errors are returned after status has recorded them.
pub async fn reconcile(skc: Arc<SyncKairosCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.duration.start_timer();
    let result = reconcile_inner(&skc, &ctx).await;
    timer.observe_duration();
    match &result {
        Ok(_) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&Context::key(&skc));
            }
        }
        Err(e) => {
            tracing::warn!(cluster = %Context::key(&skc), error = %e, "reconcile failed");
            status::report_error(&ctx, &skc, e).await;
        }
    }
    result
}

/// Longest delay between retries of a failing reconcile.
pub const MAX_BACKOFF: Duration = Duration::from_secs(256);

/// Requeue with exponential backoff per object: 1 s, doubling to [`MAX_BACKOFF`] (256 s).
pub fn error_policy(skc: Arc<SyncKairosCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconciles.with_label_values(&["error"]).inc();
    ctx.metrics
        .errors
        .with_label_values(&[err.category()])
        .inc();
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(Context::key(&skc)).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    Action::requeue(backoff(n))
}

/// Delay before retry number `n` (1-based): `2^(n-1)` seconds, at most [`MAX_BACKOFF`].
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(8)).min(MAX_BACKOFF)
}

async fn reconcile_inner(skc: &SyncKairosCluster, ctx: &Context) -> Result<Action, Error> {
    if skc.metadata.deletion_timestamp.is_some() {
        // Owner references garbage-collect every object; nothing of ours to clean up.
        return Ok(Action::await_change());
    }
    let c: Checked = match validate(skc) {
        Ok(c) => c,
        Err(invalid) => {
            ctx.metrics.reconciles.with_label_values(&["invalid"]).inc();
            status::report_invalid(ctx, skc, invalid).await?;
            return Ok(Action::await_change());
        }
    };
    let refs = dereference::secrets(ctx, skc, &c).await?;
    let desired = build::desired(&c);
    let applied = apply::desired(ctx, skc, &c, &desired).await?;
    let formation = apply::redis_cluster(ctx, skc, &c, refs.redis_password).await?;
    let mut observed = verdict::observe(&c, &applied, &formation);
    // the stores go only once no server pod may use them
    let settled = verdict::server_settled(&observed.migrations, applied.deployment.as_ref());
    apply::prune(ctx, skc, &c, &desired, settled).await?;
    observed.answers_ready = observed.server.ok
        && ctx
            .probes
            .server_ready(&build::server::admin_endpoint(&c))
            .await;
    let requeue = verdict::requeue(&observed, ctx.poll);
    status::write(ctx, skc, observed).await?;
    ctx.metrics.reconciles.with_label_values(&["ok"]).inc();
    Ok(Action::requeue(requeue))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let d: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(0).as_secs(), 1);
    }
}
