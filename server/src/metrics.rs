//! Prometheus metrics, one registry per process, names prefixed
//! `synckairos_`. Labels stay low-cardinality: route templates, never ids.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric the service exports.
pub struct Metrics {
    /// The registry scraped at `/metrics`.
    pub registry: Registry,
    /// HTTP latency by route template, method and status class.
    pub http_seconds: HistogramVec,
    /// End-to-end latency of switch commands inside the service.
    pub switch_seconds: Histogram,
    /// Sessions held by the engine (set at scrape time).
    pub live_sessions: IntGauge,
    /// Open WebSocket connections.
    pub ws_connections: IntGauge,
    /// WebSocket messages written to clients.
    pub ws_messages_sent: IntCounter,
    /// Versions a slow client skipped (latest state wins).
    pub ws_messages_dropped: IntCounter,
    /// Timeouts applied, by action type.
    pub timeouts_fired: IntCounterVec,
    /// How late a timeout was applied relative to its deadline.
    pub timeout_lateness_seconds: Histogram,
    /// Commits retried after losing a version race.
    pub commit_retries: IntCounter,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are static; a failure here is a programming error
    // caught by the unit test below, so aborting startup is right.
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition: {e}"),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let fast = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ];
        let http_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "synckairos_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(fast.clone()),
            &["route", "method", "status"],
        ));
        let switch_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "synckairos_switch_duration_seconds",
                "Switch latency in the service",
            )
            .buckets(fast.clone()),
        ));
        let live_sessions = must(IntGauge::new(
            "synckairos_live_sessions",
            "Sessions held by the engine",
        ));
        let ws_connections = must(IntGauge::new(
            "synckairos_websocket_connections",
            "Open WebSocket connections",
        ));
        let ws_messages_sent = must(IntCounter::new(
            "synckairos_websocket_messages_sent_total",
            "WebSocket messages sent",
        ));
        let ws_messages_dropped = must(IntCounter::new(
            "synckairos_websocket_messages_dropped_total",
            "State versions skipped for slow WebSocket clients",
        ));
        let timeouts_fired = must(IntCounterVec::new(
            Opts::new(
                "synckairos_timeouts_fired_total",
                "Timeouts applied by the server",
            ),
            &["action"],
        ));
        let timeout_lateness_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "synckairos_timeout_lateness_seconds",
                "Delay between a deadline and the commit of its timeout",
            )
            .buckets(fast),
        ));
        let commit_retries = must(IntCounter::new(
            "synckairos_commit_retries_total",
            "Commits retried after a version race",
        ));
        for c in [
            Box::new(http_seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(switch_seconds.clone()),
            Box::new(live_sessions.clone()),
            Box::new(ws_connections.clone()),
            Box::new(ws_messages_sent.clone()),
            Box::new(ws_messages_dropped.clone()),
            Box::new(timeouts_fired.clone()),
            Box::new(timeout_lateness_seconds.clone()),
            Box::new(commit_retries.clone()),
        ] {
            must(registry.register(c));
        }
        Metrics {
            registry,
            http_seconds,
            switch_seconds,
            live_sessions,
            ws_connections,
            ws_messages_sent,
            ws_messages_dropped,
            timeouts_fired,
            timeout_lateness_seconds,
            commit_retries,
        }
    }

    /// The text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registers_and_renders() {
        let m = super::Metrics::new();
        m.timeouts_fired.with_label_values(&["end_session"]).inc();
        assert!(m.render().contains("synckairos_timeouts_fired_total"));
    }
}
