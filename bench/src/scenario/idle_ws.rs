//! `idle-ws`: what does an idle WebSocket connection cost the server?
//!
//! Creates the sessions first (so their memory is not counted), reads the
//! server's VmRSS from /proc/PID/status, opens K connections that each receive
//! CONNECTED + STATE_SYNC and then stay idle (answering pings), lets the server
//! settle, reads VmRSS again and divides the growth by K. RSS is coarse
//! (allocator arenas, page granularity), so K should be large (thousands).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{create_sessions, delete_sessions};
use crate::cli::{BaseUrl, IdleWsArgs};
use crate::http::Target;
use crate::report::Report;
use crate::scenario::LONG_BANK_MS;
use crate::sys::read_rss_kib;
use crate::ws;

/// Runs the `idle-ws` scenario.
pub async fn run(
    target: Arc<Target>,
    ws_base: BaseUrl,
    args: IdleWsArgs,
    server_pid: Option<u32>,
) -> Result<Report> {
    let server_pid =
        server_pid.context("idle-ws needs --server-pid PID (the server's process id)")?;
    let k = args.connections as usize;
    let s = args.sessions as usize;
    read_rss_kib(server_pid)?;
    eprintln!("[idle-ws] creating {s} sessions");
    let ids = create_sessions(&target, vec![LONG_BANK_MS; s]).await?;
    tokio::time::sleep(args.settle).await;
    let before = read_rss_kib(server_pid)?;

    eprintln!(
        "[idle-ws] opening {k} idle connections to {}",
        ws_base.authority()
    );
    let opened_at = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Option<String>>(k);
    let gate = Arc::new(Semaphore::new(ws::CONNECT_PARALLELISM));
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    let mut handles = Vec::with_capacity(k);
    for c in 0..k {
        let url = ws_base.ws_url(&ids[c % s].to_string());
        let (gate, ready_tx, stop_rx) = (Arc::clone(&gate), ready_tx.clone(), stop_rx.clone());
        handles.push(tokio::spawn(async move {
            idle_client(url, gate, connect_deadline, ready_tx, stop_rx).await;
        }));
    }
    drop(ready_tx);
    let mut connected = 0u64;
    let mut errors = std::collections::BTreeMap::new();
    while let Some(outcome) = ready_rx.recv().await {
        match outcome {
            None => connected += 1,
            Some(e) => *errors.entry(format!("ws: {e}")).or_default() += 1,
        }
    }
    let open_time = opened_at.elapsed();
    tokio::time::sleep(args.settle).await;
    let after = read_rss_kib(server_pid)?;

    stop_tx.send_replace(true);
    for h in handles {
        h.await?;
    }
    delete_sessions(&target, &ids).await?;
    tokio::time::sleep(args.settle).await;
    let after_close = read_rss_kib(server_pid)?;

    let delta = after.saturating_sub(before);
    let per_conn = if connected == 0 {
        0.0
    } else {
        (delta as f64 / connected as f64 * 100.0).round() / 100.0
    };
    let mut report = Report::new("idle-ws");
    report
        .param("url", target.base.authority())
        .param("ws_url", ws_base.authority())
        .param("connections", k)
        .param("sessions", s)
        .param("server_pid", server_pid)
        .result("connected", connected)
        .result(
            "open_s",
            (open_time.as_secs_f64() * 1000.0).round() / 1000.0,
        )
        .result("rss_before_kib", before)
        .result("rss_after_kib", after)
        .result("rss_after_close_kib", after_close)
        .result("rss_delta_kib", delta)
        .result("kib_per_connection", per_conn)
        .add_errors(&errors);
    Ok(report)
}

/// Connects, waits for the first state, reports, then only answers pings until told to stop.
async fn idle_client(
    url: String,
    gate: Arc<Semaphore>,
    connect_deadline: Instant,
    ready_tx: mpsc::Sender<Option<String>>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let connected = async {
        let _permit = gate.acquire().await?;
        let mut conn = ws::connect(&url).await?;
        ws::await_state(&mut conn, connect_deadline).await?;
        Ok::<_, anyhow::Error>(conn)
    }
    .await;
    let mut conn = match connected {
        Ok(c) => c,
        Err(e) => {
            let _ = ready_tx
                .send(Some(e.to_string().chars().take(80).collect()))
                .await;
            return;
        }
    };
    let _ = ready_tx.send(None).await;
    drop(ready_tx);
    loop {
        tokio::select! {
            msg = conn.next() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            changed = stop_rx.changed() => {
                if changed.is_err() || *stop_rx.borrow() {
                    break;
                }
            }
        }
    }
    ws::close(conn).await;
}
