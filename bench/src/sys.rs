//! Readings from /proc: the server's memory and the machine's load.
//!
//! The load average is recorded with every scenario because the generator
//! shares a small machine with the server and, often, with builds; a number
//! measured under a load of 6 on 2 cores must say so.

use anyhow::{Context, Result};

/// Extracts VmRSS in KiB from the text of /proc/PID/status.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Reads a process's resident set size in KiB.
pub fn read_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss_kib(&text).with_context(|| format!("no VmRSS line in {path}"))
}

/// Extracts user + system CPU time in clock ticks from the text of /proc/PID/stat
/// (fields 14 and 15; the command name in parentheses may contain spaces).
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) fields[12].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of /proc/PID/stat (USER_HZ, 100 on every Linux we run on).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) a process has used so far, 10 ms resolution.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat_cpu_ticks(&text).with_context(|| format!("cannot parse {path}"))?;
    Ok(ticks as f64 / USER_HZ)
}

/// CPU use of the server and of this generator over a measured window, so a
/// run on a busy machine still yields a comparable number: CPU per request.
pub struct CpuMeter {
    server_pid: Option<u32>,
    server_start: Option<f64>,
    own_start: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring (the server part only when its PID is known).
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            server_start: server_pid.and_then(|p| cpu_seconds(p).ok()),
            own_start: cpu_seconds(std::process::id()).ok(),
        }
    }

    /// (server CPU seconds, generator CPU seconds) since `start`, when readable.
    pub fn stop(&self) -> (Option<f64>, Option<f64>) {
        let server = match (self.server_pid, self.server_start) {
            (Some(p), Some(s)) => cpu_seconds(p).ok().map(|e| round2(e - s)),
            _ => None,
        };
        let own = self
            .own_start
            .and_then(|s| cpu_seconds(std::process::id()).ok().map(|e| round2(e - s)));
        (server, own)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Extracts the 1-minute load average from the text of /proc/loadavg.
pub fn parse_loadavg_1m(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The machine's 1-minute load average, when /proc/loadavg is readable.
pub fn loadavg_1m() -> Option<f64> {
    parse_loadavg_1m(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_proc_status_text() {
        let text = "Name:\tsynckairos\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss_kib(text), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn own_rss_is_readable() {
        let kib = read_rss_kib(std::process::id()).unwrap();
        assert!(kib > 0);
    }

    #[test]
    fn stat_cpu_ticks_parse_even_with_spaces_in_the_name() {
        let stat =
            "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("1234 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let before = cpu_seconds(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        // Burn CPU until the 10 ms counter moves (a busy machine may give us
        // only a fraction of a core, so wait on the counter, not on a fixed time).
        loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let now = cpu_seconds(std::process::id()).unwrap();
            if now > before {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "CPU time stuck at {before} s"
            );
        }
    }

    #[test]
    fn loadavg_parses() {
        assert_eq!(parse_loadavg_1m("5.54 6.13 5.06 3/400 7853\n"), Some(5.54));
        assert_eq!(parse_loadavg_1m(""), None);
        assert!(loadavg_1m().is_some_and(|l| l >= 0.0));
    }
}
