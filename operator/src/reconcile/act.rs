//! The act step: carries out what [`crate::decide`] chose — issue, replace,
//! rotate, edit in place, repair the Secret, or report why it is blocked —
//! with one Event that says what happened and why.

use kube::runtime::events::EventType;
use tokenops_client::Token;
use tokenops_client::secrecy::ExposeSecret;

use crate::backend::Backend;
use crate::controller::Context;
use crate::crd::{ApiToken, ConditionStatus};
use crate::decide::{
    Action as Step, BlockReason, Desired, IssueReason, ReplaceReason, RotateReason, TokenState,
};
use crate::secret;
use crate::{Error, Result};

use super::observe::{Caches, Observed};
use super::{deliver, issue, revoke, status};

/// What acting left.
pub enum Acted {
    /// The current token (as the action returned it, or as observed), if any.
    Current(Option<Box<Token>>),
    /// Blocked: the status says why; nothing else to do until the next look.
    Blocked,
}

/// Carries out `step`; scheduled revocations go into `observed.pending`.
pub async fn act(
    tok: &ApiToken,
    ctx: &Context,
    caches: &Caches,
    backend: &Backend,
    desired: &Desired,
    observed: &mut Observed,
    step: Step,
) -> Result<Acted> {
    let recorded_id = observed.recorded.token_id.clone();
    let current = match step {
        Step::Issue(reason) => {
            let t = issue::issue(
                tok,
                ctx,
                backend,
                desired,
                recorded_id.as_deref(),
                &observed.pending,
            )
            .await?;
            ctx.metrics.issued("issue", &format!("{reason:?}"));
            let note = format!("Issued token {} ({}), {}", t.id, t.masked, expiry_note(&t));
            ctx.event(tok, EventType::Normal, "Issued", note).await;
            if reason != IssueReason::New {
                deliver::restart_targets(tok, ctx, &t).await;
            }
            Some(t)
        }
        Step::Replace(reason) => {
            let t = issue::issue(
                tok,
                ctx,
                backend,
                desired,
                recorded_id.as_deref(),
                &observed.pending,
            )
            .await?;
            // The previous token keeps working for the grace period; the
            // revocation is recorded in the status so a restart keeps it.
            let old_backend = match reason {
                ReplaceReason::PermissionsChanged => Some(backend.id.clone()),
                ReplaceReason::BackendChanged => observed.prev.backend.clone(),
            };
            if let (Some(old), Some(at)) = (&recorded_id, &old_backend) {
                revoke::schedule(&mut observed.pending, old, at, desired);
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
                observed.prev.token_id.as_deref().unwrap_or("-"),
                t.id,
                t.masked,
                match reason {
                    ReplaceReason::PermissionsChanged =>
                        "role, scopes, resources or project changed",
                    ReplaceReason::BackendChanged => "the backend changed",
                }
            );
            ctx.event(tok, EventType::Normal, "Replaced", note).await;
            deliver::restart_targets(tok, ctx, &t).await;
            Some(t)
        }
        Step::Rotate(reason) => {
            let id = recorded_id.ok_or(Error::MissingField("status.tokenId"))?;
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
            deliver::write_secret(
                tok,
                ctx,
                deliver::held(&created.token),
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
            deliver::restart_targets(tok, ctx, &created.token).await;
            Some(created.token)
        }
        Step::EditInPlace(edit) => {
            let id = recorded_id.ok_or(Error::MissingField("status.tokenId"))?;
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
            let t = found_token(&observed.token).ok_or(Error::MissingField("status.tokenId"))?;
            let value = observed
                .secret
                .as_ref()
                .and_then(|s| secret::value(s, tok))
                .ok_or(Error::MissingField("Secret value"))?
                .to_vec();
            deliver::write_secret(tok, ctx, deliver::held(&t), &value).await?;
            if let Some(old) = &observed.old_secret_name {
                deliver::delete_old_secret(tok, ctx, caches, old).await;
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
                        recorded_id.as_deref().unwrap_or("-"),
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
            let mut blocked = observed.prev.clone();
            status::set_ready(
                &mut blocked,
                tok,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
            if blocked != observed.prev {
                ctx.event(tok, EventType::Warning, reason, message).await;
            }
            status::write(tok, ctx, &blocked).await?;
            return Ok(Acted::Blocked);
        }
        Step::Nothing => found_token(&observed.token),
    };
    Ok(Acted::Current(current.map(Box::new)))
}

fn found_token(token: &TokenState) -> Option<Token> {
    match token {
        TokenState::Found(t) => Some((**t).clone()),
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
