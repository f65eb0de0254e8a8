//! The v1 HTTP API: one handler per endpoint of DESIGN.md, each documented for
//! the generated OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use secret_util::new_secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokenops_types::{
    AuditEvent, BulkRevokeRequest, BulkRevokeResponse, CreateTokenRequest, LABEL_MANAGED_BY, Page,
    RegenerateRequest, Resources, Token, TokenStatus, TokenWithSecret, UpdateTokenRequest,
    VerifyCode, VerifyRequest, VerifyResponse, codes, permission,
};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::{Cursor, Insert, ListFilter, NewAudit, Regeneration, TokenRow, now_us, to_time};
use crate::validate;
use crate::verify::Checked;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
const MAX_BULK_IDS: usize = 1000;

mod secret_util {
    use tokenops_types::secret;

    /// A fresh value with its masked form.
    pub fn new_secret(prefix: &str) -> (String, String) {
        let value = secret::generate(prefix);
        let masked = secret::mask(&value);
        (value, masked)
    }
}

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
    fn wire(&self, row: &TokenRow) -> Token {
        to_wire(row, now_us(), self.verifier.pending_last_used(&row.id))
    }
}

fn audit(
    caller: &Caller,
    action: &'static str,
    token_id: Option<&str>,
    detail: serde_json::Value,
) -> NewAudit {
    NewAudit {
        project: caller.0.project.to_string(),
        actor: caller.0.id.to_string(),
        action,
        token_id: token_id.map(str::to_string),
        detail,
    }
}

fn digest<T: serde::Serialize>(value: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                ApiError::field(
                    codes::INVALID_FIELD,
                    "Idempotency-Key",
                    "the Idempotency-Key header must be ASCII",
                )
            })?;
            validate::idempotency_key(v)?;
            Ok(Some(v.to_string()))
        }
    }
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
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

fn page_limit(limit: Option<&str>) -> ApiResult<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                codes::INVALID_FIELD,
                "limit",
                format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            )),
        },
    }
}

/// Checks that `caller` may hand out a token with these permissions and resources.
fn check_no_escalation(
    state: &AppState,
    caller: &Caller,
    role: Option<&str>,
    scopes: &[String],
    resources: &Resources,
) -> ApiResult<()> {
    let wanted = state.policy.effective_permissions(role, scopes);
    let held = caller.0.permissions.iter().map(String::as_str);
    if let Some(p) = wanted
        .iter()
        .find(|p| !permission::covers_all(held.clone(), [p.as_str()]))
    {
        let field = if role.is_some_and(|r| {
            state
                .policy
                .roles
                .get(r)
                .is_some_and(|perms| perms.contains(p))
        }) {
            "role"
        } else {
            "scopes"
        };
        return Err(ApiError::escalation(
            field,
            format!("cannot grant {p}: it is not within the calling token's permissions"),
        ));
    }
    if !caller.0.resources.covers(resources) {
        return Err(ApiError::escalation(
            "resources",
            "cannot grant resources outside the calling token's resources",
        ));
    }
    Ok(())
}

/// Create a token. The value is in the response and never again.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a replay returns the same token with a fresh value")),
    responses(
        (status = 201, description = "Created", body = TokenWithSecret),
        (status = 400, description = "Malformed JSON", body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unauthenticated", body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = tokenops_types::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<Response> {
    caller.require("tokens:create")?;
    let key = idempotency_key(&headers)?;
    let policy = &state.policy;
    validate::name("name", &req.name)?;
    if let Some(d) = &req.description {
        validate::description(d)?;
    }
    let project = req
        .project
        .clone()
        .unwrap_or_else(|| caller.0.project.to_string());
    validate::project(&project)?;
    if project != *caller.0.project {
        return Err(ApiError::escalation(
            "project",
            "tokens can only be created in the calling token's project",
        ));
    }
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
    check_no_escalation(&state, &caller, req.role.as_deref(), &scopes, &resources)?;

    let (value, masked) = new_secret(&policy.token_prefix);
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
        masked,
        prev_hash: None,
        prev_valid_until: None,
        lifetime_us: expiry.map(|(_, d)| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        expires_at: expiry.map(|(at, _)| at.timestamp_micros()),
        revoked_at: None,
        created_at: now_us,
        updated_at: now_us,
        last_used_at: None,
        regenerated_at: None,
        generation: 0,
        create_key: key.clone(),
        create_digest: key.as_ref().map(|_| digest(&req)),
        regen_key: None,
        regen_digest: None,
    };
    let detail = serde_json::json!({
        "name": row.name, "role": row.role, "scopes": row.scopes,
        "managed_by": row.labels.get(LABEL_MANAGED_BY),
    });
    match state
        .store
        .insert_token(&row, audit(&caller, "token.create", Some(&row.id), detail))
        .await?
    {
        Insert::Created(row) => {
            state.metrics.changed("create", 1);
            let body = TokenWithSecret {
                token: state.wire(&row),
                secret: value,
            };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Insert::KeyExists(existing) => {
            if existing.create_digest.as_deref() != row.create_digest.as_deref() {
                return Err(ApiError::field(
                    codes::IDEMPOTENCY_KEY_REUSED,
                    "Idempotency-Key",
                    "this Idempotency-Key was already used for a different request",
                ));
            }
            // A retry of a create whose response was lost: nobody holds the first
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
            let a = audit(
                &caller,
                "token.create.replayed",
                Some(&existing.id),
                serde_json::json!({}),
            );
            let Some(updated) = state
                .store
                .regenerate(&existing.project, &existing.id, &regen, true, a)
                .await?
            else {
                return Err(ApiError::conflict(
                    codes::TOKEN_REVOKED,
                    "the token created with this Idempotency-Key has since been revoked or deleted",
                ));
            };
            state.changed(std::slice::from_ref(&updated.id)).await;
            let body = TokenWithSecret {
                token: state.wire(&updated),
                secret: value,
            };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
    }
}

/// Query of `GET /v1/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active`, `expired` or `revoked`.
    #[param(value_type = Option<TokenStatus>)]
    pub status: Option<String>,
    /// Exact name.
    pub name: Option<String>,
    /// Label selector `k=v,k2=v2`.
    pub label: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// List the project's tokens, masked.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(ListParams),
    responses((status = 200, body = Page<Token>),
        (status = 401, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 422, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Token>>> {
    caller.require("tokens:read")?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<TokenStatus>()
                .map_err(|m| ApiError::field(codes::INVALID_FIELD, "status", m))
        })
        .transpose()?;
    let labels = q
        .label
        .as_deref()
        .map(|s| {
            tokenops_types::parse_selector(s)
                .map_err(|m| ApiError::field(codes::INVALID_SELECTOR, "label", m))
        })
        .transpose()?
        .unwrap_or_default();
    let limit = page_limit(q.limit.as_deref())?;
    let after = q.page_token.as_deref().map(decode_cursor).transpose()?;
    let filter = ListFilter {
        status,
        name: q.name,
        labels,
    };
    let now = now_us();
    let mut rows = state
        .store
        .list(&caller.0.project, &filter, after.as_ref(), limit + 1, now)
        .await?;
    let next_page_token = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(r.created_at, &r.id))
    } else {
        None
    };
    let items = rows.iter().map(|r| state.wire(r)).collect();
    Ok(Json(Page {
        items,
        next_page_token,
    }))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<TokenRow> {
    state
        .store
        .get(&caller.0.project, id)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))
}

/// One token, masked.
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token),
        (status = 401, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 404, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    caller.require("tokens:read")?;
    Ok(Json(state.wire(&load(&state, &caller, &id).await?)))
}

/// Edit name, description or labels. Permissions and expiry are immutable.
#[utoipa::path(patch, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    request_body = UpdateTokenRequest,
    responses((status = 200, body = Token),
        (status = 404, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 422, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn update_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateTokenRequest>,
) -> ApiResult<Json<Token>> {
    caller.require("tokens:update")?;
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
    let a = audit(
        &caller,
        "token.update",
        Some(&id),
        serde_json::json!({ "fields": changed }),
    );
    let row = state
        .store
        .update_meta(
            &caller.0.project,
            &id,
            req.name.as_deref(),
            description,
            req.labels.as_ref(),
            a,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    state.changed(std::slice::from_ref(&row.id)).await;
    state.metrics.changed("update", 1);
    Ok(Json(state.wire(&row)))
}

/// New value and expiry for the same id; the old value stops working now, or after `grace_period`.
#[utoipa::path(post, path = "/v1/tokens/{id}/regenerate", tag = "tokens", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a replay replaces the lost value without ending the previous value's grace")),
    request_body = RegenerateRequest,
    responses((status = 200, body = TokenWithSecret),
        (status = 403, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 404, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 409, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 422, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn regenerate_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegenerateRequest>,
) -> ApiResult<Json<TokenWithSecret>> {
    caller.require("tokens:regenerate")?;
    let key = idempotency_key(&headers)?;
    let row = load(&state, &caller, &id).await?;
    if row.revoked_at.is_some() {
        return Err(ApiError::conflict(
            codes::TOKEN_REVOKED,
            "a revoked token cannot be regenerated",
        ));
    }
    // Regenerating hands out a working value: the caller must hold everything the token holds.
    check_no_escalation(
        &state,
        &caller,
        row.role.as_deref(),
        &row.scopes,
        &row.resources,
    )?;
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
    let req_digest = key.as_ref().map(|_| digest(&req));
    let replay = match (&key, &row.regen_key) {
        (Some(k), Some(prev)) if k == prev => {
            if row.regen_digest != req_digest {
                return Err(ApiError::field(
                    codes::IDEMPOTENCY_KEY_REUSED,
                    "Idempotency-Key",
                    "this Idempotency-Key was already used for a different request",
                ));
            }
            true
        }
        _ => false,
    };
    let (value, masked) = new_secret(&state.policy.token_prefix);
    let regen = Regeneration {
        new_hash: hex::encode(state.verifier.hash(&value)),
        masked,
        expires_at: expiry.map(|(at, _)| at.timestamp_micros()),
        lifetime_us: expiry.map(|(_, d)| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        grace_until,
        key,
        digest: req_digest,
    };
    let action = if replay {
        "token.regenerate.replayed"
    } else {
        "token.regenerate"
    };
    let a = audit(
        &caller,
        action,
        Some(&id),
        serde_json::json!({ "grace_period": req.grace_period }),
    );
    let updated = state
        .store
        .regenerate(&caller.0.project, &id, &regen, replay, a)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                codes::TOKEN_REVOKED,
                "the token was revoked or deleted meanwhile",
            )
        })?;
    state.changed(std::slice::from_ref(&updated.id)).await;
    state.metrics.changed("regenerate", 1);
    Ok(Json(TokenWithSecret {
        token: state.wire(&updated),
        secret: value,
    }))
}

/// Revoke one token; its record stays for audit. Revoking twice is not an error.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = Token),
        (status = 404, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Token>> {
    caller.require("tokens:revoke")?;
    let a = audit(&caller, "token.revoke", Some(&id), serde_json::json!({}));
    let row = state
        .store
        .revoke(&caller.0.project, &id, a)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    state.changed(std::slice::from_ref(&row.id)).await;
    state.metrics.changed("revoke", 1);
    Ok(Json(state.wire(&row)))
}

/// Delete a token permanently (its audit events stay).
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"),
        (status = 404, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require("tokens:delete")?;
    let a = audit(&caller, "token.delete", Some(&id), serde_json::json!({}));
    if !state.store.delete(&caller.0.project, &id, a).await? {
        return Err(ApiError::not_found("token"));
    }
    state.changed(std::slice::from_ref(&id)).await;
    state.metrics.changed("delete", 1);
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke many tokens: by `ids` or by label `selector`.
#[utoipa::path(post, path = "/v1/tokens/revoke", tag = "tokens", request_body = BulkRevokeRequest,
    responses((status = 200, body = BulkRevokeResponse),
        (status = 422, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn bulk_revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BulkRevokeRequest>,
) -> ApiResult<Json<BulkRevokeResponse>> {
    caller.require("tokens:revoke")?;
    let revoked = match (&req.ids, &req.selector) {
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
            state
                .store
                .bulk_revoke(&caller.0.project, Some(ids), &[], &caller.0.id)
                .await?
        }
        (None, Some(sel)) => {
            let pairs = tokenops_types::parse_selector(sel)
                .map_err(|m| ApiError::field(codes::INVALID_SELECTOR, "selector", m))?;
            state
                .store
                .bulk_revoke(&caller.0.project, None, &pairs, &caller.0.id)
                .await?
        }
    };
    state.changed(&revoked).await;
    state.metrics.changed("revoke", revoked.len() as u64);
    Ok(Json(BulkRevokeResponse {
        revoked: revoked.len() as u64,
    }))
}

/// The calling token, masked.
#[utoipa::path(get, path = "/v1/whoami", tag = "tokens",
    responses((status = 200, body = Token),
        (status = 401, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn whoami(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Token>> {
    let row = state
        .store
        .get(&caller.0.project, &caller.0.id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the token is not known"))?;
    Ok(Json(state.wire(&row)))
}

/// Check a token value, optionally for a permission and a resource. Possession
/// of the value is the credential: no other authentication is needed.
#[utoipa::path(post, path = "/v1/verify", tag = "verify", request_body = VerifyRequest,
    responses((status = 200, description = "Checked (see `valid` and `code`)", body = VerifyResponse),
        (status = 429, description = "The token is over its rate limit (code RATE_LIMITED)", body = VerifyResponse),
        (status = 422, body = tokenops_types::Problem, content_type = "application/problem+json")))]
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Response> {
    if let Some(p) = &req.permission
        && permission::parse(p).is_err()
    {
        return Err(ApiError::field(
            codes::INVALID_PERMISSION,
            "permission",
            "permission must look like <resource>:<action>",
        ));
    }
    let checked = state.verifier.check(&req.token, now_us()).await?;
    let (code, cred, retry) = match checked {
        Checked::Valid(c) => {
            let allowed = req.permission.as_deref().is_none_or(|p| c.allows(p))
                && req.resource.as_ref().is_none_or(|r| c.resources.allows(r));
            if allowed {
                (VerifyCode::Valid, Some(c), None)
            } else {
                (VerifyCode::InsufficientPermissions, None, None)
            }
        }
        Checked::RateLimited(_, secs) => (VerifyCode::RateLimited, None, Some(secs)),
        Checked::Invalid(code) => (code, None, None),
    };
    state.metrics.verified(code);
    // The hot path: the token's part of the answer was rendered when it was
    // cached, so the body is a few copies into one buffer. The JSON is that of
    // `VerifyResponse` (a test parses it as one).
    let mut body = String::with_capacity(48 + cred.as_ref().map_or(0, |c| c.json_len()));
    body.push_str(r#"{"valid":"#);
    body.push_str(if code == VerifyCode::Valid {
        "true"
    } else {
        "false"
    });
    body.push_str(r#","code":""#);
    body.push_str(code.as_str());
    body.push('"');
    if let Some(c) = &cred {
        body.push_str(r#","token":"#);
        c.write_json(&mut body);
    }
    body.push('}');
    let mut res = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(secs) = retry {
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(res)
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only events about this token.
    pub token_id: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    pub page_token: Option<String>,
}

/// Who did what to which token, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Page<AuditEvent>),
        (status = 403, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    caller.require("audit:read")?;
    let limit = page_limit(q.limit.as_deref())?;
    let after = q.page_token.as_deref().map(decode_cursor).transpose()?;
    let mut items = state
        .store
        .audit_list(
            &caller.0.project,
            q.token_id.as_deref(),
            after.as_ref(),
            limit + 1,
        )
        .await?;
    let next_page_token = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items
            .last()
            .map(|e| encode_cursor(e.at.timestamp_micros(), &e.id))
    } else {
        None
    };
    Ok(Json(Page {
        items,
        next_page_token,
    }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: storage answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"),
        (status = 503, body = tokenops_types::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok("ok"),
        _ => Err(ApiError::unavailable("storage is not reachable")),
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state
        .metrics
        .cache_entries
        .set(i64::try_from(state.verifier.cached_entries()).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
