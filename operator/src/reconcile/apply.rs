//! Step 4, apply: make the cluster look like the desired objects. One walker writes every
//! desired object in [`Desired::walk`] order through its gate ([`verdict::admit`]); then the
//! Redis Cluster itself is formed or healed; then what this operator created for the cluster
//! that the spec no longer wants is deleted ([`prune::plan`] decides, this module lists and
//! deletes). Every write is a server-side apply under [`FIELD_MANAGER`] (forced: we own
//! these fields).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error, kube_err, publish};
use crate::build::{self, Desired, FIELD_MANAGER, Object, Role, Step, names, redis};
use crate::crd::{RedisMode, SyncKairosCluster};
use crate::labels;
use crate::prune::{self, Doomed, Kind};
use crate::validate::Checked;
use crate::verdict::{self, Admit, Applied, Formation};

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

/// A live object as the API returned it, kept when a verdict reads it (boxed: the kinds
/// differ a lot in size).
enum Live {
    StatefulSet(Box<StatefulSet>),
    Job(Box<Job>),
    Deployment(Box<Deployment>),
    /// A kind no verdict reads.
    Unread,
}

/// Turns a live object into a [`Live`] (most kinds are not read back).
trait IntoLive: Sized {
    fn into_live(self) -> Live {
        Live::Unread
    }
}
impl IntoLive for ConfigMap {}
impl IntoLive for Service {}
impl IntoLive for PodDisruptionBudget {}
impl IntoLive for HorizontalPodAutoscaler {}
impl IntoLive for Ingress {}
impl IntoLive for StatefulSet {
    fn into_live(self) -> Live {
        Live::StatefulSet(Box::new(self))
    }
}
impl IntoLive for Job {
    fn into_live(self) -> Live {
        Live::Job(Box::new(self))
    }
}
impl IntoLive for Deployment {
    fn into_live(self) -> Live {
        Live::Deployment(Box::new(self))
    }
}

/// Runs `$body` with `$o` bound to the typed object of any [`Object`] variant: the one
/// place that maps the variants to their types.
macro_rules! each_object {
    ($object:expr, $o:ident => $body:expr) => {
        match $object {
            Object::ConfigMap($o) => $body,
            Object::Service($o) => $body,
            Object::StatefulSet($o) => $body,
            Object::PodDisruptionBudget($o) => $body,
            Object::HorizontalPodAutoscaler($o) => $body,
            Object::Ingress($o) => $body,
            Object::Job($o) => $body,
            Object::Deployment($o) => $body,
        }
    };
}

/// Runs `$body` with the type `$K` of a prunable [`Kind`]: the one place that maps the
/// kinds to their types.
macro_rules! each_kind {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            Kind::Ingress => {
                type $K = Ingress;
                $body
            }
            Kind::HorizontalPodAutoscaler => {
                type $K = HorizontalPodAutoscaler;
                $body
            }
            Kind::PodDisruptionBudget => {
                type $K = PodDisruptionBudget;
                $body
            }
            Kind::StatefulSet => {
                type $K = StatefulSet;
                $body
            }
            Kind::Service => {
                type $K = Service;
                $body
            }
            Kind::ConfigMap => {
                type $K = ConfigMap;
                $body
            }
            Kind::Job => {
                type $K = Job;
                $body
            }
        }
    };
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

/// The live object with the name of `like`, if there is one.
async fn get_like<K>(client: &Client, ns: &str, like: &K) -> Result<Option<K>, Error>
where
    K: Namespaced,
{
    let name = like.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.get_opt(&name)
        .await
        .map_err(kube_err("get", &K::kind(&()), &name))
}

async fn write(client: &Client, ns: &str, object: Object<'_>) -> Result<Live, Error> {
    each_object!(object, o => apply(client, ns, o).await.map(IntoLive::into_live))
}

async fn read(client: &Client, ns: &str, object: Object<'_>) -> Result<Option<Live>, Error> {
    each_object!(object, o => Ok(get_like(client, ns, o).await?.map(IntoLive::into_live)))
}

/// Keeps what a verdict reads of a role's live object.
fn record(applied: &mut Applied, role: Role, live: Live) {
    match (role, live) {
        (Role::RedisPods, Live::StatefulSet(s)) => applied.redis = Some(*s),
        (Role::PostgresPods, Live::StatefulSet(s)) => applied.postgres = Some(*s),
        (Role::Migration, Live::Job(j)) => applied.migration = Some(*j),
        (Role::Rollout, Live::Deployment(d)) => applied.deployment = Some(*d),
        _ => {}
    }
}

/// The walker: every desired object in apply order, each as its gate admits it. Returns
/// the live objects the verdicts read.
pub(super) async fn desired(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    desired: &Desired,
) -> Result<Applied, Error> {
    let (client, ns) = (&ctx.client, c.namespace.as_str());
    let mut applied = Applied::default();
    for Step { role, object } in desired.walk() {
        let live = match verdict::admit(role, c, &applied) {
            Admit::Skip => None,
            Admit::Apply => Some(write(client, ns, object).await?),
            Admit::ReadOnly => read(client, ns, object).await?,
            Admit::CreateOnce => match read(client, ns, object).await? {
                Some(live) => Some(live),
                None => {
                    let live = write(client, ns, object).await?;
                    announce_created(ctx, skc, c, role, object).await;
                    Some(live)
                }
            },
        };
        if let Some(live) = live {
            record(&mut applied, role, live);
        }
    }
    Ok(applied)
}

/// The Event of an object created once (today: the migration Job).
async fn announce_created(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    role: Role,
    object: Object<'_>,
) {
    if role == Role::Migration {
        let note = format!(
            "Job {} migrates {} for image {}",
            object.name(),
            build::migration_target(c),
            c.spec.image
        );
        publish(ctx, skc, EventType::Normal, "MigrationStarted", note).await;
    }
}

/// Forms or heals the managed Redis Cluster over its running pods (it needs the pods, not
/// the StatefulSet's readiness), with an Event when formation sent commands.
pub(super) async fn redis_cluster(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    password: Option<String>,
) -> Result<Formation, Error> {
    match c.spec.redis.mode {
        RedisMode::External => return Ok(Formation::External),
        RedisMode::Memory => return Ok(Formation::Memory),
        RedisMode::Managed => {}
    }
    let want = usize::try_from(c.redis_pods()).unwrap_or(0);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let sel = labels::pods_of(&c.name, redis::COMPONENT);
    let list = pods
        .list(&ListParams::default().labels(&sel))
        .await
        .map_err(kube_err("list", "Pod", &sel))?;
    let addrs = match verdict::redis_addrs(&list.items, &names::redis(&c.name), want) {
        Ok(addrs) => addrs,
        Err(running) => return Ok(Formation::WaitingForPods { running, want }),
    };
    let shards = usize::try_from(c.spec.redis.shards).unwrap_or(0);
    match ctx.probes.form_redis(&addrs, password, shards).await {
        Ok(report) => {
            if !report.actions.is_empty() {
                let note = format!(
                    "{} formation commands ({} after)",
                    report.actions.len(),
                    report.state
                );
                publish(ctx, skc, EventType::Normal, "RedisClusterChanged", note).await;
            }
            Ok(Formation::Formed(report))
        }
        Err(e) => Ok(Formation::Unreachable(e)),
    }
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

/// Deletes what this operator created for the cluster and the spec no longer wants: lists
/// the prunable kinds with our label selector in the cluster's namespace, lets
/// [`prune::plan`] decide, deletes, and records an Event and a log line per deletion.
pub(super) async fn prune(
    ctx: &Context,
    skc: &SyncKairosCluster,
    c: &Checked,
    desired: &Desired,
    server_settled: bool,
) -> Result<(), Error> {
    let (client, ns) = (&ctx.client, c.namespace.as_str());
    let sel = prune::selector(&c.name);
    let mut observed = Vec::new();
    for kind in Kind::ALL {
        let metas = each_kind!(kind, K => list_meta::<K>(client, ns, &sel).await?);
        observed.extend(metas.into_iter().map(|meta| prune::Observed { kind, meta }));
    }
    let mut deleted = Vec::new();
    for d in prune::plan(desired, server_settled, &c.owner.uid, &c.name, &observed) {
        if each_kind!(d.kind, K => delete_one::<K>(client, ns, &d).await?) {
            tracing::info!(
                cluster = %super::Context::key(skc),
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
        let note = format!("deleted, no longer in the spec: {}", deleted.join(", "));
        publish(ctx, skc, EventType::Normal, "Deleted", note).await;
    }
    Ok(())
}
