//! The pure verdicts of the reconcile: whether a gated object may be written now
//! ([`admit`]), and what the objects the apply step wrote and read back say about each part
//! of the cluster ([`observe`]). No client and no clock, so every rule has a plain unit test;
//! `reconcile/` only carries their inputs and results between API calls.
//!
//! The gates, in the order [`crate::build::Desired::walk`] meets them: the migration Job is
//! created once PostgreSQL is ready; the server Deployment is applied once that Job
//! succeeded (until then only read, so the previous image keeps serving).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::build::{REDIS_PORT, Role};
use crate::crd::{PostgresMode, RedisClusterStatus};
use crate::redis_cluster::ClusterReport;
use crate::status::{Observed, Part};
use crate::validate::Checked;

/// Requeue interval once everything is ready: a periodic resync, the watches do the rest.
pub const RESYNC: Duration = Duration::from_secs(300);

/// The objects the verdicts read, as the API returned them at this reconcile (after the
/// apply, or read when a gate kept them from being written).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Managed Redis StatefulSet.
    pub redis: Option<StatefulSet>,
    /// Managed PostgreSQL StatefulSet.
    pub postgres: Option<StatefulSet>,
    /// Migration Job of the spec's image and database.
    pub migration: Option<Job>,
    /// Server Deployment.
    pub deployment: Option<Deployment>,
}

/// What the apply step does with one desired object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Server-side apply it.
    Apply,
    /// Apply it only when no object of its name exists; keep an existing one untouched.
    CreateOnce,
    /// Do not write it; read the live object of its name, so its state is still reported.
    ReadOnly,
    /// Neither write nor read it at this reconcile.
    Skip,
}

/// The gate of one role, given what was applied before it in the walk.
pub fn admit(role: Role, c: &Checked, applied: &Applied) -> Admit {
    match role {
        Role::Plain | Role::RedisPods | Role::PostgresPods => Admit::Apply,
        Role::Migration if postgres(c, applied.postgres.as_ref()).ok => Admit::CreateOnce,
        Role::Migration => Admit::Skip,
        Role::Rollout if migrations(c, applied).ok => Admit::Apply,
        Role::Rollout => Admit::ReadOnly,
    }
}

/// `(ready, wanted)` pods of a StatefulSet (`(0, 0)` when there is none).
pub fn sts_ready(s: Option<&StatefulSet>) -> (i32, i32) {
    let want = s.and_then(|s| s.spec.replicas).unwrap_or(0);
    let ready = s
        .and_then(|s| s.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    (ready, want)
}

/// PostgreSQL: managed is ready with one ready pod; external and disabled are always ready.
pub fn postgres(c: &Checked, sts: Option<&StatefulSet>) -> Part {
    match c.spec.postgres.mode {
        PostgresMode::Managed => {
            let (ready, want) = sts_ready(sts);
            let msg = format!("{ready}/{want} PostgreSQL pods ready");
            if ready >= 1 {
                Part::ok("Ready", msg)
            } else {
                Part::not("WaitingForPod", msg)
            }
        }
        PostgresMode::Disabled => Part::ok("Disabled", "no audit store configured"),
        PostgresMode::External => Part::ok("External", "PostgreSQL is external"),
    }
}

/// Migrations: not needed without an audit store; otherwise they wait for PostgreSQL and
/// then follow the Job of the spec's image and database.
pub fn migrations(c: &Checked, applied: &Applied) -> Part {
    if c.spec.postgres.mode == PostgresMode::Disabled {
        return Part::ok("NotNeeded", "no audit store: nothing to migrate");
    }
    if !postgres(c, applied.postgres.as_ref()).ok {
        return Part::not("WaitingForPostgres", "PostgreSQL is not ready");
    }
    job(applied.migration.as_ref())
}

/// A migration Job: succeeded, failed for good (its backoff limit is spent), or running.
pub fn job(job: Option<&Job>) -> Part {
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

/// The server: the Deployment must exist, run the spec's image and have an available pod.
/// Returns the verdict and `(ready, wanted)` pods.
pub fn server(c: &Checked, d: Option<&Deployment>) -> (Part, i32, i32) {
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
    let spec = &d.spec;
    let want = spec.replicas.unwrap_or(st.replicas.unwrap_or(0));
    let ready = st.ready_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let image = spec
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

/// Whether the stores the spec no longer wants may be deleted: the migrations of the spec
/// ran, and the Deployment's rollout left no pod of an older template that may still use
/// them ([`crate::prune::rollout_settled`]).
pub fn server_settled(migrations: &Part, d: Option<&Deployment>) -> bool {
    migrations.ok && d.is_some_and(crate::prune::rollout_settled)
}

/// What the Redis step found.
#[derive(Debug, Clone)]
pub enum Formation {
    /// Redis is external: nothing to form.
    External,
    /// No Redis at all: the server's memory engine, one pod.
    Memory,
    /// Fewer Redis pods run than the cluster needs; formation waits for all of them.
    WaitingForPods {
        /// Running pods with an IP.
        running: usize,
        /// Pods the cluster needs.
        want: usize,
    },
    /// Formation ran (or found nothing to do) and reported the cluster's state.
    Formed(ClusterReport),
    /// The pods could not be talked to.
    Unreachable(String),
}

/// `ip:port` of the running pods of the Redis StatefulSet `sts`, in ordinal order, the
/// first `want` of them; `Err(running)` while fewer than `want` run. Formation pairs pods
/// by ordinal, so the order matters; pods of another StatefulSet or without an IP are ignored.
pub fn redis_addrs(pods: &[Pod], sts: &str, want: usize) -> Result<Vec<String>, usize> {
    let prefix = format!("{sts}-");
    let mut running: Vec<(u32, String)> = pods
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
        return Err(running.len());
    }
    Ok(running.into_iter().take(want).map(|(_, a)| a).collect())
}

/// The memory engine's verdict: ready (there is nothing to wait for), saying that sessions
/// live in one pod and what of the spec that overrides.
pub fn memory_engine(c: &Checked) -> Part {
    let base = "no Redis configured (redis.mode memory): sessions live in the memory of a \
                single server pod and are lost when it restarts";
    let msg = match c.single_node_clamp() {
        Some(clamp) => format!(
            "{base}; {clamp} because a second pod would not see the first one's sessions; \
             set redis.mode to managed or external to run more"
        ),
        None => base.to_string(),
    };
    Part::ok("MemoryEngine", msg)
}

/// Redis: the formation's report, and — even with a healthy cluster — not ready while the
/// StatefulSet has unready pods. Returns the verdict and the facts for `status.redis`.
pub fn redis(
    c: &Checked,
    f: &Formation,
    sts: Option<&StatefulSet>,
) -> (Part, Option<RedisClusterStatus>) {
    let (part, facts) = match f {
        Formation::External => return (Part::ok("External", "Redis is external"), None),
        Formation::Memory => return (memory_engine(c), None),
        Formation::WaitingForPods { running, want } => (
            Part::not(
                "WaitingForPods",
                format!("{running}/{want} Redis pods running"),
            ),
            None,
        ),
        Formation::Unreachable(e) => (Part::not("ClusterUnreachable", e.clone()), None),
        Formation::Formed(report) => {
            let facts = RedisClusterStatus {
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
            (part, Some(facts))
        }
    };
    if let Some(sts) = sts {
        let (ready, want) = sts_ready(Some(sts));
        if part.ok && ready < want {
            let part = Part::not("PodsNotReady", format!("{ready}/{want} Redis pods ready"));
            return (part, facts);
        }
    }
    (part, facts)
}

/// Everything this reconcile learnt, but whether the server answers `/ready` (the caller
/// probes that only when [`Observed::server`] is ok, and sets `answers_ready`).
pub fn observe(c: &Checked, applied: &Applied, formation: &Formation) -> Observed {
    let (redis, redis_cluster) = redis(c, formation, applied.redis.as_ref());
    let migrations = migrations(c, applied);
    let (server, ready_replicas, replicas) = server(c, applied.deployment.as_ref());
    Observed {
        generation: c.generation,
        redis,
        postgres: postgres(c, applied.postgres.as_ref()),
        migrated_image: migrations.ok.then(|| c.spec.image.clone()),
        migrations,
        server,
        answers_ready: false,
        blocked: None,
        ready_replicas,
        replicas,
        redis_cluster,
        endpoint: Some(crate::build::server::endpoint(c)),
        api_server: None,
    }
}

/// When to look again: after [`RESYNC`] once every part is ready and the server answers,
/// after `poll` while something is still converging.
pub fn requeue(o: &Observed, poll: Duration) -> Duration {
    let all_ok = o.redis.ok && o.postgres.ok && o.migrations.ok && o.server.ok && o.answers_ready;
    if all_ok { RESYNC } else { poll }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::checked;
    use serde_json::{Value, json};

    fn sts(replicas: i32, ready: i32) -> StatefulSet {
        serde_json::from_value(json!({"spec": {"replicas": replicas, "selector": {},
            "template": {}, "serviceName": "x"}, "status": {"replicas": replicas, "readyReplicas": ready}}))
        .unwrap()
    }

    fn job_with(status: Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "demo-migrate-1"}, "status": status}))
            .unwrap()
    }

    fn deployment(image: &str, replicas: i32, available: i32) -> Deployment {
        serde_json::from_value(json!({
            "spec": {"replicas": replicas, "selector": {},
                     "template": {"spec": {"containers": [{"name": "s", "image": image}]}}},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}}))
        .unwrap()
    }

    fn pod(name: &str, phase: &str, ip: Option<&str>) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"phase": phase, "podIP": ip}}))
        .unwrap()
    }

    fn report(ok: bool) -> ClusterReport {
        ClusterReport {
            state: if ok { "ok" } else { "fail" }.into(),
            slots_assigned: if ok { 16384 } else { 0 },
            nodes: 6,
            primaries: 3,
            replicas: 3,
            actions: Vec::new(),
        }
    }

    fn applied(pg: Option<StatefulSet>, job: Option<Job>) -> Applied {
        Applied {
            postgres: pg,
            migration: job,
            ..Default::default()
        }
    }

    #[test]
    fn the_migration_job_waits_for_postgres_and_the_rollout_for_the_job() {
        let c = checked(json!({"image": "synckairos:1.0"}));
        let none = Applied::default();
        let pg_down = applied(Some(sts(1, 0)), None);
        let pg_up = applied(Some(sts(1, 1)), None);
        let running = applied(Some(sts(1, 1)), Some(job_with(json!({"active": 1}))));
        let done = applied(Some(sts(1, 1)), Some(job_with(json!({"succeeded": 1}))));
        for role in [Role::Plain, Role::RedisPods, Role::PostgresPods] {
            assert_eq!(admit(role, &c, &none), Admit::Apply);
        }
        assert_eq!(admit(Role::Migration, &c, &none), Admit::Skip);
        assert_eq!(admit(Role::Migration, &c, &pg_down), Admit::Skip);
        assert_eq!(admit(Role::Migration, &c, &pg_up), Admit::CreateOnce);
        assert_eq!(admit(Role::Rollout, &c, &pg_up), Admit::ReadOnly);
        assert_eq!(admit(Role::Rollout, &c, &running), Admit::ReadOnly);
        assert_eq!(admit(Role::Rollout, &c, &done), Admit::Apply);
        // an external database needs no pods but still its migrations
        let ext = checked(json!({"postgres": {"mode": "external", "externalSecret": "pg"}}));
        assert_eq!(admit(Role::Migration, &ext, &none), Admit::CreateOnce);
        assert_eq!(admit(Role::Rollout, &ext, &none), Admit::ReadOnly);
        // no audit store: nothing to wait for
        let off = checked(json!({"postgres": {"mode": "disabled"}}));
        assert_eq!(admit(Role::Rollout, &off, &none), Admit::Apply);
    }

    #[test]
    fn postgres_and_migration_verdicts() {
        let c = checked(json!({}));
        assert_eq!(postgres(&c, None).reason, "WaitingForPod");
        assert_eq!(
            postgres(&c, Some(&sts(1, 0))).message,
            "0/1 PostgreSQL pods ready"
        );
        assert!(postgres(&c, Some(&sts(1, 1))).ok);
        let ext = checked(json!({"postgres": {"mode": "external", "externalSecret": "pg"}}));
        assert_eq!(
            postgres(&ext, None),
            Part::ok("External", "PostgreSQL is external")
        );
        let off = checked(json!({"postgres": {"mode": "disabled"}}));
        assert_eq!(postgres(&off, None).reason, "Disabled");
        assert_eq!(migrations(&off, &Applied::default()).reason, "NotNeeded");

        assert_eq!(
            migrations(&c, &Applied::default()).reason,
            "WaitingForPostgres"
        );
        let up = |j| applied(Some(sts(1, 1)), j);
        assert_eq!(migrations(&c, &up(None)).reason, "Pending");
        assert_eq!(
            migrations(&c, &up(Some(job_with(json!({}))))).reason,
            "Running"
        );
        let failed = job_with(json!({"failed": 6, "conditions": [
            {"type": "Failed", "status": "True"}]}));
        assert_eq!(migrations(&c, &up(Some(failed))).reason, "MigrationFailed");
        let retrying = job_with(json!({"failed": 2, "conditions": [
            {"type": "Failed", "status": "False"}]}));
        assert_eq!(migrations(&c, &up(Some(retrying))).reason, "Running");
        let ok = migrations(&c, &up(Some(job_with(json!({"succeeded": 1})))));
        assert_eq!(ok, Part::ok("Succeeded", "Job demo-migrate-1 succeeded"));
    }

    #[test]
    fn the_server_is_available_only_on_the_spec_image_with_an_available_pod() {
        let c = checked(json!({"image": "synckairos:1.1"}));
        let reason = |d: Option<&Deployment>| server(&c, d).0.reason;
        assert_eq!(reason(None), "NotCreated");
        assert_eq!(
            reason(Some(&deployment("synckairos:1.0", 2, 2))),
            "RolloutPending"
        );
        assert_eq!(
            reason(Some(&deployment("synckairos:1.1", 0, 0))),
            "ScaledToZero"
        );
        assert_eq!(
            reason(Some(&deployment("synckairos:1.1", 2, 0))),
            "NoAvailablePods"
        );
        let (part, ready, want) = server(&c, Some(&deployment("synckairos:1.1", 3, 1)));
        assert_eq!((part.ok, ready, want), (true, 1, 3));
        assert_eq!(part.message, "1/3 server pods ready");
    }

    #[test]
    fn redis_addresses_follow_the_ordinals_of_running_pods() {
        let pods = [
            pod("demo-redis-10", "Running", Some("10.0.0.20")),
            pod("demo-redis-2", "Running", Some("10.0.0.12")),
            pod("demo-redis-0", "Running", Some("10.0.0.10")),
            pod("demo-redis-1", "Pending", Some("10.0.0.11")),
            pod("demo-redis-3", "Running", None),
            pod("other-redis-1", "Running", Some("10.9.9.9")),
            pod("demo-redis-x", "Running", Some("10.9.9.8")),
        ];
        assert_eq!(redis_addrs(&pods, "demo-redis", 4), Err(3));
        assert_eq!(
            redis_addrs(&pods, "demo-redis", 3).unwrap(),
            ["10.0.0.10:6379", "10.0.0.12:6379", "10.0.0.20:6379"]
        );
        assert_eq!(redis_addrs(&pods, "demo-redis", 2).unwrap().len(), 2);
    }

    #[test]
    fn redis_verdicts() {
        let c = checked(json!({}));
        let waiting = Formation::WaitingForPods {
            running: 2,
            want: 6,
        };
        let (p, facts) = redis(&c, &waiting, Some(&sts(6, 2)));
        assert_eq!(
            (p.reason.as_str(), p.message.as_str()),
            ("WaitingForPods", "2/6 Redis pods running")
        );
        assert!(facts.is_none());
        let (p, facts) = redis(&c, &Formation::Formed(report(true)), Some(&sts(6, 6)));
        assert_eq!(p.reason, "ClusterOk");
        assert_eq!(facts.unwrap().slots_assigned, 16384);
        // a healthy cluster with an unready pod is not ready, but its facts are kept
        let (p, facts) = redis(&c, &Formation::Formed(report(true)), Some(&sts(6, 5)));
        assert_eq!(
            (p.reason.as_str(), p.message.as_str()),
            ("PodsNotReady", "5/6 Redis pods ready")
        );
        assert_eq!(facts.unwrap().shards, 3);
        let (p, _) = redis(&c, &Formation::Formed(report(false)), Some(&sts(6, 6)));
        assert_eq!(p.reason, "ClusterForming");
        let (p, facts) = redis(&c, &Formation::Unreachable("refused".into()), None);
        assert_eq!(
            (p.ok, p.reason.as_str(), facts),
            (false, "ClusterUnreachable", None)
        );
        let (p, _) = redis(&c, &Formation::External, Some(&sts(6, 0)));
        assert_eq!(p, Part::ok("External", "Redis is external"));
    }

    #[test]
    fn observation_and_requeue() {
        let c = checked(json!({"image": "synckairos:1.0", "postgres": {"mode": "disabled"}}));
        let a = Applied {
            redis: Some(sts(6, 6)),
            deployment: Some(deployment("synckairos:1.0", 2, 2)),
            ..Default::default()
        };
        let mut o = observe(&c, &a, &Formation::Formed(report(true)));
        assert!(o.redis.ok && o.postgres.ok && o.migrations.ok && o.server.ok);
        assert_eq!(o.migrated_image.as_deref(), Some("synckairos:1.0"));
        assert_eq!(
            o.endpoint.as_deref(),
            Some("http://demo-server.ns.svc:8080")
        );
        assert_eq!((o.ready_replicas, o.replicas), (2, 2));
        let poll = Duration::from_secs(10);
        assert_eq!(requeue(&o, poll), poll, "not answering /ready yet");
        o.answers_ready = true;
        assert_eq!(requeue(&o, poll), RESYNC);
        o.redis.ok = false;
        assert_eq!(requeue(&o, poll), poll);
        // migrations not done: no migrated image recorded
        let pg = checked(json!({"image": "synckairos:1.0"}));
        let o = observe(&pg, &a, &Formation::External);
        assert_eq!(o.migrated_image, None);
    }
}
