//! `timeouts`: how late does the server announce an expired clock?
//!
//! M sessions get short banks spread evenly over [min, max], each has one
//! subscribed WebSocket client, and all are started. The start response says
//! when the clock hits zero (`deadline_ms`, server epoch ms). Server and
//! generator share the machine's clock, so lateness = local wall-clock time at
//! which `TIME_EXPIRED` arrives − `deadline_ms`. The server's own `timestamp`
//! on the message gives the firing lateness without the delivery. Clients keep
//! listening for a grace period after the last deadline, so a timeout that is
//! announced twice is counted.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::api::{WsMsg, create_sessions, delete_sessions, start_sessions};
use crate::cli::{BaseUrl, TimeoutsArgs};
use crate::http::Target;
use crate::report::Report;
use crate::stats::Dist;
use crate::ws;

/// Bank of session `i` of `m`, spread evenly from `min` to `max` inclusive.
pub fn spread_bank(i: usize, m: usize, min: u64, max: u64) -> u64 {
    if m <= 1 {
        return min;
    }
    min + (max - min) * i as u64 / (m as u64 - 1)
}

/// Local wall clock in epoch microseconds (the same clock the server stamps with).
fn now_epoch_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    /// Local epoch µs of the first TIME_EXPIRED.
    received_us: Option<i64>,
    /// Server `timestamp` (epoch ms) of the first TIME_EXPIRED.
    server_ts_ms: Option<i64>,
    /// How many TIME_EXPIRED arrived (1 is right).
    count: u64,
    error: Option<String>,
}

/// Runs the `timeouts` scenario.
pub async fn run(target: Arc<Target>, ws_base: BaseUrl, args: TimeoutsArgs) -> Result<Report> {
    if args.min_bank_ms > args.max_bank_ms {
        bail!("--min-bank-ms must not exceed --max-bank-ms");
    }
    let m = args.sessions as usize;
    let banks: Vec<u64> = (0..m)
        .map(|i| spread_bank(i, m, args.min_bank_ms, args.max_bank_ms))
        .collect();
    eprintln!("[timeouts] creating {m} sessions");
    let ids = create_sessions(&target, banks).await?;

    eprintln!("[timeouts] subscribing {m} WebSocket clients");
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(m);
    let gate = Arc::new(Semaphore::new(ws::CONNECT_PARALLELISM));
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    let mut clients = Vec::with_capacity(m);
    for id in &ids {
        let url = ws_base.ws_url(&id.to_string());
        let (gate, ready_tx, stop_rx) = (Arc::clone(&gate), ready_tx.clone(), stop_rx.clone());
        clients.push(tokio::spawn(async move {
            client(url, gate, connect_deadline, ready_tx, stop_rx).await
        }));
    }
    drop(ready_tx);
    let mut connected = 0usize;
    while let Some(ok) = ready_rx.recv().await {
        connected += usize::from(ok);
    }

    eprintln!("[timeouts] starting {m} sessions ({connected} subscribed)");
    let started = match start_sessions(&target, &ids).await {
        Ok(s) => s,
        Err(e) => {
            stop_tx.send_replace(Some(Instant::now()));
            return Err(e);
        }
    };
    let last_deadline_ms = started
        .iter()
        .filter_map(|s| s.deadline_ms)
        .max()
        .unwrap_or(0);
    let wait_ms = (last_deadline_ms * 1000 - now_epoch_us()).max(0) / 1000;
    let hard_stop =
        Instant::now() + Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)) + args.grace;
    stop_tx.send_replace(Some(hard_stop));
    eprintln!(
        "[timeouts] waiting {:?} for the last deadline + grace",
        hard_stop - Instant::now()
    );

    let mut results = Vec::with_capacity(m);
    for h in clients {
        results.push(h.await?);
    }
    delete_sessions(&target, &ids).await?;

    let mut delivered = Vec::new();
    let mut fired = Vec::new();
    let (mut missing, mut duplicates, mut no_deadline) = (0u64, 0u64, 0u64);
    let mut errors = std::collections::BTreeMap::new();
    for (r, s) in results.iter().zip(&started) {
        if let Some(e) = &r.error {
            *errors.entry(format!("ws: {e}")).or_default() += 1;
        }
        let Some(deadline_ms) = s.deadline_ms else {
            no_deadline += 1;
            continue;
        };
        duplicates += r.count.saturating_sub(1);
        match r.received_us {
            Some(us) => delivered.push((us - deadline_ms * 1000) * 1000),
            None => missing += 1,
        }
        if let Some(ts) = r.server_ts_ms {
            fired.push((ts - deadline_ms) * 1_000_000);
        }
    }

    let mut report = Report::new("timeouts");
    report
        .param("url", target.base.authority())
        .param("ws_url", ws_base.authority())
        .param("sessions", m)
        .param("min_bank_ms", args.min_bank_ms)
        .param("max_bank_ms", args.max_bank_ms)
        .result("clients_connected", connected)
        .result("expired_received", delivered.len())
        .result("missing", missing)
        .result("duplicates", duplicates)
        .result("no_deadline", no_deadline)
        .dist("lateness_received", Dist::from_samples(delivered))
        .dist("lateness_server_ts", Dist::from_samples(fired))
        .add_errors(&errors);
    Ok(report)
}

/// One client: subscribe, then count TIME_EXPIRED until the hard stop.
async fn client(
    url: String,
    gate: Arc<Semaphore>,
    connect_deadline: Instant,
    ready_tx: mpsc::Sender<bool>,
    mut stop_rx: watch::Receiver<Option<Instant>>,
) -> ClientResult {
    let mut result = ClientResult::default();
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
            let _ = ready_tx.send(false).await;
            result.error = Some(e.to_string().chars().take(80).collect());
            return result;
        }
    };
    let _ = ready_tx.send(true).await;
    drop(ready_tx);
    loop {
        let stop = *stop_rx.borrow();
        tokio::select! {
            msg = conn.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let at = now_epoch_us();
                    if let Some(msg) = WsMsg::parse(text.as_str())
                        && msg.kind == "TIME_EXPIRED"
                    {
                        result.count += 1;
                        if result.received_us.is_none() {
                            result.received_us = Some(at);
                            result.server_ts_ms = msg.timestamp_ms();
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    result.error = Some(e.to_string());
                    break;
                }
            },
            changed = stop_rx.changed(), if stop.is_none() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = sleep_until_opt(stop) => break,
        }
    }
    ws::close(conn).await;
    result
}

/// Sleeps until `t`, or forever when there is no `t` yet.
async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_spread_evenly_over_the_range() {
        let b: Vec<u64> = (0..5).map(|i| spread_bank(i, 5, 1000, 2000)).collect();
        assert_eq!(b, vec![1000, 1250, 1500, 1750, 2000]);
        assert_eq!(spread_bank(0, 1, 1000, 2000), 1000);
        let b: Vec<u64> = (0..1000)
            .map(|i| spread_bank(i, 1000, 1000, 2000))
            .collect();
        assert_eq!((b[0], b[999]), (1000, 2000));
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
    }
}
