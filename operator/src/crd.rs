//! The `SyncKairosCluster` custom resource (group `synckairos.io`, `v1alpha1`).
//!
//! The Rust types are the single source of truth: `crds/synckairos.io_synckairosclusters.yaml`
//! is generated from them (`make crds`) and a test fails when the checked-in file drifts.
//! Every field has a default so that `spec: {}` is a working deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource; also the prefix of our finalizer and annotations.
pub const GROUP: &str = "synckairos.io";

/// Desired state of one SyncKairos deployment: the server, its Redis and its PostgreSQL.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "synckairos.io",
    version = "v1alpha1",
    kind = "SyncKairosCluster",
    plural = "synckairosclusters",
    singular = "synckairoscluster",
    shortname = "skc",
    category = "synckairos",
    namespaced,
    status = "SyncKairosClusterStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas","description":"server pods that pass /ready"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.replicas","description":"server pods wanted"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SyncKairosClusterSpec {
    /// Server image (also used by the migration Job). Changing it runs the migrations of the
    /// new image before the server rolls out.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Pull policy for the server and migration images.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Secrets for pulling images from private registries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The SyncKairos server pods.
    #[serde(default)]
    pub server: ServerSpec,
    /// Where the server keeps live session state.
    #[serde(default)]
    pub redis: RedisSpec,
    /// Where the server writes its audit log (optional).
    #[serde(default)]
    pub postgres: PostgresSpec,
}

/// Kubernetes image pull policy (the same three values the core API accepts).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when the node lacks the image.
    #[default]
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The string the core API expects.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The server Deployment and what sits in front of it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Server pods when autoscaling is off (the HPA owns the count when it is on).
    #[serde(default = "default_server_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU/memory requests and limits of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables for the server container (RUST_LOG, timeouts...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Seconds the server gets after SIGTERM to close WebSockets and drain requests.
    #[serde(default = "default_shutdown_grace")]
    #[schemars(range(min = 0, max = 600))]
    pub shutdown_grace_seconds: i64,
    /// autoscaling/v2 HorizontalPodAutoscaler; absent means a fixed replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// Optional Ingress in front of the server Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Pod placement: node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Pod placement: tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod placement: affinity rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Pod placement: topology spread constraints (empty: spread over nodes, best effort).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Access control of the API (on unless `enabled: false`).
    #[serde(default)]
    pub auth: AuthSpec,
}

/// Access control: the API keys and the token secret the server verifies, mounted as files
/// from one Secret (the user's, or `<cluster>-auth` generated once by the operator).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Require credentials. `false` runs the API open (`AUTH=off`): only behind something
    /// else that authenticates.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Secret holding the API keys (`name=secret` per line, secret plain or `sha256:<hex>`)
    /// and the HS256 token secret. Absent: the operator generates `<cluster>-auth` once,
    /// with an `admin` key, and never overwrites it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub existing_secret: Option<String>,
    /// Key of the Secret holding the API keys file.
    #[serde(default = "default_api_keys_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub api_keys_key: String,
    /// Key of the Secret holding the token secret.
    #[serde(default = "default_token_secret_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub token_secret_key: String,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            existing_secret: None,
            api_keys_key: default_api_keys_key(),
            token_secret_key: default_token_secret_key(),
        }
    }
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            replicas: default_server_replicas(),
            resources: None,
            env: Vec::new(),
            shutdown_grace_seconds: default_shutdown_grace(),
            autoscaling: None,
            ingress: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
            topology_spread_constraints: Vec::new(),
            auth: AuthSpec::default(),
        }
    }
}

/// Horizontal autoscaling of the server.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct AutoscalingSpec {
    /// Lower bound of server pods.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Upper bound of server pods.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of requests) the HPA aims for.
    #[serde(
        default = "default_target_cpu",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// Average open WebSocket connections per pod (metric `synckairos_websocket_connections`);
    /// only effective when a custom metrics adapter serves pod metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_web_socket_connections_per_pod: Option<i64>,
}

/// Ingress for the server (WebSocket-friendly timeouts are added for ingress-nginx).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name routed to the server.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// IngressClass name (empty: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret holding the TLS certificate for `host` (absent: plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Extra annotations; they win over the operator's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Who runs Redis.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RedisMode {
    /// The operator runs a Redis Cluster StatefulSet and forms the cluster itself.
    #[default]
    Managed,
    /// Connection details come from a Secret (a managed Redis service).
    External,
    /// No Redis: the server keeps sessions in its own memory (single node, lost on restart).
    /// The operator then runs exactly one server pod, whatever `server.replicas` says.
    Memory,
}

/// Redis: the live session store.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'external' || has(self.externalSecret)").message("redis.mode external needs redis.externalSecret"))]
pub struct RedisSpec {
    /// `managed`, `external` or `memory` (no Redis: one server pod, nothing durable).
    #[serde(default)]
    pub mode: RedisMode,
    /// Primaries of the managed cluster (16384 slots are split evenly). Growing it later is
    /// rejected until resharding is implemented.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 3, max = 64))]
    pub shards: i32,
    /// Replicas of each primary.
    #[serde(default = "default_replicas_per_shard")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas_per_shard: i32,
    /// Redis image (7.0 or later: formation uses CLUSTER ADDSLOTSRANGE).
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// CPU/memory of each Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent volume of each Redis pod (it keeps nodes.conf and the AOF).
    #[serde(default)]
    pub storage: StorageSpec,
    /// Secret (key `password`) with the Redis password; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// external mode: Secret with `REDIS_URL` or `REDIS_CLUSTER_NODES` (and optional `REDIS_PASSWORD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret: Option<String>,
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            mode: RedisMode::Managed,
            shards: default_shards(),
            replicas_per_shard: default_replicas_per_shard(),
            image: default_redis_image(),
            resources: None,
            storage: StorageSpec::default(),
            password_secret: None,
            external_secret: None,
        }
    }
}

/// Who runs PostgreSQL (the audit store).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PostgresMode {
    /// The operator runs a single-pod PostgreSQL StatefulSet.
    #[default]
    Managed,
    /// `DATABASE_URL` comes from a Secret (a managed PostgreSQL service).
    External,
    /// No audit store: the server runs without DATABASE_URL and no migrations run.
    Disabled,
}

/// PostgreSQL: the audit log.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'external' || has(self.externalSecret)").message("postgres.mode external needs postgres.externalSecret"))]
pub struct PostgresSpec {
    /// `managed`, `external` or `disabled`.
    #[serde(default)]
    pub mode: PostgresMode,
    /// PostgreSQL image.
    #[serde(default = "default_postgres_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// CPU/memory of the PostgreSQL container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent volume of the PostgreSQL pod.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Secret with keys `username`, `password`, `database`; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// external mode: Secret with key `DATABASE_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secret: Option<String>,
}

impl Default for PostgresSpec {
    fn default() -> Self {
        Self {
            mode: PostgresMode::Managed,
            image: default_postgres_image(),
            resources: None,
            storage: StorageSpec::default(),
            credentials_secret: None,
            external_secret: None,
        }
    }
}

/// A PersistentVolumeClaim template.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a Kubernetes quantity such as `1Gi`.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,
    /// StorageClass (absent: the cluster default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

/// Observed state, written by the operator at every reconcile.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncKairosClusterStatus {
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary for humans: Pending, Provisioning, Ready, Degraded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// RedisReady, PostgresReady, MigrationsComplete, ServerAvailable and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Server pods that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Server pods wanted by the Deployment (or the HPA).
    #[serde(default)]
    pub replicas: i32,
    /// What the operator last saw of the managed Redis Cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisClusterStatus>,
    /// Image whose migration Job completed (the server runs this image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_image: Option<String>,
    /// In-cluster URL of the server Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Redis Cluster facts reported in status.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterStatus {
    /// `cluster_state` as the nodes report it (`ok` or `fail`), or `forming`.
    pub state: String,
    /// Slots (of 16384) owned by a reachable primary.
    pub slots_assigned: i32,
    /// Nodes that are members of the cluster.
    pub nodes: i32,
    /// Members that are primaries with slots.
    pub primaries: i32,
    /// Members that replicate a primary.
    pub replicas: i32,
    /// Shards the cluster was formed with (growing `spec.redis.shards` needs resharding).
    pub shards: i32,
}

/// The server image the operator deploys when the spec names none: the one built from
/// the same workspace version as the operator (one source of truth, `make image` tags it).
pub const DEFAULT_SERVER_IMAGE: &str = concat!("synckairos:", env!("CARGO_PKG_VERSION"));

fn default_true() -> bool {
    true
}
fn default_api_keys_key() -> String {
    "api-keys".into()
}
fn default_token_secret_key() -> String {
    "token-secret".into()
}
fn default_image() -> String {
    DEFAULT_SERVER_IMAGE.into()
}
fn default_server_replicas() -> i32 {
    2
}
fn default_shutdown_grace() -> i64 {
    10
}
fn default_min_replicas() -> i32 {
    2
}
fn default_max_replicas() -> i32 {
    10
}
fn default_target_cpu() -> i32 {
    70
}
fn default_shards() -> i32 {
    3
}
fn default_replicas_per_shard() -> i32 {
    1
}
fn default_redis_image() -> String {
    "redis:7.2".into()
}
fn default_postgres_image() -> String {
    "postgres:15".into()
}
fn default_storage_size() -> String {
    "1Gi".into()
}

/// The CustomResourceDefinition as the API server should receive it.
pub fn crd() -> CustomResourceDefinition {
    SyncKairosCluster::crd()
}

/// The CRD rendered as the YAML document checked into `crds/` (what `crdgen` prints).
pub fn crd_yaml() -> Result<String, yaml_serde::Error> {
    let body = yaml_serde::to_string(&crd())?;
    Ok(format!(
        "# Generated by `make crds` (cargo run -p synckairos-operator --bin crdgen) from operator/src/crd.rs.\n# Do not edit by hand: a test fails when this file differs from the Rust types.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spec_takes_documented_defaults() {
        let spec: SyncKairosClusterSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.image, DEFAULT_SERVER_IMAGE);
        assert_eq!(spec.server.replicas, 2);
        assert_eq!(spec.redis.mode, RedisMode::Managed);
        assert_eq!((spec.redis.shards, spec.redis.replicas_per_shard), (3, 1));
        assert_eq!(spec.postgres.mode, PostgresMode::Managed);
        assert_eq!(spec.redis.storage.size, "1Gi");
        assert!(spec.server.auth.enabled);
        assert_eq!(spec.server.auth.existing_secret, None);
        assert_eq!(
            (
                spec.server.auth.api_keys_key.as_str(),
                spec.server.auth.token_secret_key.as_str()
            ),
            ("api-keys", "token-secret")
        );
        let off: SyncKairosClusterSpec =
            serde_json::from_str(r#"{"server": {"auth": {"enabled": false}}}"#).unwrap();
        assert!(!off.server.auth.enabled);
    }

    #[test]
    fn crd_names_scope_and_subresource() {
        let crd = crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("synckairosclusters.synckairos.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["skc".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<_> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Phase", "Ready", "Desired", "Endpoint", "Age"]);
    }

    #[test]
    fn schema_carries_defaults_bounds_and_rules() {
        let json = serde_json::to_value(crd()).unwrap();
        let spec = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"];
        assert_eq!(spec["image"]["default"], DEFAULT_SERVER_IMAGE);
        assert_eq!(
            spec["redis"]["properties"]["shards"]["minimum"].as_f64(),
            Some(3.0)
        );
        assert_eq!(
            spec["redis"]["properties"]["mode"]["enum"],
            serde_json::json!(["managed", "external", "memory"])
        );
        let rules = spec["redis"]["x-kubernetes-validations"].to_string();
        assert!(rules.contains("externalSecret"), "{rules}");
    }

    /// The drift gate: the checked-in CRD must be exactly what the types generate.
    #[test]
    fn checked_in_crd_matches_the_types() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crds/synckairos.io_synckairosclusters.yaml"
        );
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        let generated = crd_yaml().unwrap();
        assert!(
            on_disk == generated,
            "crds/synckairos.io_synckairosclusters.yaml is stale: run `make crds` and commit it"
        );
    }
}
