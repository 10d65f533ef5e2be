//! Managed Redis Cluster objects: a StatefulSet of `shards × (1 + replicasPerShard)` pods in
//! cluster mode, its headless Service, its configuration and a PodDisruptionBudget. The cluster
//! itself (meet, slots, replicas) is formed by [`crate::redis_cluster`], not by these objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, Service, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    REDIS_BUS_PORT, REDIS_PORT, container_port, env_secret, meta, names, redis_password_secret,
    selector, selector_labels, service_port,
};
use crate::crd::StorageSpec;
use crate::validate::Checked;

/// Component label of Redis objects.
pub const COMPONENT: &str = "redis";

/// The managed Redis objects, in apply order.
#[derive(Debug, Clone)]
pub struct RedisObjects {
    /// redis.conf.
    pub config: ConfigMap,
    /// Headless Service giving each pod a stable DNS name.
    pub service: Service,
    /// The pods.
    pub statefulset: StatefulSet,
    /// At most one Redis pod down at a time during voluntary disruptions.
    pub pdb: PodDisruptionBudget,
}

/// Builds every managed Redis object.
pub fn objects(c: &Checked) -> RedisObjects {
    RedisObjects {
        config: config_map(c),
        service: headless_service(c),
        statefulset: statefulset(c),
        pdb: pdb(c),
    }
}

/// redis.conf: cluster mode, nodes.conf and the AOF on the persistent volume (a pod that
/// comes back keeps its node id and data, which is what lets formation heal it).
pub fn config_map(c: &Checked) -> ConfigMap {
    let conf = format!(
        "port {REDIS_PORT}\n\
         cluster-enabled yes\n\
         cluster-config-file /data/nodes.conf\n\
         cluster-node-timeout 5000\n\
         cluster-require-full-coverage yes\n\
         appendonly yes\n\
         dir /data\n\
         protected-mode no\n"
    );
    ConfigMap {
        metadata: meta(c, names::redis_config(&c.name), COMPONENT),
        data: Some(BTreeMap::from([("redis.conf".to_string(), conf)])),
        ..Default::default()
    }
}

/// Headless Service; publishes not-ready pods because nodes must meet before they are "ready".
pub fn headless_service(c: &Checked) -> Service {
    Service {
        metadata: meta(c, names::redis(&c.name), COMPONENT),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(c, COMPONENT)),
            ports: Some(vec![
                service_port("redis", REDIS_PORT),
                service_port("bus", REDIS_BUS_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Generated password Secret (key `password`), created only when absent.
pub fn password_secret(c: &Checked, password: &str) -> k8s_openapi::api::core::v1::Secret {
    super::generated_secret(
        c,
        names::redis_secret(&c.name),
        COMPONENT,
        BTreeMap::from([("password".to_string(), password.to_string())]),
    )
}

/// A PersistentVolumeClaim template named `data`.
pub fn data_claim(storage: &StorageSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_probe(port: &str, initial: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        ..Default::default()
    }
}

/// Prefer spreading a component's pods over nodes (soft: small clusters still schedule).
pub fn spread_over_nodes(c: &Checked, component: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(selector(c, component)),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Redis StatefulSet (Parallel pod management: formation needs all pods at once).
pub fn statefulset(c: &Checked) -> StatefulSet {
    let r = &c.spec.redis;
    let container = Container {
        name: "redis".into(),
        image: Some(r.image.clone()),
        command: Some(vec!["redis-server".into()]),
        args: Some(vec![
            "/etc/redis/redis.conf".into(),
            "--requirepass".into(),
            "$(REDIS_PASSWORD)".into(),
            "--masterauth".into(),
            "$(REDIS_PASSWORD)".into(),
        ]),
        env: Some(vec![env_secret(
            "REDIS_PASSWORD",
            &redis_password_secret(c),
            "password",
            false,
        )]),
        ports: Some(vec![
            container_port("redis", REDIS_PORT),
            container_port("bus", REDIS_BUS_PORT),
        ]),
        readiness_probe: Some(tcp_probe("redis", 2)),
        liveness_probe: Some(tcp_probe("redis", 15)),
        resources: r.resources.clone(),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "config".into(),
                mount_path: "/etc/redis".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        security_context: Some(super::restricted_container(true)),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta(c, names::redis(&c.name), COMPONENT),
        spec: StatefulSetSpec {
            replicas: Some(c.redis_pods()),
            service_name: Some(names::redis(&c.name)),
            pod_management_policy: Some("Parallel".into()),
            selector: selector(c, COMPONENT),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(super::labels(c, COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    affinity: Some(spread_over_nodes(c, COMPONENT)),
                    // uid 999 is the `redis` user of the official image.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(999),
                        run_as_group: Some(999),
                        fs_group: Some(999),
                        ..Default::default()
                    }),
                    volumes: Some(vec![Volume {
                        name: "config".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: names::redis_config(&c.name),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![data_claim(&r.storage)]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// At most one Redis pod voluntarily evicted at a time (a primary and its replica never both).
pub fn pdb(c: &Checked) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(c, names::redis(&c.name), COMPONENT),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(c, COMPONENT)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::checked;

    #[test]
    fn statefulset_sizes_and_selects_its_own_pods() {
        let c = checked(serde_json::json!({"redis": {"shards": 4, "replicasPerShard": 2}}));
        let s = statefulset(&c);
        let spec = &s.spec;
        assert_eq!(spec.replicas, Some(12));
        assert_eq!(spec.service_name.as_deref(), Some("demo-redis"));
        let sel = spec.selector.match_labels.as_ref().unwrap();
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in sel {
            assert_eq!(
                pod_labels.get(k),
                Some(v),
                "pod template lacks selector label {k}"
            );
        }
        assert_eq!(
            sel.get("app.kubernetes.io/component").map(String::as_str),
            Some("redis")
        );
        assert_eq!(
            s.metadata.owner_references.as_ref().unwrap()[0].kind,
            "SyncKairosCluster"
        );
    }

    #[test]
    fn nodes_conf_and_data_live_on_the_volume() {
        let c = checked(
            serde_json::json!({"redis": {"storage": {"size": "5Gi", "storageClassName": "fast"}}}),
        );
        let conf = config_map(&c).data.unwrap()["redis.conf"].clone();
        assert!(conf.contains("cluster-enabled yes"));
        assert!(conf.contains("cluster-config-file /data/nodes.conf"));
        assert!(conf.contains("appendonly yes"));
        let s = statefulset(&c);
        let spec = s.spec;
        let claim = &spec.volume_claim_templates.unwrap()[0];
        let cs = claim.spec.as_ref().unwrap();
        assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            cs.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
            "5Gi"
        );
        let mounts = spec.template.spec.unwrap().containers[0]
            .volume_mounts
            .clone()
            .unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "data" && m.mount_path == "/data")
        );
    }

    #[test]
    fn password_comes_from_the_users_secret_when_given() {
        let c = checked(serde_json::json!({"redis": {"passwordSecret": "mine"}}));
        let s = statefulset(&c).spec.template.spec.unwrap();
        let e = &s.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(
            e.value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "mine"
        );
    }

    #[test]
    fn headless_service_publishes_unready_pods() {
        let c = checked(serde_json::json!({}));
        let s = headless_service(&c).spec.unwrap();
        assert_eq!(s.cluster_ip.as_deref(), Some("None"));
        assert_eq!(s.publish_not_ready_addresses, Some(true));
        let ports: Vec<i32> = s.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, [6379, 16379]);
    }
}
