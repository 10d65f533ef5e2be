//! A minimal HTTP/1.1 client: one explicit keep-alive TCP connection per worker.
//!
//! hyper's low-level `client::conn` is used instead of a pooled client so the
//! number of connections is exactly the number of workers, requests are never
//! queued behind a pool, and the generator spends as little CPU as possible
//! (it shares the machine with the server it measures).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cli::BaseUrl;

/// Upper bound on any single request, so a stuck server cannot hang a run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A resolved base URL: where to connect, and what to put in Host and paths.
#[derive(Debug, Clone)]
pub struct Target {
    /// The parsed URL.
    pub base: BaseUrl,
    /// The address connections go to (the first one the host resolved to).
    pub addr: SocketAddr,
    host_header: HeaderValue,
    /// `Bearer <API key>` for every request that carries no credential of its
    /// own (a server with auth on).
    authorization: Option<HeaderValue>,
}

impl Target {
    /// Resolves `base`; unless `allow_remote`, every resolved address must be loopback.
    pub async fn resolve(
        base: BaseUrl,
        allow_remote: bool,
        api_key: Option<&str>,
    ) -> Result<Arc<Target>> {
        let authority = base.authority();
        if !allow_remote && !base.is_literal_loopback() {
            bail!(
                "{authority} is not a loopback address; pass --allow-remote if you really mean it"
            );
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("cannot resolve {authority}"))?
            .collect();
        let addr = *addrs
            .first()
            .with_context(|| format!("{authority} resolved to no address"))?;
        if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
            bail!(
                "{authority} resolves to {addrs:?}, not only loopback; pass --allow-remote if you really mean it"
            );
        }
        let host_header = HeaderValue::from_str(&authority)?;
        let authorization = api_key
            .map(|k| HeaderValue::from_str(&format!("Bearer {k}")))
            .transpose()
            .context("--api-key is not a valid header value")?;
        Ok(Arc::new(Target {
            base,
            addr,
            host_header,
            authorization,
        }))
    }

    /// The request path for an API path such as `/v1/sessions`.
    pub fn path(&self, api_path: &str) -> String {
        format!("{}{api_path}", self.base.path_prefix)
    }
}

/// A request to send: method, API path (without prefix), optional JSON body.
#[derive(Debug, Clone)]
pub struct ReqSpec {
    /// HTTP method.
    pub method: Method,
    /// API path such as `/v1/sessions/{id}/switch`.
    pub path: String,
    /// JSON body; sent with `Content-Type: application/json`.
    pub body: Option<Bytes>,
    /// `Authorization` of this request (a session token); else the target's.
    pub authorization: Option<HeaderValue>,
}

/// One keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    target: Arc<Target>,
    sender: SendRequest<Full<Bytes>>,
}

impl HttpConn {
    /// Opens a TCP connection (with TCP_NODELAY) and performs the HTTP/1.1 handshake.
    pub async fn connect(target: &Arc<Target>) -> Result<HttpConn> {
        let tcp = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(target.addr))
            .await
            .map_err(|_| anyhow!("connect to {} timed out", target.addr))?
            .with_context(|| format!("connect to {}", target.addr))?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            target: Arc::clone(target),
            sender,
        })
    }

    /// Sends one request and reads the whole response body.
    pub async fn send(&mut self, spec: &ReqSpec) -> Result<(StatusCode, Bytes)> {
        let fut = async {
            self.sender.ready().await?;
            let mut req = Request::builder()
                .method(spec.method.clone())
                .uri(self.target.path(&spec.path))
                .header(HOST, self.target.host_header.clone());
            if spec.body.is_some() {
                req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            if let Some(auth) = spec
                .authorization
                .as_ref()
                .or(self.target.authorization.as_ref())
            {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            let req = req.body(Full::new(spec.body.clone().unwrap_or_default()))?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("request timed out after {REQUEST_TIMEOUT:?}"))?
    }

    /// True when the connection can no longer be used (peer closed it).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Runs `n` requests (`spec(i)` for i in 0..n) over `concurrency` connections
/// and returns the responses in index order. Used for setup and teardown,
/// which is not measured.
pub async fn batch<F>(
    target: &Arc<Target>,
    n: usize,
    concurrency: usize,
    spec: F,
) -> Result<Vec<(StatusCode, Bytes)>>
where
    F: Fn(usize) -> ReqSpec + Send + Sync + 'static,
{
    let spec = Arc::new(spec);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = concurrency.clamp(1, n.max(1));
    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (target, spec, next) = (Arc::clone(target), Arc::clone(&spec), Arc::clone(&next));
        handles.push(tokio::spawn(async move {
            let mut conn = HttpConn::connect(&target).await?;
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(out);
                }
                let req = spec(i);
                if conn.is_closed() {
                    conn = HttpConn::connect(&target).await?;
                }
                let resp = conn
                    .send(&req)
                    .await
                    .with_context(|| format!("{} {}", req.method, req.path))?;
                out.push((i, resp));
            }
        }));
    }
    let mut all: Vec<Option<(StatusCode, Bytes)>> = vec![None; n];
    for h in handles {
        for (i, resp) in h.await?? {
            all[i] = Some(resp);
        }
    }
    all.into_iter()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("request {i} was not run")))
        .collect()
}

/// Counts an outcome into an error map: an unexpected status by its code, or a
/// transport failure by kind.
pub fn count_error(errors: &mut BTreeMap<String, u64>, kind: &str) {
    *errors.entry(kind.to_string()).or_default() += 1;
}

/// A short kind for a transport error, for the error table.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
    if e.to_string().contains("timed out") {
        "timeout"
    } else {
        "io"
    }
}
