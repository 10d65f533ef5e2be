//! The audit trail against a real, ephemeral PostgreSQL: migrations, the
//! memory engine's queue consumer driven by the real service, idempotent
//! redelivery, and a PostgreSQL outage while commits continue.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synckairos::audit::store::AuditStore;
use synckairos::audit::{self, AuditConfig, AuditMetrics, start_memory_writer};
use synckairos::domain::{Actor, Command, CreateSpec, EventKind, SwitchArgs};
use synckairos::engine::AuditEvent;
use synckairos::engine::memory::MemoryEngine;
use synckairos::metrics::Metrics;
use synckairos::service::{Service, ServiceConfig};
use synckairos_tests::postgres::Postgres;
use synckairos_tests::stats::{P50, P99, percentile};
use synckairos_tests::wait_until;
use uuid::Uuid;

async fn start_pg() -> Postgres {
    Postgres::start_async().await.expect("ephemeral postgres")
}

fn service(tx: tokio::sync::mpsc::Sender<AuditEvent>) -> Arc<Service> {
    Service::new(
        Arc::new(MemoryEngine::new(Some(tx))),
        Arc::new(Metrics::new()),
        ServiceConfig::default(),
    )
}

fn spec(id: Uuid) -> CreateSpec {
    CreateSpec::from_json(&json!({
        "session_id": id.to_string(),
        "sync_mode": "per_participant",
        "total_time_ms": 600_000,
        "participants": [
            {"participant_id": "white", "participant_index": 0},
            {"participant_id": "black", "participant_index": 1}
        ],
        "metadata": {"game": "audit-test"}
    }))
    .expect("valid spec")
}

fn switch() -> Command {
    Command::Switch(SwitchArgs::default())
}

async fn all_history(store: &AuditStore, id: Uuid, page: u32) -> Vec<audit::HistoryEvent> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = store
            .history(id, cursor.as_deref(), page)
            .await
            .expect("history page");
        assert!(p.data.len() <= page as usize);
        out.extend(p.data);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn schema_of(pg: &Postgres, db: &str) -> String {
    pg.psql(
        db,
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
           SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable AS x
             FROM information_schema.columns WHERE table_schema = 'public'
           UNION ALL SELECT indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public'
           UNION ALL SELECT t.typname || '=' || e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
           UNION ALL SELECT 'migration:' || version || ':' || success FROM _sqlx_migrations
         ) s",
    )
    .expect("schema query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_and_concurrently_gives_the_same_schema() {
    let pg = start_pg().await;
    let once = pg.create_database("once").expect("createdb");
    let racing = pg.create_database("racing").expect("createdb");

    audit::migrate(&once).await.expect("first migrate");
    audit::migrate(&once)
        .await
        .expect("second migrate is a no-op");

    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = racing.clone();
            tokio::spawn(async move { audit::migrate(&url).await })
        })
        .collect();
    for r in runs {
        r.await.expect("join").expect("concurrent migrate");
    }

    let a = schema_of(&pg, "once");
    let b = schema_of(&pg, "racing");
    assert!(a.contains("sync_events.session_id:uuid:NO"), "{a}");
    assert!(a.contains("sync_sessions.final_status:USER-DEFINED"), "{a}");
    assert!(a.contains("sync_mode=count_up"), "{a}");
    assert!(a.contains("uq_sync_events_session_version"), "{a}");
    assert_eq!(a, b, "schema after 2 sequential runs vs 4 concurrent runs");
    assert_eq!(
        pg.psql("racing", "SELECT count(*) FROM _sqlx_migrations")
            .expect("count")
            .trim(),
        pg.psql("once", "SELECT count(*) FROM _sqlx_migrations")
            .expect("count")
            .trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_of_a_scripted_session_is_stored_once_in_version_order() {
    let pg = start_pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let cfg = AuditConfig::new(&url);
    let store = AuditStore::connect_lazy(&cfg).expect("pool");
    let (tx, handle) =
        start_memory_writer(cfg, AuditMetrics::unregistered().expect("metrics")).expect("writer");
    let svc = service(tx);

    let id = Uuid::new_v4();
    let backend = Actor::api_key("backend");
    let white = Actor::token("participant", Some("white".into()));
    svc.create_by(spec(id), &backend).await.expect("create");
    svc.command(id, Command::Start).await.expect("start");
    svc.command_by(id, switch(), &white).await.expect("switch");
    for _ in 0..4 {
        svc.command(id, switch()).await.expect("switch");
    }
    svc.command(id, Command::Pause).await.expect("pause");
    svc.command(id, Command::Resume).await.expect("resume");
    svc.command(id, switch()).await.expect("switch");
    svc.command(id, Command::Complete).await.expect("complete");
    let last = svc.get(id).await.expect("final state");
    assert!(svc.delete_by(id, &backend).await.expect("delete"));

    let expected: Vec<(u64, &str)> = vec![
        (1, "session_created"),
        (2, "session_started"),
        (3, "cycle_switched"),
        (4, "cycle_switched"),
        (5, "cycle_switched"),
        (6, "cycle_switched"),
        (7, "cycle_switched"),
        (8, "session_paused"),
        (9, "session_resumed"),
        (10, "cycle_switched"),
        (11, "session_completed"),
        (0, "session_deleted"),
    ];
    wait_until(Duration::from_secs(20), "all 12 audit rows", || {
        let pg = &pg;
        async move {
            pg.psql(
                "postgres",
                &format!("SELECT count(*) FROM sync_events WHERE session_id = '{id}'"),
            )
            .map(|s| s.trim() == "12")
            .unwrap_or(false)
        }
    })
    .await;
    assert_eq!(handle.backlog(), 0);

    // Pages of 5 exercise the cursor; the order is the version order.
    let rows = all_history(&store, id, 5).await;
    let got: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| (r.version, r.event_type.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert!(rows.iter().all(|r| r.session_id == id));
    assert_eq!(rows[2].participant_id.as_deref(), Some("white"));
    assert_eq!(rows[3].participant_id.as_deref(), Some("black"));
    assert_eq!(rows[2].state["version"], json!(3));
    assert!(rows[11].state.is_null());
    // Who did it travels with each event; without a credential, anonymous.
    assert_eq!(rows[0].actor.as_ref(), Some(&backend));
    assert_eq!(rows[1].actor.as_ref(), Some(&Actor::anonymous()));
    assert_eq!(rows[2].actor.as_ref(), Some(&white));
    assert_eq!(rows[11].actor.as_ref(), Some(&backend));

    // One session row: config from create, times, final status, totals.
    let cycles: u64 = last.participants.iter().map(|p| p.cycle_count).sum();
    let row = pg
        .psql(
            "postgres",
            &format!(
                "SELECT sync_mode, total_time_ms, final_status, participant_count, total_cycles,
                        last_version, started_at IS NOT NULL, completed_at IS NOT NULL,
                        deleted_at IS NOT NULL, metadata->>'game'
                   FROM sync_sessions WHERE session_id = '{id}'"
            ),
        )
        .expect("session row");
    assert_eq!(
        row.trim(),
        format!("per_participant|600000|completed|2|{cycles}|11|t|t|t|audit-test")
    );
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}

fn event(id: Uuid, version: u64, kind: EventKind, at_ms: i64) -> AuditEvent {
    let state = if kind == EventKind::SessionDeleted {
        Value::Null
    } else {
        json!({
            "session_id": id, "sync_mode": "global", "status": "running", "version": version,
            "total_time_ms": 1000, "increment_ms": 0, "auto_advance": false,
            "participants": [{"participant_id": "p", "participant_index": 0, "cycle_count": version}],
            "created_at": "2026-11-25T10:00:00.000Z", "metadata": {}
        })
    };
    AuditEvent {
        session_id: id,
        version,
        event_type: kind,
        participant_id: Some("p".into()),
        time_remaining_ms: Some(1000 - version as i64),
        time_elapsed_ms: version as i64,
        at_ms,
        state,
        actor: Actor::token("participant", Some("p".into())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_are_stored_once() {
    let pg = start_pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let store = AuditStore::connect_lazy(&AuditConfig::new(&url)).expect("pool");
    let id = Uuid::new_v4();
    let t0 = 1_764_064_800_000;
    let e1 = event(id, 1, EventKind::SessionCreated, t0);
    let e2 = event(id, 2, EventKind::SessionStarted, t0 + 1);
    let e3 = event(id, 3, EventKind::CycleSwitched, t0 + 2);
    let del = event(id, 0, EventKind::SessionDeleted, t0 + 3);

    let a = store
        .write_batch(&[e1.clone(), e2.clone()])
        .await
        .expect("batch 1");
    assert_eq!((a.inserted, a.duplicates), (2, 0));
    // Redelivery of an overlapping batch, with an in-batch duplicate too.
    let b = store
        .write_batch(&[e1.clone(), e2.clone(), e3.clone(), e3.clone(), del.clone()])
        .await
        .expect("batch 2");
    assert_eq!((b.inserted, b.duplicates), (2, 3));
    // An older batch arriving late must not move the session row backwards.
    let c = store.write_batch(&[del, e2, e1]).await.expect("batch 3");
    assert_eq!((c.inserted, c.duplicates), (0, 3));

    let rows = pg
        .psql(
            "postgres",
            &format!(
                "SELECT version, event_type FROM sync_events WHERE session_id = '{id}' ORDER BY version"
            ),
        )
        .expect("rows");
    assert_eq!(
        rows.trim(),
        "0|session_deleted\n1|session_created\n2|session_started\n3|cycle_switched"
    );
    let s = pg
        .psql(
            "postgres",
            &format!(
                "SELECT last_version, total_cycles, deleted_at IS NOT NULL FROM sync_sessions WHERE session_id = '{id}'"
            ),
        )
        .expect("session row");
    assert_eq!(s.trim(), "3|3|t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_does_not_block_the_rest() {
    let pg = start_pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let (tx, handle) =
        start_memory_writer(AuditConfig::new(&url), metrics.clone()).expect("writer");
    let (good, bad) = (Uuid::new_v4(), Uuid::new_v4());
    let mut poison = event(bad, 1, EventKind::SessionCreated, 1_764_064_800_000);
    poison.state["sync_mode"] = json!("no_such_mode");
    tx.send(event(good, 1, EventKind::SessionCreated, 1_764_064_800_000))
        .await
        .expect("send");
    tx.send(poison).await.expect("send");
    tx.send(event(good, 2, EventKind::SessionStarted, 1_764_064_800_001))
        .await
        .expect("send");
    wait_until(Duration::from_secs(20), "good rows written", || {
        let pg = &pg;
        async move {
            pg.psql(
                "postgres",
                &format!("SELECT count(*) FROM sync_events WHERE session_id = '{good}'"),
            )
            .map(|s| s.trim() == "2")
            .unwrap_or(false)
        }
    })
    .await;
    assert_eq!(
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM sync_events WHERE session_id = '{bad}'")
        )
        .expect("count")
        .trim(),
        "0"
    );
    assert!(metrics.failures.get() >= 1, "the rejection is counted");
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}

/// Switches `sessions` round robin at about `rate` per second for `dur`;
/// returns the number of commits and each switch's latency.
async fn switch_for(
    svc: &Arc<Service>,
    sessions: &[Uuid],
    rate: u64,
    dur: Duration,
) -> (u64, Vec<Duration>) {
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
    (lat.len() as u64, lat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_delays_the_trail_and_loses_nothing() {
    let pg = start_pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let mut cfg = AuditConfig::new(&url);
    cfg.retry_max = Duration::from_millis(500);
    cfg.connect_timeout = Duration::from_millis(500);
    let metrics = AuditMetrics::unregistered().expect("metrics");
    let (tx, handle) = start_memory_writer(cfg, metrics.clone()).expect("writer");
    let svc = service(tx);

    let sessions: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for id in &sessions {
        svc.create(spec(*id)).await.expect("create");
        svc.command(*id, Command::Start).await.expect("start");
    }
    let mut commits = 2 * sessions.len() as u64;
    let (n, mut before) = switch_for(&svc, &sessions, 1000, Duration::from_secs(1)).await;
    commits += n;

    tokio::task::block_in_place(|| pg.stop()).expect("stop postgres");
    let outage = Instant::now();
    let (n, mut during) = switch_for(&svc, &sessions, 1000, Duration::from_secs(4)).await;
    commits += n;
    let backlog_in_outage = handle.backlog();
    assert!(
        backlog_in_outage > 0,
        "commits pile up while PostgreSQL is down"
    );
    assert!(metrics.failures.get() > 0, "the outage was noticed");
    assert!(
        handle.lag() >= Duration::from_secs(1),
        "lag grows: {:?}",
        handle.lag()
    );
    tokio::task::block_in_place(|| pg.start_again()).expect("restart postgres");
    let down_for = outage.elapsed();
    let (n, _) = switch_for(&svc, &sessions, 1000, Duration::from_secs(1)).await;
    commits += n;

    let caught_up = Instant::now();
    wait_until(Duration::from_secs(60), "every commit written", || {
        let pg = &pg;
        let want = commits.to_string();
        async move {
            pg.psql("postgres", "SELECT count(*) FROM sync_events")
                .map(|s| s.trim() == want)
                .unwrap_or(false)
        }
    })
    .await;
    let catch_up = caught_up.elapsed();
    let check = pg
        .psql(
            "postgres",
            "SELECT count(*), count(DISTINCT (session_id, version)),
                    bool_and(n = maxv) FROM (
               SELECT session_id, version, count(*) OVER (PARTITION BY session_id) AS n,
                      max(version) OVER (PARTITION BY session_id) AS maxv FROM sync_events) s",
        )
        .expect("check");
    assert_eq!(check.trim(), format!("{commits}|{commits}|t"));
    assert_eq!(metrics.dropped.get(), 0);

    before.sort();
    during.sort();
    println!(
        "audit outage: postgres down {:.1}s, {commits} commits, backlog at restart {backlog_in_outage}, \
         caught up {:.2}s after restart; switch latency p50/p99 before {:?}/{:?}, during outage {:?}/{:?}",
        down_for.as_secs_f64(),
        catch_up.as_secs_f64(),
        percentile(&before, P50).unwrap_or_default(),
        percentile(&before, P99).unwrap_or_default(),
        percentile(&during, P50).unwrap_or_default(),
        percentile(&during, P99).unwrap_or_default(),
    );
    assert_eq!(handle.shutdown(Duration::from_secs(5)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reader_pages_and_maps_errors_for_the_api() {
    use synckairos::api::error::ApiError;
    use synckairos::audit::History;
    let pg = start_pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let metrics = Metrics::new();
    let mut cfg = AuditConfig::new(&url);
    cfg.connect_timeout = Duration::from_millis(500);
    let (tx, audit) = audit::start_for_memory(cfg, &metrics.registry).expect("audit");
    let svc = service(tx);
    let id = Uuid::new_v4();
    svc.create(spec(id)).await.expect("create");
    svc.command(id, Command::Start).await.expect("start");
    svc.command(id, switch()).await.expect("switch");
    wait_until(Duration::from_secs(20), "3 rows", || {
        let pg = &pg;
        async move {
            pg.psql("postgres", "SELECT count(*) FROM sync_events")
                .map(|s| s.trim() == "3")
                .unwrap_or(false)
        }
    })
    .await;

    let first = audit.history.page(id, None, 2).await.expect("page 1");
    let first = serde_json::to_value(first).expect("serializes");
    assert_eq!(first["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["data"][0]["event_type"], json!("session_created"));
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let second = audit
        .history
        .page(id, Some(&cursor), 2)
        .await
        .expect("page 2");
    let second = serde_json::to_value(second).expect("serializes");
    assert_eq!(second["data"][0]["version"], json!(3));
    assert!(second["next_cursor"].is_null());
    let other = audit
        .history
        .page(Uuid::new_v4(), None, 10)
        .await
        .expect("empty");
    assert!(other.data.is_empty());
    // The reader answers in audit terms; the API maps them once.
    assert!(matches!(
        audit
            .history
            .page(id, Some("garbage"), 2)
            .await
            .map_err(ApiError::from),
        Err(ApiError::Validation(_))
    ));
    let status = audit.history.status().await;
    assert_eq!(status.backlog, 0);
    assert!(status.database_ok);
    assert!(
        metrics
            .render()
            .contains("synckairos_audit_rows_written_total 3")
    );

    tokio::task::block_in_place(|| pg.stop()).expect("stop postgres");
    assert!(matches!(
        audit
            .history
            .page(id, None, 2)
            .await
            .map_err(ApiError::from),
        Err(ApiError::AuditUnavailable(_))
    ));
    // Commits continue; readiness information still answers.
    svc.command(id, switch())
        .await
        .expect("switch while postgres is down");
    wait_until(
        Duration::from_secs(10),
        "the failed write is reported",
        || {
            let h = &audit.history;
            async move { !h.status().await.database_ok }
        },
    )
    .await;
    assert_eq!(audit.history.status().await.backlog, 1);
    tokio::task::block_in_place(|| pg.start_again()).expect("restart postgres");
    wait_until(Duration::from_secs(20), "the 4th row after restart", || {
        let pg = &pg;
        async move {
            pg.psql("postgres", "SELECT count(*) FROM sync_events")
                .map(|s| s.trim() == "4")
                .unwrap_or(false)
        }
    })
    .await;
    assert_eq!(audit.handle.shutdown(Duration::from_secs(5)).await, 0);
}

fn synckairos_bin() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("SYNCKAIROS_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("synckairos"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p synckairos --bin synckairos` (make test does)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synckairos_migrate_runs_twice_and_concurrently() {
    let pg = start_pg().await;
    let bin = synckairos_bin();
    let twice = pg.create_database("bin_twice").expect("createdb");
    let racing = pg.create_database("bin_racing").expect("createdb");
    for _ in 0..2 {
        let out = tokio::process::Command::new(&bin)
            .arg("migrate")
            .env("DATABASE_URL", &twice)
            .output()
            .await
            .expect("run synckairos migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs: Vec<_> = (0..4)
        .map(|_| {
            tokio::process::Command::new(&bin)
                .args(["migrate", "--database-url", &racing])
                .output()
        })
        .collect();
    for out in futures::future::join_all(runs).await {
        let out = out.expect("run synckairos migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let a = schema_of(&pg, "bin_twice");
    assert!(a.contains("uq_sync_events_session_version"), "{a}");
    assert_eq!(a, schema_of(&pg, "bin_racing"));

    let bad = tokio::process::Command::new(&bin)
        .args(["migrate", "--database-url", &pg.url_for("no_such_db")])
        .output()
        .await
        .expect("run synckairos migrate");
    assert!(!bad.status.success(), "a missing database is an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_written_before_the_last_state_still_marks_the_session() {
    let pg = start_pg().await;
    let url = pg.url();
    audit::migrate(&url).await.expect("migrate");
    let store = AuditStore::connect_lazy(&AuditConfig::new(&url)).expect("pool");
    let id = Uuid::new_v4();
    let t0 = 1_764_064_800_000;
    // Two writers commit in parallel: the deletion may land first.
    store
        .write_batch(&[event(id, 0, EventKind::SessionDeleted, t0 + 9)])
        .await
        .expect("deletion");
    store
        .write_batch(&[
            event(id, 1, EventKind::SessionCreated, t0),
            event(id, 2, EventKind::SessionStarted, t0 + 1),
        ])
        .await
        .expect("states");
    let row = pg
        .psql(
            "postgres",
            &format!(
                "SELECT sync_mode, final_status, last_version, deleted_at = to_timestamp({}) \
                 FROM sync_sessions WHERE session_id = '{id}'",
                (t0 + 9) as f64 / 1000.0
            ),
        )
        .expect("session row");
    assert_eq!(row.trim(), "global|running|2|t");
}

/// A clock that runs out is the server's doing, whoever's command ran into
/// it: the timer's own firing is recorded with `actor: server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_recorded_as_the_servers() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let svc = service(tx);
    let id = Uuid::new_v4();
    let s = CreateSpec::from_json(&json!({
        "session_id": id.to_string(),
        "sync_mode": "per_participant",
        "total_time_ms": 1000,
        "participants": [{"participant_id": "white"}, {"participant_id": "black"}]
    }))
    .expect("valid spec");
    let backend = Actor::api_key("backend");
    svc.create_by(s, &backend).await.expect("create");
    svc.command_by(id, Command::Start, &backend)
        .await
        .expect("start");
    let expired = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = rx.recv().await.expect("audit channel open");
            if ev.event_type == EventKind::ParticipantExpired {
                break ev;
            }
            assert_eq!(ev.actor, backend, "{:?} by the caller", ev.event_type);
        }
    })
    .await
    .expect("the timeout fires within 10 s");
    assert_eq!(expired.actor, Actor::server());
}
