//! Server objects: the migration Job of an image, the Deployment (probes, drain, no sticky
//! sessions), its Service, optional Ingress, PodDisruptionBudget and autoscaling/v2 HPA.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, SleepAction,
    TopologySpreadConstraint,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    DATABASE_ANNOTATION, IMAGE_ANNOTATION, SERVER_PORT, app_pod_security, database_env, env,
    labels, meta, migration_target, names, redis_env, restricted_container, selector,
    selector_labels, service_host,
};
use crate::validate::Checked;

/// Component label of server objects.
pub const COMPONENT: &str = "server";
/// Component label of migration Jobs.
pub const MIGRATION_COMPONENT: &str = "migration";
/// Seconds the preStop hook waits so Services and Ingresses stop routing to a terminating
/// pod before it receives SIGTERM.
pub const PRE_STOP_SECONDS: i64 = 5;
/// Name of the server's HTTP port.
const HTTP: &str = "http";

/// Every server object; HPA and Ingress are optional.
#[derive(Debug, Clone)]
pub struct ServerObjects {
    /// Server pods.
    pub deployment: Deployment,
    /// ClusterIP Service (no session affinity: any pod serves any session).
    pub service: Service,
    /// Keeps at least all-but-one pod during voluntary disruptions.
    pub pdb: PodDisruptionBudget,
    /// Present when `server.autoscaling` is set.
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// Present when `server.ingress` is set.
    pub ingress: Option<Ingress>,
}

/// Builds the server objects (not the migration Job).
pub fn objects(c: &Checked) -> ServerObjects {
    ServerObjects {
        deployment: deployment(c),
        service: service(c),
        pdb: pdb(c),
        hpa: hpa(c),
        ingress: ingress(c),
    }
}

/// Environment of the server container: fixed settings, Redis, DATABASE_URL, then the
/// user's extras (last, so they can override ours).
pub fn server_env(c: &Checked) -> Vec<EnvVar> {
    let mut e = vec![
        env("PORT", SERVER_PORT.to_string()),
        env("BIND", "0.0.0.0"),
        env("LOG_FORMAT", "json"),
        env(
            "SHUTDOWN_GRACE_SECONDS",
            c.spec.server.shutdown_grace_seconds.to_string(),
        ),
    ];
    e.extend(redis_env(c));
    e.extend(database_env(c));
    e.extend(c.spec.server.env.iter().cloned());
    e
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(HTTP.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The server Deployment. With autoscaling the replica count is left to the HPA (the field
/// is not applied, so server-side apply never fights the HPA).
pub fn deployment(c: &Checked) -> Deployment {
    let s = &c.spec.server;
    let container = Container {
        name: "synckairos".into(),
        image: Some(c.spec.image.clone()),
        image_pull_policy: Some(c.spec.image_pull_policy.as_str().into()),
        args: Some(vec!["serve".into()]),
        env: Some(server_env(c)),
        ports: Some(vec![ContainerPort {
            name: Some(HTTP.into()),
            container_port: SERVER_PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(http_probe("/ready", 5, 2)),
        liveness_probe: Some(http_probe("/health", 10, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SECONDS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: s.resources.clone(),
        security_context: Some(restricted_container(true)),
        ..Default::default()
    };
    let topology = if s.topology_spread_constraints.is_empty() {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "kubernetes.io/hostname".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(selector(c, COMPONENT)),
            ..Default::default()
        }]
    } else {
        s.topology_spread_constraints.clone()
    };
    Deployment {
        metadata: meta(c, names::server(&c.name), COMPONENT),
        spec: DeploymentSpec {
            replicas: s.autoscaling.is_none().then_some(s.replicas),
            selector: selector(c, COMPONENT),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(c, COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(app_pod_security()),
                    termination_grace_period_seconds: Some(
                        PRE_STOP_SECONDS + s.shutdown_grace_seconds + 5,
                    ),
                    image_pull_secrets: (!c.spec.image_pull_secrets.is_empty())
                        .then(|| c.spec.image_pull_secrets.clone()),
                    node_selector: (!s.node_selector.is_empty()).then(|| s.node_selector.clone()),
                    tolerations: (!s.tolerations.is_empty()).then(|| s.tolerations.clone()),
                    affinity: s.affinity.clone(),
                    topology_spread_constraints: Some(topology),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The server Service: plain ClusterIP, no session affinity.
pub fn service(c: &Checked) -> Service {
    Service {
        metadata: meta(c, names::server(&c.name), COMPONENT),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            session_affinity: Some("None".into()),
            selector: Some(selector_labels(c, COMPONENT)),
            ports: Some(vec![ServicePort {
                name: Some(HTTP.into()),
                port: SERVER_PORT,
                target_port: Some(IntOrString::String(HTTP.into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// URL of the server Service inside the cluster (reported in status, probed for `Ready`).
pub fn endpoint(c: &Checked) -> String {
    format!(
        "http://{}:{SERVER_PORT}",
        service_host(c, &names::server(&c.name))
    )
}

/// Ingress annotations for long-lived WebSockets (ingress-nginx); the user's win.
pub fn ingress_annotations(user: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (
            "nginx.ingress.kubernetes.io/proxy-read-timeout".to_string(),
            "3600".to_string(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-send-timeout".to_string(),
            "3600".to_string(),
        ),
    ]);
    a.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
    a
}

/// Optional Ingress routing `host` to the server Service.
pub fn ingress(c: &Checked) -> Option<Ingress> {
    let i = c.spec.server.ingress.as_ref()?;
    let mut metadata = meta(c, names::ingress(&c.name), COMPONENT);
    metadata.annotations = Some(ingress_annotations(&i.annotations));
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: i.class_name.clone(),
            tls: i.tls_secret_name.as_ref().map(|s| {
                vec![IngressTLS {
                    hosts: Some(vec![i.host.clone()]),
                    secret_name: Some(s.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(i.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::server(&c.name),
                                port: Some(ServiceBackendPort {
                                    name: Some(HTTP.into()),
                                    ..Default::default()
                                }),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Server PodDisruptionBudget: one pod at a time.
pub fn pdb(c: &Checked) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(c, names::server(&c.name), COMPONENT),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(c, COMPONENT)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// autoscaling/v2 HPA on CPU, plus WebSocket connections per pod when a target is given.
pub fn hpa(c: &Checked) -> Option<HorizontalPodAutoscaler> {
    let a = c.spec.server.autoscaling.as_ref()?;
    let mut metrics = vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(a.target_cpu_utilization_percentage),
                ..Default::default()
            },
        }),
        ..Default::default()
    }];
    if let Some(conns) = a.target_web_socket_connections_per_pod {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: "synckairos_websocket_connections".into(),
                    ..Default::default()
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(conns.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
    }
    Some(HorizontalPodAutoscaler {
        metadata: meta(c, names::server(&c.name), COMPONENT),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: names::server(&c.name),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            // Scaling in drops WebSockets (clients reconnect): do it slowly.
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(300),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        },
        ..Default::default()
    })
}

/// The migration Job of the spec's image and database: `synckairos migrate` against
/// DATABASE_URL. Its name hashes both ([`names::migration`]), so switching PostgreSQL to
/// another database with the same image makes a new Job instead of reusing a succeeded one.
pub fn migration_job(c: &Checked) -> Job {
    let target = migration_target(c);
    let mut metadata = meta(
        c,
        names::migration(&c.name, &c.spec.image, &target),
        MIGRATION_COMPONENT,
    );
    metadata.annotations = Some(BTreeMap::from([
        (IMAGE_ANNOTATION.to_string(), c.spec.image.clone()),
        (DATABASE_ANNOTATION.to_string(), target),
    ]));
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(6),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(c, MIGRATION_COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("OnFailure".into()),
                    containers: vec![Container {
                        name: "migrate".into(),
                        image: Some(c.spec.image.clone()),
                        image_pull_policy: Some(c.spec.image_pull_policy.as_str().into()),
                        args: Some(vec!["migrate".into()]),
                        env: Some(database_env(c)),
                        security_context: Some(restricted_container(true)),
                        ..Default::default()
                    }],
                    security_context: Some(app_pod_security()),
                    image_pull_secrets: (!c.spec.image_pull_secrets.is_empty())
                        .then(|| c.spec.image_pull_secrets.clone()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::checked;

    fn container(d: &Deployment) -> Container {
        d.spec.template.spec.as_ref().unwrap().containers[0].clone()
    }

    #[test]
    fn deployment_probes_drain_and_selector() {
        let c = checked(serde_json::json!({"server": {"replicas": 3, "shutdownGraceSeconds": 20}}));
        let d = deployment(&c);
        let spec = &d.spec;
        assert_eq!(spec.replicas, Some(3));
        let k = container(&d);
        assert_eq!(
            k.readiness_probe.unwrap().http_get.unwrap().path.as_deref(),
            Some("/ready")
        );
        assert_eq!(
            k.liveness_probe.unwrap().http_get.unwrap().path.as_deref(),
            Some("/health")
        );
        assert_eq!(
            k.lifecycle
                .unwrap()
                .pre_stop
                .unwrap()
                .sleep
                .unwrap()
                .seconds,
            PRE_STOP_SECONDS
        );
        let pod = spec.template.spec.as_ref().unwrap();
        // the pod must outlive preStop + the server's own drain
        assert_eq!(
            pod.termination_grace_period_seconds,
            Some(PRE_STOP_SECONDS + 20 + 5)
        );
        let sel = spec.selector.match_labels.as_ref().unwrap();
        let tl = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(sel.iter().all(|(k, v)| tl.get(k) == Some(v)));
        assert_eq!(k.args, Some(vec!["serve".to_string()]));
        let env = k.env.unwrap();
        let val = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(val("PORT").as_deref(), Some("8080"));
        assert_eq!(val("SHUTDOWN_GRACE_SECONDS").as_deref(), Some("20"));
    }

    #[test]
    fn autoscaling_leaves_replicas_to_the_hpa() {
        let c = checked(
            serde_json::json!({"server": {"autoscaling": {"minReplicas": 3, "maxReplicas": 9, "targetWebSocketConnectionsPerPod": 5000}}}),
        );
        assert_eq!(deployment(&c).spec.replicas, None);
        let h = hpa(&c).unwrap().spec;
        assert_eq!((h.min_replicas, h.max_replicas), (Some(3), 9));
        let m = h.metrics.unwrap();
        assert_eq!(
            m[0].resource.as_ref().unwrap().target.average_utilization,
            Some(70)
        );
        assert_eq!(
            m[1].pods.as_ref().unwrap().target.average_value,
            Some(Quantity("5000".into()))
        );
        assert_eq!(h.scale_target_ref.name, "demo-server");
        assert!(hpa(&checked(serde_json::json!({}))).is_none());
    }

    #[test]
    fn user_env_comes_last_and_resources_pass_through() {
        let c = checked(serde_json::json!({"server": {
            "env": [{"name": "RUST_LOG", "value": "debug"}],
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "256Mi"}}
        }}));
        let k = container(&deployment(&c));
        assert_eq!(k.env.unwrap().last().unwrap().name, "RUST_LOG");
        assert_eq!(k.resources.unwrap().requests.unwrap()["cpu"].0, "250m");
    }

    #[test]
    fn service_has_no_sticky_sessions() {
        let s = service(&checked(serde_json::json!({}))).spec.unwrap();
        assert_eq!(s.session_affinity.as_deref(), Some("None"));
        assert_eq!(s.ports.unwrap()[0].port, SERVER_PORT);
    }

    #[test]
    fn ingress_has_websocket_timeouts_tls_and_user_overrides() {
        let c = checked(serde_json::json!({"server": {"ingress": {
            "host": "kairos.example.com", "className": "nginx", "tlsSecretName": "kairos-tls",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"}
        }}}));
        let i = ingress(&c).unwrap();
        let a = i.metadata.annotations.unwrap();
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "7200");
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-send-timeout"], "3600");
        let spec = i.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        assert_eq!(
            spec.tls.unwrap()[0].secret_name.as_deref(),
            Some("kairos-tls")
        );
        assert!(ingress(&checked(serde_json::json!({}))).is_none());
    }

    #[test]
    fn migration_job_runs_migrate_with_the_spec_image() {
        let c = checked(serde_json::json!({"image": "reg/synckairos:2.0"}));
        let j = migration_job(&c);
        let target = "managed:demo-postgres.ns.svc:5432/demo-postgres-credentials";
        assert_eq!(
            j.metadata.name,
            Some(names::migration("demo", "reg/synckairos:2.0", target))
        );
        let a = j.metadata.annotations.unwrap();
        assert_eq!(a[IMAGE_ANNOTATION], "reg/synckairos:2.0");
        assert_eq!(a[DATABASE_ANNOTATION], target);
        let pod = j.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].args, Some(vec!["migrate".to_string()]));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("reg/synckairos:2.0")
        );
        assert!(
            pod.containers[0]
                .env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == "DATABASE_URL")
        );
    }
}
