//! The harness behind [`backend_suite!`](crate::backend_suite): every listed
//! test becomes one trial per backend, named `backend::module::test`, and
//! the suite binary (`tests/tests/blackbox/main.rs`) runs them all with
//! libtest-mimic (same filters and flags as `cargo test`).
//!
//! Why one binary: the Redis Cluster is formed once per test binary (about
//! 5 s of both cores), so seven suite binaries paid for seven clusters.
//!
//! Why not the built-in harness: it runs as many tests at once as there are
//! cores (2 here), while these tests mostly wait on sockets and on clocks
//! running out. Running [`DEFAULT_THREADS`] at once keeps the suites fast
//! without changing what they check. `--test-threads` / `RUST_TEST_THREADS`
//! still override it.

use crate::Backend;
use libtest_mimic::Arguments;
/// One named test case, as the suite binary hands it to libtest-mimic.
pub use libtest_mimic::Trial;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

/// Trials run at once unless told otherwise.
pub const DEFAULT_THREADS: usize = 8;

/// A suite test: an async function of the backend, boxed.
pub type TestFn = fn(Backend) -> Pin<Box<dyn Future<Output = ()>>>;

/// One trial: `backend::name`, ignored when `ignore` (the reason) is set.
pub fn trial(backend: Backend, name: &str, ignore: Option<&str>, f: TestFn) -> Trial {
    let full = format!("{}::{name}", backend.name());
    Trial::test(full, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        // A panic (a failed assertion) unwinds out of here; libtest-mimic
        // reports it as a failure with its message, and the TestServer drop
        // prints the server's logs on the way.
        rt.block_on(f(backend));
        Ok(())
    })
    .with_ignored_flag(ignore.is_some())
}

/// Runs the trials with the command-line arguments; the process exit code.
pub fn run(trials: Vec<Trial>) -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        let from_env = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|v| v.parse().ok());
        args.test_threads = Some(from_env.unwrap_or(DEFAULT_THREADS));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

#[cfg(test)]
mod tests {
    use crate::Backend;

    mod generated {
        use crate::Backend;
        crate::backend_suite! {
            plain,
            #[ignore = "server bug: example"] skipped,
        }
        async fn plain(_: Backend) {}
        async fn skipped(_: Backend) {}

        pub fn list() -> Vec<(String, bool)> {
            trials()
                .iter()
                .map(|t| (t.name().to_string(), t.has_ignored_flag()))
                .collect()
        }
    }

    #[test]
    fn one_trial_per_backend_and_test_with_ignore_flags() {
        let got = generated::list();
        let mut want = Vec::new();
        for b in Backend::all() {
            want.push((format!("{}::generated::plain", b.name()), false));
            want.push((format!("{}::generated::skipped", b.name()), true));
        }
        assert_eq!(got, want);
    }
}
