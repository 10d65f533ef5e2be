//! Test harness: processes and clients for the black-box suites.
