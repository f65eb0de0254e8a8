//! The remaining endpoints: `whoami`, `verify`, the audit log, and the health probes.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};

use crate::client::Call;
use crate::error::{Error, Result};
use crate::tokens::{BoxFuture, follow_pages, into_future};
use crate::{
    AuditEvent, Client, Page, PolicyDocument, ResourceRef, Token, VerifyRequest, VerifyResponse,
};
use chrono::{DateTime, Utc};
use std::future::IntoFuture;

/// Builder for [`Client::verify`].
///
/// ```no_run
/// use secrecy::SecretString;
/// use tokenops_client::{ResourceRef, VerifyCode};
///
/// # async fn run(client: tokenops_client::Client, presented: SecretString) -> tokenops_client::Result<()> {
/// let answer = client
///     .verify(presented)
///     .permission("billing:read")
///     .resource(ResourceRef::new("site", "s-1"))
///     .await?;
/// if answer.valid {
///     println!("ok: {}", answer.token.unwrap().name);
/// } else if answer.code == VerifyCode::Expired {
///     println!("expired");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is sent or awaited"]
pub struct Verify {
    client: Client,
    token: SecretString,
    permission: Option<String>,
    resource: Option<ResourceRef>,
}

impl Verify {
    /// A permission the token must hold, e.g. `billing:read`.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use tokenops_client::secrecy::SecretString;
    /// let check = client.verify(SecretString::from("tko_…")).permission("billing:read");
    /// ```
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permission = Some(permission.into());
        self
    }

    /// A resource the token must be allowed to act on.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use tokenops_client::{secrecy::SecretString, ResourceRef};
    /// let check = client.verify(SecretString::from("tko_…")).resource(ResourceRef::new("site", "s-1"));
    /// ```
    pub fn resource(mut self, resource: ResourceRef) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Asks the server. An invalid token is not an error: the answer says
    /// `valid: false` with a [`VerifyCode`](crate::VerifyCode). A rate limit
    /// that outlasts the retries is [`Error::RateLimited`].
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// use tokenops_client::secrecy::SecretString;
    /// let answer = client.verify(SecretString::from("tko_…")).send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<VerifyResponse> {
        let body = VerifyRequest {
            token: self.token.expose_secret().to_string(),
            permission: self.permission,
            resource: self.resource,
        };
        let mut call = Call::new("verify", Method::POST, &["v1", "verify"]).json(&body)?;
        // Verification needs no credentials of its own; don't hand ours to it.
        call.auth = false;
        self.client.execute_json(call).await
    }
}
into_future!(Verify, VerifyResponse);

/// Builder for [`Client::audit`].
///
/// ```no_run
/// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
/// let events = client.audit().token_id("tok_123").all().await?;
/// for e in events {
///     println!("{} {} by {}", e.at, e.action, e.actor);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is sent or awaited"]
pub struct Audit {
    client: Client,
    token_id: Option<String>,
    actor: Option<String>,
    since: Option<DateTime<Utc>>,
    limit: Option<u32>,
    page_token: Option<String>,
}

impl Audit {
    /// Only events about this token.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let audit = client.audit().token_id("tok_123");
    /// ```
    pub fn token_id(mut self, id: impl Into<String>) -> Self {
        self.token_id = Some(id.into());
        self
    }

    /// Only events caused by this token (its id).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let audit = client.audit().actor("tok_admin");
    /// ```
    pub fn actor(mut self, id: impl Into<String>) -> Self {
        self.actor = Some(id.into());
        self
    }

    /// Only events at or after this time.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let audit = client.audit().since(chrono::Utc::now() - chrono::Duration::hours(24));
    /// ```
    pub fn since(mut self, at: DateTime<Utc>) -> Self {
        self.since = Some(at);
        self
    }

    /// Page size; the server caps it.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let audit = client.audit().limit(50);
    /// ```
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after a previous page.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let audit = client.audit().limit(50).page_token("token-from-the-previous-page");
    /// ```
    pub fn page_token(mut self, page_token: impl Into<String>) -> Self {
        self.page_token = Some(page_token.into());
        self
    }

    /// Fetches one page.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let page = client.audit().send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<Page<AuditEvent>> {
        let call = Call::new("list_audit", Method::GET, &["v1", "audit"])
            .query("token_id", self.token_id)
            .query("actor", self.actor)
            .query("since", self.since.map(|t| t.to_rfc3339()))
            .query("limit", self.limit)
            .query("page_token", self.page_token);
        self.client.execute_json(call).await
    }

    /// Fetches every page from this one on.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let history = client.audit().token_id("tok_123").all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn all(self) -> Result<Vec<AuditEvent>> {
        follow_pages(self, |b, t| b.page_token(t), |b| b.send()).await
    }
}
into_future!(Audit, Page<AuditEvent>);

impl Client {
    /// The token this client authenticates with (masked). A cheap way to check
    /// that endpoint and credentials work.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let me = client.whoami().await?;
    /// println!("{} in project {}", me.name, me.project);
    /// # Ok(()) }
    /// ```
    pub async fn whoami(&self) -> Result<Token> {
        self.execute_json(Call::new("whoami", Method::GET, &["v1", "whoami"]))
            .await
    }

    /// Checks a token value, optionally for a permission and a resource; see [`Verify`].
    /// Needs no credentials: a client without a token can verify.
    ///
    /// ```no_run
    /// use secrecy::SecretString;
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let answer = client.verify(SecretString::from("tko_…")).await?;
    /// println!("{:?}", answer.code);
    /// # Ok(()) }
    /// ```
    pub fn verify(&self, token: SecretString) -> Verify {
        Verify {
            client: self.clone(),
            token,
            permission: None,
            resource: None,
        }
    }

    /// Reads the audit log: who did what to which token, when; see [`Audit`].
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let page = client.audit().limit(100).await?;
    /// # Ok(()) }
    /// ```
    pub fn audit(&self) -> Audit {
        Audit {
            client: self.clone(),
            token_id: None,
            actor: None,
            since: None,
            limit: None,
            page_token: None,
        }
    }

    /// What this server allows: roles with their permissions and grants,
    /// resource types, expiry rules. Any valid token may read it.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let policy = client.policy().await?;
    /// println!("roles: {:?}", policy.roles.keys().collect::<Vec<_>>());
    /// # Ok(()) }
    /// ```
    pub async fn policy(&self) -> Result<PolicyDocument> {
        self.execute_json(Call::new("get_policy", Method::GET, &["v1", "policy"]))
            .await
    }

    /// Liveness: `Ok(())` when the server answers `/healthz` with 200. Made
    /// once, without retries: a probe should report what it sees.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) {
    /// if client.health().await.is_err() {
    ///     eprintln!("backend is down");
    /// }
    /// # }
    /// ```
    pub async fn health(&self) -> Result<()> {
        self.probe("healthz").await?;
        Ok(())
    }

    /// Readiness: `Ok(true)` when `/readyz` answers 200 (storage reachable),
    /// `Ok(false)` on 503, an error when the server cannot be reached or
    /// answers anything else. Made once, without retries.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// while !client.ready().await.unwrap_or(false) {
    ///     tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ready(&self) -> Result<bool> {
        match self.probe("readyz").await {
            Ok(_) => Ok(true),
            Err(Error::Server { status: 503, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn probe(&self, path: &str) -> Result<StatusCode> {
        let mut call = Call::new(
            if path == "readyz" { "ready" } else { "health" },
            Method::GET,
            &[path],
        );
        call.auth = false;
        call.retries = false;
        Ok(self.execute(call).await?.status)
    }
}
