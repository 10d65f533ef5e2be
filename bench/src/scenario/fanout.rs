//! `fanout`: S sessions × K WebSocket clients, one REST driver switching.
//!
//! Delivery latency is measured on one clock: the driver notes the local time
//! just before sending each switch, every client notes the local time at which
//! the `STATE_UPDATE` carrying that switch's version arrived; the difference is
//! the latency. The driver is the only writer, so every version after a
//! client's initial `STATE_SYNC` is expected at every client: versions never
//! received are "missed", versions lower than one already seen are
//! "out of order" (the contract says this never happens).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, StatusCode};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::api::{WsMsg, create_sessions, delete_sessions, parse_state, start_sessions};
use crate::cli::{BaseUrl, FanoutArgs};
use crate::http::{HttpConn, ReqSpec, Target, count_error, error_kind};
use crate::report::Report;
use crate::scenario::LONG_BANK_MS;
use crate::scenario::rest::{per_unit_us, rate};
use crate::stats::Dist;
use crate::sys::CpuMeter;
use crate::ws;

/// Published by the driver when it stops: the last version of each session and
/// the time after which clients stop waiting for it.
#[derive(Clone)]
struct Finish {
    finals: Arc<Vec<u64>>,
    hard_stop: Instant,
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    session: usize,
    initial_version: u64,
    /// (version, local receive time) of every STATE_UPDATE.
    received: Vec<(u64, Instant)>,
    out_of_order: u64,
    duplicates: u64,
    error: Option<String>,
}

/// One switch the driver made.
struct Sent {
    session: usize,
    version: u64,
    at: Instant,
}

/// Runs the `fanout` scenario.
pub async fn run(
    target: Arc<Target>,
    ws_base: BaseUrl,
    args: FanoutArgs,
    server_pid: Option<u32>,
) -> Result<Report> {
    let s = args.sessions as usize;
    let k = args.clients as usize;
    eprintln!("[fanout] creating and starting {s} sessions");
    let ids = create_sessions(&target, vec![LONG_BANK_MS; s]).await?;
    start_sessions(&target, &ids).await?;

    eprintln!(
        "[fanout] connecting {} WebSocket clients to {}",
        s * k,
        ws_base.authority()
    );
    let (finish_tx, finish_rx) = watch::channel(None::<Finish>);
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(s * k);
    let gate = Arc::new(Semaphore::new(ws::CONNECT_PARALLELISM));
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    let mut clients = Vec::with_capacity(s * k);
    for c in 0..s * k {
        let session = c % s;
        let url = ws_base.ws_url(&ids[session].to_string());
        let (gate, ready_tx, finish_rx) = (Arc::clone(&gate), ready_tx.clone(), finish_rx.clone());
        clients.push(tokio::spawn(async move {
            client(url, session, gate, connect_deadline, ready_tx, finish_rx).await
        }));
    }
    drop(ready_tx);
    let mut connected = 0usize;
    let mut connect_failed = 0usize;
    while let Some(ok) = ready_rx.recv().await {
        if ok {
            connected += 1;
        } else {
            connect_failed += 1;
        }
    }
    eprintln!(
        "[fanout] {connected} clients subscribed, {connect_failed} failed; driving {} switches/s for {:?}",
        args.rate, args.duration
    );

    let cpu = CpuMeter::start(server_pid);
    let driver_result = drive(&target, &ids, args.rate, args.duration).await;
    let (sent, mut errors, finals, drive_elapsed) = match driver_result {
        Ok(d) => d,
        Err(e) => {
            // Let the clients go before reporting the failure.
            finish_tx.send_replace(Some(Finish {
                finals: Arc::new(vec![u64::MAX; s]),
                hard_stop: Instant::now(),
            }));
            return Err(e);
        }
    };
    finish_tx.send_replace(Some(Finish {
        finals: Arc::new(finals),
        hard_stop: Instant::now() + args.grace,
    }));

    let mut results = Vec::with_capacity(clients.len());
    for h in clients {
        results.push(h.await?);
    }
    let (server_cpu, bench_cpu) = cpu.stop();
    delete_sessions(&target, &ids).await?;

    let sent_at: HashMap<(usize, u64), Instant> = sent
        .iter()
        .map(|x| ((x.session, x.version), x.at))
        .collect();
    let mut per_session: Vec<Vec<u64>> = vec![Vec::new(); s];
    for x in &sent {
        per_session[x.session].push(x.version);
    }
    let mut latencies = Vec::new();
    let (mut missed, mut ooo, mut dups, mut unmatched, mut expected_total) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for r in &results {
        if let Some(e) = &r.error {
            count_error(&mut errors, &format!("ws: {e}"));
            continue;
        }
        ooo += r.out_of_order;
        dups += r.duplicates;
        let mut seen = HashSet::with_capacity(r.received.len());
        for &(version, at) in &r.received {
            seen.insert(version);
            match sent_at.get(&(r.session, version)) {
                Some(&t) => latencies.push(
                    i64::try_from(at.saturating_duration_since(t).as_nanos()).unwrap_or(i64::MAX),
                ),
                None => unmatched += 1,
            }
        }
        let expected = per_session[r.session]
            .iter()
            .filter(|&&v| v > r.initial_version);
        for v in expected {
            expected_total += 1;
            if !seen.contains(v) {
                missed += 1;
            }
        }
    }

    let mut report = Report::new("fanout");
    report
        .param("url", target.base.authority())
        .param("ws_url", ws_base.authority())
        .param("sessions", s)
        .param("clients_per_session", k)
        .param("clients", s * k)
        .param("rate", args.rate)
        .param("duration_s", args.duration.as_secs_f64())
        .result("clients_connected", connected)
        .result("switches", sent.len())
        .result("switch_rps", rate(sent.len() as u64, drive_elapsed))
        .result("deliveries_expected", expected_total)
        .result("deliveries", latencies.len())
        .result("missed", missed)
        .result("out_of_order", ooo)
        .result("duplicates", dups)
        .result("unmatched", unmatched)
        .result("server_cpu_s", server_cpu)
        .result(
            "server_cpu_us_per_delivery",
            per_unit_us(server_cpu, latencies.len() as u64),
        )
        .result("bench_cpu_s", bench_cpu)
        .dist("delivery_latency", Dist::from_samples(latencies))
        .add_errors(&errors);
    Ok(report)
}

/// The single driver: switches the sessions round-robin at `rate` per second
/// for `duration`, one request at a time over one connection.
async fn drive(
    target: &Arc<Target>,
    ids: &[Uuid],
    rate: u32,
    duration: Duration,
) -> Result<(Vec<Sent>, BTreeMap<String, u64>, Vec<u64>, Duration)> {
    let specs: Vec<ReqSpec> = ids
        .iter()
        .map(|id| ReqSpec {
            method: Method::POST,
            path: format!("/v1/sessions/{id}/switch"),
            body: Some(Bytes::from_static(b"{}")),
            authorization: None,
        })
        .collect();
    let mut conn = HttpConn::connect(target).await?;
    let mut finals = vec![0u64; ids.len()];
    let mut sent = Vec::new();
    let mut errors = BTreeMap::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = Instant::now();
    let end = start + duration;
    let mut next = start;
    let mut i = 0usize;
    while next < end {
        tokio::time::sleep_until(next).await;
        next += period;
        let session = i % ids.len();
        i += 1;
        let at = Instant::now();
        match conn.send(&specs[session]).await {
            Ok((StatusCode::OK, body)) => {
                let state = parse_state(&body).context("switch response")?;
                finals[session] = finals[session].max(state.version);
                sent.push(Sent {
                    session,
                    version: state.version,
                    at,
                });
            }
            Ok((status, _)) => count_error(&mut errors, status.as_str()),
            Err(e) => {
                count_error(&mut errors, error_kind(&e));
                conn = HttpConn::connect(target).await?;
            }
        }
    }
    Ok((sent, errors, finals, start.elapsed()))
}

/// One subscribed client: connects, waits for its STATE_SYNC, reports ready,
/// then records every STATE_UPDATE until it has the session's final version or
/// the hard stop passes.
async fn client(
    url: String,
    session: usize,
    gate: Arc<Semaphore>,
    connect_deadline: Instant,
    ready_tx: mpsc::Sender<bool>,
    mut finish_rx: watch::Receiver<Option<Finish>>,
) -> ClientResult {
    let mut result = ClientResult {
        session,
        ..ClientResult::default()
    };
    let connected = async {
        let _permit = gate.acquire().await?;
        let mut conn = ws::connect(&url).await?;
        let version = ws::await_state(&mut conn, connect_deadline).await?;
        Ok::<_, anyhow::Error>((conn, version))
    }
    .await;
    let (mut conn, version) = match connected {
        Ok(x) => x,
        Err(e) => {
            let _ = ready_tx.send(false).await;
            result.error = Some(short(&e));
            return result;
        }
    };
    let _ = ready_tx.send(true).await;
    drop(ready_tx);
    result.initial_version = version;
    let mut last = version;
    loop {
        let finish = finish_rx.borrow().clone();
        if let Some(f) = &finish
            && last >= f.finals[session]
        {
            break;
        }
        let hard_stop = finish.as_ref().map(|f| f.hard_stop);
        tokio::select! {
            msg = conn.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    if let Some(WsMsg { kind, state: Some(state), .. }) = WsMsg::parse(text.as_str())
                        && kind == "STATE_UPDATE"
                    {
                        let v = state.version;
                        if v < last {
                            result.out_of_order += 1;
                        } else if v == last {
                            result.duplicates += 1;
                        }
                        last = last.max(v);
                        result.received.push((v, at));
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    result.error = Some(format!("closed by server: {frame:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    result.error = Some(e.to_string());
                    break;
                }
                None => {
                    result.error = Some("connection ended".into());
                    break;
                }
            },
            changed = finish_rx.changed(), if finish.is_none() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = sleep_until_opt(hard_stop) => break,
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

/// The first line of an error, for grouping in the error table.
fn short(e: &anyhow::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect()
}
