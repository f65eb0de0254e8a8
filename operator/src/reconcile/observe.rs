//! The observe step: the Secret (from the controller's watch cache), and the
//! recorded token as the backend shows it — or as this process last saw it,
//! when only our own writes changed the `ApiToken` since (see [`super::memory`]).
//!
//! An interrupted reconcile that delivered a token but never recorded it is
//! noticed here: the Secret is the only record of it, and it is adopted.

use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use tokenops_client::TokenStatus;

use crate::backend::Backend;
use crate::controller::Context;
use crate::crd::{ApiToken, ApiTokenStatus, PendingRevocation};
use crate::decide::{self, Desired, Recorded, SecretState, TokenState};
use crate::secret;
use crate::{Error, Result};

use super::{issue, revoke};

/// The controller's watch caches that a reconcile reads instead of the API server.
#[derive(Clone)]
pub struct Caches {
    /// Secrets labelled as written by the operator, whole.
    pub owned_secrets: Store<Secret>,
    /// The metadata of every Secret in the watched namespaces (the watch
    /// that also wakes `ApiToken`s when their backend's credentials change).
    pub secret_metadata: Store<PartialObjectMeta<Secret>>,
}

impl Caches {
    /// Waits until both caches hold a complete list (once, after a start):
    /// an empty cache would look like deleted Secrets.
    ///
    /// Checked by polling rather than by awaiting `Store::wait_until_ready`:
    /// that future wakes only the last of several concurrent waiters (it sits
    /// on a oneshot channel), which left all but one of the reconciles started
    /// before the caches were ready waiting for ever.
    pub async fn ready(&self) -> Result<()> {
        use futures::FutureExt;
        loop {
            let owned = self.owned_secrets.wait_until_ready().now_or_never();
            let names = self.secret_metadata.wait_until_ready().now_or_never();
            match (owned, names) {
                (Some(Ok(())), Some(Ok(()))) => return Ok(()),
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    return Err(Error::MissingField("a synced Secret cache"));
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    /// Our Secret `name` in `tok`'s namespace, as the cache has it.
    pub fn owned_secret(&self, tok: &ApiToken, name: &str) -> Option<Secret> {
        let key = ObjectRef::new(name).within(&tok.namespace().unwrap_or_default());
        self.owned_secrets.get(&key).map(|s| (*s).clone())
    }

    /// Whether any Secret `name` exists in `tok`'s namespace, as the cache has it.
    fn secret_exists(&self, tok: &ApiToken, name: &str) -> bool {
        let key = ObjectRef::new(name).within(&tok.namespace().unwrap_or_default());
        self.secret_metadata.get(&key).is_some()
    }
}

/// Secret `name` of `tok`: from the cache, unless the cache cannot be trusted
/// — it is not at the version we last wrote, or a Secret of that name exists
/// that is not ours (a conflict to judge on its full content) — then read.
async fn secret(
    tok: &ApiToken,
    ctx: &Context,
    caches: &Caches,
    name: &str,
) -> Result<Option<Secret>> {
    let cached = caches.owned_secret(tok, name);
    let trusted = match (&cached, ctx.memory.secret_version(tok, name)) {
        (Some(s), Some(written)) => s.resource_version().as_ref() == Some(&written),
        (Some(_), None) => true,
        // Written by us a moment ago, and not in the cache yet (or deleted since).
        (None, Some(_)) => false,
        (None, None) => !caches.secret_exists(tok, name),
    };
    if trusted {
        return Ok(cached);
    }
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &tok.namespace().unwrap_or_default());
    let read = api.get_opt(name).await?;
    ctx.memory
        .saw_secret(tok, name, read.as_ref().and_then(|s| s.resource_version()));
    Ok(read)
}

/// What the observe step found.
pub struct Observed {
    /// The status as the reconcile found it.
    pub prev: ApiTokenStatus,
    /// What the status records (after any adoption).
    pub recorded: Recorded,
    /// Replaced tokens waiting for the end of their grace period.
    pub pending: Vec<PendingRevocation>,
    /// The Secret (or, after a rename, the old one holding the intact value).
    pub secret: Option<Secret>,
    pub secret_state: SecretState,
    /// The Secret name the status records, when `spec.secretName` changed since.
    pub old_secret_name: Option<String>,
    /// The recorded token on the backend.
    pub token: TokenState,
    /// When the token was last seen as `token` shows it.
    pub seen: Instant,
}

/// Observes `tok`'s Secret and token (see the module documentation).
pub async fn observe(
    tok: &ApiToken,
    ctx: &Context,
    caches: &Caches,
    backend: &Backend,
    desired: &Desired,
) -> Result<Observed> {
    caches.ready().await?;
    let prev = tok.status.clone().unwrap_or_default();
    let mut recorded = Recorded {
        token_id: prev.token_id.clone(),
        backend: prev.backend.clone(),
        last_rotate_request: prev.last_rotate_request.clone(),
    };
    let mut pending = prev.pending_revocations.clone();
    let mut found = secret(tok, ctx, caches, &tok.secret_name()).await?;
    // A reconcile that stopped after writing the Secret and before the status
    // left the Secret as the only record of the current token: adopt it.
    if let Some(adopted) = adopt_from_secret(tok, ctx, backend, found.as_ref(), &recorded).await? {
        let note = format!(
            "Adopted token {adopted} from Secret {}: an earlier reconcile delivered it but did not record it",
            tok.secret_name()
        );
        if let Some(old) = recorded.token_id.replace(adopted.clone()) {
            revoke::schedule(&mut pending, &old, &backend.id, desired);
        }
        recorded.backend = Some(backend.id.clone());
        ctx.event(tok, EventType::Normal, "Adopted", note).await;
        // The interrupted reconcile may not have got to its clean-up.
        let spare: Vec<&str> = pending.iter().map(|p| p.token_id.as_str()).collect();
        issue::sweep_orphans(tok, ctx, backend, &adopted, &spare).await;
    }
    let mut secret_state = secret::observe(
        found.as_ref(),
        tok,
        recorded.token_id.as_deref(),
        &ctx.hasher,
    );
    // A renamed Secret: carry the intact value over instead of rotating.
    let old_secret_name = prev.secret_name.clone().filter(|n| *n != tok.secret_name());
    if secret_state == SecretState::Absent
        && let Some(old) = &old_secret_name
        && let Some(old_secret) = secret(tok, ctx, caches, old).await?
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
    let mut seen = Instant::now();
    let token = match (&recorded.token_id, same_backend) {
        (Some(id), true) => match ctx
            .memory
            .known_token(tok, ctx.resync_period / 2)
            .filter(|(t, _)| t.id == *id)
        {
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
    Ok(Observed {
        prev,
        recorded,
        pending,
        secret: found,
        secret_state,
        old_secret_name,
        token,
        seen,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_caches_goes_on_once_they_are_ready() {
        let (owned_secrets, mut owned) = reflector::store::<Secret>();
        let (secret_metadata, mut names) = reflector::store::<PartialObjectMeta<Secret>>();
        let caches = Caches {
            owned_secrets,
            secret_metadata,
        };
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let caches = caches.clone();
                tokio::spawn(async move { caches.ready().await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for event in [watcher::Event::Init, watcher::Event::InitDone] {
            owned.apply_watcher_event(&event);
        }
        for event in [watcher::Event::Init, watcher::Event::InitDone] {
            names.apply_watcher_event(&event);
        }
        let all = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::future::join_all(waiting),
        )
        .await
        .expect("every waiter goes on, not only the last one");
        assert!(all.into_iter().all(|r| matches!(r, Ok(Ok(())))));
    }
}
