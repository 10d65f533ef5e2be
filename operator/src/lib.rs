//! SyncKairos Kubernetes operator.
//!
//! Module map (read this first):
//! - [`crd`]: the `SyncKairosCluster` types; the CRD YAML in `crds/` is generated from them.
pub mod crd;
