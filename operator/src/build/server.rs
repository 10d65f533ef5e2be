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
    Container, EnvVar, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler, PodSpec,
    PodTemplateSpec, Probe, Secret, SecretVolumeSource, Service, ServiceSpec, SleepAction,
    TopologySpreadConstraint, Volume, VolumeMount,
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
    ADMIN_PORT, DATABASE_ANNOTATION, IMAGE_ANNOTATION, SERVER_PORT, app_pod_security, auth_secret,
    container_port, database_env, env, generated_secret, labels, meta, migration_target, names,
    redis_env, restricted_container, selector, selector_labels, service_host, service_port,
};
use crate::validate::Checked;

/// Component label of server objects.
pub const COMPONENT: &str = "server";
/// Component label of migration Jobs.
pub const MIGRATION_COMPONENT: &str = "migration";
/// Seconds the preStop hook waits so Services and Ingresses stop routing to a terminating
/// pod before it receives SIGTERM.
pub const PRE_STOP_SECONDS: i64 = 5;
/// Name of the server's public HTTP port (API, WebSocket, demo page).
pub const HTTP: &str = "http";
/// Name of the server's admin port (`/metrics`, `/ready`, `/health`): probes and Prometheus
/// use it, the Ingress never routes to it.
pub const ADMIN: &str = "admin";
/// Where the auth Secret is mounted in the server container.
pub const AUTH_DIR: &str = "/etc/synckairos/auth";
/// Name of the auth Secret's volume.
const AUTH_VOLUME: &str = "auth";
/// What the Ingress routes to the server, as `(path, pathType)`: the API, the WebSocket and
/// the demo page (`/`, its assets under `/demo`, the favicon). `/metrics`, `/ready`,
/// `/health` and anything else stay inside the cluster.
pub const INGRESS_PATHS: [(&str, &str); 5] = [
    ("/v1", "Prefix"),
    ("/ws", "Prefix"),
    ("/demo", "Prefix"),
    ("/", "Exact"),
    ("/favicon.ico", "Exact"),
];

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
        env("ADMIN_PORT", ADMIN_PORT.to_string()),
        env("BIND", "0.0.0.0"),
        env("LOG_FORMAT", "json"),
        env(
            "SHUTDOWN_GRACE_SECONDS",
            c.spec.server.shutdown_grace_seconds.to_string(),
        ),
    ];
    e.extend(auth_env(c));
    e.extend(redis_env(c));
    e.extend(database_env(c));
    e.extend(c.spec.server.env.iter().cloned());
    e
}

/// The server's credentials: the files of the mounted auth Secret, or `AUTH=off` (the
/// server refuses a non-loopback bind without credentials unless told so explicitly).
pub fn auth_env(c: &Checked) -> Vec<EnvVar> {
    let a = &c.spec.server.auth;
    if auth_secret(c).is_none() {
        return vec![env("AUTH", "off")];
    }
    vec![
        env("API_KEYS_FILE", format!("{AUTH_DIR}/{}", a.api_keys_key)),
        env(
            "TOKEN_SECRET_FILE",
            format!("{AUTH_DIR}/{}", a.token_secret_key),
        ),
    ]
}

/// Name of the API key the generated auth Secret holds.
pub const GENERATED_KEY_NAME: &str = "admin";

/// The generated auth Secret (`<cluster>-auth`, created only when absent): one API key line
/// `admin=<api_key>` and the HS256 token secret, under the spec's key names. The values are
/// passed in so the builder stays pure.
pub fn auth_secret_object(c: &Checked, api_key: &str, token_secret: &str) -> Secret {
    let a = &c.spec.server.auth;
    generated_secret(
        c,
        names::auth_secret(&c.name),
        COMPONENT,
        BTreeMap::from([
            (
                a.api_keys_key.clone(),
                format!("{GENERATED_KEY_NAME}={api_key}\n"),
            ),
            (a.token_secret_key.clone(), token_secret.to_string()),
        ]),
    )
}

/// The auth Secret as a read-only volume with exactly its two keys (a missing key keeps the
/// pod from starting, with the kubelet naming it), readable by the pod's group only.
fn auth_volume(c: &Checked) -> Option<(Volume, VolumeMount)> {
    let secret = auth_secret(c)?;
    let a = &c.spec.server.auth;
    let item = |key: &str| KeyToPath {
        key: key.into(),
        path: key.into(),
        ..Default::default()
    };
    Some((
        Volume {
            name: AUTH_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                items: Some(vec![item(&a.api_keys_key), item(&a.token_secret_key)]),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeMount {
            name: AUTH_VOLUME.into(),
            mount_path: AUTH_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    ))
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(ADMIN.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The server Deployment. With autoscaling the replica count is left to the HPA (the field
/// is not applied, so server-side apply never fights the HPA). On the memory engine it runs
/// one pod at most and replaces it with `Recreate`: a rolling update's surge pod would be a
/// second memory engine holding other sessions.
pub fn deployment(c: &Checked) -> Deployment {
    let s = &c.spec.server;
    let auth = auth_volume(c);
    let container = Container {
        name: "synckairos".into(),
        image: Some(c.spec.image.clone()),
        image_pull_policy: Some(c.spec.image_pull_policy.as_str().into()),
        args: Some(vec!["serve".into()]),
        env: Some(server_env(c)),
        ports: Some(vec![
            container_port(HTTP, SERVER_PORT),
            container_port(ADMIN, ADMIN_PORT),
        ]),
        volume_mounts: auth.as_ref().map(|(_, m)| vec![m.clone()]),
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
            replicas: (s.autoscaling.is_none() || c.single_node()).then(|| c.server_replicas()),
            selector: selector(c, COMPONENT),
            strategy: Some(if c.single_node() {
                DeploymentStrategy {
                    type_: Some("Recreate".into()),
                    rolling_update: None,
                }
            } else {
                DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::Int(0)),
                        max_surge: Some(IntOrString::String("25%".into())),
                    }),
                }
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(c, COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: auth.map(|(v, _)| vec![v]),
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

/// The server Service: plain ClusterIP, no session affinity; the public port and the admin
/// port (which a ServiceMonitor scrapes and the operator probes for `/ready`).
pub fn service(c: &Checked) -> Service {
    Service {
        metadata: meta(c, names::server(&c.name), COMPONENT),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            session_affinity: Some("None".into()),
            selector: Some(selector_labels(c, COMPONENT)),
            ports: Some(vec![
                service_port(HTTP, SERVER_PORT),
                service_port(ADMIN, ADMIN_PORT),
            ]),
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

/// URL of the server Service's admin port: where the operator asks `/ready`.
pub fn admin_endpoint(c: &Checked) -> String {
    format!(
        "http://{}:{ADMIN_PORT}",
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
                    paths: INGRESS_PATHS
                        .iter()
                        .map(|(path, path_type)| HTTPIngressPath {
                            path: Some((*path).into()),
                            path_type: (*path_type).into(),
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
                        })
                        .collect(),
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
/// None on the memory engine, which runs one pod at most.
pub fn hpa(c: &Checked) -> Option<HorizontalPodAutoscaler> {
    if c.single_node() {
        return None;
    }
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

    /// `(name, value)` of the plain env vars of the server container.
    fn plain_env(c: &Checked) -> BTreeMap<String, String> {
        container(&deployment(c))
            .env
            .unwrap()
            .into_iter()
            .filter_map(|e| Some((e.name, e.value?)))
            .collect()
    }

    #[test]
    fn probes_and_metrics_use_the_admin_port_and_the_service_exposes_both() {
        let c = checked(serde_json::json!({}));
        let k = container(&deployment(&c));
        let ports: Vec<_> = k
            .ports
            .clone()
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [
                (HTTP.to_string(), SERVER_PORT),
                (ADMIN.to_string(), ADMIN_PORT)
            ]
        );
        for probe in [k.readiness_probe.unwrap(), k.liveness_probe.unwrap()] {
            assert_eq!(
                probe.http_get.unwrap().port,
                IntOrString::String(ADMIN.into())
            );
        }
        assert_eq!(plain_env(&c)["ADMIN_PORT"], "9090");
        let svc: Vec<_> = service(&c)
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port, p.target_port.unwrap()))
            .collect();
        assert_eq!(
            svc,
            [
                (HTTP.into(), SERVER_PORT, IntOrString::String(HTTP.into())),
                (ADMIN.into(), ADMIN_PORT, IntOrString::String(ADMIN.into())),
            ]
        );
        assert_eq!(admin_endpoint(&c), "http://demo-server.ns.svc:9090");
    }

    #[test]
    fn auth_mounts_the_generated_or_the_named_secret_or_runs_open_explicitly() {
        // default: the generated Secret, both keys as files, pointed at by the env
        let c = checked(serde_json::json!({}));
        let d = deployment(&c);
        let pod = d.spec.template.spec.clone().unwrap();
        let vol = &pod.volumes.as_ref().unwrap()[0];
        let src = vol.secret.as_ref().unwrap();
        assert_eq!(src.secret_name.as_deref(), Some("demo-auth"));
        let items: Vec<_> = src
            .items
            .clone()
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.path))
            .collect();
        assert_eq!(
            items,
            [
                ("api-keys".into(), "api-keys".into()),
                ("token-secret".into(), "token-secret".into())
            ]
        );
        let mount = &container(&d).volume_mounts.unwrap()[0];
        assert_eq!(
            (
                mount.name.as_str(),
                mount.mount_path.as_str(),
                mount.read_only
            ),
            (vol.name.as_str(), AUTH_DIR, Some(true))
        );
        let e = plain_env(&c);
        assert_eq!(e["API_KEYS_FILE"], "/etc/synckairos/auth/api-keys");
        assert_eq!(e["TOKEN_SECRET_FILE"], "/etc/synckairos/auth/token-secret");
        assert!(!e.contains_key("AUTH"));
        // the group of the pod (not everyone) reads the files
        assert_eq!(src.default_mode, Some(0o440));
        assert_eq!(
            pod.security_context.unwrap().fs_group,
            Some(65532),
            "the non-root server must be able to read its credentials"
        );

        // the user's Secret with other key names
        let c = checked(
            serde_json::json!({"server": {"auth": {"existingSecret": "mine",
            "apiKeysKey": "keys", "tokenSecretKey": "jwt"}}}),
        );
        let d = deployment(&c);
        let src = d.spec.template.spec.unwrap().volumes.unwrap()[0]
            .secret
            .clone()
            .unwrap();
        assert_eq!(src.secret_name.as_deref(), Some("mine"));
        assert_eq!(plain_env(&c)["API_KEYS_FILE"], "/etc/synckairos/auth/keys");
        assert_eq!(
            plain_env(&c)["TOKEN_SECRET_FILE"],
            "/etc/synckairos/auth/jwt"
        );

        // disabled: AUTH=off, nothing mounted (the server refuses to bind 0.0.0.0 without it)
        let c = checked(
            serde_json::json!({"server": {"auth": {"enabled": false, "existingSecret": "mine"}}}),
        );
        let d = deployment(&c);
        assert_eq!(plain_env(&c)["AUTH"], "off");
        assert!(!plain_env(&c).contains_key("API_KEYS_FILE"));
        assert!(container(&d).volume_mounts.is_none());
        assert!(d.spec.template.spec.unwrap().volumes.is_none());
    }

    #[test]
    fn the_generated_auth_secret_holds_one_admin_key_and_the_token_secret() {
        let c = checked(serde_json::json!({"server": {"auth": {"tokenSecretKey": "jwt"}}}));
        let s = auth_secret_object(&c, "KEY", "TOKEN");
        assert_eq!(s.metadata.name.as_deref(), Some("demo-auth"));
        assert_eq!(s.metadata.owner_references.unwrap()[0].uid, c.owner.uid);
        let d = s.string_data.unwrap();
        assert_eq!(d["api-keys"], "admin=KEY\n");
        assert_eq!(d["jwt"], "TOKEN");
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn the_ingress_routes_the_api_the_websocket_and_the_demo_only() {
        let c = checked(serde_json::json!({"server": {"ingress": {"host": "k.example.com"}}}));
        let spec = ingress(&c).unwrap().spec.unwrap();
        let paths: Vec<_> = spec.rules.unwrap()[0]
            .http
            .clone()
            .unwrap()
            .paths
            .into_iter()
            .map(|p| {
                let port = p.backend.service.unwrap().port.unwrap().name.unwrap();
                assert_eq!(port, HTTP, "the admin port is never routed");
                (p.path.unwrap(), p.path_type)
            })
            .collect();
        assert_eq!(
            paths,
            [
                ("/v1".to_string(), "Prefix".to_string()),
                ("/ws".into(), "Prefix".into()),
                ("/demo".into(), "Prefix".into()),
                ("/".into(), "Exact".into()),
                ("/favicon.ico".into(), "Exact".into()),
            ]
        );
        // what stays inside: no routed path is a prefix of these (Prefix matches by segment)
        for private in ["/metrics", "/ready", "/health", "/openapi.json"] {
            assert!(
                !paths.iter().any(|(p, t)| p == private
                    || (t == "Prefix" && private.starts_with(&format!("{p}/")))),
                "{private} routed"
            );
        }
    }

    #[test]
    fn the_memory_engine_runs_one_pod_recreated_without_an_hpa() {
        let c = checked(serde_json::json!({"redis": {"mode": "memory"},
            "server": {"replicas": 4, "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}}));
        let d = deployment(&c);
        assert_eq!(d.spec.replicas, Some(1));
        let strategy = d.spec.strategy.clone().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
        assert!(strategy.rolling_update.is_none());
        assert!(hpa(&c).is_none());
        let e = plain_env(&c);
        assert!(!e.contains_key("REDIS_URL") && !e.contains_key("REDIS_CLUSTER_NODES"));
        // with Redis the same spec scales as written
        let redis = checked(serde_json::json!({"server": {"replicas": 4}}));
        assert_eq!(deployment(&redis).spec.replicas, Some(4));
        assert_eq!(
            deployment(&redis).spec.strategy.unwrap().type_.as_deref(),
            Some("RollingUpdate")
        );
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
