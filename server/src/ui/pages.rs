//! The dashboard's handlers: each reads a form or a query, makes one call
//! into [`super::calls`], and renders a page or redirects (POST-redirect-GET,
//! except where the answer carries a value shown once).

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use tokenops_types::{
    CreateTokenRequest, RegenerateRequest, ResourceRef, Resources, Token, UpdateTokenRequest,
};

use super::calls::{self, Action, AuditQuery, TokenQuery};
use super::session::{self, Ended, SESSION_COOKIE, SIGN_IN_COOKIE, Viewer};
use super::view::*;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_us;
use crate::verify::Checked;

/// Events shown on a token's page.
const TRAIL_EVENTS: u32 = 20;
/// Tokens per page of the list.
const LIST_PAGE: u32 = 50;
/// Events per page of the audit log.
const AUDIT_PAGE: u32 = 50;

// ---------------------------------------------------------------- helpers

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(format!("rendering a dashboard page: {e}")).into_response(),
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn chrome(viewer: &Viewer, section: &'static str) -> Option<Chrome> {
    let c = &viewer.credential;
    Some(Chrome {
        token_id: c.id.to_string(),
        role: c.role.as_deref().map(str::to_string),
        project: c.project.to_string(),
        csrf: viewer.csrf.clone(),
        section,
    })
}

/// A page saying what went wrong, with the error's status.
fn message(viewer: Option<&Viewer>, e: &ApiError) -> Response {
    let (title, kind) = match e.status {
        StatusCode::NOT_FOUND => ("Not found", "info"),
        StatusCode::FORBIDDEN => ("Not allowed", "bad"),
        StatusCode::CONFLICT => ("Not possible now", "warn"),
        _ => ("Something went wrong", "bad"),
    };
    let page = MessagePage {
        chrome: viewer.and_then(|v| chrome(v, "tokens")),
        title: title.into(),
        kind,
        text: e.detail.clone(),
    };
    render(e.status, &page)
}

/// A posted form: its fields in order (a name may repeat).
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Refuses a form that does not come from this dashboard: a cross-site
/// request (by `Sec-Fetch-Site` or `Origin`), or one without the CSRF token
/// bound to `secret` (the session id, or the sign-in cookie).
fn check_origin_and_csrf(
    headers: &HeaderMap,
    secret: &str,
    form: &Form,
) -> Result<(), Box<Response>> {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    let foreign_origin = match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_none_or(|(_, rest)| !rest.eq_ignore_ascii_case(host)),
        _ => false,
    };
    if cross_site || foreign_origin || !session::csrf_matches(secret, form.get("csrf")) {
        let page = MessagePage {
            chrome: None,
            title: "Form refused".into(),
            kind: "bad",
            text: "This form was not sent from this dashboard page, or it has expired. \
                   Go back, reload the page and try again."
                .into(),
        };
        return Err(Box::new(render(StatusCode::FORBIDDEN, &page)));
    }
    Ok(())
}

fn viewer_form(headers: &HeaderMap, viewer: &Viewer, body: &[u8]) -> Result<Form, Box<Response>> {
    let form = Form::parse(body);
    let secret = session::cookie(headers, SESSION_COOKIE).unwrap_or("");
    check_origin_and_csrf(headers, secret, &form)?;
    debug_assert_eq!(session::csrf_token(secret), viewer.csrf);
    Ok(form)
}

/// `key=value` lines into labels; `Err` names the first line that is not one.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => {
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => {
                return Err(format!(
                    "line {} is not key=value: write each label as key=value on its own line",
                    n + 1
                ));
            }
        }
    }
    Ok(labels)
}

fn split_list(text: &str) -> Vec<String> {
    text.split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

fn notice_for(done: &str, n: Option<&str>, skipped: Option<&str>) -> Option<Notice> {
    let count = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let tokens = |k: u64| {
        if k == 1 {
            "1 token".to_string()
        } else {
            format!("{k} tokens")
        }
    };
    let (kind, text) = match done {
        "revoked-many" => {
            let (n, skipped) = (count(n), count(skipped));
            let mut text = format!("Revoked {}.", tokens(n));
            if skipped > 0 {
                text.push_str(&format!(
                    " {} could not be revoked by this token and were left as they were.",
                    tokens(skipped)
                ));
            }
            ("ok", text)
        }
        "none-selected" => ("warn", "Select at least one token to revoke.".to_string()),
        "deleted" => ("ok", "The token was deleted.".to_string()),
        "revoked" => ("ok", "The token was revoked.".to_string()),
        "saved" => ("ok", "Changes saved.".to_string()),
        _ => return None,
    };
    Some(Notice { kind, text })
}

/// The answer to a form that shows a value once, posted a second time.
fn already_used(viewer: &Viewer) -> Response {
    let page = MessagePage {
        chrome: chrome(viewer, "tokens"),
        title: "Already done".into(),
        kind: "warn",
        text: "This form was already sent, and its token value was shown then. \
               A value is shown only once: it cannot be shown again."
            .into(),
    };
    render(StatusCode::CONFLICT, &page)
}

/// Records the form's one-time id; `Err` with the answer when it was used before.
async fn once(state: &AppState, viewer: &Viewer, form: &Form) -> Result<(), Response> {
    match session::use_form_once(&state.store, form.get("once")).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(already_used(viewer)),
        Err(e) => Err(message(Some(viewer), &ApiError::from(e))),
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(serde::Deserialize, Default)]
pub struct SignInQuery {
    #[serde(default)]
    ended: String,
}

pub async fn sign_in_page(headers: HeaderMap, Query(q): Query<SignInQuery>) -> Response {
    let (secret, fresh) = match session::cookie(&headers, SIGN_IN_COOKIE) {
        Some(v) if !v.is_empty() => (v.to_string(), false),
        _ => (session::random_id(), true),
    };
    let page = SignInPage {
        chrome: None,
        csrf: session::csrf_token(&secret),
        ended: Ended::from_code(&q.ended).message(),
        error: None,
    };
    let mut res = render(StatusCode::OK, &page);
    if fresh {
        res.headers_mut().insert(
            header::SET_COOKIE,
            session::set_cookie(&headers, SIGN_IN_COOKIE, &secret, 3600),
        );
    }
    res
}

pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let secret = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    if let Err(refused) = check_origin_and_csrf(&headers, secret, &form) {
        return *refused;
    }
    let again = |error: &str, status: StatusCode| {
        let page = SignInPage {
            chrome: None,
            csrf: session::csrf_token(secret),
            ended: None,
            error: Some(error.to_string()),
        };
        render(status, &page)
    };
    let value = form.get("token").trim();
    if value.is_empty() {
        return again(
            "Paste a token to sign in.",
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let checked = match state.verifier.check(value, now_us()).await {
        Ok(c) => c,
        Err(e) => return message(None, &ApiError::from(e)),
    };
    let credential = match checked {
        Checked::Valid(c) => c,
        Checked::RateLimited(_, secs) => {
            return again(
                &format!("This token is over its rate limit. Try again in {secs} seconds."),
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        Checked::Invalid(code) => {
            state.metrics.verified(code);
            tracing::info!(code = code.as_str(), "dashboard sign-in refused");
            let why = match code {
                tokenops_types::VerifyCode::Malformed => {
                    "That is not a tokenops token: check that you pasted all of it."
                }
                tokenops_types::VerifyCode::Expired => "This token has expired.",
                tokenops_types::VerifyCode::Revoked => "This token has been revoked.",
                _ => "This token is not known to this server.",
            };
            return again(why, StatusCode::UNAUTHORIZED);
        }
    };
    let hash = state.verifier.hash(value);
    let idle_us = i64::try_from(state.policy.ui.idle_timeout.0.as_micros()).unwrap_or(i64::MAX);
    if let Err(e) = session::purge_idle(&state.store, now_us().saturating_sub(idle_us)).await {
        tracing::warn!(error = %e, "could not delete idle dashboard sessions");
    }
    let id = match session::start(&state.store, &hash, &credential.id).await {
        Ok(id) => id,
        Err(e) => return message(None, &ApiError::from(e)),
    };
    tracing::info!(token_id = %credential.id, "dashboard sign-in");
    let mut res = see_other("/ui/");
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(&headers, SESSION_COOKIE, &id, 7 * 86_400),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(&headers, SIGN_IN_COOKIE, "", 0),
    );
    res
}

pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = viewer_form(&headers, &viewer, &body) {
        return *refused;
    }
    if let Err(e) = session::end(&state.store, &viewer.id_hash).await {
        return message(Some(&viewer), &ApiError::from(e));
    }
    let mut res = see_other(&format!("/ui/sign-in?ended={}", Ended::SignedOut.code()));
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(&headers, SESSION_COOKIE, "", 0),
    );
    res
}

// ---------------------------------------------------------------- the list

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    expiring_within: String,
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    done: String,
    n: Option<String>,
    skipped: Option<String>,
}

pub async fn token_list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let now = Utc::now();
    let filter = ListFilterForm {
        name: q.name.trim().to_string(),
        label: q.label.trim().to_string(),
        status: q.status.trim().to_string(),
        expiring_within: q.expiring_within.trim().to_string(),
        any: [&q.name, &q.label, &q.status, &q.expiring_within]
            .iter()
            .any(|s| !s.trim().is_empty()),
        paged: !q.page_token.is_empty(),
    };
    let mut page = TokensPage {
        chrome: chrome(&viewer, "tokens"),
        csrf: viewer.csrf.clone(),
        notice: notice_for(&q.done, q.n.as_deref(), q.skipped.as_deref()),
        denied: None,
        filter: filter.clone(),
        filter_error: None,
        status_options: vec![
            ("", "Active and expired"),
            ("active", "Active"),
            ("expired", "Expired"),
            ("revoked", "Revoked"),
            ("all", "All, revoked too"),
        ],
        tokens: Vec::new(),
        next_page: None,
        first_page: String::new(),
    };
    let expiring_within = match filter.expiring_within.as_str() {
        "" => None,
        days => match days.parse::<u32>() {
            Ok(d) if d > 0 => Some(format!("{}h", u64::from(d) * 24)),
            _ => {
                page.filter_error = Some(FilterError {
                    field: "expiring_within".into(),
                    text: "Give a whole number of days, 1 or more.".into(),
                });
                return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
            }
        },
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let query = TokenQuery {
        status: some(&filter.status),
        name: some(&filter.name),
        labels: some(&filter.label),
        expiring_within,
        limit: LIST_PAGE,
        page_token: some(&q.page_token),
    };
    let keep: Vec<(&str, &str)> = vec![
        ("name", &filter.name),
        ("label", &filter.label),
        ("status", &filter.status),
        ("expiring_within", &filter.expiring_within),
    ];
    page.first_page = format!("/ui/?{}", query_string(&keep));
    match calls::list_tokens(&state, &viewer.credential, &query).await {
        Ok(list) => {
            page.tokens = list
                .items
                .iter()
                .map(|t| {
                    let mut v = TokenView::new(t, now);
                    v.selectable =
                        v.selectable && calls::may(&state, &viewer.credential, Action::Revoke, t);
                    v
                })
                .collect();
            page.next_page = list.next_page_token.map(|next| {
                let mut pairs = keep.clone();
                pairs.push(("page_token", &next));
                format!("/ui/?{}", query_string(&pairs))
            });
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            page.denied = Some(format!(
                "The token you signed in with may not read the token inventory ({}). \
                 Sign in with a token that holds tokens:read to manage tokens here.",
                e.detail
            ));
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let field = match e.field.as_deref() {
                Some("label" | "labels" | "selector") => "label",
                Some("expiring_within") => "expiring_within",
                Some(other) => other,
                None => "",
            };
            page.filter_error = Some(FilterError {
                field: field.to_string(),
                text: e.detail,
            });
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => message(Some(&viewer), &e),
    }
}

// ---------------------------------------------------------------- create

const LIFETIMES: [(&str, &str, u64); 6] = [
    ("1d", "1 day", 1),
    ("7d", "7 days", 7),
    ("30d", "30 days", 30),
    ("90d", "90 days", 90),
    ("180d", "180 days", 180),
    ("365d", "1 year", 365),
];

fn create_page_for(
    state: &AppState,
    viewer: &Viewer,
    form: CreateForm,
    errors: FieldErrors,
) -> CreatePage {
    let policy = calls::policy(state);
    let max_days = policy.max_lifetime.as_secs() / 86_400;
    let lifetimes = LIFETIMES
        .iter()
        .filter(|(_, _, days)| *days <= max_days.max(1))
        .map(|(v, t, _)| (v.to_string(), t.to_string()))
        .collect();
    let today = Utc::now().date_naive();
    let roles = policy
        .roles
        .iter()
        .map(|(name, permissions)| RoleOption {
            name: name.clone(),
            summary: permissions.join(", "),
        })
        .collect();
    CreatePage {
        chrome: chrome(viewer, "tokens"),
        csrf: viewer.csrf.clone(),
        once: session::random_id(),
        form,
        errors,
        show_project: &*viewer.credential.project == "*",
        roles,
        lifetimes,
        require_expiry: policy.require_expiry,
        max_lifetime: if policy.max_lifetime.as_secs().is_multiple_of(86_400) {
            format!("{max_days} days")
        } else {
            tokenops_types::format_duration(policy.max_lifetime)
        },
        tomorrow: (today + chrono::Days::new(1)).to_string(),
        latest_date: (today + chrono::Days::new(max_days.saturating_sub(1).max(1))).to_string(),
    }
}

fn resource_inputs(state: &AppState, form: Option<&Form>) -> Vec<ResourceInput> {
    calls::policy(state)
        .resource_types
        .iter()
        .map(|kind| ResourceInput {
            label: {
                let mut l = kind.replace(['_', '-'], " ");
                if let Some(first) = l.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                format!("{l}s")
            },
            ids: form.map_or(String::new(), |f| f.get(&format!("res-{kind}")).to_string()),
            kind: kind.clone(),
        })
        .collect()
}

pub async fn create_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let policy = calls::policy(&state);
    let role = ["read-only", "accounting"]
        .iter()
        .find(|r| policy.roles.iter().any(|(n, _)| n == *r))
        .map(|r| r.to_string())
        .or_else(|| policy.roles.first().map(|(n, _)| n.clone()))
        .unwrap_or_default();
    let max_days = policy.max_lifetime.as_secs() / 86_400;
    let lifetime = LIFETIMES
        .iter()
        .rev()
        .find(|(_, _, d)| *d <= 90.min(max_days.max(1)))
        .map_or("1d", |(v, _, _)| v)
        .to_string();
    let form = CreateForm {
        expiry_mode: "lifetime".into(),
        lifetime,
        access_mode: "role".into(),
        role,
        resources_mode: "all".into(),
        resources: resource_inputs(&state, None),
        ..CreateForm::default()
    };
    render(
        StatusCode::OK,
        &create_page_for(&state, &viewer, form, FieldErrors::default()),
    )
}

/// The create request a form asks for, or the form's own errors (its syntax:
/// what each field must look like; every rule is the service's).
fn create_request(
    form: &CreateForm,
    show_project: bool,
) -> Result<CreateTokenRequest, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut req = CreateTokenRequest {
        name: form.name.trim().to_string(),
        description: Some(form.description.trim().to_string()).filter(|d| !d.is_empty()),
        ..CreateTokenRequest::default()
    };
    if show_project && !form.project.trim().is_empty() {
        req.project = Some(form.project.trim().to_string());
    }
    match form.expiry_mode.as_str() {
        "date" => match NaiveDate::parse_from_str(form.expires_on.trim(), "%Y-%m-%d") {
            Ok(day) => {
                req.expires_at = day.and_hms_opt(23, 59, 59).map(|t| t.and_utc());
            }
            Err(_) => errors.add("expiry", "Choose the day the token expires."),
        },
        "never" => {}
        _ => req.lifetime = Some(form.lifetime.clone()),
    }
    if form.access_mode == "scopes" {
        req.scopes = Some(split_list(&form.scopes));
    } else {
        req.role = Some(form.role.clone());
    }
    if form.resources_mode == "scoped" {
        let list = form
            .resources
            .iter()
            .flat_map(|r| {
                split_list(&r.ids)
                    .into_iter()
                    .map(|id| ResourceRef::new(&r.kind, id))
            })
            .collect::<Vec<_>>();
        req.resources = Some(Resources::list(list));
    }
    match parse_labels(&form.labels) {
        Ok(labels) if !labels.is_empty() => req.labels = Some(labels),
        Ok(_) => {}
        Err(e) => errors.add("labels", e),
    }
    if errors.is_empty() {
        Ok(req)
    } else {
        Err(errors)
    }
}

/// Where the service's field names go on the create form.
const CREATE_FIELDS: [(&str, &str); 9] = [
    ("name", "name"),
    ("description", "description"),
    ("project", "project"),
    ("role", "role"),
    ("scopes", "scopes"),
    ("resources", "resources"),
    ("lifetime", "expiry"),
    ("expires_at", "expiry"),
    ("labels", "labels"),
];

pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = match viewer_form(&headers, &viewer, &body) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let form = CreateForm {
        name: raw.get("name").to_string(),
        description: raw.get("description").to_string(),
        project: raw.get("project").to_string(),
        expiry_mode: raw.get("expiry_mode").to_string(),
        lifetime: raw.get("lifetime").to_string(),
        expires_on: raw.get("expires_on").to_string(),
        access_mode: raw.get("access_mode").to_string(),
        role: raw.get("role").to_string(),
        scopes: raw.get("scopes").to_string(),
        resources_mode: raw.get("resources_mode").to_string(),
        resources: resource_inputs(&state, Some(&raw)),
        labels: raw.get("labels").to_string(),
    };
    let show_project = &*viewer.credential.project == "*";
    let req = create_request(&form, show_project);
    if req.is_ok()
        && let Err(res) = once(&state, &viewer, &raw).await
    {
        return res;
    }
    let req = match req {
        Ok(r) => r,
        Err(errors) => {
            return render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &create_page_for(&state, &viewer, form, errors),
            );
        }
    };
    match calls::create_token(&state, &viewer.credential, req).await {
        Ok(made) => render(
            StatusCode::CREATED,
            &SecretPage {
                chrome: chrome(&viewer, "tokens"),
                heading: "Token created",
                token_id: made.token.id.clone(),
                token_name: made.token.name.clone(),
                masked: made.token.masked.clone(),
                secret: made.secret,
                grace_note: None,
            },
        ),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY || e.field.is_some() => {
            let errors = FieldErrors::from_api(&e, &CREATE_FIELDS);
            render(e.status, &create_page_for(&state, &viewer, form, errors))
        }
        Err(e) => {
            let errors = FieldErrors::from_api(&e, &[]);
            render(e.status, &create_page_for(&state, &viewer, form, errors))
        }
    }
}

// ---------------------------------------------------------------- one token

#[derive(serde::Deserialize, Default)]
pub struct DetailQuery {
    #[serde(default)]
    done: String,
}

async fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    token: &Token,
    notice: Option<Notice>,
    errors: FieldErrors,
    edit: Option<EditForm>,
) -> TokenPage {
    let now = Utc::now();
    let managed_in = managed_elsewhere(token);
    let live = token.status != tokenops_types::TokenStatus::Revoked;
    let may = |a| managed_in.is_none() && calls::may(state, &viewer.credential, a, token);
    let can = Offers {
        update: may(Action::Update),
        regenerate: live && may(Action::Regenerate),
        revoke: live && may(Action::Revoke),
        delete: may(Action::Delete),
    };
    let trail = calls::audit_log(
        state,
        &viewer.credential,
        &AuditQuery {
            token_id: Some(token.id.clone()),
            limit: TRAIL_EVENTS,
            ..AuditQuery::default()
        },
    )
    .await;
    let (audit, audit_denied) = match trail {
        Ok(p) => (
            p.items.iter().map(|e| EventView::new(e, now)).collect(),
            None,
        ),
        Err(e) => (
            Vec::new(),
            Some(format!("The audit trail is not shown: {}", e.detail)),
        ),
    };
    TokenPage {
        chrome: chrome(viewer, "tokens"),
        csrf: viewer.csrf.clone(),
        once: session::random_id(),
        t: TokenView::new(token, now),
        notice,
        errors,
        managed_in,
        can,
        edit: edit.unwrap_or_else(|| EditForm {
            name: token.name.clone(),
            description: token.description.clone().unwrap_or_default(),
            labels: labels_text(&token.labels),
        }),
        audit,
        audit_denied,
    }
}

pub async fn token_detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    match calls::get_token(&state, &viewer.credential, &id).await {
        Ok(token) => {
            let page = detail_page(
                &state,
                &viewer,
                &token,
                notice_for(&q.done, None, None),
                FieldErrors::default(),
                None,
            )
            .await;
            render(StatusCode::OK, &page)
        }
        Err(e) => message(Some(&viewer), &e),
    }
}

/// The token a POST acts on, refused here when another front end manages it
/// (the dashboard shows such tokens read-only).
async fn token_to_change(state: &AppState, viewer: &Viewer, id: &str) -> Result<Token, Response> {
    let token = calls::get_token(state, &viewer.credential, id)
        .await
        .map_err(|e| message(Some(viewer), &e))?;
    if let Some(place) = managed_elsewhere(&token) {
        let e = ApiError::forbidden(format!(
            "This token is managed by {place}: change it there, not in the dashboard."
        ));
        return Err(message(Some(viewer), &e));
    }
    Ok(token)
}

/// A POST on one token: its form, once the session's CSRF token and origin
/// check out, and the token, once this dashboard may change it.
async fn token_form(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Form, Token), Response> {
    let form = viewer_form(headers, viewer, body).map_err(|refused| *refused)?;
    let token = token_to_change(state, viewer, id).await?;
    Ok((form, token))
}

async fn detail_with_error(
    state: &AppState,
    viewer: &Viewer,
    token: &Token,
    status: StatusCode,
    errors: FieldErrors,
    edit: Option<EditForm>,
) -> Response {
    let page = detail_page(state, viewer, token, None, errors, edit).await;
    render(status, &page)
}

pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, token) = match token_form(&state, &viewer, &id, &headers, &body).await {
        Ok(both) => both,
        Err(res) => return res,
    };
    let entered = EditForm {
        name: form.get("name").to_string(),
        description: form.get("description").to_string(),
        labels: form.get("labels").to_string(),
    };
    let labels = match parse_labels(&entered.labels) {
        Ok(l) => l,
        Err(msg) => {
            let mut errors = FieldErrors::default();
            errors.add("labels", msg);
            return detail_with_error(
                &state,
                &viewer,
                &token,
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
                Some(entered),
            )
            .await;
        }
    };
    let req = UpdateTokenRequest {
        name: Some(entered.name.trim().to_string()),
        description: Some(entered.description.trim().to_string()),
        labels: Some(labels),
        ..UpdateTokenRequest::default()
    };
    match calls::update_token(&state, &viewer.credential, &id, req).await {
        Ok(_) => see_other(&format!("/ui/tokens/{id}?done=saved")),
        Err(e) => {
            let errors = FieldErrors::from_api(
                &e,
                &[
                    ("name", "name"),
                    ("description", "description"),
                    ("labels", "labels"),
                ],
            );
            detail_with_error(&state, &viewer, &token, e.status, errors, Some(entered)).await
        }
    }
}

pub async fn regenerate(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, token) = match token_form(&state, &viewer, &id, &headers, &body).await {
        Ok(both) => both,
        Err(res) => return res,
    };
    if let Err(res) = once(&state, &viewer, &form).await {
        return res;
    }
    let grace = form.get("grace_period").trim();
    let req = RegenerateRequest {
        grace_period: (!grace.is_empty()).then(|| grace.to_string()),
        ..RegenerateRequest::default()
    };
    match calls::regenerate_token(&state, &viewer.credential, &id, req).await {
        Ok(made) => {
            let grace_note = made.token.previous_valid_until.map(|until| {
                format!(
                    "The previous value keeps working until {}.",
                    until.format("%Y-%m-%d %H:%M UTC")
                )
            });
            render(
                StatusCode::OK,
                &SecretPage {
                    chrome: chrome(&viewer, "tokens"),
                    heading: "Token regenerated",
                    token_id: made.token.id.clone(),
                    token_name: made.token.name.clone(),
                    masked: made.token.masked.clone(),
                    secret: made.secret,
                    grace_note,
                },
            )
        }
        Err(e) => {
            let errors = FieldErrors::from_api(&e, &[("grace_period", "grace_period")]);
            detail_with_error(&state, &viewer, &token, e.status, errors, None).await
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(res) = token_form(&state, &viewer, &id, &headers, &body).await {
        return res;
    }
    match calls::revoke_token(&state, &viewer.credential, &id).await {
        Ok(_) => see_other(&format!("/ui/tokens/{id}?done=revoked")),
        Err(e) => message(Some(&viewer), &e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, token) = match token_form(&state, &viewer, &id, &headers, &body).await {
        Ok(both) => both,
        Err(res) => return res,
    };
    if form.get("confirm_name") != token.name {
        let mut errors = FieldErrors::default();
        errors.add(
            "confirm_name",
            "Type the token's name exactly as shown to confirm the deletion.",
        );
        return detail_with_error(
            &state,
            &viewer,
            &token,
            StatusCode::UNPROCESSABLE_ENTITY,
            errors,
            None,
        )
        .await;
    }
    match calls::delete_token(&state, &viewer.credential, &id).await {
        Ok(()) => see_other("/ui/?done=deleted"),
        Err(e) => message(Some(&viewer), &e),
    }
}

pub async fn bulk_revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match viewer_form(&headers, &viewer, &body) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let mut ids = form.all("id");
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return see_other("/ui/?done=none-selected");
    }
    if form.get("confirm") != "yes" {
        let heading = if ids.len() == 1 {
            "Revoke 1 token?".to_string()
        } else {
            format!("Revoke {} tokens?", ids.len())
        };
        return render(
            StatusCode::OK,
            &ConfirmRevokePage {
                chrome: chrome(&viewer, "tokens"),
                csrf: viewer.csrf.clone(),
                heading,
                ids,
            },
        );
    }
    match calls::bulk_revoke(&state, &viewer.credential, ids.clone()).await {
        Ok(done) => see_other(&format!(
            "/ui/?done=revoked-many&n={}&skipped={}",
            done.revoked,
            done.skipped.len() + done.not_found.len()
        )),
        Err(e) => message(Some(&viewer), &e),
    }
}

// ---------------------------------------------------------------- audit

#[derive(serde::Deserialize, Default)]
pub struct AuditPageQuery {
    #[serde(default)]
    token_id: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    page_token: String,
}

pub async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AuditPageQuery>,
) -> Response {
    let now = Utc::now();
    let token_filter = q.token_id.trim().to_string();
    let actor_filter = q.actor.trim().to_string();
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let query = AuditQuery {
        token_id: some(&token_filter),
        actor: some(&actor_filter),
        limit: AUDIT_PAGE,
        page_token: some(&q.page_token),
    };
    let mut page = AuditPage {
        chrome: chrome(&viewer, "audit"),
        denied: None,
        error: None,
        filtered: !token_filter.is_empty() || !actor_filter.is_empty(),
        token_filter: token_filter.clone(),
        actor_filter: actor_filter.clone(),
        events: Vec::new(),
        next_page: None,
    };
    match calls::audit_log(&state, &viewer.credential, &query).await {
        Ok(p) => {
            page.events = p.items.iter().map(|e| EventView::new(e, now)).collect();
            page.next_page = p.next_page_token.map(|next| {
                format!(
                    "/ui/audit?{}",
                    query_string(&[
                        ("token_id", &token_filter),
                        ("actor", &actor_filter),
                        ("page_token", &next),
                    ])
                )
            });
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            page.denied = Some(format!(
                "The token you signed in with may not read the audit log ({}).",
                e.detail
            ));
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            page.error = Some(e.detail);
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => message(Some(&viewer), &e),
    }
}
