//! Access control (API.md "Authentication and authorization"): every
//! endpoint and the WebSocket against every kind of credential, with the
//! exact status and error code; a participant's turn under a race; the
//! token endpoint and `gen-token`; the admin listener; the startup refusal;
//! and no secret in any output.

use serde_json::{Value, json};
use std::time::Duration;
use synckairos_tests::auth::{self, API_KEY, API_KEYS, OTHER_SECRET, TOKEN_SECRET};
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    every_endpoint_answers_every_credential_as_the_table_says,
    websocket_checks_the_credential_before_the_upgrade,
    websocket_closes_when_its_token_expires,
    a_participant_pressing_as_the_turn_passes_never_switches_the_other_clock,
    tokens_endpoint_mints_working_tokens_and_names_bad_fields,
    admin_port_serves_metrics_and_ready_apart_from_the_api,
    an_open_server_refuses_a_public_address,
    no_secret_in_help_check_config_responses_or_logs,
    gen_token_mints_a_token_the_server_accepts,
}

/// The credentials of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    NotBearer,
    Malformed,
    BadSignature,
    Expired,
    OtherSession,
    Viewer,
    OnTurn,
    OffTurn,
    Controller,
    ApiKey,
}

const CREDS: [Cred; 11] = [
    Cred::None,
    Cred::NotBearer,
    Cred::Malformed,
    Cred::BadSignature,
    Cred::Expired,
    Cred::OtherSession,
    Cred::Viewer,
    Cred::OnTurn,
    Cred::OffTurn,
    Cred::Controller,
    Cred::ApiKey,
];

impl Cred {
    /// The `Authorization` header value for a request on session `sid`
    /// (where the participants are `a`, whose turn it is, and `b`).
    fn header(self, sid: &str) -> Option<String> {
        let bearer = |t: String| Some(format!("Bearer {t}"));
        match self {
            Cred::None => None,
            Cred::NotBearer => Some("Basic dXNlcjpwYXNz".into()),
            Cred::Malformed => bearer("eyJub3QiOiJqc29uIn0.not-a-jwt.at-all".into()),
            Cred::BadSignature => {
                let now = auth::now_s();
                let claims =
                    json!({"sid": sid, "role": "controller", "iat": now, "exp": now + 600});
                bearer(auth::sign(&claims, OTHER_SECRET))
            }
            Cred::Expired => bearer(auth::token(sid, "controller", None, -60)),
            Cred::OtherSession => bearer(auth::token(&new_id(), "controller", None, 600)),
            Cred::Viewer => bearer(auth::token(sid, "viewer", None, 600)),
            Cred::OnTurn => bearer(auth::token(sid, "participant", Some("a"), 600)),
            Cred::OffTurn => bearer(auth::token(sid, "participant", Some("b"), 600)),
            Cred::Controller => bearer(auth::token(sid, "controller", None, 600)),
            Cred::ApiKey => bearer(API_KEY.into()),
        }
    }

    fn unauthenticated(self) -> bool {
        matches!(
            self,
            Cred::None | Cred::NotBearer | Cred::Malformed | Cred::BadSignature | Cred::Expired
        )
    }
}

/// The endpoints, and the state each needs to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ep {
    Create,
    Get,
    Start,
    Switch,
    Pause,
    Resume,
    Complete,
    Cancel,
    Delete,
    Events,
    Tokens,
    Metrics,
    Ready,
    Time,
    Health,
    OpenApi,
}

const EPS: [Ep; 16] = [
    Ep::Create,
    Ep::Get,
    Ep::Start,
    Ep::Switch,
    Ep::Pause,
    Ep::Resume,
    Ep::Complete,
    Ep::Cancel,
    Ep::Delete,
    Ep::Events,
    Ep::Tokens,
    Ep::Metrics,
    Ep::Ready,
    Ep::Time,
    Ep::Health,
    Ep::OpenApi,
];

/// API.md's table, written out per cell: the status and error code `cred`
/// gets on `ep` (`None` for a success).
fn expected(cred: Cred, ep: Ep, has_audit: bool) -> (u16, Option<&'static str>) {
    const FORBIDDEN: (u16, Option<&str>) = (403, Some("FORBIDDEN"));
    if matches!(ep, Ep::Time | Ep::Health | Ep::OpenApi) {
        return (200, None);
    }
    if cred.unauthenticated() {
        return (401, Some("UNAUTHORIZED"));
    }
    let ok = match ep {
        Ep::Create | Ep::Tokens => (201, None),
        Ep::Delete => (204, None),
        Ep::Events if !has_audit => (503, Some("AUDIT_UNAVAILABLE")),
        _ => (200, None),
    };
    match (cred, ep) {
        (Cred::ApiKey, _) => ok,
        (_, Ep::Create | Ep::Delete | Ep::Tokens | Ep::Metrics | Ep::Ready) => FORBIDDEN,
        (Cred::OtherSession, _) => FORBIDDEN,
        (_, Ep::Get | Ep::Events) => ok,
        (Cred::Controller | Cred::OnTurn, Ep::Switch) => ok,
        (Cred::OffTurn, Ep::Switch) => (403, Some("NOT_YOUR_TURN")),
        (Cred::Controller, _) => ok,
        _ => FORBIDDEN,
    }
}

fn clock_body() -> Value {
    session_body("per_participant", &["a", "b"], 600_000)
}

/// A session in the state `ep` needs to succeed; its id (for Create, the
/// id of a body not created yet).
async fn prepare(admin: &Api, ep: Ep) -> (String, Value) {
    let body = clock_body();
    let id = id_of(&body);
    match ep {
        Ep::Create | Ep::Metrics | Ep::Ready | Ep::Time | Ep::Health | Ep::OpenApi => {}
        Ep::Get | Ep::Start | Ep::Delete | Ep::Events | Ep::Tokens => {
            admin.create(&body).await;
        }
        Ep::Switch | Ep::Pause | Ep::Complete | Ep::Cancel => {
            admin.create_started(&body).await;
        }
        Ep::Resume => {
            admin.create_started(&body).await;
            admin.act(&id, "pause").await;
        }
    }
    (id, body)
}

async fn call(api: &Api, ep: Ep, id: &str, body: &Value) -> Resp {
    let s = format!("/v1/sessions/{id}");
    match ep {
        Ep::Create => api.post("/v1/sessions", body).await,
        Ep::Get => api.get(&s).await,
        Ep::Start => api.post_empty(&format!("{s}/start")).await,
        Ep::Switch => api.post(&format!("{s}/switch"), &json!({})).await,
        Ep::Pause => api.post_empty(&format!("{s}/pause")).await,
        Ep::Resume => api.post_empty(&format!("{s}/resume")).await,
        Ep::Complete => api.post_empty(&format!("{s}/complete")).await,
        Ep::Cancel => api.post_empty(&format!("{s}/cancel")).await,
        Ep::Delete => api.delete(&s).await,
        Ep::Events => api.get(&format!("{s}/events")).await,
        Ep::Tokens => {
            api.post(&format!("{s}/tokens"), &json!({"role": "viewer"}))
                .await
        }
        Ep::Metrics => api.get("/metrics").await,
        Ep::Ready => api.get("/ready").await,
        Ep::Time => api.get("/v1/time").await,
        Ep::Health => api.get("/health").await,
        Ep::OpenApi => api.get("/openapi.json").await,
    }
}

fn client(srv: &TestServer, header: Option<&str>) -> Api {
    match header {
        Some(h) => srv.api().with_authorization(h),
        None => srv.api().clone(),
    }
}

async fn every_endpoint_answers_every_credential_as_the_table_says(b: Backend) {
    let srv = TestServer::builder(&b).with_auth().start().await;
    let admin = srv.api().with_bearer(API_KEY);
    for ep in EPS {
        for cred in CREDS {
            let (id, body) = prepare(&admin, ep).await;
            let before = match ep {
                Ep::Create | Ep::Metrics | Ep::Ready | Ep::Time | Ep::Health | Ep::OpenApi => None,
                _ => Some(admin.state(&id).await),
            };
            let header = cred.header(&id);
            let r = call(&client(&srv, header.as_deref()), ep, &id, &body).await;
            let what = format!("{cred:?} on {ep:?}: {r}");
            match expected(cred, ep, b.has_audit()) {
                (status, Some(code)) => {
                    r.error(status, code);
                }
                (status, None) => assert_eq!(r.status, status, "{what}"),
            }
            if r.status == 401 {
                let challenge = r.header("www-authenticate").unwrap_or_default();
                assert!(challenge.starts_with("Bearer"), "WWW-Authenticate: {what}");
            }
            // A refused request changes nothing.
            if let Some(before) = before
                && (r.status == 401 || r.status == 403)
            {
                let after = admin.state(&id).await;
                assert_eq!(after["version"], before["version"], "{what}");
            }
            if ep == Ep::Create && r.status == 403 {
                admin
                    .get(&format!("/v1/sessions/{id}"))
                    .await
                    .error(404, "SESSION_NOT_FOUND");
            }
        }
    }
}

async fn websocket_checks_the_credential_before_the_upgrade(b: Backend) {
    let srv = TestServer::builder(&b).with_auth().start().await;
    let admin = srv.api().with_bearer(API_KEY);
    let body = clock_body();
    let id = id_of(&body);
    admin.create_started(&body).await;
    let url = srv.ws_url(&format!("?sessionId={id}"));
    for cred in CREDS {
        let header = cred.header(&id);
        let got = WsClient::try_connect(&url, header.as_deref()).await;
        let (status, code) = match cred {
            c if c.unauthenticated() => (401, "UNAUTHORIZED"),
            Cred::OtherSession => (403, "FORBIDDEN"),
            _ => (101, ""),
        };
        match got {
            Ok(mut ws) => {
                assert_eq!(status, 101, "{cred:?}: upgraded but expected {status}");
                let hello = ws.expect_type("CONNECTED").await;
                assert_eq!(hello["sessionId"], id.as_str(), "{cred:?}");
                ws.expect_type("STATE_SYNC").await;
            }
            Err((got, text)) => {
                assert_eq!(got, status, "{cred:?}: refused with {got} {text}");
                let err: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert_eq!(err["error"]["code"], code, "{cred:?}: {text}");
            }
        }
    }
    // Browsers send the credential as `?token=`.
    let viewer = auth::token(&id, "viewer", None, 600);
    let mut ws = WsClient::try_connect(&format!("{url}&token={viewer}"), None)
        .await
        .unwrap_or_else(|e| panic!("?token= viewer refused: {e:?}"));
    ws.expect_type("CONNECTED").await;
    let expired = auth::token(&id, "viewer", None, -60);
    let refused = WsClient::try_connect(&format!("{url}&token={expired}"), None).await;
    assert_eq!(refused.err().map(|e| e.0), Some(401), "expired ?token=");
    let foreign = auth::token(&new_id(), "viewer", None, 600);
    let refused = WsClient::try_connect(&format!("{url}&token={foreign}"), None).await;
    assert_eq!(
        refused.err().map(|e| e.0),
        Some(403),
        "?token= of another session"
    );
}

async fn websocket_closes_when_its_token_expires(b: Backend) {
    let srv = TestServer::builder(&b).with_auth().start().await;
    let admin = srv.api().with_bearer(API_KEY);
    let body = clock_body();
    let id = id_of(&body);
    admin.create_started(&body).await;
    let minted = admin
        .post(
            &format!("/v1/sessions/{id}/tokens"),
            &json!({"role": "viewer", "ttl_seconds": 2}),
        )
        .await
        .data(201)
        .clone();
    let token = minted["token"].as_str().unwrap_or_default();
    let exp_ms = iso_ms(&minted["expires_at"]);
    let url = srv.ws_url(&format!("?sessionId={id}&token={token}"));
    let mut ws = WsClient::try_connect(&url, None)
        .await
        .unwrap_or_else(|e| panic!("fresh token refused: {e:?}"));
    ws.expect_type("CONNECTED").await;
    ws.expect_type("STATE_SYNC").await;
    let (code, reason) = ws.expect_close(Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (1008, "token expired"));
    // Closed because of the expiry, not before it.
    let closed_at = chrono::Utc::now().timestamp_millis();
    assert!(
        closed_at >= exp_ms,
        "closed at {closed_at}, before the token's exp {exp_ms}"
    );
    // The same token no longer opens one.
    let again = WsClient::try_connect(&url, None).await;
    assert_eq!(again.err().map(|e| e.0), Some(401));
}

/// Rounds of the race, and presses per device per round.
const RACE_ROUNDS: usize = 3;
const PRESSES: usize = 40;

/// Hammers switch with one participant's token; the (version, active after)
/// of every switch that committed.
async fn press(api: Api, id: String, me: &'static str) -> Vec<(u64, String)> {
    let mut committed = Vec::new();
    for _ in 0..PRESSES {
        let r = api
            .post(&format!("/v1/sessions/{id}/switch"), &json!({}))
            .await;
        match r.status {
            200 => {
                let d = r.data(200);
                let v = d["version"].as_u64().unwrap_or_default();
                let active = d["active_participant_id"].as_str().unwrap_or_default();
                committed.push((v, active.to_string()));
            }
            403 => {
                r.error(403, "NOT_YOUR_TURN");
            }
            // A lost race that exhausted the retries: refused, nothing changed.
            409 => {
                r.error(409, "CONFLICT");
            }
            _ => panic!("participant {me}: unexpected {r}"),
        }
    }
    committed
}

async fn a_participant_pressing_as_the_turn_passes_never_switches_the_other_clock(b: Backend) {
    // With a shared store, each device talks to its own instance.
    let prov = b
        .provision()
        .await
        .unwrap_or_else(|e| panic!("provisioning {}: {e:#}", b.name()));
    let one = TestServer::builder(&b)
        .with_auth()
        .provisioned(prov.clone())
        .start()
        .await;
    let shared = matches!(b, Backend::Redis | Backend::Cluster);
    let two = if shared {
        Some(
            TestServer::builder(&b)
                .with_auth()
                .provisioned(prov)
                .start()
                .await,
        )
    } else {
        None
    };
    let admin = one.api().with_bearer(API_KEY);
    for round in 0..RACE_ROUNDS {
        let body = clock_body();
        let id = id_of(&body);
        let started = admin.create_started(&body).await;
        let v0 = started["version"].as_u64().unwrap_or_default();
        let device_a = one
            .api()
            .with_bearer(&auth::token(&id, "participant", Some("a"), 600));
        let device_b = two.as_ref().unwrap_or(&one).api().with_bearer(&auth::token(
            &id,
            "participant",
            Some("b"),
            600,
        ));
        let (by_a, by_b) = tokio::join!(
            press(device_a, id.clone(), "a"),
            press(device_b, id.clone(), "b")
        );
        // Each committed switch passed the turn away from whoever pressed.
        for (v, active) in &by_a {
            assert_eq!(
                active, "b",
                "round {round}: a's switch to v{v} left {active} active"
            );
        }
        for (v, active) in &by_b {
            assert_eq!(
                active, "a",
                "round {round}: b's switch to v{v} left {active} active"
            );
        }
        // Every version after start was committed by exactly one of these
        // 200s, alternately: no switch committed that its presser was not
        // told about, none twice, none off turn.
        let mut all: Vec<(u64, &str)> = by_a
            .iter()
            .map(|(v, _)| (*v, "a"))
            .chain(by_b.iter().map(|(v, _)| (*v, "b")))
            .collect();
        all.sort();
        let live = admin.state(&id).await;
        let last = live["version"].as_u64().unwrap_or_default();
        let versions: Vec<u64> = all.iter().map(|(v, _)| *v).collect();
        assert_eq!(
            versions,
            ((v0 + 1)..=last).collect::<Vec<_>>(),
            "round {round}: committed versions"
        );
        for (i, (v, who)) in all.iter().enumerate() {
            let turn = if i % 2 == 0 { "a" } else { "b" };
            assert_eq!(
                *who, turn,
                "round {round}: v{v} switched by {who} on {turn}'s turn"
            );
        }
        assert!(!all.is_empty(), "round {round}: no switch committed at all");
    }
}

async fn tokens_endpoint_mints_working_tokens_and_names_bad_fields(b: Backend) {
    let srv = TestServer::builder(&b).with_auth().start().await;
    let admin = srv.api().with_bearer(API_KEY);
    let body = clock_body();
    let id = id_of(&body);
    admin.create_started(&body).await;
    let path = format!("/v1/sessions/{id}/tokens");
    for (req, field) in [
        (json!({"role": "participant"}), "participant_id"),
        (
            json!({"role": "participant", "participant_id": "zed"}),
            "participant_id",
        ),
        (json!({"role": "admin"}), "role"),
        (json!({"role": "viewer", "ttl_seconds": 0}), "ttl_seconds"),
        (
            json!({"role": "viewer", "ttl_seconds": 86_401}),
            "ttl_seconds",
        ),
        (json!({"role": "viewer", "ttl_seconds": -1}), "ttl_seconds"),
    ] {
        admin.post(&path, &req).await.validation(field);
    }
    admin.post_empty(&path).await.validation("body");
    admin
        .post(
            &format!("/v1/sessions/{}/tokens", new_id()),
            &json!({"role": "viewer"}),
        )
        .await
        .error(404, "SESSION_NOT_FOUND");
    let minted = admin
        .post(
            &path,
            &json!({"role": "participant", "participant_id": "a", "ttl_seconds": 60}),
        )
        .await
        .data(201)
        .clone();
    assert_eq!(minted["role"], "participant");
    assert_eq!(minted["participant_id"], "a");
    let exp = iso_ms(&minted["expires_at"]);
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        exp > now && exp <= now + 61_000,
        "expires_at {exp} vs now {now}"
    );
    let device = srv
        .api()
        .with_bearer(minted["token"].as_str().unwrap_or_default());
    device.state(&id).await;
    let sw = device.switch(&id, &json!({})).await;
    assert_eq!(sw["active_participant_id"], "b");
    device
        .post(&format!("/v1/sessions/{id}/switch"), &json!({}))
        .await
        .error(403, "NOT_YOUR_TURN");
    device
        .post(
            &format!("/v1/sessions/{id}/switch"),
            &json!({"next_participant_id": "a"}),
        )
        .await
        .error(403, "FORBIDDEN");
    // Only an API key mints, and only with a secret to sign with.
    device
        .post(&path, &json!({"role": "controller"}))
        .await
        .error(403, "FORBIDDEN");
    let keys_only = TestServer::builder(&b)
        .env("API_KEYS", API_KEYS)
        .start()
        .await;
    let admin2 = keys_only.api().with_bearer(API_KEY);
    let body2 = clock_body();
    admin2.create(&body2).await;
    admin2
        .post(
            &format!("/v1/sessions/{}/tokens", id_of(&body2)),
            &json!({"role": "viewer"}),
        )
        .await
        .error(503, "TOKENS_UNAVAILABLE");
}

async fn admin_port_serves_metrics_and_ready_apart_from_the_api(b: Backend) {
    let srv = TestServer::builder(&b)
        .with_auth()
        .env("ADMIN_PORT", "0")
        .start()
        .await;
    let admin_api = Api::new(&srv.admin_base().await);
    let key = srv.api().with_bearer(API_KEY);
    // Open on the admin listener, gone from the main port (even for a key).
    admin_api.get("/metrics").await.expect_status(200);
    let ready = admin_api.get("/ready").await;
    assert_eq!(ready.body["status"], "ready", "{ready}");
    admin_api.get("/health").await.expect_status(200);
    admin_api.get("/v1/time").await.error(404, "NOT_FOUND");
    admin_api
        .get(&format!("/v1/sessions/{}", new_id()))
        .await
        .error(404, "NOT_FOUND");
    key.get("/metrics").await.error(404, "NOT_FOUND");
    key.get("/ready").await.error(404, "NOT_FOUND");
    srv.api().get("/health").await.expect_status(200);
    // Without ADMIN_PORT they stay on the main port, API keys only.
    let plain = TestServer::builder(&b).with_auth().start().await;
    plain.api().get("/metrics").await.error(401, "UNAUTHORIZED");
    plain
        .api()
        .with_bearer(API_KEY)
        .get("/metrics")
        .await
        .expect_status(200);
}

async fn an_open_server_refuses_a_public_address(b: Backend) {
    for command in ["serve", "check-config"] {
        let (status, out, err) = TestServer::builder(&b)
            .command(command)
            .bind("0.0.0.0")
            .run_to_exit(Duration::from_secs(20))
            .await;
        let status = status.unwrap_or_else(|| panic!("{command} on 0.0.0.0 kept running"));
        assert!(
            !status.success(),
            "{command}: started open on 0.0.0.0: {out}"
        );
        assert!(!out.contains("listening on"), "{command}: {out}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{command}: one clear line, got {err:?}");
        assert!(
            lines[0].contains("0.0.0.0") && lines[0].contains("AUTH=off"),
            "{command}: {err:?}"
        );
    }
    // Said on purpose, or with credentials, the same address is accepted.
    for env in [("AUTH", "off"), ("API_KEYS", API_KEYS)] {
        let (status, out, err) = TestServer::builder(&b)
            .command("check-config")
            .bind("0.0.0.0")
            .env(env.0, env.1)
            .run_to_exit(Duration::from_secs(20))
            .await;
        assert!(status.is_some_and(|s| s.success()), "{env:?}: {out} {err}");
    }
}

async fn no_secret_in_help_check_config_responses_or_logs(b: Backend) {
    let secrets = [API_KEY, TOKEN_SECRET];
    let leaks = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows a secret:\n{text}");
        }
    };
    let (_, help, help_err) = TestServer::builder(&b)
        .with_auth()
        .arg("--help")
        .run_to_exit(Duration::from_secs(20))
        .await;
    assert!(
        help.contains("API_KEYS") && help.contains("TOKEN_SECRET"),
        "{help}"
    );
    leaks("--help", &format!("{help}{help_err}"));
    let (status, shown, shown_err) = TestServer::builder(&b)
        .with_auth()
        .command("check-config")
        .run_to_exit(Duration::from_secs(20))
        .await;
    assert!(status.is_some_and(|s| s.success()), "{shown} {shown_err}");
    assert!(shown.contains("auth: on"), "{shown}");
    assert!(
        shown.contains("backend (sha256:"),
        "key names, fingerprinted: {shown}"
    );
    assert!(shown.contains("token secret: set"), "{shown}");
    leaks("check-config", &format!("{shown}{shown_err}"));

    let srv = TestServer::builder(&b)
        .with_auth()
        .env("RUST_LOG", "debug")
        .start()
        .await;
    let admin = srv.api().with_bearer(API_KEY);
    let body = clock_body();
    let id = id_of(&body);
    admin.create_started(&body).await;
    let mut answers = String::new();
    // Near misses of both secrets, a secret in the wrong place, and the
    // usual failures: none of it may echo a secret.
    for header in [
        format!("Bearer {API_KEY}x"),
        format!("Bearer {TOKEN_SECRET}"),
        format!("Basic {API_KEY}"),
        format!("Bearer {}.{API_KEY}.x", "eyJhbGciOiJIUzI1NiJ9"),
        format!(
            "Bearer {}",
            auth::sign(&json!({"sid": id, "role": "viewer"}), TOKEN_SECRET)
        ),
    ] {
        let api = srv.api().with_authorization(&header);
        for r in [
            api.get(&format!("/v1/sessions/{id}")).await,
            api.post(&format!("/v1/sessions/{id}/switch"), &json!({}))
                .await,
        ] {
            r.error(401, "UNAUTHORIZED");
            answers.push_str(&r.to_string());
        }
    }
    let viewer = srv
        .api()
        .with_bearer(&auth::token(&id, "viewer", None, 600));
    answers.push_str(
        &viewer
            .post_empty(&format!("/v1/sessions/{id}/pause"))
            .await
            .to_string(),
    );
    let url = srv.ws_url(&format!("?sessionId={id}&token={TOKEN_SECRET}"));
    let refused = WsClient::try_connect(&url, None).await;
    answers.push_str(&format!("{:?}", refused.err()));
    admin
        .post(
            &format!("/v1/sessions/{id}/tokens"),
            &json!({"role": "viewer"}),
        )
        .await
        .data(201);
    leaks("responses", &answers);
    // Whatever the server logged, with debug on.
    wait_until(
        Duration::from_secs(5),
        "the server logged something",
        || async { !srv.logs().is_empty() },
    )
    .await;
    leaks("the server's output", &srv.logs());
}

async fn gen_token_mints_a_token_the_server_accepts(b: Backend) {
    let srv = TestServer::builder(&b).with_auth().start().await;
    let admin = srv.api().with_bearer(API_KEY);
    let body = clock_body();
    let id = id_of(&body);
    admin.create_started(&body).await;
    let secret = [("TOKEN_SECRET", TOKEN_SECRET)];
    let within = Duration::from_secs(20);
    let args = [
        "gen-token",
        "--session-id",
        id.as_str(),
        "--role",
        "viewer",
        "--ttl-seconds",
        "60",
    ];
    let (status, out, err) = run_cli(&args, &secret, within).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "gen-token: {out} {err}"
    );
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "stdout is the token alone: {out:?}");
    assert!(err.contains("expires at"), "{err}");
    let viewer = srv.api().with_bearer(token);
    viewer.state(&id).await;
    viewer
        .post(&format!("/v1/sessions/{id}/switch"), &json!({}))
        .await
        .error(403, "FORBIDDEN");
    // A participant token needs its participant; a token needs a secret.
    let participant = [
        "gen-token",
        "--session-id",
        id.as_str(),
        "--role",
        "participant",
    ];
    let (status, _, err) = run_cli(&participant, &secret, within).await;
    assert!(
        !status.is_some_and(|s| s.success()) && err.contains("--participant-id"),
        "{err}"
    );
    let (status, _, err) = run_cli(&args, &[], within).await;
    assert!(
        !status.is_some_and(|s| s.success()) && err.contains("TOKEN_SECRET"),
        "{err}"
    );
    leaks_nothing(&err);
}

fn leaks_nothing(text: &str) {
    assert!(
        !text.contains(TOKEN_SECRET) && !text.contains(API_KEY),
        "{text}"
    );
}
