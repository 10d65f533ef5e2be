//! SyncKairos Kubernetes operator.
//!
//! It reconciles a `SyncKairosCluster` as a pipeline with a pure middle, one named step per
//! module: dereference → [`validate`] → [`build`] → apply → status (the steps that talk to
//! the API live under [`reconcile`], the pure ones beside it).
//!
//! Module map (read this first):
//! - [`crd`]: the `SyncKairosCluster` types; the CRD YAML in `crds/` is generated from them
//!   (`crdgen` binary, `make crds`) and a test fails when it drifts.
//! - [`reconcile`]: the pipeline — `reconcile/dereference.rs` (the Secrets the spec points
//!   to), `reconcile/apply.rs` (one walker over the desired objects, Redis formation,
//!   deletions), `reconcile/status.rs` (status and Events), `reconcile/probes.rs` (the
//!   [`reconcile::Probes`] trait: Redis pods and the server's `/ready`), and in `mod.rs` the
//!   order of the steps, errors and backoff.
//! - [`validate`]: turns a resource read from the API into a checked value, or a reason the
//!   spec cannot be acted on (reported in status until the spec changes).
//! - [`build`]: pure builder functions, one per Kubernetes object (Redis, PostgreSQL,
//!   migration Job, server Deployment/Service/Ingress/PDB/HPA), and
//!   [`build::Desired::walk`], the one walk over them in apply order.
//! - [`verdict`]: pure verdicts: which gated object may be written now (migrations after
//!   PostgreSQL, the rollout after migrations) and what the applied objects say about each
//!   part.
//! - [`prune`]: pure choice of the objects the operator created that the spec no longer
//!   wants (the apply step lists and deletes them).
//! - [`status`]: pure status computation (conditions with stable transition times).
//! - [`explain`]: one human sentence per failure (object, the API's answer, what to do) for
//!   conditions, Events and logs.
//! - [`apiserver`]: the startup check of the API server's version against
//!   [`apiserver::MIN_KUBERNETES`], reported on every cluster.
//! - [`labels`]: the label keys every object carries and every selector uses.
//! - [`redis_cluster`]: Redis Cluster formation and healing over a small admin trait
//!   (meet, even slot assignment, replica attachment, new-address repair; idempotent).
//! - [`metrics`]: the operator's own Prometheus metrics; [`http`] serves them with
//!   `/healthz` and `/readyz`.
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease (only the holder
//!   reconciles), client-go's algorithm: expiry judged by our own clock, never the holder's.
//!
//! Binaries: `synckairos-operator` (`src/main.rs`: configuration, leader election, the
//! controller) and `crdgen` (prints the CRD; `make crds`).
#![warn(missing_docs)]

/// This build's version, `<workspace version>+<git revision>` (build.rs): what
/// `--version` prints and the image's labels carry.
pub const BUILD_VERSION: &str = env!("SYNCKAIROS_BUILD_VERSION");

pub mod apiserver;
pub mod build;
pub mod crd;
pub mod explain;
pub mod http;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod prune;
pub mod reconcile;
pub mod redis_cluster;
pub mod status;
pub mod validate;
pub mod verdict;
