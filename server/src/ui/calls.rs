//! Every action the dashboard takes, as one call each into [`crate::service`],
//! the layer the JSON API uses: the dashboard decides nothing about who may
//! do what, it asks. This file only turns form text into the service's
//! arguments (with the same parsers the API uses) and back; no rule lives here.

use std::sync::Arc;
use std::time::Duration;

use tokenops_types::{
    AuditEvent, BulkRevokeRequest, BulkRevokeResponse, CreateTokenRequest, Page, RegenerateRequest,
    RevokeRequest, Token, TokenWithSecret, UpdateTokenRequest,
};

pub use crate::authority::Action;
use crate::error::ApiResult;
use crate::service;
use crate::state::AppState;
use crate::validate;
use crate::verify::{Checked, Credential, Hash};

/// Filters of the token list, as the list page's form gives them.
#[derive(Debug, Clone, Default)]
pub struct TokenQuery {
    /// `active`, `expired`, `revoked`, or `all` (revoked ones too).
    pub status: Option<String>,
    pub name: Option<String>,
    /// Label selector `k=v,k2=v2`.
    pub labels: Option<String>,
    /// Go-style duration.
    pub expiring_within: Option<String>,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub token_id: Option<String>,
    pub actor: Option<String>,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// What the create form offers, from the server's policy.
#[derive(Debug, Clone)]
pub struct PolicyView {
    /// Role names with their permissions and grants.
    pub roles: Vec<(String, Vec<String>)>,
    pub resource_types: Vec<String>,
    pub require_expiry: bool,
    pub max_lifetime: Duration,
}

pub async fn check_hash(state: &AppState, hash: &Hash, now_us: i64) -> anyhow::Result<Checked> {
    state.verifier.check_hash(hash, now_us).await
}

pub async fn create_token(
    state: &AppState,
    who: &Arc<Credential>,
    req: CreateTokenRequest,
) -> ApiResult<TokenWithSecret> {
    service::create_token(state, who, req, None).await
}

pub async fn list_tokens(
    state: &AppState,
    who: &Arc<Credential>,
    q: &TokenQuery,
) -> ApiResult<Page<Token>> {
    let include_revoked = q.status.as_deref() == Some("all");
    let status = validate::status_filter(q.status.as_deref().filter(|s| *s != "all"))?;
    let labels = validate::label_filter(q.labels.as_deref())?;
    let expiring_within =
        validate::optional_duration("expiring_within", q.expiring_within.as_deref())?;
    let query = service::TokenQuery {
        status,
        include_revoked,
        name: q.name.clone(),
        labels,
        project: None,
        expiring_within,
        limit: q.limit,
        page_token: q.page_token.clone(),
    };
    service::list_tokens(state, who, &query).await
}

pub async fn get_token(state: &AppState, who: &Arc<Credential>, id: &str) -> ApiResult<Token> {
    service::get_token(state, who, id).await
}

pub async fn update_token(
    state: &AppState,
    who: &Arc<Credential>,
    id: &str,
    req: UpdateTokenRequest,
) -> ApiResult<Token> {
    service::update_token(state, who, id, req).await
}

pub async fn regenerate_token(
    state: &AppState,
    who: &Arc<Credential>,
    id: &str,
    req: RegenerateRequest,
) -> ApiResult<TokenWithSecret> {
    service::regenerate_token(state, who, id, req, None).await
}

pub async fn revoke_token(state: &AppState, who: &Arc<Credential>, id: &str) -> ApiResult<Token> {
    service::revoke_token(state, who, id, RevokeRequest::default()).await
}

pub async fn delete_token(state: &AppState, who: &Arc<Credential>, id: &str) -> ApiResult<()> {
    service::delete_token(state, who, id).await
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
    service::bulk_revoke(state, who, req).await
}

pub async fn audit_log(
    state: &AppState,
    who: &Arc<Credential>,
    q: &AuditQuery,
) -> ApiResult<Page<AuditEvent>> {
    let query = service::AuditQuery {
        token_id: q.token_id.clone(),
        actor: q.actor.clone(),
        since: None,
        project: None,
        limit: q.limit,
        page_token: q.page_token.clone(),
    };
    service::audit_log(state, who, &query).await
}

pub fn policy(state: &AppState) -> PolicyView {
    let doc = service::policy(state);
    PolicyView {
        roles: doc
            .roles
            .into_iter()
            .map(|(name, role)| {
                let mut summary = role.permissions;
                summary.extend(role.grants.into_iter().map(|g| format!("grants {g}")));
                (name, summary)
            })
            .collect(),
        resource_types: doc.resource_types,
        require_expiry: doc.require_expiry,
        max_lifetime: tokenops_types::parse_duration(&doc.max_lifetime)
            .unwrap_or(state.policy.max_lifetime.0),
    }
}

/// Whether to offer `action` on `token` (which buttons to show; every action
/// is checked again by the service when it is taken).
pub fn may(state: &AppState, who: &Arc<Credential>, action: Action, token: &Token) -> bool {
    service::may(state, who, action, token)
}
