//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas never
//! reconcile at once. kube has none built in; this is the loop of client-go's
//! `leaderelection` package: create the Lease if absent, renew it while we hold it, take it
//! over only once it has gone unrenewed for `leaseDurationSeconds`.
//!
//! "Unrenewed" is judged by **our own clock only**, as client-go does: a candidate never
//! compares the holder's `renewTime` with its clock (the two nodes' clocks may disagree by
//! minutes). It remembers the Lease record it last saw and the local instant it first saw
//! it; any change of the record (holder, `renewTime`, transitions, ...) restarts that
//! instant, and the Lease is expired only once `leaseDurationSeconds` of local time passed
//! without a change. So a holder whose clock lags keeps its Lease while it renews, and one
//! whose clock runs ahead loses it `leaseDurationSeconds` after it stopped. A fresh
//! candidate waits one full duration before it takes over a held Lease.
//!
//! Every write is a create or a replace carrying the `resourceVersion` we read, so of two
//! candidates racing for an expired Lease exactly one wins (the other gets 409 Conflict).
//! Time is an argument: the wall time written into the record, and the local monotonic
//! instant expiry is judged by.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// Who we are and which Lease we compete for.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Our identity (the pod name).
    pub identity: String,
    /// How long a holder's claim lasts without renewal.
    pub lease_duration: Duration,
    /// How often we try to acquire or renew (well under `lease_duration`).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 2 s retry.
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a record last seen changing at `changed_at` has expired at `local`: its
/// `leaseDurationSeconds` (ours when it names none) passed on our clock since.
pub fn expired(spec: &LeaseSpec, changed_at: Instant, local: Instant, default: Duration) -> bool {
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default, Duration::from_secs);
    local.saturating_duration_since(changed_at) >= duration
}

/// One candidate: its configuration and what it observed of the Lease.
#[derive(Debug)]
pub struct Elector {
    cfg: LeaseConfig,
    /// The record last seen, and the local instant it was first seen.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    /// A candidate that has observed nothing yet.
    pub fn new(cfg: LeaseConfig) -> Self {
        Self {
            cfg,
            observed: None,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Notes the record read at `local`; returns the local instant it was first seen.
    fn observe(&mut self, spec: &LeaseSpec, local: Instant) -> Instant {
        match &self.observed {
            Some((seen, at)) if seen == spec => *at,
            _ => {
                self.observed = Some((spec.clone(), local));
                local
            }
        }
    }

    /// One election round: returns whether we hold the Lease after it. `now` is written into
    /// the record (`acquireTime`, `renewTime`: for humans and other tools); `local`, our
    /// monotonic clock, is all that expiry is judged by.
    pub async fn try_acquire_or_renew(
        &mut self,
        api: &Api<Lease>,
        now: Timestamp,
        local: Instant,
    ) -> Result<bool, kube::Error> {
        let cfg = self.cfg.clone();
        let duration = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = api.get_opt(&cfg.name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observed = Some((spec, local));
                    Ok(true)
                }
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        let changed_at = self.observe(&spec, local);
        let ours = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        if !ours && held && !expired(&spec, changed_at, local, cfg.lease_duration) {
            return Ok(false);
        }
        if !ours {
            spec.holder_identity = Some(cfg.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(duration);
        lease.spec = Some(spec.clone());
        // resourceVersion stays as read: a concurrent writer makes this a 409
        match api.replace(&cfg.name, &PostParams::default(), &lease).await {
            Ok(_) => {
                self.observed = Some((spec, local));
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Gives the Lease up (on shutdown) so a standby takes over without waiting for expiry.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    if let Some(mut lease) = api.get_opt(&cfg.name).await? {
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() == Some(cfg.identity.as_str()) {
            spec.holder_identity = None;
            spec.renew_time = None;
            lease.spec = Some(spec);
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => {}
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Runs elections forever, publishing whether we lead. A leader that cannot renew for a
/// whole lease duration (API unreachable) steps down, because another replica may take over.
pub async fn run(api: Api<Lease>, cfg: LeaseConfig, tx: watch::Sender<bool>) {
    let mut elector = Elector::new(cfg.clone());
    let mut last_renew: Option<Instant> = None;
    loop {
        let local = Instant::now();
        let leading = match elector
            .try_acquire_or_renew(&api, Timestamp::now(), local)
            .await
        {
            Ok(true) => {
                last_renew = Some(local);
                true
            }
            Ok(false) => {
                last_renew = None;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %cfg.name, "lease election round failed");
                last_renew.is_some_and(|t| t.elapsed() < cfg.lease_duration)
            }
        };
        if *tx.borrow() != leading {
            tracing::info!(leading, identity = %cfg.identity, "leadership changed");
        }
        tx.send_replace(leading);
        tokio::time::sleep(cfg.retry_period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_local_time_since_the_record_changed() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let d = Duration::from_secs(15);
        let spec = LeaseSpec {
            lease_duration_seconds: Some(10),
            ..Default::default()
        };
        assert!(!expired(&spec, at(5), at(14), d));
        assert!(expired(&spec, at(5), at(15), d));
        // a record without a duration uses ours
        let bare = LeaseSpec::default();
        assert!(!expired(&bare, at(0), at(14), d));
        assert!(expired(&bare, at(0), at(15), d));
        // an instant before the observation (never happens with a monotonic clock) is fresh
        assert!(!expired(&spec, at(20), at(0), d));
    }

    #[test]
    fn only_a_changed_record_restarts_the_observation() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut e = Elector::new(LeaseConfig::new("l", "me"));
        let mut spec = LeaseSpec {
            holder_identity: Some("other".into()),
            ..Default::default()
        };
        assert_eq!(e.observe(&spec, at(1)), at(1));
        assert_eq!(
            e.observe(&spec, at(9)),
            at(1),
            "same record: first sight counts"
        );
        spec.renew_time = Some(MicroTime(Timestamp::UNIX_EPOCH));
        assert_eq!(e.observe(&spec, at(12)), at(12), "a renewal is a change");
        spec.lease_transitions = Some(1);
        assert_eq!(e.observe(&spec, at(13)), at(13));
    }
}
