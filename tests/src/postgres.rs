//! An ephemeral PostgreSQL for tests: `initdb --no-sync` into a temp dir,
//! `pg_ctl start` on a free loopback port, stopped and removed on drop.
//!
//! initdb refuses to run as root, so when the tests run as root every
//! PostgreSQL command runs as the `postgres` user (via `runuser`), and the
//! temp dir is handed to that user. Binaries come from `$PG_BIN`, else the
//! newest `/usr/lib/postgresql/*/bin`, else `PATH`.

use crate::host::{free_port, scratch_dir};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A running throw-away PostgreSQL server owned by one test.
pub struct Postgres {
    root: PathBuf,
    bin: Option<PathBuf>,
    port: u16,
    durable: bool,
    as_postgres: bool,
}

fn find_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let v: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let bin = entry.path().join("bin");
        if bin.join("initdb").exists() && best.as_ref().is_none_or(|(bv, _)| v > *bv) {
            best = Some((v, bin));
        }
    }
    best.map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// Starts a server tuned for tests (fsync off): fast, not crash-safe.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// Starts a server with PostgreSQL's default durability (fsync on), for
    /// benchmarks whose numbers should mean something.
    pub fn start_durable() -> Result<Self> {
        Self::start_with(true)
    }

    /// [`start`](Self::start) off the async runtime's threads (initdb and
    /// pg_ctl block for a second or two), for `#[tokio::test]`s.
    pub async fn start_async() -> Result<Self> {
        tokio::task::spawn_blocking(Self::start).await?
    }

    /// [`start_durable`](Self::start_durable) off the async runtime's threads.
    pub async fn start_durable_async() -> Result<Self> {
        tokio::task::spawn_blocking(Self::start_durable).await?
    }

    fn start_with(durable: bool) -> Result<Self> {
        let as_postgres = is_root();
        let root = scratch_dir("pg")?;
        let mut pg = Postgres {
            root,
            bin: find_bin(),
            port: 0,
            durable,
            as_postgres,
        };
        if as_postgres {
            pg.checked(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&pg.root),
            )?;
        }
        let data = pg.data_dir();
        let initdb = pg.pg_command("initdb");
        pg.run_pg(
            initdb,
            &[
                "--no-sync",
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "-D",
                &data.to_string_lossy(),
            ],
        )
        .context("initdb (PostgreSQL not found? apt-get install postgresql, or set PG_BIN)")?;
        pg.port = free_port()?;
        pg.start_again()?;
        Ok(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn pg_command(&self, name: &str) -> String {
        match &self.bin {
            Some(b) => b.join(name).to_string_lossy().into_owned(),
            None => name.to_string(),
        }
    }

    fn checked(&self, cmd: &mut Command) -> Result<Output> {
        let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
        if !out.status.success() {
            bail!(
                "{cmd:?} failed: {}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    fn run_pg(&self, program: String, args: &[&str]) -> Result<Output> {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &program]);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args).current_dir(&self.root);
        self.checked(&mut cmd)
    }

    /// The loopback port the server listens on (stable across stop/start).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for the default `postgres` database (superuser, trust auth).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A URL for database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh database (for tests sharing one server) and returns its URL.
    pub fn create_database(&self, db: &str) -> Result<String> {
        let port = self.port.to_string();
        self.run_pg(
            self.pg_command("createdb"),
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", db],
        )?;
        Ok(self.url_for(db))
    }

    /// Starts the server (again) on the same port and waits until it accepts
    /// connections.
    pub fn start_again(&self) -> Result<()> {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.root.display()
        );
        if !self.durable {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let data = self.data_dir();
        let log = self.root.join("postgres.log");
        self.run_pg(
            self.pg_command("pg_ctl"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
        .with_context(|| format!("pg_ctl start; log: {}", self.log_tail()))?;
        self.wait_ready(Duration::from_secs(30))
    }

    /// Stops the server (fast mode: connections are terminated), keeping the data.
    pub fn stop(&self) -> Result<()> {
        let data = self.data_dir();
        self.run_pg(
            self.pg_command("pg_ctl"),
            &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"],
        )?;
        Ok(())
    }

    fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let port = self.port.to_string();
        loop {
            let ok = self
                .run_pg(
                    self.pg_command("pg_isready"),
                    &["-h", "127.0.0.1", "-p", &port, "-U", "postgres"],
                )
                .is_ok();
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres not ready within {within:?}; log: {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
        let start = s.len().saturating_sub(2000);
        s.get(start..).unwrap_or_default().to_string()
    }

    /// Runs SQL through `psql` and returns its unaligned output (`-At`), for
    /// checks that should not depend on the code under test.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let port = self.port.to_string();
        let out = self.run_pg(
            self.pg_command("psql"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The data directory's parent, for diagnostics.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run_pg(
            self.pg_command("pg_ctl"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
