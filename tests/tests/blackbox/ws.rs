//! Every WebSocket message type: greeting, updates from REST changes,
//! RECONNECT, PING/PONG, ERROR with the connection kept open, deletion, and
//! the 1008 close for a missing or malformed `sessionId`.

use serde_json::json;
use std::time::Duration;
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    connected_then_state_sync,
    unknown_session_gets_session_not_found_and_close_1008,
    state_update_on_every_rest_change,
    every_client_of_a_session_gets_updates,
    reconnect_gets_state_sync,
    ping_pong_echoes_client_time,
    bad_client_messages_get_error_and_connection_stays_open,
    huge_text_frame_is_refused_and_server_keeps_serving,
    session_deleted_then_close_1000,
    missing_or_malformed_session_id_closes_1008,
    versions_arrive_in_order,
    server_pings_and_drops_unresponsive_clients,
    fuzzed_client_messages_never_break_the_connection,
    a_stalled_client_neither_blocks_others_nor_sees_versions_out_of_order,
}

async fn connected_then_state_sync(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    let created = srv.api().create(&body).await;
    let mut ws = srv.ws(&id).await;
    let hello = ws.expect_type("CONNECTED").await;
    assert_eq!(hello["sessionId"], id.as_str());
    let sync = ws.expect_type("STATE_SYNC").await;
    assert_eq!(sync["sessionId"], id.as_str());
    check_state(&sync["state"]);
    assert_eq!(sync["state"]["version"], 1);
    assert_eq!(sync["state"]["participants"], created["participants"]);
}

/// API.md "Limits": subscribing to a session that does not exist gets
/// ERROR `SESSION_NOT_FOUND` and close 1008 (it used to stay open, so
/// thousands of sockets to random ids were all accepted).
async fn unknown_session_gets_session_not_found_and_close_1008(b: Backend) {
    let srv = TestServer::start(&b).await;
    srv.ws(&new_id()).await.expect_session_not_found().await;
}

async fn state_update_on_every_rest_change(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    api.create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;

    let started = api.act(&id, "start").await;
    let up = ws.expect_type("STATE_UPDATE").await;
    assert_eq!(up["sessionId"], id.as_str());
    check_state(&up["state"]);
    assert_eq!(up["state"]["version"], 2);
    assert_eq!(up["state"]["status"], "running");
    assert_eq!(up["state"]["cycle_started_at"], started["cycle_started_at"]);
    assert_eq!(up["state"]["deadline_ms"], started["deadline_ms"]);

    let sw = api.switch(&id, &json!({})).await;
    let up = ws.expect_type("STATE_UPDATE").await;
    check_state(&up["state"]);
    assert_eq!(up["state"]["version"], 3);
    assert_eq!(up["state"]["active_participant_id"], "b");
    assert_eq!(up["state"]["deadline_ms"], sw["deadline_ms"]);

    for (verb, status, version) in [
        ("pause", "paused", 4),
        ("resume", "running", 5),
        ("complete", "completed", 6),
    ] {
        api.act(&id, verb).await;
        let up = ws.expect_type("STATE_UPDATE").await;
        check_state(&up["state"]);
        assert_eq!(up["state"]["status"], status, "after {verb}");
        assert_eq!(up["state"]["version"], version, "after {verb}");
    }
}

async fn every_client_of_a_session_gets_updates(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    let other = session_body("per_participant", &["a", "b"], 60_000);
    let other_id = id_of(&other);
    srv.api().create(&body).await;
    srv.api().create(&other).await;
    let mut clients = Vec::new();
    for _ in 0..25 {
        clients.push(srv.ws_synced(&id).await.0);
    }
    let (mut bystander, _) = srv.ws_synced(&other_id).await;
    srv.api().act(&id, "start").await;
    for ws in clients.iter_mut() {
        let up = ws.expect_type("STATE_UPDATE").await;
        assert_eq!(up["state"]["version"], 2);
    }
    // A client of another session sees nothing of it: its next message is
    // the reply to its own PING.
    bystander.ping(1).await;
}

async fn reconnect_gets_state_sync(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    srv.api().act(&id, "start").await;
    ws.expect_type("STATE_UPDATE").await;
    ws.send_json(&json!({"type": "RECONNECT", "last_known_version": 1}))
        .await;
    let sync = ws.expect_type("STATE_SYNC").await;
    assert_eq!(sync["sessionId"], id.as_str());
    check_state(&sync["state"]);
    assert_eq!(sync["state"]["version"], 2);
    assert_eq!(sync["state"]["status"], "running");
    ws.send_json(&json!({"type": "RECONNECT"})).await;
    let sync = ws.expect_type("STATE_SYNC").await;
    assert_eq!(sync["state"]["version"], 2);
}

async fn ping_pong_echoes_client_time(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let pong = ws.ping(1_700_000_000_123).await;
    let server_now = int(&srv.api().get("/v1/time").await.body, "timestamp_ms");
    let ts = int(&pong, "timestamp");
    assert!(
        ts <= server_now && ts > server_now - 10_000,
        "PONG timestamp {ts} is server time (now {server_now})"
    );
    ws.send_json(&json!({"type": "PING"})).await;
    let pong = ws.expect_type("PONG").await;
    assert!(
        pong.get("client_time").is_none_or(|v| v.is_null()),
        "no client_time to echo: {pong}"
    );
}

async fn expect_error_frame(ws: &mut WsClient, sent: &str) {
    let e = ws.next_json(WS_WAIT).await;
    assert_eq!(e["type"], "ERROR", "reply to {sent}: {e}");
    assert!(
        e["code"].as_str().is_some_and(|c| !c.is_empty()),
        "ERROR code: {e}"
    );
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "ERROR message: {e}"
    );
}

async fn bad_client_messages_get_error_and_connection_stays_open(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let texts = [
        "not json at all",
        "{\"type\":",
        "{\"type\":\"BOGUS\"}",
        "{\"no_type\":1}",
        "[1,2,3]",
        "42",
        "{\"type\":7}",
    ];
    for t in texts {
        ws.send_text(t).await;
        expect_error_frame(&mut ws, t).await;
    }
    // Known types with an ill-typed optional field: refusing them (ERROR) or
    // ignoring the field (the normal reply) are both careful readings.
    for (t, reply) in [
        ("{\"type\":\"PING\",\"client_time\":\"yesterday\"}", "PONG"),
        (
            "{\"type\":\"RECONNECT\",\"last_known_version\":\"x\"}",
            "STATE_SYNC",
        ),
    ] {
        ws.send_text(t).await;
        let m = ws.next_json(WS_WAIT).await;
        assert!(
            m["type"] == "ERROR" || m["type"] == reply,
            "reply to {t}: {m}"
        );
        if m["type"] == reply && reply == "PONG" {
            assert!(
                m.get("client_time").is_none_or(|v| !v.is_string()),
                "no garbage echoed: {m}"
            );
        }
    }
    ws.send_binary(vec![0, 159, 146, 150, 255]).await;
    expect_error_frame(&mut ws, "a binary frame").await;
    // Still open and still subscribed.
    ws.ping(5).await;
    srv.api().act(&id, "start").await;
    let up = ws.expect_type("STATE_UPDATE").await;
    assert_eq!(up["state"]["version"], 2);
}

async fn huge_text_frame_is_refused_and_server_keeps_serving(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let huge = format!("{{\"type\":\"PING\",\"pad\":\"{}\"}}", "x".repeat(4 << 20));
    let sent = ws.try_send_text(huge).await;
    // Within the contract: an ERROR with the connection kept open, or the
    // WebSocket protocol's "message too big" close (1009). A server that
    // closes while we are still writing resets the socket, and then the
    // close frame cannot reach us: only then is a bare drop acceptable.
    match ws.next_event(WS_WAIT).await {
        WsEvent::Json(v) if v["type"] == "ERROR" => {
            ws.ping(9).await;
        }
        WsEvent::Closed(Some((1009, _))) => {}
        WsEvent::Closed(None) | WsEvent::Broken(_) if !sent => {}
        other => panic!(
            "a 4 MiB text frame should get ERROR or close 1009, got {other:?} (send ok: {sent})"
        ),
    }
    let (mut again, _) = srv.ws_synced(&id).await;
    again.ping(10).await;
    srv.api().get("/health").await.expect_status(200);
}

async fn session_deleted_then_close_1000(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let (mut ws1, _) = srv.ws_synced(&id).await;
    let (mut ws2, _) = srv.ws_synced(&id).await;
    srv.api()
        .delete(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(204);
    for ws in [&mut ws1, &mut ws2] {
        let d = ws.expect_type("SESSION_DELETED").await;
        assert_eq!(d["sessionId"], id.as_str());
        let (code, _) = ws.expect_close(WS_WAIT).await;
        assert_eq!(code, 1000, "normal close after SESSION_DELETED");
    }
}

async fn missing_or_malformed_session_id_closes_1008(b: Backend) {
    let srv = TestServer::start(&b).await;
    for query in [
        "",
        "?sessionId=",
        "?sessionId=not-a-uuid",
        "?sessionid=0",
        "?other=1",
    ] {
        let mut ws = WsClient::connect(&srv.ws_url(query)).await;
        let (code, reason) = ws.expect_close(WS_WAIT).await;
        assert_eq!(code, 1008, "policy-violation close for /ws{query}");
        assert!(
            !reason.is_empty(),
            "close 1008 carries a reason for /ws{query}"
        );
    }
    srv.api().get("/health").await.expect_status(200);
}

async fn versions_arrive_in_order(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b", "c"], 60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let (mut ws, synced) = srv.ws_synced(&id).await;
    let mut last = int(&synced, "version");
    let mut final_version = last;
    // 200 quick switches while the client reads nothing (a slow client).
    for _ in 0..200 {
        final_version = int(&srv.api().switch(&id, &json!({})).await, "version");
    }
    assert_eq!(final_version, last + 200);
    // A slow client may skip versions, never see them out of order.
    while last < final_version {
        let up = ws.next_json(Duration::from_secs(5)).await;
        assert_eq!(up["type"], "STATE_UPDATE", "{up}");
        let v = int(&up["state"], "version");
        assert!(v > last, "version {v} after {last}");
        last = v;
    }
}

async fn server_pings_and_drops_unresponsive_clients(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::builder(&b)
        .env("WS_PING_INTERVAL_SECONDS", "1")
        .start()
        .await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;

    // A client that never answers: a raw socket that completes the upgrade
    // and then only reads (so it never sends a pong).
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let req = format!(
        "GET /ws?sessionId={id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        srv.port
    );
    raw.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    let started = std::time::Instant::now();
    let (mut responsive, _) = srv.ws_synced(&id).await;

    // The answering client sees ping frames at the configured interval.
    for _ in 0..3 {
        responsive.expect_ping_frame(Duration::from_secs(3)).await;
    }
    // The silent one is dropped: its socket reaches EOF / reset.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let dropped = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        dropped.is_ok(),
        "a client that never answers pings is still connected after {:?}",
        started.elapsed()
    );
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "the raw client was upgraded first: {:?}",
        String::from_utf8_lossy(&got[..got.len().min(200)])
    );
    // The answering client is still there.
    responsive.ping(11).await;
}

async fn fuzzed_client_messages_never_break_the_connection(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    let id = id_of(&body);
    srv.api().create(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 | 1)
        .unwrap_or(3);
    eprintln!("fuzzed_client_messages: seed {seed}");
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let types = [
        "PING",
        "RECONNECT",
        "PONG",
        "ping",
        "",
        "STATE_UPDATE",
        "SUBSCRIBE",
    ];
    let values = [
        json!(null),
        json!(1),
        json!(-1),
        json!(1.5),
        json!("x"),
        json!([]),
        json!({}),
        json!(u64::MAX),
        json!(i64::MIN),
    ];
    for i in 0..120 {
        let msg = match next(4) {
            0 => {
                let len = next(64) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
                ws.send_binary(bytes).await;
                "binary".to_string()
            }
            1 => {
                let text: String = (0..next(40))
                    .map(|_| char::from(32 + next(95) as u8))
                    .collect();
                ws.send_text(text.clone()).await;
                text
            }
            _ => {
                let mut m = json!({"type": types[next(types.len() as u64) as usize]});
                if next(2) == 0 {
                    m["client_time"] = values[next(values.len() as u64) as usize].clone();
                }
                if next(2) == 0 {
                    m["last_known_version"] = values[next(values.len() as u64) as usize].clone();
                }
                ws.send_json(&m).await;
                m.to_string()
            }
        };
        // Every client message gets exactly one answer, and none closes the
        // connection: ERROR, or the normal reply to a valid PING/RECONNECT.
        let reply = ws.next_json(WS_WAIT).await;
        let ty = reply["type"].as_str().unwrap_or_default();
        assert!(
            ["ERROR", "PONG", "STATE_SYNC"].contains(&ty),
            "message {i} {msg:?} got {reply}"
        );
    }
    ws.ping(42).await;
    srv.api().act(&id, "start").await;
    assert_eq!(ws.expect_type("STATE_UPDATE").await["state"]["version"], 2);
}

async fn a_stalled_client_neither_blocks_others_nor_sees_versions_out_of_order(b: Backend) {
    let srv = TestServer::start(&b).await;
    // Big states (300 participants, ~50 KiB per update) fill socket buffers fast.
    let ids: Vec<String> = (0..300).map(|i| format!("player-{i:03}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = session_body("per_participant", &refs, 3_600_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let (mut stalled, synced) = srv.ws_synced(&id).await;
    let (mut live, _) = srv.ws_synced(&id).await;
    let first = int(&synced, "version");
    let rounds = 400;
    let mut last = first;
    for _ in 0..rounds {
        last = int(&srv.api().switch(&id, &json!({})).await, "version");
        // The live client keeps up while the stalled one reads nothing.
        let v = live.expect_type("STATE_UPDATE").await;
        assert_eq!(
            int(&v["state"], "version"),
            last,
            "the live client is not held back"
        );
    }
    assert_eq!(last, first + rounds);
    // The stalled client, read at last: strictly increasing, ends at the latest.
    let mut seen = first;
    let mut received = 0;
    while seen < last {
        let up = stalled.next_json(Duration::from_secs(10)).await;
        assert_eq!(up["type"], "STATE_UPDATE", "{}", up["type"]);
        let v = int(&up["state"], "version");
        assert!(v > seen, "version {v} after {seen}");
        seen = v;
        received += 1;
    }
    let metrics = srv.api().get("/metrics").await.text;
    let dropped = metric_sum(&metrics, "synckairos_websocket_messages_dropped_total");
    eprintln!("stalled client: {received} of {rounds} updates delivered, {dropped} dropped");
    assert!(
        received < rounds as usize && dropped > 0.0,
        "a stalled client's queue is bounded: it skipped versions ({received} of {rounds} delivered)"
    );
}
