//! SyncKairos Kubernetes operator.
//!
//! It reconciles a `SyncKairosCluster` as a pipeline with a pure middle:
//! read → [`validate`] → [`build`] → apply → compute status.
//!
//! Module map (read this first):
//! - [`crd`]: the `SyncKairosCluster` types; the CRD YAML in `crds/` is generated from them
//!   (`crdgen` binary, `make crds`) and a test fails when it drifts.
//! - [`validate`]: turns a resource read from the API into a checked value, or a reason the
//!   spec cannot be acted on (reported in status until the spec changes).
//! - [`build`]: pure builder functions, one per Kubernetes object (Redis, PostgreSQL,
//!   migration Job, server Deployment/Service/Ingress/PDB/HPA).
//! - [`redis_cluster`]: Redis Cluster formation and healing over a small admin trait
//!   (meet, even slot assignment, replica attachment, new-address repair; idempotent).
//! - [`reconcile`]: the pipeline itself (apply order, migration gate, events, backoff) and
//!   the [`reconcile::Probes`] trait for talking to Redis pods and the server Service.
//! - [`prune`]: pure choice of the objects the operator created that the spec no longer
//!   wants (the reconciler lists and deletes them).
//! - [`status`]: pure status computation (conditions with stable transition times).
//! - [`metrics`]: the operator's own Prometheus metrics; [`http`] serves them with
//!   `/healthz` and `/readyz`.
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease (only the holder reconciles).
//!
//! Binaries: `synckairos-operator` (`src/main.rs`: configuration, leader election, the
//! controller) and `crdgen` (prints the CRD; `make crds`).
#![warn(missing_docs)]
pub mod build;
pub mod crd;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod prune;
pub mod reconcile;
pub mod redis_cluster;
pub mod status;
pub mod validate;
