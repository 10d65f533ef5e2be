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
    fn loadavg_parses() {
        assert_eq!(parse_loadavg_1m("5.54 6.13 5.06 3/400 7853\n"), Some(5.54));
        assert_eq!(parse_loadavg_1m(""), None);
        assert!(loadavg_1m().is_some_and(|l| l >= 0.0));
    }
}
