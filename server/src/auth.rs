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

impl Caller {
    /// 403 unless the caller holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.0.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token lacks the permission {permission}"
            )))
        }
    }
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
            return Err(ApiError::unauthenticated(
                "missing credentials: send the token as x-api-key or Authorization: Bearer",
            ));
        };
        match state.verifier.check(value, now_us()).await? {
            Checked::Valid(cred) => Ok(Caller(cred)),
            Checked::RateLimited(_, secs) => Err(ApiError::rate_limited(secs)),
            Checked::Invalid(code) => Err(ApiError::unauthenticated(match code {
                VerifyCode::Malformed => "the token is malformed",
                VerifyCode::Expired => "the token has expired",
                VerifyCode::Revoked => "the token has been revoked",
                _ => "the token is not known",
            })),
        }
    }
}
