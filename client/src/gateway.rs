//! Protecting a Rust service with tokenops: a [`tower`] layer (usable as axum
//! middleware) that checks every request the way `GET /v1/authorize` does.
//!
//! A [`Gate`] holds a [`TokenVerifier`] (the tokenops server through a
//! [`Client`], or your own) and a short cache of its answers. Each
//! [`Gate::require`] makes a layer for one permission; the layers of a gate
//! share its cache. For every request the layer:
//!
//! 1. reads the value from `x-api-key` or `Authorization: Bearer`;
//! 2. looks up the answer for it in the cache, keyed by the value's SHA-256
//!    (the value itself is neither kept nor logged), or asks the verifier and
//!    caches what it says for [`GateBuilder::cache_ttl`]; a refusal from the
//!    server replaces a cached acceptance at once;
//! 3. answers `401` (with `WWW-Authenticate: Bearer`), `403`, `429` (with
//!    `Retry-After`) or `503` with a small problem+json body, as
//!    `/v1/authorize` does; or puts the caller's [`Identity`] (as an
//!    `Arc<Identity>`) into the request's extensions and calls the service.
//!
//! When the server cannot be asked, the layer fails closed (`503`); with
//! [`GateBuilder::stale_if_unavailable`] it keeps accepting a value it
//! accepted recently, for that long, and nothing else.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use axum::{Extension, Router, routing::get};
//! use tokenops_client::Client;
//! use tokenops_client::gateway::{Gate, Identity};
//!
//! # fn app() -> tokenops_client::Result<Router> {
//! let client = Client::builder("http://127.0.0.1:8080").build()?;
//! let gate = Gate::builder(client).cache_ttl(Duration::from_secs(5)).build();
//! let app = Router::new()
//!     .route("/v1/devices", get(|Extension(me): Extension<Arc<Identity>>| async move {
//!         format!("hello {}", me.name)
//!     }))
//!     .layer(gate.require("devices:read"));
//! # Ok(app) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::{Client, Error, Problem, ResourceRef, Resources, RetryPolicy, VerifyCode, codes};

/// Who a request comes from, once its token checked out. The layer puts it
/// into the request's extensions as `Arc<Identity>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's id (`tok_…`).
    pub id: String,
    /// The token's project.
    pub project: String,
    /// The token's name.
    pub name: String,
    /// The token's role, if it has one.
    pub role: Option<String>,
    /// Effective permissions (the role's and the token's own scopes).
    pub permissions: Vec<String>,
    /// The resources the token may act on.
    pub resources: Resources,
}

impl Identity {
    /// Whether the token holds `permission` (`<resource>:<action>`).
    ///
    /// ```
    /// # use tokenops_client::{gateway::Identity, Resources};
    /// let me = Identity { id: "tok_1".into(), project: "p".into(), name: "n".into(), role: None,
    ///     permissions: vec!["devices:*".into()], resources: Resources::all() };
    /// assert!(me.allows("devices:read") && !me.allows("billing:read"));
    /// ```
    pub fn allows(&self, permission: &str) -> bool {
        crate::permission::any_allows(self.permissions.iter().map(String::as_str), permission)
    }

    /// Whether the token may act on at least one of `resources` (e.g. a
    /// device, its site or its group).
    ///
    /// ```
    /// # use tokenops_client::{gateway::Identity, Resources, ResourceRef};
    /// let me = Identity { id: "tok_1".into(), project: "p".into(), name: "n".into(), role: None,
    ///     permissions: vec![], resources: Resources::list([ResourceRef::new("site", "berlin")]) };
    /// let device = [ResourceRef::new("device", "SN-42"), ResourceRef::new("site", "berlin")];
    /// assert!(me.allows_any(&device));
    /// assert!(!me.allows_any(&[ResourceRef::new("device", "SN-42")]));
    /// ```
    pub fn allows_any<'a>(&self, resources: impl IntoIterator<Item = &'a ResourceRef>) -> bool {
        resources.into_iter().any(|r| self.resources.allows(r))
    }

    /// `Ok` if the token may act on one of `resources`, else the `403` to answer.
    pub fn require_any<'a>(
        &self,
        resources: impl IntoIterator<Item = &'a ResourceRef> + Clone,
    ) -> Result<(), Refusal> {
        if self.allows_any(resources.clone()) {
            return Ok(());
        }
        let named: Vec<String> = resources
            .into_iter()
            .map(|r| format!("{} {}", r.kind, r.id))
            .collect();
        Err(Refusal::forbidden(format!(
            "this token may not act on the {}",
            named.join(" or ")
        )))
    }
}

/// What a verifier says about a value.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The value verifies as this token.
    Valid(Identity),
    /// The value does not verify (malformed, not found, expired, revoked).
    Invalid(VerifyCode),
    /// The token is over its rate limit: retry after this long.
    RateLimited(Duration),
}

/// The verifier could not answer (server unreachable, timed out, failing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("tokenops could not be asked: {0}")]
pub struct Unavailable(pub String);

/// A boxed future borrowing the verifier and the value.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<Verdict, Unavailable>> + Send + 'a>>;

/// Something that says what a presented value verifies as. [`Client`]
/// implements it with `POST /v1/verify`; implement it to check values another
/// way (a test double, a second cache, …).
pub trait TokenVerifier: Send + Sync + 'static {
    /// Checks `value`; never logs or returns it.
    fn verify<'a>(&'a self, value: &'a SecretString) -> VerifyFuture<'a>;
}

impl TokenVerifier for Client {
    fn verify<'a>(&'a self, value: &'a SecretString) -> VerifyFuture<'a> {
        Box::pin(async move {
            match Client::verify(self, value.clone()).send().await {
                Ok(answer) => Ok(match answer.token {
                    Some(t) if answer.valid => Verdict::Valid(Identity {
                        id: t.id,
                        project: t.project,
                        name: t.name,
                        role: t.role,
                        permissions: t.permissions,
                        resources: t.resources,
                    }),
                    _ => Verdict::Invalid(answer.code),
                }),
                Err(Error::RateLimited { retry_after, .. }) => Ok(Verdict::RateLimited(
                    retry_after.unwrap_or(Duration::from_secs(1)),
                )),
                Err(e) => Err(Unavailable(e.to_string())),
            }
        })
    }
}

/// A tokenops check with its cache, shared by the layers it makes.
#[derive(Clone)]
pub struct Gate {
    shared: Arc<Shared>,
}

struct Shared {
    verifier: Box<dyn TokenVerifier>,
    cache: RwLock<HashMap<[u8; 32], Entry>>,
    ttl: Duration,
    stale: Duration,
    capacity: usize,
}

#[derive(Clone)]
enum Cached {
    Valid(Arc<Identity>),
    Invalid(VerifyCode),
}

struct Entry {
    answer: Cached,
    at: Instant,
}

/// Configures a [`Gate`]; made by [`Gate::builder`].
pub struct GateBuilder {
    verifier: Box<dyn TokenVerifier>,
    ttl: Duration,
    stale: Duration,
    capacity: usize,
}

impl GateBuilder {
    /// How long an answer is reused (default 5 s). A token revoked meanwhile
    /// keeps working here for at most this long.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many values' answers are kept (default 10,000).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// While the server cannot be asked, keep accepting a value accepted
    /// within this long past its cache time (default zero: fail closed, `503`).
    /// Values not accepted recently are always refused.
    pub fn stale_if_unavailable(mut self, grace: Duration) -> Self {
        self.stale = grace;
        self
    }

    /// The gate.
    pub fn build(self) -> Gate {
        Gate {
            shared: Arc::new(Shared {
                verifier: self.verifier,
                cache: RwLock::new(HashMap::new()),
                ttl: self.ttl,
                stale: self.stale,
                capacity: self.capacity,
            }),
        }
    }
}

/// Verifiers a [`Gate`] can be built from.
pub trait IntoVerifier {
    /// The verifier, ready for the request path.
    fn into_verifier(self) -> Box<dyn TokenVerifier>;
}

impl IntoVerifier for Client {
    /// The client without retries: a request waits for one answer, never a backoff.
    fn into_verifier(self) -> Box<dyn TokenVerifier> {
        Box::new(self.with_retry_policy(RetryPolicy::none()))
    }
}

impl<V: TokenVerifier> IntoVerifier for Arc<V> {
    fn into_verifier(self) -> Box<dyn TokenVerifier> {
        struct Shared<V>(Arc<V>);
        impl<V: TokenVerifier> TokenVerifier for Shared<V> {
            fn verify<'a>(&'a self, value: &'a SecretString) -> VerifyFuture<'a> {
                self.0.verify(value)
            }
        }
        Box::new(Shared(self))
    }
}

impl Gate {
    /// A gate asking `verifier`: a [`Client`] (used without retries) or an
    /// `Arc` of your own [`TokenVerifier`].
    pub fn builder(verifier: impl IntoVerifier) -> GateBuilder {
        GateBuilder {
            verifier: verifier.into_verifier(),
            ttl: Duration::from_secs(5),
            stale: Duration::ZERO,
            capacity: 10_000,
        }
    }

    /// A layer letting through requests whose token holds `permission`.
    pub fn require(&self, permission: impl Into<String>) -> RequireLayer {
        RequireLayer {
            gate: self.clone(),
            permission: Some(Arc::from(permission.into())),
        }
    }

    /// A layer letting through requests with any valid token.
    pub fn authenticate(&self) -> RequireLayer {
        RequireLayer {
            gate: self.clone(),
            permission: None,
        }
    }

    /// How many values have an answer cached.
    pub fn cached(&self) -> usize {
        self.shared.cache.read().map(|c| c.len()).unwrap_or(0)
    }

    /// Checks the request's headers for `permission` (or none): the identity,
    /// or the refusal to answer with.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        permission: Option<&str>,
    ) -> Result<Arc<Identity>, Refusal> {
        let Some(value) = presented(headers) else {
            return Err(Refusal::unauthenticated(
                "missing credentials: send the token as x-api-key or Authorization: Bearer",
                NO_CREDENTIALS,
            ));
        };
        let identity = self.identify(value).await?;
        if let Some(p) = permission
            && !identity.allows(p)
        {
            return Err(Refusal::forbidden(format!(
                "this token lacks the permission {p}"
            )));
        }
        Ok(identity)
    }

    async fn identify(&self, value: &str) -> Result<Arc<Identity>, Refusal> {
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let shared = &self.shared;
        let cached = shared
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(&key).map(|e| (e.answer.clone(), e.at.elapsed())));
        if let Some((answer, age)) = &cached
            && *age < shared.ttl
        {
            return answer_to_result(answer.clone());
        }
        let secret = SecretString::from(value);
        match shared.verifier.verify(&secret).await {
            Ok(Verdict::Valid(identity)) => {
                let identity = Arc::new(identity);
                self.remember(key, Cached::Valid(identity.clone()));
                Ok(identity)
            }
            Ok(Verdict::Invalid(code)) => {
                self.remember(key, Cached::Invalid(code));
                answer_to_result(Cached::Invalid(code))
            }
            Ok(Verdict::RateLimited(wait)) => Err(Refusal::rate_limited(wait)),
            Err(e) => match cached {
                Some((Cached::Valid(identity), age)) if age < shared.ttl + shared.stale => {
                    tracing::warn!(token = %identity.id, error = %e, "tokenops unavailable: accepting a recent answer");
                    Ok(identity)
                }
                _ => {
                    tracing::warn!(error = %e, "tokenops unavailable: refusing the request");
                    Err(Refusal::unavailable())
                }
            },
        }
    }

    fn remember(&self, key: [u8; 32], answer: Cached) {
        let Ok(mut cache) = self.shared.cache.write() else {
            return;
        };
        if cache.len() >= self.shared.capacity && !cache.contains_key(&key) {
            let keep = self.shared.ttl + self.shared.stale;
            cache.retain(|_, e| e.at.elapsed() < keep);
            if cache.len() >= self.shared.capacity {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Entry {
                answer,
                at: Instant::now(),
            },
        );
    }
}

fn answer_to_result(answer: Cached) -> Result<Arc<Identity>, Refusal> {
    match answer {
        Cached::Valid(identity) => Ok(identity),
        Cached::Invalid(code) => Err(Refusal::unauthenticated(
            match code {
                VerifyCode::Malformed => "the token is malformed",
                VerifyCode::Expired => "the token has expired",
                VerifyCode::Revoked => "the token has been revoked",
                _ => "the token is not known",
            },
            BAD_CREDENTIALS,
        )),
    }
}

/// The presented value, from `x-api-key` or `Authorization: Bearer`.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

const NO_CREDENTIALS: &str = r#"Bearer realm="tokenops""#;
const BAD_CREDENTIALS: &str = r#"Bearer realm="tokenops", error="invalid_token""#;
const NOT_ENOUGH: &str = r#"Bearer realm="tokenops", error="insufficient_scope""#;

/// Why a request is refused: the answer `/v1/authorize` would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401, 403, 429 or 503.
    pub status: StatusCode,
    /// The problem code (`unauthenticated`, `forbidden`, `rate_limited`, `unavailable`).
    pub code: &'static str,
    /// What went wrong, in words (never the value).
    pub detail: String,
    retry_after: Option<Duration>,
    challenge: Option<&'static str>,
}

impl Refusal {
    fn unauthenticated(detail: &str, challenge: &'static str) -> Refusal {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: codes::UNAUTHENTICATED,
            detail: detail.to_string(),
            retry_after: None,
            challenge: Some(challenge),
        }
    }

    /// `403`: the token lacks what the request needs.
    pub fn forbidden(detail: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::FORBIDDEN,
            code: codes::FORBIDDEN,
            detail: detail.into(),
            retry_after: None,
            challenge: Some(NOT_ENOUGH),
        }
    }

    fn rate_limited(wait: Duration) -> Refusal {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: codes::RATE_LIMITED,
            detail: format!("rate limit reached for this token; retry after {secs}s"),
            retry_after: Some(Duration::from_secs(secs.max(1))),
            challenge: None,
        }
    }

    fn unavailable() -> Refusal {
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: codes::UNAVAILABLE,
            detail: "the token cannot be checked right now; retry later".to_string(),
            retry_after: None,
            challenge: None,
        }
    }

    /// The answer: problem+json, with `WWW-Authenticate` or `Retry-After`.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let problem =
            Problem::new(self.status.as_u16(), self.code, title).with_detail(self.detail.clone());
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = Response::new(B::from(Bytes::from(body)));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(c) = self.challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(wait) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        }
        res
    }
}

/// The [`tower::Layer`] made by [`Gate::require`] and [`Gate::authenticate`].
#[derive(Clone)]
pub struct RequireLayer {
    gate: Gate,
    permission: Option<Arc<str>>,
}

impl<S> tower::Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Require<S> {
        Require {
            inner,
            gate: self.gate.clone(),
            permission: self.permission.clone(),
        }
    }
}

/// The service of a [`RequireLayer`]: checks, then calls `S`.
#[derive(Clone)]
pub struct Require<S> {
    inner: S,
    gate: Gate,
    permission: Option<Arc<str>>,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Require<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The instance that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let permission = self.permission.clone();
        Box::pin(async move {
            match gate.check(req.headers(), permission.as_deref()).await {
                Ok(identity) => {
                    req.extensions_mut().insert(identity);
                    inner.call(req).await
                }
                Err(refusal) => Ok(refusal.to_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_read_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        h.insert("authorization", HeaderValue::from_static("bearer  tko_a "));
        assert_eq!(presented(&h), Some("tko_a"));
        h.insert("x-api-key", HeaderValue::from_static("tko_b"));
        assert_eq!(presented(&h), Some("tko_b"), "x-api-key wins");
    }

    #[test]
    fn refusals_answer_like_authorize() {
        let r: Response<Bytes> = Refusal::rate_limited(Duration::from_millis(1500)).to_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let p: Problem = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(p.code, "rate_limited");
        let r: Response<Bytes> = Refusal::forbidden("no").to_response();
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], NOT_ENOUGH);
    }
}
