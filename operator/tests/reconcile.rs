//! Reconcile scenarios against a mocked Kubernetes API (tower-test, the pattern of
//! kube-rs/controller-rs `fixtures.rs`). The fake API server keeps objects in memory, answers
//! get/list (with equality label selectors)/create/server-side-apply/status patches/delete
//! (with a uid precondition) like the real one, gives objects a uid, logs every request in
//! order, and can be told to fail a verb on a resource. Each test walks a scenario:
//! the test plays the other controllers (marks pods ready, Jobs succeeded) between reconciles.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use synckairos_operator::build;
use synckairos_operator::crd::SyncKairosCluster;
use synckairos_operator::metrics::Metrics;
use synckairos_operator::reconcile::{Context, Probes, error_policy, reconcile};
use synckairos_operator::redis_cluster::ClusterReport;
use synckairos_operator::validate::validate;
use tower_test::mock;

#[derive(Default)]
struct State {
    objects: BTreeMap<(String, String), Value>,
    /// (method, plural, name, subresource)
    log: Vec<(String, String, String, String)>,
    /// (method, plural, code, message) of calls to fail
    fail: Vec<(String, String, u16, String)>,
    /// what GET /version answers (404 when unset)
    version: Option<Value>,
    /// (plural, name, DeleteOptions body) of every DELETE
    deletes: Vec<(String, String, Value)>,
    next_uid: u32,
}

#[derive(Clone, Default)]
struct FakeApi(Arc<Mutex<State>>);

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The `k=v,k=v` label selector of a request URI (equality only, what the operator uses).
fn label_selector(uri: &str) -> Vec<(String, String)> {
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("labelSelector="))
        .flat_map(|sel| {
            percent_decode(sel)
                .split(',')
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("equality selector");
                    (k.to_string(), v.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn status_body(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

impl FakeApi {
    fn start() -> (Client, Self) {
        let (svc, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let api = FakeApi::default();
        let state = api.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().to_string();
                let uri = req.uri().to_string();
                let body = req.into_body().collect_bytes().await.unwrap();
                let (code, out) = state.handle(&method, &uri, &body);
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(serde_json::to_vec(&out).unwrap()))
                        .unwrap(),
                );
            }
        });
        (Client::new(svc, "ns"), api)
    }

    fn handle(&self, method: &str, uri: &str, body: &[u8]) -> (u16, Value) {
        let path = uri.split('?').next().unwrap();
        if path == "/version" {
            let st = self.0.lock().unwrap();
            return match &st.version {
                Some(v) => (200, v.clone()),
                None => (404, status_body(404, "NotFound")),
            };
        }
        let seg: Vec<&str> = path.split('/').collect();
        let i = seg
            .iter()
            .position(|s| *s == "namespaces")
            .expect("namespaced path");
        let plural = seg[i + 2].to_string();
        let name = seg.get(i + 3).map(|s| s.to_string()).unwrap_or_default();
        let sub = seg.get(i + 4).map(|s| s.to_string()).unwrap_or_default();
        let mut st = self.0.lock().unwrap();
        st.log
            .push((method.into(), plural.clone(), name.clone(), sub.clone()));
        if let Some((_, _, code, message)) = st
            .fail
            .iter()
            .find(|(m, p, _, _)| m == method && *p == plural)
        {
            let mut b = status_body(*code, "Failure");
            b["message"] = json!(message);
            b["metadata"] = json!({"continue": ""});
            return (*code, b);
        }
        let key = (plural.clone(), name.clone());
        match (method, name.is_empty(), sub.as_str()) {
            ("GET", false, _) => match st.objects.get(&key) {
                Some(v) => (200, v.clone()),
                None => (404, status_body(404, "NotFound")),
            },
            ("GET", true, _) => {
                let sel = label_selector(uri);
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((p, _), _)| *p == plural)
                    .filter(|(_, v)| {
                        sel.iter()
                            .all(|(k, x)| v["metadata"]["labels"][k].as_str() == Some(x))
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            ("POST", true, _) => {
                let mut v: Value = serde_json::from_slice(body).unwrap();
                if let Some(sd) = v.get("stringData").and_then(Value::as_object).cloned() {
                    let data: serde_json::Map<String, Value> = sd
                        .iter()
                        .map(|(k, x)| {
                            (
                                k.clone(),
                                Value::String(b64(x.as_str().unwrap().as_bytes())),
                            )
                        })
                        .collect();
                    v["data"] = Value::Object(data);
                    v.as_object_mut().unwrap().remove("stringData");
                }
                let n = v["metadata"]["name"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("gen-{}", st.log.len()));
                st.next_uid += 1;
                v["metadata"]["uid"] = json!(format!("uid-{}", st.next_uid));
                st.objects.insert((plural, n), v.clone());
                (201, v)
            }
            ("PATCH", false, "status") => match st.objects.get_mut(&key) {
                Some(obj) => {
                    let patch: Value = serde_json::from_slice(body).unwrap();
                    obj["status"] = patch["status"].clone();
                    (200, obj.clone())
                }
                None => (404, status_body(404, "NotFound")),
            },
            ("PATCH", false, _) => {
                // server-side apply: the applied object, keeping the status others wrote
                let mut v: Value = serde_json::from_slice(body).unwrap();
                if let Some(old) = st.objects.get(&key) {
                    if let Some(s) = old.get("status") {
                        v["status"] = s.clone();
                    }
                    v["metadata"]["uid"] = old["metadata"]["uid"].clone();
                } else {
                    st.next_uid += 1;
                    v["metadata"]["uid"] = json!(format!("uid-{}", st.next_uid));
                }
                st.objects.insert(key, v.clone());
                (200, v)
            }
            ("DELETE", false, "") => {
                let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                st.deletes.push((plural, name, opts.clone()));
                let Some(obj) = st.objects.get(&key) else {
                    return (404, status_body(404, "NotFound"));
                };
                let want = &opts["preconditions"]["uid"];
                if !want.is_null() && *want != obj["metadata"]["uid"] {
                    return (409, status_body(409, "Conflict"));
                }
                (200, st.objects.remove(&key).unwrap())
            }
            _ => (405, status_body(405, "MethodNotAllowed")),
        }
    }

    fn put(&self, plural: &str, name: &str, v: Value) {
        self.0
            .lock()
            .unwrap()
            .objects
            .insert((plural.into(), name.into()), v);
    }
    fn get(&self, plural: &str, name: &str) -> Option<Value> {
        self.0
            .lock()
            .unwrap()
            .objects
            .get(&(plural.into(), name.into()))
            .cloned()
    }
    fn set_status(&self, plural: &str, name: &str, status: Value) {
        let mut st = self.0.lock().unwrap();
        let obj = st
            .objects
            .get_mut(&(plural.into(), name.into()))
            .expect("object exists");
        obj["status"] = status;
    }
    fn fail(&self, method: &str, plural: &str) {
        self.fail_with(method, plural, 500, "InternalError");
    }
    fn fail_with(&self, method: &str, plural: &str, code: u16, message: &str) {
        self.0
            .lock()
            .unwrap()
            .fail
            .push((method.into(), plural.into(), code, message.into()));
    }
    fn take_log(&self) -> Vec<(String, String, String, String)> {
        std::mem::take(&mut self.0.lock().unwrap().log)
    }
    /// (reason, note) of every Event stored.
    fn events(&self) -> Vec<(String, String)> {
        let st = self.0.lock().unwrap();
        st.objects
            .iter()
            .filter(|((p, _), _)| p == "events")
            .map(|(_, v)| {
                (
                    v["reason"].as_str().unwrap_or_default().to_string(),
                    v["note"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
    /// The notes of the Events stored with `reason`.
    fn notes(&self, reason: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, n)| n)
            .collect()
    }
    fn take_deletes(&self) -> Vec<(String, String, Value)> {
        std::mem::take(&mut self.0.lock().unwrap().deletes)
    }
}

/// DELETE requests, as "plural/name", in order.
fn deletes(log: &[(String, String, String, String)]) -> Vec<String> {
    log.iter()
        .filter(|(m, _, _, _)| m == "DELETE")
        .map(|(_, p, n, _)| format!("{p}/{n}"))
        .collect()
}

/// Writes of objects (apply or create), as "plural/name", in order; events and status excluded.
fn writes(log: &[(String, String, String, String)]) -> Vec<String> {
    log.iter()
        .filter(|(m, p, _, s)| (m == "PATCH" || m == "POST") && p != "events" && s.is_empty())
        .map(|(m, p, n, _)| {
            if m == "POST" {
                format!("create {p}")
            } else {
                format!("{p}/{n}")
            }
        })
        .collect()
}

#[derive(Default)]
struct FakeProbes {
    redis_ok: AtomicBool,
    redis_down: AtomicBool,
    server_ready: AtomicBool,
    /// endpoints asked for /ready, in order
    asked: Mutex<Vec<String>>,
    formed_with: Mutex<Vec<(Vec<String>, Option<String>)>>,
}

#[async_trait]
impl Probes for FakeProbes {
    async fn form_redis(
        &self,
        addrs: &[String],
        password: Option<String>,
        shards: usize,
    ) -> Result<ClusterReport, String> {
        self.formed_with
            .lock()
            .unwrap()
            .push((addrs.to_vec(), password));
        if self.redis_down.load(Ordering::SeqCst) {
            return Err(format!("node {}: connection refused", addrs[0]));
        }
        let ok = self.redis_ok.load(Ordering::SeqCst);
        Ok(ClusterReport {
            state: if ok { "ok" } else { "fail" }.into(),
            slots_assigned: if ok { 16384 } else { 0 },
            nodes: addrs.len(),
            primaries: if ok { shards } else { 0 },
            replicas: if ok { addrs.len() - shards } else { 0 },
            actions: Vec::new(),
        })
    }
    async fn server_ready(&self, endpoint: &str) -> bool {
        self.asked.lock().unwrap().push(endpoint.to_string());
        self.server_ready.load(Ordering::SeqCst)
    }
}

struct Scenario {
    api: FakeApi,
    probes: Arc<FakeProbes>,
    ctx: Arc<Context>,
    skc: SyncKairosCluster,
}

impl Scenario {
    fn new(spec: Value) -> Self {
        let (client, api) = FakeApi::start();
        let probes = Arc::new(FakeProbes::default());
        let ctx = Arc::new(Context::new(
            client,
            probes.clone(),
            Metrics::new().unwrap(),
            Some("test-pod".into()),
        ));
        let mut skc = SyncKairosCluster::new("demo", serde_json::from_value(spec).unwrap());
        skc.metadata.namespace = Some("ns".into());
        skc.metadata.uid = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
        skc.metadata.generation = Some(1);
        api.put(
            "synckairosclusters",
            "demo",
            serde_json::to_value(&skc).unwrap(),
        );
        // the external Redis Secret the specs of these tests name ("redis://r:6379")
        api.put(
            "secrets",
            "r",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r", "namespace": "ns"},
                   "data": {"REDIS_URL": "cmVkaXM6Ly9yOjYzNzk="}}),
        );
        Self {
            api,
            probes,
            ctx,
            skc,
        }
    }

    /// One reconcile; the status it wrote is fed back as the watch would.
    async fn reconcile(&mut self) -> Result<Action, String> {
        let r = reconcile(Arc::new(self.skc.clone()), self.ctx.clone()).await;
        if let Some(v) = self.api.get("synckairosclusters", "demo")
            && let Some(s) = v.get("status")
        {
            self.skc.status = Some(serde_json::from_value(s.clone()).unwrap());
        }
        r.map_err(|e| {
            let a = error_policy(Arc::new(self.skc.clone()), &e, self.ctx.clone());
            format!("{e} => {a:?}")
        })
    }

    /// Name of the migration Job the current spec wants (one per image and database).
    fn job(&self) -> String {
        let c = validate(&self.skc).unwrap();
        build::desired(&c).migration.unwrap().metadata.name.unwrap()
    }

    /// First reconcile, then managed PostgreSQL and 6 Redis pods come up
    /// and the migration Job of the current spec succeeds; returns its name.
    async fn stores_up_and_migrated(&mut self) -> String {
        let job = self.job();
        self.reconcile().await.unwrap();
        self.api.set_status(
            "statefulsets",
            "demo-postgres",
            json!({"replicas": 1, "readyReplicas": 1}),
        );
        self.redis_pods_running(6);
        self.probes.redis_ok.store(true, Ordering::SeqCst);
        self.reconcile().await.unwrap();
        self.api.set_status("jobs", &job, json!({"succeeded": 1}));
        self.reconcile().await.unwrap();
        job
    }

    /// Condition `t` of the status last written.
    fn condition(&self, t: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        self.skc
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
            .unwrap_or_else(|| panic!("no condition {t}"))
    }

    /// The message of condition `t`.
    fn message(&self, t: &str) -> String {
        self.condition(t).message
    }

    fn cond(&self, t: &str) -> (String, String, String) {
        let c = self.condition(t);
        (c.status, c.reason, c.last_transition_time.0.to_string())
    }

    fn redis_pods_running(&self, n: usize) {
        for i in 0..n {
            let name = format!("demo-redis-{i}");
            self.api.put(
                "pods",
                &name,
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": "ns", "labels": {
                           "app.kubernetes.io/instance": "demo",
                           "app.kubernetes.io/component": "redis"}},
                       "status": {"phase": "Running", "podIP": format!("10.0.0.{}", 10 + i)}}),
            );
        }
        self.api.set_status(
            "statefulsets",
            "demo-redis",
            json!({"replicas": n, "readyReplicas": n}),
        );
    }
}

fn pos(w: &[String], item: &str) -> usize {
    w.iter()
        .position(|x| x == item)
        .unwrap_or_else(|| panic!("{item} not written: {w:?}"))
}

#[tokio::test]
async fn first_reconciles_create_everything_in_order_and_the_server_waits_for_migrations() {
    let mut s = Scenario::new(json!({"image": "synckairos:1.0"}));
    let job = s.job();

    // 1. nothing exists: secrets, Redis, PostgreSQL, server Service/PDB; no Job, no Deployment
    let a = s.reconcile().await.unwrap();
    assert_eq!(a, Action::requeue(std::time::Duration::from_secs(10)));
    let w = writes(&s.api.take_log());
    // Redis password, PostgreSQL credentials, the server's API key and token secret
    assert_eq!(
        &w[..3],
        ["create secrets", "create secrets", "create secrets"],
        "{w:?}"
    );
    let order = [
        "configmaps/demo-redis-config",
        "services/demo-redis",
        "statefulsets/demo-redis",
        "poddisruptionbudgets/demo-redis",
        "services/demo-postgres",
        "statefulsets/demo-postgres",
        "services/demo-server",
        "poddisruptionbudgets/demo-server",
    ];
    for pair in order.windows(2) {
        assert!(
            pos(&w, pair[0]) < pos(&w, pair[1]),
            "{pair:?} out of order: {w:?}"
        );
    }
    assert!(
        !w.iter()
            .any(|x| x.starts_with("jobs/") || x.starts_with("deployments/")),
        "{w:?}"
    );
    // owner references on what was applied
    let sts = s.api.get("statefulsets", "demo-redis").unwrap();
    assert_eq!(
        sts["metadata"]["ownerReferences"][0]["uid"],
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    );
    assert_eq!(s.cond("PostgresReady").0, "False");
    assert_eq!(s.cond("RedisReady").1, "WaitingForPods");
    assert_eq!(s.cond("Ready").0, "False");
    assert_eq!(
        s.skc.status.as_ref().unwrap().phase.as_deref(),
        Some("Provisioning")
    );
    // generated passwords exist and are not rotated by later reconciles
    let pw = s.api.get("secrets", "demo-redis-auth").unwrap()["data"]["password"].clone();

    // 2. PostgreSQL and the Redis pods come up: formation runs, the Job is created, still no Deployment
    s.api.set_status(
        "statefulsets",
        "demo-postgres",
        json!({"replicas": 1, "readyReplicas": 1}),
    );
    s.redis_pods_running(6);
    s.probes.redis_ok.store(true, Ordering::SeqCst);
    s.reconcile().await.unwrap();
    let w = writes(&s.api.take_log());
    assert!(
        !w.contains(&"create secrets".to_string()),
        "secrets re-created: {w:?}"
    );
    assert_eq!(
        s.api.get("secrets", "demo-redis-auth").unwrap()["data"]["password"],
        pw
    );
    assert!(pos(&w, "statefulsets/demo-postgres") < pos(&w, &format!("jobs/{job}")));
    assert!(
        !w.iter().any(|x| x.starts_with("deployments/")),
        "server before migrations: {w:?}"
    );
    let (addrs, password) = s
        .probes
        .formed_with
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(addrs.len(), 6);
    assert_eq!(addrs[0], "10.0.0.10:6379");
    assert!(
        password.is_some_and(|p| p.len() == 32),
        "formation must use the generated password"
    );
    assert_eq!(s.cond("RedisReady").0, "True");
    assert_eq!(s.cond("PostgresReady").0, "True");
    assert_eq!(s.cond("MigrationsComplete").1, "Running");
    let redis_since = s.cond("RedisReady").2;
    let st = s.skc.status.clone().unwrap();
    assert_eq!(st.redis.as_ref().unwrap().slots_assigned, 16384);

    // 3. the Job succeeds: the Deployment is applied with the migrated image
    s.api.set_status("jobs", &job, json!({"succeeded": 1}));
    s.reconcile().await.unwrap();
    let w = writes(&s.api.take_log());
    assert!(w.contains(&"deployments/demo-server".to_string()), "{w:?}");
    assert!(
        !w.contains(&format!("jobs/{job}")),
        "a created Job must not be re-applied: {w:?}"
    );
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "synckairos:1.0"
    );
    assert_eq!(s.cond("MigrationsComplete").0, "True");
    assert_eq!(s.cond("ServerAvailable").0, "False");
    assert_eq!(s.cond("Ready").0, "False");

    // 4. pods available, but /ready not answered through the Service: still not Ready
    s.api.set_status(
        "deployments",
        "demo-server",
        json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.cond("ServerAvailable").0, "True");
    let (ready, reason, _) = s.cond("Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ServerNotAnswering")
    );

    // 5. the Service answers /ready: Ready, and RedisReady kept its transition time
    s.probes.server_ready.store(true, Ordering::SeqCst);
    let a = s.reconcile().await.unwrap();
    assert_eq!(a, Action::requeue(std::time::Duration::from_secs(300)));
    assert_eq!(s.cond("Ready").0, "True");
    assert_eq!(s.cond("RedisReady").2, redis_since);
    let st = s.skc.status.clone().unwrap();
    assert_eq!((st.ready_replicas, st.replicas), (2, 2));
    assert_eq!(st.phase.as_deref(), Some("Ready"));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        st.endpoint.as_deref(),
        Some("http://demo-server.ns.svc:8080")
    );
    let log = s.api.take_log();
    assert!(
        log.iter().any(|(m, p, _, _)| m == "POST" && p == "events"),
        "becoming Ready publishes an Event"
    );

    // 6. a new image: its Job first; the Deployment keeps the old image meanwhile
    s.skc.spec.image = "synckairos:1.1".into();
    s.skc.metadata.generation = Some(2);
    s.reconcile().await.unwrap();
    let w = writes(&s.api.take_log());
    let job2 = s.job();
    assert!(w.contains(&format!("jobs/{job2}")), "{w:?}");
    assert!(
        !w.contains(&"deployments/demo-server".to_string()),
        "rolled out before migrating: {w:?}"
    );
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "synckairos:1.0"
    );
    assert_eq!(s.cond("MigrationsComplete").0, "False");
    assert_eq!(s.cond("ServerAvailable").1, "RolloutPending");
    assert_eq!(s.cond("Ready").0, "False");
    assert_eq!(
        s.skc.status.as_ref().unwrap().migrated_image.as_deref(),
        Some("synckairos:1.0")
    );
    s.api.set_status("jobs", &job2, json!({"succeeded": 1}));
    s.reconcile().await.unwrap();
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "synckairos:1.1"
    );
}

#[tokio::test]
async fn a_failing_api_call_yields_an_error_condition_and_a_backoff_requeue() {
    let mut s = Scenario::new(json!({}));
    s.api.fail("PATCH", "statefulsets");
    let e = s.reconcile().await.unwrap_err();
    assert!(e.contains("StatefulSet"), "{e}");
    assert!(e.contains("requeue_after: Some(1s)"), "{e}");
    let (status, reason, _) = s.cond("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ApiError"));
    assert_eq!(
        s.skc.status.as_ref().unwrap().phase.as_deref(),
        Some("Degraded")
    );
    let e2 = s.reconcile().await.unwrap_err();
    assert!(
        e2.contains("requeue_after: Some(2s)"),
        "backoff must grow: {e2}"
    );
    let metrics = s.ctx.metrics.render();
    assert!(
        metrics.contains("synckairos_operator_reconcile_errors_total{category=\"api\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_nothing_is_applied() {
    let mut s = Scenario::new(json!({"redis": {"shards": 4}}));
    s.skc.status = Some(serde_json::from_value(json!({"redis": {"state": "ok", "slotsAssigned": 16384, "nodes": 6, "primaries": 3, "replicas": 3, "shards": 3}})).unwrap());
    let a = s.reconcile().await.unwrap();
    assert_eq!(a, Action::await_change());
    let w = writes(&s.api.take_log());
    assert!(w.is_empty(), "applied despite an invalid spec: {w:?}");
    assert_eq!(s.cond("Ready").1, "ReshardingUnsupported");
    assert_eq!(
        s.skc.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
}

#[tokio::test]
async fn deletion_makes_no_calls_owner_references_collect_everything() {
    let mut s = Scenario::new(json!({}));
    s.skc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    let a = s.reconcile().await.unwrap();
    assert_eq!(a, Action::await_change());
    assert!(s.api.take_log().is_empty());
    assert!(s.skc.finalizers().is_empty(), "no finalizer is needed");
}

#[tokio::test]
async fn external_services_and_no_audit_skip_their_objects() {
    let mut s = Scenario::new(json!({
        "redis": {"mode": "external", "externalSecret": "r"},
        "postgres": {"mode": "disabled"},
        "server": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}, "ingress": {"host": "k.example.com"}}
    }));
    s.reconcile().await.unwrap();
    let w = writes(&s.api.take_log());
    assert!(
        !w.iter()
            .any(|x| x.contains("redis") || x.contains("postgres") || x.starts_with("jobs/")),
        "{w:?}"
    );
    // the one Secret generated is the server's credentials
    assert_eq!(w.iter().filter(|x| x.starts_with("create")).count(), 1);
    assert!(s.api.get("secrets", "demo-auth").is_some());
    // nothing to migrate: the Deployment is applied at once, with the HPA and Ingress
    for o in [
        "horizontalpodautoscalers/demo-server",
        "ingresses/demo",
        "deployments/demo-server",
    ] {
        assert!(w.contains(&o.to_string()), "{o} missing: {w:?}");
    }
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert!(
        dep["spec"].get("replicas").is_none(),
        "the HPA owns replicas"
    );
    assert_eq!(s.cond("MigrationsComplete").1, "NotNeeded");
    assert_eq!(s.cond("RedisReady").1, "External");
    assert_eq!(s.skc.name_any(), "demo");
}

#[tokio::test]
async fn a_failed_migration_and_an_unreachable_redis_are_reported_and_block_the_rollout() {
    let mut s = Scenario::new(json!({"image": "synckairos:2.0"}));
    s.reconcile().await.unwrap();
    s.api.set_status(
        "statefulsets",
        "demo-postgres",
        json!({"replicas": 1, "readyReplicas": 1}),
    );
    s.redis_pods_running(6);
    s.probes.redis_down.store(true, Ordering::SeqCst);
    s.reconcile().await.unwrap();
    let (status, reason, _) = s.cond("RedisReady");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ClusterUnreachable")
    );
    let job = s.job();
    s.api.set_status(
        "jobs",
        &job,
        json!({"failed": 7, "conditions": [{"type": "Failed", "status": "True"}]}),
    );
    s.api.take_log();
    let a = s.reconcile().await.unwrap();
    assert_eq!(
        a,
        Action::requeue(std::time::Duration::from_secs(10)),
        "keeps polling"
    );
    let (status, reason, _) = s.cond("MigrationsComplete");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "MigrationFailed")
    );
    let w = writes(&s.api.take_log());
    assert!(
        !w.iter()
            .any(|x| x.starts_with("deployments/") || x.starts_with("jobs/")),
        "{w:?}"
    );
    assert_eq!(
        s.cond("Ready").1,
        "RedisReadyFalse",
        "the first failing part explains Ready"
    );
    assert!(s.skc.status.as_ref().unwrap().migrated_image.is_none());
}

/// The operator's identity on an object: our labels and a controller reference to the CR.
const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

fn assert_no_deletes(s: &Scenario, log: &[(String, String, String, String)]) {
    assert!(deletes(log).is_empty(), "{:?}", deletes(log));
    assert!(s.api.take_deletes().is_empty());
}

/// Lists made by pruning carry our label selector, and only the prunable kinds are listed.
fn assert_prune_lists(log: &[(String, String, String, String)]) {
    let listed: std::collections::BTreeSet<&str> = log
        .iter()
        .filter(|(m, p, n, _)| m == "GET" && n.is_empty() && p != "pods")
        .map(|(_, p, _, _)| p.as_str())
        .collect();
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        [
            "configmaps",
            "horizontalpodautoscalers",
            "ingresses",
            "jobs",
            "poddisruptionbudgets",
            "services",
            "statefulsets"
        ]
    );
}

#[tokio::test]
async fn removing_the_ingress_from_the_spec_deletes_it() {
    let mut s = Scenario::new(json!({"server": {"ingress": {"host": "k.example.com"}}}));
    s.reconcile().await.unwrap();
    let ing = s.api.get("ingresses", "demo").expect("Ingress applied");
    let uid = ing["metadata"]["uid"].clone();
    let log = s.api.take_log();
    assert_no_deletes(&s, &log);
    assert_prune_lists(&log);

    s.skc.spec.server.ingress = None;
    s.skc.metadata.generation = Some(2);
    s.reconcile().await.unwrap();
    let log = s.api.take_log();
    // the server is not even rolled out (migrations pending): the Ingress goes anyway
    assert_eq!(deletes(&log), ["ingresses/demo"]);
    let d = s.api.take_deletes();
    assert_eq!(d[0].2["propagationPolicy"], "Background");
    assert_eq!(
        d[0].2["preconditions"]["uid"], uid,
        "delete exactly what was judged"
    );
    assert!(s.api.get("ingresses", "demo").is_none());
    assert!(
        s.api
            .events()
            .iter()
            .any(|(r, n)| r == "Deleted" && n.contains("Ingress demo")),
        "{:?}",
        s.api.events()
    );
    // gone stays gone: no second delete
    s.reconcile().await.unwrap();
    assert_no_deletes(&s, &s.api.take_log());
}

#[tokio::test]
async fn removing_autoscaling_deletes_the_hpa_and_the_deployment_gets_replicas_back() {
    let spec = json!({
        "redis": {"mode": "external", "externalSecret": "r"},
        "postgres": {"mode": "disabled"},
        "server": {"replicas": 3, "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}
    });
    let mut s = Scenario::new(spec);
    s.reconcile().await.unwrap();
    assert!(
        s.api
            .get("horizontalpodautoscalers", "demo-server")
            .is_some()
    );
    s.api.take_log();

    s.skc.spec.server.autoscaling = None;
    s.skc.metadata.generation = Some(2);
    s.reconcile().await.unwrap();
    let log = s.api.take_log();
    assert_eq!(deletes(&log), ["horizontalpodautoscalers/demo-server"]);
    assert!(
        s.api
            .get("horizontalpodautoscalers", "demo-server")
            .is_none()
    );
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(
        dep["spec"]["replicas"], 3,
        "the spec's replicas apply again"
    );
    // applied before the delete, so the Deployment never lacks an owner of replicas
    let apply = log
        .iter()
        .position(|(m, p, _, _)| m == "PATCH" && p == "deployments")
        .unwrap();
    let del = log.iter().position(|(m, _, _, _)| m == "DELETE").unwrap();
    assert!(apply < del, "{log:?}");
}

#[tokio::test]
async fn objects_with_our_names_but_not_created_by_us_are_never_deleted() {
    let mut s = Scenario::new(json!({}));
    let ours = json!({"app.kubernetes.io/managed-by": "synckairos-operator",
                      "app.kubernetes.io/instance": "demo",
                      "app.kubernetes.io/component": "server"});
    let owner = json!([{"apiVersion": "synckairos.io/v1alpha1", "kind": "SyncKairosCluster",
                        "name": "demo", "uid": UID, "controller": true}]);
    // an Ingress someone else made under the name ours would have: no labels, no owner
    s.api.put(
        "ingresses",
        "demo",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "demo", "namespace": "ns", "uid": "theirs-1"}}),
    );
    // our labels, but owned by another object (e.g. a previous cluster of the same name)
    s.api.put(
        "horizontalpodautoscalers",
        "demo-server",
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "demo-server", "namespace": "ns", "uid": "theirs-2",
                            "labels": ours,
                            "ownerReferences": [{"apiVersion": "synckairos.io/v1alpha1",
                                "kind": "SyncKairosCluster", "name": "demo",
                                "uid": "another-uid", "controller": true}]}}),
    );
    // owned by this cluster, but without our labels
    s.api.put(
        "configmaps",
        "demo-extra",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "demo-extra", "namespace": "ns", "uid": "theirs-3",
                            "ownerReferences": owner}}),
    );
    // our labels and owner, but a reference that is not the controller
    let mut not_controller = owner.clone();
    not_controller[0]["controller"] = json!(false);
    s.api.put(
        "services",
        "demo-extra",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "demo-extra", "namespace": "ns", "uid": "theirs-4",
                            "labels": ours, "ownerReferences": not_controller}}),
    );
    for _ in 0..3 {
        s.reconcile().await.unwrap();
        assert_no_deletes(&s, &s.api.take_log());
    }
    assert!(s.api.get("ingresses", "demo").is_some());
    assert!(
        s.api
            .get("horizontalpodautoscalers", "demo-server")
            .is_some()
    );
    assert!(s.api.get("configmaps", "demo-extra").is_some());
    assert!(s.api.get("services", "demo-extra").is_some());
}

#[tokio::test]
async fn nothing_is_deleted_while_the_desired_set_is_unchanged() {
    let mut s = Scenario::new(json!({
        "image": "synckairos:1.0",
        "server": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4},
                   "ingress": {"host": "k.example.com"}}
    }));
    let job = s.stores_up_and_migrated().await;
    s.api.set_status(
        "deployments",
        "demo-server",
        json!({"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    );
    s.probes.server_ready.store(true, Ordering::SeqCst);
    s.reconcile().await.unwrap();
    s.reconcile().await.unwrap();
    assert_eq!(s.cond("Ready").0, "True");
    let log = s.api.take_log();
    assert_no_deletes(&s, &log);
    assert_prune_lists(&log);
    assert!(!s.api.events().iter().any(|(r, _)| r == "Deleted"));

    // a new image: the Job of the old one stays (it records that 1.0 migrated)
    s.skc.spec.image = "synckairos:1.1".into();
    s.skc.metadata.generation = Some(2);
    let job2 = s.job();
    s.reconcile().await.unwrap();
    s.api.set_status("jobs", &job2, json!({"succeeded": 1}));
    s.reconcile().await.unwrap();
    s.reconcile().await.unwrap();
    assert_no_deletes(&s, &s.api.take_log());
    assert!(s.api.get("jobs", &job).is_some());
}

#[tokio::test]
async fn switching_to_external_stores_deletes_the_managed_ones_after_the_rollout_but_keeps_data() {
    let mut s = Scenario::new(json!({"image": "synckairos:1.0"}));
    let job = s.stores_up_and_migrated().await;
    // a volume claim the StatefulSet controller made (labelled like the pods)
    s.api.put(
        "persistentvolumeclaims",
        "data-demo-redis-0",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data-demo-redis-0", "namespace": "ns",
                            "labels": {"app.kubernetes.io/instance": "demo",
                                       "app.kubernetes.io/component": "redis"}}}),
    );
    // the server is mid-rollout: an old pod may still talk to the managed stores
    s.api.set_status(
        "deployments",
        "demo-server",
        json!({"replicas": 3, "updatedReplicas": 2}),
    );
    s.api.take_log();

    s.skc.spec.redis =
        serde_json::from_value(json!({"mode": "external", "externalSecret": "r"})).unwrap();
    s.skc.spec.postgres = serde_json::from_value(json!({"mode": "disabled"})).unwrap();
    s.skc.metadata.generation = Some(2);
    s.reconcile().await.unwrap();
    assert_no_deletes(&s, &s.api.take_log());
    assert!(s.api.get("statefulsets", "demo-redis").is_some());

    // rollout done: the managed stores, their Services/config/PDB and the Job go
    s.api.set_status(
        "deployments",
        "demo-server",
        json!({"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    );
    s.reconcile().await.unwrap();
    let mut d = deletes(&s.api.take_log());
    d.sort();
    let mut want = vec![
        "configmaps/demo-redis-config".to_string(),
        format!("jobs/{job}"),
        "poddisruptionbudgets/demo-redis".into(),
        "services/demo-postgres".into(),
        "services/demo-redis".into(),
        "statefulsets/demo-postgres".into(),
        "statefulsets/demo-redis".into(),
    ];
    want.sort();
    assert_eq!(d, want);
    // data and credentials stay
    assert!(
        s.api
            .get("persistentvolumeclaims", "data-demo-redis-0")
            .is_some()
    );
    assert!(s.api.get("secrets", "demo-redis-auth").is_some());
    assert!(s.api.get("secrets", "demo-postgres-credentials").is_some());
    // the server objects stay
    for (p, n) in [
        ("deployments", "demo-server"),
        ("services", "demo-server"),
        ("poddisruptionbudgets", "demo-server"),
    ] {
        assert!(s.api.get(p, n).is_some(), "{p}/{n} deleted");
    }
    // one Event names every deletion
    let notes = s.api.notes("Deleted");
    assert_eq!(notes.len(), 1, "{notes:?}");
    for kn in [
        "StatefulSet demo-redis",
        "StatefulSet demo-postgres",
        "Service demo-redis",
        "Service demo-postgres",
        "ConfigMap demo-redis-config",
        "PodDisruptionBudget demo-redis",
    ] {
        assert!(notes[0].contains(kn), "{kn} not in {notes:?}");
    }
    assert!(notes[0].contains(&format!("Job {job}")), "{notes:?}");
}

/// Where the server Deployment stored in the fake API reads DATABASE_URL from: the managed
/// Service's host, or the name of the Secret holding it.
fn deployment_database(s: &Scenario) -> String {
    let dep = s.api.get("deployments", "demo-server").unwrap();
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let url = env.iter().find(|e| e["name"] == "DATABASE_URL").unwrap();
    match url["value"].as_str() {
        Some(v) => v.split('@').nth(1).unwrap().to_string(),
        None => format!(
            "secret {}",
            url["valueFrom"]["secretKeyRef"]["name"].as_str().unwrap()
        ),
    }
}

#[tokio::test]
async fn another_database_with_the_same_image_is_migrated_before_the_rollout() {
    let mut s = Scenario::new(json!({"image": "synckairos:1.0"}));
    let managed_job = s.stores_up_and_migrated().await;
    let settled =
        json!({"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
    s.api
        .set_status("deployments", "demo-server", settled.clone());
    s.probes.server_ready.store(true, Ordering::SeqCst);
    s.reconcile().await.unwrap();
    assert_eq!(s.cond("Ready").0, "True");
    assert_eq!(
        deployment_database(&s),
        "demo-postgres.ns.svc:5432/$(PGDATABASE)"
    );
    s.api.take_log();

    // each step switches the database, never the image: a new Job each time, and the
    // Deployment keeps the previous database until that Job succeeded
    let steps = [
        (
            json!({"mode": "external", "externalSecret": "pg"}),
            "secret pg",
        ),
        (
            json!({"mode": "external", "externalSecret": "pg-new"}),
            "secret pg-new",
        ),
    ];
    let mut previous = "demo-postgres.ns.svc:5432/$(PGDATABASE)".to_string();
    let mut jobs = vec![managed_job.clone()];
    for (generation, (postgres, database)) in (2..).zip(steps) {
        s.skc.spec.postgres = serde_json::from_value(postgres).unwrap();
        s.skc.metadata.generation = Some(generation);
        let job = s.job();
        assert!(!jobs.contains(&job), "{job} reused for {database}");
        for round in 0..2 {
            s.reconcile().await.unwrap();
            let log = s.api.take_log();
            // the server is not settled on the new database yet: nothing is pruned
            assert!(deletes(&log).is_empty(), "{log:?}");
            let w = writes(&log);
            assert_eq!(
                w.contains(&format!("jobs/{job}")),
                round == 0,
                "the Job is created once: {w:?}"
            );
            assert!(
                !w.contains(&"deployments/demo-server".to_string()),
                "rolled out onto {database} before migrating it: {w:?}"
            );
            assert_eq!(deployment_database(&s), previous);
            let (status, reason, _) = s.cond("MigrationsComplete");
            assert_eq!((status.as_str(), reason.as_str()), ("False", "Running"));
            assert_eq!(s.cond("Ready").0, "False");
        }
        let created = s.api.get("jobs", &job).unwrap();
        assert_eq!(
            created["spec"]["template"]["spec"]["containers"][0]["image"],
            "synckairos:1.0"
        );
        let env = &created["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.to_string()
                .contains(database.trim_start_matches("secret ")),
            "{env}"
        );

        s.api.set_status("jobs", &job, json!({"succeeded": 1}));
        s.reconcile().await.unwrap();
        let w = writes(&s.api.take_log());
        assert!(w.contains(&"deployments/demo-server".to_string()), "{w:?}");
        assert_eq!(deployment_database(&s), database);
        assert_eq!(s.cond("MigrationsComplete").0, "True");
        s.api
            .set_status("deployments", "demo-server", settled.clone());
        s.reconcile().await.unwrap();
        assert_eq!(s.cond("Ready").0, "True");
        // the managed PostgreSQL goes once the server left it
        assert!(s.api.get("statefulsets", "demo-postgres").is_none());
        s.api.take_log();
        previous = database.to_string();
        jobs.push(job);
    }

    // the Jobs that record which image migrated which database stay while PostgreSQL is in use
    for job in &jobs {
        assert!(s.api.get("jobs", job).is_some(), "{job} deleted");
    }
}

#[tokio::test]
async fn a_failing_delete_is_reported_and_retried() {
    let mut s = Scenario::new(json!({"server": {"ingress": {"host": "k.example.com"}}}));
    s.reconcile().await.unwrap();
    s.skc.spec.server.ingress = None;
    s.api.fail("DELETE", "ingresses");
    let e = s.reconcile().await.unwrap_err();
    assert!(e.contains("delete Ingress demo"), "{e}");
    assert_eq!(s.cond("Ready").1, "ApiError");
    assert!(s.api.get("ingresses", "demo").is_some());
}

/// The decoded `data` of a stored Secret (the fake API base64-encodes `stringData`).
fn secret_data(s: &Scenario, name: &str) -> BTreeMap<String, String> {
    let v = s.api.get("secrets", name).expect("secret exists");
    v["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, x)| {
            let b = k8s_openapi::ByteString(Vec::new());
            let decoded: k8s_openapi::ByteString = serde_json::from_value(x.clone()).unwrap_or(b);
            (k.clone(), String::from_utf8(decoded.0).unwrap())
        })
        .collect()
}

fn server_env(s: &Scenario) -> BTreeMap<String, Value> {
    let dep = s.api.get("deployments", "demo-server").expect("deployment");
    dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect()
}

/// The server is deployed at once: no managed stores, no migrations.
fn bare(extra_server: Value) -> Value {
    json!({"redis": {"mode": "external", "externalSecret": "r"},
           "postgres": {"mode": "disabled"}, "server": extra_server})
}

#[tokio::test]
async fn the_auth_secret_is_generated_once_and_never_overwritten() {
    let mut s = Scenario::new(bare(json!({})));
    s.reconcile().await.unwrap();
    let first = secret_data(&s, "demo-auth");
    let key = first["api-keys"].strip_prefix("admin=").unwrap();
    let key = key.strip_suffix('\n').unwrap();
    assert_eq!(key.len(), 43, "32 random bytes in base64url: {key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(first["token-secret"].len(), 43);
    assert_ne!(key, first["token-secret"]);
    let secret = s.api.get("secrets", "demo-auth").unwrap();
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], UID);
    assert!(
        s.api
            .events()
            .iter()
            .any(|(r, n)| r == "SecretGenerated" && n.contains("demo-auth"))
    );
    let env = server_env(&s);
    assert_eq!(env["API_KEYS_FILE"], "/etc/synckairos/auth/api-keys");
    assert_eq!(
        env["TOKEN_SECRET_FILE"],
        "/etc/synckairos/auth/token-secret"
    );
    assert!(!env.contains_key("AUTH"));
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "demo-auth"
    );

    // the user rotates the key by hand: later reconciles read it and leave it alone
    let mut edited = s.api.get("secrets", "demo-auth").unwrap();
    edited["data"]["api-keys"] = json!("YWRtaW49bWluZQo="); // "admin=mine\n"
    s.api.put("secrets", "demo-auth", edited);
    s.api.take_log();
    for _ in 0..2 {
        s.reconcile().await.unwrap();
    }
    let log = s.api.take_log();
    assert!(
        !log.iter().any(|(m, p, _, _)| p == "secrets" && m != "GET"),
        "the Secret was written again: {log:?}"
    );
    assert_eq!(secret_data(&s, "demo-auth")["api-keys"], "admin=mine\n");
}

#[tokio::test]
async fn an_existing_auth_secret_is_used_as_is_and_its_keys_are_checked() {
    let mut s = Scenario::new(bare(json!({"auth": {"existingSecret": "team-auth"}})));
    // not there yet: nothing generated, the pods wait for it like the kubelet would
    s.reconcile().await.unwrap();
    let log = s.api.take_log();
    assert!(
        !log.iter().any(|(m, p, _, _)| m == "POST" && p == "secrets"),
        "{log:?}"
    );
    assert!(s.api.get("secrets", "demo-auth").is_none());
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "team-auth"
    );
    // there, without the token secret: the condition names the Secret, the key and the fix
    s.api.put(
        "secrets",
        "team-auth",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "team-auth", "namespace": "ns"},
               "data": {"api-keys": "YWRtaW49bWluZQo="}}),
    );
    let e = s.reconcile().await.unwrap_err();
    let want = "Secret team-auth has no key token-secret: add it (kubectl edit secret \
                team-auth) or point the spec at a Secret that has it.";
    assert!(e.starts_with(want), "{e}");
    assert_eq!(s.message("Ready"), want);
    assert!(s.api.events().iter().any(|(_, n)| n == want));
    // with both keys it reconciles, and the user's data is never touched
    let mut full = s.api.get("secrets", "team-auth").unwrap();
    full["data"]["token-secret"] = json!("c2VjcmV0");
    s.api.put("secrets", "team-auth", full.clone());
    s.reconcile().await.unwrap();
    assert_eq!(s.api.get("secrets", "team-auth").unwrap(), full);
}

#[tokio::test]
async fn auth_disabled_runs_the_server_open_explicitly_and_generates_nothing() {
    let mut s = Scenario::new(bare(json!({"auth": {"enabled": false}})));
    s.reconcile().await.unwrap();
    assert!(s.api.get("secrets", "demo-auth").is_none());
    let env = server_env(&s);
    assert_eq!(env["AUTH"], "off");
    assert!(!env.contains_key("API_KEYS_FILE") && !env.contains_key("TOKEN_SECRET_FILE"));
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert!(dep["spec"]["template"]["spec"].get("volumes").is_none());
}

#[tokio::test]
async fn probes_metrics_and_the_ready_check_use_the_admin_port_and_the_ingress_stays_public() {
    let mut s = Scenario::new(bare(json!({"ingress": {"host": "k.example.com"}})));
    s.reconcile().await.unwrap();
    let dep = s.api.get("deployments", "demo-server").unwrap();
    let k = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(k["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(k["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(
        k["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"},
               {"name": "admin", "containerPort": 9090, "protocol": "TCP"}])
    );
    let svc = s.api.get("services", "demo-server").unwrap();
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
               {"name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP"}])
    );
    let ing = s.api.get("ingresses", "demo").unwrap();
    let paths: Vec<&str> = ing["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/v1", "/ws", "/demo", "/", "/favicon.ico"]);
    s.api.set_status(
        "deployments",
        "demo-server",
        json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    );
    s.reconcile().await.unwrap();
    // the operator asks /ready on the admin port (the public port no longer serves it)
    assert_eq!(
        s.probes.asked.lock().unwrap().last().map(String::as_str),
        Some("http://demo-server.ns.svc:9090")
    );
    // status still points users at the public port
    assert_eq!(
        s.skc.status.as_ref().unwrap().endpoint.as_deref(),
        Some("http://demo-server.ns.svc:8080")
    );
}

#[tokio::test]
async fn the_memory_engine_is_clamped_to_one_server_pod_and_says_why() {
    let mut s = Scenario::new(
        json!({"redis": {"mode": "memory"}, "postgres": {"mode": "disabled"},
        "server": {"replicas": 3}}),
    );
    s.reconcile().await.unwrap();
    let w = writes(&s.api.take_log());
    assert!(!w.iter().any(|x| x.contains("redis")), "{w:?}");
    let dep = s.api.get("deployments", "demo-server").unwrap();
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let env = server_env(&s);
    assert!(!env.contains_key("REDIS_URL") && !env.contains_key("REDIS_CLUSTER_NODES"));
    let (status, reason, _) = s.cond("RedisReady");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "MemoryEngine"));
    assert_eq!(
        s.message("RedisReady"),
        "no Redis configured (redis.mode memory): sessions live in the memory of a single \
         server pod and are lost when it restarts; server.replicas 3 is clamped to 1 because \
         a second pod would not see the first one's sessions; set redis.mode to managed or \
         external to run more"
    );
    // autoscaling asked for: no HPA either
    s.skc.spec.server.autoscaling =
        Some(serde_json::from_value(json!({"minReplicas": 2, "maxReplicas": 5})).unwrap());
    s.reconcile().await.unwrap();
    assert!(
        s.api
            .get("horizontalpodautoscalers", "demo-server")
            .is_none()
    );
    assert_eq!(
        s.api.get("deployments", "demo-server").unwrap()["spec"]["replicas"],
        1
    );
    assert!(
        s.message("RedisReady")
            .contains("server.autoscaling is ignored")
    );
}

#[tokio::test]
async fn a_refused_call_is_one_sentence_in_the_condition_and_the_event() {
    let mut s = Scenario::new(bare(json!({})));
    s.api.fail_with(
        "PATCH",
        "poddisruptionbudgets",
        404,
        "the server could not find the requested resource",
    );
    s.reconcile().await.unwrap_err();
    let want = "Could not apply PodDisruptionBudget demo-server: the API server answered 404 \
                (the server could not find the requested resource); check that the namespace \
                exists and that the API server serves PodDisruptionBudget (Kubernetes 1.27 or \
                later).";
    assert_eq!(s.message("Ready"), want);
    assert_eq!(s.cond("Ready").1, "ApiError");
    assert_eq!(s.api.notes("ReconcileError"), [want]);
}

#[tokio::test]
async fn a_too_old_api_server_becomes_a_condition_that_explains_not_ready() {
    let (client, api) = FakeApi::start();
    api.0.lock().unwrap().version = Some(json!({"major": "1", "minor": "20",
        "gitVersion": "v1.20.2", "gitCommit": "", "gitTreeState": "", "buildDate": "",
        "goVersion": "", "compiler": "", "platform": "linux/amd64"}));
    let verdict = synckairos_operator::apiserver::check(&client)
        .await
        .unwrap();
    assert!(!verdict.ok);
    let mut s = Scenario::new(bare(json!({})));
    Arc::get_mut(&mut s.ctx).unwrap().api_server = Some(verdict.clone());
    s.reconcile().await.unwrap();
    let (status, reason, _) = s.cond("KubernetesVersionSupported");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "KubernetesTooOld")
    );
    assert_eq!(s.message("KubernetesVersionSupported"), verdict.message);
    assert!(
        verdict
            .message
            .starts_with("the API server runs Kubernetes v1.20.2, older than the 1.27"),
        "{}",
        verdict.message
    );
    // the root cause explains Ready, even when a call then fails with a 404
    assert_eq!(s.cond("Ready").1, "KubernetesTooOld");
    s.api
        .fail_with("PATCH", "poddisruptionbudgets", 404, "not found");
    s.reconcile().await.unwrap_err();
    assert_eq!(s.cond("Ready").1, "KubernetesTooOld");
    assert_eq!(s.cond("KubernetesVersionSupported").0, "False");

    // a supported server: True; an unreadable /version: no condition at all
    api.0.lock().unwrap().version = Some(json!({"major": "1", "minor": "30+",
        "gitVersion": "v1.30.1-eks", "gitCommit": "", "gitTreeState": "", "buildDate": "",
        "goVersion": "", "compiler": "", "platform": "linux/amd64"}));
    assert!(
        synckairos_operator::apiserver::check(&client)
            .await
            .unwrap()
            .ok
    );
    api.0.lock().unwrap().version = None;
    assert!(
        synckairos_operator::apiserver::check(&client)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn an_external_redis_secret_without_an_address_deploys_nothing() {
    // the server would read both keys as optional and fall back to the memory engine
    let mut s = Scenario::new(bare(json!({"replicas": 3})));
    s.api.put(
        "secrets",
        "r",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r", "namespace": "ns"},
               "data": {"REDIS_PASSWORD": "cHc="}}),
    );
    let e = s.reconcile().await.unwrap_err();
    assert!(
        e.contains("has neither REDIS_URL nor REDIS_CLUSTER_NODES"),
        "{e}"
    );
    assert!(s.api.get("deployments", "demo-server").is_none());
    assert!(
        s.message("Ready")
            .starts_with("Secret r (redis.externalSecret) has neither")
    );
    // missing altogether: the same, saying so
    s.api
        .0
        .lock()
        .unwrap()
        .objects
        .remove(&("secrets".into(), "r".into()));
    let e = s.reconcile().await.unwrap_err();
    assert!(
        e.contains("Secret r (redis.externalSecret) does not exist"),
        "{e}"
    );
    // with an address the server is deployed with the replicas asked for
    s.api.put(
        "secrets",
        "r",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r", "namespace": "ns"},
               "data": {"REDIS_CLUSTER_NODES": "cjA6NjM3OQ=="}}),
    );
    s.reconcile().await.unwrap();
    assert_eq!(
        s.api.get("deployments", "demo-server").unwrap()["spec"]["replicas"],
        3
    );
}
