//! Audit metrics, registered into the process registry so `/metrics` shows
//! whether the audit trail keeps up (`synckairos_audit_*`).

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Every metric of the audit consumers. Cloning shares the same series.
#[derive(Clone)]
pub struct AuditMetrics {
    /// Events committed by the engine but not yet written to PostgreSQL.
    pub backlog: IntGauge,
    /// 1 while the backlog is above the configured bound (loud on purpose).
    pub backlog_over_bound: IntGauge,
    /// Age of the oldest unwritten event, in seconds (0 when caught up).
    pub lag_seconds: Gauge,
    /// Duration of one batch transaction (successful ones).
    pub batch_seconds: Histogram,
    /// Commit-to-row delay of the oldest event of each written batch.
    pub event_delay_seconds: Histogram,
    /// New rows inserted into `sync_events`.
    pub rows_written: IntCounter,
    /// Redelivered events that were already stored (skipped by the unique key).
    pub duplicates: IntCounter,
    /// Failed write attempts (each is retried).
    pub failures: IntCounter,
    /// Events lost before they were written: the memory queue was full, or an
    /// outbox entry vanished before it was acknowledged.
    pub dropped: IntCounter,
    /// 1 while an outbox partition holds more than its high-water mark
    /// (`OUTBOX_MAX_LEN`): PostgreSQL is behind and Redis memory grows.
    pub outbox_high_water: IntGauge,
    /// Events PostgreSQL rejected as data, moved to `sync_events_dead_letter`.
    pub dead_letters: IntCounter,
    /// Outbox entries taken over from consumers that stopped (XAUTOCLAIM).
    pub claimed: IntCounter,
}

impl AuditMetrics {
    /// Creates the metrics and registers them; fails only if a metric of the
    /// same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let secs = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ];
        let m = AuditMetrics {
            backlog: IntGauge::new(
                "synckairos_audit_backlog",
                "Audit events committed but not yet written to PostgreSQL",
            )?,
            backlog_over_bound: IntGauge::new(
                "synckairos_audit_backlog_over_bound",
                "1 while the audit backlog is above its configured bound",
            )?,
            lag_seconds: Gauge::new(
                "synckairos_audit_lag_seconds",
                "Age of the oldest audit event not yet written",
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "synckairos_audit_batch_duration_seconds",
                    "Duration of one audit batch transaction",
                )
                .buckets(secs.clone()),
            )?,
            event_delay_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "synckairos_audit_event_delay_seconds",
                    "Commit-to-row delay of the oldest event of each written batch",
                )
                .buckets(secs),
            )?,
            rows_written: IntCounter::new(
                "synckairos_audit_rows_written_total",
                "Audit events inserted into PostgreSQL",
            )?,
            duplicates: IntCounter::new(
                "synckairos_audit_duplicates_total",
                "Redelivered audit events already stored",
            )?,
            failures: IntCounter::new(
                "synckairos_audit_write_failures_total",
                "Failed audit write attempts (retried)",
            )?,
            dropped: IntCounter::new(
                "synckairos_audit_dropped_total",
                "Audit events lost before they were written (memory queue full, outbox entry vanished)",
            )?,
            outbox_high_water: IntGauge::new(
                "synckairos_audit_outbox_high_water",
                "1 while an audit outbox partition is above its high-water mark",
            )?,
            dead_letters: IntCounter::new(
                "synckairos_audit_dead_letters_total",
                "Audit events rejected by PostgreSQL and moved to the dead-letter table",
            )?,
            claimed: IntCounter::new(
                "synckairos_audit_claimed_total",
                "Outbox entries claimed from stopped consumers",
            )?,
        };
        for c in [
            Box::new(m.backlog.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.backlog_over_bound.clone()),
            Box::new(m.lag_seconds.clone()),
            Box::new(m.batch_seconds.clone()),
            Box::new(m.event_delay_seconds.clone()),
            Box::new(m.rows_written.clone()),
            Box::new(m.duplicates.clone()),
            Box::new(m.failures.clone()),
            Box::new(m.dropped.clone()),
            Box::new(m.outbox_high_water.clone()),
            Box::new(m.dead_letters.clone()),
            Box::new(m.claimed.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }

    /// Metrics in a private registry, for tests and tools that do not export
    /// (fails only on an invalid metric definition).
    pub fn unregistered() -> prometheus::Result<Self> {
        Self::register(&Registry::new())
    }
}

/// Upper bound of the bucket holding the `q` quantile of `h` (bucket
/// resolution; +inf past the last bucket, NaN when empty). For benchmarks
/// and diagnostics that print a percentile without a Prometheus server.
pub fn quantile_le(h: &Histogram, q: f64) -> f64 {
    use prometheus::core::Collector;
    let families = h.collect();
    let Some(m) = families.first().and_then(|f| f.get_metric().first()) else {
        return f64::NAN;
    };
    let hist = m.get_histogram();
    let total = hist.get_sample_count() as f64;
    if total == 0.0 {
        return f64::NAN;
    }
    hist.get_bucket()
        .iter()
        .find(|b| b.cumulative_count() as f64 >= q * total)
        .map_or(f64::INFINITY, |b| b.upper_bound())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_per_registry() {
        let r = Registry::new();
        let m = AuditMetrics::register(&r).expect("first registration");
        m.rows_written.inc_by(3);
        assert!(AuditMetrics::register(&r).is_err());
        let names: Vec<String> = r.gather().iter().map(|f| f.name().to_string()).collect();
        assert!(
            names
                .iter()
                .any(|n| n == "synckairos_audit_rows_written_total")
        );
        assert!(names.iter().any(|n| n == "synckairos_audit_backlog"));
    }

    #[test]
    fn quantiles_come_from_buckets() {
        let m = AuditMetrics::unregistered().expect("metrics");
        assert!(quantile_le(&m.event_delay_seconds, 0.5).is_nan());
        for _ in 0..98 {
            m.event_delay_seconds.observe(0.003);
        }
        m.event_delay_seconds.observe(0.7);
        m.event_delay_seconds.observe(0.7);
        assert_eq!(quantile_le(&m.event_delay_seconds, 0.5), 0.005);
        assert_eq!(quantile_le(&m.event_delay_seconds, 0.99), 1.0);
    }
}
