//! Time, health, readiness, metrics and the OpenAPI document.

use super::AppState;
use crate::clock::now_ms;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// `GET /v1/time` body: the server clock for client offset estimation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TimeBody {
    /// Server clock, Unix epoch ms.
    pub timestamp_ms: i64,
    /// The wire-contract version clients check ("2.0.0").
    pub server_version: &'static str,
    /// Clock drift the service considers acceptable.
    pub drift_tolerance_ms: u32,
    /// This build's version (ext).
    pub build_version: &'static str,
}

/// The server clock.
#[utoipa::path(get, path = "/v1/time", tag = "system", responses((status = 200, body = TimeBody)))]
pub async fn time() -> Json<TimeBody> {
    Json(TimeBody {
        timestamp_ms: now_ms(),
        server_version: "2.0.0",
        drift_tolerance_ms: 50,
        build_version: crate::BUILD_VERSION,
    })
}

/// Liveness: never touches a store.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, description = "`{status: \"ok\"}`")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the state store must answer; audit lag is reported only.
#[utoipa::path(get, path = "/ready", tag = "system", responses(
    (status = 200, description = "`{status: \"ready\", engine, audit?}`"),
    (status = 503, description = "`{status: \"not_ready\", error}`")))]
pub async fn ready(State(app): State<AppState>) -> Response {
    let engine = app.service.engine();
    let audit = match &app.history {
        Some(h) => Some(h.status().await),
        None => None,
    };
    if app.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "error": "shutting down"})),
        )
            .into_response();
    }
    match tokio::time::timeout(std::time::Duration::from_secs(2), engine.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "engine": engine.name(), "audit": audit})),
        )
            .into_response(),
        Ok(Err(e)) => {
            // The store's own message may name hosts or credentials: it is
            // logged, and the probe gets a generic reason (API.md).
            tracing::warn!(engine = engine.name(), error = %e, "readiness: state store ping failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "engine": engine.name(), "error": "state store unavailable"})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "engine": engine.name(), "error": "state store ping timed out"})),
        )
            .into_response(),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    if let Some(n) = app.service.engine().live_sessions().await {
        app.metrics.live_sessions.set(n as i64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI 3 JSON")))]
pub async fn openapi(State(app): State<AppState>) -> Response {
    use utoipa::OpenApi;
    let mut doc = super::ApiDoc::openapi();
    if !app.auth.enabled() {
        without_security(&mut doc);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_json().unwrap_or_default(),
    )
        .into_response()
}

/// The document as a server with auth off answers: no operation needs a
/// credential (one sent is ignored), so none declares a security requirement
/// or the 401 that only a server with auth on gives. Clients and contract
/// testers then see the API this server actually serves; `synckairos
/// openapi` (what the SDK types come from) keeps the full document.
fn without_security(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post, &mut item.delete]
            .into_iter()
            .flatten()
        {
            op.security = None;
            op.responses.responses.remove("401");
        }
    }
}
