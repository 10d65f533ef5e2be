//! The pure middle of the pipeline: plain functions from a [`Checked`] cluster to the
//! Kubernetes objects it needs. No client, no clock, no randomness (generated passwords are
//! passed in), so every object can be unit-tested and schema-validated offline.

pub mod postgres;
pub mod redis;
pub mod server;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ContainerPort, EnvVar, EnvVarSource, PodSecurityContext,
    SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service, ServicePort,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::{PostgresMode, RedisMode};

use crate::validate::Checked;

/// Port the server listens on inside its pod (the chart's NetworkPolicy opens the same port).
pub const SERVER_PORT: i32 = 8080;
/// The server's admin listener (`ADMIN_PORT`): `/metrics`, `/ready` and `/health`, kept off
/// the public port so the Ingress never exposes them (the chart's NetworkPolicy opens it to
/// the operator's `/ready` probe and to Prometheus).
pub const ADMIN_PORT: i32 = 9090;
/// Transport of every Service and container port. Written out although it is the default:
/// server-side apply on Kubernetes before 1.21 refuses a port list entry without it.
pub const TCP: &str = "TCP";
/// Redis client port.
pub const REDIS_PORT: i32 = 6379;
/// Redis Cluster bus port (client port + 10000, Redis' fixed rule).
pub const REDIS_BUS_PORT: i32 = 16379;
/// PostgreSQL port.
pub const POSTGRES_PORT: i32 = 5432;
/// Field manager of every server-side apply, so our fields have exactly one owner.
pub const FIELD_MANAGER: &str = "synckairos-operator";
/// Annotation on migration Jobs naming the image they migrate for.
pub const IMAGE_ANNOTATION: &str = "synckairos.io/image";
/// Annotation on migration Jobs naming the database they migrate ([`migration_target`]).
pub const DATABASE_ANNOTATION: &str = "synckairos.io/database";

/// Names of every object derived from a cluster, in one place so builders and the
/// reconciler cannot disagree.
pub mod names {
    /// Redis StatefulSet, its headless Service and its PodDisruptionBudget.
    pub fn redis(c: &str) -> String {
        format!("{c}-redis")
    }
    /// Redis configuration.
    pub fn redis_config(c: &str) -> String {
        format!("{c}-redis-config")
    }
    /// Generated Redis password Secret.
    pub fn redis_secret(c: &str) -> String {
        format!("{c}-redis-auth")
    }
    /// PostgreSQL StatefulSet and Service.
    pub fn postgres(c: &str) -> String {
        format!("{c}-postgres")
    }
    /// Generated PostgreSQL credentials Secret.
    pub fn postgres_secret(c: &str) -> String {
        format!("{c}-postgres-credentials")
    }
    /// Generated API key and token secret of the server.
    pub fn auth_secret(c: &str) -> String {
        format!("{c}-auth")
    }
    /// Server Deployment, Service, PodDisruptionBudget and HPA.
    pub fn server(c: &str) -> String {
        format!("{c}-server")
    }
    /// Ingress.
    pub fn ingress(c: &str) -> String {
        c.to_string()
    }
    /// Migration Job of one image against one database ([`super::migration_target`]): a new
    /// image or another database gets a new Job, an unchanged pair reuses the one that ran.
    /// Always `c` plus 17 characters (`-migrate-` and 8 hex digits).
    pub fn migration(c: &str, image: &str, target: &str) -> String {
        format!("{c}-migrate-{:08x}", super::migration_hash(image, target))
    }
}

/// Stable 32-bit FNV-1a hash of an image reference and a database target (names one
/// migration Job per pair). A NUL byte, which neither can contain, separates the two, so
/// moving characters from one to the other changes the input.
pub fn migration_hash(image: &str, target: &str) -> u32 {
    image
        .bytes()
        .chain(std::iter::once(0))
        .chain(target.bytes())
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
}

/// Which database the migration Job migrates, as a stable string: managed mode names the
/// PostgreSQL Service (host and port) and the credentials Secret (which names the database
/// and role), external mode the Secret holding `DATABASE_URL`. Anything that can point
/// `DATABASE_URL` at another database changes it, so the Job name changes with it and the
/// new database is migrated before the server rolls out onto it.
pub fn migration_target(c: &Checked) -> String {
    match c.spec.postgres.mode {
        PostgresMode::Managed => format!(
            "managed:{}:{POSTGRES_PORT}/{}",
            service_host(c, &names::postgres(&c.name)),
            postgres_credentials_secret(c)
        ),
        PostgresMode::External => format!(
            "external:{}",
            c.spec
                .postgres
                .external_secret
                .as_deref()
                .unwrap_or_default()
        ),
        PostgresMode::Disabled => "disabled".to_string(),
    }
}

/// Labels that select one component's pods (never change once created: selectors are immutable).
pub fn selector_labels(c: &Checked, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            crate::labels::NAME.to_string(),
            crate::labels::APP.to_string(),
        ),
        (crate::labels::INSTANCE.to_string(), c.name.clone()),
        (crate::labels::COMPONENT.to_string(), component.to_string()),
    ])
}

/// Selector labels plus the managed-by label on every object.
pub fn labels(c: &Checked, component: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(c, component);
    l.insert(
        crate::labels::MANAGED_BY.to_string(),
        FIELD_MANAGER.to_string(),
    );
    l
}

/// Metadata of an object owned by the cluster (namespace, labels, controller owner ref).
pub fn meta(c: &Checked, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(c.namespace.clone()),
        labels: Some(labels(c, component)),
        owner_references: Some(vec![c.owner.clone()]),
        ..Default::default()
    }
}

/// A label selector on a component's pods.
pub fn selector(c: &Checked, component: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(c, component)),
        ..Default::default()
    }
}

/// Plain environment variable.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// Environment variable read from a Secret key.
pub fn env_secret(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: optional.then_some(true),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A named TCP container port.
pub fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some(TCP.into()),
        ..Default::default()
    }
}

/// A named TCP Service port forwarding to the container port of the same name.
pub fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some(TCP.into()),
        ..Default::default()
    }
}

/// Pod security context for our own images (distroless, non-root uid 65532).
pub fn app_pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        run_as_group: Some(65532),
        // mounted Secrets (the server's credentials) are group-readable by this gid only
        fs_group: Some(65532),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container security context: no privilege escalation, read-only root, no capabilities.
pub fn restricted_container(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(read_only_root),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Name of the Secret holding the Redis password (the user's, or our generated one).
pub fn redis_password_secret(c: &Checked) -> String {
    c.spec
        .redis
        .password_secret
        .clone()
        .unwrap_or_else(|| names::redis_secret(&c.name))
}

/// Name of the Secret with PostgreSQL credentials (the user's, or our generated one).
pub fn postgres_credentials_secret(c: &Checked) -> String {
    c.spec
        .postgres
        .credentials_secret
        .clone()
        .unwrap_or_else(|| names::postgres_secret(&c.name))
}

/// Name of the Secret with the server's API keys and token secret (the user's, or our
/// generated one); `None` when auth is off.
pub fn auth_secret(c: &Checked) -> Option<String> {
    let a = &c.spec.server.auth;
    a.enabled.then(|| {
        a.existing_secret
            .clone()
            .unwrap_or_else(|| names::auth_secret(&c.name))
    })
}

/// In-cluster DNS name of a Service.
pub fn service_host(c: &Checked, service: &str) -> String {
    format!("{service}.{}.svc", c.namespace)
}

/// The server's Redis settings (REDIS_CLUSTER_NODES lists every pod's stable DNS name).
pub fn redis_env(c: &Checked) -> Vec<EnvVar> {
    match c.spec.redis.mode {
        RedisMode::Managed => {
            let sts = names::redis(&c.name);
            let nodes: Vec<String> = (0..c.redis_pods())
                .map(|i| format!("{sts}-{i}.{}:{REDIS_PORT}", service_host(c, &sts)))
                .collect();
            vec![
                env("REDIS_CLUSTER_NODES", nodes.join(",")),
                env_secret(
                    "REDIS_PASSWORD",
                    &redis_password_secret(c),
                    "password",
                    false,
                ),
            ]
        }
        RedisMode::Memory => Vec::new(),
        RedisMode::External => {
            let s = c.spec.redis.external_secret.clone().unwrap_or_default();
            vec![
                env_secret("REDIS_URL", &s, "REDIS_URL", true),
                env_secret("REDIS_CLUSTER_NODES", &s, "REDIS_CLUSTER_NODES", true),
                env_secret("REDIS_PASSWORD", &s, "REDIS_PASSWORD", true),
            ]
        }
    }
}

/// The DATABASE_URL of the server and the migration Job (none when PostgreSQL is disabled).
/// For managed PostgreSQL it is composed with Kubernetes' `$(VAR)` expansion from the
/// credentials Secret, so a user-supplied Secret needs no URL of its own.
pub fn database_env(c: &Checked) -> Vec<EnvVar> {
    match c.spec.postgres.mode {
        PostgresMode::Managed => {
            let s = postgres_credentials_secret(c);
            let host = service_host(c, &names::postgres(&c.name));
            vec![
                env_secret("PGUSER", &s, "username", false),
                env_secret("PGPASSWORD", &s, "password", false),
                env_secret("PGDATABASE", &s, "database", false),
                env(
                    "DATABASE_URL",
                    format!(
                        "postgres://$(PGUSER):$(PGPASSWORD)@{host}:{POSTGRES_PORT}/$(PGDATABASE)"
                    ),
                ),
            ]
        }
        PostgresMode::External => {
            let s = c.spec.postgres.external_secret.clone().unwrap_or_default();
            vec![env_secret("DATABASE_URL", &s, "DATABASE_URL", false)]
        }
        PostgresMode::Disabled => Vec::new(),
    }
}

/// A generated Secret (only created when absent, so the operator never rotates a password
/// behind a running cluster's back).
pub fn generated_secret(
    c: &Checked,
    name: String,
    component: &str,
    data: BTreeMap<String, String>,
) -> Secret {
    Secret {
        metadata: meta(c, name, component),
        type_: Some("Opaque".into()),
        string_data: Some(data),
        ..Default::default()
    }
}

/// Every object of one reconcile, grouped in apply order.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Managed Redis (absent when external).
    pub redis: Option<redis::RedisObjects>,
    /// Managed PostgreSQL (absent when external or disabled).
    pub postgres: Option<postgres::PostgresObjects>,
    /// Migration Job of the spec's image and database (absent when PostgreSQL is disabled).
    pub migration: Option<Job>,
    /// Server objects.
    pub server: server::ServerObjects,
}

/// Builds every object for a checked cluster.
pub fn desired(c: &Checked) -> Desired {
    Desired {
        redis: (c.spec.redis.mode == RedisMode::Managed).then(|| redis::objects(c)),
        postgres: (c.spec.postgres.mode == PostgresMode::Managed).then(|| postgres::objects(c)),
        migration: (c.spec.postgres.mode != PostgresMode::Disabled)
            .then(|| server::migration_job(c)),
        server: server::objects(c),
    }
}

/// One desired object, borrowed and typed by kind: what the apply step writes and the
/// pruner compares with what it finds.
#[derive(Debug, Clone, Copy)]
pub enum Object<'a> {
    /// `v1` ConfigMap.
    ConfigMap(&'a ConfigMap),
    /// `v1` Service.
    Service(&'a Service),
    /// `apps/v1` StatefulSet.
    StatefulSet(&'a StatefulSet),
    /// `policy/v1` PodDisruptionBudget.
    PodDisruptionBudget(&'a PodDisruptionBudget),
    /// `autoscaling/v2` HorizontalPodAutoscaler.
    HorizontalPodAutoscaler(&'a HorizontalPodAutoscaler),
    /// `networking.k8s.io/v1` Ingress.
    Ingress(&'a Ingress),
    /// `batch/v1` Job.
    Job(&'a Job),
    /// `apps/v1` Deployment.
    Deployment(&'a Deployment),
}

impl Object<'_> {
    /// The object's metadata (every builder sets its name).
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::ConfigMap(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::HorizontalPodAutoscaler(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The Kubernetes kind, for logs and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::ConfigMap(_) => "ConfigMap",
            Object::Service(_) => "Service",
            Object::StatefulSet(_) => "StatefulSet",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Object::Ingress(_) => "Ingress",
            Object::Job(_) => "Job",
            Object::Deployment(_) => "Deployment",
        }
    }
}

/// What a desired object waits for, and what the reconcile reads back from it. The apply
/// step asks [`crate::verdict::admit`] what to do with each role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Applied at every reconcile; nothing is read back.
    Plain,
    /// The managed Redis StatefulSet: applied, its readiness read back.
    RedisPods,
    /// The managed PostgreSQL StatefulSet: applied, its readiness gates the migrations.
    PostgresPods,
    /// The migration Job: created once PostgreSQL is ready and never re-applied (a Job's pod
    /// template is immutable); its outcome gates the rollout.
    Migration,
    /// The server Deployment: applied once the migrations of its image and database ran;
    /// until then only read, so the previous image keeps serving.
    Rollout,
}

/// One step of [`Desired::walk`].
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// What the object waits for.
    pub role: Role,
    /// The object.
    pub object: Object<'a>,
}

impl Desired {
    /// Every desired object, in apply order: Redis (config, headless Service, StatefulSet,
    /// PDB), PostgreSQL (Service, StatefulSet), the migration Job, the server Service, PDB,
    /// HPA and Ingress, and last the server Deployment. The one walk both the apply step and
    /// the pruner use. Every struct is destructured without `..`, so an object added to a
    /// builder fails to compile here instead of silently never being applied.
    pub fn walk(&self) -> Vec<Step<'_>> {
        let step = |role, object| Step { role, object };
        let Desired {
            redis: redis_objects,
            postgres: postgres_objects,
            migration,
            server: server_objects,
        } = self;
        let mut steps = Vec::new();
        if let Some(redis::RedisObjects {
            config,
            service,
            statefulset,
            pdb,
        }) = redis_objects
        {
            steps.extend([
                step(Role::Plain, Object::ConfigMap(config)),
                step(Role::Plain, Object::Service(service)),
                step(Role::RedisPods, Object::StatefulSet(statefulset)),
                step(Role::Plain, Object::PodDisruptionBudget(pdb)),
            ]);
        }
        if let Some(postgres::PostgresObjects {
            service,
            statefulset,
        }) = postgres_objects
        {
            steps.extend([
                step(Role::Plain, Object::Service(service)),
                step(Role::PostgresPods, Object::StatefulSet(statefulset)),
            ]);
        }
        if let Some(job) = migration {
            steps.push(step(Role::Migration, Object::Job(job)));
        }
        let server::ServerObjects {
            deployment,
            service,
            pdb,
            hpa,
            ingress,
        } = server_objects;
        steps.extend([
            step(Role::Plain, Object::Service(service)),
            step(Role::Plain, Object::PodDisruptionBudget(pdb)),
        ]);
        steps.extend(
            hpa.iter()
                .map(|h| step(Role::Plain, Object::HorizontalPodAutoscaler(h))),
        );
        steps.extend(
            ingress
                .iter()
                .map(|i| step(Role::Plain, Object::Ingress(i))),
        );
        steps.push(step(Role::Rollout, Object::Deployment(deployment)));
        steps
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::crd::SyncKairosCluster;
    use crate::validate::{Checked, validate};

    /// A checked cluster named `demo` in `ns` from a JSON spec.
    pub fn checked(spec: serde_json::Value) -> Checked {
        let mut s = SyncKairosCluster::new("demo", serde_json::from_value(spec).unwrap());
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
        s.metadata.generation = Some(1);
        validate(&s).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::checked;
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The migration Job name `desired` builds for a spec.
    fn job_name(spec: serde_json::Value) -> String {
        desired(&checked(spec))
            .migration
            .unwrap()
            .metadata
            .name
            .unwrap()
    }

    #[test]
    fn migration_job_name_changes_with_the_image_and_the_database_only() {
        let base = job_name(serde_json::json!({"image": "synckairos:1.0"}));
        assert_eq!(base.len(), "demo-migrate-".len() + 8);
        assert!(base.starts_with("demo-migrate-"));
        // another image or another database: another Job
        let other = [
            serde_json::json!({"image": "synckairos:1.1"}),
            serde_json::json!({"image": "synckairos:1.0",
                               "postgres": {"mode": "external", "externalSecret": "pg"}}),
            serde_json::json!({"image": "synckairos:1.0",
                               "postgres": {"credentialsSecret": "my-db"}}),
        ];
        let mut seen = BTreeMap::from([(base.clone(), "base".to_string())]);
        for spec in other {
            let n = job_name(spec.clone());
            assert!(
                seen.insert(n.clone(), spec.to_string()).is_none(),
                "{spec} reuses {n}"
            );
        }
        let ext = |secret: &str| {
            job_name(serde_json::json!({"image": "synckairos:1.0",
                "postgres": {"mode": "external", "externalSecret": secret}}))
        };
        assert_ne!(ext("pg"), ext("pg-new"));
        assert_eq!(ext("pg"), ext("pg"));
        // what does not change the database or the image keeps the Job
        for spec in [
            serde_json::json!({"image": "synckairos:1.0", "server": {"replicas": 5}}),
            serde_json::json!({"image": "synckairos:1.0",
                               "redis": {"mode": "external", "externalSecret": "r"}}),
            serde_json::json!({"image": "synckairos:1.0",
                               "postgres": {"image": "postgres:17", "storage": {"size": "9Gi"}}}),
            serde_json::json!({"image": "synckairos:1.0", "imagePullPolicy": "Always",
                               "server": {"ingress": {"host": "k.example.com"}}}),
        ] {
            assert_eq!(job_name(spec.clone()), base, "{spec}");
        }
        // the separator keeps the two inputs apart
        assert_ne!(
            names::migration("demo", "a", "b"),
            names::migration("demo", "ab", "")
        );
    }

    /// `(role, kind, name)` of every step of the walk.
    fn walked(c: &Checked) -> Vec<(Role, &'static str, String)> {
        desired(c)
            .walk()
            .iter()
            .map(|s| (s.role, s.object.kind(), s.object.name().to_string()))
            .collect()
    }

    #[test]
    fn the_walk_visits_every_object_once_in_apply_order() {
        let full = checked(serde_json::json!({"server": {
            "ingress": {"host": "k.example.com"},
            "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}}));
        let job = desired(&full).migration.unwrap().metadata.name.unwrap();
        let s = |r, k, n: &str| (r, k, n.to_string());
        assert_eq!(
            walked(&full),
            [
                s(Role::Plain, "ConfigMap", "demo-redis-config"),
                s(Role::Plain, "Service", "demo-redis"),
                s(Role::RedisPods, "StatefulSet", "demo-redis"),
                s(Role::Plain, "PodDisruptionBudget", "demo-redis"),
                s(Role::Plain, "Service", "demo-postgres"),
                s(Role::PostgresPods, "StatefulSet", "demo-postgres"),
                s(Role::Migration, "Job", &job),
                s(Role::Plain, "Service", "demo-server"),
                s(Role::Plain, "PodDisruptionBudget", "demo-server"),
                s(Role::Plain, "HorizontalPodAutoscaler", "demo-server"),
                s(Role::Plain, "Ingress", "demo"),
                s(Role::Rollout, "Deployment", "demo-server"),
            ]
        );
        // no managed stores, no audit, no optional server objects: the server alone
        let bare = checked(serde_json::json!({
            "redis": {"mode": "external", "externalSecret": "r"},
            "postgres": {"mode": "disabled"}}));
        assert_eq!(
            walked(&bare),
            [
                s(Role::Plain, "Service", "demo-server"),
                s(Role::Plain, "PodDisruptionBudget", "demo-server"),
                s(Role::Rollout, "Deployment", "demo-server"),
            ]
        );
    }

    /// A random valid cluster name of `len` characters.
    fn random_name(rng: &mut StdRng, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
        (0..len)
            .map(|i| {
                let edge = i == 0 || i + 1 == len;
                let n = if edge { CHARS.len() - 1 } else { CHARS.len() };
                CHARS[rng.random_range(0..n)] as char
            })
            .collect()
    }

    #[test]
    fn property_migration_job_names_fit_and_follow_image_and_database() {
        let mut rng = StdRng::seed_from_u64(0x6d16);
        // a few clusters (one of the longest name allowed), so pairs share a prefix
        let mut pool: Vec<String> = (0..5)
            .map(|_| {
                let len = rng.random_range(1..=crate::validate::MAX_NAME_LEN);
                random_name(&mut rng, len)
            })
            .collect();
        pool.push(random_name(&mut rng, crate::validate::MAX_NAME_LEN));
        let mut by_name: BTreeMap<String, (String, String, String)> = BTreeMap::new();
        for _ in 0..2000 {
            let name = pool[rng.random_range(0..pool.len())].clone();
            let image = format!("reg.example.com/synckairos:{}", rng.random_range(0..20));
            let postgres = match rng.random_range(0..3) {
                0 => serde_json::json!({}),
                1 => {
                    serde_json::json!({"credentialsSecret": format!("c{}", rng.random_range(0..5))})
                }
                _ => serde_json::json!({"mode": "external",
                                        "externalSecret": format!("s{}", rng.random_range(0..5))}),
            };
            let mut skc = crate::crd::SyncKairosCluster::new(
                &name,
                serde_json::from_value(serde_json::json!({"image": image, "postgres": postgres}))
                    .unwrap(),
            );
            skc.metadata.namespace = Some(format!("ns{}", rng.random_range(0..3)));
            skc.metadata.uid = Some("u".into());
            let c = crate::validate::validate(&skc).unwrap();
            let job = desired(&c).migration.unwrap().metadata.name.unwrap();
            // a DNS label (the Job controller copies it into a pod label value)
            assert!(job.len() <= 63, "{job}");
            assert_eq!(job.len(), name.len() + 17, "{job}");
            assert!(
                job.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{job}"
            );
            assert_eq!(job, names::migration(&name, &image, &migration_target(&c)));
            // one name per (cluster, namespace, image, database) and vice versa
            let key = (
                format!("{}/{name}", c.namespace),
                image,
                migration_target(&c),
            );
            let job = format!("{}/{job}", c.namespace);
            if let Some(prev) = by_name.insert(job.clone(), key.clone()) {
                assert_eq!(prev, key, "{job} names two (image, database) pairs");
            }
        }
    }

    #[test]
    fn managed_redis_env_lists_every_pod() {
        let c = checked(serde_json::json!({"redis": {"shards": 3, "replicasPerShard": 2}}));
        let e = redis_env(&c);
        let nodes = e[0].value.as_deref().unwrap();
        assert_eq!(nodes.split(',').count(), 9);
        assert!(nodes.starts_with("demo-redis-0.demo-redis.ns.svc:6379,"));
        let pw = e[1]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (pw.name.as_str(), pw.key.as_str()),
            ("demo-redis-auth", "password")
        );
    }

    #[test]
    fn database_url_per_mode() {
        let managed = database_env(&checked(serde_json::json!({})));
        let url = managed.last().unwrap();
        assert_eq!(url.name, "DATABASE_URL");
        assert_eq!(
            url.value.as_deref(),
            Some("postgres://$(PGUSER):$(PGPASSWORD)@demo-postgres.ns.svc:5432/$(PGDATABASE)")
        );
        // $(VAR) expansion only sees variables defined earlier in the list.
        let pos = |n: &str| managed.iter().position(|e| e.name == n).unwrap();
        assert!(pos("PGPASSWORD") < pos("DATABASE_URL"));
        let ext = database_env(&checked(
            serde_json::json!({"postgres": {"mode": "external", "externalSecret": "pg"}}),
        ));
        let r = ext[0]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), ("pg", "DATABASE_URL"));
        assert!(
            database_env(&checked(
                serde_json::json!({"postgres": {"mode": "disabled"}})
            ))
            .is_empty()
        );
    }

    /// Every entry of every `ports` list in a JSON object, with the path that leads to it.
    fn port_entries(
        v: &serde_json::Value,
        path: String,
        out: &mut Vec<(String, serde_json::Value)>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "ports"
                        && let Some(list) = x.as_array()
                    {
                        out.extend(list.iter().map(|p| (format!("{path}/ports"), p.clone())));
                    }
                    port_entries(x, format!("{path}/{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    port_entries(x, format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_service_and_container_port_says_tcp() {
        // Server-side apply before Kubernetes 1.21 refuses port list entries without it.
        let specs = [
            serde_json::json!({"server": {"ingress": {"host": "k.example.com"},
                "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}}),
            serde_json::json!({"redis": {"mode": "memory"}, "postgres": {"mode": "disabled"}}),
            serde_json::json!({"redis": {"mode": "external", "externalSecret": "r"},
                "postgres": {"mode": "external", "externalSecret": "p"}}),
        ];
        let mut seen = BTreeMap::new();
        for spec in specs {
            let d = desired(&checked(spec));
            for step in d.walk() {
                let v = match step.object {
                    Object::ConfigMap(o) => serde_json::to_value(o),
                    Object::Service(o) => serde_json::to_value(o),
                    Object::StatefulSet(o) => serde_json::to_value(o),
                    Object::PodDisruptionBudget(o) => serde_json::to_value(o),
                    Object::HorizontalPodAutoscaler(o) => serde_json::to_value(o),
                    Object::Ingress(o) => serde_json::to_value(o),
                    Object::Job(o) => serde_json::to_value(o),
                    Object::Deployment(o) => serde_json::to_value(o),
                }
                .unwrap();
                let mut ports = Vec::new();
                port_entries(&v, String::new(), &mut ports);
                for (path, p) in ports {
                    let what = format!("{} {}{path}", step.object.kind(), step.object.name());
                    assert_eq!(p["protocol"], "TCP", "{what}: {p}");
                    *seen.entry(step.object.kind()).or_insert(0) += 1;
                }
            }
        }
        // the ports that exist were all looked at: Services and pods of every component
        for kind in ["Service", "StatefulSet", "Deployment"] {
            assert!(seen.get(kind).is_some_and(|n| *n >= 2), "{seen:?}");
        }
    }

    #[test]
    fn desired_follows_the_modes() {
        let d = desired(&checked(serde_json::json!({})));
        assert!(d.redis.is_some() && d.postgres.is_some() && d.migration.is_some());
        let d = desired(&checked(serde_json::json!({
            "redis": {"mode": "external", "externalSecret": "r"},
            "postgres": {"mode": "disabled"}
        })));
        assert!(d.redis.is_none() && d.postgres.is_none() && d.migration.is_none());
    }
}
