//! Command-line interface: global target options and one subcommand per scenario.
//!
//! Every scenario is bounded by a duration or a count given here, so a run
//! always stops by itself; the parsers below reject values that would not.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

/// Default base URL: the port `make run` uses.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// Top-level arguments, shared by every scenario.
#[derive(Debug, Parser)]
#[command(
    name = "synckairos-bench",
    version,
    about = "Load generator for SyncKairos (HTTP + WebSocket only; no server internals)",
    long_about = "Load generator for SyncKairos. Talks only HTTP and WebSocket to the base URL \
                  given. Prints a human-readable table and, last, one JSON line per scenario."
)]
pub struct Cli {
    /// Base URL of the SyncKairos REST API (http://host:port[/prefix]).
    #[arg(long, global = true, default_value = DEFAULT_URL, env = "SYNCKAIROS_BENCH_URL")]
    pub url: String,

    /// Allow a base URL that does not resolve to a loopback address. Off by
    /// default so a typo never turns the load generator on somebody's server.
    #[arg(long, global = true)]
    pub allow_remote: bool,

    /// Worker threads of the load generator's runtime (default: number of CPUs).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// API key of a server with auth on: sent as `Authorization: Bearer` on
    /// every request without a session token of its own.
    #[arg(
        long,
        global = true,
        env = "SYNCKAIROS_BENCH_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// PID of the server process on this machine. Required by `idle-ws` (VmRSS);
    /// elsewhere it adds the server's CPU time per request to the report.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,

    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The load scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// C workers hammer POST /v1/sessions/{id}/switch over C keep-alive connections.
    Switch(RestArgs),
    /// C workers hammer GET /v1/sessions/{id} over C keep-alive connections.
    Get(RestArgs),
    /// S sessions x K WebSocket clients; one driver switches; measures delivery latency.
    Fanout(FanoutArgs),
    /// M sessions with short banks; measures TIME_EXPIRED arrival minus deadline_ms.
    Timeouts(TimeoutsArgs),
    /// Opens K idle WebSocket connections; prints the server's RSS growth per connection (needs --server-pid).
    IdleWs(IdleWsArgs),
}

impl Scenario {
    /// The name used in the report and the JSON summary.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Switch(_) => "switch",
            Scenario::Get(_) => "get",
            Scenario::Fanout(_) => "fanout",
            Scenario::Timeouts(_) => "timeouts",
            Scenario::IdleWs(_) => "idle-ws",
        }
    }
}

/// Arguments of the closed-loop REST scenarios (`switch`, `get`).
#[derive(Debug, Clone, Args)]
pub struct RestArgs {
    /// Sessions to create (per_participant, 2 participants, 1-hour banks).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sessions: u32,
    /// Concurrent workers, each with its own HTTP/1.1 keep-alive connection.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Measured duration (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_bounded_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up before the measured duration (0s to skip).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Total requests per second, spread evenly over the workers (latency at a
    /// fixed load). Without it each worker sends as soon as its last response
    /// arrived (closed loop: maximum throughput, and mean latency is then
    /// concurrency / throughput by Little's law).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub rate: Option<u32>,
    /// Run a slowloris + junk-method attack from this machine during the
    /// measured window (see `--attack-slowloris`, `--attack-junk-rate`).
    #[arg(long)]
    pub attack: bool,
    /// Slowloris connections of the attack (one header byte a second each).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub attack_slowloris: u32,
    /// Junk-method requests per second of the attack (1 KB made-up methods).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub attack_junk_rate: u32,
    /// Send each request with a controller session token (HS256) of its
    /// session, minted at setup through `POST /v1/sessions/{id}/tokens` with
    /// --api-key: the cost of verifying a token on every request.
    #[arg(long)]
    pub session_tokens: bool,
}

/// Arguments of the WebSocket fan-out scenario.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Sessions (S).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,
    /// WebSocket clients per session (K); S x K clients in total.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Switches per second issued by the single driver (round-robin over the sessions).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// How long the driver switches.
    #[arg(long, default_value = "10s", value_parser = parse_bounded_duration)]
    pub duration: Duration,
    /// How long clients may still wait for the last versions after the driver stops.
    #[arg(long, default_value = "3s", value_parser = parse_bounded_duration)]
    pub grace: Duration,
    /// Where the WebSocket clients connect (ws://host:port or http://host:port);
    /// defaults to --url. Use another instance to measure cross-instance delivery.
    #[arg(long)]
    pub ws_url_base: Option<String>,
}

/// Arguments of the timeout-lateness scenario.
#[derive(Debug, Clone, Args)]
pub struct TimeoutsArgs {
    /// Sessions (M), each with one WebSocket client.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,
    /// Shortest bank in ms (banks are spread evenly from min to max).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1000..=86_400_000))]
    pub min_bank_ms: u64,
    /// Longest bank in ms.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1000..=86_400_000))]
    pub max_bank_ms: u64,
    /// How long after the last deadline clients keep listening (also catches duplicates).
    #[arg(long, default_value = "2s", value_parser = parse_bounded_duration)]
    pub grace: Duration,
    /// Where the WebSocket clients connect; defaults to --url.
    #[arg(long)]
    pub ws_url_base: Option<String>,
}

/// Arguments of the idle-WebSocket memory scenario.
#[derive(Debug, Clone, Args)]
pub struct IdleWsArgs {
    /// Idle connections to open (K).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub connections: u32,
    /// Sessions the connections are spread over (created before the first RSS reading).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,
    /// Time to let the server settle before each RSS reading.
    #[arg(long, default_value = "1s", value_parser = parse_bounded_duration)]
    pub settle: Duration,
    /// Where the WebSocket clients connect; defaults to --url.
    #[arg(long)]
    pub ws_url_base: Option<String>,
}

/// Parses `10s`, `250ms`, `2m`, `1.5s`, `100us`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected e.g. 10s, 500ms, 1m"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: bad number {num:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        other => return Err(format!("invalid duration {s:?}: unknown unit {other:?}")),
    };
    if !secs.is_finite() || secs > 86_400.0 {
        return Err(format!("invalid duration {s:?}: at most 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Like [`parse_duration`] but refuses zero: a scenario with no time to run measures nothing.
pub fn parse_bounded_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(d)
}

/// A parsed base URL: where to connect and what to prefix to paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Host as written, without IPv6 brackets (`127.0.0.1`, `::1`, `localhost`).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path prefix without a trailing slash (usually empty).
    pub path_prefix: String,
}

impl BaseUrl {
    /// `host:port` with IPv6 brackets, for Host headers, URLs and DNS lookups.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True when the host is literally a loopback address or `localhost`.
    /// The resolved addresses are checked again before connecting.
    pub fn is_literal_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The WebSocket URL of a session's update stream.
    pub fn ws_url(&self, session_id: &str) -> String {
        format!(
            "ws://{}{}/ws?sessionId={session_id}",
            self.authority(),
            self.path_prefix
        )
    }
}

/// Parses `http://host:port[/prefix]` (or `ws://` when `allow_ws`); TLS schemes are refused
/// because the load generator speaks plain HTTP only.
pub fn parse_base_url(s: &str, allow_ws: bool) -> Result<BaseUrl> {
    let uri: http::Uri = s.parse().with_context(|| format!("invalid URL {s:?}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("ws") if allow_ws => {}
        Some(other) => bail!("unsupported scheme {other:?} in {s:?}: use http://"),
        None => bail!("URL {s:?} has no scheme: use http://host:port"),
    }
    let host = uri
        .host()
        .with_context(|| format!("URL {s:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if uri.query().is_some() {
        bail!("base URL {s:?} must not have a query");
    }
    let port = uri.port_u16().unwrap_or(80);
    let path_prefix = uri.path().trim_end_matches('/').to_string();
    Ok(BaseUrl {
        host,
        port,
        path_prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "s", "ten seconds", "10h", "1.2.3s", "-1s", "100000000s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_bounded_duration("0ms").is_err());
        assert!(parse_bounded_duration("1ms").is_ok());
    }

    #[test]
    fn base_urls_parse() {
        let u = parse_base_url("http://127.0.0.1:3000", false).unwrap();
        assert_eq!(
            u,
            BaseUrl {
                host: "127.0.0.1".into(),
                port: 3000,
                path_prefix: String::new()
            }
        );
        assert_eq!(u.authority(), "127.0.0.1:3000");
        assert_eq!(
            u.ws_url("abc"),
            "ws://127.0.0.1:3000/ws?sessionId=abc".to_string()
        );

        let v6 = parse_base_url("http://[::1]:8080/api/", false).unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.path_prefix, "/api");
        assert_eq!(v6.authority(), "[::1]:8080");
        assert!(v6.is_literal_loopback());

        let default_port = parse_base_url("http://localhost", false).unwrap();
        assert_eq!(default_port.port, 80);
        assert!(default_port.is_literal_loopback());
    }

    #[test]
    fn base_url_schemes_are_checked() {
        assert!(parse_base_url("https://127.0.0.1:3000", false).is_err());
        assert!(parse_base_url("127.0.0.1:3000", false).is_err());
        assert!(parse_base_url("ws://127.0.0.1:3000", false).is_err());
        assert!(parse_base_url("ws://127.0.0.1:3000", true).is_ok());
        assert!(parse_base_url("http://127.0.0.1:3000/?x=1", false).is_err());
    }

    #[test]
    fn non_loopback_hosts_are_not_literal_loopback() {
        for url in [
            "http://10.0.0.1:3000",
            "http://example.com",
            "http://[::2]:1",
        ] {
            assert!(
                !parse_base_url(url, false).unwrap().is_literal_loopback(),
                "{url}"
            );
        }
        assert!(
            parse_base_url("http://127.1.2.3:1", false)
                .unwrap()
                .is_literal_loopback()
        );
    }

    #[test]
    fn cli_parses_a_switch_run() {
        let cli = Cli::try_parse_from([
            "synckairos-bench",
            "--url",
            "http://127.0.0.1:4000",
            "switch",
            "--sessions",
            "500",
            "--concurrency",
            "64",
            "--duration",
            "10s",
        ])
        .unwrap();
        assert_eq!(cli.url, "http://127.0.0.1:4000");
        match cli.scenario {
            Scenario::Switch(a) => {
                assert_eq!(a.sessions, 500);
                assert_eq!(a.concurrency, 64);
                assert_eq!(a.duration, Duration::from_secs(10));
                assert_eq!(a.warmup, Duration::from_secs(1));
                assert_eq!(a.rate, None);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn cli_global_url_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "synckairos-bench",
            "fanout",
            "--url",
            "http://127.0.0.1:4000",
            "--ws-url-base",
            "ws://127.0.0.1:4001",
        ])
        .unwrap();
        assert_eq!(cli.url, "http://127.0.0.1:4000");
        match cli.scenario {
            Scenario::Fanout(a) => {
                assert_eq!(a.ws_url_base.as_deref(), Some("ws://127.0.0.1:4001"));
                assert_eq!((a.sessions, a.clients, a.rate), (10, 100, 100));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn cli_refuses_unbounded_or_invalid_values() {
        let bad: &[&[&str]] = &[
            &["synckairos-bench", "switch", "--concurrency", "0"],
            &["synckairos-bench", "get", "--duration", "0s"],
            &["synckairos-bench", "get", "--sessions", "0"],
            &["synckairos-bench", "timeouts", "--min-bank-ms", "999"],
            &["synckairos-bench", "nope"],
        ];
        for args in bad {
            assert!(Cli::try_parse_from(*args).is_err(), "{args:?} was accepted");
        }
        let ok =
            Cli::try_parse_from(["synckairos-bench", "idle-ws", "--server-pid", "42"]).unwrap();
        assert_eq!(ok.scenario.name(), "idle-ws");
    }
}
