//! Every error code, and a battery of bad inputs that must each get the
//! documented 4xx while the server keeps serving.

use serde_json::{Value, json};
use synckairos_tests::*;

synckairos_tests::backend_suite! {
    create_validation_names_the_field,
    create_validation_required_fields,
    malformed_json_is_400,
    wrong_content_type_is_415,
    json_content_type_with_charset_is_accepted,
    oversized_body_is_413,
    unknown_fields_are_ignored,
    session_exists_is_409,
    unknown_session_is_404_everywhere,
    non_uuid_path_id_is_a_4xx,
    undecodable_path_id_gets_the_error_envelope,
    invalid_state_transitions_are_400_naming_the_status,
    expected_version_mismatch_is_409_and_changes_nothing,
    current_participant_mismatch_is_409_and_changes_nothing,
    switch_body_validation,
    boundary_values_are_accepted,
    unknown_routes_and_methods_are_4xx,
    fuzzed_bodies_get_201_or_a_named_400,
}

fn pp_body() -> Value {
    session_body("per_participant", &["a", "b"], 60_000)
}

fn group_body() -> Value {
    let mut b = session_body("per_group", &["a1", "b1"], 60_000);
    b["participants"][0]["group_id"] = json!("g1");
    b["participants"][1]["group_id"] = json!("g2");
    b
}

fn without(mut v: Value, key: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

fn with_p(mut v: Value, i: usize, key: &str, val: Value) -> Value {
    v["participants"][i][key] = val;
    v
}

/// (what, body, expected details.field)
fn create_cases() -> Vec<(&'static str, Value, &'static str)> {
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"participant_id": format!("p{i}")}))
        .collect();
    let big_meta = json!({"blob": "m".repeat(17 * 1024)});
    vec![
        (
            "session_id missing",
            without(pp_body(), "session_id"),
            "session_id",
        ),
        (
            "session_id not a uuid",
            with(pp_body(), "session_id", json!("not-a-uuid")),
            "session_id",
        ),
        (
            "session_id a number",
            with(pp_body(), "session_id", json!(123)),
            "session_id",
        ),
        (
            "sync_mode unknown",
            with(pp_body(), "sync_mode", json!("bogus")),
            "sync_mode",
        ),
        (
            "sync_mode missing",
            without(pp_body(), "sync_mode"),
            "sync_mode",
        ),
        (
            "sync_mode wrong type",
            with(pp_body(), "sync_mode", json!(1)),
            "sync_mode",
        ),
        (
            "participants missing",
            without(pp_body(), "participants"),
            "participants",
        ),
        (
            "participants empty",
            with(pp_body(), "participants", json!([])),
            "participants",
        ),
        (
            "participants not an array",
            with(pp_body(), "participants", json!("a,b")),
            "participants",
        ),
        (
            "1001 participants",
            with(pp_body(), "participants", Value::Array(many)),
            "participants",
        ),
        (
            "duplicate participant ids",
            with_p(pp_body(), 1, "participant_id", json!("a")),
            "participants",
        ),
        (
            "participant_id missing",
            with(
                pp_body(),
                "participants",
                json!([{"participant_id": "a"}, {"total_time_ms": 5000}]),
            ),
            "participants[1].participant_id",
        ),
        (
            "participant_id bad charset",
            with_p(pp_body(), 0, "participant_id", json!("bad id!")),
            "participants[0].participant_id",
        ),
        (
            "participant_id empty",
            with_p(pp_body(), 0, "participant_id", json!("")),
            "participants[0].participant_id",
        ),
        (
            "participant_id 129 chars",
            with_p(pp_body(), 0, "participant_id", json!("x".repeat(129))),
            "participants[0].participant_id",
        ),
        (
            "participant_id a number",
            with_p(pp_body(), 1, "participant_id", json!(5)),
            "participants[1].participant_id",
        ),
        (
            "participant bank too small",
            with_p(pp_body(), 1, "total_time_ms", json!(999)),
            "participants[1].total_time_ms",
        ),
        (
            "participant bank too big",
            with_p(pp_body(), 0, "total_time_ms", json!(86_400_001)),
            "participants[0].total_time_ms",
        ),
        (
            "participant bank a string",
            with_p(pp_body(), 0, "total_time_ms", json!("5000")),
            "participants[0].total_time_ms",
        ),
        (
            "participant_index negative",
            with_p(pp_body(), 0, "participant_index", json!(-1)),
            "participants[0].participant_index",
        ),
        (
            "participant_index a float",
            with_p(pp_body(), 1, "participant_index", json!(1.5)),
            "participants[1].participant_index",
        ),
        (
            "participant not an object",
            with(pp_body(), "participants", json!(["a", "b"])),
            "participants[0]",
        ),
        (
            "total_time_ms below 1000",
            with(pp_body(), "total_time_ms", json!(999)),
            "total_time_ms",
        ),
        (
            "total_time_ms above a day",
            with(pp_body(), "total_time_ms", json!(86_400_001)),
            "total_time_ms",
        ),
        (
            "total_time_ms negative",
            with(pp_body(), "total_time_ms", json!(-5)),
            "total_time_ms",
        ),
        (
            "total_time_ms fractional",
            with(pp_body(), "total_time_ms", json!(1500.5)),
            "total_time_ms",
        ),
        (
            "total_time_ms huge",
            with(pp_body(), "total_time_ms", json!(1e30)),
            "total_time_ms",
        ),
        (
            "total_time_ms beyond i64",
            with(pp_body(), "total_time_ms", json!(u64::MAX)),
            "total_time_ms",
        ),
        (
            "total_time_ms a string",
            with(pp_body(), "total_time_ms", json!("60000")),
            "total_time_ms",
        ),
        (
            "per_cycle without time_per_cycle_ms",
            without(
                session_body("per_cycle", &["a", "b"], 60_000),
                "time_per_cycle_ms",
            ),
            "time_per_cycle_ms",
        ),
        (
            "time_per_cycle_ms too small",
            with(
                session_body("per_cycle", &["a"], 60_000),
                "time_per_cycle_ms",
                json!(999),
            ),
            "time_per_cycle_ms",
        ),
        (
            "time_per_cycle_ms too big",
            with(
                session_body("per_cycle", &["a"], 60_000),
                "time_per_cycle_ms",
                json!(86_400_001),
            ),
            "time_per_cycle_ms",
        ),
        (
            "increment_ms above 60000",
            with(pp_body(), "increment_ms", json!(60_001)),
            "increment_ms",
        ),
        (
            "increment_ms negative",
            with(pp_body(), "increment_ms", json!(-1)),
            "increment_ms",
        ),
        (
            "max_time_ms below 1000",
            with(pp_body(), "max_time_ms", json!(999)),
            "max_time_ms",
        ),
        (
            "max_time_ms above a day",
            with(pp_body(), "max_time_ms", json!(86_400_001)),
            "max_time_ms",
        ),
        (
            "action type unknown",
            with(pp_body(), "action_on_timeout", json!({"type": "explode"})),
            "action_on_timeout.type",
        ),
        (
            "action not an object",
            with(pp_body(), "action_on_timeout", json!("end_session")),
            "action_on_timeout",
        ),
        (
            "auto_advance not a boolean",
            with(pp_body(), "auto_advance", json!("yes")),
            "auto_advance",
        ),
        (
            "metadata an array",
            with(pp_body(), "metadata", json!([1, 2])),
            "metadata",
        ),
        (
            "metadata a string",
            with(pp_body(), "metadata", json!("m")),
            "metadata",
        ),
        (
            "metadata over 16 KiB",
            with(pp_body(), "metadata", big_meta),
            "metadata",
        ),
        (
            "per_group member without group",
            without_group(),
            "participants[1].group_id",
        ),
        (
            "group_id bad charset",
            with_p(group_body(), 0, "group_id", json!("bad group")),
            "participants[0].group_id",
        ),
    ]
}

/// Required fields left out: API.md lists `total_time_ms` without
/// "optional", and `action_on_timeout` is `{type, ...}`.
fn required_field_cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "total_time_ms missing",
            without(pp_body(), "total_time_ms"),
            "total_time_ms",
        ),
        (
            "total_time_ms null",
            with(pp_body(), "total_time_ms", Value::Null),
            "total_time_ms",
        ),
        (
            "action type missing",
            with(pp_body(), "action_on_timeout", json!({"action": "x"})),
            "action_on_timeout.type",
        ),
    ]
}

fn without_group() -> Value {
    let mut b = group_body();
    if let Some(p) = b["participants"][1].as_object_mut() {
        p.remove("group_id");
    }
    b
}

/// Posts every case, then fails once listing all that did not get a 400
/// `VALIDATION_ERROR` naming the expected field (or that created a session).
async fn expect_validation_errors(api: &Api, cases: Vec<(&'static str, Value, &'static str)>) {
    let mut wrong = Vec::new();
    for (what, body, field) in cases {
        let r = api.post("/v1/sessions", &body).await;
        let ok = r.status == 400
            && r.body["error"]["code"] == "VALIDATION_ERROR"
            && r.body["error"]["message"].is_string()
            && r.body["error"]["details"]["field"] == field;
        if !ok {
            wrong.push(format!(
                "{what} (want 400 VALIDATION_ERROR field {field}): {r}"
            ));
            continue;
        }
        r.error(400, "VALIDATION_ERROR");
        // Nothing was created.
        if let Some(id) = body["session_id"]
            .as_str()
            .filter(|s| uuid::Uuid::parse_str(s).is_ok())
        {
            api.get(&format!("/v1/sessions/{id}"))
                .await
                .error(404, "SESSION_NOT_FOUND");
        }
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

async fn create_validation_required_fields(b: Backend) {
    let srv = TestServer::start(&b).await;
    expect_validation_errors(srv.api(), required_field_cases()).await;
}

async fn create_validation_names_the_field(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    expect_validation_errors(api, create_cases()).await;
    // Bodies that are not objects at all.
    for raw in ["[]", "null", "42", "\"session\""] {
        let r = api
            .post_raw(
                "/v1/sessions",
                Some("application/json"),
                raw.as_bytes().to_vec(),
            )
            .await;
        r.error(400, "VALIDATION_ERROR");
    }
    // Duplicate participant_index: the participants are named, whatever the path.
    let dup = with_p(pp_body(), 1, "participant_index", json!(0));
    let dup = with_p(dup, 0, "participant_index", json!(0));
    let r = api.post("/v1/sessions", &dup).await;
    let err = r.error(400, "VALIDATION_ERROR");
    let field = err["details"]["field"].as_str().unwrap_or_default();
    assert!(
        field.starts_with("participants"),
        "duplicate index names participants: {r}"
    );
    // And the server keeps serving.
    api.create(&pp_body()).await;
    api.get("/health").await.expect_status(200);
}

async fn malformed_json_is_400(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    for raw in [
        "{\"session_id\": ",
        "{]",
        "{}x",
        "",
        "{'a': 1}",
        "{\"a\":1,}",
    ] {
        let r = api
            .post_raw(
                "/v1/sessions",
                Some("application/json"),
                raw.as_bytes().to_vec(),
            )
            .await;
        r.error(400, "VALIDATION_ERROR");
    }
    let r = api
        .post_raw(
            "/v1/sessions",
            Some("application/json"),
            vec![0xff, 0xfe, 0x00, 0x7b],
        )
        .await;
    r.error(400, "VALIDATION_ERROR");
    let body = pp_body();
    let id = id_of(&body);
    api.create_started(&body).await;
    let r = api
        .post_raw(
            &format!("/v1/sessions/{id}/switch"),
            Some("application/json"),
            b"{\"expected_version\":".to_vec(),
        )
        .await;
    r.error(400, "VALIDATION_ERROR");
    assert_eq!(
        api.state(&id).await["version"],
        2,
        "a rejected switch changes nothing"
    );
    api.create(&pp_body()).await;
}

async fn wrong_content_type_is_415(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = pp_body();
    let bytes = body.to_string().into_bytes();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/xml"),
        None,
    ] {
        let r = api.post_raw("/v1/sessions", ct, bytes.clone()).await;
        assert_eq!(r.status, 415, "content type {ct:?}: {r}");
        let code = r.body["error"]["code"].as_str().unwrap_or_default();
        assert!(!code.is_empty(), "415 uses the error envelope: {r}");
    }
    api.get(&format!("/v1/sessions/{}", id_of(&body)))
        .await
        .error(404, "SESSION_NOT_FOUND");
    let id = id_of(&body);
    api.create_started(&body).await;
    let r = api
        .post_raw(
            &format!("/v1/sessions/{id}/switch"),
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
    r.expect_status(415);
    assert_eq!(api.state(&id).await["version"], 2);
}

async fn json_content_type_with_charset_is_accepted(b: Backend) {
    let srv = TestServer::start(&b).await;
    // Media types are case-insensitive.
    let r = srv
        .api()
        .post_raw(
            "/v1/sessions",
            Some("Application/JSON"),
            pp_body().to_string().into_bytes(),
        )
        .await;
    check_state(r.data(201));
    let body = pp_body();
    let r = srv
        .api()
        .post_raw(
            "/v1/sessions",
            Some("application/json; charset=utf-8"),
            body.to_string().into_bytes(),
        )
        .await;
    check_state(r.data(201));
}

async fn oversized_body_is_413(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut body = pp_body();
    body["metadata"] = json!({"blob": "z".repeat(2 << 20)});
    let r = api
        .post_raw_streaming(
            "/v1/sessions",
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status, 413, "{r}");
    let code = r.body["error"]["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "413 uses the error envelope: {r}");
    api.get(&format!("/v1/sessions/{}", id_of(&body)))
        .await
        .error(404, "SESSION_NOT_FOUND");
    // Just under 1 MiB is read and judged on its content: metadata too big.
    body["metadata"] = json!({"blob": "z".repeat((1 << 20) - 4096)});
    api.post("/v1/sessions", &body).await.validation("metadata");
    // Oversized switch bodies too.
    let ok = pp_body();
    let id = id_of(&ok);
    api.create_started(&ok).await;
    let pad = json!({"pad": "p".repeat(2 << 20)}).to_string().into_bytes();
    let r = api
        .post_raw_streaming(
            &format!("/v1/sessions/{id}/switch"),
            "application/json",
            pad,
        )
        .await;
    assert_eq!(r.status, 413, "{r}");
    assert_eq!(api.state(&id).await["version"], 2);
}

async fn unknown_fields_are_ignored(b: Backend) {
    let srv = TestServer::start(&b).await;
    let mut body = pp_body();
    body["favourite_colour"] = json!("blue");
    body["participants"][0]["nickname"] = json!("al");
    let id = id_of(&body);
    let s = srv.api().create(&body).await;
    assert!(s.get("favourite_colour").is_none());
    srv.api().act(&id, "start").await;
    let r = srv.api().switch(&id, &json!({"whatever": [1, 2]})).await;
    assert_eq!(r["active_participant_id"], "b");
}

async fn session_exists_is_409(b: Backend) {
    let srv = TestServer::start(&b).await;
    let body = pp_body();
    let id = id_of(&body);
    srv.api().create_started(&body).await;
    let mut again = session_body("global", &["x"], 5000);
    again["session_id"] = json!(id);
    srv.api()
        .post("/v1/sessions", &again)
        .await
        .error(409, "SESSION_EXISTS");
    let s = srv.api().state(&id).await;
    assert_eq!(s["version"], 2, "the live session is untouched");
    assert_eq!(s["sync_mode"], "per_participant");
}

async fn unknown_session_is_404_everywhere(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let id = new_id();
    api.get(&format!("/v1/sessions/{id}"))
        .await
        .error(404, "SESSION_NOT_FOUND");
    for verb in ["start", "pause", "resume", "complete", "cancel", "switch"] {
        api.post_empty(&format!("/v1/sessions/{id}/{verb}"))
            .await
            .error(404, "SESSION_NOT_FOUND");
    }
    api.post(
        &format!("/v1/sessions/{id}/switch"),
        &json!({"expected_version": 1}),
    )
    .await
    .error(404, "SESSION_NOT_FOUND");
}

async fn non_uuid_path_id_is_a_4xx(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    for path in [
        "/v1/sessions/not-a-uuid".to_string(),
        "/v1/sessions/12345/start".to_string(),
        format!("/v1/sessions/{}/pause", "9".repeat(300)),
    ] {
        let r = if path.ends_with("switch") || path.ends_with("start") || path.ends_with("pause") {
            api.post_empty(&path).await
        } else {
            api.get(&path).await
        };
        // Either reading is careful: the id is invalid (400) or names no
        // session (404); both with the error envelope.
        match r.status {
            400 => {
                r.error(400, "VALIDATION_ERROR");
            }
            404 => {
                r.error(404, "SESSION_NOT_FOUND");
            }
            _ => panic!("non-uuid id: expected 400 or 404: {r}"),
        }
    }
    api.delete("/v1/sessions/nope").await;
    api.get("/health").await.expect_status(200);
}

async fn undecodable_path_id_gets_the_error_envelope(b: Backend) {
    let srv = TestServer::start(&b).await;
    for path in [
        "/v1/sessions/%00%ff/switch",
        "/v1/sessions/%ff",
        "/v1/sessions/%c3%28/start",
    ] {
        let r = if path.ends_with("%ff") {
            srv.api().get(path).await
        } else {
            srv.api().post_empty(path).await
        };
        match r.status {
            400 => r.error(400, "VALIDATION_ERROR"),
            _ => r.error(404, "SESSION_NOT_FOUND"),
        };
    }
    srv.api().get("/health").await.expect_status(200);
}

async fn assert_transition_refused(api: &Api, id: &str, verb: &str, status: &str) {
    let before = api.state(id).await;
    let r = api.post_empty(&format!("/v1/sessions/{id}/{verb}")).await;
    let err = r.error(400, "INVALID_STATE_TRANSITION");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(status),
        "{verb} on {status}: message names the status: {r}"
    );
    let after = api.state(id).await;
    assert_eq!(
        after["version"], before["version"],
        "{verb} on {status} changed nothing"
    );
}

async fn invalid_state_transitions_are_400_naming_the_status(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = pp_body();
    let id = id_of(&body);
    api.create(&body).await;
    for verb in ["switch", "pause", "resume"] {
        assert_transition_refused(api, &id, verb, "pending").await;
    }
    api.act(&id, "start").await;
    for verb in ["start", "resume"] {
        assert_transition_refused(api, &id, verb, "running").await;
    }
    api.act(&id, "pause").await;
    for verb in ["start", "pause", "switch"] {
        assert_transition_refused(api, &id, verb, "paused").await;
    }
    api.act(&id, "complete").await;
    for verb in ["start", "switch", "pause", "resume", "complete", "cancel"] {
        assert_transition_refused(api, &id, verb, "completed").await;
    }
    let body = pp_body();
    let id = id_of(&body);
    api.create_started(&body).await;
    api.act(&id, "cancel").await;
    for verb in ["start", "switch", "pause", "resume", "complete", "cancel"] {
        assert_transition_refused(api, &id, verb, "cancelled").await;
    }
    // Delete still works on a terminal session.
    api.delete(&format!("/v1/sessions/{id}"))
        .await
        .expect_status(204);
}

async fn expected_version_mismatch_is_409_and_changes_nothing(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = pp_body();
    let id = id_of(&body);
    api.create_started(&body).await;
    let (mut ws, _) = srv.ws_synced(&id).await;
    for stale in [1, 3, 99] {
        api.post(
            &format!("/v1/sessions/{id}/switch"),
            &json!({"expected_version": stale}),
        )
        .await
        .error(409, "CONFLICT");
    }
    let s = api.state(&id).await;
    assert_eq!(
        (s["version"].clone(), s["active_participant_id"].clone()),
        (json!(2), json!("a"))
    );
    let r = api.switch(&id, &json!({"expected_version": 2})).await;
    assert_eq!(r["version"], 3);
    // The refused switches produced no update: the first one is version 3.
    let up = ws.expect_type("STATE_UPDATE").await;
    assert_eq!(up["state"]["version"], 3);
}

async fn current_participant_mismatch_is_409_and_changes_nothing(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = pp_body();
    let id = id_of(&body);
    api.create_started(&body).await;
    for who in ["b", "nobody"] {
        api.post(
            &format!("/v1/sessions/{id}/switch"),
            &json!({"current_participant_id": who}),
        )
        .await
        .error(409, "CONFLICT");
    }
    api.post(
        &format!("/v1/sessions/{id}/switch"),
        &json!({"current_participant_id": "a", "expected_version": 1}),
    )
    .await
    .error(409, "CONFLICT");
    assert_eq!(api.state(&id).await["version"], 2);
    let r = api
        .switch(
            &id,
            &json!({"current_participant_id": "a", "expected_version": 2}),
        )
        .await;
    assert_eq!(r["active_participant_id"], "b");
}

async fn switch_body_validation(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = session_body("per_participant", &["a", "b", "c"], 60_000);
    let id = id_of(&body);
    api.create_started(&body).await;
    let path = format!("/v1/sessions/{id}/switch");
    let cases = [
        (json!({"next_participant_id": "zed"}), "next_participant_id"),
        (json!({"next_participant_id": 5}), "next_participant_id"),
        (json!({"expected_version": "two"}), "expected_version"),
        (json!({"expected_version": 2.5}), "expected_version"),
        (
            json!({"current_participant_id": 1}),
            "current_participant_id",
        ),
    ];
    for (req, field) in cases {
        api.post(&path, &req).await.validation(field);
    }
    for raw in ["[]", "7", "\"x\""] {
        api.post_raw(&path, Some("application/json"), raw.as_bytes().to_vec())
            .await
            .error(400, "VALIDATION_ERROR");
    }
    assert_eq!(
        api.state(&id).await["version"],
        2,
        "refused switches changed nothing"
    );
    let r = api.switch(&id, &json!({"next_participant_id": "c"})).await;
    assert_eq!(r["active_participant_id"], "c");
}

async fn boundary_values_are_accepted(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    // Smallest and largest allowed numbers.
    let mut lo = session_body("per_cycle", &["a"], 1000);
    lo["time_per_cycle_ms"] = json!(1000);
    lo["increment_ms"] = json!(0);
    lo["max_time_ms"] = json!(1000);
    api.create(&lo).await;
    let mut hi = session_body("per_cycle", &["a"], 86_400_000);
    hi["time_per_cycle_ms"] = json!(86_400_000);
    hi["increment_ms"] = json!(60_000);
    hi["max_time_ms"] = json!(86_400_000);
    api.create(&hi).await;
    // The longest id in every allowed character class.
    let long_id = format!("{}._:@-", "Az9".repeat(41));
    assert_eq!(long_id.len(), 128);
    let s = api
        .create(&session_body("per_participant", &[&long_id, "b"], 60_000))
        .await;
    assert_eq!(s["participants"][0]["participant_id"], long_id.as_str());
    // 1000 participants, and the rotation works over them.
    let ids: Vec<String> = (0..1000).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let many = session_body("per_participant", &refs, 60_000);
    let many_id = id_of(&many);
    let s = api.create_started(&many).await;
    assert_eq!(s["participants"].as_array().map(Vec::len), Some(1000));
    let r = api
        .switch(&many_id, &json!({"next_participant_id": "p999"}))
        .await;
    assert_eq!(r["active_participant_id"], "p999");
    let r = api.switch(&many_id, &json!({})).await;
    assert_eq!(r["active_participant_id"], "p0", "wraps around");
    // Metadata of exactly 16 KiB serialized is allowed; one byte more is not.
    let mut m = pp_body();
    let blob = "m".repeat(16 * 1024 - 10);
    m["metadata"] = json!({"b": blob});
    assert_eq!(m["metadata"].to_string().len(), 16 * 1024 - 2);
    api.create(&m).await;
    let mut m = pp_body();
    m["metadata"] = json!({"b": format!("{blob}xxx")});
    assert_eq!(m["metadata"].to_string().len(), 16 * 1024 + 1);
    api.post("/v1/sessions", &m).await.validation("metadata");
}

async fn unknown_routes_and_methods_are_4xx(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let body = pp_body();
    let id = id_of(&body);
    api.create(&body).await;
    let rs = [
        api.get("/v1/nothing-here").await,
        api.get(&format!("/v1/sessions/{id}/start")).await,
        api.delete("/v1/sessions").await,
        api.post_empty(&format!("/v1/sessions/{id}/explode")).await,
        api.post_empty("/health").await,
    ];
    for r in &rs {
        assert!((400..500).contains(&r.status), "a 4xx expected: {r}");
    }
    assert_eq!(api.state(&id).await["version"], 1);
}

/// Values of every JSON type and awkward size.
fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e20),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(""),
        json!("x"),
        json!("é\u{0}\u{202e}🙂"),
        json!("9".repeat(300)),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"type": "end_session"}),
    ]
}

/// Paths of every value inside `v` (object keys and array indexes).
fn leaf_paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let mut p = prefix.clone();
                p.push(k.clone());
                out.push(p.clone());
                leaf_paths(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                out.push(p.clone());
                leaf_paths(x, p, out);
            }
        }
        _ => {}
    }
}

/// The value at `path`, if an earlier mutation has not removed its parent.
fn slot<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |node, k| match node {
        Value::Array(a) => k.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
        Value::Object(o) => o.get_mut(k.as_str()),
        _ => None,
    })
}

fn int_in(v: &Value, lo: i64, hi: i64) -> bool {
    v.as_i64().is_some_and(|n| (lo..=hi).contains(&n))
}

/// Whether the contract requires refusing a body where the value at `path`
/// became `new` (`None`: the key was deleted). `false` means "may accept".
fn must_refuse(path: &[String], new: Option<&Value>) -> bool {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let Some(v) = new else {
        // Required keys (the base body is per_group, so group_id too).
        return matches!(
            p.as_slice(),
            ["session_id"]
                | ["sync_mode"]
                | ["participants"]
                | ["total_time_ms"]
                | ["participants", _]
                | ["participants", _, "participant_id"]
                | ["participants", _, "group_id"]
                | ["action_on_timeout", "type"]
        );
    };
    let day = 86_400_000;
    let id_ok = |v: &Value| {
        v.as_str().is_some_and(|s| {
            (1..=128).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_:@".contains(c))
        })
    };
    match p.as_slice() {
        ["session_id"] => v.as_str().is_none_or(|s| uuid::Uuid::parse_str(s).is_err()),
        ["sync_mode"] => v != "per_group",
        ["participants"] | ["participants", _] => true,
        ["action_on_timeout", "type"] => !matches!(
            v.as_str(),
            Some("end_session" | "skip_cycle" | "auto_action")
        ),
        ["total_time_ms"] => !int_in(v, 1000, day),
        ["participants", _, "participant_id"] | ["participants", _, "group_id"] => !id_ok(v),
        _ if v.is_null() => false,
        ["participants", _, "total_time_ms"] | ["max_time_ms"] | ["time_per_cycle_ms"] => {
            !int_in(v, 1000, day)
        }
        ["increment_ms"] => !int_in(v, 0, 60_000),
        ["participants", _, "participant_index"] => !int_in(v, 0, i64::from(u32::MAX)),
        ["auto_advance"] => !v.is_boolean(),
        ["metadata"] => !v.is_object(),
        ["action_on_timeout"] => v["type"].as_str().is_none(),
        _ => false,
    }
}

async fn fuzzed_bodies_get_201_or_a_named_400(b: Backend) {
    let srv = TestServer::start(&b).await;
    let api = srv.api();
    let mut seed: u64 = std::env::var("SYNCKAIROS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(7)
        });
    eprintln!("fuzzed_bodies: SYNCKAIROS_TEST_SEED={seed}");
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let odd = odd_values();
    let mut base = group_body();
    base["increment_ms"] = json!(1000);
    base["max_time_ms"] = json!(90_000);
    base["action_on_timeout"] = json!({"type": "skip_cycle", "extra": 1});
    base["metadata"] = json!({"k": [1, 2]});
    let mut paths = Vec::new();
    leaf_paths(&base, Vec::new(), &mut paths);
    let (mut created, mut refused) = (0, 0);
    for _ in 0..150 {
        let mut body = base.clone();
        body["session_id"] = json!(new_id());
        // One to three mutations: replace a value, or delete a key.
        let mut touched = Vec::new();
        for _ in 0..1 + next(3) {
            let path = &paths[next(paths.len())];
            if path[0] == "session_id" && next(4) > 0 {
                continue;
            }
            if next(5) == 0 {
                let (last, parent) = path.split_last().unwrap_or_else(|| panic!("empty path"));
                let removed = slot(&mut body, parent)
                    .and_then(Value::as_object_mut)
                    .and_then(|o| o.remove(last));
                if removed.is_some() {
                    touched.push(path.clone());
                }
            } else if let Some(v) = slot(&mut body, path) {
                *v = odd[next(odd.len())].clone();
                touched.push(path.clone());
            }
        }
        // Judge the final body at every touched path whose parent survived
        // (a replaced or deleted ancestor is judged at its own path).
        let refuse = touched.iter().any(|path| {
            let parent = &path[..path.len() - 1];
            let mut probe = body.clone();
            slot(&mut probe, parent).is_some_and(|p| p.is_object() || p.is_array())
                && must_refuse(path, slot(&mut probe, path).map(|v| &*v))
        });
        let r = api.post("/v1/sessions", &body).await;
        match r.status {
            201 => {
                assert!(
                    !refuse,
                    "the contract requires refusing this body (touched {touched:?}): {body} -> {}",
                    r.status
                );
                check_state(r.data(201));
                created += 1;
            }
            400 => {
                let err = r.error(400, "VALIDATION_ERROR");
                let field = err["details"]["field"].as_str().unwrap_or_default();
                assert!(!field.is_empty(), "a 400 names the field: {r}");
                refused += 1;
            }
            _ => panic!("fuzzed body must get 201 or 400: {r}"),
        }
    }
    eprintln!("fuzzed_bodies: {created} created, {refused} refused");
    assert!(refused > 0, "the mutations reach the validator");
    api.get("/health").await.expect_status(200);
    api.create(&pp_body()).await;
}
