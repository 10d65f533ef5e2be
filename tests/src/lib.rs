//! Test harness: processes and clients for the black-box suites.

/// Ephemeral PostgreSQL for the audit suites.
pub mod postgres;
