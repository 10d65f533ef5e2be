//! Process-level behaviour: graceful shutdown on SIGTERM and idle-session
//! expiry.

use std::time::Duration;
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    sigterm_closes_websockets_with_1001_and_exits_cleanly,
    idle_sessions_expire_but_running_clocks_do_not,
    server_keeps_serving_after_a_burst_of_bad_requests,
    bad_configuration_stops_startup_with_one_clear_line,
    serve_help_documents_the_configuration,
    version_names_the_release_and_the_revision,
    log_format_json_writes_json_lines,
    sigterm_finishes_an_in_flight_request,
    sigterm_right_after_startup_is_graceful,
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
    // Stopped accepting: the port is closed.
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", srv.port)).await;
    assert!(refused.is_err(), "port still accepting after shutdown");
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
    // The id is no longer live: it can be created again.
    assert_eq!(api.create(&idle).await["version"], 1);
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

/// (command-line args, environment, word the error line must contain)
type ConfigCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

async fn bad_configuration_stops_startup_with_one_clear_line(b: Backend) {
    let cases: [ConfigCase; 6] = [
        (&["--port", "notaport"], &[], "port"),
        (&["--port", "70000"], &[], "port"),
        (&[], &[("SESSION_TTL_SECONDS", "0")], "ttl"),
        (&[], &[("SWEEP_INTERVAL_MS", "often")], "sweep"),
        (&[], &[("LOG_FORMAT", "xml")], "log"),
        (&[], &[("WS_PING_INTERVAL_SECONDS", "-1")], "ping"),
    ];
    for (args, env, needle) in cases {
        let mut builder = TestServer::builder(&b);
        for a in args {
            builder = builder.arg(*a);
        }
        for (k, v) in env {
            builder = builder.env(*k, *v);
        }
        let what = format!("args {args:?} env {env:?}");
        let (status, stdout, stderr) = builder.run_to_exit(Duration::from_secs(10)).await;
        let status = status.unwrap_or_else(|| panic!("{what}: server kept running"));
        assert!(
            !status.success(),
            "{what}: must exit non-zero, got {status}"
        );
        assert!(
            !stdout.contains("listening on"),
            "{what}: must not start: {stdout}"
        );
        assert!(!stderr.contains("panicked"), "{what}: no panic: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let first = lines.first().copied().unwrap_or_default().to_lowercase();
        assert!(
            first.contains(needle),
            "{what}: the first stderr line names the setting ({needle}): {stderr}"
        );
        assert!(
            lines.len() <= 3,
            "{what}: a short, clear message, not a dump: {stderr}"
        );
    }
}

async fn serve_help_documents_the_configuration(b: Backend) {
    let (status, stdout, stderr) = TestServer::builder(&b)
        .arg("--help")
        .run_to_exit(Duration::from_secs(10))
        .await;
    assert!(
        status.is_some_and(|s| s.success()),
        "--help exits 0: {stderr}"
    );
    for env in [
        "PORT",
        "BIND",
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "DATABASE_URL",
        "SESSION_TTL_SECONDS",
        "LOG_FORMAT",
    ] {
        assert!(
            stdout.contains(env),
            "serve --help mentions {env}:\n{stdout}"
        );
    }
}

async fn version_names_the_release_and_the_revision(_b: Backend) {
    let out = tokio::process::Command::new(synckairos_tests::server::server_binary())
        .arg("--version")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run the server binary: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--version exits 0: {stdout}");
    let v = stdout
        .trim()
        .strip_prefix("synckairos ")
        .unwrap_or_else(|| panic!("--version prints `synckairos <version>`: {stdout}"));
    crate::check_build_version(v);
}

async fn log_format_json_writes_json_lines(b: Backend) {
    let srv = TestServer::builder(&b)
        .env("LOG_FORMAT", "json")
        .start()
        .await;
    let body = session_body("per_participant", &["a", "b"], 60_000);
    srv.api().create_started(&body).await;
    srv.api().get("/nope").await;
    wait_until(
        Duration::from_secs(5),
        "the server logged something",
        || async { srv.logs().lines().any(|l| l.starts_with("[err] ")) },
    )
    .await;
    for line in srv.logs().lines().filter_map(|l| l.strip_prefix("[err] ")) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("LOG_FORMAT=json: not a JSON line ({e}): {line}"));
        assert!(v.is_object(), "log line is an object: {line}");
        assert!(v.get("level").is_some(), "log line has a level: {line}");
    }
}

/// Reads from `sock` until `needle` has arrived (or EOF / 10 s); returns all.
async fn read_until(sock: &mut tokio::net::TcpStream, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

async fn sigterm_finishes_an_in_flight_request(b: Backend) {
    use tokio::io::AsyncWriteExt;
    let mut srv = TestServer::start(&b).await;
    let body = session_body("per_participant", &["a", "b"], 60_000).to_string();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    // `Expect: 100-continue`: the server says "100 Continue" once the
    // handler starts reading the body, i.e. once the request is in flight.
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let cont = read_until(&mut sock, "\r\n\r\n").await;
    assert!(
        cont.starts_with("HTTP/1.1 100"),
        "expected 100 Continue, got {cont:?}"
    );
    srv.sigterm();
    // The request is finished after the signal, not dropped.
    sock.write_all(body.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write body: {e}"));
    let resp = read_until(&mut sock, "}}").await;
    assert!(
        resp.starts_with("HTTP/1.1 201"),
        "an in-flight request completes during shutdown: {resp:?}"
    );
    let status = srv
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("server still running 15 s after SIGTERM"));
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

async fn sigterm_right_after_startup_is_graceful(b: Backend) {
    // The listening line is the readiness signal: from then on SIGTERM must
    // mean a graceful shutdown (exit 0), not the default "terminate" (143).
    for round in 0..10 {
        let mut srv = TestServer::start(&b).await;
        srv.sigterm();
        let status = srv
            .wait_exit(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("server still running 15 s after SIGTERM"));
        assert!(
            status.success(),
            "round {round}: SIGTERM right after `listening on` must shut down gracefully, got {status}"
        );
    }
}
