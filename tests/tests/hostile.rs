//! The hostile-client suite (issue 13, API.md "Limits"): each test attacks
//! a real server (memory engine, loopback) the way one machine took an
//! instance down before, and asserts three things:
//!
//! 1. the documented answer (429, 503, 400 naming the field, a close code,
//!    a closed connection) — never a hang;
//! 2. a polite client beside the attack is still served: its `/health` and
//!    a switch are answered within a stated bound;
//! 3. the server's RSS grows by less than a stated figure.
//!
//! Every loop is bounded in count and time. Timing bounds are generous
//! (debug build, 2 shared cores): they separate "answered" from "stuck",
//! they do not measure speed (`make bench` does).

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use synckairos_tests::hostile::{
    Polite, assert_rss_growth, closed_within, raw, rss_kib, status_line, write_quietly,
};
use synckairos_tests::redis::RedisServer;
use synckairos_tests::*;
use tokio::io::AsyncWriteExt;

/// How long a polite client may wait beside an attack.
const POLITE_BOUND: Duration = Duration::from_secs(10);
/// Most RSS growth any attack here may cause.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// A server started with `flags`, a polite client on it, and its RSS
/// before the attack.
async fn under_attack(flags: &[&str]) -> (TestServer, Polite, u64) {
    let srv = flags
        .iter()
        .fold(TestServer::builder(&Backend::Memory), |b, f| b.arg(*f))
        .start()
        .await;
    let polite = Polite::new(&srv).await;
    let rss = rss_kib(srv.pid());
    (srv, polite, rss)
}

async fn metrics_text(srv: &TestServer) -> String {
    srv.api().get("/metrics").await.expect_status(200);
    srv.api().get("/metrics").await.text
}

fn gauge(text: &str, name: &str) -> f64 {
    metric_sum(text, name)
}

#[tokio::test]
async fn junk_methods_do_not_grow_metrics() {
    let srv = TestServer::start(&Backend::Memory).await;
    let polite = Polite::new(&srv).await;
    // One junk request first, so the `other` series exists in both readings.
    let client = reqwest::Client::new();
    let junk = |i: usize| {
        let name = format!("JUNK{i:04}{}", "X".repeat(1000));
        reqwest::Method::from_bytes(name.as_bytes()).expect("a valid token")
    };
    let first = client
        .request(junk(0), format!("{}/v1/time", srv.base))
        .send()
        .await
        .expect("junk method answered");
    assert_eq!(first.status(), 405, "a junk method on a known route");
    let before = metrics_text(&srv).await;
    let rss = rss_kib(srv.pid());
    for i in 1..1000 {
        let path = if i % 2 == 0 { "/v1/time" } else { "/nope" };
        let resp = client
            .request(junk(i), format!("{}{path}", srv.base))
            .send()
            .await
            .expect("junk method answered");
        assert!(
            matches!(resp.status().as_u16(), 404 | 405),
            "{path}: {}",
            resp.status()
        );
    }
    let after = metrics_text(&srv).await;
    assert!(
        after.contains("method=\"other\""),
        "junk methods are counted as `other`"
    );
    assert!(!after.contains("JUNK"), "no junk method became a label");
    // The unmatched route's `other` series may appear now (a few KB of
    // histogram lines), never one per method (1,000 × 1 KB).
    assert!(
        after.len() < before.len() + 8 * 1024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "1,000 junk methods");
}

#[tokio::test]
async fn slowloris_headers_are_cut_off() {
    let (srv, polite, rss) = under_attack(&["--http-header-timeout-seconds", "2"]).await;
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut c = raw(&srv).await;
        assert!(write_quietly(&mut c, b"GET /health HTTP/1.1\r\nHost: x\r\n").await);
        conns.push(c);
    }
    let started = Instant::now();
    // One header byte every 500 ms per connection, as a slowloris does, for
    // at most 10 s, until the server has closed every one of them.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut open = 0;
        for c in &mut conns {
            if write_quietly(c, b"X").await {
                open += 1;
            }
        }
        polite.served(POLITE_BOUND).await;
        if open == 0 {
            break;
        }
    }
    for c in &mut conns {
        assert!(
            closed_within(c, Duration::from_secs(5)).await,
            "a slowloris connection is still open after {:?}",
            started.elapsed()
        );
    }
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "100 slowloris connections");
}

#[tokio::test]
async fn slowloris_bodies_miss_the_deadline_with_503() {
    let (srv, polite, rss) = under_attack(&["--http-request-timeout-ms", "1000"]).await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut c = raw(&srv).await;
        let head = "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
        assert!(write_quietly(&mut c, head.as_bytes()).await);
        conns.push(c);
    }
    // A byte every 200 ms: the body would take 200 s.
    let started = Instant::now();
    let mut answered = Vec::new();
    for c in conns {
        let (mut rd, mut wr) = c.into_split();
        let line = tokio::select! {
            line = status_line(&mut rd, Duration::from_secs(10)) => line,
            _ = async {
                for _ in 0..50 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = wr.write_all(b" ").await;
                }
            } => None,
        };
        answered.push(line);
    }
    for line in &answered {
        let line = line.as_deref().unwrap_or("no answer");
        assert!(
            line.starts_with("HTTP/1.1 503"),
            "a slow body gets 503 at its deadline, got {line:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered within the deadline"
    );
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "slow bodies");
}

#[tokio::test]
async fn connection_cap_survives_an_fd_exhaustion_attempt() {
    let (srv, polite, rss) = under_attack(&[
        "--max-connections",
        "100",
        "--http-header-timeout-seconds",
        "2",
    ])
    .await;
    // Three times the cap of idle connections.
    let mut conns = Vec::new();
    for _ in 0..300 {
        match tokio::net::TcpStream::connect(("127.0.0.1", srv.port)).await {
            Ok(c) => conns.push(c),
            Err(e) => panic!("the listener stopped accepting: {e}"),
        }
    }
    // Past the cap, connections are closed at once.
    let mut closed = 0;
    for c in conns.iter_mut().skip(150) {
        if closed_within(c, Duration::from_millis(500)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 100,
        "connections past the cap are closed on accept ({closed} of 150)"
    );
    // The ones inside the cap time out (header timeout): then a polite
    // client is served again.
    let took = polite.served(POLITE_BOUND).await;
    println!("polite client served {took:?} into an fd-exhaustion attempt");
    for c in conns.iter_mut().take(100) {
        assert!(closed_within(c, Duration::from_secs(5)).await);
    }
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "300 idle connections");
}

/// A WebSocket client whose receive buffer is tiny and that never reads.
async fn non_reader(
    srv: &TestServer,
    id: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock
        .connect(([127, 0, 0, 1], srv.port).into())
        .await
        .unwrap();
    let url = srv.ws_url(&format!("?sessionId={id}"));
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade");
    ws
}

#[tokio::test]
async fn websockets_that_stop_reading_are_dropped() {
    let srv = TestServer::builder(&Backend::Memory)
        .arg("--ws-send-timeout-ms")
        .arg("1000")
        .arg("--rate-limit-per-session")
        .arg("0")
        .start()
        .await;
    let polite = Polite::new(&srv).await;
    // A session whose every update is ~16 KB (its metadata is echoed).
    let mut body = session_body("per_participant", &["a", "b"], 3_600_000);
    body["metadata"] = json!({"pad": "x".repeat(15_000)});
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let mut stalled = Vec::new();
    for _ in 0..10 {
        stalled.push(non_reader(&srv, &id).await);
    }
    let (mut reader, _) = srv.ws_synced(&id).await;
    let rss = rss_kib(srv.pid());
    let started = Instant::now();
    let mut switches = 0;
    // Switch until every stalled client is dropped (1 open WebSocket: the
    // reader), at most 3,000 switches or 60 s.
    loop {
        srv.api().switch(&id, &json!({})).await;
        switches += 1;
        // The reader keeps up (and must keep receiving).
        let _ = reader.wait_for_type("STATE_UPDATE", WS_WAIT).await;
        if switches % 50 == 0 {
            let m = metrics_text(&srv).await;
            if gauge(&m, "synckairos_websocket_connections") <= 1.0 {
                break;
            }
            assert!(
                switches < 3000 && started.elapsed() < Duration::from_secs(60),
                "stalled WebSocket clients were not dropped after {switches} switches: {}",
                gauge(&m, "synckairos_websocket_connections")
            );
        }
    }
    println!(
        "10 non-reading WebSockets dropped after {switches} switches, {:?}",
        started.elapsed()
    );
    reader.ping(1).await;
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "10 non-reading WebSockets");
    drop(stalled);
}

#[tokio::test]
async fn reconnect_and_ping_floods_are_limited_then_closed() {
    // The default budget (TestServer raises it for the other suites).
    let (srv, polite, rss) = under_attack(&["--ws-messages-per-second", "20"]).await;
    let (mut bystander, _) = srv.ws_synced(polite.session()).await;
    for kind in ["RECONNECT", "PING"] {
        let (mut ws, _) = srv.ws_synced(polite.session()).await;
        // 2,000 frames without reading (stops early if the server closes).
        for _ in 0..2000 {
            if !ws.try_send_text(json!({"type": kind}).to_string()).await {
                break;
            }
        }
        let (mut syncs, mut pongs, mut limited) = (0, 0, 0);
        let close = loop {
            match ws.next_event(Duration::from_secs(10)).await {
                WsEvent::Json(v) => match v["type"].as_str() {
                    Some("STATE_SYNC") => syncs += 1,
                    Some("PONG") => pongs += 1,
                    Some("ERROR") if v["code"] == "RATE_LIMITED" => limited += 1,
                    Some("STATE_UPDATE") => {}
                    _ => panic!("unexpected {v}"),
                },
                WsEvent::Closed(c) => break c,
                other => panic!("{kind} flood: unexpected {other:?}"),
            }
        };
        println!(
            "{kind} flood: {syncs} STATE_SYNC, {pongs} PONG, {limited} RATE_LIMITED, close {close:?}"
        );
        assert_eq!(
            close.map(|c| c.0),
            Some(1008),
            "persistent abuse closes with 1008"
        );
        assert!(limited >= 1, "the flood is told RATE_LIMITED first");
        assert!(
            syncs <= 3,
            "RECONNECT is answered at most once per version or second: {syncs}"
        );
        assert!(
            pongs <= 41,
            "at most the burst of PINGs is answered: {pongs}"
        );
    }
    bystander.ping(5).await;
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "RECONNECT and PING floods");
}

#[tokio::test]
async fn subscribing_to_sessions_that_do_not_exist_is_refused() {
    let (srv, polite, rss) = under_attack(&[]).await;
    for _ in 0..200 {
        srv.ws(&new_id()).await.expect_session_not_found().await;
    }
    wait_until(
        Duration::from_secs(10),
        "no WebSocket left open",
        || async {
            gauge(
                &metrics_text(&srv).await,
                "synckairos_websocket_connections",
            ) == 0.0
        },
    )
    .await;
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "200 subscriptions to nothing");
}

#[tokio::test]
async fn websocket_connections_are_capped_per_instance() {
    let srv = TestServer::builder(&Backend::Memory)
        .arg("--max-ws-connections")
        .arg("20")
        .start()
        .await;
    let polite = Polite::new(&srv).await;
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(srv.ws_synced(polite.session()).await.0);
    }
    let url = srv.ws_url(&format!("?sessionId={}", polite.session()));
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503, "past the cap: 503");
            assert!(resp.headers().get("retry-after").is_some());
        }
        other => panic!(
            "the 21st WebSocket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    open.pop().unwrap().close().await;
    wait_until(
        Duration::from_secs(10),
        "a slot frees when a client leaves",
        || async { tokio_tungstenite::connect_async(url.as_str()).await.is_ok() },
    )
    .await;
    polite.served(POLITE_BOUND).await;
}

#[tokio::test]
async fn rate_limits_and_quota_answer_429() {
    let srv = TestServer::builder(&Backend::Memory)
        .arg("--rate-limit-per-address")
        .arg("50")
        .arg("--rate-limit-per-session")
        .arg("5")
        .arg("--max-live-sessions")
        .arg("20")
        .start()
        .await;
    let rss = rss_kib(srv.pid());
    // Per session: a burst of 10, then 429 with an integer Retry-After.
    let body = session_body("per_participant", &["a", "b"], 3_600_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let mut limited = None;
    for _ in 0..40 {
        let r = srv
            .api()
            .post(&format!("/v1/sessions/{id}/switch"), &json!({}))
            .await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        r.expect_status(200);
    }
    let r = limited.expect("per-session commands are limited");
    r.error(429, "RATE_LIMITED");
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("integer Retry-After");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // Quota: 20 live sessions per instance (one exists).
    let mut made = 1;
    let refused = loop {
        let r = srv
            .api()
            .post(
                "/v1/sessions",
                &session_body("per_participant", &["a", "b"], 60_000),
            )
            .await;
        if r.status != 201 {
            break r;
        }
        made += 1;
        assert!(made <= 20, "the quota is enforced");
    };
    assert_eq!(made, 20, "exactly the quota is created");
    let e = refused.error(429, "QUOTA_EXCEEDED");
    assert_eq!(e["details"]["quota"], "live_sessions_per_instance", "{e}");
    assert!(refused.header("retry-after").is_some());
    srv.api()
        .delete(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(204);
    srv.api()
        .post(
            "/v1/sessions",
            &session_body("per_participant", &["a", "b"], 60_000),
        )
        .await
        .expect_status(201);
    // Per address: a burst of 100 then 429; probes stay exempt.
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.push(srv.api().get("/v1/time").await.status);
    }
    assert!(statuses.contains(&429), "per-address requests are limited");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)));
    srv.api().get("/health").await.expect_status(200);
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "rate limits");
}

#[tokio::test]
async fn oversized_state_is_refused_naming_the_field() {
    let (srv, polite, rss) = under_attack(&[]).await;
    let mut body = session_body("per_participant", &["a", "b"], 60_000);
    body["action_on_timeout"] = json!({"type": "end_session", "extra": "x".repeat(500_000)});
    srv.api()
        .post("/v1/sessions", &body)
        .await
        .validation("action_on_timeout");
    let ids: Vec<String> = (0..1000).map(|i| format!("{i:0>128}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = session_body("per_participant", &refs, 60_000);
    srv.api()
        .post("/v1/sessions", &body)
        .await
        .validation("participants");
    polite.served(POLITE_BOUND).await;
    assert_rss_growth(&srv, rss, RSS_BOUND_KIB, "oversized creates");
}

#[tokio::test]
async fn increments_cannot_inflate_banks_past_24h() {
    let srv = TestServer::start(&Backend::Memory).await;
    let mut body = session_body("per_participant", &["a", "b"], 86_000_000);
    body["increment_ms"] = json!(60_000);
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let mut last = Value::Null;
    for _ in 0..40 {
        last = srv.api().switch(&id, &json!({})).await;
    }
    for p in last["participants"].as_array().expect("participants") {
        let bank = p["time_remaining_ms"].as_i64().expect("time_remaining_ms");
        assert!(bank <= 86_400_000, "bank {bank} past 24 h: {last}");
    }
}

#[tokio::test]
async fn sigterm_with_stuck_clients_exits_within_the_grace_period() {
    let mut srv = TestServer::builder(&Backend::Memory)
        .arg("--shutdown-grace-seconds")
        .arg("2")
        .arg("--http-header-timeout-seconds")
        .arg("60")
        .arg("--http-request-timeout-ms")
        .arg("60000")
        .start()
        .await;
    let polite = Polite::new(&srv).await;
    // A half-sent request, a half-sent body, a WebSocket that never reads.
    let mut half = raw(&srv).await;
    assert!(write_quietly(&mut half, b"GET /health HTTP/1.1\r\nHost: x\r\n").await);
    let mut body = raw(&srv).await;
    let head = "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    assert!(write_quietly(&mut body, head.as_bytes()).await);
    let _stuck_ws = non_reader(&srv, polite.session()).await;
    polite.served(POLITE_BOUND).await;
    let started = Instant::now();
    srv.sigterm();
    let status = srv.wait_exit(Duration::from_secs(8)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit within grace (2 s) + margin, got {status:?} after {:?}",
        started.elapsed()
    );
    println!(
        "exited {:?} after SIGTERM with stuck clients",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_redis_gets_503_within_the_deadline_then_recovers() {
    if !synckairos_tests::host::need("redis-server") {
        return;
    }
    let redis = RedisServer::start().await.expect("redis-server");
    let srv = TestServer::builder(&Backend::Memory)
        .env("REDIS_URL", redis.url())
        .arg("--http-request-timeout-ms")
        .arg("3000")
        .start()
        .await;
    let api = srv.api().clone();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let body = session_body("per_participant", &["a", "b"], 3_600_000);
        ids.push(id_of(&body));
        api.create_started(&body).await;
    }
    let rss = rss_kib(srv.pid());
    redis.pause(true);
    // 10 rounds of 20 concurrent switches against a stopped Redis: each is
    // answered 503 with Retry-After, within the 3 s deadline plus margin.
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let rounds = ids.iter().map(|id| {
            let api = api.clone();
            let id = id.clone();
            async move {
                let t = Instant::now();
                let r = api
                    .post(&format!("/v1/sessions/{id}/switch"), &json!({}))
                    .await;
                (r, t.elapsed())
            }
        });
        for (r, took) in futures::future::join_all(rounds).await {
            r.error(503, "SERVICE_UNAVAILABLE");
            assert!(r.header("retry-after").is_some(), "{r}");
            worst = worst.max(took);
        }
    }
    println!("slowest 503 while Redis was stopped: {worst:?}");
    assert!(
        worst < Duration::from_secs(5),
        "503 within the deadline: {worst:?}"
    );
    assert_rss_growth(
        &srv,
        rss,
        RSS_BOUND_KIB,
        "200 switches against a stopped Redis",
    );
    redis.pause(false);
    // Recovery: every session switches again.
    for id in &ids {
        let id = id.clone();
        wait_until(Duration::from_secs(20), "switches succeed again", || {
            let api = api.clone();
            let id = id.clone();
            async move {
                api.post(&format!("/v1/sessions/{id}/switch"), &json!({}))
                    .await
                    .status
                    == 200
            }
        })
        .await;
    }
    srv.api().get("/ready").await.expect_status(200);
}
