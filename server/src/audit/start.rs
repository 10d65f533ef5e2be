//! What `synckairos serve` wires when `DATABASE_URL` is set: one call per
//! engine that starts the consumer, registers the audit metrics, and returns
//! the history reader for `GET /v1/sessions/{id}/events` and `/ready`.

use super::history::AuditHistory;
use super::outbox::{OutboxConfig, start_outbox_consumer_with};
use super::store::AuditStore;
use super::writer::start_memory_writer_with;
use super::{AuditConfig, AuditError, AuditHandle, AuditMetrics};
use crate::engine::AuditEvent;
use crate::engine::outbox::Outbox;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A running audit trail: the consumer's handle (shutdown, lag, backlog),
/// the history reader, and the metrics.
pub struct Audit {
    /// The consumer; call `shutdown(grace)` after the server stops.
    pub handle: Arc<AuditHandle>,
    /// For `AppState::history`.
    pub history: Arc<AuditHistory>,
    /// The `synckairos_audit_*` metrics (e.g. `dropped` for the memory engine).
    pub metrics: AuditMetrics,
}

fn setup(
    cfg: &AuditConfig,
    registry: &prometheus::Registry,
) -> Result<(AuditStore, AuditMetrics), AuditError> {
    let metrics = AuditMetrics::register(registry)
        .map_err(|e| AuditError::Outbox(format!("audit metrics: {e}")))?;
    Ok((AuditStore::connect_lazy(cfg)?, metrics))
}

/// Memory engine: starts the queue consumer. Pass the returned sender to
/// `MemoryEngine::new(Some(tx))`. Never waits for PostgreSQL.
pub fn start_for_memory(
    cfg: AuditConfig,
    registry: &prometheus::Registry,
) -> Result<(mpsc::Sender<AuditEvent>, Audit), AuditError> {
    let (store, metrics) = setup(&cfg, registry)?;
    let (tx, handle) = start_memory_writer_with(store.clone(), cfg, metrics.clone());
    let handle = Arc::new(handle);
    let history = Arc::new(AuditHistory::new(store, Arc::clone(&handle)));
    Ok((
        tx,
        Audit {
            handle,
            history,
            metrics,
        },
    ))
}

/// An engine with a durable outbox (the Redis engine's `outbox()`): starts
/// this instance's consumer of it.
pub fn start_for_outbox(
    cfg: AuditConfig,
    outbox: Arc<dyn Outbox>,
    registry: &prometheus::Registry,
) -> Result<Audit, AuditError> {
    let (store, metrics) = setup(&cfg, registry)?;
    let handle = Arc::new(start_outbox_consumer_with(
        store.clone(),
        outbox,
        cfg,
        OutboxConfig::default(),
        metrics.clone(),
    ));
    let history = Arc::new(AuditHistory::new(store, Arc::clone(&handle)));
    Ok(Audit {
        handle,
        history,
        metrics,
    })
}
