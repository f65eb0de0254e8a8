//! Authentication of API calls: `x-api-key: <token>` or `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use tokenops_types::VerifyCode;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_us;
use crate::verify::{Checked, Credential};

/// The token that made the request.
pub struct Caller(pub Arc<Credential>);

/// Logs and counts a request whose credentials did not verify: the reason,
/// method and route — never the presented value.
fn failed(state: &AppState, parts: &Parts, reason: &'static str) {
    state.metrics.authentication_failed(reason);
    // The route template, not the path: a path may hold anything a client typed.
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |m| m.as_str());
    tracing::info!(reason, method = %parts.method, route, "authentication failed");
}

/// The presented value, from either header style.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = presented_token(&parts.headers) else {
            failed(state, parts, "missing");
            return Err(ApiError::unauthenticated(
                "missing credentials: send the token as x-api-key or Authorization: Bearer",
            ));
        };
        match state.verifier.check(value, now_us()).await? {
            Checked::Valid(cred) => Ok(Caller(cred)),
            Checked::RateLimited(_, secs) => Err(ApiError::rate_limited(secs)),
            Checked::Invalid(code) => {
                let (reason, detail) = match code {
                    VerifyCode::Malformed => ("malformed", "the token is malformed"),
                    VerifyCode::Expired => ("expired", "the token has expired"),
                    VerifyCode::Revoked => ("revoked", "the token has been revoked"),
                    _ => ("unknown", "the token is not known"),
                };
                failed(state, parts, reason);
                Err(ApiError::unauthenticated(detail))
            }
        }
    }
}
