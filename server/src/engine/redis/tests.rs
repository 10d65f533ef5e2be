//! Engine tests against a real `redis-server` started on a free loopback
//! port by the shared test kit (skipped with a message when the binary is
//! missing, failed when it is missing under `CI=true`).

use super::*;
use crate::domain::CreateSpec;
use crate::engine::UpdateKind;
use std::sync::Arc;
use synckairos_tests::host::{free_port, need, redis_server_bin};
use synckairos_tests::redis::{RedisServer, command};

/// A redis-server from the shared test kit (tests/src/redis.rs), and its port.
struct RedisProc {
    port: u16,
    server: Arc<RedisServer>,
}

async fn start_redis() -> Option<RedisProc> {
    start_redis_with(&[]).await
}

/// `None` (a printed skip) when redis-server is missing, except under
/// `CI=true`, where a missing redis-server fails the test instead.
async fn start_redis_with(extra: &[&str]) -> Option<RedisProc> {
    if !need(&redis_server_bin()) {
        return None;
    }
    let server = RedisServer::start_with(extra).await.unwrap();
    Some(RedisProc {
        port: server.port(),
        server,
    })
}

fn cfg(port: u16) -> RedisConfig {
    RedisConfig {
        url: Some(format!("redis://127.0.0.1:{port}")),
        audit: true,
        ..RedisConfig::default()
    }
}

fn session(now: Millis) -> Session {
    two_player(Uuid::new_v4()).into_session(now)
}

fn two_player(id: Uuid) -> CreateSpec {
    CreateSpec::from_json(&serde_json::json!({
        "session_id": id,
        "sync_mode": "per_participant",
        "participants": [
            {"participant_id": "a", "participant_index": 0, "total_time_ms": 60000},
            {"participant_id": "b", "participant_index": 1, "total_time_ms": 60000}
        ],
        "total_time_ms": 60000
    }))
    .unwrap()
}

fn update(s: &Session) -> Update {
    Update {
        session_id: s.session_id,
        version: s.version,
        kind: UpdateKind::State,
        frames: vec![Bytes::from(format!("{{\"v\":{}}}", s.version))],
    }
}

/// The value of an unlabelled metric in the rendered registry (0 when absent).
fn metric(m: &Metrics, name: &str) -> f64 {
    m.render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn commit_of(s: &Session, deadline: Option<Millis>) -> Commit<'_> {
    Commit {
        session: s,
        deadline_ms: deadline,
        expire_at_ms: now_ms() + 60_000,
        update: Some(update(s)),
        audit: None,
    }
}

#[test]
fn version_check_refuses_old_servers() {
    assert!(
        check_version("# Server\r\nredis_version:6.2.14\r\n")
            .unwrap_err()
            .contains(">= 7")
    );
    assert_eq!(
        check_version("redis_version:7.0.15\r\nx:y").unwrap(),
        "7.0.15"
    );
    assert!(check_version("nothing").is_err());
}

#[test]
fn config_needs_exactly_one_target() {
    assert!(RedisConfig::default().fred_config().is_err());
    let both = RedisConfig {
        url: Some("redis://127.0.0.1:1".into()),
        cluster_nodes: vec!["127.0.0.1:2".into()],
        ..RedisConfig::default()
    };
    assert!(both.fred_config().is_err());
    let bad = RedisConfig {
        cluster_nodes: vec!["nohost".into()],
        ..RedisConfig::default()
    };
    assert!(bad.fred_config().unwrap_err().contains("nohost"));
    let ok = RedisConfig {
        cluster_nodes: vec!["127.0.0.1:7000".into(), "localhost:7001".into()],
        ..RedisConfig::default()
    };
    assert!(ok.fred_config().unwrap().server.is_clustered());
}

#[tokio::test]
async fn unreachable_redis_fails_fast_with_one_line() {
    let port = free_port().unwrap();
    let cfg = RedisConfig {
        connect_timeout: Duration::from_millis(300),
        ..cfg(port)
    };
    let started = std::time::Instant::now();
    let err = match connect(cfg, &Metrics::new()).await {
        Err(e) => e,
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains('\n'));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn create_commit_delete_and_due() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let engine = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let now = now_ms();
    let mut s = session(now);
    let id = s.session_id;
    assert!(engine.load(id).await.unwrap().is_none());
    engine.create(commit_of(&s, None)).await.unwrap();
    assert!(matches!(
        engine.create(commit_of(&s, None)).await,
        Err(EngineError::Exists)
    ));
    assert_eq!(engine.load(id).await.unwrap(), Some(s.clone()));

    // A commit computed from a stale version is refused and changes nothing.
    let mut stale = s.clone();
    stale.version = 3;
    assert!(matches!(
        engine.commit(commit_of(&stale, None)).await,
        Err(EngineError::VersionMismatch)
    ));

    s.version = 2;
    engine.commit(commit_of(&s, Some(now - 5))).await.unwrap();
    assert_eq!(engine.load(id).await.unwrap().unwrap().version, 2);
    let due = engine.due(now, 100).await.unwrap();
    assert!(due.contains(&DueTimer {
        session_id: id,
        version: 2,
        deadline_ms: now - 5
    }));
    // Not due yet for an earlier `now`.
    assert!(
        !engine
            .due(now - 10, 100)
            .await
            .unwrap()
            .iter()
            .any(|d| d.session_id == id)
    );

    // The next version moves the index entry (old member removed).
    s.version = 3;
    engine
        .commit(commit_of(&s, Some(now + 1000)))
        .await
        .unwrap();
    assert!(
        !engine
            .due(now, 100)
            .await
            .unwrap()
            .iter()
            .any(|d| d.session_id == id)
    );
    let later = engine.due(now + 1000, 100).await.unwrap();
    assert_eq!(later.iter().filter(|d| d.session_id == id).count(), 1);

    let del = Update {
        session_id: id,
        version: 0,
        kind: UpdateKind::Deleted,
        frames: vec![],
    };
    assert!(engine.delete(id, del.clone(), None).await.unwrap());
    assert!(!engine.delete(id, del, None).await.unwrap());
    assert!(engine.load(id).await.unwrap().is_none());
    assert!(
        !engine
            .due(now + 1000, 100)
            .await
            .unwrap()
            .iter()
            .any(|d| d.session_id == id)
    );
    let missing = session(now);
    assert!(matches!(
        engine
            .commit(commit_of(
                &{
                    let mut m = missing.clone();
                    m.version = 2;
                    m
                },
                None
            ))
            .await,
        Err(EngineError::NotFound)
    ));
}

#[tokio::test]
async fn ttl_follows_expire_at_and_outbox_gets_audit_rows() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let engine = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let now = now_ms();
    let s = session(now);
    let id = s.session_id;
    let audit = AuditEvent {
        session_id: id,
        version: 1,
        event_type: crate::domain::EventKind::SessionCreated,
        participant_id: None,
        time_remaining_ms: None,
        time_elapsed_ms: 0,
        at_ms: now,
        state: serde_json::json!({"x": 1}),
        actor: crate::domain::Actor::api_key("backend"),
    };
    engine
        .create(Commit {
            session: &s,
            deadline_ms: None,
            expire_at_ms: now + 5_000,
            update: None,
            audit: Some(audit.clone()),
        })
        .await
        .unwrap();
    let pttl: i64 = engine.client().pttl(keys::state_key(&id)).await.unwrap();
    assert!(pttl > 3_000 && pttl <= 5_000, "pttl {pttl}");
    let entries: Vec<(String, HashMap<String, String>)> = engine
        .client()
        .xrange(keys::outbox_key(keys::bucket(&id)), "-", "+", None)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    let back: AuditEvent = serde_json::from_str(&entries[0].1["e"]).unwrap();
    assert_eq!(back, audit);
}

#[tokio::test]
async fn updates_cross_engines_and_resync_after_redis_restart() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("SK_TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let Some(redis) = start_redis().await else {
        return;
    };
    let port = redis.port;
    let a = connect(cfg(port), &Metrics::new()).await.unwrap();
    let b = connect(cfg(port), &Metrics::new()).await.unwrap();
    let now = now_ms();
    let mut s = session(now);
    let id = s.session_id;
    b.create(commit_of(&s, None)).await.unwrap();

    // A subscribes locally; its first read waits for the channel to be live,
    // so a commit through B right after is never lost.
    let mut sub = a.hub().subscribe(id);
    assert_eq!(a.load(id).await.unwrap().unwrap().version, 1);
    s.version = 2;
    b.commit(commit_of(&s, None)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.version, got.kind), (2, UpdateKind::State));
    assert_eq!(got.frames, update(&s).frames);

    // Redis restarts (same port, empty: no persistence in this test). A
    // resubscribes on reconnect and tells its client the session is gone.
    redis.server.kill();
    redis.server.start_again().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(15), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.kind, UpdateKind::Deleted);

    // A new session after the restart: scripts are reloaded on NOSCRIPT and
    // delivery works again.
    let s2 = session(now_ms());
    let mut sub2 = a.hub().subscribe(s2.session_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match b.create(commit_of(&s2, None)).await {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for redis: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(a.load(s2.session_id).await.unwrap().unwrap().version, 1);
    let mut s2b = s2.clone();
    s2b.version = 2;
    b.commit(commit_of(&s2b, None)).await.unwrap();
    // The create (version 1) may arrive first; version 2 must follow.
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let u = sub2.next().await.unwrap();
            if u.version >= 2 {
                return u;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((got.version, got.kind), (2, UpdateKind::State));
}

#[tokio::test]
async fn commands_fail_fast_while_redis_is_down() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let metrics = Metrics::new();
    let engine = connect(cfg(redis.port), &metrics).await.unwrap();
    drop(redis);
    let started = std::time::Instant::now();
    let r = engine.load(Uuid::new_v4()).await;
    assert!(matches!(r, Err(EngineError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(engine.ping().await.is_err());
    let text = metrics.render();
    assert!(
        text.contains("synckairos_redis_errors_total{op=\"load\"} 1"),
        "{text}"
    );
}

use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscriptions_at_once_are_batched_and_resynced() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let a = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let b = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    // 600 sessions over 256 buckets: most buckets get a batch of several.
    let mut sessions: Vec<Session> = (0..600).map(|_| session(now_ms())).collect();
    for s in &sessions {
        b.create(Commit {
            update: None,
            ..commit_of(s, None)
        })
        .await
        .unwrap();
    }
    let mut subs: Vec<_> = sessions
        .iter()
        .map(|s| a.hub().subscribe(s.session_id))
        .collect();
    for s in &sessions {
        a.load(s.session_id).await.unwrap();
    }
    for s in &mut sessions {
        s.version = 2;
        b.commit(commit_of(s, None)).await.unwrap();
    }
    for sub in &mut subs {
        let u = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((u.version, u.kind), (2, UpdateKind::State));
    }
    // A forced resync pushes every local subscriber a fresh STATE_SYNC.
    a.request_resync();
    for (sub, s) in subs.iter_mut().zip(&sessions) {
        let u = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((u.version, u.kind), (2, UpdateKind::Resync));
        let frame: serde_json::Value = serde_json::from_slice(&u.frames[0]).unwrap();
        assert_eq!(frame["type"], "STATE_SYNC");
        assert_eq!(frame["state"]["session_id"], s.session_id.to_string());
    }
    // The last local subscriber leaving unsubscribes: B's commits no longer
    // reach A (counted by A's receive metric staying put).
    drop(subs);
    let m = Metrics::new();
    let c = connect(cfg(redis.port), &m).await.unwrap();
    let mut one = c.hub().subscribe(sessions[0].session_id);
    c.load(sessions[0].session_id).await.unwrap();
    drop(one);
    one = c.hub().subscribe(sessions[1].session_id);
    c.load(sessions[1].session_id).await.unwrap();
    sessions[0].version = 3;
    b.commit(commit_of(&sessions[0], None)).await.unwrap();
    sessions[1].version = 3;
    b.commit(commit_of(&sessions[1], None)).await.unwrap();
    let u = tokio::time::timeout(Duration::from_secs(5), one.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.session_id, u.version), (sessions[1].session_id, 3));
    let n = metric(&m, "synckairos_redis_updates_received_total");
    assert_eq!(n, 1.0, "only the still-subscribed session's update arrived");
}

#[test]
fn slot_owners_fingerprint_ignores_replicas_and_order() {
    let node = |h: &str, p: i64, id: &str| {
        Value::Array(vec![Value::from(h), Value::Integer(p), Value::from(id)])
    };
    let a = Value::Array(vec![
        Value::Array(vec![
            Value::Integer(5461),
            Value::Integer(10922),
            node("127.0.0.1", 7001, "b"),
            node("127.0.0.1", 7004, "e"),
        ]),
        Value::Array(vec![
            Value::Integer(0),
            Value::Integer(5460),
            node("127.0.0.1", 7000, "a"),
            node("127.0.0.1", 7003, "d"),
        ]),
    ]);
    let a_other_replica = Value::Array(vec![
        Value::Array(vec![
            Value::Integer(0),
            Value::Integer(5460),
            node("127.0.0.1", 7000, "a"),
        ]),
        Value::Array(vec![
            Value::Integer(5461),
            Value::Integer(10922),
            node("127.0.0.1", 7001, "b"),
        ]),
    ]);
    let failed_over = Value::Array(vec![
        Value::Array(vec![
            Value::Integer(0),
            Value::Integer(5460),
            node("127.0.0.1", 7003, "d"),
        ]),
        Value::Array(vec![
            Value::Integer(5461),
            Value::Integer(10922),
            node("127.0.0.1", 7001, "b"),
        ]),
    ]);
    assert_eq!(slot_owners(&a).len(), 2);
    assert_eq!(slot_owners(&a), slot_owners(&a_other_replica));
    assert_ne!(slot_owners(&a), slot_owners(&failed_over));
    assert!(slot_owners(&Value::Null).is_empty());
}

#[tokio::test]
async fn a_redis_url_pointing_at_a_cluster_node_is_refused() {
    let Some(redis) = start_redis_with(&["--cluster-enabled", "yes"]).await else {
        return;
    };
    let err = match connect(cfg(redis.port), &Metrics::new()).await {
        Err(e) => e,
        Ok(_) => panic!("a cluster node was accepted as a standalone server"),
    };
    assert!(err.contains("REDIS_CLUSTER_NODES"), "{err}");
    assert!(check_not_cluster("# Cluster\r\ncluster_enabled:0\r\n").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_is_quiet_when_healthy_and_replaces_a_hung_subscriber() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let metrics = Metrics::new();
    let hb = RedisConfig {
        subscriber_heartbeat: Duration::from_millis(200),
        command_timeout: Duration::from_millis(300),
        ..cfg(redis.port)
    };
    let a = connect(hb, &metrics).await.unwrap();
    let b = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let mut s = session(now_ms());
    let id = s.session_id;
    b.create(commit_of(&s, None)).await.unwrap();
    let mut sub = a.hub().subscribe(id);
    a.load(id).await.unwrap();
    let resyncs = |m: &Metrics| metric(m, "synckairos_redis_resyncs_total");
    // Several heartbeats on a healthy connection: no reconnect, no resync,
    // delivery intact.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(resyncs(&metrics), 0.0);
    s.version = 2;
    b.commit(commit_of(&s, None)).await.unwrap();
    let u = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.version, u.kind), (2, UpdateKind::State));
    // The server stops answering for longer than the command timeout: the
    // heartbeat forces a reconnect, which resubscribes and resyncs.
    let _: String = b
        .client()
        .custom(
            fred::cmd!("CLIENT"),
            vec!["PAUSE".to_string(), "1500".into(), "ALL".into()],
        )
        .await
        .unwrap();
    let u = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a resync after the hung connection was replaced")
        .unwrap();
    assert_eq!((u.version, u.kind), (2, UpdateKind::Resync));
    // The pass is counted once it completes (just after it published).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while resyncs(&metrics) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "resync not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_leaves_a_session_that_does_not_exist_yet_alone() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let a = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let b = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    // A client waits for a session that is created later.
    let s = session(now_ms());
    let mut sub = a.hub().subscribe(s.session_id);
    assert!(a.load(s.session_id).await.unwrap().is_none());
    a.request_resync();
    // (The resync must not announce SESSION_DELETED: nothing was deleted,
    // and a deletion would end the subscription for good.)
    b.create(commit_of(&s, None)).await.unwrap();
    let u = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(u.kind, UpdateKind::Deleted, "{u:?}");
    assert_eq!(u.version, 1);
    // Once seen, a session that vanishes is announced.
    redis_flush(redis.port).await;
    a.request_resync();
    let u = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let u = sub.next().await.unwrap();
            if u.kind == UpdateKind::Deleted {
                return u;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(u.kind, UpdateKind::Deleted);
}

async fn redis_flush(port: u16) {
    assert_eq!(command(port, &["FLUSHALL"]).unwrap(), "+OK");
}

#[tokio::test]
async fn a_stale_copy_of_an_earlier_life_never_commits() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let a = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let b = connect(cfg(redis.port), &Metrics::new()).await.unwrap();
    let mut first = session(now_ms());
    first.incarnation = 1;
    let id = first.session_id;
    a.create(commit_of(&first, None)).await.unwrap();
    let held = a.cached(id).expect("create keeps the state");
    assert_eq!((held.version, held.incarnation), (1, 1));

    // B deletes the session and creates another one under the same id: the
    // same version number, another life.
    let deletion = Update {
        session_id: id,
        version: 0,
        kind: UpdateKind::Deleted,
        frames: vec![],
    };
    assert!(b.delete(id, deletion, None).await.unwrap());
    let mut second = session(now_ms());
    second.session_id = id;
    second.incarnation = 2;
    second.total_time_ms = 1234;
    b.create(commit_of(&second, None)).await.unwrap();

    // A change computed from A's copy of the first life is refused…
    let mut next = (*held).clone();
    next.version = 2;
    assert!(matches!(
        a.commit(commit_of(&next, None)).await,
        Err(EngineError::VersionMismatch)
    ));
    assert_eq!(b.load(id).await.unwrap(), Some(second.clone()));
    // …and A now holds the stored state the refusal carried back.
    assert_eq!(a.cached(id).as_deref(), Some(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_an_instance_with_a_stale_copy_act_on_the_stored_state() {
    use crate::domain::{Command as Cmd, SwitchArgs};
    use crate::service::{Service, ServiceConfig, ServiceError};
    let Some(redis) = start_redis().await else {
        return;
    };
    let (ma, mb) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let a = Service::new(
        connect(cfg(redis.port), &ma).await.unwrap(),
        ma.clone(),
        ServiceConfig::default(),
    );
    let b = Service::new(
        connect(cfg(redis.port), &mb).await.unwrap(),
        mb,
        ServiceConfig::default(),
    );
    let id = Uuid::new_v4();
    let spec = two_player(id);
    a.create(spec).await.unwrap();
    a.command(id, Cmd::Start).await.unwrap(); // v2, running, "a" active
    b.command(id, Cmd::Pause).await.unwrap(); // v3 through B

    // A still holds v2 (running): resume looks wrong from there but is
    // right for the stored state, so it succeeds.
    let out = a.command(id, Cmd::Resume).await.unwrap();
    assert_eq!(out.state.version, 4);

    // B holds v3 (paused); its switch commits from the stored v4.
    let out = b
        .command(id, Cmd::Switch(SwitchArgs::default()))
        .await
        .unwrap();
    assert_eq!(out.state.version, 5);
    assert_eq!(out.state.active_participant_id.as_deref(), Some("b"));

    // A holds v4: its switch loses the version race once, retries from the
    // state the refusal carried, and hands the turn back to "a".
    let retries = ma.commit_retries.get();
    let out = a
        .command(id, Cmd::Switch(SwitchArgs::default()))
        .await
        .unwrap();
    assert_eq!(out.state.version, 6);
    assert_eq!(out.state.active_participant_id.as_deref(), Some("a"));
    assert_eq!(ma.commit_retries.get(), retries + 1);

    // A real refusal is still a refusal (running, so resume is invalid),
    // and one built on a stale expected_version is a conflict.
    assert!(matches!(
        b.command(id, Cmd::Resume).await,
        Err(ServiceError::Domain(_))
    ));
    let stale = SwitchArgs {
        expected_version: Some(5),
        ..SwitchArgs::default()
    };
    assert!(matches!(
        b.command(id, Cmd::Switch(stale)).await,
        Err(ServiceError::Domain(_))
    ));
    // Nothing above changed the state behind the clients' backs.
    let s = a.get(id).await.unwrap();
    assert_eq!(
        (s.version, s.active_participant_id.as_deref()),
        (6, Some("a"))
    );
}

/// Concurrent commits travel together (one script call for the lot on a
/// single-threaded runtime, where all of them queue before the worker runs)
/// and each still gets its own outcome: per session the first in order
/// wins, the competitors get a version mismatch, a missing session is
/// not found.
#[tokio::test]
async fn concurrent_commits_share_a_batch_and_keep_their_own_outcomes() {
    let Some(redis) = start_redis().await else {
        return;
    };
    let metrics = Metrics::new();
    let a = connect(cfg(redis.port), &metrics).await.unwrap();
    let now = now_ms();
    let sessions: Vec<Session> = (0..8).map(|_| session(now)).collect();
    for s in &sessions {
        a.create(commit_of(s, None)).await.unwrap();
    }
    // Four competing version-2 states per session, told apart by their bank.
    let mut attempts = Vec::new();
    for s in &sessions {
        for bank in 0..4 {
            let mut next = s.clone();
            next.version = 2;
            next.total_time_ms = 1000 + bank;
            attempts.push(next);
        }
    }
    let mut ghost = session(now);
    ghost.version = 2;
    attempts.push(ghost);
    let outcomes = futures::future::join_all(
        attempts
            .iter()
            .map(|s| a.commit(commit_of(s, Some(now + 60_000)))),
    )
    .await;

    let (ghost_outcome, outcomes) = outcomes.split_last().unwrap();
    assert!(matches!(ghost_outcome, Err(EngineError::NotFound)));
    for (i, s) in sessions.iter().enumerate() {
        let mine = &outcomes[i * 4..i * 4 + 4];
        assert!(mine[0].is_ok(), "{mine:?}");
        assert!(
            mine[1..]
                .iter()
                .all(|o| matches!(o, Err(EngineError::VersionMismatch))),
            "{mine:?}"
        );
        let stored = a.load(s.session_id).await.unwrap().unwrap();
        assert_eq!((stored.version, stored.total_time_ms), (2, 1000));
    }
    let (calls, commits) = (
        metric(&metrics, "synckairos_redis_commit_batch_size_count"),
        metric(&metrics, "synckairos_redis_commit_batch_size_sum"),
    );
    assert_eq!(commits, attempts.len() as f64);
    assert!(
        calls < commits,
        "{calls} script calls for {commits} commits"
    );
}
