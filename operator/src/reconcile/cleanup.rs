//! The cleanup step, once deletion is requested: revoke the token (or keep it,
//! per `deletionPolicy`), never holding the deletion forever.
//!
//! With `deletionPolicy: Revoke` the finalizer revokes the token before the
//! `ApiToken` goes. Failures that waiting cannot fix — the backend object or its
//! credentials are gone (as when a whole namespace is deleted), or the backend
//! refuses (401/403) — release the finalizer at once with a Warning Event
//! `RevokeAbandoned`. Transient failures (backend down) are retried with
//! back-off until `cleanup_timeout` after the deletion was requested (default
//! 15 minutes), then the finalizer is released with the same Warning Event and
//! the token is left to expire on its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use crate::Result;
use crate::backend::BackendLocation;
use crate::controller::Context;
use crate::crd::{ApiToken, DeletionPolicy};

use super::{issue, revoke};

/// Revokes (or retains) `tok`'s tokens; the caller then removes the finalizer.
pub async fn cleanup(tok: &ApiToken, ctx: &Context) -> Result<Action> {
    ctx.metrics
        .set_expiry(&tok.namespace().unwrap_or_default(), &tok.name_any(), None);
    let status = tok.status.clone().unwrap_or_default();
    if tok.spec.deletion_policy == DeletionPolicy::Revoke {
        // Replaced tokens in their grace period go with the ApiToken (best effort).
        for p in &status.pending_revocations {
            if let Some(loc) = BackendLocation::parse(&p.backend)
                && let Err(e) = revoke::revoke_one(tok, ctx, &loc, &p.token_id).await
            {
                tracing::warn!(token = %p.token_id, error = %e, "revoking a replaced token");
            }
        }
    }
    let Some(id) = status.token_id.clone() else {
        return Ok(Action::await_change());
    };
    if tok.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            tok,
            EventType::Normal,
            "Retained",
            format!("Token {id} left active on the backend (deletionPolicy: Retain)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let loc = status
        .backend
        .as_deref()
        .and_then(BackendLocation::parse)
        .unwrap_or_else(|| BackendLocation::of(tok));
    match revoke_owned(tok, ctx, &loc, &id).await {
        Ok(note) => {
            ctx.event(tok, EventType::Normal, "Revoked", note).await;
            Ok(Action::await_change())
        }
        Err(e)
            if !e.is_transient()
                || cleanup_deadline_passed(tok, ctx.cleanup_timeout, Utc::now()) =>
        {
            ctx.event(
                tok,
                EventType::Warning,
                "RevokeAbandoned",
                format!("Gave up revoking token {id}; it stays valid until it expires: {e}"),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            ctx.backends.forget(&loc);
            Err(e)
        }
    }
}

/// Whether a deletion has waited longer than `timeout` for its revoke.
pub fn cleanup_deadline_passed(tok: &ApiToken, timeout: Duration, now: DateTime<Utc>) -> bool {
    let Some(deleted) = tok.metadata.deletion_timestamp.as_ref() else {
        return false;
    };
    let deleted = DateTime::from_timestamp(deleted.0.as_second(), 0).unwrap_or(now);
    now - deleted >= chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX)
}

/// Revokes token `id` and any other active token of `tok` on the backend at
/// `loc`, but only tokens that carry this `ApiToken`'s ownership labels. The
/// backend is resolved once (from the resolver's memory when it has it).
async fn revoke_owned(
    tok: &ApiToken,
    ctx: &Context,
    loc: &BackendLocation,
    id: &str,
) -> Result<String> {
    let note = revoke::revoke_one(tok, ctx, loc, id).await?;
    let backend = ctx.backends.resolve(&ctx.client, loc).await?;
    issue::sweep_orphans(tok, ctx, &backend, id, &[]).await;
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    #[test]
    fn the_cleanup_deadline_counts_from_the_deletion_request() {
        let mut tok: ApiToken = serde_json::from_value(json!({
            "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"backendRef": {"name": "b"}}
        }))
        .unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        let fifteen = Duration::from_secs(900);
        assert!(!cleanup_deadline_passed(&tok, fifteen, t));
        tok.metadata.deletion_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap(),
        ));
        assert!(!cleanup_deadline_passed(
            &tok,
            fifteen,
            t + chrono::TimeDelta::minutes(14)
        ));
        assert!(cleanup_deadline_passed(
            &tok,
            fifteen,
            t + chrono::TimeDelta::minutes(15)
        ));
    }
}
