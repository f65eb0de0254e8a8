//! The `ApiToken` controller: the operator's [`Context`], and the watches that
//! wake a reconcile ([`crate::reconcile`]) — the `ApiToken`s, the Secrets they
//! own, their backends and the backends' credentials Secrets. The owned
//! Secrets and the metadata of every Secret are also kept as caches that the
//! reconcile reads instead of the API server.
//!
//! # One reconcile per new `ApiToken`
//!
//! The first reconcile of a new `ApiToken` writes three objects (the finalizer,
//! the Secret, the status), and each write comes back as a watch event. That
//! reconcile has already acted on what those events bring, so they are
//! dropped before they wake the `ApiToken` again: an `ApiToken` at a
//! resourceVersion our own finalizer patch or status write produced, or an
//! owned Secret at the resourceVersion our own apply produced, is not a
//! trigger ([`crate::reconcile::memory`] remembers those versions). Only
//! watch updates are dropped, never the objects of a re-list (after a watch
//! restart a change by someone else may hide behind our newer version) nor a
//! deletion. An event that arrives before the reconcile has recorded its write
//! still wakes the `ApiToken`; that reconcile finds nothing to do and sends
//! no request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use crate::backend::{self, BackendLocation};
use crate::crd::{ApiToken, BackendKind, ClusterTokenBackend, TokenBackend};
use crate::metrics::Metrics;
use crate::reconcile::{self, Caches, Reconciler, memory::Memory};
use crate::secret::ValueHasher;
use crate::{Error, FIELD_MANAGER, K8S_MANAGED_BY, MANAGED_BY_VALUE};

/// Shared state of every reconcile.
pub struct Context {
    /// The Kubernetes client; every request it sends is counted (see
    /// [`crate::kube_requests`]).
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
    /// What this process last wrote for each `ApiToken` (see [`crate::reconcile::memory`]).
    pub memory: Memory,
    failures: Mutex<HashMap<String, u32>>,
}

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
            client: crate::kube_requests::counted(client, metrics.clone()),
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
            memory: Memory::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Publishes an Event about `tok` (a failure to publish is only logged).
    pub async fn event(&self, tok: &ApiToken, type_: EventType, reason: &str, note: String) {
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

    /// Counts a failed reconcile of `tok`; returns its back-off.
    pub fn failed(&self, tok: &ApiToken, err: &Error) -> Action {
        self.metrics.failed("ApiToken", err.metric_label());
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(Context::failure_key(tok)).or_insert(0);
        let delay = self.backoff.delay(*n);
        *n = n.saturating_add(1);
        tracing::warn!(apitoken = %Context::failure_key(tok), error = %err, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }

    /// Ends `tok`'s back-off after a successful reconcile.
    pub fn forget_failures(&self, tok: &ApiToken) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Context::failure_key(tok));
    }

    /// `namespace/name`, for logs and the back-off.
    pub fn failure_key(tok: &ApiToken) -> String {
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
    // The ApiTokens, without the updates our own writes made (see above).
    let (token_store, token_writer) = reflector::store::<ApiToken>();
    let token_stream = {
        let ctx = ctx.clone();
        watcher::watcher(tokens, watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(token_writer)
            .filter_map(move |event| {
                let trigger = match event {
                    Ok(watcher::Event::Apply(t)) if ctx.memory.made(&t) => None,
                    Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) => Some(Ok(t)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(trigger)
            })
    };
    let controller = Controller::for_stream(token_stream, token_store)
        .with_config(ControllerConfig::default().concurrency(ctx.concurrency));
    // The Secrets we own, whole, kept as a cache for the reconcile (managed
    // fields dropped: nothing reads them); our own applies wake nothing.
    let (owned_secrets, owned_writer) = reflector::store::<Secret>();
    let owned_stream = {
        let ctx = ctx.clone();
        watcher::watcher(secrets, owned)
            .default_backoff()
            .modify(|s| s.managed_fields_mut().clear())
            .reflect(owned_writer)
            .filter_map(move |event| {
                let ours = |s: &Secret| {
                    s.owner_references()
                        .iter()
                        .any(|o| o.controller == Some(true) && ctx.memory.wrote_secret(&o.uid, s))
                };
                let trigger = match event {
                    Ok(watcher::Event::Apply(s)) if ours(&s) => None,
                    Ok(
                        watcher::Event::Apply(s)
                        | watcher::Event::InitApply(s)
                        | watcher::Event::Delete(s),
                    ) => Some(Ok(s)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(trigger)
            })
    };
    // Which Secrets exist, by name only (to notice a Secret of an ApiToken's
    // name that is not ours); the values of Secrets are not read here.
    let (secret_metadata, metadata_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let metadata_stream = watcher::watcher(credentials, watcher::Config::default())
        .default_backoff()
        .modify(|s| {
            s.metadata = kube::api::ObjectMeta {
                name: s.metadata.name.take(),
                namespace: s.metadata.namespace.take(),
                ..Default::default()
            }
        })
        .reflect(metadata_writer)
        .touched_objects();
    let reconciler = Arc::new(Reconciler {
        ctx: ctx.clone(),
        caches: Caches {
            owned_secrets,
            secret_metadata,
        },
    });
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
        .owns_stream(owned_stream)
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
        .watches_stream(metadata_stream, move |s: PartialObjectMeta<Secret>| {
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
        })
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, reconciler)
        .for_each(|res| async move {
            match res {
                Ok((obj, action)) => tracing::debug!(object = %obj, ?action, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
