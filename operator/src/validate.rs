//! The second step of the pipeline: turn a `SyncKairosCluster` as read from the API into a
//! [`Checked`] value, or an [`InvalidSpec`] that waits for the user to change the spec.
//! The CRD schema already rejects most bad input; this step covers what a schema cannot see
//! (name lengths of derived objects, a shard count that differs from the formed cluster).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::{PostgresMode, RedisMode, SyncKairosCluster, SyncKairosClusterSpec};

/// Longest `metadata.name` we accept: derived names such as `NAME-migrate-0123abcd` and
/// StatefulSet pod labels must stay within Kubernetes' 63-character limits.
pub const MAX_NAME_LEN: usize = 40;

/// A spec the operator cannot act on; reported in status until the spec changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct InvalidSpec {
    /// CamelCase reason used in the condition.
    pub reason: &'static str,
    /// What to change, for humans.
    pub message: String,
}

/// A validated cluster: everything the pure builders need, and nothing they must look up.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.generation` (for `status.observedGeneration`).
    pub generation: Option<i64>,
    /// Controller owner reference put on every object we create (garbage collection).
    pub owner: OwnerReference,
    /// The spec, with defaults applied by deserialisation.
    pub spec: SyncKairosClusterSpec,
}

impl Checked {
    /// Pods in the managed Redis StatefulSet.
    pub fn redis_pods(&self) -> i32 {
        self.spec.redis.shards * (1 + self.spec.redis.replicas_per_shard)
    }

    /// Whether the server runs the memory engine (no Redis): one process holds every session,
    /// so a second pod would serve a disjoint set of sessions and lose them on restart.
    pub fn single_node(&self) -> bool {
        self.spec.redis.mode == RedisMode::Memory
    }

    /// Server pods the Deployment asks for when no HPA owns the count: `server.replicas`,
    /// clamped to one on the memory engine (where autoscaling is ignored too).
    pub fn server_replicas(&self) -> i32 {
        let s = &self.spec.server;
        if self.single_node() {
            if s.autoscaling.is_some() {
                1
            } else {
                s.replicas.min(1)
            }
        } else {
            s.replicas
        }
    }

    /// What the memory engine takes away from the spec, in one sentence for the RedisReady
    /// condition; `None` when the spec asks for nothing the operator has to refuse.
    pub fn single_node_clamp(&self) -> Option<String> {
        let s = &self.spec.server;
        if !self.single_node() {
            return None;
        }
        if s.autoscaling.is_some() {
            Some("server.autoscaling is ignored".into())
        } else if s.replicas > 1 {
            Some(format!("server.replicas {} is clamped to 1", s.replicas))
        } else {
            None
        }
    }
}

fn invalid(reason: &'static str, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        reason,
        message: message.into(),
    }
}

/// Checks a resource read from the API.
pub fn validate(skc: &SyncKairosCluster) -> Result<Checked, InvalidSpec> {
    let name = skc.name_any();
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            "NameTooLong",
            format!(
                "metadata.name must be at most {MAX_NAME_LEN} characters (derived object names must fit 63)"
            ),
        ));
    }
    let namespace = skc
        .namespace()
        .ok_or_else(|| invalid("NoNamespace", "SyncKairosCluster is namespaced"))?;
    let owner = skc
        .controller_owner_ref(&())
        .ok_or_else(|| invalid("NoUid", "the resource has no uid yet"))?;
    let spec = &skc.spec;
    if spec.redis.mode == RedisMode::External && spec.redis.external_secret.is_none() {
        return Err(invalid(
            "MissingSecret",
            "redis.mode external needs redis.externalSecret",
        ));
    }
    if spec.postgres.mode == PostgresMode::External && spec.postgres.external_secret.is_none() {
        return Err(invalid(
            "MissingSecret",
            "postgres.mode external needs postgres.externalSecret",
        ));
    }
    if let Some(a) = &spec.server.autoscaling
        && a.min_replicas > a.max_replicas
    {
        return Err(invalid(
            "InvalidAutoscaling",
            "server.autoscaling.minReplicas must not exceed maxReplicas",
        ));
    }
    if spec.redis.mode == RedisMode::Managed
        && let Some(formed) = skc.status.as_ref().and_then(|s| s.redis.as_ref())
        && formed.shards > 0
        && (formed.shards != spec.redis.shards)
    {
        return Err(invalid(
            "ReshardingUnsupported",
            format!(
                "the Redis Cluster was formed with {} shards; changing redis.shards to {} needs resharding, which this operator does not do yet: set it back to {}",
                formed.shards, spec.redis.shards, formed.shards
            ),
        ));
    }
    Ok(Checked {
        name,
        namespace,
        generation: skc.metadata.generation,
        owner,
        spec: spec.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{RedisClusterStatus, SyncKairosClusterStatus};

    fn skc(name: &str, spec: serde_json::Value) -> SyncKairosCluster {
        let mut s = SyncKairosCluster::new(name, serde_json::from_value(spec).unwrap());
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("uid-1".into());
        s
    }

    #[test]
    fn defaults_validate_and_owner_is_controller() {
        let c = validate(&skc("demo", serde_json::json!({}))).unwrap();
        assert_eq!(c.owner.controller, Some(true));
        assert_eq!(c.owner.uid, "uid-1");
        assert_eq!(c.redis_pods(), 6);
    }

    #[test]
    fn the_memory_engine_runs_one_server_pod_at_most() {
        let c = |spec| validate(&skc("d", spec)).unwrap();
        let mem = c(serde_json::json!({"redis": {"mode": "memory"}, "server": {"replicas": 3}}));
        assert!(mem.single_node());
        assert_eq!(mem.server_replicas(), 1);
        assert_eq!(
            mem.single_node_clamp().as_deref(),
            Some("server.replicas 3 is clamped to 1")
        );
        let zero = c(serde_json::json!({"redis": {"mode": "memory"}, "server": {"replicas": 0}}));
        assert_eq!(
            (zero.server_replicas(), zero.single_node_clamp()),
            (0, None)
        );
        let hpa = c(serde_json::json!({"redis": {"mode": "memory"},
            "server": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}}));
        assert_eq!(hpa.server_replicas(), 1);
        assert!(hpa.single_node_clamp().unwrap().contains("autoscaling"));
        // with Redis the spec is taken as written
        let redis = c(serde_json::json!({"server": {"replicas": 3}}));
        assert_eq!(
            (redis.server_replicas(), redis.single_node_clamp()),
            (3, None)
        );
    }

    #[test]
    fn long_names_are_rejected() {
        let e = validate(&skc(&"x".repeat(41), serde_json::json!({}))).unwrap_err();
        assert_eq!(e.reason, "NameTooLong");
        assert!(validate(&skc(&"x".repeat(40), serde_json::json!({}))).is_ok());
    }

    #[test]
    fn external_modes_need_secrets() {
        let e = validate(&skc(
            "d",
            serde_json::json!({"redis": {"mode": "external"}}),
        ))
        .unwrap_err();
        assert_eq!(e.reason, "MissingSecret");
        let e = validate(&skc(
            "d",
            serde_json::json!({"postgres": {"mode": "external"}}),
        ))
        .unwrap_err();
        assert_eq!(e.reason, "MissingSecret");
        assert!(
            validate(&skc(
                "d",
                serde_json::json!({"redis": {"mode": "external", "externalSecret": "r"}})
            ))
            .is_ok()
        );
    }

    #[test]
    fn growing_shards_of_a_formed_cluster_is_rejected() {
        let mut s = skc("d", serde_json::json!({"redis": {"shards": 4}}));
        s.status = Some(SyncKairosClusterStatus {
            redis: Some(RedisClusterStatus {
                shards: 3,
                ..Default::default()
            }),
            ..Default::default()
        });
        let e = validate(&s).unwrap_err();
        assert_eq!(e.reason, "ReshardingUnsupported");
        s.spec.redis.shards = 3;
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn autoscaling_bounds_are_checked() {
        let e = validate(&skc(
            "d",
            serde_json::json!({"server": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}),
        ))
        .unwrap_err();
        assert_eq!(e.reason, "InvalidAutoscaling");
    }
}
