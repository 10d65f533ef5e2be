//! What the reconcile needs beyond the Kubernetes API: talking to the Redis pods (cluster
//! formation) and to the server through its Service (`/ready`). A trait, so the reconcile
//! tests script both.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::redis_cluster::{ClusterReport, TcpAdmin, ensure_cluster};

/// What the reconcile needs beyond the API: talking to Redis pods and to the server.
/// A trait so that reconcile tests script both.
#[async_trait]
pub trait Probes: Send + Sync {
    /// Forms or heals the Redis Cluster over `addrs` (pod ordinal order).
    async fn form_redis(
        &self,
        addrs: &[String],
        password: Option<String>,
        shards: usize,
    ) -> Result<ClusterReport, String>;
    /// Whether `GET {endpoint}/ready` answers 200.
    async fn server_ready(&self, endpoint: &str) -> bool;
}

/// Deadline of one `/ready` probe (connect, request and response head).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// The real probes: RESP to Redis pods, HTTP/1.1 to the server Service.
pub struct LiveProbes {
    http: HttpProbe,
}

impl LiveProbes {
    /// Probes with one pooled HTTP client for every `/ready` check.
    pub fn new() -> Self {
        Self {
            http: HttpProbe::new(HTTP_TIMEOUT),
        }
    }
}

impl Default for LiveProbes {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Probes for LiveProbes {
    async fn form_redis(
        &self,
        addrs: &[String],
        password: Option<String>,
        shards: usize,
    ) -> Result<ClusterReport, String> {
        let admin = TcpAdmin {
            password,
            timeout: Duration::from_secs(3),
        };
        ensure_cluster(&admin, addrs, shards, Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())
    }

    async fn server_ready(&self, endpoint: &str) -> bool {
        self.http.ok(endpoint, "/ready").await
    }
}

/// `GET` with a deadline over hyper's pooled HTTP/1.1 client (plain `http://` only: the
/// server's Service speaks plain HTTP inside the cluster).
#[derive(Clone)]
pub struct HttpProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpProbe {
    /// A client whose every request, connect included, ends within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { client, timeout }
    }

    /// Whether `GET {endpoint}{path}` answers 200 within the deadline. Any other status, a
    /// refused or slow connection, or an endpoint that is not an `http://` URL is `false`.
    pub async fn ok(&self, endpoint: &str, path: &str) -> bool {
        let Ok(uri) = format!("{endpoint}{path}").parse::<Uri>() else {
            return false;
        };
        match tokio::time::timeout(self.timeout, self.client.get(uri)).await {
            Ok(Ok(response)) => response.status() == hyper::StatusCode::OK,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, endpoint, path, "probe failed");
                false
            }
            Err(_) => {
                tracing::debug!(endpoint, path, "probe timed out");
                false
            }
        }
    }
}

/// One-off form of [`HttpProbe::ok`] with the default deadline.
pub async fn http_ok(endpoint: &str, path: &str) -> bool {
    HttpProbe::new(HTTP_TIMEOUT).ok(endpoint, path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers one request with `reply` after checking it is `GET /ready`.
    async fn one_shot_server(reply: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /ready HTTP/1.1"));
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn ready_probe_needs_a_200() {
        let ok = one_shot_server("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        assert!(http_ok(&ok, "/ready").await);
        let busy =
            one_shot_server("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        assert!(!http_ok(&busy, "/ready").await);
        let garbage = one_shot_server("SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(!http_ok(&garbage, "/ready").await);
        // nothing listening
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        assert!(!http_ok(&closed, "/ready").await);
        assert!(!http_ok("https://127.0.0.1:1", "/ready").await);
        assert!(!http_ok("not a url", "/ready").await);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", l.local_addr().unwrap());
        // accepts and reads, never writes
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            let _ = rx.await;
        });
        let probe = HttpProbe::new(Duration::from_millis(200));
        let started = std::time::Instant::now();
        assert!(!probe.ok(&endpoint, "/ready").await);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop(tx);
    }

    #[tokio::test]
    async fn one_client_serves_many_probes() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", l.local_addr().unwrap());
        let app = axum::Router::new().route("/ready", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        let probe = HttpProbe::new(HTTP_TIMEOUT);
        for _ in 0..3 {
            assert!(probe.ok(&endpoint, "/ready").await);
        }
        assert!(!probe.ok(&endpoint, "/missing").await);
    }
}
