//! Every action the dashboard takes, as one call each into the layer the JSON
//! API uses: the dashboard decides nothing about who may do what, it asks.
//! This file only adapts arguments and results; no rule lives here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use tokenops_types::{
    AuditEvent, BulkRevokeRequest, BulkRevokeResponse, CreateTokenRequest, Page,
    RegenerateRequest, Token, TokenWithSecret, UpdateTokenRequest,
};

use crate::api;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::verify::{Checked, Credential, Hash};

/// Filters of the token list.
#[derive(Debug, Clone, Default)]
pub struct TokenQuery {
    pub status: Option<String>,
    pub name: Option<String>,
    pub labels: Option<String>,
    pub project: Option<String>,
    pub expiring_within: Option<String>,
    pub limit: Option<u32>,
    pub page_token: Option<String>,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub token_id: Option<String>,
    pub actor: Option<String>,
    pub limit: Option<u32>,
    pub page_token: Option<String>,
}

/// What the dashboard may offer to do with a token (the service re-checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Update,
    Regenerate,
    Revoke,
    Delete,
}

/// What the create form offers, from the server's policy.
#[derive(Debug, Clone)]
pub struct PolicyView {
    /// Role names with their permissions.
    pub roles: Vec<(String, Vec<String>)>,
    pub resource_types: Vec<String>,
    pub require_expiry: bool,
    pub max_lifetime: std::time::Duration,
}

fn caller(c: &Arc<Credential>) -> Caller {
    Caller(c.clone())
}

pub async fn check_hash(state: &AppState, hash: &Hash, now_us: i64) -> anyhow::Result<Checked> {
    state.verifier.check_hash(hash, now_us).await
}

pub async fn create_token(
    state: &AppState,
    who: &Arc<Credential>,
    req: CreateTokenRequest,
) -> ApiResult<TokenWithSecret> {
    let res = api::create_token(
        State(state.clone()),
        caller(who),
        HeaderMap::new(),
        ApiJson(req),
    )
    .await?;
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&body).map_err(ApiError::internal)
}

pub async fn list_tokens(
    state: &AppState,
    who: &Arc<Credential>,
    q: &TokenQuery,
) -> ApiResult<Page<Token>> {
    let params = api::ListParams {
        status: q.status.clone(),
        name: q.name.clone(),
        label: q.labels.clone(),
        limit: q.limit.map(|l| l.to_string()),
        page_token: q.page_token.clone(),
    };
    let Json(page) = api::list_tokens(State(state.clone()), caller(who), ApiQuery(params)).await?;
    Ok(page)
}

pub async fn get_token(state: &AppState, who: &Arc<Credential>, id: &str) -> ApiResult<Token> {
    let Json(t) = api::get_token(State(state.clone()), caller(who), Path(id.to_string())).await?;
    Ok(t)
}

pub async fn update_token(
    state: &AppState,
    who: &Arc<Credential>,
    id: &str,
    req: UpdateTokenRequest,
) -> ApiResult<Token> {
    let Json(t) = api::update_token(
        State(state.clone()),
        caller(who),
        Path(id.to_string()),
        ApiJson(req),
    )
    .await?;
    Ok(t)
}

pub async fn regenerate_token(
    state: &AppState,
    who: &Arc<Credential>,
    id: &str,
    req: RegenerateRequest,
) -> ApiResult<TokenWithSecret> {
    let Json(t) = api::regenerate_token(
        State(state.clone()),
        caller(who),
        Path(id.to_string()),
        HeaderMap::new(),
        ApiJson(req),
    )
    .await?;
    Ok(t)
}

pub async fn revoke_token(state: &AppState, who: &Arc<Credential>, id: &str) -> ApiResult<Token> {
    let Json(t) =
        api::revoke_token(State(state.clone()), caller(who), Path(id.to_string())).await?;
    Ok(t)
}

pub async fn delete_token(state: &AppState, who: &Arc<Credential>, id: &str) -> ApiResult<()> {
    api::delete_token(State(state.clone()), caller(who), Path(id.to_string())).await?;
    Ok(())
}

pub async fn bulk_revoke(
    state: &AppState,
    who: &Arc<Credential>,
    ids: Vec<String>,
) -> ApiResult<BulkRevokeResponse> {
    let req = BulkRevokeRequest {
        ids: Some(ids),
        selector: None,
    };
    let Json(r) = api::bulk_revoke(State(state.clone()), caller(who), ApiJson(req)).await?;
    Ok(r)
}

pub async fn audit_log(
    state: &AppState,
    who: &Arc<Credential>,
    q: &AuditQuery,
) -> ApiResult<Page<AuditEvent>> {
    let params = api::AuditParams {
        token_id: q.token_id.clone(),
        limit: q.limit.map(|l| l.to_string()),
        page_token: q.page_token.clone(),
    };
    let Json(page) = api::audit_log(State(state.clone()), caller(who), ApiQuery(params)).await?;
    Ok(page)
}

pub fn policy(state: &AppState) -> PolicyView {
    PolicyView {
        roles: state
            .policy
            .roles
            .iter()
            .map(|(name, permissions)| (name.clone(), permissions.clone()))
            .collect(),
        resource_types: state.policy.resource_types.clone(),
        require_expiry: state.policy.require_expiry,
        max_lifetime: state.policy.max_lifetime.0,
    }
}

/// Whether to offer `action` on `token` (a hint for which buttons to show;
/// every action is checked again when it is taken).
pub fn may(_state: &AppState, who: &Arc<Credential>, action: Action, _token: &Token) -> bool {
    who.allows(match action {
        Action::Update => "tokens:update",
        Action::Regenerate => "tokens:regenerate",
        Action::Revoke => "tokens:revoke",
        Action::Delete => "tokens:delete",
    })
}
