//! Test harness for the black-box suites in `tests/tests/`, and the
//! workspace's one test kit: the server's engine tests, the operator's
//! cluster tests and the load generator take their Redis / PostgreSQL
//! spawners, free ports and percentiles from here (this lib does not depend
//! on `synckairos`, so they can without a cycle).
//!
//! - [`auth`]: the credentials of auth-on servers and token signing.
//! - [`backend`]: which state engine a server runs on, and how it is
//!   provisioned (memory today; Redis and Redis Cluster plug in here).
//! - [`server`]: spawns the real `synckairos serve` on a free port, drains
//!   its output, kills it on drop, sends SIGTERM for shutdown tests.
//! - [`http`]: REST calls returning status, headers and JSON body.
//! - [`ws`]: a WebSocket client that awaits messages and close frames.
//! - [`checks`]: contract shape checks applied to every state seen.
//! - [`fixtures`]: request bodies and the `wait_until` poll helper.
//! - [`redis`]: throw-away standalone Redis and 6-node Redis Cluster
//!   processes, and [`redis::RedisProcess`], the single node they build on.
//! - [`postgres`]: a throw-away PostgreSQL (initdb + pg_ctl on a free port).
//! - [`host`]: free ports, scratch dirs, and the missing-tool rule (fail
//!   under `CI=true`, skip with a printed line elsewhere).
//! - [`stats`]: the one nearest-rank percentile.
//! - [`hostile`]: RSS, a polite client and raw TCP for the hostile-client suite.
//!
//! Suites are written once as `async fn name(backend: Backend)` and
//! instantiated per backend by [`backend_suite!`].

pub mod auth;
pub mod backend;
pub mod checks;
pub mod fixtures;
pub mod host;
pub mod hostile;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod server;
pub mod stats;
pub mod suite;
pub mod ws;

pub use backend::{Backend, Provisioned};
pub use checks::{
    check_state, check_switch_result, int, is_iso_ms, iso_ms, metric_samples, metric_sum,
    participant, to_iso_ms,
};
pub use fixtures::{id_of, new_id, session_body, wait_until};
pub use http::{Api, Resp};
pub use server::{ServerBuilder, TestServer, run_cli};
pub use ws::{WS_WAIT, WsClient, WsEvent};

/// Instantiates every listed test once per backend in [`Backend::all`], as
/// trials named `memory::<module>::name`, `redis::<module>::name` (standalone
/// Redis), `cluster::<module>::name` (6-node Redis Cluster) and
/// `memory_audit::<module>::name` (audit trail on), returned by
/// the generated `pub fn trials()`; the suite binary's `main` collects the
/// modules' trials and hands them to [`suite::run`].
///
/// ```ignore
/// backend_suite! {
///     create_returns_state,
///     #[ignore = "server bug: ..."] some_test,
/// }
/// async fn create_returns_state(b: Backend) { let srv = TestServer::start(&b).await; ... }
/// ```
///
/// To add a backend, add it to [`Backend::all`]; the suites do not change.
#[macro_export]
macro_rules! backend_suite {
    ($( $(#[ignore = $why:literal])? $name:ident ),* $(,)?) => {
        /// Every test of this module, once per backend.
        pub fn trials() -> ::std::vec::Vec<$crate::suite::Trial> {
            let module = module_path!().rsplit("::").next().unwrap_or_default();
            let mut trials = ::std::vec::Vec::new();
            for backend in $crate::Backend::all() {
                $(
                    trials.push($crate::suite::trial(
                        backend.clone(),
                        &format!("{module}::{}", stringify!($name)),
                        None $(.or(Some($why)))?,
                        |b| ::std::boxed::Box::pin($name(b)),
                    ));
                )*
            }
            trials
        }
    };
}
