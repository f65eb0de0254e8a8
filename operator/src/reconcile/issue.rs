//! The issue step: a new token for the `ApiToken`, delivered into its Secret,
//! safe to repeat after an interruption at any point.
//!
//! The create carries an idempotency key ([`issue_key`]), so a repeated attempt
//! gets the same token back with a fresh value. When the key cannot be used,
//! the `ApiToken`'s tokens are listed and an undelivered one is reused. After
//! any sign of an interrupted attempt, the tokens it left behind are revoked
//! (the orphan sweep).

use chrono::Utc;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tokenops_client::secrecy::ExposeSecret;
use tokenops_client::{CreateTokenRequest, Labels, Token, TokenStatus, codes};

use crate::backend::Backend;
use crate::controller::Context;
use crate::crd::{ApiToken, PendingRevocation};
use crate::decide::{self, Desired};
use crate::{
    LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE, LABEL_OWNER_UID, MANAGED_BY, MANAGED_BY_VALUE, Result,
};

use super::deliver;

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
pub async fn issue(
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
    deliver::write_secret(
        tok,
        ctx,
        deliver::held(&created.token),
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
pub async fn sweep_orphans(
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
