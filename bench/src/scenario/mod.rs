//! One module per load scenario; each returns a [`crate::report::Report`].

pub mod attack;
pub mod fanout;
pub mod idle_ws;
pub mod rest;
pub mod timeouts;

/// Bank of the sessions that must not expire during a run: one hour.
pub const LONG_BANK_MS: u64 = 3_600_000;
