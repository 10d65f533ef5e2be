//! Tools of the hostile-client suite (`tests/tests/hostile.rs`): the
//! server's resident memory, a polite client that must keep being served
//! beside an attack, and raw TCP for what no HTTP client library sends
//! (half-sent headers, bodies one byte at a time).

use crate::server::TestServer;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Asserts the server's RSS grew by less than `max_kib` since `before`.
pub fn assert_rss_growth(srv: &TestServer, before: u64, max_kib: u64, what: &str) {
    let now = rss_kib(srv.pid());
    assert!(
        now.saturating_sub(before) < max_kib,
        "{what}: RSS grew {before} -> {now} KiB (limit {max_kib} KiB)"
    );
}

/// A client that follows every rule: a running session of its own, a
/// fresh connection per probe (an attack may have closed its old one).
pub struct Polite {
    base: String,
    session: String,
}

impl Polite {
    /// Creates and starts its session (before the attack begins).
    pub async fn new(srv: &TestServer) -> Polite {
        let body = crate::session_body("per_participant", &["a", "b"], 3_600_000);
        let session = crate::id_of(&body);
        srv.api().create_started(&body).await;
        Polite {
            base: srv.base.clone(),
            session,
        }
    }

    /// Its session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// `/health` and a switch, retried on fresh connections until both are
    /// answered 200 or `within` passes (then it panics). Returns the time it took.
    pub async fn served(&self, within: Duration) -> Duration {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < within {
            match self.probe(within.saturating_sub(started.elapsed())).await {
                Ok(()) => return started.elapsed(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("a polite client was not served within {within:?}: {last}");
    }

    async fn probe(&self, left: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(left.max(Duration::from_millis(100)))
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| e.to_string())?;
        let health = client
            .get(format!("{}/health", self.base))
            .send()
            .await
            .map_err(|e| format!("/health: {e}"))?;
        if health.status() != 200 {
            return Err(format!("/health: {}", health.status()));
        }
        let sw = client
            .post(format!("{}/v1/sessions/{}/switch", self.base, self.session))
            .json(&json!({}))
            .send()
            .await
            .map_err(|e| format!("switch: {e}"))?;
        match sw.status().as_u16() {
            200 => Ok(()),
            s => Err(format!(
                "switch: {s} {}",
                sw.text().await.unwrap_or_default()
            )),
        }
    }
}

/// A raw TCP connection to the server.
pub async fn raw(srv: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", srv.port))
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", srv.base))
}

/// Whether the server closed `conn` (EOF or reset) within `within`; any
/// bytes it sends first (an error response) are read and skipped.
pub async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Writes `bytes`, ignoring a connection the server already closed.
pub async fn write_quietly(conn: &mut TcpStream, bytes: &[u8]) -> bool {
    conn.write_all(bytes).await.is_ok()
}

/// Reads a response's status line from `conn` within `within`.
pub async fn status_line<R: AsyncRead + Unpin>(conn: &mut R, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    while !got.contains(&b'\n') {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().map(str::to_string)
}
