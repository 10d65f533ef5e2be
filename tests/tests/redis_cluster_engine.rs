//! The Redis engine on a real 6-node Redis Cluster, driven through the real
//! service layer by two independent "instances" (two services, two engines,
//! two sets of connections): commits spread over every primary, updates
//! cross instances over sharded pub/sub, timeouts fire exactly once, and a
//! killed primary (its replica takes over) costs a bounded outage after
//! which delivery resumes with a fresh STATE_SYNC.

use std::sync::Arc;
use std::time::{Duration, Instant};
use synckairos::domain::{Command, CreateSpec, SwitchArgs};
use synckairos::engine::UpdateKind;
use synckairos::engine::redis::{RedisConfig, connect, keys};
use synckairos::metrics::Metrics;
use synckairos::service::{Service, ServiceConfig, ServiceError};
use synckairos_tests::redis::RedisCluster;
use uuid::Uuid;

async fn instance(c: &RedisCluster) -> Arc<Service> {
    let metrics = Arc::new(Metrics::new());
    let cfg = RedisConfig {
        cluster_nodes: c.ports().iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        ..RedisConfig::default()
    };
    let engine = connect(cfg, &metrics)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Service::new(
        engine,
        metrics,
        ServiceConfig {
            sweep_interval: Duration::from_millis(200),
            ..ServiceConfig::default()
        },
    )
}

fn spec(total_ms: i64) -> CreateSpec {
    CreateSpec::from_json(&serde_json::json!({
        "session_id": Uuid::new_v4(),
        "sync_mode": "per_participant",
        "participants": [
            {"participant_id": "a", "participant_index": 0, "total_time_ms": total_ms},
            {"participant_id": "b", "participant_index": 1, "total_time_ms": total_ms}
        ],
        "total_time_ms": total_ms
    }))
    .unwrap_or_else(|e| panic!("{e:?}"))
}

fn commit_of(
    s: &synckairos::domain::Session,
    now: i64,
    deadline_ms: Option<i64>,
) -> synckairos::engine::Commit<'_> {
    synckairos::engine::Commit {
        session: s,
        deadline_ms,
        expire_at_ms: now + 60_000,
        update: None,
        audit: None,
    }
}

fn switch(expected_version: Option<u64>) -> Command {
    Command::Switch(SwitchArgs {
        expected_version,
        ..SwitchArgs::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_commits_and_broadcasts_across_instances() {
    let cluster = RedisCluster::start().await.unwrap();
    let (a, b) = (instance(&cluster).await, instance(&cluster).await);

    // 24 sessions: their buckets land on all three primaries.
    let mut ports = std::collections::HashSet::new();
    let mut ids = Vec::new();
    for _ in 0..24 {
        let st = a.create(spec(60_000)).await.unwrap();
        let id = st.session_id;
        ports.insert(cluster.primary_for(&keys::state_key(&id)).unwrap().port);
        ids.push(id);
    }
    assert_eq!(ports.len(), 3, "sessions should spread over every primary");

    for id in &ids {
        let mut sub = a.subscribe(*id);
        // The first read after subscribing waits for the channel to be live.
        assert_eq!(a.get(*id).await.unwrap().version, 1);
        b.command(*id, Command::Start).await.unwrap();
        let out = b.command(*id, switch(Some(2))).await.unwrap();
        assert_eq!(out.state.version, 3);
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let u = sub.next().await.unwrap();
                if u.version == 3 {
                    return u;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("instance A never saw version 3 of {id}"));
        assert_eq!(got.kind, UpdateKind::State);
        let frame: serde_json::Value = serde_json::from_slice(&got.frames[0]).unwrap();
        assert_eq!(frame["type"], "STATE_UPDATE");
        assert_eq!(frame["state"]["version"], 3);
    }
    // A stale expected_version is a conflict on every slot.
    for id in &ids {
        assert!(matches!(
            a.command(*id, switch(Some(2))).await,
            Err(ServiceError::Domain(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_fires_once_on_the_cluster_with_two_instances_sweeping() {
    let cluster = RedisCluster::start().await.unwrap();
    let (a, b) = (instance(&cluster).await, instance(&cluster).await);
    for svc in [&a, &b] {
        let svc = Arc::clone(svc);
        tokio::spawn(async move {
            loop {
                svc.sweep_once().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let st = a.create(spec(1000)).await.unwrap();
    let id = st.session_id;
    let mut sub_a = a.subscribe(id);
    let mut sub_b = b.subscribe(id);
    a.get(id).await.unwrap();
    b.get(id).await.unwrap();
    // Started through B: B arms the timer, A only sweeps.
    b.command(id, Command::Start).await.unwrap();
    for sub in [&mut sub_a, &mut sub_b] {
        let u = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let u = sub.next().await.unwrap();
                if u.version >= 3 {
                    return u;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(u.version, 3, "exactly one timeout commit");
        assert!(
            u.frames
                .iter()
                .any(|f| String::from_utf8_lossy(f).contains("TIME_EXPIRED"))
        );
    }
    // Both sweepers keep running: nothing commits a second timeout.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = a.get(id).await.unwrap();
    assert_eq!(
        (
            s.version,
            serde_json::to_value(&s).unwrap()["status"].clone()
        ),
        (3, "expired".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_primary_costs_a_bounded_outage_and_subscribers_are_resynced() {
    let cluster = RedisCluster::start().await.unwrap();
    let (a, b) = (instance(&cluster).await, instance(&cluster).await);
    let id = a.create(spec(600_000)).await.unwrap().session_id;
    let mut sub = a.subscribe(id);
    a.get(id).await.unwrap();
    b.command(id, Command::Start).await.unwrap();

    let victim = cluster.primary_for(&keys::state_key(&id)).unwrap();
    cluster.kill(victim.port);
    let killed = Instant::now();
    // Switch through B until Redis accepts again (503s meanwhile).
    let mut expected = 2;
    let mut unavailable = 0;
    loop {
        match b.command(id, switch(Some(expected))).await {
            Ok(o) => {
                expected = o.state.version;
                break;
            }
            Err(ServiceError::Unavailable(_)) => unavailable += 1,
            Err(e) => panic!("unexpected error during failover: {e}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no recovery within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outage = killed.elapsed();
    println!(
        "cluster primary killed: commits unavailable for {} ms ({unavailable} failed attempts)",
        outage.as_millis()
    );
    assert_eq!(expected, 3);
    assert_ne!(
        cluster.primary_for(&keys::state_key(&id)).unwrap().port,
        victim.port
    );

    // A must catch up (resync after the topology change) and then keep
    // receiving live updates made through B.
    let caught_up = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let u = sub.next().await.unwrap();
            if u.version >= 3 {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("instance A never caught up after the failover"));
    println!(
        "subscriber on A caught up {} ms after the first successful commit",
        caught_up.elapsed().as_millis()
    );
    let live = Instant::now();
    let mut v = expected;
    // Delivery is live again: every further switch reaches A.
    for _ in 0..5 {
        v = b.command(id, switch(Some(v))).await.unwrap().state.version;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let u = sub.next().await.unwrap();
                if u.version >= v {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("version {v} never reached A after the failover"));
    }
    println!(
        "5 post-failover switches delivered in {} ms",
        live.elapsed().as_millis()
    );
    let resyncs = a
        .metrics()
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix("synckairos_redis_resyncs_total ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!("instance A resync passes: {resyncs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_keeps_delivery() {
    let cluster = RedisCluster::start().await.unwrap();
    let (a, b) = (instance(&cluster).await, instance(&cluster).await);
    let id = a.create(spec(600_000)).await.unwrap().session_id;
    let mut sub = a.subscribe(id);
    a.get(id).await.unwrap();
    b.command(id, Command::Start).await.unwrap();
    let primary = cluster.primary_for(&keys::state_key(&id)).unwrap();
    let replica = cluster
        .topology()
        .unwrap()
        .into_iter()
        .find(|n| !n.primary && n.primary_id.as_deref() == Some(primary.id.as_str()))
        .unwrap();
    synckairos_tests::redis::cli(replica.port, &["cluster", "failover"]).unwrap();
    let t = Instant::now();
    while cluster.primary_for(&keys::state_key(&id)).unwrap().port != replica.port {
        assert!(t.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("manual failover done in {} ms", t.elapsed().as_millis());
    let mut v = 2;
    for _ in 0..3 {
        v = loop {
            match b.command(id, switch(Some(v))).await {
                Ok(o) => break o.state.version,
                Err(ServiceError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let u = sub.next().await.unwrap();
                if u.version >= v {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("version {v} never reached A after a manual failover"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_keeps_finding_deadlines_while_one_slot_is_unserved() {
    use synckairos::engine::Engine;
    let cluster = RedisCluster::start().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let engine = connect(
        RedisConfig {
            cluster_nodes: cluster
                .ports()
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
            ..RedisConfig::default()
        },
        &metrics,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Deadline index entries (already due) in many buckets, written by the
    // engine itself: no local timer in this test can fire them first.
    let now = synckairos::clock::now_ms();
    let mut ids = Vec::new();
    for _ in 0..24 {
        let mut s = spec(60_000).into_session(now);
        engine.create(commit_of(&s, now, None)).await.unwrap();
        s.version = 2;
        engine
            .commit(commit_of(&s, now, Some(now - 10)))
            .await
            .unwrap();
        ids.push(s.session_id);
    }
    // One bucket's slot stops being served (as while a slot is being
    // repaired): its commands fail, the other 255 buckets must still sweep.
    let lost = keys::deadlines_key(keys::bucket(&ids[0]));
    let owner = cluster.primary_for(&lost).unwrap();
    let slot = synckairos_tests::redis::cli(owner.port, &["cluster", "keyslot", &lost]).unwrap();
    synckairos_tests::redis::cli(owner.port, &["cluster", "delslots", slot.trim()]).unwrap();
    // Every sweep succeeds (the failing bucket is skipped), and the other
    // buckets' deadlines are found. The client library may reset its
    // connections after the CLUSTERDOWN reply, failing a few concurrent
    // scans of that sweep; the next sweep (as the service runs them) finds
    // those, so a few consecutive sweeps must cover every other bucket.
    let elsewhere: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| keys::bucket(id) != keys::bucket(&ids[0]))
        .collect();
    assert!(!elsewhere.is_empty());
    let mut found = std::collections::HashSet::new();
    for _ in 0..5 {
        let due = engine
            .due(synckairos::clock::now_ms(), 1000)
            .await
            .unwrap_or_else(|e| panic!("the sweep failed as a whole: {e}"));
        found.extend(due.iter().map(|d| d.session_id));
        if elsewhere.iter().all(|id| found.contains(id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let missing: Vec<&Uuid> = elsewhere.iter().filter(|id| !found.contains(id)).collect();
    panic!("deadlines not found in 5 sweeps while another bucket's slot is unserved: {missing:?}");
}
