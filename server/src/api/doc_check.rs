//! Checks that keep the OpenAPI document true to the server, where the
//! code can say what is true: the routes served, the required fields and
//! the bounds of the request bodies. Each test reads the generated document
//! and asks the router or the parser, so a change to either that is not
//! reflected in the other fails here.

use super::body::from_value;
use super::requests::SwitchBody;
use super::{ApiDoc, AppInner, AppState, api_routes, router};
use crate::domain::{CreateSpec, FieldError};
use crate::engine::memory::MemoryEngine;
use crate::metrics::Metrics;
use crate::service::{Service, ServiceConfig};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use utoipa::OpenApi;

fn doc() -> Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
}

fn schema(doc: &Value, name: &str) -> Value {
    let s = doc["components"]["schemas"][name].clone();
    assert!(s.is_object(), "schema {name} is in components");
    s
}

fn app() -> AppState {
    let metrics = Arc::new(Metrics::new());
    AppState::new(AppInner {
        service: Service::new(
            Arc::new(MemoryEngine::new(None)),
            metrics.clone(),
            ServiceConfig::default(),
        ),
        metrics,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
        history: None,
        ws_ping_interval: Duration::from_secs(30),
        ws_limits: crate::api::ws::WsLimits::default(),
        rate_limits: crate::limits::RateLimits::new(Default::default()),
        request_timeout: Duration::from_secs(10),
        demo: crate::api::demo_sessions::DemoSessions::off(false),
        auth: Arc::new(crate::auth::Auth::off()),
    })
}

/// Sends `method path` with no body through the router (`{id}` filled with
/// a session id) and returns the status and the JSON body (null if none).
async fn send_empty(app: &AppState, method: &Method, path: &str) -> (StatusCode, Value) {
    let uri = path.replace("{id}", "550e8400-e29b-41d4-a716-446655440000");
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = router(app.clone()).oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Whether the router has a handler for `method` on `path` (neither a 405
/// nor the fallback's 404 `NOT_FOUND`).
async fn served(app: &AppState, method: &Method, path: &str) -> bool {
    let (status, body) = send_empty(app, method, path).await;
    let code = &body["error"]["code"];
    status != StatusCode::METHOD_NOT_ALLOWED
        && !(status == StatusCode::NOT_FOUND && code == "NOT_FOUND")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = doc();
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed: BTreeSet<&str> = api_routes().into_iter().map(|(p, _)| p).collect();
    assert_eq!(documented, routed, "OpenAPI paths vs the router's routes");
    let app = app();
    for (path, item) in paths {
        for op in METHODS.iter().filter_map(|m| item.get(*m)) {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: BTreeSet<String> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(|n| format!("{{{n}}}")))
                .collect();
            let template: BTreeSet<String> = path
                .split('/')
                .filter(|s| s.starts_with('{'))
                .map(String::from)
                .collect();
            assert_eq!(in_path, template, "{path}: path parameters");
        }
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
            assert_eq!(
                item.get(m).is_some(),
                served(&app, &method, path).await,
                "{m} {path}: documented vs served"
            );
        }
    }
}

/// What the server does with a request that has no body, for every
/// documented request body: `required` means a 400 naming `body`.
#[tokio::test]
async fn request_bodies_are_required_exactly_when_documented() {
    let doc = doc();
    let app = app();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (m, op) in item.as_object().expect("item") {
            let Some(rb) = op.get("requestBody") else {
                continue;
            };
            seen += 1;
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
            let (status, err) = send_empty(&app, &method, path).await;
            let refused =
                status == StatusCode::BAD_REQUEST && err["error"]["details"]["field"] == "body";
            assert_eq!(
                rb["required"] == true,
                refused,
                "{m} {path}: documented required vs an absent body ({status} {err})"
            );
        }
    }
    assert_eq!(seen, 3, "create, switch and tokens document their bodies");
}

/// A create body that sets every documented field to a valid value.
fn full_create_body() -> Value {
    json!({
        "session_id": "550e8400-e29b-41d4-a716-446655440000",
        "sync_mode": "per_participant",
        "participants": [{
            "participant_id": "a", "participant_index": 0, "group_id": "g",
            "total_time_ms": 5000
        }],
        "total_time_ms": 60000,
        "time_per_cycle_ms": 10000,
        "increment_ms": 1000,
        "max_time_ms": 90000,
        "action_on_timeout": {"type": "end_session"},
        "auto_advance": false,
        "metadata": {"k": 1}
    })
}

fn create(body: &Value) -> Result<(), FieldError> {
    CreateSpec::from_json(body).map(|_| ())
}

fn switch(body: &Value) -> Result<(), FieldError> {
    from_value::<SwitchBody>(body).map(|_| ())
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The required list of an object schema, through `allOf` (what a
/// `#[serde(flatten)]` field turns the schema into).
fn required_of(s: &Value) -> BTreeSet<String> {
    let mut out = strings(&s["required"]);
    for sub in s["allOf"].as_array().into_iter().flatten() {
        out.extend(strings(&sub["required"]));
    }
    out
}

/// The fields of the object at `ptr` in `body` whose absence the parser
/// refuses with `is required`; also checks that `null` is the same as
/// absent, and that the optional fields accept `null`.
fn required_by_parser(
    body: &Value,
    ptr: &str,
    prefix: &str,
    check: fn(&Value) -> Result<(), FieldError>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in keys(body.pointer(ptr).expect("object")) {
        let mut without = body.clone();
        if let Some(o) = without.pointer_mut(ptr).and_then(Value::as_object_mut) {
            o.remove(&k);
        }
        let mut null = body.clone();
        if let Some(v) = null.pointer_mut(&format!("{ptr}/{k}")) {
            *v = Value::Null;
        }
        let field = format!("{prefix}{k}");
        match check(&without) {
            Ok(()) => assert!(
                check(&null).is_ok(),
                "{field}: optional, so null is accepted"
            ),
            Err(e) => {
                assert_eq!(e, FieldError::new(&field, "is required"), "{field} absent");
                assert_eq!(check(&null), Err(e), "{field}: null is the same as absent");
                out.insert(k);
            }
        }
    }
    out
}

#[test]
fn required_lists_are_what_the_parser_requires() {
    let doc = doc();
    let body = full_create_body();
    assert!(create(&body).is_ok(), "the full body is valid");
    for (name, ptr, prefix) in [
        ("CreateSessionBody", "", ""),
        (
            "CreateParticipantBody",
            "/participants/0",
            "participants[0].",
        ),
        (
            "TimeoutActionBody",
            "/action_on_timeout",
            "action_on_timeout.",
        ),
    ] {
        let s = schema(&doc, name);
        let object = body.pointer(ptr).expect("object");
        if name != "TimeoutActionBody" {
            assert_eq!(
                keys(&s["properties"]),
                keys(object),
                "{name}: every field set"
            );
        }
        assert_eq!(
            required_of(&s),
            required_by_parser(&body, ptr, prefix, create),
            "{name}: documented required list vs the parser"
        );
    }
    let s = schema(&doc, "SwitchBody");
    let switch_body =
        json!({"next_participant_id": "a", "expected_version": 1, "current_participant_id": "a"});
    assert_eq!(keys(&s["properties"]), keys(&switch_body));
    assert!(strings(&s["required"]).is_empty());
    assert!(required_by_parser(&switch_body, "", "", switch).is_empty());
}

/// A property's schema with its nullable `oneOf`/`anyOf` wrapper, if any,
/// looked through.
fn facets(p: &Value) -> Value {
    for k in ["oneOf", "anyOf"] {
        if let Some(alts) = p[k].as_array() {
            let mut merged = p.clone();
            for a in alts.iter().filter(|a| a["type"] != "null") {
                if let (Some(m), Some(a)) = (merged.as_object_mut(), a.as_object()) {
                    m.extend(a.clone());
                }
            }
            return merged;
        }
    }
    p.clone()
}

/// Sets `body[ptr]/key` to each documented bound and one step past it: the
/// bound is accepted, the step past refused naming `field`.
fn check_bounds(
    name: &str,
    props: &Value,
    body: &Value,
    ptr: &str,
    prefix: &str,
    check: fn(&Value) -> Result<(), FieldError>,
) -> usize {
    let mut checked = 0;
    for (k, p) in props.as_object().expect("properties") {
        let p = facets(p);
        let field = format!("{prefix}{k}");
        let at = format!("{ptr}/{k}");
        let mut cases: Vec<(Value, bool)> = Vec::new();
        if let Some(lo) = p["minimum"].as_i64() {
            cases.extend([(json!(lo), true), (json!(lo - 1), false)]);
        }
        if let Some(hi) = p["maximum"].as_i64() {
            cases.extend([(json!(hi), true), (json!(hi + 1), false)]);
        }
        if let Some(n) = p["minLength"].as_u64() {
            cases.push((json!("a".repeat(n as usize)), true));
            if n > 0 {
                cases.push((json!("a".repeat(n as usize - 1)), false));
            }
        }
        if let Some(n) = p["maxLength"].as_u64() {
            cases.extend([
                (json!("a".repeat(n as usize)), true),
                (json!("a".repeat(n as usize + 1)), false),
            ]);
        }
        let items = |n: u64| -> Value {
            (0..n)
                .map(|i| json!({"participant_id": format!("p{i}")}))
                .collect()
        };
        if let Some(n) = p["minItems"].as_u64() {
            cases.push((items(n), true));
            if n > 0 {
                cases.push((items(n - 1), false));
            }
        }
        if let Some(n) = p["maxItems"].as_u64() {
            cases.extend([(items(n), true), (items(n + 1), false)]);
        }
        for (value, ok) in cases {
            let mut b = body.clone();
            *b.pointer_mut(&at).expect("field set in the body") = value.clone();
            match check(&b) {
                Ok(()) => assert!(
                    ok,
                    "{name}.{k} = {value}: documented as out of bounds, accepted"
                ),
                Err(e) => {
                    assert!(
                        !ok,
                        "{name}.{k} = {value}: documented as in bounds, refused: {e:?}"
                    );
                    assert_eq!(
                        e.field, field,
                        "{name}.{k} = {value}: the error names the field"
                    );
                }
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn documented_bounds_are_the_bounds_the_server_enforces() {
    let doc = doc();
    let body = full_create_body();
    let mut checked = 0;
    for (name, ptr, prefix) in [
        ("CreateSessionBody", "", ""),
        (
            "CreateParticipantBody",
            "/participants/0",
            "participants[0].",
        ),
    ] {
        let s = schema(&doc, name);
        checked += check_bounds(name, &s["properties"], &body, ptr, prefix, create);
    }
    let s = schema(&doc, "SwitchBody");
    let switch_body =
        json!({"next_participant_id": "a", "expected_version": 1, "current_participant_id": "a"});
    checked += check_bounds("SwitchBody", &s["properties"], &switch_body, "", "", switch);
    // 5 create numbers, 2 participant numbers, 2 id lengths, participants'
    // items, 3 switch fields: each with two bounds of two cases.
    assert!(checked >= 40, "bounds are documented ({checked} cases)");
}

#[test]
fn events_document_their_page_and_errors() {
    let doc = doc();
    let op = &doc["paths"]["/v1/sessions/{id}/events"]["get"];
    let ok = &op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(ok, "#/components/schemas/EventsPage");
    let page = schema(&doc, "EventsPage");
    assert_eq!(
        page["properties"]["data"]["items"]["$ref"],
        "#/components/schemas/AuditEvent"
    );
    assert!(page["properties"]["next_cursor"].is_object());
    schema(&doc, "AuditEvent");
    for code in ["400", "503"] {
        assert!(op["responses"][code].is_object(), "events documents {code}");
    }
}

/// The events endpoint documents only JSON error bodies: a query string
/// serde cannot read (a parameter given twice) is a JSON 400 naming it, not
/// axum's plain-text rejection (found by schemathesis' coverage phase).
#[tokio::test]
async fn an_unreadable_events_query_is_a_json_400_naming_the_parameter() {
    let uri = "/v1/sessions/550e8400-e29b-41d4-a716-446655440000/events?limit=1&limit=2";
    let req = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let resp = router(app()).oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let err: Value = serde_json::from_slice(&body).expect("a JSON error body");
    assert_eq!(err["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(err["error"]["details"]["field"], "limit");
}

/// The document's `if`/`then` mode rules on the create body name the modes
/// and the fields the parser requires in them.
#[test]
fn create_mode_rules_match_the_parser() {
    let body = schema(&doc(), "CreateSessionBody");
    let base = json!({
        "session_id": "550e8400-e29b-41d4-a716-446655440000",
        "total_time_ms": 60000,
        "participants": [{"participant_id": "a"}]
    });
    let rules = [
        (&body["if"], &body["then"]),
        (&body["else"]["if"], &body["else"]["then"]),
    ];
    let mut seen = BTreeSet::new();
    for (cond, then) in rules {
        let mode = cond["properties"]["sync_mode"]["const"]
            .as_str()
            .expect("a mode const");
        let mut v = base.clone();
        v["sync_mode"] = json!(mode);
        let field = CreateSpec::from_json(&v).expect_err("refused without the mode's field");
        let documented = match mode {
            "per_cycle" => then["required"][0].clone(),
            _ => json!(format!(
                "participants[0].{}",
                then["properties"]["participants"]["items"]["required"][0]
                    .as_str()
                    .unwrap_or_default()
            )),
        };
        assert_eq!(json!(field.field), documented, "{mode}");
        seen.insert(mode);
    }
    assert_eq!(seen, BTreeSet::from(["per_cycle", "per_group"]));
}
