//! The finalizer step: added before anything is issued (so a deletion always
//! waits for the revoke), removed once [`super::cleanup`] is done.
//!
//! The finalizer is added with a JSON patch that tests the list it extends (so
//! no other controller's finalizer is lost), against the object the controller
//! handed us. A test that fails means the object changed meanwhile: the watch
//! brings the newer copy and wakes the `ApiToken` again, so that is not an
//! error (the reconcile still requeues itself shortly, in case that wake-up
//! never comes). The patch answers with the object as it is now, and the same
//! reconcile goes on with that copy (no requeue, no read).

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::controller::Context;
use crate::crd::ApiToken;
use crate::{Error, FINALIZER, Result};

/// `tok` with the finalizer: as it is, or as the patch that adds it left it;
/// `None` when the object changed since it was read (a newer copy is on its way).
pub async fn add(tok: ApiToken, ctx: &Context) -> Result<Option<ApiToken>> {
    if tok.finalizers().iter().any(|f| f == FINALIZER) || ctx.memory.has_finalizer(&tok) {
        return Ok(Some(tok));
    }
    let api: Api<ApiToken> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let patch = if tok.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": tok.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("a valid JSON patch");
    match api
        .patch(
            &tok.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(patched) => {
            ctx.memory.added_finalizer(&patched);
            Ok(Some(patched))
        }
        Err(kube::Error::Api(e)) if e.code == 422 => {
            tracing::debug!(apitoken = %Context::failure_key(&tok), "finalizers changed meanwhile; waiting for the newer copy");
            Ok(None)
        }
        Err(e) => Err(Error::Finalizer(e)),
    }
}

/// Removes the finalizer at `index`, testing that it is still ours there (a
/// failed test is retried with the newer copy, as any failed reconcile).
pub async fn remove(tok: &ApiToken, ctx: &Context, index: usize) -> Result<()> {
    let api: Api<ApiToken> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]))
    .expect("a valid JSON patch");
    api.patch(
        &tok.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map_err(Error::Finalizer)?;
    Ok(())
}
