//! Throw-away Redis for tests: a standalone `redis-server`, or a 6-node
//! Redis Cluster (3 primaries, 3 replicas) formed with
//! `redis-cli --cluster create`, each on free loopback ports with its own
//! temp dir; every process is killed and every dir removed on drop. The one
//! Redis spawner of the workspace: the server's engine tests, the audit
//! suites and the operator's cluster-formation tests use it too
//! ([`RedisProcess`] is the single node they build on).
//!
//! Failure drills for the multi-instance suites: kill a node with SIGKILL,
//! restart it on the same port and data dir, shut a standalone server down
//! with a save, find which primary owns a key and wait for its replica to
//! take over.

use crate::host::{free_port, free_port_with_bus, redis_server_bin, scratch_dir};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `redis-cli -p PORT args...` and returns its stdout.
pub fn cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("redis-cli not found (install redis-server / redis-tools)")?;
    if !out.status.success() {
        bail!(
            "redis-cli -p {port} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends one command over RESP to `127.0.0.1:port` and returns the first
/// line of the reply (`+PONG`, `-NOAUTH ...`), or `""` when the server
/// closed the connection without one (as `SHUTDOWN` does). Needs no
/// redis-cli, so a plain server needs only redis-server.
pub fn command(port: u16, args: &[&str]) -> Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") && s.read(&mut byte)? == 1 {
        reply.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}

/// Whether a server listens on `port` and is past loading its data: it
/// answers PING with PONG, or with NOAUTH when it wants a password.
fn answers(port: u16) -> bool {
    command(port, &["PING"]).is_ok_and(|r| r == "+PONG" || r.starts_with("-NOAUTH"))
}

async fn wait_for(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    while !cond() {
        if Instant::now() > deadline {
            bail!("not reached within {within:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

/// One `redis-server` process: a data dir that outlives restarts (dumps,
/// AOF, `nodes.conf`), its arguments, and the port of its current run. The
/// building block of [`RedisServer`] and [`RedisCluster`], and of suites
/// that drive nodes themselves (the operator's cluster-formation tests
/// start them unjoined and move them to new ports). Killed on drop; the
/// caller owns the directory.
pub struct RedisProcess {
    port: AtomicU16,
    dir: PathBuf,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl RedisProcess {
    /// A process to be started in `dir` with `args` (after `--port`,
    /// `--bind 127.0.0.1` and `--dir`); not running yet.
    pub fn new(dir: impl Into<PathBuf>, args: &[&str]) -> Self {
        Self {
            port: AtomicU16::new(0),
            dir: dir.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            child: Mutex::new(None),
        }
    }

    fn spawn(&self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("redis.log"))?;
        let bin = redis_server_bin();
        let child = Command::new(&bin)
            .args(["--port", &self.port().to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("cannot start {bin} (apt-get install redis-server, or make redis-prereqs)")
            })?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    /// Starts on `port` and waits until it answers PING.
    pub async fn start_on(&self, port: u16) -> Result<()> {
        self.port.store(port, Ordering::Relaxed);
        self.start().await
    }

    /// Starts on a fresh free port whose cluster bus port is free too.
    pub async fn start_on_free_port(&self) -> Result<()> {
        self.start_on(free_port_with_bus()?).await
    }

    /// Starts (again) on the port of the last run, with the same data dir,
    /// and waits until it answers PING; fails early if the process exits.
    pub async fn start(&self) -> Result<()> {
        self.spawn()?;
        let port = self.port();
        wait_for(Duration::from_secs(10), "redis-server answers PING", || {
            answers(port) || !self.is_running()
        })
        .await
        .with_context(|| self.log_tail())?;
        if !self.is_running() {
            bail!("redis-server on {port} exited: {}", self.log_tail());
        }
        Ok(())
    }

    /// The client port of the current (or last) run.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process was started and has not exited.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                *child = None;
                false
            }
            None => false,
        }
    }

    /// SIGSTOP (`pause = true`) or SIGCONT: a Redis that is slow rather than
    /// gone (connections stay open, nothing is answered).
    pub fn pause(&self, pause: bool) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = child.as_ref().map(Child::id) {
            let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// SIGKILL: the server vanishes without saving.
    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A clean stop: sends `SHUTDOWN` with `how` (`[]`, `["SAVE"]`,
    /// `["NOSAVE"]`) and waits for the process to exit (an AOF is flushed);
    /// killed if it has not exited within 10 s.
    pub async fn shutdown(&self, how: &[&str]) -> Result<()> {
        let mut args = vec!["SHUTDOWN"];
        args.extend_from_slice(how);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The connection drops as the server exits: no reply is the
            // success case. An error reply means it refuses to stop for now
            // (Redis 7 does while its first AOF is still being written, which
            // on a busy machine outlasts a fresh start): ask again until the
            // deadline.
            let reply = command(self.port(), &args).unwrap_or_default();
            let exited = wait_for(Duration::from_millis(500), "redis-server exited", || {
                !self.is_running()
            })
            .await;
            if exited.is_ok() || Instant::now() >= deadline {
                self.kill();
                return exited.with_context(|| format!("SHUTDOWN answered {reply:?}"));
            }
        }
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(30).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fast and quiet; persistence only when a test asks for it (SHUTDOWN SAVE).
const COMMON_ARGS: [&str; 6] = ["--save", "", "--appendonly", "no", "--loglevel", "warning"];

/// A standalone Redis for one test (or several servers of one test), in
/// its own scratch dir, removed on drop.
pub struct RedisServer {
    node: RedisProcess,
    root: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port.
    pub async fn start() -> Result<Arc<RedisServer>> {
        Self::start_with(&[]).await
    }

    /// Starts `redis-server` on a free loopback port with `extra` arguments
    /// (e.g. `--cluster-enabled yes` for a lone cluster-mode node).
    pub async fn start_with(extra: &[&str]) -> Result<Arc<RedisServer>> {
        let root = scratch_dir("redis")?;
        let args: Vec<&str> = COMMON_ARGS.iter().chain(extra).copied().collect();
        let server = RedisServer {
            node: RedisProcess::new(&root, &args),
            root,
        };
        server.node.start_on(free_port()?).await?;
        Ok(Arc::new(server))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.node.port()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// Environment that points `synckairos serve` at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("REDIS_URL".into(), self.url())]
    }

    /// `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        cli(self.port(), args)
    }

    /// SIGKILL: the server vanishes without saving.
    pub fn kill(&self) {
        self.node.kill();
    }

    /// Stops (`true`) or continues the process: see [`RedisProcess::pause`].
    pub fn pause(&self, pause: bool) {
        self.node.pause(pause);
    }

    /// `SHUTDOWN SAVE`: writes the data to disk, then exits.
    pub async fn shutdown_save(&self) -> Result<()> {
        self.node.shutdown(&["SAVE"]).await
    }

    /// Starts again on the same port and data dir: loads a dump saved by
    /// [`shutdown_save`](Self::shutdown_save), else comes back empty.
    pub async fn start_again(&self) -> Result<()> {
        self.node.start().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.node.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A Redis Cluster formed with `redis-cli --cluster create`: by default 6
/// nodes, 3 primaries with one replica each.
pub struct RedisCluster {
    nodes: Vec<RedisProcess>,
    root: PathBuf,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// Node id.
    pub id: String,
    /// Client port.
    pub port: u16,
    /// Whether it is a primary.
    pub primary: bool,
    /// The primary a replica follows.
    pub primary_id: Option<String>,
    /// Whether it is marked failed.
    pub failed: bool,
    /// Slot ranges it serves (primaries).
    pub slots: Vec<(u16, u16)>,
}

fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = f[2];
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            Some(ClusterNode {
                id: f[0].to_string(),
                port,
                primary: flags.contains("master"),
                primary_id: (f[3] != "-").then(|| f[3].to_string()),
                failed: flags.contains("fail") && !flags.contains("fail?"),
                slots,
            })
        })
        .collect()
}

impl RedisCluster {
    /// Starts 6 nodes and forms the cluster; returns once every node
    /// reports `cluster_state:ok` and every primary has its replica.
    pub async fn start() -> Result<Arc<RedisCluster>> {
        Self::start_sized(3, 1).await
    }

    /// Starts `primaries * (1 + replicas)` nodes and forms a cluster of
    /// `primaries` primaries with `replicas` replicas each.
    pub async fn start_sized(primaries: usize, replicas: usize) -> Result<Arc<RedisCluster>> {
        let root = scratch_dir("redis-cluster")?;
        let args: Vec<&str> = COMMON_ARGS
            .iter()
            .copied()
            .chain([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                // Failover within ~2 s of a primary dying.
                "--cluster-node-timeout",
                "1000",
                // A replica may always take over, however stale (tests
                // kill primaries right after forming the cluster).
                "--cluster-replica-validity-factor",
                "0",
                // Slots of a live primary keep serving while another
                // shard is down (the recommended production setting).
                "--cluster-require-full-coverage",
                "no",
            ])
            .collect();
        let mut nodes: Vec<RedisProcess> = Vec::new();
        while nodes.len() < primaries * (1 + replicas) {
            let port = free_port_with_bus()?;
            if nodes.iter().any(|n| n.port() == port) {
                continue;
            }
            let dir = root.join(port.to_string());
            std::fs::create_dir_all(&dir)?;
            let node = RedisProcess::new(dir, &args);
            node.port.store(port, Ordering::Relaxed);
            nodes.push(node);
        }
        let cluster = RedisCluster { nodes, root };
        for n in &cluster.nodes {
            n.start().await?;
        }
        let addrs: Vec<String> = cluster.nodes.iter().map(RedisProcess::addr).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("redis-cli --cluster create (redis-cli not found? install redis-server / redis-tools)")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        // Replicas have finished their first sync (a failover drill right
        // after start then loses nothing).
        for n in &cluster.nodes {
            let port = n.port();
            wait_for(Duration::from_secs(30), "replicas in sync", || {
                cli(port, &["info", "replication"])
                    .is_ok_and(|s| s.contains("role:master") || s.contains("master_link_status:up"))
            })
            .await?;
        }
        Ok(Arc::new(cluster))
    }

    /// Client ports of all nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisProcess::port).collect()
    }

    /// `127.0.0.1:PORT` of every node: the seeds a cluster client takes.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisProcess::addr).collect()
    }

    /// Environment that points `synckairos serve` at this cluster.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("REDIS_CLUSTER_NODES".into(), self.addrs().join(","))]
    }

    fn alive_port(&self) -> Option<u16> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(RedisProcess::port)
            .find(|p| answers(*p))
    }

    /// `CLUSTER NODES` as seen by a live node.
    pub fn topology(&self) -> Result<Vec<ClusterNode>> {
        let port = self.alive_port().context("no live cluster node")?;
        Ok(parse_cluster_nodes(&cli(port, &["cluster", "nodes"])?))
    }

    /// The primary currently serving `key`'s slot.
    pub fn primary_for(&self, key: &str) -> Result<ClusterNode> {
        let port = self.alive_port().context("no live cluster node")?;
        let slot: u16 = cli(port, &["cluster", "keyslot", key])?.trim().parse()?;
        self.topology()?
            .into_iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .with_context(|| format!("no primary serves slot {slot}"))
    }

    /// SIGKILL of the node on `port`.
    pub fn kill(&self, port: u16) {
        if let Some(n) = self.nodes.iter().find(|n| n.port() == port) {
            n.kill();
        }
    }

    /// Restarts a killed node with its data dir (it rejoins from nodes.conf).
    pub async fn start_again(&self, port: u16) -> Result<()> {
        match self.nodes.iter().find(|n| n.port() == port) {
            Some(n) => n.start().await,
            None => bail!("no node on port {port}"),
        }
    }

    /// Waits until every live node says `cluster_state:ok` and all 16384
    /// slots are served by live primaries.
    pub async fn wait_healthy(&self, within: Duration) -> Result<()> {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(RedisProcess::port)
            .collect();
        wait_for(within, "cluster_state:ok on every live node", || {
            live.iter().all(|p| {
                cli(*p, &["cluster", "info"]).is_ok_and(|s| s.contains("cluster_state:ok"))
            }) && self.topology().is_ok_and(|t| {
                let served: u32 = t
                    .iter()
                    .filter(|n| n.primary && !n.failed && live.contains(&n.port))
                    .flat_map(|n| n.slots.iter().map(|(a, b)| u32::from(b - a) + 1))
                    .sum();
                served == 16384
            })
        })
        .await
        .with_context(|| {
            self.nodes
                .iter()
                .map(|n| format!("--- node {} ---\n{}", n.port(), n.log_tail()))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// The temp dir holding every node's data and log.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One standalone Redis shared by every test of this test binary that
/// asks for it (the black-box suites: sessions have random ids, so tests do
/// not see each other). Stopped when the test binary exits.
pub async fn shared_server() -> Result<Arc<RedisServer>> {
    static SHARED: tokio::sync::OnceCell<Arc<RedisServer>> = tokio::sync::OnceCell::const_new();
    let r = SHARED
        .get_or_try_init(|| async {
            let r = RedisServer::start().await?;
            at_exit(Arc::clone(&r) as Arc<dyn Stop>);
            Ok::<_, anyhow::Error>(r)
        })
        .await?;
    Ok(Arc::clone(r))
}

/// One 6-node cluster shared like [`shared_server`] (forming a cluster
/// costs seconds of both cores; the suites need no cluster of their own).
pub async fn shared_cluster() -> Result<Arc<RedisCluster>> {
    static SHARED: tokio::sync::OnceCell<Arc<RedisCluster>> = tokio::sync::OnceCell::const_new();
    let c = SHARED
        .get_or_try_init(|| async {
            let c = RedisCluster::start().await?;
            at_exit(Arc::clone(&c) as Arc<dyn Stop>);
            Ok::<_, anyhow::Error>(c)
        })
        .await?;
    Ok(Arc::clone(c))
}

/// Something to stop when the process exits (statics are never dropped).
trait Stop: Send + Sync {
    fn stop(&self);
}

impl Stop for RedisServer {
    fn stop(&self) {
        self.node.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Stop for RedisCluster {
    fn stop(&self) {
        for n in &self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

static AT_EXIT: Mutex<Vec<Arc<dyn Stop>>> = Mutex::new(Vec::new());

extern "C" fn stop_all() {
    let all = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
    for s in all {
        s.stop();
    }
}

fn at_exit(s: Arc<dyn Stop>) {
    let mut all = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    if all.is_empty() {
        // SAFETY: registers a plain `extern "C" fn` with no arguments; it
        // only kills our own child processes and removes our temp dirs.
        unsafe {
            libc::atexit(stop_all);
        }
    }
    all.push(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@40004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 connected 10923-16383 [93-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 7000
";
        let n = parse_cluster_nodes(text);
        assert_eq!(n.len(), 4);
        assert!(!n[0].primary && n[0].port == 30004);
        assert_eq!(n[1].slots, vec![(5461, 10922)]);
        assert!(n[2].failed && n[2].slots == vec![(10923, 16383)]);
        assert_eq!(n[3].slots, vec![(0, 5460), (7000, 7000)]);
    }

    #[tokio::test]
    async fn standalone_starts_restarts_and_cleans_up() {
        let r = RedisServer::start().await.unwrap();
        r.cli(&["set", "k", "v"]).unwrap();
        r.shutdown_save().await.unwrap();
        assert!(!answers(r.port()));
        r.start_again().await.unwrap();
        assert_eq!(r.cli(&["get", "k"]).unwrap().trim(), "v");
        let root = r.root.clone();
        drop(r);
        assert!(!root.exists());
    }

    #[tokio::test]
    async fn a_process_moves_to_a_new_port_with_its_data() {
        let dir = scratch_dir("redis-proc").unwrap();
        let p = RedisProcess::new(&dir, &["--appendonly", "yes", "--save", ""]);
        p.start_on_free_port().await.unwrap();
        assert_eq!(command(p.port(), &["SET", "k", "v"]).unwrap(), "+OK");
        let old = p.port();
        p.shutdown(&[]).await.unwrap();
        assert!(!p.is_running());
        assert!(
            command(old, &["PING"]).is_err(),
            "nothing listens after SHUTDOWN"
        );
        p.start_on(free_port().unwrap()).await.unwrap();
        assert_ne!(p.port(), old);
        assert_eq!(command(p.port(), &["GET", "k"]).unwrap(), "$1");
        drop(p);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_password_protected_server_counts_as_started() {
        let r = RedisServer::start_with(&["--requirepass", "s3cret"])
            .await
            .unwrap();
        assert!(command(r.port(), &["PING"]).unwrap().starts_with("-NOAUTH"));
    }

    #[tokio::test]
    async fn bad_arguments_fail_fast_with_the_log() {
        let started = Instant::now();
        let err = RedisServer::start_with(&["--no-such-option", "x"])
            .await
            .err()
            .expect("redis-server refuses an unknown option");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not wait 10 s"
        );
        assert!(format!("{err:#}").contains("no-such-option"), "{err:#}");
    }

    #[tokio::test]
    async fn cluster_forms_and_a_replica_takes_over() {
        let c = RedisCluster::start().await.unwrap();
        let topo = c.topology().unwrap();
        assert_eq!(topo.iter().filter(|n| n.primary).count(), 3);
        assert_eq!(topo.len(), 6);
        let victim = c.primary_for("sk:{b7}:d").unwrap();
        c.kill(victim.port);
        c.wait_healthy(Duration::from_secs(30)).await.unwrap();
        let now = c.primary_for("sk:{b7}:d").unwrap();
        assert_ne!(now.port, victim.port);
    }
}
