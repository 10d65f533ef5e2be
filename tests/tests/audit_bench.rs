//! Audit trail benchmarks (ignored by default; `make bench-audit` runs them
//! in release). They print numbers rather than assert timing goals:
//!
//! - memory engine → queue → PostgreSQL at a fixed offered rate (target
//!   ≥ 10,000 events/s with a steady-state lag under 1 s), then flat out;
//! - Redis engine → outbox streams → consumer group → PostgreSQL at a
//!   fixed offered rate;
//! - PostgreSQL stopped for 30 s while switches continue on Redis: switch
//!   latency before/during, catch-up time, and that every event arrives once.
//!
//! PostgreSQL runs with its default durability (fsync on).

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synckairos::audit::outbox::{OutboxConfig, start_outbox_consumer};
use synckairos::audit::{self, AuditConfig, AuditHandle, AuditMetrics, start_memory_writer};
use synckairos::domain::{Command as Cmd, CreateSpec, SwitchArgs};
use synckairos::engine::memory::MemoryEngine;
use synckairos::engine::redis::{RedisConfig, connect};
use synckairos::metrics::Metrics;
use synckairos::service::{Service, ServiceConfig};
use synckairos_tests::postgres::Postgres;
use synckairos_tests::redis::RedisServer;
use synckairos_tests::stats::{P50, P99, percentile};
use uuid::Uuid;

const SESSIONS: usize = 200;

async fn redis() -> Arc<RedisServer> {
    RedisServer::start().await.expect("redis-server")
}

async fn pg() -> Postgres {
    Postgres::start_durable_async()
        .await
        .expect("ephemeral postgres")
}

fn spec(id: Uuid) -> CreateSpec {
    CreateSpec::from_json(&json!({
        "session_id": id.to_string(),
        "sync_mode": "per_participant",
        "total_time_ms": 3_600_000,
        "increment_ms": 2000,
        "participants": [
            {"participant_id": "white", "participant_index": 0},
            {"participant_id": "black", "participant_index": 1}
        ],
        "metadata": {"event": "audit-bench", "board": 1}
    }))
    .expect("valid spec")
}

async fn sessions(svc: &Arc<Service>) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..SESSIONS).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        svc.create(spec(*id)).await.expect("create");
        svc.command(*id, Cmd::Start).await.expect("start");
    }
    ids
}

fn rows(pg: &Postgres) -> u64 {
    pg.psql("postgres", "SELECT count(*) FROM sync_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Offers switches at `rate`/s for `dur` from `workers` concurrent tasks;
/// returns (commits, switch latencies).
async fn offer(
    svc: &Arc<Service>,
    ids: &[Uuid],
    rate: u64,
    dur: Duration,
    workers: usize,
) -> (u64, Vec<Duration>) {
    let per_worker_tick = (rate / 100 / workers as u64).max(1);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let svc = Arc::clone(svc);
        let mine: Vec<Uuid> = ids.iter().skip(w).step_by(workers).copied().collect();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0usize;
            while started.elapsed() < dur {
                tick.tick().await;
                for _ in 0..per_worker_tick {
                    let t = Instant::now();
                    svc.command(mine[i % mine.len()], Cmd::Switch(SwitchArgs::default()))
                        .await
                        .expect("switch");
                    lat.push(t.elapsed());
                    i += 1;
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    all.sort();
    (all.len() as u64, all)
}

/// Samples the consumer's lag every 100 ms until stopped.
fn sample_lag(
    handle: Arc<AuditHandle>,
) -> (
    tokio::task::JoinHandle<Vec<Duration>>,
    Arc<tokio::sync::Notify>,
) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => out.push(handle.lag()),
                _ = s.notified() => return out,
            }
        }
    });
    (task, stop)
}

async fn drain(pg: &Postgres, want: u64, within: Duration) -> Duration {
    let t = Instant::now();
    while rows(pg) < want {
        assert!(
            t.elapsed() < within,
            "audit did not catch up: {} of {want}",
            rows(pg)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

fn report(
    name: &str,
    commits: u64,
    dur: Duration,
    lags: &mut [Duration],
    m: &AuditMetrics,
    catch_up: Duration,
) {
    // The first second is warm-up (pool connections, first batches).
    let steady: &mut [Duration] = if lags.len() > 10 {
        &mut lags[10..]
    } else {
        lags
    };
    steady.sort();
    let batches = m.batch_seconds.get_sample_count();
    println!(
        "{name}: offered {:.0} events/s for {:.1}s ({commits} events); written {} rows; \
         steady lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {batches} batches, mean batch {:.1} ms \
         ({:.0} events/batch); commit→row delay of each batch's oldest event p50 ≤ {:.0} ms, p99 ≤ {:.0} ms; \
         drained {:.2}s after the load stopped",
        commits as f64 / dur.as_secs_f64(),
        dur.as_secs_f64(),
        m.rows_written.get(),
        ms(percentile(steady, P50).unwrap_or_default()),
        ms(percentile(steady, P99).unwrap_or_default()),
        ms(steady.last().copied().unwrap_or_default()),
        m.batch_seconds.get_sample_sum() * 1000.0 / batches.max(1) as f64,
        m.rows_written.get() as f64 / batches.max(1) as f64,
        audit::metrics::quantile_le(&m.event_delay_seconds, 0.5) * 1000.0,
        audit::metrics::quantile_le(&m.event_delay_seconds, 0.99) * 1000.0,
        catch_up.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench-audit"]
async fn bench_memory_queue_into_postgres() {
    let pg = pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let mut cfg = AuditConfig::new(&url);
    cfg.queue_capacity = 1_000_000;
    let (tx, handle) = start_memory_writer(cfg, metrics.clone()).expect("writer");
    let handle = Arc::new(handle);
    let svc = Service::new(
        Arc::new(MemoryEngine::new(Some(tx))),
        Arc::new(Metrics::new()),
        ServiceConfig::default(),
    );
    let ids = sessions(&svc).await;
    drain(&pg, 2 * SESSIONS as u64, Duration::from_secs(30)).await;

    let (sampler, stop) = sample_lag(Arc::clone(&handle));
    let dur = Duration::from_secs(20);
    let t = Instant::now();
    let (n, _) = offer(&svc, &ids, 12_000, dur, 2).await;
    let took = t.elapsed();
    let catch_up = drain(&pg, 2 * SESSIONS as u64 + n, Duration::from_secs(120)).await;
    stop.notify_one();
    let mut lags = sampler.await.expect("sampler");
    report(
        "memory queue, fixed rate",
        n,
        took,
        &mut lags,
        &metrics,
        catch_up,
    );

    // Flat out: enqueue as fast as the service commits, measure the writer.
    let base = rows(&pg);
    let t = Instant::now();
    let (n, _) = offer(&svc, &ids, 1_000_000, Duration::from_secs(5), 2).await;
    drain(&pg, base + n, Duration::from_secs(300)).await;
    let total = t.elapsed();
    println!(
        "memory queue, flat out: {n} events committed in 5 s, all written after {:.2}s → {:.0} events/s into PostgreSQL",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    assert_eq!(metrics.dropped.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench-audit"]
async fn bench_redis_outbox_into_postgres() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = connect(
        RedisConfig {
            url: Some(redis.url()),
            audit: true,
            outbox_max_len: 10_000,
            ..RedisConfig::default()
        },
        &Metrics::new(),
    )
    .await
    .expect("redis engine");
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let outbox = OutboxConfig::default();
    let handle = Arc::new(
        start_outbox_consumer(
            engine.outbox(),
            AuditConfig::new(&url),
            outbox,
            metrics.clone(),
        )
        .expect("consumer"),
    );
    let svc = Service::new(engine, Arc::new(Metrics::new()), ServiceConfig::default());
    let ids = sessions(&svc).await;
    drain(&pg, 2 * SESSIONS as u64, Duration::from_secs(30)).await;

    let (sampler, stop) = sample_lag(Arc::clone(&handle));
    let dur = Duration::from_secs(20);
    let t = Instant::now();
    let (n, lat) = offer(&svc, &ids, 10_000, dur, 64).await;
    let took = t.elapsed();
    let catch_up = drain(&pg, 2 * SESSIONS as u64 + n, Duration::from_secs(120)).await;
    stop.notify_one();
    let mut lags = sampler.await.expect("sampler");
    report(
        "redis outbox, fixed rate",
        n,
        took,
        &mut lags,
        &metrics,
        catch_up,
    );
    println!(
        "redis outbox, switch latency under load: p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&lat, P50).unwrap_or_default()),
        ms(percentile(&lat, P99).unwrap_or_default())
    );
    assert_eq!(metrics.dropped.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench-audit"]
async fn bench_postgres_down_30s_under_redis_load() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = connect(
        RedisConfig {
            url: Some(redis.url()),
            audit: true,
            outbox_max_len: 10_000,
            ..RedisConfig::default()
        },
        &Metrics::new(),
    )
    .await
    .expect("redis engine");
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let mut cfg = AuditConfig::new(&url);
    cfg.retry_max = Duration::from_secs(1);
    cfg.connect_timeout = Duration::from_millis(500);
    let outbox = OutboxConfig::default();
    let handle = Arc::new(
        start_outbox_consumer(engine.outbox(), cfg, outbox, metrics.clone()).expect("consumer"),
    );
    let svc = Service::new(engine, Arc::new(Metrics::new()), ServiceConfig::default());
    let ids = sessions(&svc).await;
    let mut commits = 2 * SESSIONS as u64;

    let rate = 5_000;
    let (n, before) = offer(&svc, &ids, rate, Duration::from_secs(5), 32).await;
    commits += n;
    tokio::task::block_in_place(|| pg.stop()).expect("stop postgres");
    let (n, during) = offer(&svc, &ids, rate, Duration::from_secs(30), 32).await;
    commits += n;
    let backlog = handle.backlog();
    let lag = handle.lag();
    tokio::task::block_in_place(|| pg.start_again()).expect("restart postgres");
    let back = Instant::now();
    let (n, after) = offer(&svc, &ids, rate, Duration::from_secs(5), 32).await;
    commits += n;
    drain(&pg, commits, Duration::from_secs(300)).await;
    let catch_up = back.elapsed();
    let check = pg
        .psql(
            "postgres",
            "SELECT count(*), count(DISTINCT (session_id, version)) FROM sync_events",
        )
        .expect("check");
    println!(
        "postgres down 30 s under {rate} switches/s (redis): {commits} events, backlog at restart {backlog}, \
         lag at restart {:.1}s, all written {:.2}s after restart (load continuing); rows/distinct = {}; \
         dropped {}; switch p50/p99 before {:.2}/{:.2} ms, during outage {:.2}/{:.2} ms, after {:.2}/{:.2} ms",
        lag.as_secs_f64(),
        catch_up.as_secs_f64(),
        check.trim().replace('|', "/"),
        metrics.dropped.get(),
        ms(percentile(&before, P50).unwrap_or_default()),
        ms(percentile(&before, P99).unwrap_or_default()),
        ms(percentile(&during, P50).unwrap_or_default()),
        ms(percentile(&during, P99).unwrap_or_default()),
        ms(percentile(&after, P50).unwrap_or_default()),
        ms(percentile(&after, P99).unwrap_or_default()),
    );
    assert_eq!(check.trim(), format!("{commits}|{commits}"));
    assert_eq!(metrics.dropped.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench-audit"]
async fn bench_write_batch_direct() {
    let pg = pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    // Real events: commit switches on the memory engine into a big queue.
    let (tx, mut rx) = tokio::sync::mpsc::channel(200_000);
    let svc = Service::new(
        Arc::new(MemoryEngine::new(Some(tx))),
        Arc::new(Metrics::new()),
        ServiceConfig::default(),
    );
    let ids = sessions(&svc).await;
    for i in 0..100_000 {
        svc.command(ids[i % ids.len()], Cmd::Switch(SwitchArgs::default()))
            .await
            .expect("switch");
    }
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let store =
        synckairos::audit::store::AuditStore::connect_lazy(&AuditConfig::new(&url)).expect("pool");
    for size in [500usize, 1000, 2000] {
        let t = Instant::now();
        let mut n = 0u64;
        for chunk in events.chunks(size).take(30_000 / size) {
            store.write_batch(chunk).await.expect("write");
            n += chunk.len() as u64;
        }
        let took = t.elapsed();
        println!(
            "write_batch direct, batch {size}: {n} events in {:.2}s → {:.0} events/s ({:.1} ms/batch)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            ms(took) / (n as f64 / size as f64)
        );
        sqlx_truncate(&pg);
    }
}

fn sqlx_truncate(pg: &Postgres) {
    pg.psql("postgres", "TRUNCATE sync_events; TRUNCATE sync_sessions")
        .expect("truncate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with make bench-audit"]
async fn bench_redis_outbox_drain_rate() {
    // The service cannot commit 10k switches/s on a small box, so this
    // measures the consumer alone: fill the outbox with no consumer running,
    // then time how fast one consumer empties it into PostgreSQL.
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = connect(
        RedisConfig {
            url: Some(redis.url()),
            audit: true,
            outbox_max_len: 10_000,
            ..RedisConfig::default()
        },
        &Metrics::new(),
    )
    .await
    .expect("redis engine");
    let svc = Service::new(
        Arc::clone(&engine) as Arc<dyn synckairos::engine::Engine>,
        Arc::new(Metrics::new()),
        ServiceConfig::default(),
    );
    let ids = sessions(&svc).await;
    let (n, _) = offer(&svc, &ids, 1_000_000, Duration::from_secs(15), 64).await;
    let total = n + 2 * SESSIONS as u64;

    let metrics = AuditMetrics::unregistered().expect("metrics");
    let outbox = OutboxConfig::default();
    let t = Instant::now();
    let handle = start_outbox_consumer(
        engine.outbox(),
        AuditConfig::new(&url),
        outbox,
        metrics.clone(),
    )
    .expect("consumer");
    drain(&pg, total, Duration::from_secs(300)).await;
    let took = t.elapsed();
    println!(
        "redis outbox drain: {total} queued events written in {:.2}s → {:.0} events/s \
         ({} batches, mean batch {:.1} ms)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        metrics.batch_seconds.get_sample_count(),
        metrics.batch_seconds.get_sample_sum() * 1000.0
            / metrics.batch_seconds.get_sample_count().max(1) as f64,
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) = count(DISTINCT (session_id, version)) FROM sync_events"
        )
        .expect("check")
        .trim(),
        "t"
    );
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}
