//! Step 5, writing the status: the merge patch of the status subresource computed by the
//! pure [`crate::status::compute`], and the Events that go with it (becoming (not) Ready, a
//! rejected spec, a failed reconcile).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;

use super::{Context, Error, kube_err, publish};
use crate::crd::SyncKairosCluster;
use crate::status::{self, Observed, Part};
use crate::validate::InvalidSpec;

/// Writes the status computed from `o` and the previous status; an Event marks every flip
/// of `Ready`.
pub(super) async fn write(
    ctx: &Context,
    skc: &SyncKairosCluster,
    mut o: Observed,
) -> Result<(), Error> {
    o.api_server = ctx.api_server.clone();
    let now = Time(Timestamp::now());
    let prev = skc.status.as_ref();
    let new = status::compute(prev, &o, &now);
    let was_ready = status::is_ready(prev);
    let is_ready = status::is_ready(Some(&new));
    let ns = skc.namespace().unwrap_or_default();
    let api: Api<SyncKairosCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "status": new });
    api.patch_status(
        &skc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_err(
        "patch status",
        "SyncKairosCluster",
        &skc.name_any(),
    ))?;
    if is_ready != was_ready {
        let (t, reason) = if is_ready {
            (EventType::Normal, "Ready")
        } else {
            (EventType::Warning, "NotReady")
        };
        let note = status::ready_part(&o).message;
        publish(ctx, skc, t, reason, note).await;
    }
    Ok(())
}

/// A spec that cannot be acted on: an Event, and a status whose Ready names the reason
/// (the parts keep what was seen before).
pub(super) async fn report_invalid(
    ctx: &Context,
    skc: &SyncKairosCluster,
    invalid: InvalidSpec,
) -> Result<(), Error> {
    publish(
        ctx,
        skc,
        EventType::Warning,
        invalid.reason,
        invalid.message.clone(),
    )
    .await;
    let blocked = Part::not(invalid.reason, invalid.message);
    let o = status::blocked(skc.status.as_ref(), skc.metadata.generation, blocked);
    write(ctx, skc, o).await
}

/// A failed reconcile: status `ApiError` (best effort: the API may be what failed) and a
/// warning Event.
pub(super) async fn report_error(ctx: &Context, skc: &SyncKairosCluster, e: &Error) {
    let blocked = Part::not("ApiError", e.to_string());
    let o = status::blocked(skc.status.as_ref(), skc.metadata.generation, blocked);
    if let Err(write_err) = write(ctx, skc, o).await {
        tracing::debug!(error = %write_err, "could not record the failure in status");
    }
    publish(
        ctx,
        skc,
        EventType::Warning,
        "ReconcileError",
        e.to_string(),
    )
    .await;
}
