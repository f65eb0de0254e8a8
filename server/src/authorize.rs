//! `/v1/authorize`: the check a gateway makes before it forwards a request
//! (nginx `auth_request`, Traefik `ForwardAuth`, Envoy `ext_authz` in HTTP
//! mode, ingress-nginx `auth-url`).
//!
//! The gateway passes the client's headers through: the value comes from
//! `x-api-key` or `Authorization: Bearer`, as for every other call. What the
//! route needs comes from headers the gateway sets per route, overriding
//! anything the client sent: `X-Tokenops-Permission: devices:read` and,
//! optionally, `X-Tokenops-Resource: device=SN-42`. Without a permission the
//! check is authentication only (any valid token passes).
//!
//! Answers are made for a gateway: `200` with identity headers the gateway
//! copies to the upstream, `401` with `WWW-Authenticate: Bearer`, `403`, `429`
//! with `Retry-After`; every refusal has a small problem+json body, and no
//! answer carries the presented value. The check is the verifier's (cache,
//! last-used time, rate limit), and a `200` renders from the cached credential
//! without touching storage, so it costs what `POST /v1/verify` costs.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokenops_types::{ResourceRef, VerifyCode, codes, permission};

use crate::auth::presented_token;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_us;
use crate::verify::{Checked, Credential};

/// Request header: the permission the route requires (`<resource>:<action>`).
pub const PERMISSION_HEADER: &str = "x-tokenops-permission";
/// Request header: the resource the route acts on (`<type>=<id>`).
pub const RESOURCE_HEADER: &str = "x-tokenops-resource";
/// Answer header: the token's id (`tok_…`).
pub const TOKEN_ID_HEADER: HeaderName = HeaderName::from_static("x-tokenops-token-id");
/// Answer header: the token's project.
pub const PROJECT_HEADER: HeaderName = HeaderName::from_static("x-tokenops-project");
/// Answer header: the token's name, percent-encoded where it is not plain ASCII.
pub const TOKEN_NAME_HEADER: HeaderName = HeaderName::from_static("x-tokenops-token-name");
/// Answer header: the token's role (empty for a token with scopes only).
pub const ROLE_HEADER: HeaderName = HeaderName::from_static("x-tokenops-role");

/// The outcomes, as the `result` label of `tokenops_authorizations_total`.
pub const RESULTS: [&str; 10] = [
    "allowed",
    "missing",
    "malformed",
    "unknown",
    "expired",
    "revoked",
    "forbidden",
    "rate_limited",
    "bad_request",
    "unavailable",
];

/// A gateway's check of the request it is about to forward.
#[utoipa::path(get, path = "/v1/authorize", tag = "verify",
    description = "For gateways (nginx `auth_request`, Traefik `ForwardAuth`, Envoy `ext_authz`): \
        checks the value in `x-api-key` or `Authorization: Bearer` for the permission and resource \
        the gateway names in headers. Any method is accepted; the body is ignored.",
    params(
        ("X-Tokenops-Permission" = Option<String>, Header,
            description = "Permission the route requires, `<resource>:<action>`; without it any valid token passes"),
        ("X-Tokenops-Resource" = Option<String>, Header,
            description = "Resource the route acts on, `<type>=<id>` (e.g. `device=SN-42`)"),
    ),
    responses(
        (status = 200, description = "Allowed: the identity is in the headers", headers(
            ("X-Tokenops-Token-Id" = String, description = "Token id"),
            ("X-Tokenops-Project" = String, description = "Token project"),
            ("X-Tokenops-Token-Name" = String, description = "Token name, percent-encoded where not plain ASCII"),
            ("X-Tokenops-Role" = String, description = "Token role, empty without one"),
        )),
        (status = 400, description = "The gateway sent a malformed permission or resource header",
            body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No value, or one that does not verify (see `WWW-Authenticate`)",
            body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the permission or the resource",
            body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The token is over its rate limit (see `Retry-After`)",
            body = tokenops_types::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Storage is unavailable",
            body = tokenops_types::Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []), ("bearer" = [])))]
pub async fn authorize(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (result, response) = match check(&state, &headers).await {
        Ok(cred) => ("allowed", allowed(&cred)),
        Err(refusal) => (refusal.result, refusal.into_response()),
    };
    state.metrics.authorized(result);
    response
}

/// Why a request is refused, and the `result` label that counts it.
struct Refusal {
    result: &'static str,
    error: ApiError,
    /// The `WWW-Authenticate` challenge of a 401 or 403.
    challenge: Option<&'static str>,
}

impl Refusal {
    fn new(result: &'static str, error: ApiError) -> Refusal {
        Refusal {
            result,
            error,
            challenge: None,
        }
    }

    fn challenge(mut self, challenge: &'static str) -> Refusal {
        self.challenge = Some(challenge);
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut res = self.error.into_response();
        if let Some(c) = self.challenge {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        res
    }
}

const NO_CREDENTIALS: &str = r#"Bearer realm="tokenops""#;
const BAD_CREDENTIALS: &str = r#"Bearer realm="tokenops", error="invalid_token""#;
const NOT_ENOUGH: &str = r#"Bearer realm="tokenops", error="insufficient_scope""#;

async fn check(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<Credential>, Refusal> {
    let wanted = requirement(state, headers).map_err(|e| Refusal::new("bad_request", e))?;
    let Some(value) = presented_token(headers) else {
        return Err(Refusal::new(
            "missing",
            ApiError::unauthenticated(
                "missing credentials: send the token as x-api-key or Authorization: Bearer",
            ),
        )
        .challenge(NO_CREDENTIALS));
    };
    let checked = state
        .verifier
        .check(value, now_us())
        .await
        .map_err(|e| Refusal::new("unavailable", ApiError::from(e)))?;
    let cred = match checked {
        Checked::Valid(cred) => cred,
        Checked::RateLimited(_, secs) => {
            return Err(Refusal::new("rate_limited", ApiError::rate_limited(secs)));
        }
        Checked::Invalid(code) => {
            let (result, detail) = match code {
                VerifyCode::Malformed => ("malformed", "the token is malformed"),
                VerifyCode::Expired => ("expired", "the token has expired"),
                VerifyCode::Revoked => ("revoked", "the token has been revoked"),
                _ => ("unknown", "the token is not known"),
            };
            return Err(
                Refusal::new(result, ApiError::unauthenticated(detail)).challenge(BAD_CREDENTIALS)
            );
        }
    };
    if let Some(p) = wanted.permission
        && !cred.allows(p)
    {
        return Err(Refusal::new(
            "forbidden",
            ApiError::forbidden(format!("this token lacks the permission {p}")),
        )
        .challenge(NOT_ENOUGH));
    }
    if let Some(r) = &wanted.resource
        && !cred.resources.allows(r)
    {
        return Err(Refusal::new(
            "forbidden",
            ApiError::forbidden(format!("this token may not act on the {} {}", r.kind, r.id)),
        )
        .challenge(NOT_ENOUGH));
    }
    Ok(cred)
}

/// What the gateway says the route needs.
struct Requirement<'a> {
    permission: Option<&'a str>,
    resource: Option<ResourceRef>,
}

/// Reads the permission and resource headers. Their values come from the
/// gateway's configuration, so a malformed one is answered with a 400 naming
/// the header (a gateway turns it into an error, never into access).
fn requirement<'a>(state: &AppState, headers: &'a HeaderMap) -> Result<Requirement<'a>, ApiError> {
    let text = |name: &str| -> Result<Option<&'a str>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
                bad_header(
                    codes::INVALID_FIELD,
                    name,
                    format!("the {name} header must be ASCII"),
                )
            }),
        }
    };
    let permission = text(PERMISSION_HEADER)?;
    if let Some(p) = permission
        && permission::parse(p).is_err()
    {
        return Err(bad_header(
            codes::INVALID_PERMISSION,
            PERMISSION_HEADER,
            "the X-Tokenops-Permission header must look like <resource>:<action>",
        ));
    }
    let resource = match text(RESOURCE_HEADER)? {
        None => None,
        Some(r) => {
            let parsed = r
                .split_once('=')
                .map(|(kind, id)| (kind.trim(), id.trim()))
                .filter(|(kind, id)| !kind.is_empty() && !id.is_empty());
            let Some((kind, id)) = parsed else {
                return Err(bad_header(
                    codes::INVALID_FIELD,
                    RESOURCE_HEADER,
                    "the X-Tokenops-Resource header must look like <type>=<id>, e.g. device=SN-42",
                ));
            };
            if !state.policy.resource_types.iter().any(|t| t == kind) {
                return Err(bad_header(
                    codes::UNKNOWN_RESOURCE_TYPE,
                    RESOURCE_HEADER,
                    format!(
                        "unknown resource type in X-Tokenops-Resource; this server accepts: {}",
                        state.policy.resource_types.join(", ")
                    ),
                ));
            }
            Some(ResourceRef::new(kind, id))
        }
    };
    Ok(Requirement {
        permission,
        resource,
    })
}

/// 400 naming the header: what the gateway sends is its configuration, not
/// a client's request body (hence not the 422 of a bad field).
fn bad_header(code: &'static str, header: &str, detail: impl Into<String>) -> ApiError {
    let mut e = ApiError::field(code, header, detail);
    e.status = StatusCode::BAD_REQUEST;
    e
}

/// The `200`: no body, the identity in headers.
fn allowed(cred: &Credential) -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.reserve(4);
    // Ids and projects are plain ASCII by construction; roles come from the policy.
    h.insert(TOKEN_ID_HEADER, header_text(&cred.id));
    h.insert(PROJECT_HEADER, header_text(&cred.project));
    h.insert(TOKEN_NAME_HEADER, header_text(&cred.name()));
    // Always present, empty without a role: a gateway that copies it then
    // replaces whatever X-Tokenops-Role the client sent itself.
    h.insert(
        ROLE_HEADER,
        cred.role
            .as_deref()
            .map_or(HeaderValue::from_static(""), header_text),
    );
    res
}

/// `text` as a header value: printable ASCII as is, every other byte (and
/// `%`, and spaces at either end) percent-encoded, so UTF-8 names survive.
pub fn header_text(text: &str) -> HeaderValue {
    let bytes = text.as_bytes();
    let plain = |i: usize, b: u8| {
        (0x21..=0x7e).contains(&b) && b != b'%' || b == b' ' && i != 0 && i != bytes.len() - 1
    };
    if bytes.iter().enumerate().all(|(i, b)| plain(i, *b))
        && let Ok(v) = HeaderValue::from_str(text)
    {
        return v;
    }
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if plain(i, *b) {
            out.push(char::from(*b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).expect("percent-encoded text is a valid header value")
}

/// The string member `key` of the JSON object members in `json` (the first
/// one: callers pass an object whose `key` precedes any nested object).
pub fn json_string_member<'a>(json: &'a str, key: &str) -> Option<Cow<'a, str>> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = &json[start..];
    let mut escaped = false;
    let mut end = None;
    for (i, b) in rest.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let raw = &rest[..end?];
    if raw.contains('\\') {
        serde_json::from_str::<String>(&json[start - 1..=start + raw.len()])
            .ok()
            .map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_header_values_that_decode_back() {
        for (name, sent) in [
            ("nightly-export", "nightly-export"),
            ("ci deploy", "ci deploy"),
            (" padded ", "%20padded%20"),
            ("100%", "100%25"),
            ("Zürich 🛰", "Z%C3%BCrich %F0%9F%9B%B0"),
        ] {
            assert_eq!(header_text(name).to_str().unwrap(), sent, "{name}");
        }
    }

    #[test]
    fn string_members_are_read_from_rendered_json() {
        for name in ["plain", "with \"quotes\" and \\", "Zürich", "tab\there"] {
            let json =
                serde_json::json!({"id": "tok_1", "name": name, "masked": "tko_…x"}).to_string();
            let members = &json[1..json.len() - 1];
            assert_eq!(json_string_member(members, "name").as_deref(), Some(name));
        }
        assert_eq!(json_string_member(r#""id":"tok_1""#, "name"), None);
    }
}
