//! One reconcile of an `ApiToken`, as a pipeline that reads top to bottom:
//!
//! ```text
//! finalizer → dereference → validate → observe → decide → act → revoke → status
//! ```
//!
//! or, once deletion is requested, [`cleanup`] and the finalizer's removal.
//! One module per step; [`crate::decide`] is the pure core between observing
//! and acting.
//!
//! # Few requests per `ApiToken`
//!
//! Reads come from the controller's watch caches — the `ApiToken` as the
//! controller hands it over, its Secret from the cache of owned Secrets (see
//! [`observe::Caches`]), the backend and its credentials from the
//! [`crate::backend::Resolver`] that the watches keep current — never from a
//! GET, except where [`memory`] says the cache is behind our own write. The
//! first reconcile of a new `ApiToken` therefore sends four Kubernetes
//! requests: the finalizer patch, the Secret and the status (server-side
//! apply each), and the `Issued` Event. The watch events of those writes
//! wake no second reconcile (see [`crate::controller`]).

pub mod act;
pub mod cleanup;
pub mod deliver;
pub mod finalizer;
pub mod issue;
pub mod memory;
pub mod observe;
pub mod revoke;
pub mod status;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::backend::BackendLocation;
use crate::controller::Context;
use crate::crd::ApiToken;
use crate::decide::{self, Decision};
use crate::{Error, FINALIZER, Result};

pub use observe::Caches;

/// When a reconcile whose finalizer patch met a newer copy looks again.
const FINALIZER_CONFLICT_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What every reconcile of one controller shares: the operator's context and
/// the controller's caches.
pub struct Reconciler {
    pub ctx: Arc<Context>,
    pub caches: Caches,
}

/// Entry point of one reconcile: the finalizer decides between apply and cleanup.
pub async fn reconcile(cached: Arc<ApiToken>, r: Arc<Reconciler>) -> Result<Action> {
    let ctx = &r.ctx;
    let started = Instant::now();
    ctx.metrics.reconciled("ApiToken");
    cached
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let mut tok = (*cached).clone();
    // Only we write the status: a cache behind our last write gets it from memory.
    ctx.memory.overlay_status(&mut tok);
    let result = match (
        tok.metadata.deletion_timestamp.is_some(),
        tok.finalizers().iter().position(|f| f == FINALIZER),
    ) {
        (false, _) => apply(tok, ctx, &r.caches).await,
        (true, Some(index)) => match cleanup::cleanup(&tok, ctx).await {
            Ok(action) => finalizer::remove(&tok, ctx, index).await.map(|()| {
                ctx.memory.forget(&tok);
                action
            }),
            Err(e) => Err(e),
        },
        // Not ours to hold any more.
        (true, None) => Ok(Action::await_change()),
    };
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.forget_failures(&cached);
    }
    result
}

/// Failed reconciles are retried with per-object exponential back-off (no hot loops).
pub fn error_policy(tok: Arc<ApiToken>, err: &Error, r: Arc<Reconciler>) -> Action {
    r.ctx.failed(&tok, err)
}

/// Apply: bring the token and the Secret to what the spec asks for.
pub async fn apply(tok: ApiToken, ctx: &Context, caches: &Caches) -> Result<Action> {
    let handed_over = tok.resource_version();
    let Some(tok) = finalizer::add(tok, ctx).await? else {
        // The newer copy's watch event normally wakes us first; the requeue
        // is the safety net should that event have been taken for one of our
        // own writes (a cache far behind): it must not replace a renewal
        // timer with nothing.
        return Ok(Action::requeue(FINALIZER_CONFLICT_RETRY));
    };
    match pipeline(&tok, ctx, caches).await {
        Ok(action) => {
            ctx.memory.acted_on(&tok, handed_over);
            Ok(action)
        }
        Err(e) => status::report_failure(&tok, ctx, e).await,
    }
}

async fn pipeline(tok: &ApiToken, ctx: &Context, caches: &Caches) -> Result<Action> {
    // dereference
    let backend = ctx
        .backends
        .resolve(&ctx.client, &BackendLocation::of(tok))
        .await?;
    // validate
    let desired = crate::desired::desired(tok, &backend.id, backend.project.as_deref())
        .map_err(Error::InvalidSpec)?;
    // observe
    let mut observed = observe::observe(tok, ctx, caches, &backend, &desired).await?;
    // decide
    let Decision {
        action: step,
        requeue_after,
    } = decide::decide(
        &desired,
        &observed.recorded,
        observed.secret_state,
        &observed.token,
        Utc::now(),
    );
    tracing::info!(apitoken = %Context::failure_key(tok), action = ?step, ?requeue_after, "decided");
    // act
    let issues_value = step.issues_value();
    let acted_now = step != decide::Action::Nothing;
    let current = match act::act(tok, ctx, caches, &backend, &desired, &mut observed, step).await? {
        act::Acted::Current(current) => current,
        // Ownership and Secrets can change outside our watches: look again.
        act::Acted::Blocked => return Ok(Action::requeue(ctx.resync_after(tok))),
    };
    // revoke what the grace period no longer covers
    let revoke_requeue = revoke::revoke_due(tok, ctx, &mut observed.pending, Utc::now()).await;
    // status
    let requeue = match &current {
        Some(t) if issues_value => {
            decide::renewal_time(&desired, t).map(|r| decide::until(Utc::now(), r))
        }
        _ => requeue_after,
    };
    let requeue = match (requeue, revoke_requeue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match current {
        Some(t) => {
            let mut new_status =
                status::status_for(tok, &observed.prev, &t, &desired, issues_value);
            new_status.pending_revocations = observed.pending;
            status::write(tok, ctx, &new_status).await?;
            ctx.metrics.set_expiry(
                &tok.namespace().unwrap_or_default(),
                &tok.name_any(),
                t.expires_at.map(|e| e.timestamp()),
            );
            // The token as the action's answer returned it, or as observed.
            let seen = if acted_now {
                Instant::now()
            } else {
                observed.seen
            };
            ctx.memory.saw_token(tok, *t, seen);
        }
        None => ctx.memory.forget_token(tok),
    }
    // The renewal time, or sooner the resync: a token revoked or deleted
    // outside Kubernetes is noticed within one resync period.
    let resync = ctx.resync_after(tok);
    Ok(Action::requeue(requeue.map_or(resync, |d| d.min(resync))))
}
