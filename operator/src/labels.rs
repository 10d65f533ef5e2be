//! The label keys the operator puts on, and selects, its objects — in one place, so the
//! builders that write them, the pruner and the Redis pod lookup that read them, and the
//! watches in `main.rs` cannot drift apart.

use crate::build::FIELD_MANAGER;

/// Label naming the application (always `synckairos`); part of every pod selector.
pub const NAME: &str = "app.kubernetes.io/name";
/// Label naming the `SyncKairosCluster` an object belongs to.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// Label naming the component (redis, postgres, server, migration).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Label naming the operator that manages an object (our [`FIELD_MANAGER`]).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`NAME`].
pub const APP: &str = "synckairos";

/// Selector of every object this operator manages, in any cluster: what the controller
/// watches for owned objects.
pub fn managed() -> String {
    format!("{MANAGED_BY}={FIELD_MANAGER}")
}

/// Selector of the objects this operator created for one cluster (what pruning lists).
pub fn owned_by(instance: &str) -> String {
    format!("{},{INSTANCE}={instance}", managed())
}

/// Selector of one component's pods of one cluster (the pod templates carry the selector
/// labels; the StatefulSet's own selector is the same pair plus [`NAME`]).
pub fn pods_of(instance: &str, component: &str) -> String {
    format!("{INSTANCE}={instance},{COMPONENT}={component}")
}
