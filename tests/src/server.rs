//! Starting and stopping the real `synckairos` binary.
//!
//! Each test gets its own process on a free loopback port, so tests run in
//! parallel without sharing state. The server's output is drained into a
//! buffer for the whole life of the process (a full pipe would block the
//! server), and printed when a test panics, so a failure shows the logs.

use crate::backend::{Backend, Provisioned};
use crate::http::Api;
use crate::ws::WsClient;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to print its `listening on` line (debug
/// builds on a loaded 2-core machine are slow to start).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Keep at most this much log text per server; older text is dropped.
const LOG_CAP: usize = 512 * 1024;

/// Path of the server binary: `$SYNCKAIROS_BIN`, else next to the test
/// executable's directory (test exes live in `<target>/debug/deps/`).
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SYNCKAIROS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("synckairos"))
        .unwrap_or_else(|| panic!("cannot derive the server path from {}", exe.display()))
}

/// Runs the binary with `args` (any subcommand) and `env`, no credentials
/// inherited, expecting it to exit within `within`: its exit status (`None`
/// if it had to be killed), stdout and stderr.
pub async fn run_cli(
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> (Option<ExitStatus>, String, String) {
    let mut cmd = Command::new(server_binary());
    cmd.args(args);
    for k in AUTH_VARS {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    wait_output(cmd, within).await
}

/// Runs `cmd` to its exit with piped output; `None` if it was still running
/// after `within` (dropping the future drops the child: kill_on_drop stops it).
async fn wait_output(mut cmd: Command, within: Duration) -> (Option<ExitStatus>, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the server binary: {e}"));
    match tokio::time::timeout(within, child.wait_with_output()).await {
        Ok(Ok(out)) => (
            Some(out.status),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Ok(Err(e)) => panic!("waiting for the binary: {e}"),
        Err(_) => (None, String::new(), String::new()),
    }
}

/// Shared, capped log buffer fed by the drain tasks.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<String>>);

impl LogBuf {
    fn push(&self, tag: &str, line: &str) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.push_str(tag);
        buf.push_str(line);
        buf.push('\n');
        if buf.len() > LOG_CAP {
            let cut = buf.len() - LOG_CAP / 2;
            let cut = (cut..buf.len())
                .find(|&i| buf.is_char_boundary(i))
                .unwrap_or(0);
            buf.replace_range(..cut, "[…]\n");
        }
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    tag: &'static str,
    logs: LogBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.push(tag, &line);
        }
    })
}

/// Credentials and listener settings a developer's shell might export: a
/// test server starts without them unless the test sets them.
const AUTH_VARS: [&str; 12] = [
    "AUTH",
    "API_KEYS",
    "API_KEYS_FILE",
    "TOKEN_SECRET",
    "TOKEN_SECRET_FILE",
    "TOKEN_PUBLIC_KEY_FILE",
    "TOKEN_ALGORITHM",
    "TOKEN_ISSUER",
    "TOKEN_AUDIENCE",
    "TOKEN_MAX_TTL_SECONDS",
    "TOKEN_LEEWAY_SECONDS",
    "ADMIN_PORT",
];

/// Options for a server start beyond the backend (extra flags, env vars, a
/// backend already provisioned for another server).
pub struct ServerBuilder {
    backend: Backend,
    command: String,
    bind: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    provisioned: Option<Provisioned>,
}

impl ServerBuilder {
    /// Appends a command-line argument after `serve --port 0 --bind 127.0.0.1`.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Runs another subcommand taking the serve flags (`check-config`)
    /// instead of `serve`; only for [`run_to_exit`](Self::run_to_exit).
    pub fn command(mut self, c: impl Into<String>) -> Self {
        self.command = c.into();
        self
    }

    /// Binds another address than 127.0.0.1 (startup-refusal tests; only
    /// for [`run_to_exit`](Self::run_to_exit): tests listen on loopback).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Turns auth on with the test kit's credentials ([`crate::auth`]): the
    /// API key `backend` and the HS256 token secret, with no clock leeway
    /// so expiry is exact.
    pub fn with_auth(self) -> Self {
        self.env("API_KEYS", crate::auth::API_KEYS)
            .env("TOKEN_SECRET", crate::auth::TOKEN_SECRET)
            .env("TOKEN_LEEWAY_SECONDS", "0")
    }

    /// Sets an environment variable for the server process.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Reuses a provisioned backend (several servers on one Redis).
    pub fn provisioned(mut self, p: Provisioned) -> Self {
        self.provisioned = Some(p);
        self
    }

    /// Runs the command expecting it to exit by itself (startup errors,
    /// `--help`): returns its exit status and everything it printed. A
    /// process still running after `within` is killed and reported as `None`.
    pub async fn run_to_exit(self, within: Duration) -> (Option<ExitStatus>, String, String) {
        let mut cmd = Command::new(server_binary());
        cmd.args([
            self.command.as_str(),
            "--port",
            "0",
            "--bind",
            self.bind.as_str(),
        ])
        .args(&self.args)
        .env_remove("PORT")
        .env_remove("BIND")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_NODES")
        .env_remove("DATABASE_URL");
        for k in AUTH_VARS {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        wait_output(cmd, within).await
    }

    /// Spawns the server and waits for its `listening on` line.
    pub async fn start(self) -> TestServer {
        let prov =
            match self.provisioned {
                Some(p) => p,
                None => self.backend.provision().await.unwrap_or_else(|e| {
                    panic!("provisioning {} failed: {e:#}", self.backend.name())
                }),
            };
        let bin = server_binary();
        let mut cmd = Command::new(&bin);
        cmd.args(["serve", "--port", "0", "--bind", "127.0.0.1"])
            .args(&self.args)
            // A predictable environment: nothing from the developer's shell
            // selects another engine by accident.
            .env_remove("PORT")
            .env_remove("BIND")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_NODES")
            .env_remove("DATABASE_URL")
            .env(
                "RUST_LOG",
                std::env::var("SYNCKAIROS_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            // The suites drive one session hundreds of times a second and
            // fuzz a WebSocket with a burst of 120 messages: far past the
            // per-session and per-connection defaults, which suit real
            // clients (a chess or quiz client sends a few a second). The
            // limits stay on, high; the hostile suite sets its own by flag.
            .env("RATE_LIMIT_PER_SESSION", "100000")
            .env("WS_MESSAGES_PER_SECOND", "100000")
            .envs(prov.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in AUTH_VARS {
            cmd.env_remove(k);
        }
        cmd.envs(prov.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it: cargo build -p synckairos --bin synckairos, or set SYNCKAIROS_BIN)",
                bin.display()
            )
        });
        let logs = LogBuf::default();
        let stderr = child
            .stderr
            .take()
            .unwrap_or_else(|| panic!("no stderr pipe"));
        let stderr_done = drain(stderr, "[err] ", logs.clone());
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("no stdout pipe"));
        let mut out = BufReader::new(stdout);
        let mut first = String::new();
        let read = tokio::time::timeout(STARTUP_TIMEOUT, out.read_line(&mut first)).await;
        let port = match read {
            Ok(Ok(n)) if n > 0 => first
                .trim_end()
                .strip_prefix("listening on http://127.0.0.1:")
                .and_then(|p| p.parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            // Collect everything it said: stderr ends when the process is gone.
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), stderr_done).await;
            panic!(
                "server did not announce `listening on http://127.0.0.1:PORT` (first stdout line: {first:?}, read: {read:?})\n--- server logs ---\n{}",
                logs.get()
            );
        };
        // The reader itself, not its inner pipe: lines it already buffered
        // (an `admin listening on` right behind the first) are kept.
        let _stdout_drain = drain(out, "[out] ", logs.clone());
        let base = format!("http://127.0.0.1:{port}");
        TestServer {
            api: Api::new(&base),
            base,
            port,
            child: Some(child),
            logs,
            backend: self.backend,
            _provisioned: prov,
        }
    }
}

/// A running server process; killed when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The port it listens on.
    pub port: u16,
    api: Api,
    child: Option<Child>,
    logs: LogBuf,
    backend: Backend,
    _provisioned: Provisioned,
}

impl TestServer {
    /// Starts a server on `backend` with default options.
    pub async fn start(backend: &Backend) -> TestServer {
        Self::builder(backend).start().await
    }

    /// A builder for extra flags or environment.
    pub fn builder(backend: &Backend) -> ServerBuilder {
        ServerBuilder {
            backend: backend.clone(),
            command: "serve".into(),
            bind: "127.0.0.1".into(),
            args: Vec::new(),
            env: Vec::new(),
            provisioned: None,
        }
    }

    /// The backend this server runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The REST client bound to this server.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// `ws://127.0.0.1:PORT/ws?{query}` — the raw form, for malformed queries.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws{}", self.port, query)
    }

    /// Opens a WebSocket for `session_id`.
    pub async fn ws(&self, session_id: &str) -> WsClient {
        WsClient::connect(&self.ws_url(&format!("?sessionId={session_id}"))).await
    }

    /// Opens a WebSocket for `session_id` and consumes the CONNECTED and
    /// STATE_SYNC greeting, returning the synced state.
    pub async fn ws_synced(&self, session_id: &str) -> (WsClient, serde_json::Value) {
        let mut ws = self.ws(session_id).await;
        let hello = ws.expect_type("CONNECTED").await;
        assert_eq!(
            hello["sessionId"], session_id,
            "CONNECTED names the session: {hello}"
        );
        let sync = ws.expect_type("STATE_SYNC").await;
        let state = sync["state"].clone();
        (ws, state)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .unwrap_or_else(|| panic!("server process already reaped"))
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and still own (not reaped).
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            rc,
            0,
            "kill(SIGTERM) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the process to exit; None if it is still running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match tokio::time::timeout(within, child.wait()).await {
            Ok(Ok(st)) => Some(st),
            _ => None,
        }
    }

    /// The admin listener's base URL (a server started with `ADMIN_PORT`),
    /// from the `admin listening on` line it prints after the main one.
    pub async fn admin_base(&self) -> String {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let logs = self.logs.get();
            let found = logs
                .lines()
                .find_map(|l| l.strip_prefix("[out] admin listening on "));
            if let Some(base) = found {
                return base.trim().to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no `admin listening on` line; logs:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the server printed so far (stderr lines tagged `[err]`).
    pub fn logs(&self) -> String {
        self.logs.get()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let logs = self.logs.get();
        // "Nothing panics on input" (DESIGN.md principle 9) is checked for
        // every test: a panic in any server task fails the test that caused it.
        if !std::thread::panicking() && logs.contains("panicked at") {
            panic!(
                "the server ({}) panicked during this test:\n{logs}",
                self.backend.name()
            );
        }
        if std::thread::panicking() {
            let tail: Vec<&str> = logs.lines().rev().take(300).collect();
            eprintln!(
                "--- server {} ({}) logs, last {} lines ---",
                self.base,
                self.backend.name(),
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            eprintln!("--- end of server logs ---");
        }
    }
}
