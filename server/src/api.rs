//! The v1 HTTP API: one handler per endpoint of DESIGN.md, each documented for
//! the generated OpenAPI document. Handlers only translate HTTP (headers,
//! query strings, status codes) to and from [`service`](crate::service),
//! where the rules live.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokenops_types::{
    AuditEvent, BulkRevokeRequest, BulkRevokeResponse, CreateTokenRequest, Page, PolicyDocument,
    RegenerateRequest, RevokeRequest, Token, TokenStatus, TokenWithSecret, UpdateTokenRequest,
    VerifyCode, VerifyRequest, VerifyResponse, codes, permission,
};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::service::{self, AuditQuery, TokenQuery};
use crate::state::AppState;
use crate::store::now_us;
use crate::validate;
use crate::verify::Checked;

pub use crate::service::{new_token_id, to_wire};

/// Answers that carry a value must not be kept by any cache.
fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
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

fn page_limit(limit: Option<&str>) -> ApiResult<u32> {
    match limit {
        None => Ok(0),
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=service::MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                codes::INVALID_FIELD,
                "limit",
                format!(
                    "limit must be a whole number from 1 to {}",
                    service::MAX_PAGE
                ),
            )),
        },
    }
}

fn parse_bool(field: &str, value: Option<&str>) -> ApiResult<bool> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::field(
            codes::INVALID_FIELD,
            field,
            format!("{field} must be true or false"),
        )),
    }
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
    let key = idempotency_key(&headers)?;
    let created = service::create_token(&state, &caller.0, req, key).await?;
    Ok(no_store(
        (StatusCode::CREATED, Json(created)).into_response(),
    ))
}

/// Query of `GET /v1/tokens`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `active`, `expired` or `revoked`; without it, active and expired tokens.
    #[param(value_type = Option<TokenStatus>)]
    pub status: Option<String>,
    /// `true`: tokens in every state, revoked ones included.
    #[param(value_type = Option<bool>)]
    pub all: Option<String>,
    /// Another project (organisation tokens; they list every project without it).
    pub project: Option<String>,
    /// Only active tokens expiring within this duration (e.g. `168h`, `7d`).
    pub expiring_within: Option<String>,
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
    let status = validate::status_filter(q.status.as_deref())?;
    let labels = validate::label_filter(q.label.as_deref())?;
    let expiring_within =
        validate::optional_duration("expiring_within", q.expiring_within.as_deref())?;
    let query = TokenQuery {
        status,
        include_revoked: parse_bool("all", q.all.as_deref())?,
        name: q.name,
        labels,
        project: q.project,
        expiring_within,
        limit: page_limit(q.limit.as_deref())?,
        page_token: q.page_token,
    };
    Ok(Json(service::list_tokens(&state, &caller.0, &query).await?))
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
    Ok(Json(service::get_token(&state, &caller.0, &id).await?))
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
    Ok(Json(
        service::update_token(&state, &caller.0, &id, req).await?,
    ))
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
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let renewed = service::regenerate_token(&state, &caller.0, &id, req, key).await?;
    Ok(no_store(Json(renewed).into_response()))
}

/// Revoke one token — now, or `after` a while (its expiry is brought forward,
/// for an overlap); its record stays for audit. Revoking twice is not an error.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "tokens", params(("id" = String, Path)),
    request_body(content = Option<RevokeRequest>, description = "Optional: `after` to revoke later"),
    responses((status = 200, body = Token),
        (status = 403, body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 404, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<ApiJson<RevokeRequest>>,
) -> ApiResult<Json<Token>> {
    let req = body.map(|ApiJson(r)| r).unwrap_or_default();
    Ok(Json(
        service::revoke_token(&state, &caller.0, &id, req).await?,
    ))
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
    service::delete_token(&state, &caller.0, &id).await?;
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
    Ok(Json(service::bulk_revoke(&state, &caller.0, req).await?))
}

/// The calling token, masked.
#[utoipa::path(get, path = "/v1/whoami", tag = "tokens",
    responses((status = 200, body = Token),
        (status = 401, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn whoami(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Token>> {
    Ok(Json(service::whoami(&state, &caller.0).await?))
}

/// What this server allows: roles (permissions and grants), resource types,
/// expiry rules, rate limit. Any valid token may read it.
#[utoipa::path(get, path = "/v1/policy", tag = "tokens",
    responses((status = 200, body = PolicyDocument),
        (status = 401, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn policy(State(state): State<AppState>, _caller: Caller) -> Json<PolicyDocument> {
    Json(service::policy(&state))
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
    /// Only events caused by this token (its id).
    pub actor: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Another project (organisation tokens; they read every project without it).
    pub project: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    pub page_token: Option<String>,
}

/// Who did what to which token, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Page<AuditEvent>),
        (status = 403, body = tokenops_types::Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    let since = q
        .since
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::field(
                        codes::INVALID_FIELD,
                        "since",
                        "since must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                    )
                })
        })
        .transpose()?;
    let query = AuditQuery {
        token_id: q.token_id,
        actor: q.actor,
        since,
        project: q.project,
        limit: page_limit(q.limit.as_deref())?,
        page_token: q.page_token,
    };
    Ok(Json(service::audit_log(&state, &caller.0, &query).await?))
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
