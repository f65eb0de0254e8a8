//! The deliver step: the value into the Secret (server-side apply), a renamed
//! Secret's predecessor deleted, and the workloads in `spec.restartTargets`
//! rolled to pick up a new value.

use chrono::SubsecRound;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokenops_client::Token;

use crate::controller::Context;
use crate::crd::{ApiToken, RestartKind};
use crate::secret;
use crate::{ANNOTATION_RESTARTED_AT, Error, FIELD_MANAGER, Result};

use super::observe::Caches;

/// What a Secret holding `t`'s current value records about it.
pub fn held(t: &Token) -> secret::Held<'_> {
    secret::Held {
        token_id: &t.id,
        generation: t.generation,
    }
}

/// Writes the Secret by server-side apply (fields no longer rendered go away)
/// and remembers the version written (see [`super::memory`]).
pub async fn write_secret(
    tok: &ApiToken,
    ctx: &Context,
    held: secret::Held<'_>,
    value: &[u8],
) -> Result<()> {
    let secret = secret::render(tok, held, value, &ctx.hasher);
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let mut patch = serde_json::to_value(&secret).map_err(|_| Error::MissingField("Secret"))?;
    patch["apiVersion"] = json!("v1");
    patch["kind"] = json!("Secret");
    let name = tok.secret_name();
    let written = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.memory
        .saw_secret(tok, &name, written.resource_version());
    Ok(())
}

/// Deletes the Secret `name` that an earlier `spec.secretName` named, if it is ours.
pub async fn delete_old_secret(tok: &ApiToken, ctx: &Context, caches: &Caches, name: &str) {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    if let Some(s) = caches.owned_secret(tok, name)
        && secret::is_owned_by(&s, tok)
        && let Err(e) = api.delete(name, &Default::default()).await
    {
        tracing::warn!(secret = name, error = %e, "deleting the previous Secret");
    }
}

/// Rolls the workloads named in `spec.restartTargets` (like `kubectl rollout restart`).
///
/// The annotation's value is the time the new value was issued, not the time
/// of the patch: patching again for the same value (a retried reconcile, or
/// several `ApiToken`s rotated together) changes nothing, so each value
/// restarts each workload at most once.
pub async fn restart_targets(tok: &ApiToken, ctx: &Context, issued: &Token) {
    let ns = tok.namespace().unwrap_or_default();
    let at = tokenops_client::rotation::issued_at(issued)
        .trunc_subsecs(0)
        .to_rfc3339();
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {ANNOTATION_RESTARTED_AT: at}}}}});
    let params = PatchParams::default();
    for target in &tok.spec.restart_targets {
        let c = ctx.client.clone();
        let result = match target.kind {
            RestartKind::Deployment => Api::<Deployment>::namespaced(c, &ns)
                .patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
            RestartKind::StatefulSet => Api::<StatefulSet>::namespaced(c, &ns)
                .patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
            RestartKind::DaemonSet => Api::<DaemonSet>::namespaced(c, &ns)
                .patch(&target.name, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => {
                ctx.event(
                    tok,
                    EventType::Normal,
                    "Restarted",
                    format!(
                        "Restarted {:?} {} to pick up the new value",
                        target.kind, target.name
                    ),
                )
                .await
            }
            Err(e) => {
                ctx.event(
                    tok,
                    EventType::Warning,
                    "RestartFailed",
                    format!("Could not restart {:?} {}: {e}", target.kind, target.name),
                )
                .await
            }
        }
    }
}
