//! The [`Client`], its [`ClientBuilder`], and the request loop that applies the
//! retry policy to every call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};
use crate::retry::{RetryPolicy, is_retryable_status, parse_retry_after};

/// Header that makes create and regenerate safe to repeat. The client sets it
/// itself; the name is public for proxies and tests that look for it.
///
/// ```
/// assert_eq!(tokenops_client::IDEMPOTENCY_KEY_HEADER, "Idempotency-Key");
/// ```
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// A handle on one tokenops backend. Cheap to clone; clones share one
/// connection pool.
///
/// Every method makes one logical call, repeated per the client's
/// [`RetryPolicy`] when that is safe (see [`crate::retry`]).
///
/// ```no_run
/// use secrecy::SecretString;
/// use tokenops_client::Client;
///
/// # async fn run() -> tokenops_client::Result<()> {
/// let client = Client::builder("https://tokens.example.com")
///     .token(SecretString::from(std::env::var("TOKENOPS_TOKEN").unwrap()))
///     .build()?;
/// let me = client.whoami().await?;
/// println!("calling as {} ({})", me.name, me.masked);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    token: Option<SecretString>,
    retry: RetryPolicy,
    observer: Option<Observer>,
}

/// A function told about every HTTP attempt (see [`ClientBuilder::observer`]).
type Observer = Arc<dyn Fn(&Attempt<'_>) + Send + Sync>;

/// One HTTP attempt of a call, as reported to an [`ClientBuilder::observer`]
/// once it has ended. It carries no URL, header or body, so nothing secret.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The client method that made it, e.g. `create_token`, `get_token`, `whoami`.
    pub operation: &'static str,
    /// The HTTP method.
    pub method: &'a Method,
    /// The response status, or `None` when no complete response arrived
    /// (connection refused, timeout, connection cut).
    pub status: Option<u16>,
    /// From sending the request to the end of the response body.
    pub elapsed: Duration,
    /// 0 for the first attempt, 1 for the first retry, and so on.
    pub retry: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.base.as_str())
            .field("token", &self.inner.token.as_ref().map(|_| "[REDACTED]"))
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// Configures a [`Client`]; made by [`Client::builder`].
///
/// ```
/// use std::time::Duration;
/// use secrecy::SecretString;
/// use tokenops_client::{Client, RetryPolicy};
///
/// let client = Client::builder("http://127.0.0.1:8080")
///     .token(SecretString::from("tko_example"))
///     .timeout(Duration::from_secs(10))
///     .retry_policy(RetryPolicy::default().max_retries(5))
///     .user_agent("my-operator/1.0")
///     .build()
///     .unwrap();
/// assert!(!format!("{client:?}").contains("tko_example"));
/// ```
pub struct ClientBuilder {
    endpoint: String,
    token: Option<SecretString>,
    ca_certs: Vec<Vec<u8>>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    user_agent: String,
    observer: Option<Observer>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("ca_certs", &self.ca_certs.len())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl ClientBuilder {
    /// The token the client authenticates with (sent as `Authorization: Bearer`).
    /// Without one only [`Client::verify`], [`Client::health`] and
    /// [`Client::ready`] work.
    ///
    /// ```
    /// use secrecy::SecretString;
    /// let builder = tokenops_client::Client::builder("http://localhost:8080")
    ///     .token(SecretString::from("tko_example"));
    /// assert!(!format!("{builder:?}").contains("tko_example"));
    /// ```
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// Trusts an extra root CA (or several, concatenated) given in PEM, on top
    /// of the built-in roots. For backends with a private CA (a `caBundle`).
    ///
    /// ```
    /// let client = tokenops_client::Client::builder("https://localhost:8443")
    ///     .ca_cert_pem(b"not a certificate".to_vec())
    ///     .build();
    /// assert!(matches!(client, Err(tokenops_client::Error::Config(_))));
    /// ```
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certs.push(pem.into());
        self
    }

    /// Limit for one attempt of a call, from connecting to reading the whole
    /// response (default 30 s). Retries each get the full time again.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = tokenops_client::Client::builder("http://localhost:8080")
    ///     .timeout(Duration::from_secs(5));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Limit for establishing a connection (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = tokenops_client::Client::builder("http://localhost:8080")
    ///     .connect_timeout(Duration::from_secs(2));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How failed calls are repeated (default [`RetryPolicy::default`]).
    ///
    /// ```
    /// use tokenops_client::RetryPolicy;
    /// let builder = tokenops_client::Client::builder("http://localhost:8080")
    ///     .retry_policy(RetryPolicy::none());
    /// ```
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The `User-Agent` header (default `tokenops-client/<version>`).
    ///
    /// ```
    /// let builder = tokenops_client::Client::builder("http://localhost:8080")
    ///     .user_agent("tokenops-operator/0.1.0");
    /// ```
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Calls `observer` after every HTTP attempt (retries included) with the
    /// operation, the status and the time it took: for latency metrics.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let attempts = Arc::new(AtomicU64::new(0));
    /// let counted = attempts.clone();
    /// let client = tokenops_client::Client::builder("http://localhost:8080")
    ///     .observer(move |a| {
    ///         counted.fetch_add(1, Ordering::Relaxed);
    ///         eprintln!("{} {:?} in {:?}", a.operation, a.status, a.elapsed);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn observer(mut self, observer: impl Fn(&Attempt<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Checks the settings and makes the client.
    ///
    /// # Errors
    /// [`Error::Config`] for an endpoint that is not an `http(s)` URL, a CA
    /// that is not PEM, or a token that cannot be sent in a header.
    ///
    /// ```
    /// use tokenops_client::{Client, Error};
    /// assert!(Client::builder("http://localhost:8080/base/").build().is_ok());
    /// assert!(matches!(Client::builder("localhost:8080").build(), Err(Error::Config(_))));
    /// ```
    pub fn build(self) -> Result<Client> {
        let base = parse_endpoint(&self.endpoint)?;
        if let Some(token) = &self.token {
            bearer(token)?;
        }
        let mut http = reqwest::Client::builder()
            .user_agent(self.user_agent)
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout.unwrap_or(Duration::from_secs(30)))
            // Redirects would resend credentials to wherever they point.
            .redirect(reqwest::redirect::Policy::none());
        for pem in &self.ca_certs {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config(
                    "CA certificate: no PEM certificate found".to_string(),
                ));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token: self.token,
                retry: self.retry,
                observer: self.observer,
            }),
        })
    }
}

fn parse_endpoint(endpoint: &str) -> Result<Url> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| Error::Config(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::Config(format!(
            "endpoint {endpoint:?} must be an http:// or https:// URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "endpoint {endpoint:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

fn bearer(token: &SecretString) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret().trim()))
        .map_err(|_| {
            Error::Config("the token contains characters not allowed in an HTTP header".into())
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// One logical call: everything needed to make (and remake) its attempts.
pub(crate) struct Call {
    /// The client method making the call (reported to the observer).
    pub operation: &'static str,
    pub method: Method,
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub idempotency_key: Option<String>,
    pub auth: bool,
    /// A 404 after an attempt that may have reached the server means an
    /// earlier attempt did the work (delete).
    pub not_found_after_retry_is_success: bool,
    /// Whether the retry policy applies (probes report the first answer).
    pub retries: bool,
}

impl Call {
    pub fn new(operation: &'static str, method: Method, path: &[&str]) -> Self {
        Call {
            operation,
            method,
            path: path.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            idempotency_key: None,
            auth: true,
            not_found_after_retry_is_success: false,
            retries: true,
        }
    }

    pub fn json<B: serde::Serialize>(mut self, body: &B) -> Result<Self> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| Error::Config(format!("request body: {e}")))?;
        self.body = Some(bytes);
        Ok(self)
    }

    pub fn query(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.query.push((key, v.to_string()));
        }
        self
    }
}

/// A successful response: status and body.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            status: self.status.as_u16(),
            source,
        })
    }
}

impl Client {
    /// Starts configuring a client for the backend at `endpoint`
    /// (e.g. `https://tokens.example.com`; a path prefix is kept).
    ///
    /// ```
    /// let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// assert_eq!(client.endpoint().as_str(), "http://localhost:8080/");
    /// ```
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            token: None,
            ca_certs: Vec::new(),
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            user_agent: concat!("tokenops-client/", env!("CARGO_PKG_VERSION")).to_string(),
            observer: None,
        }
    }

    /// The backend this client talks to.
    ///
    /// ```
    /// let client = tokenops_client::Client::builder("https://tokens.example.com/api").build().unwrap();
    /// assert_eq!(client.endpoint().path(), "/api");
    /// ```
    pub fn endpoint(&self) -> &Url {
        &self.inner.base
    }

    /// The same backend and settings with another token, sharing the connection pool.
    ///
    /// ```
    /// use secrecy::SecretString;
    /// let admin = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let other = admin.with_token(SecretString::from("tko_other")).unwrap();
    /// ```
    pub fn with_token(&self, token: SecretString) -> Result<Client> {
        bearer(&token)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                token: Some(token),
                retry: self.inner.retry.clone(),
                observer: self.inner.observer.clone(),
            }),
        })
    }

    /// The same backend, token and connection pool with another retry policy.
    ///
    /// ```
    /// use tokenops_client::RetryPolicy;
    /// let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let once = client.with_retry_policy(RetryPolicy::none());
    /// ```
    pub fn with_retry_policy(&self, retry: RetryPolicy) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                token: self.inner.token.clone(),
                retry,
                observer: self.inner.observer.clone(),
            }),
        }
    }

    fn url(&self, call: &Call) -> Result<Url> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|_| Error::Config("endpoint cannot take a path".into()))?
            .pop_if_empty()
            .extend(&call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// Makes a call, repeating it per the retry policy, and returns the
    /// successful reply or the error for the last attempt.
    pub(crate) async fn execute(&self, call: Call) -> Result<Reply> {
        let url = self.url(&call)?;
        let auth = match (&self.inner.token, call.auth) {
            (Some(token), true) => Some(bearer(token)?),
            _ => None,
        };
        let mut retry = 0u32;
        // Whether some earlier attempt may have been processed by the server.
        let mut maybe_delivered = false;
        loop {
            let mut req = self.inner.http.request(call.method.clone(), url.clone());
            if let Some(auth) = &auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            if let Some(key) = &call.idempotency_key {
                req = req.header(IDEMPOTENCY_KEY_HEADER, key.as_str());
            }
            if let Some(body) = &call.body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let started = std::time::Instant::now();
            let observe = |status: Option<StatusCode>| {
                if let Some(observer) = &self.inner.observer {
                    observer(&Attempt {
                        operation: call.operation,
                        method: &call.method,
                        status: status.map(|s| s.as_u16()),
                        elapsed: started.elapsed(),
                        retry,
                    });
                }
            };
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                    let body = resp.bytes().await;
                    observe(body.is_ok().then_some(status));
                    match body {
                        Ok(body) if status.is_success() => return Ok(Reply { status, body }),
                        Ok(_)
                            if status == StatusCode::NOT_FOUND
                                && maybe_delivered
                                && call.not_found_after_retry_is_success =>
                        {
                            tracing::debug!(%url, "404 on a repeated call: an earlier attempt did it");
                            return Ok(Reply {
                                status: StatusCode::NO_CONTENT,
                                body: Default::default(),
                            });
                        }
                        Ok(body) => {
                            let err = Error::from_response(status.as_u16(), &body, retry_after);
                            if !is_retryable_status(status.as_u16()) {
                                return Err(err);
                            }
                            // A gateway error may come after the request was forwarded.
                            maybe_delivered |= status != StatusCode::TOO_MANY_REQUESTS;
                            (err, retry_after)
                        }
                        // The response was lost mid-way: the server did act.
                        Err(e) => {
                            maybe_delivered = true;
                            (Error::Transport(e), None)
                        }
                    }
                }
                Err(e) => {
                    observe(None);
                    if !is_retryable_transport(&e) {
                        return Err(Error::Transport(e));
                    }
                    maybe_delivered |= !e.is_connect();
                    (Error::Transport(e), None)
                }
            };
            let (err, retry_after) = failure;
            let delay = match call.retries {
                true => self.inner.retry.delay(retry, retry_after, &mut rand::rng()),
                false => None,
            };
            let Some(delay) = delay else {
                return Err(err);
            };
            tracing::debug!(%url, attempt = retry + 1, ?delay, error = %err, "retrying tokenops call");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    pub(crate) async fn execute_json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        self.execute(call).await?.json()
    }
}

/// Transport failures worth another attempt: the request may not have been
/// made (connect), or its response was lost (timeout, reset). Building or
/// redirect errors are not.
fn is_retryable_transport(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_decode() || e.is_status())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate (public part only), for parsing tests.
    const TEST_CA: &[u8] = include_bytes!("../tests/fixtures/test-ca.pem");

    #[test]
    fn extra_root_cas_are_parsed_from_pem() {
        assert!(
            Client::builder("https://localhost:8443")
                .ca_cert_pem(TEST_CA)
                .build()
                .is_ok()
        );
        let bundle = [TEST_CA, TEST_CA].concat();
        assert!(
            Client::builder("https://localhost:8443")
                .ca_cert_pem(bundle)
                .build()
                .is_ok()
        );
        for bad in [
            &b""[..],
            b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        ] {
            let err = Client::builder("https://localhost:8443")
                .ca_cert_pem(bad)
                .build()
                .unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
        }
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        for good in [
            "http://127.0.0.1:8080",
            "https://tokens.example.com/prefix/",
            " http://h ",
        ] {
            assert!(Client::builder(good).build().is_ok(), "{good}");
        }
        for bad in [
            "",
            "tokens.example.com",
            "ftp://h",
            "http://h/?x=1",
            "http://h/#f",
            "unix:/tmp/s",
        ] {
            assert!(
                matches!(Client::builder(bad).build(), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls_keep_the_endpoint_prefix_and_escape_ids() {
        let client = Client::builder("https://h/api/").build().unwrap();
        let call = Call::new("list_tokens", Method::GET, &["v1", "tokens", "tok/../x"])
            .query("label", Some("a=b,c=d"));
        let url = client.url(&call).unwrap();
        assert_eq!(
            url.as_str(),
            "https://h/api/v1/tokens/tok%2F..%2Fx?label=a%3Db%2Cc%3Dd"
        );
        let client = Client::builder("https://h").build().unwrap();
        let url = client
            .url(&Call::new("health", Method::GET, &["healthz"]))
            .unwrap();
        assert_eq!(url.as_str(), "https://h/healthz");
    }

    #[test]
    fn tokens_that_cannot_be_headers_are_rejected_without_echoing_them() {
        let err = Client::builder("http://h")
            .token(SecretString::from("tko_bad\nvalue"))
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("tko_bad"), "{err}");
        let debug = format!(
            "{:?}",
            Client::builder("http://h").token(SecretString::from("tko_hidden"))
        );
        assert!(!debug.contains("tko_hidden"), "{debug}");
    }
}
