//! Leader election against a mocked API server holding one Lease with real optimistic
//! concurrency (a write with a stale resourceVersion gets 409). Time is scripted: every
//! round gets its wall time (written into the Lease, skewed per candidate to play nodes
//! whose clocks disagree) and its local monotonic instant (what expiry is judged by).

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use synckairos_operator::leader::{Elector, LeaseConfig, release};
use tokio::time::Instant;
use tower_test::mock;

#[derive(Default)]
struct Store {
    lease: Option<Value>,
    version: u64,
    writes: Vec<String>,
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code, "message": reason})
}

fn fake() -> (Client, Arc<Mutex<Store>>) {
    let (svc, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let store = Arc::new(Mutex::new(Store::default()));
    let s = store.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().clone();
            let body = req.into_body().collect_bytes().await.unwrap();
            let (code, out) = {
                let mut st = s.lock().unwrap();
                match method.as_str() {
                    "GET" => match &st.lease {
                        Some(l) => (200, l.clone()),
                        None => (404, status(404, "NotFound")),
                    },
                    "POST" if st.lease.is_some() => (409, status(409, "AlreadyExists")),
                    "POST" | "PUT" => {
                        let mut v: Value = serde_json::from_slice(&body).unwrap();
                        let sent = v["metadata"]["resourceVersion"]
                            .as_str()
                            .map(str::to_string);
                        if method == "PUT" && sent != Some(st.version.to_string()) {
                            (409, status(409, "Conflict"))
                        } else {
                            st.version += 1;
                            v["metadata"]["resourceVersion"] =
                                Value::String(st.version.to_string());
                            let holder = v["spec"]["holderIdentity"]
                                .as_str()
                                .unwrap_or("-")
                                .to_string();
                            st.writes.push(format!("{method} {holder}"));
                            st.lease = Some(v.clone());
                            (if method == "POST" { 201 } else { 200 }, v)
                        }
                    }
                    _ => (405, status(405, "MethodNotAllowed")),
                }
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(svc, "ops"), store)
}

/// One candidate on a node whose wall clock is `skew` seconds off.
struct Candidate {
    elector: Elector,
    skew: i64,
    /// Local instant of scripted second 0 (shared by every candidate of a test).
    t0: Instant,
}

impl Candidate {
    fn new(lease: &str, identity: &str, skew: i64, t0: Instant) -> Self {
        Self {
            elector: Elector::new(LeaseConfig::new(lease, identity)),
            skew,
            t0,
        }
    }

    /// One election round at scripted second `t`.
    async fn round(&mut self, api: &Api<Lease>, t: u64) -> bool {
        let wall =
            Timestamp::from_second(1_800_000_000 + i64::try_from(t).unwrap() + self.skew).unwrap();
        let local = self.t0 + std::time::Duration::from_secs(t);
        self.elector
            .try_acquire_or_renew(api, wall, local)
            .await
            .unwrap()
    }
}

fn holder(store: &Arc<Mutex<Store>>) -> (Option<String>, i64) {
    let st = store.lock().unwrap();
    let l = st.lease.as_ref().unwrap();
    (
        l["spec"]["holderIdentity"].as_str().map(str::to_string),
        l["spec"]["leaseTransitions"].as_i64().unwrap_or(0),
    )
}

#[tokio::test]
async fn one_leader_renewal_expiry_and_takeover() {
    let (client, store) = fake();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let t0 = Instant::now();
    let mut a = Candidate::new("synckairos-operator", "pod-a", 0, t0);
    let mut b = Candidate::new("synckairos-operator", "pod-b", 0, t0);

    assert!(a.round(&api, 0).await, "first candidate creates the Lease");
    assert!(!b.round(&api, 1).await, "held and fresh: b must wait");
    assert!(a.round(&api, 10).await, "holder renews");
    // b sees the renewal at 24: the claim (15 s) stands until 39 by b's clock
    assert!(!b.round(&api, 24).await);
    assert!(!b.round(&api, 38).await);
    assert_eq!(holder(&store), (Some("pod-a".into()), 0));
    // a stopped renewing: 15 s after b saw its last renewal, b takes over
    assert!(b.round(&api, 39).await);
    assert_eq!(holder(&store), (Some("pod-b".into()), 1));
    // a comes back: it is not the leader any more
    assert!(!a.round(&api, 40).await);
    let w = store.lock().unwrap().writes.clone();
    assert_eq!(w, ["POST pod-a", "PUT pod-a", "PUT pod-b"]);
}

/// The holder runs every 2 s from 0 to `until` (even seconds), the candidate every 2 s on odd
/// seconds; returns the first second the candidate led, or `None` before `deadline`.
async fn contest(
    api: &Api<Lease>,
    a: &mut Candidate,
    b: &mut Candidate,
    until: u64,
    deadline: u64,
) -> Option<u64> {
    for t in 0..deadline {
        if t % 2 == 0 && t <= until {
            assert!(a.round(api, t).await, "the holder renews at {t}");
        } else if t % 2 == 1 && b.round(api, t).await {
            return Some(t);
        }
    }
    None
}

#[tokio::test]
async fn clock_skew_between_nodes_never_makes_two_leaders() {
    for skew in [-3600, -16, 16, 3600] {
        let (client, store) = fake();
        let api: Api<Lease> = Api::namespaced(client, "ops");
        let t0 = Instant::now();
        // a's clock is off by `skew`: its renewTime is far in the past (or future) for b
        let mut a = Candidate::new("l", "pod-a", skew, t0);
        let mut b = Candidate::new("l", "pod-b", 0, t0);
        // a renews every 2 s up to second 120: b never takes over, whatever renewTime says
        assert_eq!(
            contest(&api, &mut a, &mut b, 120, 121).await,
            None,
            "skew {skew}"
        );
        assert_eq!(holder(&store), (Some("pod-a".into()), 0), "skew {skew}");
        // a stops after renewing at 120; b saw that at 121 and takes over 15 s later by its
        // own clock: at its first round from 136 on (137), not before
        for t in (121..=135).step_by(2) {
            assert!(!b.round(&api, t).await, "skew {skew}: taken over at {t}");
        }
        assert!(b.round(&api, 137).await, "skew {skew}: b must take over");
        assert_eq!(holder(&store), (Some("pod-b".into()), 1));
        assert!(!a.round(&api, 138).await, "skew {skew}: two leaders");
    }
}

#[tokio::test]
async fn a_new_candidate_waits_a_full_lease_duration_even_for_a_dead_holder() {
    let (client, store) = fake();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let t0 = Instant::now();
    let mut a = Candidate::new("l", "pod-a", 0, t0);
    assert!(a.round(&api, 0).await);
    // b starts long after a died: it has not seen the record unchanged for 15 s yet
    let mut b = Candidate::new("l", "pod-b", 0, t0);
    assert!(!b.round(&api, 1000).await);
    assert!(!b.round(&api, 1014).await);
    assert!(b.round(&api, 1015).await);
    assert_eq!(holder(&store), (Some("pod-b".into()), 1));
}

#[tokio::test]
async fn a_stale_write_loses_the_race() {
    let (client, store) = fake();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let t0 = Instant::now();
    let mut a = Candidate::new("l", "pod-a", 0, t0);
    assert!(a.round(&api, 0).await);
    // b read the Lease before a renewed, then tries to take over an "expired" Lease
    let mut stale: Lease = api.get("l").await.unwrap();
    assert!(a.round(&api, 5).await);
    stale.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let e = api
        .replace("l", &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 409), "{e}");
    // and through the election, once a's claim expired, only one of two candidates wins
    let mut b = Candidate::new("l", "pod-b", 0, t0);
    let mut c = Candidate::new("l", "pod-c", 0, t0);
    assert!(!b.round(&api, 6).await);
    assert!(!c.round(&api, 6).await);
    let (rb, rc) = tokio::join!(b.round(&api, 35), c.round(&api, 35));
    assert_eq!(u8::from(rb) + u8::from(rc), 1, "exactly one winner");
    assert_eq!(holder(&store).1, 1);
}

#[tokio::test]
async fn release_hands_over_without_waiting_for_expiry() {
    let (client, store) = fake();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let t0 = Instant::now();
    let mut a = Candidate::new("l", "pod-a", 0, t0);
    let mut b = Candidate::new("l", "pod-b", 0, t0);
    assert!(a.round(&api, 0).await);
    release(&api, a.elector.config()).await.unwrap();
    assert_eq!(holder(&store).0, None);
    assert!(b.round(&api, 1).await, "b takes a released Lease at once");
}
