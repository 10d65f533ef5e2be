//! What a test takes from the machine it runs on: free loopback ports,
//! scratch directories, and external tools (redis-server, redis-cli, the
//! PostgreSQL binaries) — with one rule for a missing tool.
//!
//! The rule: under `CI=true` a missing tool fails the run (a test that could
//! not run must not be counted as passed); on a developer's machine it may
//! skip with a printed line. [`verdict`] is that rule as a pure function;
//! [`need`] applies it.

use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback port nobody listens on right now (the OS picks it, so
/// parallel tests do not collide; the caller binds it soon after).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free loopback port whose Redis Cluster bus port (`port + 10000`) is
/// free too, for cluster nodes.
pub fn free_port_with_bus() -> Result<u16> {
    for _ in 0..100 {
        let port = free_port()?;
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port pair (port, port + 10000) found")
}

static SCRATCH: AtomicU32 = AtomicU32::new(0);

/// A new empty directory under the system temp dir, named after `kind`, the
/// process and a counter so concurrent tests never share one. The caller
/// removes it.
pub fn scratch_dir(kind: &str) -> Result<PathBuf> {
    let root = std::env::temp_dir().join(format!(
        "sk-{kind}-{}-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&root).with_context(|| format!("mkdir {}", root.display()))?;
    Ok(root)
}

/// What to do about a test that needs an external tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The tool is there: run the test.
    Run,
    /// Missing on a developer's machine: skip, saying so.
    Skip,
    /// Missing under CI: fail, so a green run means the test ran.
    Fail,
}

/// The missing-tool rule, pure so it can be tested: a present tool runs, a
/// missing one skips outside CI and fails under CI.
pub fn verdict(present: bool, ci: bool) -> Verdict {
    match (present, ci) {
        (true, _) => Verdict::Run,
        (false, false) => Verdict::Skip,
        (false, true) => Verdict::Fail,
    }
}

/// Whether the value of the `CI` variable means "running in CI" (`true` or
/// `1`, as CI systems set it; unset, empty, `false` or `0` do not).
pub fn ci_from(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Whether this run is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    ci_from(std::env::var("CI").ok().as_deref())
}

/// Whether `program` can be started (`program --version` runs).
pub fn tool_present(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// For tests that skip when `program` is missing: `true` when it is there;
/// `false` after printing a skip line on a developer's machine; a panic
/// under CI, where a missing tool must fail the run, not pass it.
pub fn need(program: &str) -> bool {
    match verdict(tool_present(program), in_ci()) {
        Verdict::Run => true,
        Verdict::Skip => {
            eprintln!("SKIPPED: {program} not found (under CI=true this fails)");
            false
        }
        Verdict::Fail => panic!(
            "{program} not found and CI=true: install it, a test that cannot run must not pass"
        ),
    }
}

/// The redis-server executable: `$REDIS_SERVER`, else `redis-server` on PATH.
pub fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_fails_under_ci_and_skips_elsewhere() {
        assert_eq!(verdict(false, true), Verdict::Fail);
        assert_eq!(verdict(false, false), Verdict::Skip);
        assert_eq!(verdict(true, true), Verdict::Run);
        assert_eq!(verdict(true, false), Verdict::Run);
    }

    #[test]
    fn ci_is_true_or_one() {
        assert!(ci_from(Some("true")));
        assert!(ci_from(Some("TRUE")));
        assert!(ci_from(Some("1")));
        assert!(!ci_from(None));
        assert!(!ci_from(Some("")));
        assert!(!ci_from(Some("false")));
        assert!(!ci_from(Some("0")));
    }

    #[test]
    fn a_tool_that_does_not_exist_is_missing() {
        assert!(!tool_present("sk-no-such-tool-anywhere"));
        assert!(tool_present("sh") || tool_present("ls"));
    }

    #[test]
    fn free_ports_bind_and_bus_ports_are_free() {
        let p = free_port_with_bus().unwrap();
        assert!(p < 55_000);
        let _a = TcpListener::bind(("127.0.0.1", p)).unwrap();
        let _b = TcpListener::bind(("127.0.0.1", p + 10_000)).unwrap();
    }

    #[test]
    fn scratch_dirs_are_distinct() {
        let (a, b) = (scratch_dir("t").unwrap(), scratch_dir("t").unwrap());
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }
}
