//! SyncKairos: real-time timer synchronization.
//!
//! Where things live:
//! - [`audit`]: the PostgreSQL audit trail — migrations, batched idempotent
//!   writer fed by the memory queue or the Redis outbox, history reads.
//! - [`domain`]: the pure state machine — modes, transitions, time
//!   arithmetic and rendering. No I/O, no clock reads: `now` is an argument.
//! - [`engine`]: where session state lives and how committed changes travel
//!   (the `Engine` trait, the in-memory engine, the local fan-out hub).
//! - [`service`]: the use cases — load, apply a domain command, commit with a
//!   version check, retry, arm timeouts, sweep — shared by every engine.
//! - [`session_locks`]: one change per session at a time on an instance,
//!   so bursts on one session do not turn into lost races.
//! - [`protocol`]: WebSocket messages, rendered once per update.
//! - [`api`]: axum REST + WebSocket, typed request bodies, errors (every
//!   lower layer's typed error mapped once, in `api/error.rs`), OpenAPI.
//!
//! Dependencies point down: `api` → {`service`, `audit::History`} →
//! `engine` → `domain`. Nothing below `api` knows HTTP; the JSON wire form
//! of request bodies lives in `api::requests`, and the domain validates a
//! typed draft.
//! - [`limits`]: rate-limit keys and limiters; [`listener`]: the HTTP
//!   accept loop (connection cap, header timeout, bounded shutdown).
//! - [`auth`]: API keys, session tokens and the authorization table (pure;
//!   its HTTP wiring is `api::auth`).
//! - [`config`]: command-line / environment configuration.
//! - [`metrics`]: the Prometheus registry.
//! - [`clock`]: the one place that reads the wall clock.

pub mod api;

/// This build's version, `<workspace version>+<git revision>` (build.rs): what
/// `--version`, `/v1/time`'s `build_version` and the image's labels report, so an
/// incident report can name the commit that was running.
pub const BUILD_VERSION: &str = env!("SYNCKAIROS_BUILD_VERSION");
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod protocol;
pub mod service;
pub mod session_locks;
