//! The audit trail through the front door: the real `synckairos serve` with
//! `DATABASE_URL` (memory engine and Redis engine), an ephemeral PostgreSQL,
//! HTTP only. `GET /v1/sessions/{id}/events` pages the history, which
//! outlives the session; `/ready` reports audit progress and stays ready
//! while PostgreSQL is down.

use serde_json::{Value, json};
use std::time::Duration;
use synckairos::audit;
use synckairos_tests::host::free_port;
use synckairos_tests::postgres::Postgres;
use synckairos_tests::redis::RedisServer;
use synckairos_tests::{Api, Backend, Provisioned, TestServer, id_of, session_body, wait_until};

async fn start_pg() -> Postgres {
    let pg = Postgres::start_async().await.expect("ephemeral postgres");
    audit::migrate(&pg.url()).await.expect("migrate");
    pg
}

/// A server on `backend` with the audit trail in `pg`. A Redis backend gets
/// its own redis-server: every consumer on one Redis joins the same group,
/// so a server sharing Redis with another test could write that test's
/// events into its own PostgreSQL.
async fn server(backend: Backend, pg: &Postgres) -> TestServer {
    let mut b = TestServer::builder(&backend).env("DATABASE_URL", pg.url());
    if matches!(backend, Backend::Redis) {
        let redis = RedisServer::start().await.expect("redis-server");
        b = b.provisioned(Provisioned {
            env: redis.env(),
            guard: Some(redis),
        });
    }
    b.start().await
}

/// Every page of a session's history, following `next_cursor`.
async fn history(api: &Api, id: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/v1/sessions/{id}/events?limit={limit}");
    loop {
        let r = api.get(&path).await;
        let page = r.data(200).as_array().expect("data is an array").clone();
        assert!(page.len() <= limit as usize, "{r}");
        out.extend(page);
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/sessions/{id}/events?limit={limit}&cursor={c}"),
            None => return out,
        }
    }
}

async fn events_serve_the_history(backend: Backend) {
    let pg = start_pg().await;
    let srv = server(backend, &pg).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    api.switch(&id, &json!({})).await;
    api.switch(&id, &json!({})).await;
    api.act(&id, "pause").await;
    api.delete(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(204);
    api.get(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(404);

    wait_until(
        Duration::from_secs(20),
        "6 events in the history",
        || async {
            let r = api.get(&format!("/v1/sessions/{id}/events")).await;
            r.status == 200 && r.body["data"].as_array().map(Vec::len) == Some(6)
        },
    )
    .await;
    let all = history(api, &id, 100).await;
    let got: Vec<(u64, &str)> = all
        .iter()
        .map(|e| {
            (
                e["version"].as_u64().unwrap_or(99),
                e["event_type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "session_created"),
            (2, "session_started"),
            (3, "cycle_switched"),
            (4, "cycle_switched"),
            (5, "session_paused"),
            (0, "session_deleted"),
        ]
    );
    assert_eq!(all[2]["participant_id"], json!("a"));
    assert_eq!(all[3]["participant_id"], json!("b"));
    assert_eq!(all[4]["state"]["status"], json!("paused"));
    assert_eq!(
        history(api, &id, 2).await,
        all,
        "pages of 2 give the same rows"
    );

    api.get(&format!("/v1/sessions/{id}/events?cursor=not-a-cursor"))
        .await
        .validation("cursor");
    let ready = api.get("/ready").await;
    ready.expect_status(200);
    assert_eq!(ready.body["audit"]["backlog"], json!(0), "{ready}");
    assert_eq!(ready.body["audit"]["database_ok"], json!(true), "{ready}");
    let metrics = api.get("/metrics").await.text;
    assert!(
        metrics.contains("synckairos_audit_rows_written_total 6"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_engine_events_serve_the_history() {
    events_serve_the_history(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_engine_events_serve_the_history() {
    events_serve_the_history(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_an_audit_store_are_503() {
    let srv = TestServer::start(&Backend::Memory).await;
    let r = srv
        .api()
        .get(&format!("/v1/sessions/{}/events", uuid::Uuid::new_v4()))
        .await;
    r.error(503, "AUDIT_UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_keeps_the_service_ready_and_loses_nothing() {
    let pg = start_pg().await;
    let srv = server(Backend::Redis, &pg).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;

    tokio::task::block_in_place(|| pg.stop()).expect("stop postgres");
    for _ in 0..10 {
        api.switch(&id, &json!({})).await;
    }
    api.get("/ready").await.expect_status(200);
    api.get(&format!("/v1/sessions/{id}/events"))
        .await
        .error(503, "AUDIT_UNAVAILABLE");
    wait_until(
        Duration::from_secs(10),
        "/ready shows the backlog",
        || async {
            let r = api.get("/ready").await;
            r.status == 200 && r.body["audit"]["backlog"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;

    tokio::task::block_in_place(|| pg.start_again()).expect("restart postgres");
    wait_until(
        Duration::from_secs(30),
        "all 12 events after restart",
        || async {
            let r = api.get(&format!("/v1/sessions/{id}/events")).await;
            r.status == 200 && r.body["data"].as_array().map(Vec::len) == Some(12)
        },
    )
    .await;
    let versions: Vec<u64> = history(api, &id, 100)
        .await
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    assert_eq!(versions, (1..=12).collect::<Vec<u64>>());
}

/// An instance killed (SIGKILL) with audit entries pending: another
/// instance's consumer claims them once they have been idle for the claim
/// time (60 s by default), and writes each once. Takes about a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_killed_instance_are_claimed_by_another() {
    let pg = start_pg().await;
    let redis = RedisServer::start().await.expect("redis-server");
    let shared = Provisioned {
        env: redis.env(),
        guard: Some(redis),
    };
    // Instance A's PostgreSQL does not exist: its consumer takes entries,
    // fails to write them, and keeps them pending under its name.
    let dead = free_port().expect("free port");
    let a = TestServer::builder(&Backend::Redis)
        .provisioned(shared.clone())
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{dead}/postgres"),
        )
        .start()
        .await;
    // Long clocks: nothing may expire while the entries wait to be claimed.
    let body = session_body("per_participant", &["a", "b"], 3_600_000);
    let id = id_of(&body);
    a.api().create_started(&body).await;
    for _ in 0..5 {
        a.api().switch(&id, &json!({})).await;
    }
    wait_until(
        Duration::from_secs(20),
        "A holds entries it cannot write",
        || async {
            let r = a.api().get("/ready").await;
            r.body["audit"]["database_ok"] == json!(false)
        },
    )
    .await;
    let pid = a.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    let started = std::time::Instant::now();
    let b = TestServer::builder(&Backend::Redis)
        .provisioned(shared.clone())
        .env("DATABASE_URL", pg.url())
        .start()
        .await;
    wait_until(Duration::from_secs(150), "B wrote A's 7 events", || async {
        let r = b.api().get(&format!("/v1/sessions/{id}/events")).await;
        r.status == 200 && r.body["data"].as_array().map(Vec::len) == Some(7)
    })
    .await;
    let versions: Vec<u64> = history(b.api(), &id, 100)
        .await
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    assert_eq!(versions, (1..=7).collect::<Vec<u64>>());
    let metrics = b.api().get("/metrics").await.text;
    assert!(
        metrics.contains("synckairos_audit_claimed_total 7"),
        "{metrics}"
    );
    println!(
        "claimed from the killed instance and written {:.1}s after B started",
        started.elapsed().as_secs_f64()
    );
    drop(a);
}

/// What the audit trail cannot store is refused at the door (400 naming the
/// member), so no accepted session can poison its events: a NUL in a
/// string or key of `metadata` or `action_on_timeout`, and nesting past the
/// documented 32 levels (127 levels used to pass and be dropped later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstorable_client_json_is_a_400_naming_the_field() {
    let srv = TestServer::builder(&Backend::Memory).start().await;
    let api = srv.api();
    let nested = |levels: usize| (1..levels).fold(json!(1), |v, _| json!([v]));
    let with = |k: &str, v: Value| {
        let mut b = session_body("per_participant", &["a", "b"], 60_000);
        b[k] = v;
        b
    };
    let cases = [
        (
            with("metadata", json!({"note": "x\u{0}y"})),
            "metadata.note",
        ),
        (
            with("metadata", json!({"a": [1, {"b\u{0}": 2}]})),
            "metadata.a[1]",
        ),
        (with("metadata", json!({"deep": nested(32)})), "metadata"),
        (with("metadata", json!({"deep": nested(126)})), "metadata"),
        (
            with(
                "action_on_timeout",
                json!({"type": "end_session", "msg": "\u{0}"}),
            ),
            "action_on_timeout.msg",
        ),
        (
            with(
                "action_on_timeout",
                json!({"type": "end_session", "x": nested(40)}),
            ),
            "action_on_timeout.x",
        ),
    ];
    for (body, field) in &cases {
        api.post("/v1/sessions", body).await.validation(field);
    }
    // The limit itself is accepted: metadata 32 levels deep counts the object.
    let ok = with("metadata", json!({"deep": nested(31)}));
    api.post("/v1/sessions", &ok).await.expect_status(201);
}
