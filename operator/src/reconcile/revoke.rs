//! Revoking replaced tokens: a replaced token is recorded in
//! `status.pendingRevocations` with the end of its grace period (so a restart
//! keeps the promise), and revoked by the first reconcile after that time.
//! Only tokens that carry this `ApiToken`'s ownership labels are revoked.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tokenops_client::TokenStatus;

use crate::Result;
use crate::backend::{Backend, BackendLocation};
use crate::controller::Context;
use crate::crd::{ApiToken, PendingRevocation};
use crate::decide::{self, Desired};

/// How long a revocation that failed for a transient reason waits before the next try.
const REVOKE_RETRY: Duration = Duration::from_secs(30);

/// Records that `token_id` on `backend` is to be revoked when the grace period
/// (from now) is over; at once without one.
pub fn schedule(
    pending: &mut Vec<PendingRevocation>,
    token_id: &str,
    backend: &str,
    desired: &Desired,
) {
    if pending.iter().any(|p| p.token_id == token_id) {
        return;
    }
    let grace = desired
        .grace_period
        .and_then(|g| chrono::TimeDelta::from_std(g).ok())
        .unwrap_or_default();
    // Rounded up to the second, so the grace period never comes out shorter
    // than asked when the time is shown or compared at second precision.
    // Without a grace period the revocation is due at once (this very reconcile).
    let at = Utc::now() + grace;
    let revoke_at = match at.trunc_subsecs(0) {
        whole if whole == at || grace.is_zero() => at,
        whole => whole + chrono::TimeDelta::seconds(1),
    };
    pending.push(PendingRevocation {
        token_id: token_id.to_string(),
        backend: backend.to_string(),
        revoke_at,
    });
}

/// Revokes the pending tokens whose grace period is over; returns when to
/// look again for the rest.
pub async fn revoke_due(
    tok: &ApiToken,
    ctx: &Context,
    pending: &mut Vec<PendingRevocation>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let mut next: Option<Duration> = None;
    let mut soonest = |d: Duration| next = Some(next.map_or(d, |n| n.min(d)));
    let mut keep = Vec::new();
    for p in pending.drain(..) {
        if p.revoke_at > now {
            soonest(decide::until(now, p.revoke_at));
            keep.push(p);
            continue;
        }
        let Some(loc) = BackendLocation::parse(&p.backend) else {
            continue;
        };
        match revoke_one(tok, ctx, &loc, &p.token_id).await {
            Ok(note) => {
                ctx.event(tok, EventType::Normal, "Revoked", note).await;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(token = %p.token_id, error = %e, "revoking a replaced token");
                soonest(REVOKE_RETRY);
                keep.push(p);
            }
            Err(e) => {
                ctx.event(
                    tok,
                    EventType::Warning,
                    "RevokeFailed",
                    format!("Could not revoke replaced token {}: {e}", p.token_id),
                )
                .await;
            }
        }
    }
    *pending = keep;
    next
}

/// Revokes token `id` on the backend at `loc` if it carries this `ApiToken`'s
/// ownership labels; says what happened.
///
/// The backend comes from the resolver (whose entries the controller's watches
/// drop when the backend or its credentials change); a refusal that waiting
/// cannot fix is checked once more against the backend's settings read afresh,
/// since it may come from credentials the watch has not reported yet.
pub async fn revoke_one(
    tok: &ApiToken,
    ctx: &Context,
    loc: &BackendLocation,
    id: &str,
) -> Result<String> {
    let backend = ctx.backends.resolve(&ctx.client, loc).await?;
    match revoke_on(tok, &backend, id).await {
        Err(e) if !e.is_transient() => {
            ctx.backends.forget(loc);
            let fresh = ctx.backends.resolve_fresh(&ctx.client, loc).await?;
            revoke_on(tok, &fresh, id).await
        }
        done => done,
    }
}

async fn revoke_on(tok: &ApiToken, backend: &Backend, id: &str) -> Result<String> {
    let uid = tok.uid().unwrap_or_default();
    Ok(match backend.client.get_token(id).await {
        Err(e) if e.is_not_found() => format!("Token {id} no longer exists on the backend"),
        Err(e) => return Err(e.into()),
        Ok(t) if !decide::owned_by(&t, &uid) => {
            format!("Token {id} is not managed by this ApiToken and was left alone")
        }
        Ok(t) if t.status == TokenStatus::Revoked => format!("Token {id} was already revoked"),
        Ok(_) => {
            backend.client.revoke_token(id).await?;
            format!("Revoked token {id}")
        }
    })
}
