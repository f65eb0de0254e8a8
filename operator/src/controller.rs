//! The `ApiToken` controller: `reconcile()` hands off to [`apply`] (finalizer →
//! dereference → validate → observe → decide → act) or, once deletion is
//! requested, to [`cleanup`] (revoke or retain) and the finalizer's removal.
//!
//! # The finalizer and a watch cache that is behind
//!
//! The finalizer is added with a JSON patch that tests the list it extends (so
//! no other controller's finalizer is lost), against the object as read in this
//! reconcile, not as the watch cache last saw it. A test that still fails means
//! the object changed meanwhile: the watch brings the newer copy and wakes the
//! `ApiToken` again, so that is not an error. Once added, the same reconcile goes
//! on to issue the token.
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
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokenops_client::secrecy::ExposeSecret;
use tokenops_client::{CreateTokenRequest, Labels, Token, TokenStatus, codes};

use crate::backend::{self, Backend, BackendLocation};
use crate::crd::{
    ApiToken, ApiTokenStatus, BackendKind, ClusterTokenBackend, Condition, ConditionStatus,
    DeletionPolicy, PendingRevocation, RestartKind, TokenBackend, set_condition,
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
    /// Back-off of a failing `ApiToken`.
    pub backoff: crate::error::Backoff,
    /// How many `ApiToken`s one controller reconciles at once.
    pub concurrency: u16,
    /// The longest an `ApiToken` waits between two checks against its backend
    /// (see [`Context::resync_after`]).
    pub resync_period: Duration,
    /// Backends resolved recently (see [`backend::Resolver`]).
    pub backends: backend::Resolver,
    failures: Mutex<HashMap<String, u32>>,
    /// By `ApiToken` UID: what this process's last reconcile of it left behind
    /// (see [`Context::known_token`]).
    written: Mutex<WrittenMap>,
}

/// The end of a successful reconcile: the `ApiToken`'s resourceVersion after
/// our status write, and the token as the backend showed it at `seen`.
struct Written {
    resource_version: String,
    token: Token,
    seen: std::time::Instant,
}

/// [`Written`] by `ApiToken` UID, and the size at which old entries are dropped next.
#[derive(Default)]
struct WrittenMap {
    entries: HashMap<String, Written>,
    prune_at: usize,
}

/// How long a token read from (or returned by) the backend stands in for
/// another read, in a reconcile that our own writes woke.
const KNOWN_TOKEN_TTL: Duration = Duration::from_secs(10);

/// Default of [`Context::concurrency`]: enough to keep a backend busy; a
/// bound so that 10,000 new `ApiToken`s do not mean 10,000 reconciles (and
/// their buffers) in flight.
pub const DEFAULT_CONCURRENCY: u16 = 32;

/// Default of [`Context::resync_period`].
pub const DEFAULT_RESYNC_PERIOD: Duration = Duration::from_secs(10 * 60);

impl Context {
    pub fn new(
        client: kube::Client,
        hasher: ValueHasher,
        metrics: Arc<Metrics>,
        cleanup_timeout: Duration,
    ) -> Self {
        let backend_metrics = metrics.clone();
        Context {
            client,
            reporter: Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
            hasher,
            metrics,
            cleanup_timeout,
            backoff: crate::error::Backoff::default(),
            concurrency: DEFAULT_CONCURRENCY,
            resync_period: DEFAULT_RESYNC_PERIOD,
            backends: backend::Resolver::new(backend_metrics),
            failures: Mutex::new(HashMap::new()),
            written: Mutex::default(),
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

    /// When `tok` is next checked against its backend if nothing wakes it
    /// sooner: within the last tenth of the resync period, at a point fixed by
    /// its UID, so that ApiTokens created together do not resync together.
    pub fn resync_after(&self, tok: &ApiToken) -> Duration {
        resync_after(self.resync_period, &tok.uid().unwrap_or_default())
    }

    /// The token of `cached`, without asking the backend, when nothing has
    /// changed the `ApiToken` since our own last reconcile of it (the watch
    /// cache holds exactly the resourceVersion our status write produced) and
    /// that reconcile saw the token less than [`KNOWN_TOKEN_TTL`] ago. Such a
    /// reconcile was woken by our own Secret or status write; the periodic
    /// resync and any change to the `ApiToken` still read the backend.
    fn known_token(&self, cached: &ApiToken) -> Option<(Token, std::time::Instant)> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let w = written.entries.get(&cached.uid()?)?;
        (cached.resource_version().as_deref() == Some(w.resource_version.as_str())
            && w.seen.elapsed() < KNOWN_TOKEN_TTL.min(self.resync_period / 2))
        .then(|| (w.token.clone(), w.seen))
    }

    fn remember(
        &self,
        uid: String,
        resource_version: Option<String>,
        token: Token,
        seen: std::time::Instant,
    ) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let Some(resource_version) = resource_version else {
            written.entries.remove(&uid);
            return;
        };
        // Entries are only useful for seconds: drop the old ones whenever the
        // map has doubled since the last time (amortised, however many are fresh).
        if written.entries.len() >= written.prune_at {
            written
                .entries
                .retain(|_, w| w.seen.elapsed() < KNOWN_TOKEN_TTL);
            written.prune_at = (2 * written.entries.len()).max(256);
        }
        written.entries.insert(
            uid,
            Written {
                resource_version,
                token,
                seen,
            },
        );
    }

    fn forget_written(&self, tok: &ApiToken) {
        if let Some(uid) = tok.uid() {
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entries
                .remove(&uid);
        }
    }

    fn failure_key(tok: &ApiToken) -> String {
        format!("{}/{}", tok.namespace().unwrap_or_default(), tok.name_any())
    }
}

/// `period` less up to a tenth of it, by a hash of `uid`.
fn resync_after(period: Duration, uid: &str) -> Duration {
    let spread = uid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    period.mul_f64(1.0 - f64::from(spread) / 10_000.0)
}

/// Which Secret (namespace, name) each backend object authenticates with.
/// Filled as backend events arrive, read when a Secret changes.
type CredentialRefs = Arc<Mutex<HashMap<BackendLocation, (String, String)>>>;

/// Watches `ApiToken`s (in all namespaces, or in one), the Secrets they own,
/// their backends and the backends' credentials Secrets, and reconciles until
/// the stream ends (shutdown signal).
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let (tokens, secrets, credentials): (
        Api<ApiToken>,
        Api<Secret>,
        Api<PartialObjectMeta<Secret>>,
    ) = match namespace {
        Some(ns) => (
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
            Api::namespaced(ctx.client.clone(), ns),
        ),
        None => (
            Api::all(ctx.client.clone()),
            Api::all(ctx.client.clone()),
            Api::all(ctx.client.clone()),
        ),
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
    // (instead of at their next back-off); so does its credentials Secret. Either
    // also ends the resolver's memory of that backend.
    let store = controller.store();
    let refs = CredentialRefs::default();
    let changed = {
        let (ctx, refs) = (ctx.clone(), refs.clone());
        move |at: BackendLocation, credentials: Option<(String, String)>| {
            ctx.backends.forget(&at);
            if let Some(secret) = credentials {
                refs.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(at.clone(), secret);
            }
            store
                .state()
                .iter()
                .filter(|t| BackendLocation::of(t) == at)
                .map(|t| ObjectRef::from_obj(&**t))
                .collect::<Vec<_>>()
        }
    };
    let (changed_ns, changed_cluster, changed_secret) = (changed.clone(), changed.clone(), changed);
    controller
        .owns(secrets, owned)
        .watches(
            backends,
            watcher::Config::default(),
            move |b: TokenBackend| {
                let at = BackendLocation {
                    kind: BackendKind::TokenBackend,
                    namespace: b.namespace().unwrap_or_default(),
                    name: b.name_any(),
                };
                let secret = (
                    at.namespace.clone(),
                    b.spec.credentials_secret_ref.name.clone(),
                );
                changed_ns(at, Some(secret))
            },
        )
        .watches(
            cluster_backends,
            watcher::Config::default(),
            move |b: ClusterTokenBackend| {
                let r = &b.spec.credentials_secret_ref;
                let at = BackendLocation {
                    kind: BackendKind::ClusterTokenBackend,
                    namespace: String::new(),
                    name: b.name_any(),
                };
                changed_cluster(at, Some((r.namespace.clone(), r.name.clone())))
            },
        )
        // Only metadata is kept in memory; the values of Secrets are not read here.
        .watches(
            credentials,
            watcher::Config::default(),
            move |s: PartialObjectMeta<Secret>| {
                let key = (s.namespace().unwrap_or_default(), s.name_any());
                let using: Vec<BackendLocation> = refs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter(|(_, secret)| **secret == key)
                    .map(|(backend, _)| backend.clone())
                    .collect();
                using
                    .into_iter()
                    .flat_map(|at| changed_secret(at, None))
                    .collect::<Vec<_>>()
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
    let result = match (
        tok.metadata.deletion_timestamp.is_some(),
        tok.finalizers().iter().position(|f| f == FINALIZER),
    ) {
        (false, _) => apply(&tok, &ctx).await,
        (true, Some(index)) => match cleanup(&tok, &ctx).await {
            Ok(action) => remove_finalizer(&api, &tok, index).await.map(|()| action),
            Err(e) => Err(e),
        },
        // Not ours to hold any more.
        (true, None) => Ok(Action::await_change()),
    };
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

/// `tok` with the finalizer: as it is, or as the patch that adds it left it;
/// `None` when the object changed since it was read (a newer copy is on its way).
async fn add_finalizer(tok: ApiToken, ctx: &Context) -> Result<Option<ApiToken>> {
    if tok.finalizers().iter().any(|f| f == FINALIZER) {
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
        Ok(patched) => Ok(Some(patched)),
        Err(kube::Error::Api(e)) if e.code == 422 => {
            tracing::debug!(apitoken = %Context::failure_key(&tok), "finalizers changed meanwhile; waiting for the newer copy");
            Ok(None)
        }
        Err(e) => Err(Error::Finalizer(e)),
    }
}

/// Removes the finalizer at `index`, testing that it is still ours there (a
/// failed test is retried with the newer copy, as any failed reconcile).
async fn remove_finalizer(api: &Api<ApiToken>, tok: &ApiToken, index: usize) -> Result<()> {
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

/// Failed reconciles are retried with per-object exponential back-off (no hot loops).
pub fn error_policy(tok: Arc<ApiToken>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed("ApiToken", err.metric_label());
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(Context::failure_key(&tok)).or_insert(0);
    let delay = ctx.backoff.delay(*n);
    *n = n.saturating_add(1);
    tracing::warn!(apitoken = %Context::failure_key(&tok), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Apply: bring the token and the Secret to what the spec asks for.
pub async fn apply(cached: &ApiToken, ctx: &Context) -> Result<Action> {
    // Decide on the object as it is now, not as the watch cache last saw it:
    // a reconcile woken by our own Secret write may run before the cache has
    // our status write, and acting on a stale status would issue or rotate twice.
    // Unless the cache holds our own last write (see `known_token`); and when
    // the object read now is still that write, the cache was merely behind:
    // the token we saw then stands in for a backend read too.
    let (tok, known) = match ctx.known_token(cached) {
        Some(known) => (cached.clone(), Some(known)),
        None => {
            let api: Api<ApiToken> =
                Api::namespaced(ctx.client.clone(), &cached.namespace().unwrap_or_default());
            match api.get_opt(&cached.name_any()).await? {
                Some(t) if t.uid() == cached.uid() && t.metadata.deletion_timestamp.is_none() => {
                    let known = ctx.known_token(&t);
                    (t, known)
                }
                _ => return Ok(Action::await_change()),
            }
        }
    };
    let Some(tok) = add_finalizer(tok, ctx).await? else {
        return Ok(Action::await_change());
    };
    let tok = &tok;
    match apply_steps(tok, ctx, known).await {
        Ok(action) => Ok(action),
        Err(e) => {
            ctx.forget_written(tok);
            // The backend's settings may be what is wrong: read them afresh next time.
            ctx.backends.forget(&BackendLocation::of(tok));
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

async fn apply_steps(
    tok: &ApiToken,
    ctx: &Context,
    known: Option<(Token, std::time::Instant)>,
) -> Result<Action> {
    let ns = tok.namespace().unwrap_or_default();
    let prev = tok.status.clone().unwrap_or_default();

    // dereference
    let backend = ctx
        .backends
        .resolve(&ctx.client, &BackendLocation::of(tok))
        .await?;
    // validate
    let desired = crate::desired::desired(tok, &backend.id, backend.project.as_deref())
        .map_err(Error::InvalidSpec)?;
    // observe
    let mut recorded = Recorded {
        token_id: prev.token_id.clone(),
        backend: prev.backend.clone(),
        last_rotate_request: prev.last_rotate_request.clone(),
    };
    let mut pending = prev.pending_revocations.clone();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut found = secrets.get_opt(&tok.secret_name()).await?;
    // A reconcile that stopped after writing the Secret and before the status
    // left the Secret as the only record of the current token: adopt it.
    if let Some(adopted) = adopt_from_secret(tok, ctx, &backend, found.as_ref(), &recorded).await? {
        let note = format!(
            "Adopted token {adopted} from Secret {}: an earlier reconcile delivered it but did not record it",
            tok.secret_name()
        );
        if let Some(old) = recorded.token_id.replace(adopted.clone()) {
            schedule_revocation(&mut pending, &old, &backend.id, &desired);
        }
        recorded.backend = Some(backend.id.clone());
        ctx.event(tok, EventType::Normal, "Adopted", note).await;
        // The interrupted reconcile may not have got to its clean-up.
        let spare: Vec<&str> = pending.iter().map(|p| p.token_id.as_str()).collect();
        sweep_orphans(tok, ctx, &backend, &adopted, &spare).await;
    }
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
            generation,
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
            generation,
        };
        found = Some(old_secret);
    }
    let same_backend = recorded.backend.as_deref().is_none_or(|b| b == backend.id);
    // When the token was last seen as `token` shows it.
    let mut seen = std::time::Instant::now();
    let token = match (&recorded.token_id, same_backend) {
        (Some(id), true) => match known.filter(|(t, _)| t.id == *id) {
            Some((t, at)) => {
                seen = at;
                TokenState::Found(Box::new(t))
            }
            None => match backend.client.get_token(id).await {
                Ok(t) => TokenState::Found(Box::new(t)),
                Err(e) if e.is_not_found() => TokenState::NotFound,
                Err(e) => return Err(e.into()),
            },
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
            let t = issue(
                tok,
                ctx,
                &backend,
                &desired,
                recorded.token_id.as_deref(),
                &pending,
            )
            .await?;
            ctx.metrics.issued("issue", &format!("{reason:?}"));
            let note = format!("Issued token {} ({}), {}", t.id, t.masked, expiry_note(&t));
            ctx.event(tok, EventType::Normal, "Issued", note).await;
            if reason != IssueReason::New {
                restart_targets(tok, ctx, &t).await;
            }
            Some(t)
        }
        Step::Replace(reason) => {
            let t = issue(
                tok,
                ctx,
                &backend,
                &desired,
                recorded.token_id.as_deref(),
                &pending,
            )
            .await?;
            // The previous token keeps working for the grace period; the
            // revocation is recorded in the status so a restart keeps it.
            let old_backend = match reason {
                ReplaceReason::PermissionsChanged => Some(backend.id.clone()),
                ReplaceReason::BackendChanged => prev.backend.clone(),
            };
            if let (Some(old), Some(at)) = (&recorded.token_id, &old_backend) {
                schedule_revocation(&mut pending, old, at, &desired);
            }
            ctx.metrics.issued("replace", &format!("{reason:?}"));
            let grace = match desired.grace_period.filter(|g| !g.is_zero()) {
                Some(g) => format!(
                    "; the previous token keeps working for {}",
                    tokenops_client::format_duration(g)
                ),
                None => String::new(),
            };
            let note = format!(
                "Replaced token {} by {} ({}) because {}{grace}",
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
            restart_targets(tok, ctx, &t).await;
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
                held(&created.token),
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
                RotateReason::SecretTampered
                | RotateReason::SecretLost
                | RotateReason::SecretStale
                | RotateReason::Expired => EventType::Warning,
                _ => EventType::Normal,
            };
            ctx.event(tok, type_, "Rotated", note).await;
            restart_targets(tok, ctx, &created.token).await;
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
            let t = found_token(token).ok_or(Error::MissingField("status.tokenId"))?;
            let value = found
                .as_ref()
                .and_then(|s| secret::value(s, tok))
                .ok_or(Error::MissingField("Secret value"))?
                .to_vec();
            write_secret(tok, ctx, held(&t), &value).await?;
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
            Some(t)
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
            // Ownership and Secrets can change outside our watches: look again.
            return Ok(Action::requeue(ctx.resync_after(tok)));
        }
        Step::Nothing => found_token(token),
    };

    // revoke what the grace period no longer covers
    let revoke_requeue = revoke_due(tok, ctx, &mut pending, Utc::now()).await;

    // record
    let requeue = match &current {
        Some(t) if step.issues_value() => {
            decide::renewal_time(&desired, t).map(|r| decide::until(Utc::now(), r))
        }
        _ => requeue_after,
    };
    let requeue = match (requeue, revoke_requeue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(t) = current {
        let mut status = status_for(tok, &prev, &t, &desired, step.issues_value());
        status.pending_revocations = pending;
        let resource_version = write_status(tok, ctx, &status).await?;
        ctx.metrics
            .set_expiry(&ns, &tok.name_any(), t.expires_at.map(|e| e.timestamp()));
        if step != Step::Nothing {
            // The token as the action's answer returned it.
            seen = std::time::Instant::now();
        }
        ctx.remember(tok.uid().unwrap_or_default(), resource_version, t, seen);
    } else {
        ctx.forget_written(tok);
    }
    // The renewal time, or sooner the resync: a token revoked or deleted
    // outside Kubernetes is noticed within one resync period.
    let resync = ctx.resync_after(tok);
    Ok(Action::requeue(requeue.map_or(resync, |d| d.min(resync))))
}

/// What a Secret holding `t`'s current value records about it.
fn held(t: &Token) -> secret::Held<'_> {
    secret::Held {
        token_id: &t.id,
        generation: t.generation,
    }
}

/// The token the Secret holds an intact value of, when the status does not
/// record it (yet) and the backend still has it active for this `ApiToken`.
async fn adopt_from_secret(
    tok: &ApiToken,
    ctx: &Context,
    backend: &Backend,
    found: Option<&Secret>,
    recorded: &Recorded,
) -> Result<Option<String>> {
    let Some(id) = found.and_then(secret::token_id) else {
        return Ok(None);
    };
    if recorded.token_id.as_deref() == Some(id)
        || recorded.backend.as_deref().is_some_and(|b| b != backend.id)
        || !matches!(
            secret::observe(found, tok, Some(id), &ctx.hasher),
            SecretState::Present {
                value_matches: true,
                ..
            }
        )
    {
        return Ok(None);
    }
    match backend.client.get_token(id).await {
        Ok(t)
            if decide::owned_by(&t, &tok.uid().unwrap_or_default())
                && t.status == TokenStatus::Active =>
        {
            Ok(Some(t.id))
        }
        Ok(_) => Ok(None),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records that `token_id` on `backend` is to be revoked when the grace period
/// (from now) is over; at once without one.
fn schedule_revocation(
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

/// How long a revocation that failed for a transient reason waits before the next try.
const REVOKE_RETRY: Duration = Duration::from_secs(30);

/// Revokes the pending tokens whose grace period is over; returns when to
/// look again for the rest.
async fn revoke_due(
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
        RotateReason::SecretStale => {
            "an earlier rotation stopped before its value reached the Secret"
        }
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

/// The active tokens of this `ApiToken` on `backend`.
async fn owned_tokens(tok: &ApiToken, backend: &Backend) -> Result<Vec<Token>> {
    let uid = tok.uid().unwrap_or_default();
    let list = backend
        .client
        .list_tokens()
        .selector(owner_selector(tok))
        .status(TokenStatus::Active);
    Ok(list
        .all()
        .await?
        .into_iter()
        .filter(|t| decide::owned_by(t, &uid))
        .collect())
}

/// The idempotency key of the create that issues the token following
/// `predecessor` (the recorded token, if any) for this `ApiToken`.
///
/// The recorded token only changes once a new one has been delivered, so every
/// attempt to issue the same successor uses the same key, whichever process
/// makes it: an attempt that stopped after the backend created the token and
/// before its value reached the Secret is completed by the next attempt, which
/// the backend answers with the same token and a fresh value (the first value
/// was never seen by anyone). No listing is needed to find such a token.
pub fn issue_key(tok: &ApiToken, predecessor: Option<&str>) -> String {
    format!(
        "tokenops-operator/{}/after/{}",
        tok.uid().unwrap_or_default(),
        predecessor.unwrap_or("-")
    )
}

/// Delivers a token for `desired` into the Secret: created with
/// [`issue_key`], so that a repeated attempt gets the same token back.
///
/// When the key cannot be used — an interrupted attempt used it for a request
/// that has changed since (the spec was edited), or that token has been
/// revoked — the owned tokens are listed instead: an undelivered one with the
/// right permissions is reused with a new value, else a new one is created.
/// After any sign of an interrupted attempt (a replayed key or the fallback),
/// tokens of this `ApiToken` that are neither the delivered one, the recorded
/// one nor pending revocation are revoked.
async fn issue(
    tok: &ApiToken,
    ctx: &Context,
    backend: &Backend,
    desired: &Desired,
    recorded: Option<&str>,
    pending: &[PendingRevocation],
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
    // Tokens an interrupted attempt must neither reuse nor revoke.
    let mut spare: Vec<&str> = pending.iter().map(|p| p.token_id.as_str()).collect();
    spare.extend(recorded);
    let keyed = backend
        .client
        .create_token_from(request.clone())
        .idempotency_key(issue_key(tok, recorded))
        .await;
    let (created, leftovers) = match keyed {
        // A fresh token has generation 0; a replayed key regenerates it: an
        // earlier attempt was interrupted, so look for what it left behind.
        Ok(created) if created.token.generation > 0 => {
            reused_undelivered(tok, ctx, &created.token.id).await;
            let listed = owned_tokens(tok, backend).await;
            (created, Some(listed))
        }
        Ok(created) => (created, None),
        Err(e)
            if matches!(
                e.code(),
                Some(codes::IDEMPOTENCY_KEY_REUSED | codes::TOKEN_REVOKED)
            ) =>
        {
            let listed = owned_tokens(tok, backend).await?;
            let created =
                issue_by_listing(tok, ctx, backend, desired, request, &listed, &spare).await?;
            (created, Some(Ok(listed)))
        }
        Err(e) => return Err(e.into()),
    };
    write_secret(
        tok,
        ctx,
        held(&created.token),
        created.secret.expose_secret().as_bytes(),
    )
    .await?;
    if let Some(listed) = leftovers {
        revoke_leftovers(tok, ctx, backend, listed, &created.token.id, &spare).await;
    }
    Ok(created.token)
}

/// The fallback of [`issue`]: reuses an undelivered token among `listed`
/// (this `ApiToken`'s active tokens) with the desired permissions and not in
/// `avoid`, or creates one.
async fn issue_by_listing(
    tok: &ApiToken,
    ctx: &Context,
    backend: &Backend,
    desired: &Desired,
    request: CreateTokenRequest,
    listed: &[Token],
    avoid: &[&str],
) -> Result<tokenops_client::CreatedToken> {
    let now = Utc::now();
    let undelivered = listed
        .iter()
        .filter(|t| {
            !avoid.contains(&t.id.as_str())
                && t.expires_at.is_none_or(|e| e > now)
                && decide::permissions_match(desired, t)
        })
        .max_by_key(|t| t.created_at);
    match undelivered {
        Some(t) => {
            let mut call = backend.client.regenerate_token(&t.id);
            if let Some(l) = desired.lifetime {
                call = call.lifetime(l);
            }
            let created = call.await?;
            reused_undelivered(tok, ctx, &t.id).await;
            Ok(created)
        }
        None => Ok(backend.client.create_token_from(request).await?),
    }
}

/// The Event for a token an interrupted reconcile created but never delivered.
async fn reused_undelivered(tok: &ApiToken, ctx: &Context, id: &str) {
    let note = format!(
        "Reused token {id} that an interrupted reconcile created but never delivered; its value was regenerated"
    );
    ctx.event(tok, EventType::Normal, "Adopted", note).await;
}

/// Revokes active tokens of this `ApiToken` other than `keep` and those in
/// `spare` (the recorded one, those still in their grace period): left-overs
/// of an interrupted reconcile.
async fn sweep_orphans(
    tok: &ApiToken,
    ctx: &Context,
    backend: &Backend,
    keep: &str,
    spare: &[&str],
) {
    let listed = owned_tokens(tok, backend).await;
    revoke_leftovers(tok, ctx, backend, listed, keep, spare).await;
}

/// Revokes the tokens of `listed` (this `ApiToken`'s active tokens, or the
/// failure to list them) other than `keep` and those in `spare`.
async fn revoke_leftovers(
    tok: &ApiToken,
    ctx: &Context,
    backend: &Backend,
    listed: Result<Vec<Token>>,
    keep: &str,
    spare: &[&str],
) {
    let tokens = match listed {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "listing old tokens to revoke");
            return;
        }
    };
    for t in tokens
        .into_iter()
        .filter(|t| t.id != keep && !spare.contains(&t.id.as_str()))
    {
        match backend.client.revoke_token(&t.id).await {
            Ok(_) => {
                ctx.event(
                    tok,
                    EventType::Normal,
                    "Revoked",
                    format!("Revoked left-over token {}", t.id),
                )
                .await
            }
            Err(e) => tracing::warn!(token = %t.id, error = %e, "revoking an old token"),
        }
    }
}

/// Writes the Secret by server-side apply (fields no longer rendered go away).
async fn write_secret(
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
/// Writes the status unless it is unchanged; returns the `ApiToken`'s
/// resourceVersion afterwards.
async fn write_status(
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
    Ok(written.resource_version())
}

/// Rolls the workloads named in `spec.restartTargets` (like `kubectl rollout restart`).
///
/// The annotation's value is the time the new value was issued, not the time
/// of the patch: patching again for the same value (a retried reconcile, or
/// several `ApiToken`s rotated together) changes nothing, so each value
/// restarts each workload at most once.
async fn restart_targets(tok: &ApiToken, ctx: &Context, issued: &Token) {
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

/// Cleanup: revoke the token (or keep it), never holding the deletion forever.
pub async fn cleanup(tok: &ApiToken, ctx: &Context) -> Result<Action> {
    ctx.forget_written(tok);
    ctx.metrics
        .set_expiry(&tok.namespace().unwrap_or_default(), &tok.name_any(), None);
    let status = tok.status.clone().unwrap_or_default();
    if tok.spec.deletion_policy == DeletionPolicy::Revoke {
        // Replaced tokens in their grace period go with the ApiToken (best effort).
        for p in &status.pending_revocations {
            if let Some(loc) = BackendLocation::parse(&p.backend)
                && let Err(e) = revoke_one(tok, ctx, &loc, &p.token_id).await
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
    let note = revoke_one(tok, ctx, loc, id).await?;
    let backend = ctx.backends.resolve_fresh(&ctx.client, loc).await?;
    sweep_orphans(tok, ctx, &backend, id, &[]).await;
    Ok(note)
}

/// Revokes token `id` on the backend at `loc` if it carries this `ApiToken`'s
/// ownership labels; says what happened.
async fn revoke_one(
    tok: &ApiToken,
    ctx: &Context,
    loc: &BackendLocation,
    id: &str,
) -> Result<String> {
    let backend = ctx.backends.resolve_fresh(&ctx.client, loc).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn resyncs_spread_over_the_last_tenth_of_the_period() {
        let period = Duration::from_secs(600);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let uid = format!("3f2a9c1e-0000-4000-8000-{i:012}");
            let d = resync_after(period, &uid);
            assert!(d <= period && d >= period.mul_f64(0.9), "{d:?} for {uid}");
            assert_eq!(d, resync_after(period, &uid), "stable for one uid");
            seen.insert(d.as_secs());
        }
        assert!(seen.len() > 20, "not spread: {seen:?}");
    }

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
