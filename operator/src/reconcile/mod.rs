//! The reconcile pipeline: read → validate → build → apply → compute status.
//!
//! Apply order: generated Secrets, Redis (config, headless Service, StatefulSet, PDB),
//! PostgreSQL (Service, StatefulSet), then — once PostgreSQL is ready — the migration Job of
//! the spec's image and database, the server Service/PDB/HPA/Ingress, and — only once that
//! Job succeeded — the server Deployment. So neither a new image nor another database (same
//! image, PostgreSQL switched to external or to another Secret) reaches the server before
//! its migrations ran there.
//!
//! Everything is applied with server-side apply under one field manager and carries a
//! controller owner reference, so deleting the `SyncKairosCluster` garbage-collects every
//! object (PVCs of the StatefulSets are kept, as Kubernetes does by default): no finalizer
//! is needed and none is added. Status is written at every reconcile, also on failure.
//!
//! After the applies, objects this operator created for the cluster that the spec no longer
//! wants (an Ingress or HPA removed from the spec, managed stores switched to external) are
//! deleted: [`crate::prune`] decides from the desired and the listed objects, this module
//! lists and deletes. Generated Secrets and PVCs are never deleted.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{self, FIELD_MANAGER, REDIS_PORT, names, postgres, redis, server};
use crate::crd::{PostgresMode, RedisClusterStatus, RedisMode, SyncKairosCluster};
use crate::metrics::Metrics;
use crate::prune::{self, Doomed, Kind};
use crate::redis_cluster::{ClusterReport, TcpAdmin, ensure_cluster};
use crate::status::{self, Observed, Part};
use crate::validate::{Checked, validate};

/// A reconcile failure. The category labels metrics and Events; every error requeues with
/// backoff (invalid specs are not errors: they wait for a spec change instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{verb} {kind} {name}: {source}")]
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
    #[error("secret {0} has no key {1}")]
    SecretKey(String, &'static str),
}

impl Error {
    /// Static category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "api",
            Error::SecretKey(..) => "secret",
        }
    }
}

/// What the reconcile needs beyond the API: talking to Redis pods and to the server.
/// A trait so that reconcile tests script both.
#[async_trait]
pub trait Probes: Send + Sync {
    /// Forms or heals the Redis Cluster over `addrs` (pod ordinal order).
    async fn form_redis(
        &self,
        addrs: &[String],
        password: Option<String>,
        shards: usize,
    ) -> Result<ClusterReport, String>;
    /// Whether `GET {endpoint}/ready` answers 200.
    async fn server_ready(&self, endpoint: &str) -> bool;
}

/// The real probes: RESP to Redis pods, HTTP/1.1 to the server Service.
pub struct LiveProbes;

#[async_trait]
impl Probes for LiveProbes {
    async fn form_redis(
        &self,
        addrs: &[String],
        password: Option<String>,
        shards: usize,
    ) -> Result<ClusterReport, String> {
        let admin = TcpAdmin {
            password,
            timeout: Duration::from_secs(3),
        };
        ensure_cluster(&admin, addrs, shards, Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())
    }

    async fn server_ready(&self, endpoint: &str) -> bool {
        http_ok(endpoint, "/ready").await
    }
}

/// Minimal HTTP GET returning whether the status is 200 (no client dependency for one probe).
pub async fn http_ok(endpoint: &str, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(hostport) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host = hostport.split(':').next().unwrap_or(hostport);
    let work = async {
        let mut s = tokio::net::TcpStream::connect(hostport).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 32];
        let n = s.read(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        Some(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
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
        }
    }

    fn key(skc: &SyncKairosCluster) -> String {
        format!("{}/{}", skc.namespace().unwrap_or_default(), skc.name_any())
    }
}

fn kube_err(verb: &'static str, kind: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
    let (kind, name) = (kind.to_string(), name.to_string());
    move |source| Error::Kube {
        verb,
        kind,
        name,
        source,
    }
}

/// The typed, namespaced Kubernetes objects this reconciler reads and writes.
trait Namespaced:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
{
}

/// Server-side apply under our field manager (force: we own these fields).
async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Namespaced + Serialize,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(kube_err("apply", &K::kind(&()), &name))
}

async fn get_opt<K>(client: &Client, ns: &str, name: &str) -> Result<Option<K>, Error>
where
    K: Namespaced,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .map_err(kube_err("get", &K::kind(&()), name))
}

/// Metadata of the objects of one kind that match a label selector.
async fn list_meta<K>(client: &Client, ns: &str, selector: &str) -> Result<Vec<ObjectMeta>, Error>
where
    K: Namespaced,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let list = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(kube_err("list", &K::kind(&()), selector))?;
    Ok(list.items.into_iter().map(|o| o.metadata).collect())
}

/// Deletes one object (background propagation, so a StatefulSet's or Job's pods go too;
/// the uid precondition makes sure it is the object that was judged). `false` when it was
/// already gone or was replaced in between: the next reconcile judges again.
async fn delete_one<K>(client: &Client, ns: &str, d: &Doomed) -> Result<bool, Error>
where
    K: Namespaced,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let mut dp = DeleteParams::background();
    if let Some(uid) = &d.uid {
        dp = dp.preconditions(Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        });
    }
    match api.delete(&d.name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => Ok(false),
        Err(e) => Err(kube_err("delete", &K::kind(&()), &d.name)(e)),
    }
}

async fn list_kind(
    client: &Client,
    ns: &str,
    kind: Kind,
    sel: &str,
) -> Result<Vec<ObjectMeta>, Error> {
    match kind {
        Kind::Ingress => list_meta::<Ingress>(client, ns, sel).await,
        Kind::HorizontalPodAutoscaler => {
            list_meta::<HorizontalPodAutoscaler>(client, ns, sel).await
        }
        Kind::PodDisruptionBudget => list_meta::<PodDisruptionBudget>(client, ns, sel).await,
        Kind::StatefulSet => list_meta::<StatefulSet>(client, ns, sel).await,
        Kind::Service => list_meta::<Service>(client, ns, sel).await,
        Kind::ConfigMap => list_meta::<ConfigMap>(client, ns, sel).await,
        Kind::Job => list_meta::<Job>(client, ns, sel).await,
    }
}

async fn delete_kind(client: &Client, ns: &str, d: &Doomed) -> Result<bool, Error> {
    match d.kind {
        Kind::Ingress => delete_one::<Ingress>(client, ns, d).await,
        Kind::HorizontalPodAutoscaler => delete_one::<HorizontalPodAutoscaler>(client, ns, d).await,
        Kind::PodDisruptionBudget => delete_one::<PodDisruptionBudget>(client, ns, d).await,
        Kind::StatefulSet => delete_one::<StatefulSet>(client, ns, d).await,
        Kind::Service => delete_one::<Service>(client, ns, d).await,
        Kind::ConfigMap => delete_one::<ConfigMap>(client, ns, d).await,
        Kind::Job => delete_one::<Job>(client, ns, d).await,
    }
}

/// Deletes what this operator created for the cluster and the spec no longer wants: lists
/// the prunable kinds with our label selector in the cluster's namespace, lets
/// [`prune::plan`] decide, deletes, and records an Event and a log line per deletion.
async fn prune_undesired(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    desired: &build::Desired,
    server_settled: bool,
) -> Result<(), Error> {
    let sel = prune::selector(&c.name);
    let mut observed = Vec::new();
    for kind in Kind::ALL {
        let metas = list_kind(&ctx.client, &c.namespace, kind, &sel).await?;
        observed.extend(metas.into_iter().map(|meta| prune::Observed { kind, meta }));
    }
    let mut deleted = Vec::new();
    for d in prune::plan(desired, server_settled, &c.owner.uid, &c.name, &observed) {
        if delete_kind(&ctx.client, &c.namespace, &d).await? {
            tracing::info!(
                cluster = %Context::key(skc),
                kind = d.kind.as_str(),
                name = %d.name,
                "deleted an object the spec no longer wants"
            );
            deleted.push(format!("{} {}", d.kind.as_str(), d.name));
        }
    }
    // one Event naming every deletion (the recorder would fold one Event per deletion into
    // a series showing only the last note)
    if !deleted.is_empty() {
        publish(
            ctx,
            skc,
            EventType::Normal,
            "Deleted",
            format!("deleted, no longer in the spec: {}", deleted.join(", ")),
        )
        .await;
    }
    Ok(())
}

fn random_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

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

/// Ensures a generated Secret exists (created once, never rotated) and returns its key value.
async fn ensure_secret(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    name: &str,
    key: &'static str,
    generate: Option<Secret>,
) -> Result<Option<String>, Error> {
    let existing: Option<Secret> = get_opt(&ctx.client, &c.namespace, name).await?;
    let secret = match (existing, generate) {
        (Some(s), _) => s,
        (None, Some(new)) => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &c.namespace);
            let s = api
                .create(&PostParams::default(), &new)
                .await
                .map_err(kube_err("create", "Secret", name))?;
            publish(
                ctx,
                skc,
                EventType::Normal,
                "SecretGenerated",
                format!("generated Secret {name}"),
            )
            .await;
            s
        }
        // a user-named Secret that does not exist (yet): pods wait for it
        (None, None) => return Ok(None),
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        });
    value
        .map(Some)
        .ok_or_else(|| Error::SecretKey(name.to_string(), key))
}

fn sts_ready(s: Option<&StatefulSet>) -> (i32, i32) {
    let want = s.and_then(|s| s.spec.replicas).unwrap_or(0);
    let ready = s
        .and_then(|s| s.status.as_ref())
        .and_then(|st| st.ready_replicas)
        .unwrap_or(0);
    (ready, want)
}

async fn redis_part(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    password: Option<String>,
) -> Result<(Part, Option<RedisClusterStatus>), Error> {
    if c.spec.redis.mode == RedisMode::External {
        return Ok((Part::ok("External", "Redis is external"), None));
    }
    let want = usize::try_from(c.redis_pods()).unwrap_or(0);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let sel = format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/component={}",
        c.name,
        redis::COMPONENT
    );
    let list = pods
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(kube_err("list", "Pod", &sel))?;
    let prefix = format!("{}-", names::redis(&c.name));
    let mut running: Vec<(u32, String)> = list
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| {
            let ordinal = p.name_any().strip_prefix(&prefix)?.parse::<u32>().ok()?;
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            Some((ordinal, format!("{ip}:{REDIS_PORT}")))
        })
        .collect();
    running.sort();
    if running.len() < want {
        return Ok((
            Part::not(
                "WaitingForPods",
                format!("{}/{want} Redis pods running", running.len()),
            ),
            None,
        ));
    }
    let addrs: Vec<String> = running.into_iter().take(want).map(|(_, a)| a).collect();
    let shards = usize::try_from(c.spec.redis.shards).unwrap_or(0);
    match ctx.probes.form_redis(&addrs, password, shards).await {
        Ok(report) => {
            if !report.actions.is_empty() {
                publish(
                    ctx,
                    skc,
                    EventType::Normal,
                    "RedisClusterChanged",
                    format!(
                        "{} formation commands ({} after)",
                        report.actions.len(),
                        report.state
                    ),
                )
                .await;
            }
            let st = RedisClusterStatus {
                state: report.state.clone(),
                slots_assigned: i32::try_from(report.slots_assigned).unwrap_or(0),
                nodes: i32::try_from(report.nodes).unwrap_or(0),
                primaries: i32::try_from(report.primaries).unwrap_or(0),
                replicas: i32::try_from(report.replicas).unwrap_or(0),
                shards: c.spec.redis.shards,
            };
            let msg = format!(
                "cluster_state {}, {}/16384 slots, {} primaries, {} replicas",
                report.state, report.slots_assigned, report.primaries, report.replicas
            );
            let part = if report.is_ok() {
                Part::ok("ClusterOk", msg)
            } else {
                Part::not("ClusterForming", msg)
            };
            Ok((part, Some(st)))
        }
        Err(e) => Ok((Part::not("ClusterUnreachable", e), None)),
    }
}

fn job_state(job: Option<&Job>) -> Part {
    let Some(job) = job else {
        return Part::not("Pending", "migration Job not created yet");
    };
    let st = job.status.clone().unwrap_or_default();
    let failed_for_good = st
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Failed" && c.status == "True");
    if st.succeeded.unwrap_or(0) > 0 {
        Part::ok("Succeeded", format!("Job {} succeeded", job.name_any()))
    } else if failed_for_good {
        Part::not(
            "MigrationFailed",
            format!("Job {} failed: see its pod logs", job.name_any()),
        )
    } else {
        Part::not("Running", format!("Job {} is running", job.name_any()))
    }
}

fn server_part(c: &Checked, d: Option<&Deployment>) -> (Part, i32, i32) {
    let Some(d) = d else {
        return (
            Part::not(
                "NotCreated",
                "waiting for migrations before creating the Deployment",
            ),
            0,
            0,
        );
    };
    let st = d.status.clone().unwrap_or_default();
    let want = d.spec.replicas.unwrap_or(st.replicas.unwrap_or(0));
    let ready = st.ready_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let image = d
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.first())
        .and_then(|k| k.image.clone());
    let part = if image.as_deref() != Some(c.spec.image.as_str()) {
        Part::not(
            "RolloutPending",
            "the Deployment still runs the previous image (migrations first)",
        )
    } else if want == 0 {
        Part::not("ScaledToZero", "server.replicas is 0")
    } else if available == 0 {
        Part::not(
            "NoAvailablePods",
            format!("{ready}/{want} server pods ready"),
        )
    } else {
        Part::ok("Available", format!("{ready}/{want} server pods ready"))
    };
    (part, ready, want)
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
            let blocked = Part::not("ApiError", e.to_string());
            let _ = write_status(&ctx, &skc, blocked_observation(&skc, blocked)).await;
            publish(
                &ctx,
                &skc,
                EventType::Warning,
                "ReconcileError",
                e.to_string(),
            )
            .await;
        }
    }
    result
}

/// Requeue with exponential backoff (1 s doubling to 5 min) per object.
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

/// Delay before retry number `n` (1-based).
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

fn blocked_observation(skc: &SyncKairosCluster, blocked: Part) -> Observed {
    let prev = skc.status.clone().unwrap_or_default();
    let cond = |t: &str| {
        prev.conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| Part {
                ok: c.status == "True",
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
            .unwrap_or_else(|| Part::not("Unknown", "not observed yet"))
    };
    Observed {
        generation: skc.metadata.generation,
        redis: cond(status::REDIS_READY),
        postgres: cond(status::POSTGRES_READY),
        migrations: cond(status::MIGRATIONS_COMPLETE),
        server: cond(status::SERVER_AVAILABLE),
        answers_ready: false,
        blocked: Some(blocked),
        ready_replicas: prev.ready_replicas,
        replicas: prev.replicas,
        redis_cluster: None,
        migrated_image: None,
        endpoint: prev.endpoint,
    }
}

async fn write_status(ctx: &Context, skc: &SyncKairosCluster, o: Observed) -> Result<(), Error> {
    let now = Time(Timestamp::now());
    let prev = skc.status.as_ref();
    let new = status::compute(prev, &o, &now);
    let was_ready = prev
        .map(|p| {
            p.conditions
                .iter()
                .any(|c| c.type_ == status::READY && c.status == "True")
        })
        .unwrap_or(false);
    let is_ready = new.phase.as_deref() == Some("Ready");
    let ns = skc.namespace().unwrap_or_default();
    let api: Api<SyncKairosCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "status": new });
    api.patch_status(
        &skc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_err(
        "patch status",
        "SyncKairosCluster",
        &skc.name_any(),
    ))?;
    if is_ready != was_ready {
        let (t, reason) = if is_ready {
            (EventType::Normal, "Ready")
        } else {
            (EventType::Warning, "NotReady")
        };
        let note = status::ready_part(&o).message;
        publish(ctx, skc, t, reason, note).await;
    }
    Ok(())
}

async fn reconcile_inner(skc: &SyncKairosCluster, ctx: &Context) -> Result<Action, Error> {
    if skc.metadata.deletion_timestamp.is_some() {
        // Owner references garbage-collect every object; nothing of ours to clean up.
        return Ok(Action::await_change());
    }
    // validate
    let c = match validate(skc) {
        Ok(c) => c,
        Err(invalid) => {
            ctx.metrics.reconciles.with_label_values(&["invalid"]).inc();
            publish(
                ctx,
                skc,
                EventType::Warning,
                invalid.reason,
                invalid.message.clone(),
            )
            .await;
            let blocked = Part::not(invalid.reason, invalid.message);
            write_status(ctx, skc, blocked_observation(skc, blocked)).await?;
            return Ok(Action::await_change());
        }
    };
    // build (pure)
    let desired = build::desired(&c);
    let ns = c.namespace.clone();
    let client = &ctx.client;

    // secrets
    let mut redis_password = None;
    if c.spec.redis.mode == RedisMode::Managed {
        let name = build::redis_password_secret(&c);
        let generate = c
            .spec
            .redis
            .password_secret
            .is_none()
            .then(|| redis::password_secret(&c, &random_password()));
        redis_password = ensure_secret(ctx, skc, &c, &name, "password", generate).await?;
    }
    if c.spec.postgres.mode == PostgresMode::Managed {
        let name = build::postgres_credentials_secret(&c);
        let generate = c
            .spec
            .postgres
            .credentials_secret
            .is_none()
            .then(|| postgres::credentials_secret(&c, &random_password()));
        ensure_secret(ctx, skc, &c, &name, "password", generate).await?;
    }

    // redis
    let mut redis_sts = None;
    if let Some(r) = &desired.redis {
        apply(client, &ns, &r.config).await?;
        apply(client, &ns, &r.service).await?;
        redis_sts = Some(apply(client, &ns, &r.statefulset).await?);
        apply(client, &ns, &r.pdb).await?;
    }
    // postgres
    let postgres = match &desired.postgres {
        Some(p) => {
            apply(client, &ns, &p.service).await?;
            let sts = apply(client, &ns, &p.statefulset).await?;
            let (ready, want) = sts_ready(Some(&sts));
            if ready >= 1 {
                Part::ok("Ready", format!("{ready}/{want} PostgreSQL pods ready"))
            } else {
                Part::not(
                    "WaitingForPod",
                    format!("{ready}/{want} PostgreSQL pods ready"),
                )
            }
        }
        None if c.spec.postgres.mode == PostgresMode::Disabled => {
            Part::ok("Disabled", "no audit store configured")
        }
        None => Part::ok("External", "PostgreSQL is external"),
    };

    // redis cluster formation (needs the pods, not the StatefulSet's readiness)
    let (mut redis_part, redis_cluster) = redis_part(ctx, skc, &c, redis_password).await?;
    if let Some(sts) = &redis_sts {
        let (ready, want) = sts_ready(Some(sts));
        if redis_part.ok && ready < want {
            redis_part = Part::not("PodsNotReady", format!("{ready}/{want} Redis pods ready"));
        }
    }

    // migrations: the Job of this image and database, once PostgreSQL can take it
    let migrations = match &desired.migration {
        None => Part::ok("NotNeeded", "no audit store: nothing to migrate"),
        Some(_) if !postgres.ok => Part::not("WaitingForPostgres", "PostgreSQL is not ready"),
        Some(job) => {
            let name = job.metadata.name.clone().unwrap_or_default();
            let existing: Option<Job> = get_opt(client, &ns, &name).await?;
            let current = match existing {
                // a Job's pod template is immutable: never re-apply a created one
                Some(j) => j,
                None => {
                    let j = apply(client, &ns, job).await?;
                    publish(
                        ctx,
                        skc,
                        EventType::Normal,
                        "MigrationStarted",
                        format!(
                            "Job {name} migrates {} for image {}",
                            build::migration_target(&c),
                            c.spec.image
                        ),
                    )
                    .await;
                    j
                }
            };
            job_state(Some(&current))
        }
    };

    // server: everything but the Deployment first
    let s = &desired.server;
    apply(client, &ns, &s.service).await?;
    apply(client, &ns, &s.pdb).await?;
    if let Some(h) = &s.hpa {
        apply(client, &ns, h).await?;
    }
    if let Some(i) = &s.ingress {
        apply(client, &ns, i).await?;
    }
    // the rollout waits for the migrations of its image
    let deployment = if migrations.ok {
        Some(apply(client, &ns, &s.deployment).await?)
    } else {
        get_opt::<Deployment>(client, &ns, &names::server(&c.name)).await?
    };
    let (server_part, ready_replicas, replicas) = server_part(&c, deployment.as_ref());

    // prune what the spec no longer wants; the stores only once no server pod may use them
    let server_settled = migrations.ok && deployment.as_ref().is_some_and(prune::rollout_settled);
    prune_undesired(ctx, skc, &c, &desired, server_settled).await?;

    let endpoint = server::endpoint(&c);
    let answers_ready = server_part.ok && ctx.probes.server_ready(&endpoint).await;

    let all_ok = redis_part.ok && postgres.ok && migrations.ok && server_part.ok && answers_ready;
    let obs = Observed {
        generation: c.generation,
        redis: redis_part,
        postgres,
        migrations: migrations.clone(),
        server: server_part,
        answers_ready,
        blocked: None,
        ready_replicas,
        replicas,
        redis_cluster,
        migrated_image: migrations.ok.then(|| c.spec.image.clone()),
        endpoint: Some(endpoint),
    };
    write_status(ctx, skc, obs).await?;
    ctx.metrics.reconciles.with_label_values(&["ok"]).inc();
    Ok(if all_ok {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(ctx.poll)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one_shot_server(reply: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /ready HTTP/1.1"));
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn ready_probe_needs_a_200() {
        let ok = one_shot_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        assert!(http_ok(&ok, "/ready").await);
        let busy = one_shot_server("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert!(!http_ok(&busy, "/ready").await);
        // nothing listening
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        assert!(!http_ok(&closed, "/ready").await);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let d: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256]);
    }
}
