//! The backend-generic black-box suites: every test starts the real
//! `synckairos` binary (see `tests/README.md`) and runs once per backend as
//! `memory::<module>::<test>`, `redis::…`, `cluster::…`.
//!
//! - `rest`: every endpoint's success path, system endpoints, OpenAPI.
//! - `ws`: every WebSocket message type, pings, closes.
//! - `errors`: every error code and a battery of bad inputs.
//! - `modes`: every mode's arithmetic, pause/resume, a model-based run.
//! - `timeouts`: every timeout action, applied by the server on its own.
//! - `concurrency`: optimistic concurrency under parallel switches.
//! - `lifecycle`: shutdown, idle expiry, configuration errors, logs.
//! - `auth`: access control: every endpoint × every credential, turns
//!   under a race, tokens, the admin listener, no secret in any output.

mod auth;
mod concurrency;
mod errors;
mod lifecycle;
mod modes;
mod rest;
mod timeouts;
mod ws;

/// Checks a build version as `--version` and `/v1/time` report it:
/// `<workspace version>+<git revision>` (or `+unknown` for a build without git), so
/// an incident report can name the commit that was running.
fn check_build_version(v: &str) {
    let (version, revision) = v
        .split_once('+')
        .unwrap_or_else(|| panic!("build version {v:?} is not <version>+<revision>"));
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "build version {v:?}");
    assert!(
        !revision.is_empty() && revision.chars().all(|c| c.is_ascii_alphanumeric()),
        "build version {v:?}: revision"
    );
}

fn main() -> std::process::ExitCode {
    // The slowest module (clocks running out) first, so its waits overlap
    // with everything else.
    let trials = [
        timeouts::trials(),
        auth::trials(),
        ws::trials(),
        lifecycle::trials(),
        rest::trials(),
        errors::trials(),
        modes::trials(),
        concurrency::trials(),
    ]
    .into_iter()
    .flatten()
    .collect();
    synckairos_tests::suite::run(trials)
}
