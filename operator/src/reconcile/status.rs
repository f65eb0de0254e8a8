//! The status step: what the `ApiToken`'s status says after a reconcile, and
//! its server-side apply with the one field manager — skipped when nothing
//! changed, so the steady state writes nothing.

use chrono::{SubsecRound, Utc};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokenops_client::Token;

use crate::backend::BackendLocation;
use crate::controller::Context;
use crate::crd::{ApiToken, ApiTokenStatus, Condition, ConditionStatus, set_condition};
use crate::decide::{self, Desired};
use crate::{Error, FIELD_MANAGER, Result};

/// The status describing `token` as the current token of `tok`.
pub fn status_for(
    tok: &ApiToken,
    prev: &ApiTokenStatus,
    token: &Token,
    desired: &Desired,
    new_value: bool,
) -> ApiTokenStatus {
    let renewal = decide::renewal_time(desired, token);
    let mut status = ApiTokenStatus {
        token_id: Some(token.id.clone()),
        masked_token: Some(token.masked.clone()),
        expires_at: token.expires_at,
        renewal_time: renewal,
        last_rotation_time: Some(tokenops_client::rotation::issued_at(token)),
        secret_name: Some(tok.secret_name()),
        backend: Some(desired.backend.clone()),
        // Every new value answers any pending rotation request.
        last_rotate_request: if new_value {
            desired.rotate_request.clone()
        } else {
            prev.last_rotate_request.clone()
        },
        observed_generation: tok.metadata.generation,
        pending_revocations: prev.pending_revocations.clone(),
        conditions: prev.conditions.clone(),
    };
    let message = match renewal {
        Some(r) => format!("token {} is active; renews at {}", token.id, r.to_rfc3339()),
        None => format!("token {} is active and never expires", token.id),
    };
    set_ready(&mut status, tok, ConditionStatus::True, "Active", message);
    status
}

/// Sets the `Ready` condition (and `observedGeneration`).
pub fn set_ready(
    status: &mut ApiTokenStatus,
    tok: &ApiToken,
    ready: ConditionStatus,
    reason: &str,
    message: String,
) {
    status.observed_generation = tok.metadata.generation;
    set_condition(
        &mut status.conditions,
        Condition {
            type_: "Ready".into(),
            status: ready,
            reason: reason.into(),
            message,
            last_transition_time: Utc::now().trunc_subsecs(0),
            observed_generation: tok.metadata.generation,
        },
    );
}

/// Writes the whole status by server-side apply unless it is unchanged, and
/// remembers it (see [`super::memory`]); returns the `ApiToken`'s
/// resourceVersion afterwards.
pub async fn write(
    tok: &ApiToken,
    ctx: &Context,
    status: &ApiTokenStatus,
) -> Result<Option<String>> {
    if tok.status.as_ref() == Some(status) {
        return Ok(tok.resource_version());
    }
    let api: Api<ApiToken> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "tokenops.dev/v1alpha1",
        "kind": "ApiToken",
        "status": status,
    });
    let written = api
        .patch_status(
            &tok.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    // An apply that changed nothing answers with the object as it is now,
    // whose resourceVersion may be someone else's change that no watch event
    // has brought us yet: claim it as our write only when the answer differs
    // from what we acted on in nothing but the status.
    let ours = only_the_status_differs(tok, &written)
        .then(|| written.resource_version())
        .flatten();
    ctx.memory.wrote_status(tok, status, ours);
    Ok(written.resource_version())
}

/// Whether `written` is `acted_on` with at most its status changed: the same
/// spec (generation), annotations, labels, finalizers and deletion state.
fn only_the_status_differs(acted_on: &ApiToken, written: &ApiToken) -> bool {
    let (a, w) = (&acted_on.metadata, &written.metadata);
    a.generation == w.generation
        && a.annotations == w.annotations
        && a.labels == w.labels
        && a.finalizers == w.finalizers
        && a.deletion_timestamp == w.deletion_timestamp
}

/// A failed apply: says why in the `Ready` condition; the error itself drives
/// the back-off, except for an invalid spec, which only a spec change fixes.
pub async fn report_failure(tok: &ApiToken, ctx: &Context, e: Error) -> Result<Action> {
    ctx.memory.forget_token(tok);
    // The backend's settings may be what is wrong: read them afresh next time.
    ctx.backends.forget(&BackendLocation::of(tok));
    let mut status = tok.status.clone().unwrap_or_default();
    set_ready(
        &mut status,
        tok,
        ConditionStatus::False,
        e.condition_reason(),
        e.to_string(),
    );
    if let Err(se) = write(tok, ctx, &status).await {
        tracing::warn!(error = %se, "writing the status");
    }
    match e {
        // Only a spec change can fix it, and that wakes us anyway.
        Error::InvalidSpec(_) => Ok(Action::await_change()),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_token(version: &str, generation: i64, annotations: serde_json::Value) -> ApiToken {
        serde_json::from_value(json!({
            "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
            "metadata": {"name": "a", "namespace": "n", "uid": "u-1", "resourceVersion": version,
                         "generation": generation, "annotations": annotations,
                         "finalizers": [crate::FINALIZER]},
            "spec": {"backendRef": {"name": "b"}},
            "status": {"tokenId": "t-1"}
        }))
        .unwrap()
    }

    #[test]
    fn a_status_write_claims_only_a_version_that_changed_nothing_else() {
        let acted_on = api_token("2", 1, json!({}));
        assert!(only_the_status_differs(
            &acted_on,
            &api_token("3", 1, json!({}))
        ));
        // The answer of a no-op apply carrying someone's spec edit or rotate
        // request: that version is theirs, and its event must wake us.
        assert!(!only_the_status_differs(
            &acted_on,
            &api_token("3", 2, json!({}))
        ));
        assert!(!only_the_status_differs(
            &acted_on,
            &api_token("3", 1, json!({"tokenops.dev/rotate": "1"}))
        ));
    }
}
