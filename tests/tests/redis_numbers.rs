//! Measurements for the Redis engine's targets (issue 3), printed, not
//! asserted as timings. Slow (100,000 sessions), so ignored by default:
//!
//! ```sh
//! cargo test -p synckairos-tests --release --test redis_numbers -- --ignored --nocapture
//! ```
//!
//! - Redis memory per idle 2-participant session (`INFO memory` delta over
//!   100,000 sessions, and `MEMORY USAGE` of one state key).
//! - The `redis-benchmark` baseline for a single EVALSHA on this machine:
//!   a trivial script, and our commit script doing its full work (version
//!   check, SET with TTL, deadline index move, SPUBLISH). Compare with the
//!   switch throughput of `BENCH_REDIS_URL=... make bench`.
//! - In-process switch throughput (service + engine, no HTTP) at 64
//!   concurrent switches (`SK_CONNS` overrides the connection count), to tell
//!   the engine's share from the HTTP layer's.

use futures::StreamExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synckairos::domain::CreateSpec;
use synckairos::engine::redis::{RedisConfig, connect, keys};
use synckairos::metrics::Metrics;
use synckairos::service::{Service, ServiceConfig};
use synckairos_tests::redis::RedisServer;
use uuid::Uuid;

const SESSIONS: usize = 100_000;

fn used_memory(r: &RedisServer) -> i64 {
    let info = r.cli(&["info", "memory"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in {info}"))
}

fn two_player(id: Uuid) -> CreateSpec {
    CreateSpec::from_json(&serde_json::json!({
        "session_id": id,
        "sync_mode": "per_participant",
        "participants": [
            {"participant_id": "white", "participant_index": 0, "total_time_ms": 300000},
            {"participant_id": "black", "participant_index": 1, "total_time_ms": 300000}
        ],
        "total_time_ms": 300000,
        "increment_ms": 2000
    }))
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: 100,000 sessions; run with --ignored --nocapture"]
async fn memory_per_idle_session() {
    let redis = RedisServer::start().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let engine = connect(
        RedisConfig {
            url: Some(redis.url()),
            ..RedisConfig::default()
        },
        &metrics,
    )
    .await
    .unwrap();
    let svc = Service::new(engine, metrics, ServiceConfig::default());
    let before = used_memory(&redis);
    let started = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..SESSIONS)
        .map(|_| {
            let svc = Arc::clone(&svc);
            async move { svc.create(two_player(Uuid::new_v4())).await.is_ok() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(results.iter().all(|ok| *ok), "every create succeeded");
    let after = used_memory(&redis);
    let dbsize: i64 = redis.cli(&["dbsize"]).unwrap().trim().parse().unwrap();
    let sample = Uuid::new_v4();
    svc.create(two_player(sample)).await.unwrap();
    let usage: i64 = redis
        .cli(&["memory", "usage", &keys::state_key(&sample), "samples", "0"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let len: i64 = redis
        .cli(&["strlen", &keys::state_key(&sample)])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let per = (after - before) as f64 / SESSIONS as f64;
    println!(
        "{SESSIONS} idle 2-participant sessions created in {:.1} s ({:.0}/s in-process, debug or release as built); keys {dbsize}",
        took.as_secs_f64(),
        SESSIONS as f64 / took.as_secs_f64()
    );
    println!(
        "Redis memory per idle session: {per:.0} B (used_memory delta / {SESSIONS}); MEMORY USAGE of one state key: {usage} B (value {len} B); target < 1536 B"
    );
    assert!(usage > 0 && per > 0.0);
}

fn rps(out: &str) -> f64 {
    // `redis-benchmark -q` prints `NAME: 123456.78 requests per second, p50=...`.
    out.split_whitespace()
        .zip(out.split_whitespace().skip(1))
        .find(|(_, next)| *next == "requests")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse redis-benchmark output: {out}"))
}

fn bench(port: u16, args: &[&str]) -> f64 {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "64",
            "-n",
            "200000",
            "-q",
        ])
        .args(args)
        .output()
        .expect("redis-benchmark");
    rps(&String::from_utf8_lossy(&out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: redis-benchmark baseline; run with --ignored --nocapture"]
async fn evalsha_baseline() {
    let redis = RedisServer::start().await.unwrap();
    let port = redis.port();
    let trivial = redis.cli(&["script", "load", "return 1"]).unwrap();
    let trivial = trivial.trim();
    let commit = redis
        .cli(&[
            "script",
            "load",
            include_str!("../../server/src/engine/redis/commit.lua"),
        ])
        .unwrap();
    let commit = commit.trim();
    // A realistic stored value: one running 2-participant session.
    let id = Uuid::new_v4();
    let svc_json = serde_json::json!({"session_id": id, "sync_mode": "per_participant", "status": "running",
        "participants": [{"id": "white", "ix": 0, "b": 298000, "u": 2000, "c": 1}, {"id": "black", "ix": 1, "b": 300000, "u": 0, "c": 0}],
        "total_time_ms": 300000, "increment_ms": 2000, "version": 1, "active": "black", "cycle_started_at": 1764000000000i64});
    let value = format!("1|{svc_json}");
    let state = keys::state_key(&id);
    let b = keys::bucket(&id);
    let (dl, ob, ch) = (
        keys::deadlines_key(b),
        keys::outbox_key(b),
        keys::channel(&id),
    );
    redis.cli(&["set", &state, &value]).unwrap();
    let idstr = id.to_string();
    let update = format!("2 s\n{{\"type\":\"STATE_UPDATE\",\"state\":{svc_json}}}");
    let t = Instant::now();
    let trivial_rps = bench(port, &["evalsha", trivial, "0"]);
    // Expected version "1" and a new value that again starts with "1|":
    // every call does the full commit (the prefix never moves on).
    let commit_rps = bench(
        port,
        &[
            "evalsha",
            commit,
            "3",
            &state,
            &dl,
            &ob,
            "1",
            &value,
            "3600000",
            &format!("{idstr}:1"),
            &format!("{idstr}:2"),
            "1764000300000",
            "",
            "1000",
            &ch,
            &update,
        ],
    );
    assert!(t.elapsed() < Duration::from_secs(120));
    // The commit really ran: the deadline index holds the entry.
    let zcard: i64 = redis.cli(&["zcard", &dl]).unwrap().trim().parse().unwrap();
    assert_eq!(zcard, 1);
    println!(
        "redis-benchmark -c 64: EVALSHA `return 1`: {trivial_rps:.0} req/s; EVALSHA commit.lua (full commit, {} B state): {commit_rps:.0} req/s",
        value.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: in-process switch throughput on the Redis engine; run with --release --ignored --nocapture"]
async fn in_process_switch_throughput() {
    use synckairos::domain::{Command as Cmd, SwitchArgs};
    let redis = RedisServer::start().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let engine = connect(
        RedisConfig {
            url: Some(redis.url()),
            connections: std::env::var("SK_CONNS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
            ..RedisConfig::default()
        },
        &metrics,
    )
    .await
    .unwrap();
    let svc = Service::new(engine, metrics, ServiceConfig::default());
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let id = Uuid::new_v4();
        svc.create(two_player(id)).await.unwrap();
        svc.command(id, Cmd::Start).await.unwrap();
        ids.push(id);
    }
    let ids = Arc::new(ids);
    let until = Instant::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let (svc, ids) = (Arc::clone(&svc), Arc::clone(&ids));
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = t;
                while Instant::now() < until {
                    let s = Instant::now();
                    svc.command(ids[i % ids.len()], Cmd::Switch(SwitchArgs::default()))
                        .await
                        .unwrap();
                    lat.push(s.elapsed().as_micros() as u64);
                    i += 64;
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let pct = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "in-process switches on Redis, 64 concurrent: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        all.len() as f64 / 5.0,
        pct(0.5),
        pct(0.99)
    );
}
