//! The token operations behind both front doors of the server — the JSON API
//! (`api`) and the web dashboard (`ui`): validate the input, ask
//! [`authority`](crate::authority) whether the caller may, write, tell the
//! caches, audit. Each function takes the verified caller and wire types, and
//! knows nothing of HTTP, so no rule exists twice.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokenops_types::{
    AuditEvent, BulkRevokeRequest, BulkRevokeResponse, CreateTokenRequest, LABEL_MANAGED_BY,
    Labels, Page, PolicyDocument, RegenerateRequest, RevokeRequest, Token, TokenStatus,
    TokenWithSecret, UpdateTokenRequest, codes, is_ownership_label,
};

use crate::authority::{self, Action, Target};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{
    AuditFilter, Cursor, Insert, ListFilter, NewAudit, Regeneration, TokenRow, now_us, to_time,
};
use crate::validate;
use crate::verify::Credential;

/// Largest page of a list.
pub const MAX_PAGE: u32 = 500;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;
/// Most ids one bulk revoke takes.
pub const MAX_BULK_IDS: usize = 1000;
/// Most tokens one bulk revoke by selector considers.
pub const MAX_BULK_SELECTED: u32 = 10_000;

/// A new public token id, `tok_` and 16 random base62 characters.
pub fn new_token_id() -> String {
    let mut id = String::from("tok_");
    tokenops_types::secret::push_random_base62(&mut id, 16);
    id
}

/// The wire form of a stored token at time `now`.
pub fn to_wire(row: &TokenRow, now: i64, pending_last_used: Option<i64>) -> Token {
    let status = if row.revoked_at.is_some() {
        TokenStatus::Revoked
    } else if row.expires_at.is_some_and(|e| now >= e) {
        TokenStatus::Expired
    } else {
        TokenStatus::Active
    };
    let last_used = match (row.last_used_at, pending_last_used) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Token {
        id: row.id.clone(),
        project: row.project.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        role: row.role.clone(),
        scopes: row.scopes.clone(),
        resources: row.resources.clone(),
        expires_at: row.expires_at.map(to_time),
        status,
        masked: row.masked.clone(),
        labels: row.labels.clone(),
        created_at: to_time(row.created_at),
        updated_at: to_time(row.updated_at),
        last_used_at: last_used.map(to_time),
        regenerated_at: row.regenerated_at.map(to_time),
        revoked_at: row.revoked_at.map(to_time),
        previous_valid_until: row.prev_valid_until.filter(|u| *u > now).map(to_time),
        generation: u64::try_from(row.generation).unwrap_or(0),
    }
}

impl AppState {
    /// The wire form of a stored token now, with its pending last-used time.
    pub fn wire(&self, row: &TokenRow) -> Token {
        to_wire(row, now_us(), self.verifier.pending_last_used(&row.id))
    }
}

/// Filters and page of a token list.
#[derive(Debug, Clone, Default)]
pub struct TokenQuery {
    /// One state; without it, active and expired tokens (revoked ones too
    /// with `include_revoked`).
    pub status: Option<TokenStatus>,
    pub include_revoked: bool,
    pub name: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Another project than the caller's (organisation tokens); organisation
    /// tokens without it list every project.
    pub project: Option<String>,
    /// Only active tokens that expire within this time from now.
    pub expiring_within: Option<Duration>,
    /// Page size, 1–[`MAX_PAGE`]; 0 means [`DEFAULT_PAGE`].
    pub limit: u32,
    pub page_token: Option<String>,
}

/// Filters and page of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub token_id: Option<String>,
    /// Events caused by this token id.
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Another project than the caller's (organisation tokens).
    pub project: Option<String>,
    /// Page size, 1–[`MAX_PAGE`]; 0 means [`DEFAULT_PAGE`].
    pub limit: u32,
    pub page_token: Option<String>,
}

fn encode_cursor(at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_cursor(token: &str) -> ApiResult<Cursor> {
    let bad = || {
        ApiError::field(
            codes::INVALID_FIELD,
            "page_token",
            "page_token is not one this server issued",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    if id.contains('\0') {
        return Err(bad());
    }
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

fn page_size(limit: u32) -> ApiResult<u32> {
    match limit {
        0 => Ok(DEFAULT_PAGE),
        n if n <= MAX_PAGE => Ok(n),
        _ => Err(ApiError::field(
            codes::INVALID_FIELD,
            "limit",
            format!("limit must be a whole number from 1 to {MAX_PAGE}"),
        )),
    }
}

/// The project a list or audit query covers: the caller's own, one the
/// caller names (only organisation tokens may name another), or every
/// project (`None`, organisation tokens only).
fn project_scope(caller: &Credential, asked: Option<&str>) -> ApiResult<Option<String>> {
    match asked {
        Some(p) => {
            validate::project(p)?;
            if authority::sees_project(caller, p) {
                Ok(Some(p.to_string()))
            } else {
                Err(ApiError::escalation(
                    "project",
                    "this token can only see its own project",
                ))
            }
        }
        None if authority::is_organisation(caller) => Ok(None),
        None => Ok(Some(caller.project.to_string())),
    }
}

fn audit(
    caller: &Credential,
    project: &str,
    action: &'static str,
    token_id: Option<&str>,
    detail: serde_json::Value,
) -> NewAudit {
    NewAudit {
        project: project.to_string(),
        actor: caller.id.to_string(),
        action,
        token_id: token_id.map(str::to_string),
        detail,
    }
}

/// The authority check, with a refusal audited (the caller, the action, the
/// target and the rule — never a value) and counted.
async fn authorise(
    state: &AppState,
    caller: &Credential,
    action: Action,
    target: &Target<'_>,
) -> ApiResult<()> {
    match authority::check(&state.policy, caller, action, target) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            record_refusal(state, caller, action, target.id, target.project, &refusal).await;
            Err(refusal)
        }
    }
}

async fn record_refusal(
    state: &AppState,
    caller: &Credential,
    action: Action,
    token_id: Option<&str>,
    project: &str,
    refusal: &ApiError,
) {
    state.metrics.refused(action.verb());
    let detail = serde_json::json!({ "code": refusal.code, "field": refusal.field });
    let event = audit(caller, project, denied_action(action), token_id, detail);
    if let Err(e) = state.store.audit(event).await {
        tracing::warn!(error = %e, "could not audit a refused action");
    }
}

fn denied_action(action: Action) -> &'static str {
    match action {
        Action::Read => "token.read.denied",
        Action::Create => "token.create.denied",
        Action::Update => "token.update.denied",
        Action::Regenerate => "token.regenerate.denied",
        Action::Revoke => "token.revoke.denied",
        Action::Delete => "token.delete.denied",
    }
}

/// Whether the caller may do `action` to `token` (the dashboard uses it to
/// decide which buttons to offer; the action itself is checked again).
pub fn may(state: &AppState, caller: &Credential, action: Action, token: &Token) -> bool {
    let target = Target {
        id: Some(&token.id),
        project: &token.project,
        role: token.role.as_deref(),
        scopes: &token.scopes,
        resources: &token.resources,
    };
    authority::check(&state.policy, caller, action, &target).is_ok()
}

/// The token `id` if the caller may see it; `404` otherwise, so a token of
/// another project is indistinguishable from none.
async fn load_visible(state: &AppState, caller: &Credential, id: &str) -> ApiResult<TokenRow> {
    if !validate::is_token_id(id) {
        return Err(ApiError::not_found("token"));
    }
    match state.store.get_by_id(id).await? {
        Some(row) if authority::sees_project(caller, &row.project) => Ok(row),
        _ => Err(ApiError::not_found("token")),
    }
}

/// An idempotency digest bound to the calling token: `<caller id>:<body hash>`.
fn bound_digest<T: serde::Serialize>(caller: &Credential, body: &T) -> String {
    let hash = hex::encode(Sha256::digest(serde_json::to_vec(body).unwrap_or_default()));
    format!("{}:{hash}", caller.id)
}

/// Compares a stored idempotency digest with a replay's: another caller is
/// `409`, the same caller with another body `422`.
fn check_replay(stored: Option<&str>, replay: &str) -> ApiResult<()> {
    let caller_of = |d: &str| d.split_once(':').map(|(c, _)| c.to_string());
    if stored.and_then(caller_of) != caller_of(replay) {
        let mut e = ApiError::conflict(
            codes::IDEMPOTENCY_KEY_REUSED,
            "this Idempotency-Key was used by another token; choose a new key",
        );
        e.field = Some("Idempotency-Key".to_string());
        return Err(e);
    }
    if stored != Some(replay) {
        return Err(ApiError::field(
            codes::IDEMPOTENCY_KEY_REUSED,
            "Idempotency-Key",
            "this Idempotency-Key was already used for a different request",
        ));
    }
    Ok(())
}

/// Rejects a label change that touches ownership labels (`managed-by`,
/// `tokenops.dev/…`) of a token that already has some: they are set once.
fn check_ownership_labels(old: &Labels, new: &Labels) -> ApiResult<()> {
    let owned = |l: &Labels| -> Vec<(String, String)> {
        l.iter()
            .filter(|(k, _)| is_ownership_label(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let before = owned(old);
    if !before.is_empty() && before != owned(new) {
        return Err(ApiError::field(
            codes::IMMUTABLE_FIELD,
            "labels",
            "ownership labels (managed-by, tokenops.dev/…) cannot change once set; keep them as they are",
        ));
    }
    Ok(())
}

/// `POST /v1/tokens`: create a token; the value is in the answer and never again.
pub async fn create_token(
    state: &AppState,
    caller: &Credential,
    req: CreateTokenRequest,
    idempotency_key: Option<String>,
) -> ApiResult<TokenWithSecret> {
    let policy = &state.policy;
    validate::name("name", &req.name)?;
    if let Some(d) = &req.description {
        validate::description(d)?;
    }
    let project = match &req.project {
        Some(p) => p.clone(),
        None if authority::is_organisation(caller) => {
            return Err(ApiError::field(
                codes::REQUIRED,
                "project",
                "an organisation token must name the project of the token it creates",
            ));
        }
        None => caller.project.to_string(),
    };
    validate::project_of_new_token(&project, authority::is_organisation(caller))?;
    if let Some(r) = &req.role {
        validate::role(policy, r)?;
    }
    let scopes = req.scopes.clone().unwrap_or_default();
    validate::scopes(&scopes)?;
    if req.role.is_none() && scopes.is_empty() {
        return Err(ApiError::field(
            codes::REQUIRED,
            "role",
            "give a role or at least one scope",
        ));
    }
    let resources = req.resources.clone().unwrap_or_default();
    validate::resources(policy, &resources)?;
    let labels = req.labels.clone().unwrap_or_default();
    validate::labels(&labels)?;
    let now = Utc::now();
    let expiry = validate::expiry(policy, now, req.lifetime.as_deref(), req.expires_at, None)?;
    let target = Target {
        id: None,
        project: &project,
        role: req.role.as_deref(),
        scopes: &scopes,
        resources: &resources,
    };
    authorise(state, caller, Action::Create, &target).await?;
    let expires_at = expiry.map(|(at, _)| at.timestamp_micros());
    if let Err(refusal) = authority::check_expiry(caller, None, expires_at) {
        record_refusal(state, caller, Action::Create, None, &project, &refusal).await;
        return Err(refusal);
    }

    let value = tokenops_types::secret::generate(&policy.token_prefix);
    let now_us = now.timestamp_micros();
    let row = TokenRow {
        id: new_token_id(),
        project,
        name: req.name.clone(),
        description: req.description.clone().filter(|d| !d.is_empty()),
        role: req.role.clone(),
        scopes,
        resources,
        labels,
        secret_hash: hex::encode(state.verifier.hash(&value)),
        masked: tokenops_types::secret::mask(&value),
        prev_hash: None,
        prev_masked: None,
        prev_valid_until: None,
        lifetime_us: expiry.map(|(_, d)| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        expires_at,
        revoked_at: None,
        created_at: now_us,
        updated_at: now_us,
        last_used_at: None,
        regenerated_at: None,
        generation: 0,
        create_digest: idempotency_key.as_ref().map(|_| bound_digest(caller, &req)),
        create_key: idempotency_key,
        regen_key: None,
        regen_digest: None,
    };
    let detail = serde_json::json!({
        "name": row.name, "role": row.role, "scopes": row.scopes,
        "managed_by": row.labels.get(LABEL_MANAGED_BY),
    });
    let event = audit(caller, &row.project, "token.create", Some(&row.id), detail);
    match state.store.insert_token(&row, event).await? {
        Insert::Created(created) => {
            // Nothing is cached about a new token; values remembered as
            // unknown here are forgotten. Other replicas need no notice: a
            // fresh random value cannot have been presented before it existed.
            state.verifier.forget_unknown();
            state.metrics.changed("create", 1);
            Ok(TokenWithSecret {
                token: state.wire(&created),
                secret: value,
            })
        }
        Insert::KeyExists(existing) => {
            check_replay(
                existing.create_digest.as_deref(),
                row.create_digest.as_deref().unwrap_or_default(),
            )?;
            // A retry of a create whose answer was lost: nobody holds the first
            // value, so issue a fresh one for the same token.
            let regen = Regeneration {
                new_hash: row.secret_hash.clone(),
                masked: row.masked.clone(),
                expires_at: existing.expires_at,
                lifetime_us: existing.lifetime_us,
                grace_until: None,
                key: None,
                digest: None,
            };
            let event = audit(
                caller,
                &existing.project,
                "token.create.replayed",
                Some(&existing.id),
                serde_json::json!({}),
            );
            let Some(updated) = state
                .store
                .regenerate(&existing.project, &existing.id, &regen, true, event)
                .await?
            else {
                return Err(ApiError::conflict(
                    codes::TOKEN_REVOKED,
                    "the token created with this Idempotency-Key has since been revoked or deleted",
                ));
            };
            state.changed(std::slice::from_ref(&updated.id)).await;
            Ok(TokenWithSecret {
                token: state.wire(&updated),
                secret: value,
            })
        }
    }
}

/// `GET /v1/tokens`: one page of tokens, masked.
pub async fn list_tokens(
    state: &AppState,
    caller: &Credential,
    q: &TokenQuery,
) -> ApiResult<Page<Token>> {
    authority::require(caller, Action::Read.permission())?;
    let project = project_scope(caller, q.project.as_deref())?;
    if let Some(n) = &q.name {
        validate::filter_text("name", n)?;
    }
    let limit = page_size(q.limit)?;
    let after = q.page_token.as_deref().map(decode_cursor).transpose()?;
    let now = now_us();
    let expiring_before = q
        .expiring_within
        .map(|d| now.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    let filter = ListFilter {
        status: q.status,
        include_revoked: q.include_revoked,
        name: q.name.clone(),
        labels: q.labels.clone(),
        expiring_before,
    };
    let mut rows = state
        .store
        .list(project.as_deref(), &filter, after.as_ref(), limit + 1, now)
        .await?;
    let next_page_token = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(r.created_at, &r.id))
    } else {
        None
    };
    Ok(Page {
        items: rows.iter().map(|r| state.wire(r)).collect(),
        next_page_token,
    })
}

/// `GET /v1/tokens/{id}`.
pub async fn get_token(state: &AppState, caller: &Credential, id: &str) -> ApiResult<Token> {
    authority::require(caller, Action::Read.permission())?;
    let row = load_visible(state, caller, id).await?;
    authority::check(&state.policy, caller, Action::Read, &Target::of(&row))?;
    Ok(state.wire(&row))
}

/// `PATCH /v1/tokens/{id}`: name, description and labels; the rest is immutable.
pub async fn update_token(
    state: &AppState,
    caller: &Credential,
    id: &str,
    req: UpdateTokenRequest,
) -> ApiResult<Token> {
    for (field, present) in [
        ("role", req.role.is_some()),
        ("scopes", req.scopes.is_some()),
        ("resources", req.resources.is_some()),
        ("project", req.project.is_some()),
        ("expires_at", req.expires_at.is_some()),
        ("lifetime", req.lifetime.is_some()),
    ] {
        if present {
            let hint = if matches!(field, "expires_at" | "lifetime") {
                "regenerate the token to give it a new expiry"
            } else {
                "permissions cannot change after creation: create a new token"
            };
            return Err(ApiError::field(
                codes::IMMUTABLE_FIELD,
                field,
                format!("{field} is immutable; {hint}"),
            ));
        }
    }
    if let Some(n) = &req.name {
        validate::name("name", n)?;
    }
    if let Some(d) = &req.description {
        validate::description(d)?;
    }
    if let Some(l) = &req.labels {
        validate::labels(l)?;
    }
    let row = load_visible(state, caller, id).await?;
    authorise(state, caller, Action::Update, &Target::of(&row)).await?;
    if let Some(l) = &req.labels {
        check_ownership_labels(&row.labels, l)?;
    }
    let description = req
        .description
        .as_deref()
        .map(|d| Some(d).filter(|d| !d.is_empty()));
    let changed: Vec<&str> = [
        ("name", req.name.is_some()),
        ("description", req.description.is_some()),
        ("labels", req.labels.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, p)| p.then_some(f))
    .collect();
    let event = audit(
        caller,
        &row.project,
        "token.update",
        Some(&row.id),
        serde_json::json!({ "fields": changed }),
    );
    let updated = state
        .store
        .update_meta(
            &row.project,
            &row.id,
            req.name.as_deref(),
            description,
            req.labels.as_ref(),
            event,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    state.changed(std::slice::from_ref(&updated.id)).await;
    state.metrics.changed("update", 1);
    Ok(state.wire(&updated))
}

/// `POST /v1/tokens/{id}/regenerate`: a new value and expiry for the same id.
pub async fn regenerate_token(
    state: &AppState,
    caller: &Credential,
    id: &str,
    req: RegenerateRequest,
    idempotency_key: Option<String>,
) -> ApiResult<TokenWithSecret> {
    let row = load_visible(state, caller, id).await?;
    if row.revoked_at.is_some() {
        return Err(ApiError::conflict(
            codes::TOKEN_REVOKED,
            "a revoked token cannot be regenerated",
        ));
    }
    // Regenerating hands out a working value: the caller must hold everything the token holds.
    authorise(state, caller, Action::Regenerate, &Target::of(&row)).await?;
    let now = Utc::now();
    let fallback = row
        .lifetime_us
        .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0)));
    let expiry = validate::expiry(
        &state.policy,
        now,
        req.lifetime.as_deref(),
        req.expires_at,
        fallback,
    )?;
    let expires_at = expiry.map(|(at, _)| at.timestamp_micros());
    if let Err(refusal) = authority::check_expiry(caller, Some(&row.id), expires_at) {
        record_refusal(
            state,
            caller,
            Action::Regenerate,
            Some(&row.id),
            &row.project,
            &refusal,
        )
        .await;
        return Err(refusal);
    }
    let grace = req
        .grace_period
        .as_deref()
        .map(|g| validate::duration("grace_period", g))
        .transpose()?;
    if let Some(g) = grace
        && g > state.policy.max_lifetime.0
    {
        return Err(ApiError::field(
            codes::LIFETIME_EXCEEDS_POLICY,
            "grace_period",
            "grace_period is longer than the maximum token lifetime",
        ));
    }
    let grace_until = grace.filter(|g| !g.is_zero()).map(|g| {
        now.timestamp_micros()
            .saturating_add(i64::try_from(g.as_micros()).unwrap_or(i64::MAX))
    });
    let digest = idempotency_key.as_ref().map(|_| bound_digest(caller, &req));
    let replay = match (&idempotency_key, &row.regen_key) {
        (Some(k), Some(prev)) if k == prev => {
            check_replay(
                row.regen_digest.as_deref(),
                digest.as_deref().unwrap_or_default(),
            )?;
            true
        }
        _ => false,
    };
    let value = tokenops_types::secret::generate(&state.policy.token_prefix);
    let regen = Regeneration {
        new_hash: hex::encode(state.verifier.hash(&value)),
        masked: tokenops_types::secret::mask(&value),
        expires_at,
        lifetime_us: expiry.map(|(_, d)| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        grace_until,
        key: idempotency_key,
        digest,
    };
    let action = if replay {
        "token.regenerate.replayed"
    } else {
        "token.regenerate"
    };
    let event = audit(
        caller,
        &row.project,
        action,
        Some(&row.id),
        serde_json::json!({ "grace_period": req.grace_period }),
    );
    let updated = state
        .store
        .regenerate(&row.project, &row.id, &regen, replay, event)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                codes::TOKEN_REVOKED,
                "the token was revoked or deleted meanwhile",
            )
        })?;
    state.changed(std::slice::from_ref(&updated.id)).await;
    state.metrics.changed("regenerate", 1);
    Ok(TokenWithSecret {
        token: state.wire(&updated),
        secret: value,
    })
}

/// `POST /v1/tokens/{id}/revoke`: now, or `after` a while (its expiry brought
/// forward). Revoking a revoked token is not an error.
pub async fn revoke_token(
    state: &AppState,
    caller: &Credential,
    id: &str,
    req: RevokeRequest,
) -> ApiResult<Token> {
    let after = req
        .after
        .as_deref()
        .map(|a| validate::duration("after", a))
        .transpose()?;
    if let Some(a) = after
        && a > state.policy.max_lifetime.0
    {
        return Err(ApiError::field(
            codes::LIFETIME_EXCEEDS_POLICY,
            "after",
            "after is longer than the maximum token lifetime",
        ));
    }
    let row = load_visible(state, caller, id).await?;
    authorise(state, caller, Action::Revoke, &Target::of(&row)).await?;
    let changed = match after.filter(|a| !a.is_zero()) {
        Some(a) => {
            let at = now_us().saturating_add(i64::try_from(a.as_micros()).unwrap_or(i64::MAX));
            let event = audit(
                caller,
                &row.project,
                "token.revoke.scheduled",
                Some(&row.id),
                serde_json::json!({ "after": req.after }),
            );
            state
                .store
                .expire_early(&row.project, &row.id, at, event)
                .await?
        }
        None => {
            let event = audit(
                caller,
                &row.project,
                "token.revoke",
                Some(&row.id),
                serde_json::json!({}),
            );
            state.store.revoke(&row.project, &row.id, event).await?
        }
    };
    let row = match changed {
        Some(r) => r,
        // Already revoked (or gone meanwhile): show it as it is.
        None => load_visible(state, caller, id).await?,
    };
    state.changed(std::slice::from_ref(&row.id)).await;
    state.metrics.changed("revoke", 1);
    Ok(state.wire(&row))
}

/// `DELETE /v1/tokens/{id}`: for good (its audit events stay).
pub async fn delete_token(state: &AppState, caller: &Credential, id: &str) -> ApiResult<()> {
    let row = load_visible(state, caller, id).await?;
    authorise(state, caller, Action::Delete, &Target::of(&row)).await?;
    let event = audit(
        caller,
        &row.project,
        "token.delete",
        Some(&row.id),
        serde_json::json!({}),
    );
    if !state.store.delete(&row.project, &row.id, event).await? {
        return Err(ApiError::not_found("token"));
    }
    state.changed(std::slice::from_ref(&row.id)).await;
    state.metrics.changed("delete", 1);
    Ok(())
}

/// `POST /v1/tokens/revoke`: by ids or by label selector. Ids that name no
/// visible token are reported, tokens outside the caller's authority are
/// skipped (and the refusal audited), and a selector never revokes the caller.
pub async fn bulk_revoke(
    state: &AppState,
    caller: &Credential,
    req: BulkRevokeRequest,
) -> ApiResult<BulkRevokeResponse> {
    let mut outcome = BulkRevokeResponse::default();
    let candidates: Vec<TokenRow> = match (&req.ids, &req.selector) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                codes::MUTUALLY_EXCLUSIVE,
                "selector",
                "give either ids or selector, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::field(
                codes::REQUIRED,
                "ids",
                "give ids or a selector",
            ));
        }
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                return Err(ApiError::field(
                    codes::INVALID_FIELD,
                    "ids",
                    format!("give 1 to {MAX_BULK_IDS} ids"),
                ));
            }
            let mut wanted: Vec<&str> = Vec::with_capacity(ids.len());
            for id in ids {
                if !validate::is_token_id(id) {
                    // Reported as not found, but never echoed: it may be a value pasted by mistake.
                    outcome.not_found.push(redacted_id(id));
                } else if !wanted.contains(&id.as_str()) {
                    wanted.push(id);
                }
            }
            let rows = state.store.find_by_ids(&wanted).await?;
            for id in &wanted {
                if !rows
                    .iter()
                    .any(|r| r.id == *id && authority::sees_project(caller, &r.project))
                {
                    outcome.not_found.push(id.to_string());
                }
            }
            rows.into_iter()
                .filter(|r| authority::sees_project(caller, &r.project))
                .collect()
        }
        (None, Some(selector)) => {
            authority::require(caller, Action::Revoke.permission())?;
            let labels = tokenops_types::parse_selector(selector)
                .map_err(|m| ApiError::field(codes::INVALID_SELECTOR, "selector", m))?;
            let project = project_scope(caller, None)?;
            let filter = ListFilter {
                status: Some(TokenStatus::Active),
                labels,
                ..ListFilter::default()
            };
            let rows = state
                .store
                .list(
                    project.as_deref(),
                    &filter,
                    None,
                    MAX_BULK_SELECTED,
                    now_us(),
                )
                .await?;
            let mut rest = Vec::with_capacity(rows.len());
            for r in rows {
                if r.id == *caller.id {
                    outcome.skipped.push(r.id);
                } else {
                    rest.push(r);
                }
            }
            rest
        }
    };
    let mut targets: Vec<(String, String)> = Vec::with_capacity(candidates.len());
    for row in &candidates {
        match authority::check(&state.policy, caller, Action::Revoke, &Target::of(row)) {
            Ok(()) => targets.push((row.id.clone(), row.project.clone())),
            Err(refusal) => {
                record_refusal(
                    state,
                    caller,
                    Action::Revoke,
                    Some(&row.id),
                    &row.project,
                    &refusal,
                )
                .await;
                outcome.skipped.push(row.id.clone());
            }
        }
    }
    let revoked = state
        .store
        .revoke_many(&targets, &caller.id, serde_json::json!({ "bulk": true }))
        .await?;
    state.changed(&revoked).await;
    state.metrics.changed("revoke", revoked.len() as u64);
    outcome.revoked = revoked.len() as u64;
    Ok(outcome)
}

/// How an id that is not a token id is reported back: its length only.
fn redacted_id(id: &str) -> String {
    format!("(not a token id: {} characters)", id.chars().count())
}

/// `GET /v1/audit`: who did what to which token, newest first.
pub async fn audit_log(
    state: &AppState,
    caller: &Credential,
    q: &AuditQuery,
) -> ApiResult<Page<AuditEvent>> {
    authority::require(caller, "audit:read")?;
    let project = project_scope(caller, q.project.as_deref())?;
    for (field, value) in [("token_id", &q.token_id), ("actor", &q.actor)] {
        if let Some(v) = value {
            validate::filter_text(field, v)?;
        }
    }
    let limit = page_size(q.limit)?;
    let after = q.page_token.as_deref().map(decode_cursor).transpose()?;
    let filter = AuditFilter {
        token_id: q.token_id.clone(),
        actor: q.actor.clone(),
        since: q.since.map(|t| t.timestamp_micros()),
    };
    let mut items = state
        .store
        .audit_list(project.as_deref(), &filter, after.as_ref(), limit + 1)
        .await?;
    let next_page_token = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items
            .last()
            .map(|e| encode_cursor(e.at.timestamp_micros(), &e.id))
    } else {
        None
    };
    Ok(Page {
        items,
        next_page_token,
    })
}

/// `GET /v1/whoami`: the calling token.
pub async fn whoami(state: &AppState, caller: &Credential) -> ApiResult<Token> {
    let row = state
        .store
        .get(&caller.project, &caller.id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token is not known"))?;
    Ok(state.wire(&row))
}

/// `GET /v1/policy`: what this server allows. Any valid token may read it.
pub fn policy(state: &AppState) -> PolicyDocument {
    state.policy.document()
}

/// Deletes tokens that ended longer ago than the policy's retention; their
/// audit events stay. Run periodically by the server.
pub async fn purge_ended(state: &AppState) -> anyhow::Result<u64> {
    let retention = i64::try_from(state.policy.retention.0.as_micros()).unwrap_or(i64::MAX);
    let before = now_us().saturating_sub(retention);
    let n = state.store.purge_ended(before).await?;
    if n > 0 {
        state.metrics.changed("purge", n);
        tracing::info!(tokens = n, "deleted tokens past their retention");
    }
    Ok(n)
}
