//! The backend controller: a `TokenBackend` or `ClusterTokenBackend` is `Ready`
//! after a `whoami` round trip with its credentials. Checked on every change
//! and every five minutes (a backend's health is not an event the operator sees).

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::backend::BackendLocation;
use crate::controller::Context;
use crate::crd::{
    BackendKind, ClusterTokenBackend, Condition, ConditionStatus, TokenBackend, TokenBackendStatus,
    set_condition,
};
use crate::{Error, FIELD_MANAGER, Result};

const RECHECK: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(30);

/// The status after checking the backend at `loc`.
async fn check(
    ctx: &Context,
    loc: &BackendLocation,
    prev: Option<&TokenBackendStatus>,
    generation: Option<i64>,
) -> (TokenBackendStatus, Action) {
    let result = async {
        let b = ctx.backends.resolve_fresh(&ctx.client, loc).await?;
        Ok::<_, Error>(b.client.whoami().await?)
    }
    .await;
    let mut status = prev.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let (ready, reason, message, action) = match result {
        Ok(me) => {
            status.identity = Some(me.masked.clone());
            status.project = Some(me.project.clone());
            (
                ConditionStatus::True,
                "Connected".to_string(),
                format!("authenticated as {} in project {}", me.masked, me.project),
                Action::requeue(RECHECK),
            )
        }
        Err(e) => {
            // The message names the backend, its URL's host and what failed;
            // never a credential (see `BackendLocation` and `Error`).
            tracing::warn!(backend = %loc.id(), reason = e.metric_label(), error = %e, retry_in = ?RETRY, "backend check failed");
            ctx.metrics.failed(loc.kind.as_str(), e.metric_label());
            (
                ConditionStatus::False,
                e.condition_reason().to_string(),
                e.to_string(),
                Action::requeue(RETRY),
            )
        }
    };
    set_condition(
        &mut status.conditions,
        Condition {
            type_: "Ready".into(),
            status: ready,
            reason,
            message,
            last_transition_time: Utc::now().trunc_subsecs(0),
            observed_generation: generation,
        },
    );
    (status, action)
}

async fn reconcile_namespaced(b: Arc<TokenBackend>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciled("TokenBackend");
    let ns = b
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let loc = BackendLocation {
        kind: BackendKind::TokenBackend,
        namespace: ns.clone(),
        name: b.name_any(),
    };
    let (status, action) = check(&ctx, &loc, b.status.as_ref(), b.metadata.generation).await;
    if b.status.as_ref() != Some(&status) {
        let api: Api<TokenBackend> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend", "status": status});
        api.patch_status(
            &b.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    Ok(action)
}

async fn reconcile_cluster(b: Arc<ClusterTokenBackend>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciled("ClusterTokenBackend");
    let loc = BackendLocation {
        kind: BackendKind::ClusterTokenBackend,
        namespace: String::new(),
        name: b.name_any(),
    };
    let (status, action) = check(&ctx, &loc, b.status.as_ref(), b.metadata.generation).await;
    if b.status.as_ref() != Some(&status) {
        let api: Api<ClusterTokenBackend> = Api::all(ctx.client.clone());
        let patch = json!({"apiVersion": "tokenops.dev/v1alpha1", "kind": "ClusterTokenBackend", "status": status});
        api.patch_status(
            &b.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    Ok(action)
}

fn retry<K>(_: Arc<K>, err: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "backend check failed");
    Action::requeue(RETRY)
}

/// Runs the backend controllers: `TokenBackend`s in the given namespace (or
/// all), and every `ClusterTokenBackend`.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>, cluster: bool) {
    let namespaced: Api<TokenBackend> = match namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let ns_loop = Controller::new(namespaced, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile_namespaced, retry, ctx.clone())
        .for_each(|_| async {});
    if cluster {
        let cluster_loop = Controller::new(
            Api::<ClusterTokenBackend>::all(ctx.client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .shutdown_on_signal()
        .run(reconcile_cluster, retry, ctx)
        .for_each(|_| async {});
        futures::join!(ns_loop, cluster_loop);
    } else {
        ns_loop.await;
    }
}
