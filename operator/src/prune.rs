//! Pruning, the pure half: which objects this operator created for one cluster are no longer
//! desired and must be deleted. The reconciler lists the [`Kind`]s below by label in the
//! cluster's namespace, calls [`plan`] and deletes what it returns.
//!
//! Only kinds that can leave the desired set are pruned: the server Ingress
//! (`server.ingress` removed), the HPA (`server.autoscaling` removed), the managed Redis
//! ConfigMap/Service/StatefulSet/PDB (Redis switched to external), the managed PostgreSQL
//! Service/StatefulSet (switched to external or disabled) and the migration Jobs (PostgreSQL
//! disabled). The server Deployment, Service and PDB are always desired. Generated Secrets
//! and the StatefulSets' PersistentVolumeClaims are never deleted: they hold credentials and
//! data that a switch back to managed mode needs again.
//!
//! An observed object is only ever deleted when it carries our `managed-by` label, this
//! cluster's `instance` label **and** a controller owner reference to this cluster's uid, so
//! an object the operator did not create (even with the same name) is left alone.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::build::{Desired, FIELD_MANAGER, Object, postgres, redis, server};
use crate::labels::{COMPONENT, INSTANCE, MANAGED_BY};

/// A kind the operator creates and can delete again, in deletion order (the Ingress first,
/// so a server stops being exposed before anything else happens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `networking.k8s.io/v1` Ingress.
    Ingress,
    /// `autoscaling/v2` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
    /// `policy/v1` PodDisruptionBudget.
    PodDisruptionBudget,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `v1` Service.
    Service,
    /// `v1` ConfigMap.
    ConfigMap,
    /// `batch/v1` Job.
    Job,
}

impl Kind {
    /// Every prunable kind, in deletion order.
    pub const ALL: [Kind; 7] = [
        Kind::Ingress,
        Kind::HorizontalPodAutoscaler,
        Kind::PodDisruptionBudget,
        Kind::StatefulSet,
        Kind::Service,
        Kind::ConfigMap,
        Kind::Job,
    ];

    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ingress => "Ingress",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::StatefulSet => "StatefulSet",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
            Kind::Job => "Job",
        }
    }
}

/// The label selector the reconciler lists with: our objects of one cluster.
pub fn selector(instance: &str) -> String {
    crate::labels::owned_by(instance)
}

/// The prunable kind of a desired object; `None` for the Deployment, which is always desired.
pub fn kind_of(o: &Object<'_>) -> Option<Kind> {
    Some(match o {
        Object::ConfigMap(_) => Kind::ConfigMap,
        Object::Service(_) => Kind::Service,
        Object::StatefulSet(_) => Kind::StatefulSet,
        Object::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
        Object::HorizontalPodAutoscaler(_) => Kind::HorizontalPodAutoscaler,
        Object::Ingress(_) => Kind::Ingress,
        Object::Job(_) => Kind::Job,
        Object::Deployment(_) => return None,
    })
}

/// An object seen in the cluster's namespace.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Its kind.
    pub kind: Kind,
    /// Its metadata (a metadata-only list is enough).
    pub meta: ObjectMeta,
}

/// An object to delete; `uid` goes into the delete precondition so exactly the object that
/// was judged is deleted, never one re-created under the same name in between.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Doomed {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Its uid, when the API reported one.
    pub uid: Option<String>,
}

/// `(kind, name)` of every desired object of a prunable kind.
pub fn desired_set(d: &Desired) -> BTreeSet<(Kind, String)> {
    d.walk()
        .iter()
        .filter_map(|s| Some((kind_of(&s.object)?, s.object.name().to_string())))
        .collect()
}

/// Whether the operator created `meta` for the cluster `instance` with uid `owner_uid`:
/// our managed-by label, its instance label and a controller owner reference to its uid.
pub fn is_ours(meta: &ObjectMeta, owner_uid: &str, instance: &str) -> bool {
    let label = |k: &str| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    };
    label(MANAGED_BY) == Some(FIELD_MANAGER)
        && label(INSTANCE) == Some(instance)
        && !owner_uid.is_empty()
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == owner_uid && r.controller == Some(true))
}

/// Whether a server Deployment runs only pods of its current template: the controller saw
/// its latest generation and no pod of an older ReplicaSet is left. Until then the old pods
/// may still talk to a managed store that the spec no longer wants.
pub fn rollout_settled(d: &Deployment) -> bool {
    let Some(st) = d.status.as_ref() else {
        return false;
    };
    let seen = match (d.metadata.generation, st.observed_generation) {
        (Some(g), Some(o)) => o >= g,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let updated = st.updated_replicas.unwrap_or(0);
    seen && updated == st.replicas.unwrap_or(0) && updated >= d.spec.replicas.unwrap_or(0)
}

/// What to delete, in [`Kind::ALL`] order.
///
/// - never an object that [`is_ours`] rejects, nor one already being deleted;
/// - never a desired object;
/// - while a migration Job is desired, no migration Job: one Job is named per image and
///   database ([`crate::build::names::migration`]), and those of earlier images or of
///   another database record that the image migrated that database, so rolling back to it
///   (or switching back to a database whose data was kept) does not run its older `migrate`
///   against a newer schema (they all go once PostgreSQL is disabled);
/// - objects of the stores (Redis, PostgreSQL, migrations) only once `server_settled`: the
///   server Deployment was applied with the current spec and its rollout left no old pod
///   that may still use them ([`rollout_settled`]).
pub fn plan(
    desired: &Desired,
    server_settled: bool,
    owner_uid: &str,
    instance: &str,
    observed: &[Observed],
) -> Vec<Doomed> {
    let want = desired_set(desired);
    let mut out: Vec<Doomed> = observed
        .iter()
        .filter(|o| is_ours(&o.meta, owner_uid, instance))
        .filter(|o| o.meta.deletion_timestamp.is_none())
        .filter_map(|o| {
            let name = o.meta.name.clone()?;
            if want.contains(&(o.kind, name.clone())) {
                return None;
            }
            if o.kind == Kind::Job && desired.migration.is_some() {
                return None;
            }
            let component = o
                .meta
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPONENT))
                .map(String::as_str);
            let store = matches!(
                component,
                Some(redis::COMPONENT | postgres::COMPONENT | server::MIGRATION_COMPONENT)
            );
            if store && !server_settled {
                return None;
            }
            Some(Doomed {
                kind: o.kind,
                name,
                uid: o.meta.uid.clone(),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::checked;
    use crate::build::{self, names};
    use crate::validate::Checked;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

    fn everything() -> Checked {
        checked(json!({
            "server": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4},
                       "ingress": {"host": "k.example.com"}}
        }))
    }

    fn bare() -> Checked {
        checked(json!({
            "redis": {"mode": "external", "externalSecret": "r"},
            "postgres": {"mode": "disabled"}
        }))
    }

    /// What the API would list after applying `c`'s desired objects.
    fn observed_of(c: &Checked) -> Vec<Observed> {
        let d = build::desired(c);
        let mut v = Vec::new();
        let mut push = |kind, meta: &ObjectMeta| {
            let mut meta = meta.clone();
            meta.uid = Some(format!("uid-{}-{}", kind as u8, meta.name.clone().unwrap()));
            v.push(Observed { kind, meta });
        };
        if let Some(r) = &d.redis {
            push(Kind::ConfigMap, &r.config.metadata);
            push(Kind::Service, &r.service.metadata);
            push(Kind::StatefulSet, &r.statefulset.metadata);
            push(Kind::PodDisruptionBudget, &r.pdb.metadata);
        }
        if let Some(p) = &d.postgres {
            push(Kind::Service, &p.service.metadata);
            push(Kind::StatefulSet, &p.statefulset.metadata);
        }
        if let Some(j) = &d.migration {
            push(Kind::Job, &j.metadata);
        }
        push(Kind::Service, &d.server.service.metadata);
        push(Kind::PodDisruptionBudget, &d.server.pdb.metadata);
        if let Some(h) = &d.server.hpa {
            push(Kind::HorizontalPodAutoscaler, &h.metadata);
        }
        if let Some(i) = &d.server.ingress {
            push(Kind::Ingress, &i.metadata);
        }
        v
    }

    fn names_of(v: &[Doomed]) -> Vec<(Kind, &str)> {
        v.iter().map(|d| (d.kind, d.name.as_str())).collect()
    }

    #[test]
    fn removing_ingress_and_autoscaling_deletes_them() {
        let before = observed_of(&everything());
        let now = build::desired(&checked(json!({})));
        let doomed = plan(&now, false, UID, "demo", &before);
        assert_eq!(
            names_of(&doomed),
            [
                (Kind::Ingress, "demo"),
                (Kind::HorizontalPodAutoscaler, "demo-server"),
            ]
        );
        assert_eq!(doomed[0].uid.as_deref(), Some("uid-0-demo"));
    }

    #[test]
    fn switching_stores_away_waits_for_the_rollout_then_deletes_them() {
        let before = observed_of(&checked(json!({})));
        let now = build::desired(&bare());
        assert!(plan(&now, false, UID, "demo", &before).is_empty());
        let doomed = plan(&now, true, UID, "demo", &before);
        let migrate = build::desired(&checked(json!({})))
            .migration
            .unwrap()
            .metadata
            .name
            .unwrap();
        assert_eq!(
            names_of(&doomed),
            [
                (Kind::PodDisruptionBudget, "demo-redis"),
                (Kind::StatefulSet, "demo-postgres"),
                (Kind::StatefulSet, "demo-redis"),
                (Kind::Service, "demo-postgres"),
                (Kind::Service, "demo-redis"),
                (Kind::ConfigMap, "demo-redis-config"),
                (Kind::Job, migrate.as_str()),
            ]
        );
    }

    #[test]
    fn migration_jobs_of_earlier_images_stay_while_migrations_run() {
        let mut before = observed_of(&checked(json!({"image": "synckairos:1.0"})));
        before.extend(observed_of(&checked(json!({"image": "synckairos:0.9"}))));
        let now = build::desired(&checked(json!({"image": "synckairos:1.1"})));
        assert!(plan(&now, true, UID, "demo", &before).is_empty());
    }

    #[test]
    fn switching_the_database_keeps_the_jobs_of_the_other_one_while_migrations_run() {
        let managed = checked(json!({"image": "synckairos:1.0"}));
        let external = checked(json!({"image": "synckairos:1.0",
            "postgres": {"mode": "external", "externalSecret": "pg"}}));
        let other = checked(json!({"image": "synckairos:1.0",
            "postgres": {"mode": "external", "externalSecret": "pg2"}}));
        let job = |c: &Checked| build::desired(c).migration.unwrap().metadata.name.unwrap();
        assert_ne!(job(&managed), job(&external));
        assert_ne!(job(&external), job(&other));
        let mut before = observed_of(&managed);
        before.extend(observed_of(&external));
        // managed -> external -> another external: only the managed PostgreSQL objects go
        let doomed = plan(&build::desired(&other), true, UID, "demo", &before);
        assert_eq!(
            names_of(&doomed),
            [
                (Kind::StatefulSet, "demo-postgres"),
                (Kind::Service, "demo-postgres"),
            ]
        );
        // PostgreSQL disabled: every migration Job goes
        let doomed = plan(&build::desired(&bare()), true, UID, "demo", &before);
        let jobs: BTreeSet<&str> = doomed
            .iter()
            .filter(|d| d.kind == Kind::Job)
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(
            jobs,
            BTreeSet::from([job(&managed).as_str(), job(&external).as_str()])
        );
    }

    #[test]
    fn objects_not_ours_or_being_deleted_are_never_deleted() {
        let now = build::desired(&checked(json!({})));
        let theirs = |f: &dyn Fn(&mut ObjectMeta)| {
            let mut o = observed_of(&everything());
            for x in &mut o {
                f(&mut x.meta);
            }
            plan(&now, true, UID, "demo", &o)
        };
        assert_eq!(theirs(&|_| {}).len(), 2, "the baseline deletes something");
        assert!(theirs(&|m| m.labels = None).is_empty());
        assert!(theirs(&|m| m.owner_references = None).is_empty());
        assert!(
            theirs(&|m| {
                m.labels.as_mut().unwrap().remove(MANAGED_BY);
            })
            .is_empty()
        );
        assert!(
            theirs(&|m| {
                m.labels
                    .as_mut()
                    .unwrap()
                    .insert(INSTANCE.into(), "other".into());
            })
            .is_empty()
        );
        assert!(theirs(&|m| m.owner_references.as_mut().unwrap()[0].uid = "x".into()).is_empty());
        assert!(
            theirs(&|m| m.owner_references.as_mut().unwrap()[0].controller = None).is_empty(),
            "a non-controller reference is not ours"
        );
        assert!(
            theirs(&|m| m.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now())))
                .is_empty()
        );
        assert!(plan(&now, true, "", "demo", &observed_of(&everything())).is_empty());
    }

    #[test]
    fn unchanged_spec_deletes_nothing() {
        for c in [everything(), bare(), checked(json!({}))] {
            let d = build::desired(&c);
            assert!(plan(&d, true, UID, "demo", &observed_of(&c)).is_empty());
        }
    }

    #[test]
    fn the_selector_matches_what_builders_label() {
        let c = everything();
        let sel = selector("demo");
        for o in observed_of(&c) {
            let l = o.meta.labels.unwrap();
            for pair in sel.split(',') {
                let (k, v) = pair.split_once('=').unwrap();
                assert_eq!(l.get(k).map(String::as_str), Some(v), "{:?}", o.meta.name);
            }
            assert!(l.contains_key(COMPONENT));
        }
    }

    #[test]
    fn every_kind_that_can_leave_the_desired_set_is_prunable() {
        // the objects of the fullest spec minus those of the barest: all of prunable kinds
        let full: BTreeSet<_> = observed_of(&everything())
            .into_iter()
            .map(|o| (o.kind, o.meta.name.unwrap()))
            .collect();
        let min = desired_set(&build::desired(&bare()));
        let gone: BTreeSet<Kind> = full.difference(&min).map(|(k, _)| *k).collect();
        assert_eq!(gone, Kind::ALL.into_iter().collect());
        // the Deployment is always desired (not prunable)
        assert_eq!(
            build::desired(&bare()).server.deployment.metadata.name,
            Some(names::server("demo"))
        );
    }

    #[test]
    fn statefulsets_keep_their_volume_claims() {
        let d = build::desired(&checked(json!({})));
        for s in [
            &d.redis.unwrap().statefulset,
            &d.postgres.unwrap().statefulset,
        ] {
            let policy = s.spec.persistent_volume_claim_retention_policy.clone();
            assert!(
                policy.is_none_or(|p| p.when_deleted.as_deref() != Some("Delete")),
                "deleting a StatefulSet must leave its PVCs"
            );
        }
    }

    #[test]
    fn rollout_settles_when_only_current_pods_are_left() {
        let dep = |gen_, status: Option<serde_json::Value>| {
            let mut d = Deployment::default();
            d.metadata.generation = gen_;
            d.spec.replicas = Some(2);
            d.status = status.map(|s| serde_json::from_value::<DeploymentStatus>(s).unwrap());
            d
        };
        assert!(!rollout_settled(&dep(Some(2), None)));
        let done = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2});
        assert!(rollout_settled(&dep(Some(2), Some(done.clone()))));
        assert!(!rollout_settled(&dep(Some(3), Some(done))));
        let surging = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2});
        assert!(!rollout_settled(&dep(Some(2), Some(surging))));
        let starting = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1});
        assert!(!rollout_settled(&dep(Some(2), Some(starting))));
    }

    /// A random spec: each optional part on or off, random image.
    fn random_spec(rng: &mut StdRng) -> serde_json::Value {
        let mut server = serde_json::Map::new();
        if rng.random_bool(0.5) {
            server.insert("ingress".into(), json!({"host": "k.example.com"}));
        }
        if rng.random_bool(0.5) {
            server.insert(
                "autoscaling".into(),
                json!({"minReplicas": 2, "maxReplicas": 4}),
            );
        }
        let redis = if rng.random_bool(0.5) {
            json!({"mode": "external", "externalSecret": "r"})
        } else {
            json!({})
        };
        let postgres = match rng.random_range(0..4) {
            0 => json!({"mode": "external", "externalSecret": "p"}),
            3 => json!({"mode": "external", "externalSecret": "q"}),
            1 => json!({"mode": "disabled"}),
            _ => json!({}),
        };
        json!({"image": format!("synckairos:{}", rng.random_range(0..3)),
               "server": server, "redis": redis, "postgres": postgres})
    }

    /// Randomly makes an observed object foreign (labels/owner changed), or keeps it ours.
    fn maybe_foreign(rng: &mut StdRng, o: &mut Observed) -> bool {
        match rng.random_range(0..8) {
            0 => o.meta.labels = None,
            1 => {
                o.meta.owner_references = Some(vec![OwnerReference {
                    uid: "someone-else".into(),
                    controller: Some(true),
                    ..Default::default()
                }])
            }
            2 => {
                o.meta
                    .labels
                    .as_mut()
                    .unwrap()
                    .insert(INSTANCE.into(), "other".into());
            }
            _ => return false,
        }
        true
    }

    #[test]
    fn property_plan_deletes_exactly_our_undesired_objects() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for _ in 0..500 {
            let before = checked(random_spec(&mut rng));
            let after = checked(random_spec(&mut rng));
            let settled = rng.random_bool(0.5);
            let mut observed = observed_of(&before);
            let mut foreign = BTreeSet::new();
            for o in &mut observed {
                if maybe_foreign(&mut rng, o) {
                    foreign.insert((o.kind, o.meta.name.clone().unwrap()));
                }
            }
            let desired = build::desired(&after);
            let want = desired_set(&desired);
            let doomed = plan(&desired, settled, UID, "demo", &observed);
            let doomed_keys: BTreeSet<_> =
                doomed.iter().map(|d| (d.kind, d.name.clone())).collect();
            // sorted, unique, in deletion order
            assert!(doomed.windows(2).all(|w| w[0] < w[1]), "{doomed:?}");
            for d in &doomed {
                let key = (d.kind, d.name.clone());
                assert!(!want.contains(&key), "deletes a desired object {key:?}");
                assert!(!foreign.contains(&key), "deletes a foreign object {key:?}");
                assert!(d.uid.is_some(), "delete without a uid precondition");
            }
            // idempotent: deleting what it said leaves nothing more to delete
            let rest: Vec<Observed> = observed
                .iter()
                .filter(|o| !doomed_keys.contains(&(o.kind, o.meta.name.clone().unwrap())))
                .cloned()
                .collect();
            assert!(plan(&desired, settled, UID, "demo", &rest).is_empty());
            // complete: every undesired object of ours goes, except the documented holds
            for o in &observed {
                let key = (o.kind, o.meta.name.clone().unwrap());
                if foreign.contains(&key) || want.contains(&key) {
                    continue;
                }
                let comp = o.meta.labels.as_ref().unwrap()[COMPONENT].as_str();
                let held = (o.kind == Kind::Job && desired.migration.is_some())
                    || (!settled && comp != server::COMPONENT);
                assert_eq!(
                    doomed_keys.contains(&key),
                    !held,
                    "{key:?} settled={settled}"
                );
            }
            // an unchanged spec never deletes anything
            assert!(
                plan(
                    &build::desired(&before),
                    settled,
                    UID,
                    "demo",
                    &observed_of(&before)
                )
                .is_empty()
            );
        }
    }
}
