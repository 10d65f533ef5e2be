//! The last step of the pipeline: compute the status from what the reconcile observed.
//! Pure: the previous status and `now` are arguments. Conditions are computed, never
//! hand-set; `lastTransitionTime` only moves when a condition's status flips; `Ready` is
//! true only when every part is and the server answered `/ready` through its Service.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{RedisClusterStatus, SyncKairosClusterStatus};

/// Condition types, in the order they appear in status.
pub const REDIS_READY: &str = "RedisReady";
/// PostgreSQL reachable (or not needed).
pub const POSTGRES_READY: &str = "PostgresReady";
/// The migration Job of the spec's image succeeded (or no audit store).
pub const MIGRATIONS_COMPLETE: &str = "MigrationsComplete";
/// The server Deployment runs the spec's image with available pods.
pub const SERVER_AVAILABLE: &str = "ServerAvailable";
/// Everything above, and the server answers `/ready` through its Service.
pub const READY: &str = "Ready";
/// The API server runs a Kubernetes version the operator supports
/// ([`crate::apiserver::MIN_KUBERNETES`]); present once the operator could read it.
pub const KUBERNETES_VERSION_SUPPORTED: &str = "KubernetesVersionSupported";

/// One part's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// True when the part is ready.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl Part {
    /// A ready part.
    pub fn ok(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }
    /// A part that is not ready (yet).
    pub fn not(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Everything one reconcile learnt, input of [`compute`].
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// `metadata.generation` reconciled.
    pub generation: Option<i64>,
    /// Redis verdict.
    pub redis: Part,
    /// PostgreSQL verdict.
    pub postgres: Part,
    /// Migrations verdict.
    pub migrations: Part,
    /// Server Deployment verdict.
    pub server: Part,
    /// Whether `/ready` answered 200 through the Service.
    pub answers_ready: bool,
    /// Set when the spec cannot be acted on, or an API call failed: Ready is false with
    /// this reason whatever the parts say.
    pub blocked: Option<Part>,
    /// Server pods ready / wanted.
    pub ready_replicas: i32,
    /// Server pods wanted.
    pub replicas: i32,
    /// Managed Redis Cluster facts.
    pub redis_cluster: Option<RedisClusterStatus>,
    /// Image whose migrations completed.
    pub migrated_image: Option<String>,
    /// Server Service URL.
    pub endpoint: Option<String>,
    /// The startup check of the API server's version (`None`: it could not be read).
    pub api_server: Option<Part>,
}

fn condition(
    prev: &[Condition],
    type_: &str,
    part: &Part,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if part.ok { "True" } else { "False" };
    let last = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: part.reason.clone(),
        message: part.message.clone(),
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// The overall verdict: the first part that is not ready explains why.
pub fn ready_part(o: &Observed) -> Part {
    // an API server that is too old explains every failure that follows from it
    if let Some(v) = o.api_server.as_ref().filter(|v| !v.ok) {
        return v.clone();
    }
    if let Some(b) = &o.blocked {
        return b.clone();
    }
    for (name, p) in [
        (REDIS_READY, &o.redis),
        (POSTGRES_READY, &o.postgres),
        (MIGRATIONS_COMPLETE, &o.migrations),
        (SERVER_AVAILABLE, &o.server),
    ] {
        if !p.ok {
            return Part::not(&format!("{name}False"), format!("{name}: {}", p.message));
        }
    }
    if !o.answers_ready {
        return Part::not(
            "ServerNotAnswering",
            "the server Service does not answer /ready yet",
        );
    }
    Part::ok("AllReady", "the server answers /ready through its Service")
}

/// The observation of a reconcile that could not look (invalid spec, failed API call): the
/// parts keep what the previous status said, Ready is false with `blocked` as its reason.
pub fn blocked(
    prev: Option<&SyncKairosClusterStatus>,
    generation: Option<i64>,
    blocked: Part,
) -> Observed {
    let prev = prev.cloned().unwrap_or_default();
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
        generation,
        redis: cond(REDIS_READY),
        postgres: cond(POSTGRES_READY),
        migrations: cond(MIGRATIONS_COMPLETE),
        server: cond(SERVER_AVAILABLE),
        answers_ready: false,
        blocked: Some(blocked),
        ready_replicas: prev.ready_replicas,
        replicas: prev.replicas,
        redis_cluster: None,
        migrated_image: None,
        endpoint: prev.endpoint,
        api_server: None,
    }
}

/// Whether a status says Ready (an Event marks every flip).
pub fn is_ready(s: Option<&SyncKairosClusterStatus>) -> bool {
    s.is_some_and(|p| {
        p.conditions
            .iter()
            .any(|c| c.type_ == READY && c.status == "True")
    })
}

/// Computes the new status from the previous one and this reconcile's observations.
pub fn compute(
    prev: Option<&SyncKairosClusterStatus>,
    o: &Observed,
    now: &Time,
) -> SyncKairosClusterStatus {
    let prev_conds = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let ready = ready_part(o);
    let conditions = [
        (REDIS_READY, &o.redis),
        (POSTGRES_READY, &o.postgres),
        (MIGRATIONS_COMPLETE, &o.migrations),
        (SERVER_AVAILABLE, &o.server),
        (READY, &ready),
    ]
    .into_iter()
    .chain(
        o.api_server
            .as_ref()
            .map(|v| (KUBERNETES_VERSION_SUPPORTED, v)),
    )
    .map(|(t, p)| condition(prev_conds, t, p, o.generation, now))
    .collect();
    let phase = if ready.ok {
        "Ready"
    } else if o.api_server.as_ref().is_some_and(|v| !v.ok)
        || o.blocked.as_ref().is_some_and(|b| b.reason != "ApiError")
    {
        "Failed"
    } else if o.blocked.is_some() {
        "Degraded"
    } else {
        "Provisioning"
    };
    SyncKairosClusterStatus {
        observed_generation: o.generation,
        phase: Some(phase.into()),
        conditions,
        ready_replicas: o.ready_replicas,
        replicas: o.replicas,
        // keep the formed shard count even when this reconcile could not look
        redis: o
            .redis_cluster
            .clone()
            .or_else(|| prev.and_then(|p| p.redis.clone())),
        migrated_image: o
            .migrated_image
            .clone()
            .or_else(|| prev.and_then(|p| p.migrated_image.clone())),
        endpoint: o.endpoint.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn all_ok() -> Observed {
        Observed {
            generation: Some(3),
            redis: Part::ok("ClusterOk", "3 primaries"),
            postgres: Part::ok("Ready", "1/1"),
            migrations: Part::ok("Succeeded", "job done"),
            server: Part::ok("Available", "2/2"),
            answers_ready: true,
            blocked: None,
            ready_replicas: 2,
            replicas: 2,
            redis_cluster: None,
            migrated_image: Some("img:1".into()),
            endpoint: Some("http://x".into()),
            api_server: None,
        }
    }

    fn cond<'a>(s: &'a SyncKairosClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_only_when_everything_is_and_the_server_answers() {
        let s = compute(None, &all_ok(), &t(10));
        assert_eq!(cond(&s, READY).status, "True");
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(s.observed_generation, Some(3));

        let mut o = all_ok();
        o.answers_ready = false;
        let s = compute(None, &o, &t(10));
        assert_eq!(cond(&s, READY).status, "False");
        assert_eq!(cond(&s, READY).reason, "ServerNotAnswering");
        assert_eq!(cond(&s, SERVER_AVAILABLE).status, "True");
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));

        let mut o = all_ok();
        o.migrations = Part::not("Running", "job running");
        let s = compute(None, &o, &t(10));
        assert_eq!(cond(&s, READY).reason, "MigrationsCompleteFalse");
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let s1 = compute(None, &all_ok(), &t(10));
        let s2 = compute(Some(&s1), &all_ok(), &t(20));
        assert_eq!(cond(&s2, REDIS_READY).last_transition_time, t(10));
        let mut o = all_ok();
        o.redis = Part::not("ClusterFail", "slots missing");
        let s3 = compute(Some(&s2), &o, &t(30));
        assert_eq!(cond(&s3, REDIS_READY).last_transition_time, t(30));
        assert_eq!(cond(&s3, REDIS_READY).reason, "ClusterFail");
        assert_eq!(cond(&s3, POSTGRES_READY).last_transition_time, t(10));
        assert_eq!(cond(&s3, READY).last_transition_time, t(30));
    }

    #[test]
    fn blocked_reasons_win_and_set_the_phase() {
        let mut o = all_ok();
        o.blocked = Some(Part::not("ReshardingUnsupported", "set shards back"));
        let s = compute(None, &o, &t(1));
        assert_eq!(cond(&s, READY).reason, "ReshardingUnsupported");
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        o.blocked = Some(Part::not("ApiError", "500"));
        assert_eq!(compute(None, &o, &t(1)).phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn a_blocked_reconcile_keeps_the_parts_and_is_not_ready() {
        let s1 = compute(None, &all_ok(), &t(10));
        assert!(is_ready(Some(&s1)));
        let o = blocked(Some(&s1), Some(4), Part::not("ApiError", "500"));
        assert_eq!(o.redis, Part::ok("ClusterOk", "3 primaries"));
        assert_eq!(o.generation, Some(4));
        assert_eq!(
            (o.ready_replicas, o.endpoint.as_deref()),
            (2, Some("http://x"))
        );
        let s2 = compute(Some(&s1), &o, &t(20));
        assert!(!is_ready(Some(&s2)));
        assert_eq!(cond(&s2, REDIS_READY).last_transition_time, t(10));
        assert_eq!(cond(&s2, READY).reason, "ApiError");
        assert_eq!(
            s2.migrated_image.as_deref(),
            Some("img:1"),
            "kept from before"
        );
        // nothing seen yet: every part is unknown
        let o = blocked(None, Some(1), Part::not("NameTooLong", "shorten it"));
        assert_eq!(o.server, Part::not("Unknown", "not observed yet"));
        assert!(!is_ready(None));
    }

    #[test]
    fn a_too_old_api_server_is_a_condition_and_explains_not_ready() {
        // unknown version: no condition, nothing else changes
        let s = compute(None, &all_ok(), &t(1));
        assert!(
            !s.conditions
                .iter()
                .any(|c| c.type_ == KUBERNETES_VERSION_SUPPORTED)
        );
        let mut o = all_ok();
        o.api_server = Some(Part::ok("Supported", "Kubernetes 1.30"));
        let s = compute(None, &o, &t(1));
        assert_eq!(cond(&s, KUBERNETES_VERSION_SUPPORTED).status, "True");
        assert!(is_ready(Some(&s)));
        o.api_server = Some(Part::not("KubernetesTooOld", "1.20 is too old"));
        o.blocked = Some(Part::not("ApiError", "404 on policy/v1"));
        let s = compute(None, &o, &t(1));
        assert_eq!(cond(&s, KUBERNETES_VERSION_SUPPORTED).status, "False");
        assert_eq!(cond(&s, READY).reason, "KubernetesTooOld");
        assert_eq!(cond(&s, READY).message, "1.20 is too old");
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn formed_redis_facts_survive_a_reconcile_that_could_not_look() {
        let mut o = all_ok();
        o.redis_cluster = Some(RedisClusterStatus {
            shards: 3,
            ..Default::default()
        });
        let s1 = compute(None, &o, &t(1));
        o.redis_cluster = None;
        let s2 = compute(Some(&s1), &o, &t(2));
        assert_eq!(s2.redis.unwrap().shards, 3);
    }
}
