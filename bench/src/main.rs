//! `synckairos-bench`: a load generator for SyncKairos that talks only HTTP and
//! WebSocket to a base URL, so it measures any deployment the same way.
//!
//! Map of the crate:
//! - [`cli`]: arguments, durations, base-URL parsing and the loopback guard.
//! - [`http`]: one explicit keep-alive HTTP/1.1 connection per worker; batch setup requests.
//! - [`api`]: the bits of the wire contract used (bodies, response fields, WS messages).
//! - [`ws`]: WebSocket connect / first-state helpers.
//! - [`scenario`]: `switch`, `get`, `fanout`, `timeouts`, `idle-ws`.
//! - [`stats`]: distributions, with the workspace's one nearest-rank percentile.
//! - [`report`]: the human-readable table and the one-line JSON summary.
//! - [`sys`]: /proc readings (server RSS, machine load).
//!
//! See docs/bench.md for what each scenario measures and how `make bench` runs them.

mod api;
mod cli;
mod http;
mod report;
mod scenario;
mod stats;
mod sys;
mod ws;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{BaseUrl, Cli, Scenario, parse_base_url};
use crate::http::Target;
use crate::scenario::rest::RestKind;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        usize::from,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("synckairos-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synckairos-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves the URLs (refusing non-loopback ones unless allowed), runs the
/// scenario and prints its table, then its JSON line.
async fn run(cli: Cli) -> Result<()> {
    let base = parse_base_url(&cli.url, false).context("--url")?;
    let target = Target::resolve(base.clone(), cli.allow_remote, cli.api_key.as_deref()).await?;
    let ws_base = |given: &Option<String>| -> Result<BaseUrl> {
        match given {
            None => Ok(base.clone()),
            Some(u) => parse_base_url(u, true).context("--ws-url-base"),
        }
    };
    let name = cli.scenario.name();
    let load_start = sys::loadavg_1m();
    let mut report = match cli.scenario {
        Scenario::Switch(a) => {
            scenario::rest::run(target, a, RestKind::Switch, cli.server_pid).await?
        }
        Scenario::Get(a) => scenario::rest::run(target, a, RestKind::Get, cli.server_pid).await?,
        Scenario::Fanout(a) => {
            let wb = ws_base(&a.ws_url_base)?;
            Target::resolve(wb.clone(), cli.allow_remote, None).await?;
            scenario::fanout::run(target, wb, a, cli.server_pid).await?
        }
        Scenario::Timeouts(a) => {
            let wb = ws_base(&a.ws_url_base)?;
            Target::resolve(wb.clone(), cli.allow_remote, None).await?;
            scenario::timeouts::run(target, wb, a).await?
        }
        Scenario::IdleWs(a) => {
            let wb = ws_base(&a.ws_url_base)?;
            Target::resolve(wb.clone(), cli.allow_remote, None).await?;
            scenario::idle_ws::run(target, wb, a, cli.server_pid).await?
        }
    };
    debug_assert_eq!(report.scenario, name);
    report
        .result("loadavg_1m_start", load_start)
        .result("loadavg_1m_end", sys::loadavg_1m());
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}
