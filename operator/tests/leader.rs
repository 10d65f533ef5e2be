//! Leader election against a mocked API server holding one Lease with real optimistic
//! concurrency (a write with a stale resourceVersion gets 409). Time is scripted: every
//! round gets its `now`.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use synckairos_operator::leader::{LeaseConfig, release, try_acquire_or_renew};
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

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
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
    let a = LeaseConfig::new("synckairos-operator", "pod-a");
    let b = LeaseConfig::new("synckairos-operator", "pod-b");

    assert!(
        try_acquire_or_renew(&api, &a, at(0)).await.unwrap(),
        "first candidate creates the Lease"
    );
    assert!(
        !try_acquire_or_renew(&api, &b, at(1)).await.unwrap(),
        "held and fresh: b must wait"
    );
    assert!(
        try_acquire_or_renew(&api, &a, at(10)).await.unwrap(),
        "holder renews"
    );
    // 14 s after the renewal the claim (15 s) still stands
    assert!(!try_acquire_or_renew(&api, &b, at(24)).await.unwrap());
    assert_eq!(holder(&store), (Some("pod-a".into()), 0));
    // a stops renewing; 15 s after its last renewal b takes over
    assert!(try_acquire_or_renew(&api, &b, at(25)).await.unwrap());
    assert_eq!(holder(&store), (Some("pod-b".into()), 1));
    // a comes back: it is not the leader any more
    assert!(!try_acquire_or_renew(&api, &a, at(26)).await.unwrap());
    let w = store.lock().unwrap().writes.clone();
    assert_eq!(w, ["POST pod-a", "PUT pod-a", "PUT pod-b"]);
}

#[tokio::test]
async fn a_stale_write_loses_the_race() {
    let (client, store) = fake();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let a = LeaseConfig::new("l", "pod-a");
    assert!(try_acquire_or_renew(&api, &a, at(0)).await.unwrap());
    // b read the Lease before a renewed, then tries to take over an "expired" Lease
    let mut stale: Lease = api.get("l").await.unwrap();
    assert!(try_acquire_or_renew(&api, &a, at(5)).await.unwrap());
    stale.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let e = api
        .replace("l", &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 409), "{e}");
    // and through the election function, at a time when a's claim expired, only one of two wins
    let b = LeaseConfig::new("l", "pod-b");
    let c = LeaseConfig::new("l", "pod-c");
    let later = at(5).checked_add(SignedDuration::from_secs(30)).unwrap();
    let (rb, rc) = tokio::join!(
        try_acquire_or_renew(&api, &b, later),
        try_acquire_or_renew(&api, &c, later)
    );
    assert_eq!(
        u8::from(rb.unwrap()) + u8::from(rc.unwrap()),
        1,
        "exactly one winner"
    );
    assert_eq!(holder(&store).1, 1);
}

#[tokio::test]
async fn release_hands_over_without_waiting_for_expiry() {
    let (client, store) = fake();
    let api: Api<Lease> = Api::namespaced(client, "ops");
    let a = LeaseConfig::new("l", "pod-a");
    let b = LeaseConfig::new("l", "pod-b");
    assert!(try_acquire_or_renew(&api, &a, at(0)).await.unwrap());
    release(&api, &a).await.unwrap();
    assert_eq!(holder(&store).0, None);
    assert!(
        try_acquire_or_renew(&api, &b, at(1)).await.unwrap(),
        "b takes a released Lease at once"
    );
}
