//! The operator's HTTP listener on a real socket: /healthz, /readyz and /metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use synckairos_operator::http::{Health, router};
use synckairos_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    (code, out)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let metrics = Metrics::new().unwrap();
    let ready = Arc::new(AtomicBool::new(false));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = router(Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 503);
    ready.store(true, Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    metrics.reconciles.with_label_values(&["ok"]).inc();
    metrics.errors.with_label_values(&["api"]).inc();
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("synckairos_operator_reconciles_total{result=\"ok\"} 1"),
        "{body}"
    );
    assert!(body.contains("synckairos_operator_reconcile_errors_total{category=\"api\"} 1"));
    assert!(body.contains("synckairos_operator_reconcile_duration_seconds"));
}
