//! Every REST endpoint's success path: status codes, `{data: ...}` wrapping,
//! full state shapes, and the system endpoints (time, health, ready,
//! metrics, OpenAPI).

use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    create_returns_201_with_full_pending_state,
    create_defaults_index_and_participant_bank,
    participants_are_returned_in_rotation_order,
    get_returns_the_stored_state,
    start_runs_the_lowest_index_participant,
    switch_returns_switch_result,
    pause_resume_complete_cancel_transitions,
    complete_works_from_pending,
    delete_is_204_and_idempotent,
    events_serve_the_audit_trail_or_503,
    time_endpoint,
    health_and_ready,
    metrics_are_prometheus_text_with_synckairos_prefix,
    openapi_lists_every_path,
    json_responses_have_json_content_type,
    metrics_follow_traffic,
    openapi_refs_resolve_and_schemas_match_real_responses,
    unset_optional_fields_are_absent_never_null,
}

fn local_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn create_returns_201_with_full_pending_state(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_participant", &["alice", "bob"], 60_000);
    body["metadata"] = json!({"table": 7, "tags": ["x"]});
    let before = local_now_ms();
    let s = srv.api().create(&body).await;
    let after = local_now_ms();
    assert_eq!(s["session_id"], body["session_id"]);
    assert_eq!(s["sync_mode"], "per_participant");
    assert_eq!(s["status"], "pending");
    assert_eq!(s["version"], 1);
    assert_eq!(s["total_time_ms"], 60_000);
    assert_eq!(s["increment_ms"], 0, "increment_ms defaults to 0");
    assert!(s.get("max_time_ms").is_none(), "max_time_ms omitted: {s}");
    assert_eq!(s.get("time_per_cycle_ms"), Some(&Value::Null));
    assert_eq!(
        s["action_on_timeout"],
        json!({"type": "end_session"}),
        "default action"
    );
    assert_eq!(s["auto_advance"], false);
    assert_eq!(s["metadata"], body["metadata"], "metadata echoed");
    assert_eq!(s["active_participant_id"], Value::Null);
    assert_eq!(s["deadline_ms"], Value::Null);
    assert_eq!(s["session_completed_at"], Value::Null);
    let st = int(&s, "server_time_ms");
    // Same machine, same clock: the server's time is within our request window.
    assert!(
        st >= before - 1000 && st <= after + 1000,
        "server_time_ms {st} vs local [{before},{after}]"
    );
    let created = iso_ms(&s["created_at"]);
    assert!(created <= st, "created_at <= server_time_ms: {s}");
    for (i, id) in ["alice", "bob"].iter().enumerate() {
        let p = participant(&s, id);
        assert_eq!(p["participant_index"], i);
        assert_eq!(p["total_time_ms"], 60_000);
        assert_eq!(p["time_used_ms"], 0);
        assert_eq!(p["time_remaining_ms"], 60_000);
        assert_eq!(p["cycle_count"], 0);
        assert_eq!(p["is_active"], false);
        assert_eq!(p["has_expired"], false);
    }
}

async fn create_defaults_index_and_participant_bank(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = json!({
        "session_id": new_id(),
        "sync_mode": "per_participant",
        "participants": [
            {"participant_id": "p0"},
            {"participant_id": "p1", "total_time_ms": 5000},
            {"participant_id": "p2"},
        ],
        "total_time_ms": 7000,
    });
    let s = srv.api().create(&body).await;
    let got: Vec<(Value, Value)> = s["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["participant_id"].clone(), p["participant_index"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("p0"), json!(0)),
            (json!("p1"), json!(1)),
            (json!("p2"), json!(2))
        ],
        "participant_index defaults to the array position"
    );
    assert_eq!(
        participant(&s, "p0")["total_time_ms"],
        7000,
        "bank defaults to session total"
    );
    assert_eq!(participant(&s, "p1")["total_time_ms"], 5000);
    assert_eq!(participant(&s, "p2")["time_remaining_ms"], 7000);
}

async fn participants_are_returned_in_rotation_order(b: Backend) {
    let srv = TestServer::start(&b).await;
    let id = new_id();
    let body = json!({
        "session_id": id,
        "sync_mode": "per_participant",
        "participants": [
            {"participant_id": "second", "participant_index": 5},
            {"participant_id": "first", "participant_index": 2},
        ],
        "total_time_ms": 60000,
    });
    let s = srv.api().create(&body).await;
    let order: Vec<&str> = s["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["participant_id"].as_str())
        .collect();
    assert_eq!(order, ["first", "second"]);
    let started = srv.api().act(&id, "start").await;
    assert_eq!(
        started["active_participant_id"], "first",
        "lowest index starts"
    );
}

async fn get_returns_the_stored_state(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = session_body("per_cycle", &["a", "b"], 60_000);
    body["time_per_cycle_ms"] = json!(3000);
    body["metadata"] = json!({"k": "v"});
    body["action_on_timeout"] = json!({"type": "skip_cycle", "penalty": 5});
    let id = id_of(&body);
    let mut created = srv.api().create(&body).await;
    let mut got = srv.api().state(&id).await;
    assert_eq!(
        got["action_on_timeout"],
        json!({"type": "skip_cycle", "penalty": 5}),
        "action echoed"
    );
    assert_eq!(got["time_per_cycle_ms"], 3000);
    // Identical apart from the render time.
    created["server_time_ms"] = Value::Null;
    got["server_time_ms"] = Value::Null;
    assert_eq!(got, created);
}

async fn start_runs_the_lowest_index_participant(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["alice", "bob"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let s = srv.api().act(&id, "start").await;
    assert_eq!(s["status"], "running");
    assert_eq!(s["version"], 2);
    assert_eq!(s["active_participant_id"], "alice");
    assert_eq!(participant(&s, "alice")["is_active"], true);
    assert_eq!(participant(&s, "bob")["is_active"], false);
    let t0 = iso_ms(&s["cycle_started_at"]);
    assert_eq!(
        s["session_started_at"], s["cycle_started_at"],
        "session starts with the first cycle"
    );
    assert_eq!(int(&s, "deadline_ms"), t0 + 60_000);
    assert!(int(&s, "server_time_ms") >= t0);
    assert_eq!(
        participant(&s, "bob")["time_remaining_ms"],
        60_000,
        "inactive bank untouched"
    );
    let g = srv.api().state(&id).await;
    assert_eq!(g["version"], 2);
    assert_eq!(g["cycle_started_at"], s["cycle_started_at"]);
    assert_eq!(g["deadline_ms"], s["deadline_ms"]);
}

async fn switch_returns_switch_result(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["alice", "bob"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let r = srv.api().switch(&id, &json!({})).await;
    assert_eq!(r["session_id"], id.as_str());
    assert_eq!(r["active_participant_id"], "bob");
    assert_eq!(r["status"], "running");
    assert_eq!(r["version"], 3);
    assert!(
        r.get("expired_participant_id").is_none_or(|v| v.is_null()),
        "no expiry on a normal switch: {r}"
    );
    let t1 = iso_ms(&r["cycle_started_at"]);
    assert_eq!(int(&r, "deadline_ms"), t1 + 60_000);
    let bob = participant(&r, "bob");
    assert_eq!(bob["is_active"], true);
    assert_eq!(
        int(bob, "time_remaining_ms"),
        (t1 + 60_000 - int(&r, "server_time_ms")).max(0)
    );
    // GET renders the same committed state (only the live remaining time of
    // the active participant depends on the render time).
    let g = srv.api().state(&id).await;
    assert_eq!(g["version"], r["version"]);
    assert_eq!(g["cycle_started_at"], r["cycle_started_at"]);
    assert_eq!(g["deadline_ms"], r["deadline_ms"]);
    let strip = |v: &serde_json::Value| {
        let mut ps = v["participants"].clone();
        for p in ps.as_array_mut().into_iter().flatten() {
            if p["is_active"] == true {
                p["time_remaining_ms"] = Value::Null;
            }
        }
        ps
    };
    assert_eq!(strip(&g), strip(&r), "switch result and GET agree");
    // A switch with no body at all is the same as `{}`.
    let r2 = srv
        .api()
        .post_empty(&format!("/v1/sessions/{id}/switch"))
        .await;
    let r2 = r2.data(200);
    check_switch_result(r2);
    assert_eq!(r2["active_participant_id"], "alice");
    assert_eq!(r2["version"], 4);
}

async fn pause_resume_complete_cancel_transitions(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let p = api.act(&id, "pause").await;
    assert_eq!(
        (p["status"].clone(), p["version"].clone()),
        (json!("paused"), json!(3))
    );
    assert_eq!(
        p["active_participant_id"], "a",
        "a paused session keeps whose turn it is"
    );
    let r = api.act(&id, "resume").await;
    assert_eq!(
        (r["status"].clone(), r["version"].clone()),
        (json!("running"), json!(4))
    );
    assert_eq!(
        r["active_participant_id"], "a",
        "resume continues the same participant"
    );
    let c = api.act(&id, "complete").await;
    assert_eq!(
        (c["status"].clone(), c["version"].clone()),
        (json!("completed"), json!(5))
    );
    assert!(!c["session_completed_at"].is_null());

    let body2 = session_body("global", &["a", "b"], 60_000);
    let id2 = id_of(&body2);
    api.create_started(&body2).await;
    api.act(&id2, "pause").await;
    let x = api.act(&id2, "cancel").await;
    assert_eq!(
        (x["status"].clone(), x["version"].clone()),
        (json!("cancelled"), json!(4))
    );
    assert_eq!(api.state(&id2).await["status"], "cancelled");
}

async fn complete_works_from_pending(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("count_up", &["a"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let c = srv.api().act(&id, "complete").await;
    assert_eq!(c["status"], "completed");
    assert_eq!(c["version"], 2);
    assert_eq!(
        participant(&c, "a")["time_used_ms"],
        0,
        "nothing ran, nothing charged"
    );
    let body2 = session_body("per_cycle", &["a"], 60_000);
    let id2 = id_of(&body2);
    srv.api().create(&body2).await;
    assert_eq!(srv.api().act(&id2, "cancel").await["status"], "cancelled");
}

async fn delete_is_204_and_idempotent(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let d = srv.api().delete(&format!("/v1/sessions/{id}")).await;
    d.expect_status(204);
    assert!(d.text.is_empty(), "204 has no body: {d}");
    srv.api()
        .get(&format!("/v1/sessions/{id}"))
        .await
        .error(404, "SESSION_NOT_FOUND");
    srv.api()
        .delete(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(204);
    srv.api()
        .delete(&format!("/v1/sessions/{}", new_id()))
        .await
        .expect_status(204);
    // The id is free again.
    srv.api().create(&body).await;
}

async fn events_serve_the_audit_trail_or_503(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let path = format!("/v1/sessions/{id}/events");
    if b.has_audit() {
        // With an audit store the trail fills asynchronously (outbox).
        wait_until(
            Duration::from_secs(10),
            "audit events for create and start",
            || async {
                let r = srv.api().get(&path).await;
                r.status == 200 && r.body["data"].as_array().is_some_and(|a| a.len() >= 2)
            },
        )
        .await;
        let r = srv.api().get(&path).await;
        assert!(
            r.body.get("next_cursor").is_some(),
            "next_cursor present: {r}"
        );
        return;
    }
    let r = srv.api().get(&path).await;
    r.expect_status(503);
    let code = r.body["error"]["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "503 carries an error code: {r}");
}

async fn time_endpoint(b: Backend) {
    let srv = TestServer::start(&b).await;
    let before = local_now_ms();
    let r = srv.api().get("/v1/time").await;
    let after = local_now_ms();
    r.expect_status(200);
    let t = &r.body;
    let ts = int(t, "timestamp_ms");
    assert!(
        ts >= before - 1000 && ts <= after + 1000,
        "timestamp_ms {ts} vs local [{before},{after}]"
    );
    assert_eq!(t["server_version"], "2.0.0", "{r}");
    assert_eq!(t["drift_tolerance_ms"], 50, "{r}");
    if let Some(bv) = t.get("build_version") {
        let bv = bv
            .as_str()
            .unwrap_or_else(|| panic!("build_version is a string: {r}"));
        crate::check_build_version(bv);
    }
}

async fn health_and_ready(b: Backend) {
    let srv = TestServer::start(&b).await;
    let h = srv.api().get("/health").await;
    h.expect_status(200);
    assert_eq!(h.body["status"], "ok", "{h}");
    let r = srv.api().get("/ready").await;
    r.expect_status(200);
    assert_eq!(r.body["status"], "ready", "{r}");
}

async fn metrics_are_prometheus_text_with_synckairos_prefix(b: Backend) {
    let srv = TestServer::start(&b).await;
    // Some traffic first, so request and switch metrics have samples.
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    srv.api().switch(&id, &json!({})).await;
    let m = srv.api().get("/metrics").await;
    m.expect_status(200);
    let ct = m.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain"),
        "Prometheus text content type, got {ct:?}"
    );
    let mut names = std::collections::BTreeSet::new();
    for line in m
        .text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "sample value not a number: {line:?}"
        );
        names.insert(series.split('{').next().unwrap_or_default().to_string());
    }
    let ours: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("synckairos_"))
        .collect();
    assert!(!ours.is_empty(), "no synckairos_ metrics in:\n{}", m.text);
    assert!(
        m.text.contains("# TYPE synckairos_"),
        "metrics carry TYPE lines:\n{}",
        m.text
    );
}

/// Path templates with the parameter names blanked, so `{id}` and
/// `{session_id}` compare equal.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

async fn openapi_lists_every_path(b: Backend) {
    let srv = TestServer::start(&b).await;
    let r = srv.api().get("/openapi.json").await;
    r.expect_status(200);
    let spec = &r.body;
    let version = spec["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3."),
        "OpenAPI 3 document expected, got openapi={version:?}"
    );
    assert!(spec["info"]["title"].is_string(), "info.title");
    assert!(spec["info"]["version"].is_string(), "info.version");
    let paths = spec["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("paths object missing: {}", r.text));
    let have: std::collections::BTreeMap<String, &Value> =
        paths.iter().map(|(k, v)| (normalize(k), v)).collect();
    let want = [
        ("/v1/sessions", "post"),
        ("/v1/sessions/{}", "get"),
        ("/v1/sessions/{}", "delete"),
        ("/v1/sessions/{}/start", "post"),
        ("/v1/sessions/{}/switch", "post"),
        ("/v1/sessions/{}/pause", "post"),
        ("/v1/sessions/{}/resume", "post"),
        ("/v1/sessions/{}/complete", "post"),
        ("/v1/sessions/{}/cancel", "post"),
        ("/v1/sessions/{}/events", "get"),
        ("/v1/time", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
    ];
    for (path, method) in want {
        let item = have
            .get(path)
            .unwrap_or_else(|| panic!("OpenAPI lacks path {path}; has {:?}", have.keys()));
        assert!(item[method].is_object(), "OpenAPI lacks {method} {path}");
        assert!(
            item[method]["responses"].is_object(),
            "{method} {path} has responses"
        );
    }
}

async fn json_responses_have_json_content_type(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a"], 60_000);
    let ok = srv.api().post("/v1/sessions", &body).await;
    ok.expect_status(201);
    let err = srv.api().get(&format!("/v1/sessions/{}", new_id())).await;
    err.expect_status(404);
    for r in [&ok, &err] {
        let ct = r.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "content-type {ct:?}: {r}"
        );
    }
}

async fn metrics_text(srv: &TestServer) -> String {
    let m = srv.api().get("/metrics").await;
    m.expect_status(200);
    m.text
}

async fn metrics_follow_traffic(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let before = metrics_text(&srv).await;
    let switches0 = metric_sum(&before, "synckairos_switch_duration_seconds_count");

    let (mut ws1, _) = srv.ws_synced(&id).await;
    let (ws2, _) = srv.ws_synced(&id).await;
    wait_until(
        Duration::from_secs(5),
        "websocket gauge counts 2 clients",
        || async {
            metric_sum(
                &metrics_text(&srv).await,
                "synckairos_websocket_connections",
            ) == 2.0
        },
    )
    .await;
    ws2.close().await;
    wait_until(
        Duration::from_secs(5),
        "websocket gauge drops to 1",
        || async {
            metric_sum(
                &metrics_text(&srv).await,
                "synckairos_websocket_connections",
            ) == 1.0
        },
    )
    .await;

    srv.api().act(&id, "start").await;
    for _ in 0..3 {
        srv.api().switch(&id, &json!({})).await;
    }
    let after = metrics_text(&srv).await;
    assert_eq!(
        metric_sum(&after, "synckairos_switch_duration_seconds_count") - switches0,
        3.0,
        "switch latency histogram counts every switch"
    );
    let http = metric_samples(&after, "synckairos_http_request_duration_seconds_count");
    assert!(
        http.iter()
            .any(|(l, v)| l.contains("switch") && l.contains("POST") && *v >= 3.0),
        "HTTP latency per route includes the switch route: {http:?}"
    );
    assert!(
        http.iter().all(|(l, _)| !l.contains(&id)),
        "route labels are templates, not raw paths with ids: {http:?}"
    );
    assert!(
        metric_sum(&after, "synckairos_websocket_messages_sent_total") >= 4.0,
        "messages sent are counted (at least the two greetings of two clients)"
    );
    // The remaining client reaches the latest state (a slow client may
    // skip intermediate versions, so wait for the last one, not a count).
    loop {
        let up = ws1.expect_type("STATE_UPDATE").await;
        if up["state"]["version"] == 5 {
            break;
        }
    }
}

/// Follows `$ref`s (local ones only) to the schema they name.
fn resolve<'a>(spec: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let path = r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        v = path.split('/').fold(spec, |node, key| &node[key]);
        assert!(!v.is_null(), "dangling $ref {r}");
    }
    panic!("$ref chain too long at {v}")
}

/// Property names of a schema, through `$ref` and `oneOf`/`anyOf`/`allOf`.
fn props(spec: &Value, schema: &Value) -> std::collections::BTreeSet<String> {
    let s = resolve(spec, schema);
    let mut out: std::collections::BTreeSet<String> = s["properties"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for k in ["oneOf", "anyOf", "allOf"] {
        for sub in s[k].as_array().into_iter().flatten() {
            out.extend(props(spec, sub));
        }
    }
    out
}

/// The property schema `name` of `schema` (through refs and combinators).
fn prop<'a>(spec: &'a Value, schema: &'a Value, name: &str) -> &'a Value {
    let s = resolve(spec, schema);
    if let Some(p) = s["properties"].get(name) {
        return p;
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        for sub in s[k].as_array().into_iter().flatten() {
            let p = prop(spec, sub, name);
            if !p.is_null() {
                return p;
            }
        }
    }
    &Value::Null
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                out.push(r);
            }
            o.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn keys(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn openapi_refs_resolve_and_schemas_match_real_responses(b: Backend) {
    let srv = TestServer::start(&b).await;
    let spec = srv.api().get("/openapi.json").await.body;
    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    assert!(!refs.is_empty(), "schemas are shared through components");
    for r in refs {
        resolve(&spec, &json!({ "$ref": r }));
    }
    let op = |path: &str, method: &str| {
        spec["paths"]
            .as_object()
            .and_then(|ps| ps.iter().find(|(k, _)| normalize(k) == path))
            .map(|(_, item)| item[method].clone())
            .unwrap_or(Value::Null)
    };
    // The documented status codes include the contract's.
    for (path, method, codes) in [
        (
            "/v1/sessions",
            "post",
            &["201", "400", "409", "413", "415"][..],
        ),
        ("/v1/sessions/{}", "get", &["200", "404"][..]),
        ("/v1/sessions/{}", "delete", &["204"][..]),
        (
            "/v1/sessions/{}/switch",
            "post",
            &["200", "400", "404", "409"][..],
        ),
        ("/v1/sessions/{}/start", "post", &["200", "400", "404"][..]),
        ("/ready", "get", &["200", "503"][..]),
    ] {
        let o = op(path, method);
        for c in codes {
            assert!(
                o["responses"][*c].is_object(),
                "{method} {path} documents {c}"
            );
        }
    }
    // The documented shapes are the real ones.
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let state = srv.api().state(&id).await;
    let get_schema =
        &op("/v1/sessions/{}", "get")["responses"]["200"]["content"]["application/json"]["schema"];
    let state_schema = prop(&spec, get_schema, "data");
    let documented = props(&spec, state_schema);
    let real = keys(&state);
    assert!(
        real.is_subset(&documented),
        "GET /v1/sessions/{{id}} data: real keys {real:?} all documented in {documented:?}"
    );
    let required: std::collections::BTreeSet<String> = resolve(&spec, state_schema)["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    // Every field a state always carries (nullable or not) is required, so
    // a client generated from the document does not see it as optional.
    assert_eq!(
        required, real,
        "GET /v1/sessions/{{id}} data: required properties vs the keys of a state without a cap"
    );
    assert!(
        required.is_subset(&real),
        "GET /v1/sessions/{{id}} data: required {required:?} all present in {real:?}"
    );
    // What the state may omit is exactly the optional, never-null fields
    // (API.md: `max_time_ms` is absent when unset): documented as optional
    // and without `null` in its type, so a generated client agrees.
    for k in documented.difference(&real) {
        assert!(!required.contains(k), "omitted `{k}` is not required");
        let ty = &resolve(&spec, prop(&spec, state_schema, k))["type"];
        assert!(
            ty.as_array().is_none_or(|t| !t.contains(&json!("null"))) && ty != "null",
            "omitted `{k}` is documented as non-nullable: {ty}"
        );
    }
    assert!(
        !required.contains("max_time_ms"),
        "max_time_ms is optional in the document"
    );
    let item = &resolve(&spec, prop(&spec, state_schema, "participants"))["items"];
    let documented = props(&spec, item);
    for p in state["participants"].as_array().into_iter().flatten() {
        assert!(
            keys(p).is_subset(&documented),
            "participant keys {:?} documented as {documented:?}",
            keys(p)
        );
    }
    let sw = srv.api().switch(&id, &json!({})).await;
    let sw_schema = &op("/v1/sessions/{}/switch", "post")["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let documented = props(&spec, prop(&spec, sw_schema, "data"));
    assert!(
        keys(&sw).is_subset(&documented),
        "SwitchResult keys {:?} documented as {documented:?}",
        keys(&sw)
    );
    let err_schema =
        &op("/v1/sessions/{}", "get")["responses"]["404"]["content"]["application/json"]["schema"];
    let documented = props(&spec, prop(&spec, err_schema, "error"));
    for k in ["code", "message", "details"] {
        assert!(
            documented.contains(k),
            "error.{k} documented: {documented:?}"
        );
    }
}

/// API.md: `max_time_ms` (and a participant's `group_id`, a switch's
/// `expired_participant_id`) are omitted when unset, never `null`: clients
/// of the TypeScript SyncKairos 2.0 validate them as optional, non-nullable
/// and reject every response that carries a `null` there. The nullable
/// fields, in turn, are always present. Pinned on every response that
/// carries a state: REST create, GET, each lifecycle verb, switch, and the
/// WebSocket's STATE_SYNC / STATE_UPDATE.
async fn unset_optional_fields_are_absent_never_null(b: Backend) {
    fn pin(what: &str, s: &Value) {
        check_state(s);
        assert!(
            s.get("max_time_ms").is_none(),
            "{what}: max_time_ms unset must be omitted, not null: {s}"
        );
        for p in s["participants"].as_array().into_iter().flatten() {
            assert!(p.get("group_id").is_none(), "{what}: group_id omitted: {p}");
        }
        for key in [
            "active_participant_id",
            "active_group_id",
            "time_per_cycle_ms",
            "cycle_started_at",
            "session_started_at",
            "session_completed_at",
            "deadline_ms",
        ] {
            assert!(
                s.get(key).is_some(),
                "{what}: nullable `{key}` present: {s}"
            );
        }
    }
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["alice", "bob"], 60_000);
    let id = id_of(&body);
    pin("create", &srv.api().create(&body).await);
    let (mut ws, synced) = srv.ws_synced(&id).await;
    pin("STATE_SYNC", &synced);
    pin("GET", &srv.api().state(&id).await);
    pin("start", &srv.api().act(&id, "start").await);
    let r = srv.api().switch(&id, &json!({})).await;
    check_switch_result(&r);
    assert!(
        r.get("expired_participant_id").is_none(),
        "switch without a timeout omits expired_participant_id: {r}"
    );
    for verb in ["pause", "resume", "complete"] {
        pin(verb, &srv.api().act(&id, verb).await);
    }
    let (update, _) = ws.wait_for_type("STATE_UPDATE", WS_WAIT).await;
    pin("STATE_UPDATE", &update["state"]);

    // Set, it is an integer.
    let mut capped = session_body("per_participant", &["c", "d"], 60_000);
    capped["max_time_ms"] = json!(90_000);
    let s = srv.api().create(&capped).await;
    assert_eq!(s.get("max_time_ms"), Some(&json!(90_000)), "{s}");
}
