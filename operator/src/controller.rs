//! The `ApiToken` controller: `reconcile()` only wraps the finalizer helper and
//! hands off to [`apply`] (dereference → validate → observe → decide → act)
//! or [`cleanup`] (revoke or retain).
//!
//! # Deletion never wedges a namespace
//!
//! With `deletionPolicy: Revoke` the finalizer revokes the token before the
//! `ApiToken` goes. Failures that waiting cannot fix — the backend object or its
//! credentials are gone (as when a whole namespace is deleted), or the backend
//! refuses (401/403) — release the finalizer at once with a Warning Event
//! `RevokeAbandoned`. Transient failures (backend down) are retried with
//! back-off until `cleanup_timeout` after the deletion was requested (default
//! 15 minutes), then the finalizer is released with the same Warning Event and
//! the token is left to expire on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokenops_client::secrecy::ExposeSecret;
use tokenops_client::{CreateTokenRequest, Labels, Token, TokenStatus};

use crate::backend::{self, Backend, BackendLocation};
use crate::crd::{
    ApiToken, ApiTokenStatus, BackendKind, ClusterTokenBackend, Condition, ConditionStatus,
    DeletionPolicy, RestartKind, TokenBackend, set_condition,
};
use crate::decide::{
    self, Action as Step, BlockReason, Decision, Desired, IssueReason, Recorded, ReplaceReason,
    RotateReason, SecretState, TokenState,
};
use crate::metrics::Metrics;
use crate::secret::{self, ValueHasher};
use crate::{
    ANNOTATION_RESTARTED_AT, Error, FIELD_MANAGER, FINALIZER, K8S_MANAGED_BY, LABEL_OWNER_NAME,
    LABEL_OWNER_NAMESPACE, LABEL_OWNER_UID, MANAGED_BY, MANAGED_BY_VALUE, Result,
};

/// Shared state of every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub reporter: Reporter,
    pub hasher: ValueHasher,
    pub metrics: Arc<Metrics>,
    /// How long after a deletion request a transient revoke failure is retried.
    pub cleanup_timeout: Duration,
    /// How many `ApiToken`s one controller reconciles at once.
    pub concurrency: u16,
    failures: Mutex<HashMap<String, u32>>,
}

/// Default of [`Context::concurrency`]: enough to keep a backend busy; a
/// bound so that 10,000 new `ApiToken`s do not mean 10,000 reconciles (and
/// their buffers) in flight.
pub const DEFAULT_CONCURRENCY: u16 = 32;

impl Context {
    pub fn new(
        client: kube::Client,
        hasher: ValueHasher,
        metrics: Arc<Metrics>,
        cleanup_timeout: Duration,
    ) -> Self {
        Context {
            client,
            reporter: Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
            hasher,
            metrics,
            cleanup_timeout,
            concurrency: DEFAULT_CONCURRENCY,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    async fn event(&self, tok: &ApiToken, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder().publish(&ev, &tok.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an event");
        }
    }

    fn failure_key(tok: &ApiToken) -> String {
        format!("{}/{}", tok.namespace().unwrap_or_default(), tok.name_any())
    }
}

/// Watches `ApiToken`s (in all namespaces, or in one) and the Secrets they own,
/// and reconciles until the stream ends (shutdown signal).
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let (tokens, secrets): (Api<ApiToken>, Api<Secret>) = match namespace {
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
        None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
    };
    let (backends, cluster_backends): (Api<TokenBackend>, Api<ClusterTokenBackend>) =
        match namespace {
            Some(ns) => (
                Api::namespaced(ctx.client.clone(), ns),
                Api::all(ctx.client.clone()),
            ),
            None => (Api::all(ctx.client.clone()), Api::all(ctx.client.clone())),
        };
    let owned = watcher::Config::default().labels(&format!("{K8S_MANAGED_BY}={MANAGED_BY_VALUE}"));
    let controller = Controller::new(tokens, watcher::Config::default().any_semantic())
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency));
    // A backend that appears or changes wakes the ApiTokens that use it at once
    // (instead of at their next back-off).
    let store = controller.store();
    let users = move |kind: BackendKind, namespace: Option<String>, name: String| {
        store
            .state()
            .iter()
            .filter(|t| {
                t.spec.backend_ref.kind == kind
                    && t.spec.backend_ref.name == name
                    && (namespace.is_none() || t.namespace() == namespace)
            })
            .map(|t| ObjectRef::from_obj(&**t))
            .collect::<Vec<_>>()
    };
    let users_ns = users.clone();
    controller
        .owns(secrets, owned)
        .watches(
            backends,
            watcher::Config::default(),
            move |b: TokenBackend| users_ns(BackendKind::TokenBackend, b.namespace(), b.name_any()),
        )
        .watches(
            cluster_backends,
            watcher::Config::default(),
            move |b: ClusterTokenBackend| {
                users(BackendKind::ClusterTokenBackend, None, b.name_any())
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, action)) => tracing::debug!(object = %obj, ?action, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

/// Entry point of one reconcile: the finalizer decides between apply and cleanup.
pub async fn reconcile(tok: Arc<ApiToken>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    ctx.metrics.reconciled("ApiToken");
    let ns = tok
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let key = Context::failure_key(&tok);
    let api: Api<ApiToken> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, tok, |event| async {
        match event {
            Finalizer::Apply(tok) => apply(&tok, &ctx).await,
            Finalizer::Cleanup(tok) => cleanup(&tok, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
    result
}

/// Failed reconciles are retried with per-object exponential back-off (no hot loops).
pub fn error_policy(tok: Arc<ApiToken>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed("ApiToken", err.metric_label());
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(Context::failure_key(&tok)).or_insert(0);
    let delay = crate::error::backoff(*n);
    *n = n.saturating_add(1);
    tracing::warn!(apitoken = %Context::failure_key(&tok), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Apply: bring the token and the Secret to what the spec asks for.
pub async fn apply(cached: &ApiToken, ctx: &Context) -> Result<Action> {
    // Decide on the object as it is now, not as the watch cache last saw it:
    // a reconcile woken by our own Secret write may run before the cache has
    // our status write, and acting on a stale status would issue or rotate twice.
    let api: Api<ApiToken> =
        Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
    let tok = match api.get_opt(&cached.name_any()).await? {
        Some(t) if t.uid() == cached.uid() && t.metadata.deletion_timestamp.is_none() => t,
        _ => return Ok(Action::await_change()),
    };
    let tok = &tok;
    match apply_steps(tok, ctx).await {
        Ok(action) => Ok(action),
        Err(e) => {
            // Say why in the status; the error itself drives the back-off.
            let mut status = tok.status.clone().unwrap_or_default();
            set_ready(
                &mut status,
                tok,
                ConditionStatus::False,
                e.condition_reason(),
                e.to_string(),
            );
            if let Err(se) = write_status(tok, ctx, &status).await {
                tracing::warn!(error = %se, "writing the status");
            }
            match e {
                // Only a spec change can fix it, and that wakes us anyway.
                Error::InvalidSpec(_) => Ok(Action::await_change()),
                e => Err(e),
            }
        }
    }
}

async fn apply_steps(tok: &ApiToken, ctx: &Context) -> Result<Action> {
    let ns = tok.namespace().unwrap_or_default();
    let prev = tok.status.clone().unwrap_or_default();

    // dereference
    let backend = backend::resolve(&ctx.client, &BackendLocation::of(tok)).await?;
    // validate
    let desired = crate::desired::desired(tok, &backend.id, backend.project.as_deref())
        .map_err(Error::InvalidSpec)?;
    // observe
    let recorded = Recorded {
        token_id: prev.token_id.clone(),
        backend: prev.backend.clone(),
        last_rotate_request: prev.last_rotate_request.clone(),
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut found = secrets.get_opt(&tok.secret_name()).await?;
    let mut secret_state = secret::observe(
        found.as_ref(),
        tok,
        recorded.token_id.as_deref(),
        &ctx.hasher,
    );
    // A renamed Secret: carry the intact value over instead of rotating.
    let old_name = prev.secret_name.clone().filter(|n| *n != tok.secret_name());
    if secret_state == SecretState::Absent
        && let Some(old) = &old_name
        && let Some(old_secret) = secrets.get_opt(old).await?
        && let SecretState::Present {
            value_matches: true,
            ..
        } = secret::observe(
            Some(&old_secret),
            tok,
            recorded.token_id.as_deref(),
            &ctx.hasher,
        )
    {
        secret_state = SecretState::Present {
            value_matches: true,
            up_to_date: false,
        };
        found = Some(old_secret);
    }
    let same_backend = recorded.backend.as_deref().is_none_or(|b| b == backend.id);
    let token = match (&recorded.token_id, same_backend) {
        (Some(id), true) => match backend.client.get_token(id).await {
            Ok(t) => TokenState::Found(Box::new(t)),
            Err(e) if e.is_not_found() => TokenState::NotFound,
            Err(e) => return Err(e.into()),
        },
        _ => TokenState::Unknown,
    };
    // decide
    let now = Utc::now();
    let Decision {
        action: step,
        requeue_after,
    } = decide::decide(&desired, &recorded, secret_state, &token, now);
    tracing::info!(apitoken = %Context::failure_key(tok), action = ?step, ?requeue_after, "decided");

    // act
    let current = match step.clone() {
        Step::Issue(reason) => {
            let t = issue(tok, ctx, &backend, &desired).await?;
            sweep_orphans(tok, ctx, &backend, &t.id).await;
            ctx.metrics.issued("issue", &format!("{reason:?}"));
            let note = format!("Issued token {} ({}), {}", t.id, t.masked, expiry_note(&t));
            ctx.event(tok, EventType::Normal, "Issued", note).await;
            if reason != IssueReason::New {
                restart_targets(tok, ctx).await;
            }
            Some(t)
        }
        Step::Replace(reason) => {
            let t = issue(tok, ctx, &backend, &desired).await?;
            match reason {
                ReplaceReason::PermissionsChanged => sweep_orphans(tok, ctx, &backend, &t.id).await,
                ReplaceReason::BackendChanged => revoke_on_old_backend(tok, ctx, &prev).await,
            }
            ctx.metrics.issued("replace", &format!("{reason:?}"));
            let note = format!(
                "Replaced token {} by {} ({}) because {}",
                prev.token_id.as_deref().unwrap_or("-"),
                t.id,
                t.masked,
                match reason {
                    ReplaceReason::PermissionsChanged =>
                        "role, scopes, resources or project changed",
                    ReplaceReason::BackendChanged => "the backend changed",
                }
            );
            ctx.event(tok, EventType::Normal, "Replaced", note).await;
            restart_targets(tok, ctx).await;
            Some(t)
        }
        Step::Rotate(reason) => {
            let id = recorded
                .token_id
                .clone()
                .ok_or(Error::MissingField("status.tokenId"))?;
            let mut call = backend.client.regenerate_token(&id);
            if let Some(l) = desired.lifetime {
                call = call.lifetime(l);
            }
            // A tampered or expired value gets no grace: it must stop now.
            let grace = match reason {
                RotateReason::SecretTampered | RotateReason::Expired => None,
                _ => desired.grace_period,
            };
            if let Some(g) = grace.filter(|g| !g.is_zero()) {
                call = call.grace_period(g);
            }
            let created = call.await?;
            write_secret(
                tok,
                ctx,
                &created.token.id,
                created.secret.expose_secret().as_bytes(),
            )
            .await?;
            ctx.metrics.issued("rotate", &format!("{reason:?}"));
            let note = format!(
                "Rotated token {} ({}): {}; {}",
                created.token.id,
                created.token.masked,
                rotate_reason_text(reason),
                expiry_note(&created.token)
            );
            let type_ = match reason {
                RotateReason::SecretTampered | RotateReason::SecretLost | RotateReason::Expired => {
                    EventType::Warning
                }
                _ => EventType::Normal,
            };
            ctx.event(tok, type_, "Rotated", note).await;
            restart_targets(tok, ctx).await;
            Some(created.token)
        }
        Step::EditInPlace(edit) => {
            let id = recorded
                .token_id
                .clone()
                .ok_or(Error::MissingField("status.tokenId"))?;
            let mut call = backend.client.update_token(&id);
            if let Some(name) = &edit.name {
                call = call.name(name);
            }
            match &edit.description {
                Some(Some(d)) => call = call.description(d),
                Some(None) => call = call.clear_description(),
                None => {}
            }
            let t = call.await?;
            ctx.event(
                tok,
                EventType::Normal,
                "Updated",
                format!("Updated name or description of token {}", t.id),
            )
            .await;
            Some(t)
        }
        Step::RepairSecret => {
            let id = recorded
                .token_id
                .clone()
                .ok_or(Error::MissingField("status.tokenId"))?;
            let value = found
                .as_ref()
                .and_then(|s| secret::value(s, tok))
                .ok_or(Error::MissingField("Secret value"))?
                .to_vec();
            write_secret(tok, ctx, &id, &value).await?;
            if let Some(old) = &old_name {
                delete_old_secret(tok, ctx, old).await;
            }
            ctx.event(
                tok,
                EventType::Normal,
                "SecretRepaired",
                format!(
                    "Rewrote Secret {} from the template (value unchanged)",
                    tok.secret_name()
                ),
            )
            .await;
            found_token(token)
        }
        Step::Blocked(reason) => {
            let (reason, message) = match reason {
                BlockReason::NotOwned { managed_by } => (
                    "NotOwned",
                    format!(
                        "token {} is managed by {} and is left alone",
                        recorded.token_id.as_deref().unwrap_or("-"),
                        managed_by.as_deref().unwrap_or("something else")
                    ),
                ),
                BlockReason::SecretConflict => (
                    "SecretConflict",
                    format!(
                        "Secret {} exists and is not owned by this ApiToken",
                        tok.secret_name()
                    ),
                ),
            };
            let mut status = prev.clone();
            set_ready(
                &mut status,
                tok,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
            if status != prev {
                ctx.event(tok, EventType::Warning, reason, message).await;
            }
            write_status(tok, ctx, &status).await?;
            return Ok(Action::await_change());
        }
        Step::Nothing => found_token(token),
    };

    // record
    let requeue = match &current {
        Some(t) if step.issues_value() => {
            decide::renewal_time(&desired, t).map(|r| decide::until(Utc::now(), r))
        }
        _ => requeue_after,
    };
    if let Some(t) = &current {
        let status = status_for(tok, &prev, t, &desired, step.issues_value());
        write_status(tok, ctx, &status).await?;
        ctx.metrics
            .set_expiry(&ns, &tok.name_any(), t.expires_at.map(|e| e.timestamp()));
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn found_token(token: TokenState) -> Option<Token> {
    match token {
        TokenState::Found(t) => Some(*t),
        _ => None,
    }
}

fn rotate_reason_text(reason: RotateReason) -> &'static str {
    match reason {
        RotateReason::Due => "renewal time reached",
        RotateReason::Manual => "rotation requested with the tokenops.dev/rotate annotation",
        RotateReason::Expired => "the token had expired",
        RotateReason::SecretLost => "the Secret was deleted and the value cannot be recovered",
        RotateReason::SecretTampered => "the Secret's value was changed outside the operator",
        RotateReason::LifetimeChanged => "spec.lifetime changed",
    }
}

fn expiry_note(t: &Token) -> String {
    match t.expires_at {
        Some(e) => format!("expires at {}", e.to_rfc3339()),
        None => "never expires".into(),
    }
}

/// The labels every token of `tok` carries on the backend.
pub fn owner_labels(tok: &ApiToken) -> Labels {
    let mut labels = Labels::new();
    labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    labels.insert(LABEL_OWNER_UID.into(), tok.uid().unwrap_or_default());
    labels.insert(
        LABEL_OWNER_NAMESPACE.into(),
        tok.namespace().unwrap_or_default(),
    );
    labels.insert(LABEL_OWNER_NAME.into(), tok.name_any());
    labels
}

fn owner_selector(tok: &ApiToken) -> String {
    format!(
        "{MANAGED_BY}={MANAGED_BY_VALUE},{LABEL_OWNER_UID}={}",
        tok.uid().unwrap_or_default()
    )
}

/// Creates a token for `desired` and writes its value into the Secret.
async fn issue(
    tok: &ApiToken,
    ctx: &Context,
    backend: &Backend,
    desired: &Desired,
) -> Result<Token> {
    let request = CreateTokenRequest {
        name: desired.name.clone(),
        description: desired.description.clone(),
        project: desired.project.clone(),
        role: desired.role.clone(),
        scopes: (!desired.scopes.is_empty()).then(|| desired.scopes.clone()),
        resources: Some(desired.resources.clone()),
        lifetime: desired.lifetime.map(tokenops_client::format_duration),
        expires_at: None,
        labels: Some(owner_labels(tok)),
    };
    let created = backend.client.create_token_from(request).await?;
    write_secret(
        tok,
        ctx,
        &created.token.id,
        created.secret.expose_secret().as_bytes(),
    )
    .await?;
    Ok(created.token)
}

/// Revokes tokens of this `ApiToken` other than `keep` (left over from a replace,
/// or from an issue whose status write was lost).
async fn sweep_orphans(tok: &ApiToken, ctx: &Context, backend: &Backend, keep: &str) {
    let list = backend
        .client
        .list_tokens()
        .selector(owner_selector(tok))
        .status(TokenStatus::Active);
    let tokens = match list.all().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "listing old tokens to revoke");
            return;
        }
    };
    for t in tokens
        .into_iter()
        .filter(|t| t.id != keep && decide::owned_by(t, &tok.uid().unwrap_or_default()))
    {
        match backend.client.revoke_token(&t.id).await {
            Ok(_) => {
                ctx.event(
                    tok,
                    EventType::Normal,
                    "Revoked",
                    format!("Revoked previous token {}", t.id),
                )
                .await
            }
            Err(e) => tracing::warn!(token = %t.id, error = %e, "revoking an old token"),
        }
    }
}

async fn revoke_on_old_backend(tok: &ApiToken, ctx: &Context, prev: &ApiTokenStatus) {
    let (Some(id), Some(loc)) = (
        prev.token_id.as_deref(),
        prev.backend.as_deref().and_then(BackendLocation::parse),
    ) else {
        return;
    };
    if let Err(e) = revoke_owned(tok, ctx, &loc, id).await {
        ctx.event(
            tok,
            EventType::Warning,
            "RevokeFailed",
            format!(
                "Could not revoke token {id} on the previous backend {}: {e}",
                loc.id()
            ),
        )
        .await;
    }
}

/// Writes the Secret by server-side apply (fields no longer rendered go away).
async fn write_secret(tok: &ApiToken, ctx: &Context, token_id: &str, value: &[u8]) -> Result<()> {
    let secret = secret::render(tok, token_id, value, &ctx.hasher);
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let mut patch = serde_json::to_value(&secret).map_err(|_| Error::MissingField("Secret"))?;
    patch["apiVersion"] = json!("v1");
    patch["kind"] = json!("Secret");
    api.patch(
        &tok.secret_name(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

async fn delete_old_secret(tok: &ApiToken, ctx: &Context, name: &str) {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    if let Ok(Some(s)) = api.get_opt(name).await
        && secret::is_owned_by(&s, tok)
        && let Err(e) = api.delete(name, &Default::default()).await
    {
        tracing::warn!(secret = name, error = %e, "deleting the previous Secret");
    }
}

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
        conditions: prev.conditions.clone(),
    };
    let message = match renewal {
        Some(r) => format!("token {} is active; renews at {}", token.id, r.to_rfc3339()),
        None => format!("token {} is active and never expires", token.id),
    };
    set_ready(&mut status, tok, ConditionStatus::True, "Active", message);
    status
}

fn set_ready(
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

/// Writes the whole status by server-side apply with the one field manager.
async fn write_status(tok: &ApiToken, ctx: &Context, status: &ApiTokenStatus) -> Result<()> {
    if tok.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<ApiToken> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "tokenops.dev/v1alpha1",
        "kind": "ApiToken",
        "status": status,
    });
    api.patch_status(
        &tok.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Rolls the workloads named in `spec.restartTargets` (like `kubectl rollout restart`).
async fn restart_targets(tok: &ApiToken, ctx: &Context) {
    let ns = tok.namespace().unwrap_or_default();
    let now = Utc::now().trunc_subsecs(0).to_rfc3339();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {ANNOTATION_RESTARTED_AT: now}}}}});
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

/// Cleanup: revoke the token (or keep it), never holding the deletion forever.
pub async fn cleanup(tok: &ApiToken, ctx: &Context) -> Result<Action> {
    ctx.metrics
        .set_expiry(&tok.namespace().unwrap_or_default(), &tok.name_any(), None);
    let status = tok.status.clone().unwrap_or_default();
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
        Err(e) => Err(e),
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
/// `loc`, but only tokens that carry this `ApiToken`'s ownership labels.
async fn revoke_owned(
    tok: &ApiToken,
    ctx: &Context,
    loc: &BackendLocation,
    id: &str,
) -> Result<String> {
    let backend = backend::resolve(&ctx.client, loc).await?;
    let uid = tok.uid().unwrap_or_default();
    let note = match backend.client.get_token(id).await {
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
    };
    sweep_orphans(tok, ctx, &backend, id).await;
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
