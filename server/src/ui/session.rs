//! Dashboard sessions: an opaque random id in an `HttpOnly`, `SameSite=Strict`
//! cookie, stored as its SHA-256 in the `ui_sessions` table so every replica
//! sees it. A session remembers the hash of the token that signed in, never
//! the value, and each request re-checks that token through the verifier: a
//! revoked or expired token ends its sessions on their next request.
//!
//! Forms carry a CSRF token derived from the session id (or, on the sign-in
//! page, from a short-lived pre-session cookie), checked in constant time.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::state::AppState;
use crate::store::{Store, now_us};
use crate::verify::{Checked, Credential, Hash};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tokenops_session";
/// Name of the cookie that binds the sign-in form's CSRF token.
pub const SIGN_IN_COOKIE: &str = "tokenops_sign_in";
/// A session's last-seen time is written at most this often (µs).
const TOUCH_EVERY_US: i64 = 60_000_000;

/// A fresh random id: 32 bytes from the OS, URL-safe base64.
pub fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The CSRF token of forms shown to the holder of `secret` (a session id or
/// a sign-in cookie): only someone who can read that cookie can compute it.
pub fn csrf_token(secret: &str) -> String {
    sha256_hex(&["tokenops-ui-csrf", secret])
}

/// Whether the posted CSRF token is the one for `secret`, in constant time.
pub fn csrf_matches(secret: &str, posted: &str) -> bool {
    let want = csrf_token(secret);
    want.len() == posted.len()
        && want
            .bytes()
            .zip(posted.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS (directly or through a proxy that says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` header for a dashboard cookie (`max_age` 0 deletes it).
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie header is ASCII")
}

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: String,
    pub token_hash: String,
    pub token_id: String,
    pub last_seen_at: i64,
}

/// Starts a session for the token whose hash is `token_hash`; returns the new id.
pub async fn start(store: &Store, token_hash: &Hash, token_id: &str) -> anyhow::Result<String> {
    let id = random_id();
    let now = now_us();
    let _turn = store.write_turn().await;
    sqlx::query(
        "INSERT INTO ui_sessions (id_hash, token_hash, token_id, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sha256_hex(&[&id]))
    .bind(hex::encode(token_hash))
    .bind(token_id)
    .bind(now)
    .bind(now)
    .execute(store.pool())
    .await?;
    Ok(id)
}

async fn find(store: &Store, id: &str) -> anyhow::Result<Option<SessionRow>> {
    let row = sqlx::query(
        "SELECT id_hash, token_hash, token_id, last_seen_at FROM ui_sessions WHERE id_hash = $1",
    )
    .bind(sha256_hex(&[id]))
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            id_hash: r.try_get("id_hash")?,
            token_hash: r.try_get("token_hash")?,
            token_id: r.try_get("token_id")?,
            last_seen_at: r.try_get("last_seen_at")?,
        })
    })
    .transpose()
}

async fn touch(store: &Store, id_hash: &str, now: i64) -> anyhow::Result<()> {
    let _turn = store.write_turn().await;
    sqlx::query("UPDATE ui_sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Ends a session (sign-out, or its token no longer verifies).
pub async fn end(store: &Store, id_hash: &str) -> anyhow::Result<()> {
    let _turn = store.write_turn().await;
    sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Deletes sessions idle since before `before` (µs).
pub async fn purge_idle(store: &Store, before: i64) -> anyhow::Result<u64> {
    let _turn = store.write_turn().await;
    let done = sqlx::query("DELETE FROM ui_sessions WHERE last_seen_at < $1")
        .bind(before)
        .execute(store.pool())
        .await?;
    // A used form id only matters while its page can be reloaded.
    sqlx::query("DELETE FROM ui_used_forms WHERE used_at < $1")
        .bind(before)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Records the use of a one-time form id; `false` when it was used before
/// (the browser posted the same form again, e.g. on reload).
pub async fn use_form_once(store: &Store, form_id: &str) -> anyhow::Result<bool> {
    if form_id.is_empty() {
        return Ok(false);
    }
    let _turn = store.write_turn().await;
    let inserted = sqlx::query(
        "INSERT INTO ui_used_forms (id_hash, used_at) VALUES ($1, $2) ON CONFLICT (id_hash) DO NOTHING",
    )
    .bind(sha256_hex(&["form", form_id]))
    .bind(now_us())
    .execute(store.pool())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The stored (hashed) ids of every session.
pub async fn stored_hashes(store: &Store) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT id_hash FROM ui_sessions ORDER BY id_hash")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("id_hash")?))
        .collect()
}

/// Why a request has no session: shown on the sign-in page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// No cookie, or an unknown one.
    None,
    Idle,
    Revoked,
    Expired,
    SignedOut,
}

impl Ended {
    /// The `?ended=` code on the sign-in page.
    pub fn code(self) -> &'static str {
        match self {
            Ended::None => "",
            Ended::Idle => "idle",
            Ended::Revoked => "revoked",
            Ended::Expired => "expired",
            Ended::SignedOut => "signed-out",
        }
    }

    pub fn from_code(code: &str) -> Ended {
        match code {
            "idle" => Ended::Idle,
            "revoked" => Ended::Revoked,
            "expired" => Ended::Expired,
            "signed-out" => Ended::SignedOut,
            _ => Ended::None,
        }
    }

    /// What the sign-in page says about it.
    pub fn message(self) -> Option<&'static str> {
        match self {
            Ended::None => None,
            Ended::Idle => Some("You were signed out after a period of inactivity."),
            Ended::Revoked => {
                Some("Your session ended because the token you signed in with was revoked.")
            }
            Ended::Expired => {
                Some("Your session ended because the token you signed in with has expired.")
            }
            Ended::SignedOut => Some("You have signed out."),
        }
    }
}

/// The person behind a dashboard request: a live session whose token still verifies.
pub struct Viewer {
    pub credential: Arc<Credential>,
    pub id_hash: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// The answer to a request without a live session: back to the sign-in page
/// (clearing the cookie), saying why.
pub struct SignInFirst {
    ended: Ended,
    headers: HeaderMap,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let target = match self.ended {
            Ended::None => "/ui/sign-in".to_string(),
            e => format!("/ui/sign-in?ended={}", e.code()),
        };
        let mut res = Redirect::to(&target).into_response();
        if self.ended != Ended::None {
            res.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&self.headers, SESSION_COOKIE, "", 0),
            );
        }
        res
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let away = |ended| {
            SignInFirst {
                ended,
                headers: parts.headers.clone(),
            }
            .into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE).filter(|v| !v.is_empty()) else {
            return Err(away(Ended::None));
        };
        let internal = |e: anyhow::Error| crate::error::ApiError::from(e).into_response();
        let Some(session) = find(&state.store, id).await.map_err(internal)? else {
            return Err(away(Ended::Idle));
        };
        let now = now_us();
        let idle_us = i64::try_from(state.policy.ui.idle_timeout.0.as_micros()).unwrap_or(i64::MAX);
        if now.saturating_sub(session.last_seen_at) > idle_us {
            end(&state.store, &session.id_hash)
                .await
                .map_err(internal)?;
            return Err(away(Ended::Idle));
        }
        let mut hash: Hash = [0; 32];
        if hex::decode_to_slice(&session.token_hash, &mut hash).is_err() {
            end(&state.store, &session.id_hash)
                .await
                .map_err(internal)?;
            return Err(away(Ended::Revoked));
        }
        let credential = match super::calls::check_hash(state, &hash, now)
            .await
            .map_err(internal)?
        {
            Checked::Valid(c) | Checked::RateLimited(c, _) => c,
            Checked::Invalid(code) => {
                end(&state.store, &session.id_hash)
                    .await
                    .map_err(internal)?;
                return Err(away(match code {
                    tokenops_types::VerifyCode::Expired => Ended::Expired,
                    _ => Ended::Revoked,
                }));
            }
        };
        if now - session.last_seen_at > TOUCH_EVERY_US {
            touch(&state.store, &session.id_hash, now)
                .await
                .map_err(internal)?;
        }
        Ok(Viewer {
            credential,
            csrf: csrf_token(id),
            id_hash: session.id_hash,
        })
    }
}
