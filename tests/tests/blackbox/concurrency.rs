//! Optimistic concurrency: many clients hitting the clock at once produce
//! exactly one switch when they carry a guard, and no lost update when they
//! do not.

use futures::future::join_all;
use serde_json::{Value, json};
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    concurrent_switches_with_same_expected_version_make_one_switch,
    concurrent_switches_with_same_current_participant_make_one_switch,
    concurrent_unguarded_switches_all_commit,
    concurrent_creates_make_one_session,
    mixed_concurrent_commands_commit_consistently,
    many_sessions_in_parallel_stay_isolated,
}

const N: usize = 20;

async fn switch_storm(api: &Api, id: &str, body: Value) -> Vec<Resp> {
    let path = format!("/v1/sessions/{id}/switch");
    join_all((0..N).map(|_| api.post(&path, &body))).await
}

fn tally(rs: &[Resp]) -> (Vec<&Resp>, Vec<&Resp>) {
    for r in rs {
        assert!(
            r.status == 200 || r.status == 409,
            "only 200 or 409 expected: {r}"
        );
    }
    rs.iter().partition(|r| r.status == 200)
}

async fn concurrent_switches_with_same_expected_version_make_one_switch(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let rs = switch_storm(api, &id, json!({"expected_version": 2})).await;
    let (ok, conflict) = tally(&rs);
    assert_eq!(ok.len(), 1, "exactly one switch wins");
    for r in &conflict {
        r.error(409, "CONFLICT");
    }
    assert_eq!(ok[0].data(200)["version"], 3);
    let s = api.state(&id).await;
    assert_eq!(s["version"], 3);
    assert_eq!(s["active_participant_id"], "b");
    assert_eq!(participant(&s, "a")["cycle_count"], 1);
    let up = ws.expect_type("STATE_UPDATE").await;
    assert_eq!(up["state"]["version"], 3);
}

async fn concurrent_switches_with_same_current_participant_make_one_switch(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b", "c"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let rs = switch_storm(api, &id, json!({"current_participant_id": "a"})).await;
    let (ok, conflict) = tally(&rs);
    assert_eq!(ok.len(), 1, "exactly one switch wins");
    for r in &conflict {
        r.error(409, "CONFLICT");
    }
    let s = api.state(&id).await;
    assert_eq!(
        (s["version"].clone(), s["active_participant_id"].clone()),
        (json!(3), json!("b"))
    );
}

async fn concurrent_unguarded_switches_all_commit(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let rs = switch_storm(api, &id, json!({})).await;
    let mut versions: Vec<i64> = rs.iter().map(|r| int(r.data(200), "version")).collect();
    versions.sort_unstable();
    let expected: Vec<i64> = (3..3 + N as i64).collect();
    assert_eq!(
        versions, expected,
        "every switch commits once, none is lost"
    );
    let s = api.state(&id).await;
    assert_eq!(int(&s, "version"), 2 + N as i64);
    let turns = int(participant(&s, "a"), "cycle_count") + int(participant(&s, "b"), "cycle_count");
    assert_eq!(turns, N as i64);
}

async fn concurrent_creates_make_one_session(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let rs = join_all((0..N).map(|_| api.post("/v1/sessions", &body))).await;
    let created = rs.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "exactly one create wins");
    for r in rs.iter().filter(|r| r.status != 201) {
        r.error(409, "SESSION_EXISTS");
    }
    assert_eq!(api.state(&id_of(&body)).await["version"], 1);
}

async fn mixed_concurrent_commands_commit_consistently(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b", "c"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let verbs = [
        "switch", "pause", "resume", "switch", "switch", "pause", "resume", "complete",
    ];
    let paths: Vec<String> = (0..24)
        .map(|i| format!("/v1/sessions/{id}/{}", verbs[i % verbs.len()]))
        .collect();
    let rs = join_all(paths.iter().map(|p| api.post_empty(p))).await;
    let mut ok = 0;
    for r in &rs {
        match r.status {
            200 => ok += 1,
            400 => {
                r.error(400, "INVALID_STATE_TRANSITION");
            }
            _ => panic!("a racing command gets 200 or 400: {r}"),
        }
    }
    let s = api.state(&id).await;
    assert_eq!(
        int(&s, "version"),
        2 + ok,
        "every 200 is one commit, every 400 none"
    );
    let versions: std::collections::BTreeSet<i64> = rs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| int(&r.body["data"], "version"))
        .collect();
    assert_eq!(
        versions.len() as i64,
        ok,
        "no two successes share a version"
    );
    // Time is conserved: what was charged never exceeds the time that passed.
    let started = iso_ms(&s["session_started_at"]);
    let used: i64 = s["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| int(p, "time_used_ms"))
        .sum();
    assert!(
        used <= int(&s, "server_time_ms") - started,
        "charged {used} ms: {s}"
    );
    // The watcher ends on the final version, in order.
    let mut seen = 2;
    while seen < int(&s, "version") {
        let up = ws.expect_type("STATE_UPDATE").await;
        let v = int(&up["state"], "version");
        assert!(v > seen);
        seen = v;
    }
}

async fn many_sessions_in_parallel_stay_isolated(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let bodies: Vec<Value> = (0..30)
        .map(|_| session_body("per_participant", &["a", "b"], 60_000))
        .collect();
    join_all(bodies.iter().map(|b| api.create_started(b))).await;
    let mut watchers = Vec::new();
    for b in &bodies {
        watchers.push(srv.ws_synced(&id_of(b)).await.0);
    }
    // 30 sessions x 5 switches, all at once.
    join_all(bodies.iter().map(|b| async move {
        let id = id_of(b);
        for _ in 0..5 {
            api.switch(&id, &json!({})).await;
        }
    }))
    .await;
    for (b, ws) in bodies.iter().zip(watchers.iter_mut()) {
        let id = id_of(b);
        let s = api.state(&id).await;
        assert_eq!(s["version"], 7, "{id}: start + 5 switches");
        assert_eq!(s["active_participant_id"], "b");
        let mut seen = 2;
        while seen < 7 {
            let up = ws.expect_type("STATE_UPDATE").await;
            assert_eq!(
                up["sessionId"],
                id.as_str(),
                "only its own session's updates"
            );
            seen = int(&up["state"], "version");
        }
    }
}
