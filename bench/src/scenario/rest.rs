//! `switch` and `get`: closed-loop REST load, one keep-alive connection per worker.
//!
//! Each worker sends a request, waits for the whole response, and sends the
//! next, so concurrency is exact and latency is the full request time seen by
//! a client. Workers walk disjoint strides of the session list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::{create_sessions, delete_sessions, mint_controller_tokens, start_sessions};
use crate::cli::RestArgs;
use crate::http::{HttpConn, ReqSpec, Target, count_error, error_kind};
use crate::report::Report;
use crate::scenario::LONG_BANK_MS;
use crate::scenario::attack::Attack;
use crate::stats::Dist;
use crate::sys::CpuMeter;

/// Which request the workers repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestKind {
    /// `POST /v1/sessions/{id}/switch` with `{}`: the hot path.
    Switch,
    /// `GET /v1/sessions/{id}`.
    Get,
}

impl RestKind {
    fn spec(self, id: uuid::Uuid) -> ReqSpec {
        match self {
            RestKind::Switch => ReqSpec {
                method: Method::POST,
                path: format!("/v1/sessions/{id}/switch"),
                body: Some(Bytes::from_static(b"{}")),
                authorization: None,
            },
            RestKind::Get => ReqSpec {
                method: Method::GET,
                path: format!("/v1/sessions/{id}"),
                body: None,
                authorization: None,
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            RestKind::Switch => "switch",
            RestKind::Get => "get",
        }
    }
}

/// What one worker measured.
struct WorkerResult {
    /// Latencies (ns) of successful requests started inside the measured window.
    samples: Vec<i64>,
    errors: BTreeMap<String, u64>,
    /// When its last request finished.
    finished: Instant,
}

/// Timing of the run, published to the workers once they are all connected.
#[derive(Clone, Copy)]
struct Window {
    /// When the workers may begin (warm-up starts).
    begin: Instant,
    measure_start: Instant,
    end: Instant,
    /// With `--rate`: the interval between one worker's requests.
    period: Option<Duration>,
}

/// One worker's share of a total request rate: `concurrency / rate` seconds
/// between its requests (`None` = closed loop, as fast as responses come).
pub fn worker_period(rate: Option<u32>, concurrency: usize) -> Option<Duration> {
    let rate = f64::from(rate?.max(1));
    Some(Duration::from_secs_f64(concurrency as f64 / rate))
}

/// Runs the `switch` or `get` scenario.
pub async fn run(
    target: Arc<Target>,
    args: RestArgs,
    kind: RestKind,
    server_pid: Option<u32>,
) -> Result<Report> {
    let n = args.sessions as usize;
    let c = args.concurrency as usize;
    eprintln!("[{}] creating and starting {n} sessions", kind.name());
    let ids = create_sessions(&target, vec![LONG_BANK_MS; n]).await?;
    start_sessions(&target, &ids).await?;
    let mut specs: Vec<ReqSpec> = ids.iter().map(|&id| kind.spec(id)).collect();
    if args.session_tokens {
        eprintln!("[{}] minting a controller token per session", kind.name());
        let tokens = mint_controller_tokens(&target, &ids).await?;
        for (spec, token) in specs.iter_mut().zip(tokens) {
            spec.authorization = Some(token);
        }
    }
    let specs = Arc::new(specs);

    eprintln!("[{}] opening {c} connections", kind.name());
    let (win_tx, win_rx) = watch::channel(None::<Window>);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(c);
    let mut handles = Vec::with_capacity(c);
    for w in 0..c {
        let (target, specs, win_rx, ready_tx) = (
            Arc::clone(&target),
            Arc::clone(&specs),
            win_rx.clone(),
            ready_tx.clone(),
        );
        handles.push(tokio::spawn(async move {
            worker(target, specs, w, c, win_rx, ready_tx).await
        }));
    }
    drop(ready_tx);
    for _ in 0..c {
        ready_rx
            .recv()
            .await
            .context("a worker failed to connect")?;
    }
    let begin = Instant::now();
    let measure_start = begin + args.warmup;
    let end = measure_start + args.duration;
    win_tx.send_replace(Some(Window {
        begin,
        measure_start,
        end,
        period: worker_period(args.rate, c),
    }));
    eprintln!(
        "[{}] running: {:?} warm-up + {:?} measured, {}",
        kind.name(),
        args.warmup,
        args.duration,
        args.rate.map_or(
            "closed loop (as fast as possible)".to_string(),
            |r| format!("paced at {r} req/s in total")
        )
    );

    // The attack starts with the warm-up, so the measured window sees it
    // in its steady state.
    let mut attack = args
        .attack
        .then(|| Attack::start(target.addr, args.attack_slowloris, args.attack_junk_rate));
    tokio::time::sleep_until(measure_start).await;
    let cpu = CpuMeter::start(server_pid);
    let mut samples = Vec::new();
    let mut errors = BTreeMap::new();
    let mut finished = measure_start;
    for h in handles {
        let r = h.await??;
        samples.extend(r.samples);
        for (k, v) in r.errors {
            *errors.entry(k).or_default() += v;
        }
        finished = finished.max(r.finished);
    }
    let (server_cpu, bench_cpu) = cpu.stop();
    let attack_counts = attack.as_mut().map(|a| {
        a.stop();
        (
            a.counts.slowloris_opened.load(Ordering::Relaxed),
            a.counts.junk_sent.load(Ordering::Relaxed),
        )
    });
    let elapsed = finished.saturating_duration_since(measure_start);
    let ok = samples.len() as u64;
    let err_total: u64 = errors.values().sum();

    delete_sessions(&target, &ids).await?;

    let mut report = Report::new(kind.name());
    report
        .param("url", target.base.authority())
        .param("sessions", n)
        .param("concurrency", c)
        .param("duration_s", args.duration.as_secs_f64())
        .param("rate", args.rate)
        .param("attack", args.attack)
        .result("attack_slowloris_opened", attack_counts.map(|c| c.0))
        .result("attack_junk_sent", attack_counts.map(|c| c.1))
        .param("session_tokens", args.session_tokens)
        .result("ok", ok)
        .result("errors_total", err_total)
        .result("elapsed_s", round3(elapsed.as_secs_f64()))
        .result("rps", rate(ok, elapsed))
        .result("server_cpu_s", server_cpu)
        .result("server_cpu_us_per_req", per_unit_us(server_cpu, ok))
        .result("bench_cpu_s", bench_cpu)
        .dist("latency", Dist::from_samples(samples))
        .add_errors(&errors);
    Ok(report)
}

/// Requests per second, rounded to 0.1.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        return 0.0;
    }
    (count as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0
}

/// CPU microseconds per unit of work (request, delivery), rounded to 0.1 µs.
pub fn per_unit_us(cpu_s: Option<f64>, units: u64) -> Option<f64> {
    let cpu_s = cpu_s?;
    if units == 0 {
        return None;
    }
    Some((cpu_s * 1e6 / units as f64 * 10.0).round() / 10.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn worker(
    target: Arc<Target>,
    specs: Arc<Vec<ReqSpec>>,
    index: usize,
    stride: usize,
    mut win_rx: watch::Receiver<Option<Window>>,
    ready_tx: tokio::sync::mpsc::Sender<()>,
) -> Result<WorkerResult> {
    let mut conn = HttpConn::connect(&target).await?;
    let _ = ready_tx.send(()).await;
    drop(ready_tx);
    let win = (*win_rx
        .wait_for(Option::is_some)
        .await
        .context("the run was abandoned")?)
    .context("window missing")?;

    let n = specs.len();
    let mut i = index % n;
    let mut samples = Vec::with_capacity(64 * 1024);
    let mut errors = BTreeMap::new();
    let mut finished = Instant::now();
    // Paced workers are staggered evenly over one period.
    let mut next = win.begin + win.period.unwrap_or_default() * (index as u32) / (stride as u32);
    loop {
        if let Some(period) = win.period {
            if next >= win.end {
                break;
            }
            tokio::time::sleep_until(next).await;
            // The schedule is absolute, so timer slop does not add up; but after
            // a stall of more than a period, resume from now instead of bursting
            // to catch up (the achieved rate in the report shows the shortfall).
            next += period;
            let now = Instant::now();
            if next + period < now {
                next = now;
            }
        }
        let start = Instant::now();
        if start >= win.end {
            break;
        }
        let spec = &specs[i];
        i = (i + stride) % n;
        let res = conn.send(spec).await;
        finished = Instant::now();
        let measured = start >= win.measure_start;
        match res {
            Ok((StatusCode::OK, _)) => {
                if measured {
                    samples.push(i64::try_from((finished - start).as_nanos()).unwrap_or(i64::MAX));
                }
            }
            Ok((status, _)) => {
                if measured {
                    count_error(&mut errors, status.as_str());
                }
            }
            Err(e) => {
                if measured {
                    count_error(&mut errors, error_kind(&e));
                }
                // A broken connection is replaced; if the server is gone, back
                // off briefly so the loop does not spin until the deadline.
                match HttpConn::connect(&target).await {
                    Ok(c) => conn = c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    }
    Ok(WorkerResult {
        samples,
        errors,
        finished,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_per_second() {
        assert_eq!(rate(30_000, Duration::from_secs(10)), 3000.0);
        assert_eq!(rate(1, Duration::from_millis(3)), 333.3);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert_eq!(per_unit_us(Some(1.5), 100_000), Some(15.0));
        assert_eq!(per_unit_us(Some(1.5), 0), None);
        assert_eq!(per_unit_us(None, 10), None);
    }

    #[test]
    fn paced_workers_share_the_rate() {
        assert_eq!(worker_period(None, 64), None);
        assert_eq!(
            worker_period(Some(32_000), 64),
            Some(Duration::from_millis(2))
        );
        assert_eq!(worker_period(Some(1), 1), Some(Duration::from_secs(1)));
    }

    #[test]
    fn specs_hit_the_contract_paths() {
        let id = uuid::Uuid::nil();
        let s = RestKind::Switch.spec(id);
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, format!("/v1/sessions/{id}/switch"));
        assert_eq!(s.body.as_deref(), Some(&b"{}"[..]));
        let g = RestKind::Get.spec(id);
        assert_eq!((g.method, g.body), (Method::GET, None));
        assert_eq!(g.path, format!("/v1/sessions/{id}"));
    }
}
