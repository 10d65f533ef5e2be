//! The audit trail fed by the Redis engine's outbox streams, against a real
//! redis-server and a real ephemeral PostgreSQL: every change once in version
//! order, a consumer that dies with entries pending, and a PostgreSQL outage
//! while switches continue.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synckairos::audit::outbox::{OutboxConfig, start_outbox_consumer};
use synckairos::audit::store::AuditStore;
use synckairos::audit::{self, AuditConfig, AuditHandle, AuditMetrics};
use synckairos::domain::{Command as Cmd, CreateSpec, SwitchArgs};
use synckairos::engine::redis::{RedisConfig, RedisEngine, connect, keys};
use synckairos::metrics::Metrics;
use synckairos::service::{Service, ServiceConfig};
use synckairos_tests::host::free_port;
use synckairos_tests::postgres::Postgres;
use synckairos_tests::redis::{RedisCluster, RedisServer};
use synckairos_tests::stats::{P50, P99, percentile};
use synckairos_tests::wait_until;
use uuid::Uuid;

async fn redis() -> Arc<RedisServer> {
    RedisServer::start().await.expect("redis-server")
}

async fn pg() -> Postgres {
    Postgres::start_async().await.expect("ephemeral postgres")
}

async fn engine(redis: &RedisServer) -> Arc<RedisEngine> {
    let cfg = RedisConfig {
        url: Some(redis.url()),
        audit: true,
        ..RedisConfig::default()
    };
    connect(cfg, &Metrics::new()).await.expect("redis engine")
}

fn service(engine: Arc<RedisEngine>) -> Arc<Service> {
    Service::new(engine, Arc::new(Metrics::new()), ServiceConfig::default())
}

fn consumer(
    engine: &RedisEngine,
    url: &str,
    outbox: OutboxConfig,
    metrics: AuditMetrics,
) -> AuditHandle {
    let mut cfg = AuditConfig::new(url);
    cfg.retry_max = Duration::from_millis(500);
    cfg.connect_timeout = Duration::from_millis(500);
    start_outbox_consumer(engine.outbox(), cfg, outbox, metrics).expect("consumer")
}

fn spec(id: Uuid) -> CreateSpec {
    CreateSpec::from_json(&json!({
        "session_id": id.to_string(),
        "sync_mode": "per_participant",
        "total_time_ms": 600_000,
        "participants": [
            {"participant_id": "white", "participant_index": 0},
            {"participant_id": "black", "participant_index": 1}
        ]
    }))
    .expect("valid spec")
}

fn switch() -> Cmd {
    Cmd::Switch(SwitchArgs::default())
}

fn count(pg: &Postgres, sql: &str) -> u64 {
    pg.psql("postgres", sql)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Every (session, version) exactly once, versions 1..=n without gaps.
fn assert_exactly_once(pg: &Postgres, commits: u64) {
    let check = pg
        .psql(
            "postgres",
            "SELECT count(*), count(DISTINCT (session_id, version)), bool_and(n = maxv) FROM (
               SELECT session_id, version, count(*) OVER (PARTITION BY session_id) AS n,
                      max(version) OVER (PARTITION BY session_id) AS maxv FROM sync_events) s",
        )
        .expect("check");
    assert_eq!(check.trim(), format!("{commits}|{commits}|t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outbox_every_change_once_in_version_order() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = engine(&redis).await;
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let handle = consumer(&engine, &url, OutboxConfig::default(), metrics);
    let svc = service(engine);

    let id = Uuid::new_v4();
    svc.create(spec(id)).await.expect("create");
    svc.command(id, Cmd::Start).await.expect("start");
    for _ in 0..4 {
        svc.command(id, switch()).await.expect("switch");
    }
    svc.command(id, Cmd::Pause).await.expect("pause");
    svc.command(id, Cmd::Resume).await.expect("resume");
    svc.command(id, Cmd::Cancel).await.expect("cancel");
    assert!(svc.delete(id).await.expect("delete"));

    let expected = [
        "1|session_created",
        "2|session_started",
        "3|cycle_switched",
        "4|cycle_switched",
        "5|cycle_switched",
        "6|cycle_switched",
        "7|session_paused",
        "8|session_resumed",
        "9|session_cancelled",
        "0|session_deleted",
    ];
    wait_until(Duration::from_secs(20), "10 audit rows", || {
        let pg = &pg;
        async move { count(pg, "SELECT count(*) FROM sync_events") == 10 }
    })
    .await;
    let store = AuditStore::connect_lazy(&AuditConfig::new(&url)).expect("pool");
    let page = store.history(id, None, 100).await.expect("history");
    let got: Vec<String> = page
        .data
        .iter()
        .map(|r| format!("{}|{}", r.version, r.event_type))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(page.next_cursor, None);
    let status = pg
        .psql(
            "postgres",
            &format!(
                "SELECT final_status, last_version FROM sync_sessions WHERE session_id = '{id}'"
            ),
        )
        .expect("session row");
    assert_eq!(status.trim(), "cancelled|9");
    // Acknowledged entries are deleted: the streams hold only unwritten events.
    wait_until(Duration::from_secs(5), "backlog measured as 0", || {
        let h = &handle;
        async move { h.backlog() == 0 }
    })
    .await;
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_left_pending_by_a_dead_consumer_are_claimed() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = engine(&redis).await;
    let svc = service(Arc::clone(&engine));

    // Consumer A reads entries but can never write them (its PostgreSQL
    // does not exist), so they stay pending under its name; then it dies.
    let dead_url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        free_port().expect("port")
    );
    let a_metrics = AuditMetrics::unregistered().expect("metrics");
    let a = consumer(
        &engine,
        &dead_url,
        OutboxConfig::default(),
        a_metrics.clone(),
    );
    let sessions: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let mut commits = 0u64;
    for id in &sessions {
        svc.create(spec(*id)).await.expect("create");
        svc.command(*id, Cmd::Start).await.expect("start");
        for _ in 0..5 {
            svc.command(*id, switch()).await.expect("switch");
        }
        commits += 7;
    }
    wait_until(
        Duration::from_secs(20),
        "consumer A took entries and failed to write",
        || {
            let m = &a_metrics;
            async move { m.failures.get() > 0 }
        },
    )
    .await;
    a.shutdown(Duration::from_millis(100)).await;
    drop(a);

    // Consumer B (another instance) claims what A left pending.
    let outbox = OutboxConfig {
        claim_idle: Duration::from_millis(500),
        claim_interval: Duration::from_millis(250),
        ..OutboxConfig::default()
    };
    let b_metrics = AuditMetrics::unregistered().expect("metrics");
    let b = consumer(&engine, &url, outbox, b_metrics.clone());
    wait_until(Duration::from_secs(30), "every commit written by B", || {
        let pg = &pg;
        async move { count(pg, "SELECT count(*) FROM sync_events") == commits }
    })
    .await;
    assert!(b_metrics.claimed.get() > 0, "B claimed A's pending entries");
    assert_exactly_once(&pg, commits);
    assert_eq!(b.shutdown(Duration::from_secs(5)).await, 0);
}

async fn switch_for(
    svc: &Arc<Service>,
    sessions: &[Uuid],
    rate: u64,
    dur: Duration,
) -> Vec<Duration> {
    let mut lat = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate / 100).max(1);
    let mut i = 0usize;
    while started.elapsed() < dur {
        tick.tick().await;
        for _ in 0..per_tick {
            let t = Instant::now();
            svc.command(sessions[i % sessions.len()], switch())
                .await
                .expect("switch");
            lat.push(t.elapsed());
            i += 1;
        }
    }
    lat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_with_redis_loses_nothing_and_switches_stay_fast() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = engine(&redis).await;
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let handle = consumer(&engine, &url, OutboxConfig::default(), metrics.clone());
    let svc = service(engine);

    let sessions: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for id in &sessions {
        svc.create(spec(*id)).await.expect("create");
        svc.command(*id, Cmd::Start).await.expect("start");
    }
    let mut commits = 2 * sessions.len() as u64;
    let mut before = switch_for(&svc, &sessions, 500, Duration::from_secs(1)).await;
    commits += before.len() as u64;

    tokio::task::block_in_place(|| pg.stop()).expect("stop postgres");
    let outage = Instant::now();
    let mut during = switch_for(&svc, &sessions, 500, Duration::from_secs(4)).await;
    commits += during.len() as u64;
    wait_until(Duration::from_secs(5), "backlog visible", || {
        let h = &handle;
        async move { h.backlog() > 0 }
    })
    .await;
    let backlog = handle.backlog();
    assert!(metrics.failures.get() > 0, "the outage was noticed");
    tokio::task::block_in_place(|| pg.start_again()).expect("restart postgres");
    let down = outage.elapsed();
    let after = switch_for(&svc, &sessions, 500, Duration::from_secs(1)).await;
    commits += after.len() as u64;

    let back = Instant::now();
    wait_until(Duration::from_secs(60), "every commit written", || {
        let pg = &pg;
        async move { count(pg, "SELECT count(*) FROM sync_events") == commits }
    })
    .await;
    let catch_up = back.elapsed();
    assert_exactly_once(&pg, commits);
    assert_eq!(metrics.dropped.get(), 0);
    before.sort();
    during.sort();
    println!(
        "audit outage (redis): postgres down {:.1}s, {commits} commits, backlog {backlog}, caught up {:.2}s \
         after restart; switch p50/p99 before {:?}/{:?}, during outage {:?}/{:?}",
        down.as_secs_f64(),
        catch_up.as_secs_f64(),
        percentile(&before, P50).unwrap_or_default(),
        percentile(&before, P99).unwrap_or_default(),
        percentile(&during, P50).unwrap_or_default(),
        percentile(&during, P99).unwrap_or_default(),
    );
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_outbox_every_change_once() {
    // 3 primaries, no replicas.
    let cluster = RedisCluster::start_sized(3, 0)
        .await
        .expect("redis cluster");
    let pg = pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = connect(
        RedisConfig {
            cluster_nodes: cluster.addrs(),
            audit: true,
            ..RedisConfig::default()
        },
        &Metrics::new(),
    )
    .await
    .expect("redis cluster engine");
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let handle = consumer(&engine, &url, OutboxConfig::default(), metrics);
    let svc = service(engine);
    // Enough sessions to land in buckets on every node.
    let sessions: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    for id in &sessions {
        svc.create(spec(*id)).await.expect("create");
        svc.command(*id, Cmd::Start).await.expect("start");
        for _ in 0..3 {
            svc.command(*id, switch()).await.expect("switch");
        }
    }
    let commits = 5 * sessions.len() as u64;
    wait_until(Duration::from_secs(30), "every commit written", || {
        let pg = &pg;
        async move { count(pg, "SELECT count(*) FROM sync_events") == commits }
    })
    .await;
    assert_exactly_once(&pg, commits);
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}

fn consumer_names(redis: &RedisServer, stream: &str) -> Vec<String> {
    let text = redis
        .cli(&["XINFO", "CONSUMERS", stream, "synckairos-audit"])
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "name")
        .map(|w| w[1].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_stopped_instances_are_forgotten() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let engine = engine(&redis).await;
    let svc = service(Arc::clone(&engine));
    // A consumer appears in the group once it has been delivered an entry.
    let id = Uuid::new_v4();
    let stream = keys::outbox_key(keys::bucket(&id));

    let first = OutboxConfig {
        consumer: "stopped-instance".into(),
        ..OutboxConfig::default()
    };
    let a = consumer(
        &engine,
        &url,
        first,
        AuditMetrics::unregistered().expect("metrics"),
    );
    svc.create(spec(id)).await.expect("create");
    wait_until(Duration::from_secs(10), "A registered in the group", || {
        let (r, s) = (&redis, &stream);
        async move { consumer_names(r, s).contains(&"stopped-instance".to_string()) }
    })
    .await;
    assert_eq!(a.shutdown(Duration::from_secs(5)).await, 0);

    let second = OutboxConfig {
        consumer: "live-instance".into(),
        forget_idle: Duration::from_millis(500),
        forget_interval: Duration::from_millis(200),
        measure_interval: Duration::from_millis(100),
        ..OutboxConfig::default()
    };
    let b = consumer(
        &engine,
        &url,
        second,
        AuditMetrics::unregistered().expect("metrics"),
    );
    wait_until(
        Duration::from_secs(10),
        "A removed from the group by B",
        || {
            let (r, s) = (&redis, &stream);
            async move { !consumer_names(r, s).contains(&"stopped-instance".to_string()) }
        },
    )
    .await;
    assert_eq!(b.shutdown(Duration::from_secs(5)).await, 0);
}

/// An outage longer than a capped outbox would have survived: with the
/// high-water mark at 100 entries per stream (the old `MAXLEN ~` cap),
/// every stream in use grows to several times that while PostgreSQL is
/// down. Nothing is trimmed: the high-water signal is raised (metric,
/// `/ready` detail via the handle), and after the restart every event is
/// written exactly once and none is counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_grows_the_outbox_signals_high_water_and_loses_nothing() {
    let (redis, pg) = (redis().await, pg().await);
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let cfg = RedisConfig {
        url: Some(redis.url()),
        audit: true,
        outbox_max_len: 100,
        ..RedisConfig::default()
    };
    let engine = connect(cfg, &Metrics::new()).await.expect("redis engine");
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let handle = consumer(&engine, &url, OutboxConfig::default(), metrics.clone());
    let svc = service(engine);
    let sessions: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for id in &sessions {
        svc.create(spec(*id)).await.expect("create");
        svc.command(*id, Cmd::Start).await.expect("start");
    }
    let mut commits = 2 * sessions.len() as u64;
    tokio::task::block_in_place(|| pg.stop()).expect("stop postgres");
    // 4 sessions live in at most 4 streams: ≥ 400 entries each, 4× the mark.
    for round in 0..400 {
        for id in &sessions {
            svc.command(*id, switch())
                .await
                .unwrap_or_else(|e| panic!("switch {round}: {e}"));
            commits += 1;
        }
    }
    wait_until(Duration::from_secs(10), "high-water signal raised", || {
        let (h, m) = (&handle, &metrics);
        async move { h.high_water() && m.outbox_high_water.get() == 1 }
    })
    .await;
    assert!(handle.backlog() >= 1600, "backlog {}", handle.backlog());
    tokio::task::block_in_place(|| pg.start_again()).expect("restart postgres");
    wait_until(Duration::from_secs(60), "every commit written", || {
        let pg = &pg;
        async move { count(pg, "SELECT count(*) FROM sync_events") == commits }
    })
    .await;
    assert_exactly_once(&pg, commits);
    assert_eq!(metrics.dropped.get(), 0, "nothing trimmed, nothing dropped");
    wait_until(Duration::from_secs(10), "high-water signal cleared", || {
        let (h, m) = (&handle, &metrics);
        async move { !h.high_water() && m.outbox_high_water.get() == 0 }
    })
    .await;
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}
