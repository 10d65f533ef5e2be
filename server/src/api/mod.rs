//! The HTTP surface: REST, WebSocket, time/health/ready/metrics and the
//! OpenAPI document generated from the handlers' annotations.

pub mod body;
pub mod demo;
pub mod error;
pub mod sessions;
pub mod system;
pub mod ws;

use crate::metrics::Metrics;
use crate::service::Service;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Read access to the audit trail, implemented by the audit module; absent
/// when no audit store is configured.
#[async_trait]
pub trait History: Send + Sync {
    /// One page of a session's events: `{data: [...], next_cursor}`.
    async fn page(
        &self,
        session_id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<serde_json::Value, ApiError>;
    /// Audit lag/backlog for `/ready` (informational, never fatal).
    async fn status(&self) -> serde_json::Value;
}

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
}

/// The OpenAPI document, collected from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
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
        sessions::CreateSessionBody,
        sessions::CreateParticipantBody,
        sessions::SwitchBody,
        error::ErrorBody,
        error::ErrorDetail,
        system::TimeBody,
        crate::domain::SyncState,
        crate::domain::RenderedParticipant
    ))
)]
pub struct ApiDoc;

async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
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
        .with_label_values(&[route, method.as_str(), class])
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn no_route() -> Response {
    ApiError::NoRoute.into_response()
}

/// The full router.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/sessions", post(sessions::create))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        )
        .route("/v1/sessions/{id}/start", post(sessions::start))
        .route("/v1/sessions/{id}/switch", post(sessions::switch))
        .route("/v1/sessions/{id}/pause", post(sessions::pause))
        .route("/v1/sessions/{id}/resume", post(sessions::resume))
        .route("/v1/sessions/{id}/complete", post(sessions::complete))
        .route("/v1/sessions/{id}/cancel", post(sessions::cancel))
        .route("/v1/sessions/{id}/events", get(sessions::events))
        .route("/v1/time", get(system::time))
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .route("/ws", get(ws::upgrade))
        .merge(demo::routes())
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}
