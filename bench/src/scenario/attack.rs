//! An attack from the same machine, run beside a measured scenario
//! (`switch --attack`): slowloris connections that send one header byte a
//! second, and requests with made-up 1 KB methods at a fixed rate. The
//! question it answers (issue 13): does a legitimate client's switch p99
//! stay within 2× of its unattacked value.
//!
//! Raw TCP on purpose: no client library sends half a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// What the attack did, for the report.
#[derive(Debug, Default)]
pub struct AttackCounts {
    /// Slowloris connections opened (including reopened ones).
    pub slowloris_opened: AtomicU64,
    /// Junk-method requests sent.
    pub junk_sent: AtomicU64,
}

/// A running attack; aborted when stopped or dropped.
pub struct Attack {
    tasks: Vec<JoinHandle<()>>,
    /// Its counters.
    pub counts: Arc<AttackCounts>,
}

impl Attack {
    /// Starts `slowloris` connections and `junk_rate` junk requests per second.
    pub fn start(addr: SocketAddr, slowloris: u32, junk_rate: u32) -> Attack {
        let counts = Arc::new(AttackCounts::default());
        let mut tasks = Vec::new();
        for i in 0..slowloris {
            let counts = Arc::clone(&counts);
            tasks.push(tokio::spawn(slowloris_conn(addr, i, counts)));
        }
        if junk_rate > 0 {
            let counts = Arc::clone(&counts);
            tasks.push(tokio::spawn(junk(addr, junk_rate, counts)));
        }
        Attack { tasks, counts }
    }

    /// Stops every attacking task.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One slowloris client: a request line, then a header byte a second;
/// when the server closes it, it comes back.
async fn slowloris_conn(addr: SocketAddr, i: u32, counts: Arc<AttackCounts>) {
    // Spread the byte ticks over the second.
    tokio::time::sleep(Duration::from_millis(u64::from(i % 1000))).await;
    loop {
        let Ok(mut c) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        counts.slowloris_opened.fetch_add(1, Ordering::Relaxed);
        if c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .is_err()
        {
            continue;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if c.write_all(b"a").await.is_err() {
                break;
            }
        }
    }
}

/// Junk-method requests at `rate` per second on one keep-alive connection
/// (reopened when the server closes it); answers are read and dropped.
async fn junk(addr: SocketAddr, rate: u32, counts: Arc<AttackCounts>) {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut conn: Option<TcpStream> = None;
    let mut n: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tick.tick().await;
        n += 1;
        let method = format!("J{n:x}{}", "Z".repeat(1000));
        let req = format!("{method} /v1/time HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => continue,
            },
        };
        let ok = c.write_all(req.as_bytes()).await.is_ok()
            && matches!(
                tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            );
        counts.junk_sent.fetch_add(1, Ordering::Relaxed);
        if !ok {
            conn = None;
        }
    }
}
