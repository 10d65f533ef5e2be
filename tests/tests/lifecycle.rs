//! Process-level behaviour: graceful shutdown on SIGTERM and idle-session
//! expiry.

use std::time::Duration;
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    sigterm_closes_websockets_with_1001_and_exits_cleanly,
    idle_sessions_expire_but_running_clocks_do_not,
    server_keeps_serving_after_a_burst_of_bad_requests,
}

async fn sigterm_closes_websockets_with_1001_and_exits_cleanly(b: Backend) {
    let mut srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let (mut ws1, _) = srv.ws_synced(&id).await;
    let (mut ws2, _) = srv.ws_synced(&id).await;
    srv.sigterm();
    for ws in [&mut ws1, &mut ws2] {
        let (code, _) = ws.expect_close(Duration::from_secs(10)).await;
        assert_eq!(code, 1001, "going-away close on shutdown");
    }
    let status = srv
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("server still running 15 s after SIGTERM"));
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

async fn idle_sessions_expire_but_running_clocks_do_not(b: Backend) {
    let srv = TestServer::builder(&b)
        .env("SESSION_TTL_SECONDS", "1")
        .start()
        .await;
    let api = srv.api();
    let idle = session_body("per_participant", &["a", "b"], 60_000);
    let running = session_body("per_participant", &["a", "b"], 60_000);
    api.create(&idle).await;
    api.create_started(&running).await;
    let idle_path = format!("/v1/sessions/{}", id_of(&idle));
    wait_until(
        Duration::from_secs(15),
        "an idle session disappears after its TTL",
        || async { api.get(&idle_path).await.status == 404 },
    )
    .await;
    api.get(&idle_path).await.error(404, "SESSION_NOT_FOUND");
    // The running session's last change is as old, but its clock has a
    // minute left: it must still be there.
    let s = api.state(&id_of(&running)).await;
    assert_eq!(s["status"], "running");
}

async fn server_keeps_serving_after_a_burst_of_bad_requests(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let garbage: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        vec![0u8; 1024],
        b"{\"participants\": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}".to_vec(),
        "[".repeat(100_000).into_bytes(),
        serde_json::json!({"total_time_ms": -1e308})
            .to_string()
            .into_bytes(),
    ];
    for _ in 0..5 {
        for g in &garbage {
            let r = api
                .post_raw("/v1/sessions", Some("application/json"), g.clone())
                .await;
            assert!(
                (400..500).contains(&r.status),
                "garbage must get a 4xx: {r}"
            );
        }
    }
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    ws.ping(3).await;
    api.get("/health").await.expect_status(200);
}
