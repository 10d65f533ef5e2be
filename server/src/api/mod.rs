//! The HTTP surface: REST, WebSocket, time/health/ready/metrics and the
//! OpenAPI document generated from the handlers' annotations.
//!
//! - [`requests`]: the typed request bodies (one definition for parsing and
//!   for the document); [`body`]: the extractor that reads them.
//! - [`sessions`], [`tokens`], [`system`], [`ws`], [`demo`], [`demo_sessions`]: the handlers.
//! - [`auth`]: authentication middleware and the `Caller` extractor
//!   (the rules themselves are `crate::auth`).
//! - [`error`]: where every lower layer's typed error becomes a response,
//!   and the middleware that logs it.
//!
//! api sits on top: it calls the service (use cases) and the audit trail's
//! typed reader, and nothing below it knows HTTP.

pub mod auth;
pub mod body;
pub mod demo;
pub mod demo_sessions;
#[cfg(test)]
mod doc_check;
pub mod error;
pub mod requests;
pub mod sessions;
pub mod system;
pub mod tokens;
pub mod ws;

use crate::audit::History;
use crate::auth::Auth;
use crate::limits::{RateKey, RateLimits, client_address};
use crate::metrics::Metrics;
use crate::service::Service;
use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use error::ApiError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a handler needs; cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl AppState {
    /// Wraps the shared state.
    pub fn new(inner: AppInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The fields behind [`AppState`].
pub struct AppInner {
    /// Use cases.
    pub service: Arc<Service>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Cancelled on SIGTERM: WebSockets close with 1001.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket tasks so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    /// Audit history, when configured.
    pub history: Option<Arc<dyn History>>,
    /// How often WebSocket clients are pinged.
    pub ws_ping_interval: Duration,
    /// The WebSocket limits.
    pub ws_limits: ws::WsLimits,
    /// Per-address and per-session rate limits.
    pub rate_limits: Arc<RateLimits>,
    /// Deadline of one HTTP request (body included).
    pub request_timeout: Duration,
    /// The demo page's session endpoint (`DEMO=on`).
    pub demo: demo_sessions::DemoSessions,
    /// Credentials and what they allow.
    pub auth: Arc<Auth>,
}

/// The OpenAPI document, collected from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    modifiers(&OptionalSwitchBody, &SessionLinks, &ModeRules, &BearerAuth),
    info(
        title = "SyncKairos",
        description = "Real-time timer synchronization: REST + WebSocket. Wire contract v2.0.0 plus extensions."
    ),
    paths(
        sessions::create,
        sessions::get,
        sessions::start,
        sessions::switch,
        sessions::pause,
        sessions::resume,
        sessions::complete,
        sessions::cancel,
        sessions::delete,
        sessions::events,
        tokens::mint,
        system::time,
        system::health,
        system::ready,
        system::metrics,
        system::openapi,
        ws::upgrade
    ),
    components(schemas(
        sessions::StateEnvelope,
        sessions::SwitchEnvelope,
        sessions::SwitchResult,
        requests::CreateSessionBody,
        requests::CreateParticipantBody,
        requests::TimeoutActionBody,
        requests::SwitchBody,
        tokens::MintTokenBody,
        tokens::MintedToken,
        tokens::MintedEnvelope,
        crate::auth::token::Role,
        crate::audit::HistoryPage,
        crate::audit::HistoryEvent,
        crate::domain::Actor,
        crate::domain::ActorKind,
        error::ErrorBody,
        error::ErrorDetail,
        system::TimeBody,
        crate::domain::SyncState,
        crate::domain::RenderedParticipant
    ))
)]
pub struct ApiDoc;

/// What the annotations cannot say, said after generation: a switch body is
/// optional (absent or empty means `{}`), yet a present one must be an
/// object, so the schema stays non-nullable and only `required` changes.
struct OptionalSwitchBody;

impl utoipa::Modify for OptionalSwitchBody {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(utoipa::openapi::RefOr::T(body)) = doc
            .paths
            .paths
            .get_mut("/v1/sessions/{id}/switch")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
        {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// The OpenAPI `links` of a session's lifecycle: from each response that
/// carries `data.session_id` to the operations a client calls next on that
/// session. Generated clients and stateful testers (schemathesis) follow
/// them, so a create leads to start, switch, pause, resume and the rest
/// instead of requests on random ids that only ever see 404.
struct SessionLinks;

/// `(operationId, status, operationIds it links to)`.
const LIFECYCLE: [(&str, &str, &[&str]); 6] = [
    (
        "create",
        "201",
        &[
            "get", "start", "switch", "pause", "resume", "complete", "cancel", "delete", "events",
        ],
    ),
    ("start", "200", &["switch", "pause", "cancel"]),
    ("switch", "200", &["switch", "pause"]),
    ("pause", "200", &["resume"]),
    ("resume", "200", &["switch", "complete"]),
    ("complete", "200", &["delete"]),
];

impl utoipa::Modify for SessionLinks {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let id = op.operation_id.clone().unwrap_or_default();
                let Some((_, status, targets)) = LIFECYCLE.iter().find(|(from, ..)| *from == id)
                else {
                    continue;
                };
                let Some(RefOr::T(resp)) = op.responses.responses.get_mut(*status) else {
                    continue;
                };
                for target in *targets {
                    let mut link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", "$response.body#/data/session_id")
                        .description(format!("`{target}` on the session this response is about"));
                    // After the first command, a switch guards on the version
                    // it saw: the optimistic-concurrency pattern of API.md.
                    if *target == "switch" && id != "create" {
                        link = link.request_body(Some(serde_json::json!({
                            "expected_version": "$response.body#/data/version"
                        })));
                    }
                    let link = link.build();
                    resp.links
                        .insert(format!("{target}_session"), RefOr::T(link));
                }
            }
        }
    }
}

/// The create body's mode rules, in JSON Schema's `if`/`then`/`else`
/// (which utoipa has no attribute for): per_cycle requires a non-null
/// `time_per_cycle_ms`, per_group a non-null `group_id` on every
/// participant. The two modes exclude each other, so one `if` chain says
/// both. `domain::spec` enforces them; `doc_check` holds the two together.
struct ModeRules;

impl utoipa::Modify for ModeRules {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::extensions::Extensions;
        use utoipa::openapi::schema::Schema;
        let Some(RefOr::T(Schema::Object(body))) = doc
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("CreateSessionBody"))
        else {
            return;
        };
        let mode = |m: &str| serde_json::json!({"properties": {"sync_mode": {"const": m}}, "required": ["sync_mode"]});
        let rules = [
            ("if", mode("per_cycle")),
            (
                "then",
                serde_json::json!({
                    "properties": {"time_per_cycle_ms": {"type": "integer"}},
                    "required": ["time_per_cycle_ms"]
                }),
            ),
            (
                "else",
                serde_json::json!({
                    "if": mode("per_group"),
                    "then": {"properties": {"participants": {"items": {
                        "properties": {"group_id": {"type": "string"}},
                        "required": ["group_id"]
                    }}}}
                }),
            ),
        ];
        // `Extensions` keeps any key it is given through `DerefMut`; its
        // builder would prefix `x-`, which is not what these keywords are.
        let ext = body.extensions.get_or_insert_with(Extensions::default);
        for (key, value) in rules {
            ext.insert(key.to_string(), value);
        }
    }
}

/// The method as a metric label: one of the standard methods, else
/// `other`. Labels only ever come from bounded sets (a method is client
/// text of any length; as a label, 200 made-up ones grew `/metrics` by
/// hundreds of megabytes).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: the per-address rate limit (429 `RATE_LIMITED` with
/// `Retry-After`). `/health` and `/ready` are exempt so probes never fail
/// because a client on the same address misbehaves.
async fn limit_rate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let exempt = matches!(req.uri().path(), "/health" | "/ready");
    if !exempt && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let cfg = &app.rate_limits.config;
        let addr = client_address(
            req.headers(),
            peer.ip(),
            cfg.trusted_proxy_header.as_ref(),
            cfg.trusted_proxy_hops,
        );
        if let Err(wait) = app.rate_limits.check(&RateKey::Address(addr)) {
            return ApiError::RateLimited(wait).into_response();
        }
    }
    next.run(req).await
}

/// Middleware: the request deadline. Whatever a request waits on (a slow
/// body, a slow store, a queue), past the deadline it is answered 503
/// SERVICE_UNAVAILABLE with `Retry-After` and its work is dropped.
async fn deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Deadline.into_response(),
    }
}

/// The security scheme and, on every operation that needs a credential,
/// its `security` requirement and 401/403 responses (API.md: "Missing,
/// malformed, badly signed or expired credential: 401"; refused: 403). The
/// public paths are the ones [`is_public`] names.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key (`name=secret` configured on the server; full access) or a session token                  (a JWT scoped to one session: `sid`, `role` viewer|participant|controller, `sub`, `exp`).                  The WebSocket also takes it as `?token=`. Only checked when auth is on.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                "ErrorBody",
                            ))))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if is_public(path) {
                continue;
            }
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                let r = &mut op.responses.responses;
                r.entry("401".into()).or_insert_with(|| {
                    error("UNAUTHORIZED (auth on): missing, malformed, badly signed or expired credential; with `WWW-Authenticate: Bearer`")
                });
                r.entry("403".into()).or_insert_with(|| {
                    error("FORBIDDEN: the credential does not allow this operation on this session (API.md's table)")
                });
            }
        }
    }
}

/// Paths anyone may call, auth on or off (API.md). The demo page's static
/// files are public too; they are not API routes.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/v1/time" | "/health" | "/openapi.json")
}

/// Admin paths: served on `ADMIN_PORT` when it is set, else on the main
/// port, where auth (when on) limits them to API keys.
pub fn is_admin(path: &str) -> bool {
    matches!(path, "/metrics" | "/ready")
}

async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];
    let class = CLASSES
        .get(usize::from(resp.status().as_u16() / 100))
        .copied()
        .unwrap_or("5xx");
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    app.metrics
        .http_seconds
        .with_label_values(&[route, method, class])
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn no_route() -> Response {
    ApiError::NoRoute.into_response()
}

/// The documented routes: path template and handlers. [`router`] serves
/// exactly these (plus the demo page), and the test in `doc_check` holds
/// the OpenAPI document's paths to this list, both ways.
fn api_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/v1/sessions", post(sessions::create)),
        (
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        ),
        ("/v1/sessions/{id}/start", post(sessions::start)),
        ("/v1/sessions/{id}/switch", post(sessions::switch)),
        ("/v1/sessions/{id}/pause", post(sessions::pause)),
        ("/v1/sessions/{id}/resume", post(sessions::resume)),
        ("/v1/sessions/{id}/complete", post(sessions::complete)),
        ("/v1/sessions/{id}/cancel", post(sessions::cancel)),
        ("/v1/sessions/{id}/events", get(sessions::events)),
        ("/v1/sessions/{id}/tokens", post(tokens::mint)),
        ("/v1/time", get(system::time)),
        ("/health", get(system::health)),
        ("/ready", get(system::ready)),
        ("/metrics", get(system::metrics)),
        ("/openapi.json", get(system::openapi)),
        ("/ws", get(ws::upgrade)),
    ]
}

/// The main router, admin endpoints included (no `ADMIN_PORT`).
pub fn router(app: AppState) -> Router {
    main_router(app, true)
}

/// The main port's router: every documented route but the admin ones unless
/// `serve_admin`, behind authentication unless public (see [`is_public`]).
pub fn main_router(app: AppState, serve_admin: bool) -> Router {
    let authn = || middleware::from_fn_with_state(app.clone(), auth::authenticate);
    api_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, handlers)| {
            if is_public(path) {
                r.route(path, handlers)
            } else if is_admin(path) {
                if !serve_admin {
                    return r;
                }
                let guarded = handlers
                    .route_layer(middleware::from_fn(auth::admin_only))
                    .route_layer(authn());
                r.route(path, guarded)
            } else {
                r.route(path, handlers.route_layer(authn()))
            }
        })
        .merge(demo::routes())
        .merge(demo_sessions::routes())
        .fallback(no_route)
        .layer(middleware::from_fn(error::log_errors))
        .layer(middleware::from_fn_with_state(app.clone(), deadline))
        .layer(middleware::from_fn_with_state(app.clone(), limit_rate))
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}

/// The `ADMIN_PORT` listener's router: `/metrics`, `/ready`, `/health`, open
/// (it belongs on a network only the platform reaches).
pub fn admin_router(app: AppState) -> Router {
    api_routes()
        .into_iter()
        .filter(|(path, _)| is_admin(path) || *path == "/health")
        .fold(Router::new(), |r, (path, handlers)| r.route(path, handlers))
        .fallback(no_route)
        .layer(middleware::from_fn(error::log_errors))
        .with_state(app)
}
