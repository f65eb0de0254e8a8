//! Token endpoints: create, list, get, update, regenerate, revoke, delete and bulk revoke.
//!
//! Calls with optional parameters return a builder; finish it with `.send()`
//! or simply `.await` it.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Call;
use crate::error::{Error, Result};
use crate::{
    BulkRevokeRequest, BulkRevokeResponse, Client, CreateTokenRequest, Labels, Page,
    RegenerateRequest, ResourceRef, Resources, Token, TokenStatus, UpdateTokenRequest,
    format_duration,
};

/// The future behind `.await` on a builder, for callers that store it.
///
/// ```
/// use tokenops_client::{BoxFuture, Page, Result, Token};
/// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
/// let pending: BoxFuture<Result<Page<Token>>> = std::future::IntoFuture::into_future(client.list_tokens());
/// ```
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A token together with its value, as create and regenerate return it. The
/// value is shown this once; it is a [`SecretString`] so it is never printed
/// by accident.
///
/// ```
/// use secrecy::ExposeSecret;
/// # fn show(created: tokenops_client::CreatedToken) {
/// // Write the value where it is needed, e.g. a Kubernetes Secret…
/// let value: &str = created.secret.expose_secret();
/// // …while Debug output stays safe:
/// assert!(!format!("{created:?}").contains(value));
/// # }
/// ```
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedToken {
    /// The token, masked.
    pub token: Token,
    /// The token value.
    pub secret: SecretString,
}

fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

macro_rules! into_future {
    ($builder:ty, $output:ty) => {
        impl IntoFuture for $builder {
            type Output = Result<$output>;
            type IntoFuture = BoxFuture<Result<$output>>;
            fn into_future(self) -> Self::IntoFuture {
                Box::pin(self.send())
            }
        }
    };
}
pub(crate) use into_future;

/// Builder for [`Client::create_token`].
///
/// ```no_run
/// use std::time::Duration;
/// use tokenops_client::{Client, ResourceRef};
///
/// # async fn run(client: Client) -> tokenops_client::Result<()> {
/// let created = client
///     .create_token("billing-exporter")
///     .description("reads invoices for the exporter")
///     .role("accounting")
///     .resource(ResourceRef::new("site", "s-1"))
///     .lifetime(Duration::from_secs(30 * 86_400))
///     .label("team", "finance")
///     .await?;
/// println!("{}", created.token.id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is sent or awaited"]
pub struct CreateToken {
    client: Client,
    request: CreateTokenRequest,
    idempotency_key: Option<String>,
}

impl CreateToken {
    /// Free text, at most 1024 characters.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci").description("deploys the web app");
    /// assert_eq!(b.request().description.as_deref(), Some("deploys the web app"));
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.request.description = Some(description.into());
        self
    }

    /// The project; defaults to the caller's (the only one it may create in).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci").project("payments");
    /// assert_eq!(b.request().project.as_deref(), Some("payments"));
    /// ```
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.request.project = Some(project.into());
        self
    }

    /// A server-defined permission bundle such as `read-only`.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci").role("read-only");
    /// assert_eq!(b.request().role.as_deref(), Some("read-only"));
    /// ```
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.request.role = Some(role.into());
        self
    }

    /// Sets all extra permissions `<resource>:<action>`.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci").scopes(["billing:read", "usage:read"]);
    /// assert_eq!(b.request().scopes.as_ref().map(Vec::len), Some(2));
    /// ```
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Adds one permission `<resource>:<action>`.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci").scope("billing:read").scope("usage:read");
    /// assert_eq!(b.request().scopes.as_ref().map(Vec::len), Some(2));
    /// ```
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.request
            .scopes
            .get_or_insert_with(Vec::new)
            .push(scope.into());
        self
    }

    /// Sets the resources the token is limited to (default: all).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use tokenops_client::{ResourceRef, Resources};
    /// let b = client.create_token("ci").resources(Resources::list([ResourceRef::new("site", "s-1")]));
    /// assert!(!b.request().resources.as_ref().unwrap().is_all());
    /// ```
    pub fn resources(mut self, resources: Resources) -> Self {
        self.request.resources = Some(resources);
        self
    }

    /// Adds one resource the token is limited to.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use tokenops_client::ResourceRef;
    /// let b = client
    ///     .create_token("ci")
    ///     .resource(ResourceRef::new("site", "s-1"))
    ///     .resource(ResourceRef::new("device", "d-7"));
    /// assert!(b.request().resources.as_ref().unwrap().allows(&ResourceRef::new("device", "d-7")));
    /// ```
    pub fn resource(mut self, resource: ResourceRef) -> Self {
        match &mut self.request.resources {
            Some(Resources::List(items)) => items.push(resource),
            _ => self.request.resources = Some(Resources::list([resource])),
        }
        self
    }

    /// How long the token lives; exclusive with [`expires_at`](Self::expires_at).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use std::time::Duration;
    /// let b = client.create_token("ci").lifetime(Duration::from_secs(30 * 86_400));
    /// assert_eq!(b.request().lifetime.as_deref(), Some("720h"));
    /// ```
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.request.lifetime = Some(format_duration(lifetime));
        self
    }

    /// When the token expires; exclusive with [`lifetime`](Self::lifetime).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let at = chrono::Utc::now() + chrono::TimeDelta::days(7);
    /// let b = client.create_token("ci").expires_at(at);
    /// assert_eq!(b.request().expires_at, Some(at));
    /// ```
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.request.expires_at = Some(at);
        self
    }

    /// Sets all labels.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let labels = tokenops_client::Labels::from([("team".to_string(), "web".to_string())]);
    /// let b = client.create_token("ci").labels(labels);
    /// assert_eq!(b.request().labels.as_ref().unwrap()["team"], "web");
    /// ```
    pub fn labels(mut self, labels: Labels) -> Self {
        self.request.labels = Some(labels);
        self
    }

    /// Adds one label.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci").label("team", "web").label("managed-by", "terraform");
    /// assert_eq!(b.request().labels.as_ref().unwrap().len(), 2);
    /// ```
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request
            .labels
            .get_or_insert_with(Labels::new)
            .insert(key.into(), value.into());
        self
    }

    /// The `Idempotency-Key` for this call. By default a fresh UUID is made
    /// per `send`; set your own to make a create survive a restart of the
    /// caller (e.g. derived from a Kubernetes object's UID and generation).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// // Stable across restarts of the caller: derived from what is being created.
    /// let b = client.create_token("ci").idempotency_key("apitoken-3f2a-gen-4");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The request body as built so far.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let b = client.create_token("ci");
    /// assert_eq!(b.request().name, "ci");
    /// ```
    pub fn request(&self) -> &CreateTokenRequest {
        &self.request
    }

    /// Creates the token. Retries reuse one idempotency key, so at most one
    /// token is created however often the call is repeated.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let created = client.create_token("ci").role("read-only").send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<CreatedToken> {
        let mut call =
            Call::new("create_token", Method::POST, &["v1", "tokens"]).json(&self.request)?;
        call.idempotency_key = Some(self.idempotency_key.unwrap_or_else(new_idempotency_key));
        self.client.execute_json(call).await
    }
}
into_future!(CreateToken, CreatedToken);

/// Builder for [`Client::list_tokens`]: one page, or all pages with [`all`](Self::all).
///
/// ```no_run
/// use tokenops_client::{Client, TokenStatus};
///
/// # async fn run(client: Client) -> tokenops_client::Result<()> {
/// let page = client.list_tokens().status(TokenStatus::Active).label("team", "web").limit(50).await?;
/// for token in &page.items {
///     println!("{} {}", token.id, token.name);
/// }
/// let everything = client.list_tokens().all().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is sent or awaited"]
pub struct ListTokens {
    client: Client,
    status: Option<TokenStatus>,
    all_statuses: bool,
    project: Option<String>,
    name: Option<String>,
    selector: Vec<String>,
    limit: Option<u32>,
    page_token: Option<String>,
}

impl ListTokens {
    /// Only tokens in this state.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().status(tokenops_client::TokenStatus::Revoked);
    /// ```
    pub fn status(mut self, status: TokenStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Tokens in every state, revoked ones included (by default the server
    /// lists active and expired tokens).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().all_statuses();
    /// ```
    pub fn all_statuses(mut self) -> Self {
        self.all_statuses = true;
        self
    }

    /// Only tokens of this project (organisation tokens list every project by default).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().project("payments");
    /// ```
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Only tokens with this name.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().name("ci-deployer");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only tokens carrying this label (repeat to require several).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// // tokens with both labels
    /// let list = client.list_tokens().label("team", "web").label("env", "prod");
    /// ```
    pub fn label(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.selector
            .push(format!("{}={}", key.as_ref(), value.as_ref()));
        self
    }

    /// Only tokens matching a label selector `k=v,k2=v2` (combined with any [`label`](Self::label)).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().selector("team=web,env=prod");
    /// ```
    pub fn selector(mut self, selector: impl Into<String>) -> Self {
        self.selector.push(selector.into());
        self
    }

    /// Page size; the server caps it.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().limit(100);
    /// ```
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after a previous page (its `next_page_token`).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let list = client.list_tokens().limit(100).page_token("token-from-the-previous-page");
    /// ```
    pub fn page_token(mut self, page_token: impl Into<String>) -> Self {
        self.page_token = Some(page_token.into());
        self
    }

    /// Fetches one page.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let page = client.list_tokens().limit(10).send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<Page<Token>> {
        let selector = (!self.selector.is_empty()).then(|| self.selector.join(","));
        let call = Call::new("list_tokens", Method::GET, &["v1", "tokens"])
            .query("status", self.status)
            .query("all", self.all_statuses.then_some(true))
            .query("project", self.project)
            .query("name", self.name)
            .query("label", selector)
            .query("limit", self.limit)
            .query("page_token", self.page_token);
        self.client.execute_json(call).await
    }

    /// Fetches every page from this one on and returns all tokens.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let every_active = client.list_tokens().status(tokenops_client::TokenStatus::Active).all().await?;
    /// # Ok(()) }
    /// ```
    pub async fn all(self) -> Result<Vec<Token>> {
        follow_pages(self, |b, t| b.page_token(t), |b| b.send()).await
    }
}
into_future!(ListTokens, Page<Token>);

/// Fetches pages until the server stops returning a next page token.
pub(crate) async fn follow_pages<B, T, F>(
    mut builder: B,
    set_token: impl Fn(B, String) -> B,
    send: impl Fn(B) -> F,
) -> Result<Vec<T>>
where
    B: Clone,
    F: Future<Output = Result<Page<T>>>,
{
    let mut out = Vec::new();
    let mut previous: Option<String> = None;
    loop {
        let page = send(builder.clone()).await?;
        out.extend(page.items);
        match page.next_page_token {
            None => return Ok(out),
            Some(next) if previous.as_deref() == Some(next.as_str()) => {
                return Err(Error::Server {
                    status: 200,
                    code: "pagination_loop".into(),
                    detail: "the server returned the same page token twice".into(),
                });
            }
            Some(next) => {
                builder = set_token(builder, next.clone());
                previous = Some(next);
            }
        }
    }
}

/// Builder for [`Client::update_token`]: only name, description and labels can change.
///
/// ```no_run
/// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
/// let token = client.update_token("tok_123").name("ci-deployer").clear_description().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is sent or awaited"]
pub struct UpdateToken {
    client: Client,
    id: String,
    request: UpdateTokenRequest,
}

impl UpdateToken {
    /// New display name.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let update = client.update_token("tok_123").name("ci-deployer");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.request.name = Some(name.into());
        self
    }

    /// New description.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let update = client.update_token("tok_123").description("used by the nightly export");
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.request.description = Some(description.into());
        self
    }

    /// Removes the description.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let update = client.update_token("tok_123").clear_description();
    /// ```
    pub fn clear_description(mut self) -> Self {
        self.request.description = Some(String::new());
        self
    }

    /// Replaces all labels (an empty map removes them all).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let labels = tokenops_client::Labels::from([("team".to_string(), "data".to_string())]);
    /// let update = client.update_token("tok_123").labels(labels);
    /// ```
    pub fn labels(mut self, labels: Labels) -> Self {
        self.request.labels = Some(labels);
        self
    }

    /// Applies the change and returns the updated token.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let token = client.update_token("tok_123").name("renamed").send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<Token> {
        let call = Call::new("update_token", Method::PATCH, &["v1", "tokens", &self.id])
            .json(&self.request)?;
        self.client.execute_json(call).await
    }
}
into_future!(UpdateToken, Token);

/// Builder for [`Client::regenerate_token`].
///
/// ```no_run
/// use std::time::Duration;
/// use secrecy::ExposeSecret;
///
/// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
/// let renewed = client
///     .regenerate_token("tok_123")
///     .lifetime(Duration::from_secs(90 * 86_400))
///     .grace_period(Duration::from_secs(3600))
///     .await?;
/// let new_value = renewed.secret.expose_secret();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is sent or awaited"]
pub struct RegenerateToken {
    client: Client,
    id: String,
    request: RegenerateRequest,
    idempotency_key: Option<String>,
}

impl RegenerateToken {
    /// New lifetime from now; without this or [`expires_at`](Self::expires_at)
    /// the token keeps the lifetime it was created with.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use std::time::Duration;
    /// let regen = client.regenerate_token("tok_123").lifetime(Duration::from_secs(90 * 86_400));
    /// ```
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.request.lifetime = Some(format_duration(lifetime));
        self
    }

    /// New expiry time.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let regen = client.regenerate_token("tok_123").expires_at(chrono::Utc::now() + chrono::TimeDelta::days(30));
    /// ```
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.request.expires_at = Some(at);
        self
    }

    /// How long the replaced value keeps verifying (default: it stops at once).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use std::time::Duration;
    /// // consumers have an hour to pick up the new value
    /// let regen = client.regenerate_token("tok_123").grace_period(Duration::from_secs(3600));
    /// ```
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.request.grace_period = Some(format_duration(grace));
        self
    }

    /// The `Idempotency-Key` for this call (default: a fresh UUID per `send`).
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// let regen = client.regenerate_token("tok_123").idempotency_key("apitoken-3f2a-rotation-7");
    /// ```
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Issues the new value. Retries reuse one idempotency key, so the token is
    /// regenerated once however often the call is repeated.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let renewed = client.regenerate_token("tok_123").send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(self) -> Result<CreatedToken> {
        let mut call = Call::new(
            "regenerate_token",
            Method::POST,
            &["v1", "tokens", &self.id, "regenerate"],
        )
        .json(&self.request)?;
        call.idempotency_key = Some(self.idempotency_key.unwrap_or_else(new_idempotency_key));
        self.client.execute_json(call).await
    }
}
into_future!(RegenerateToken, CreatedToken);

/// What a bulk revoke applies to.
///
/// ```
/// use tokenops_client::BulkRevoke;
/// let by_id = BulkRevoke::ids(["tok_1", "tok_2"]);
/// let by_label = BulkRevoke::selector("team=web,env=dev");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkRevoke {
    /// These tokens.
    Ids(Vec<String>),
    /// Every token matching a label selector `k=v,k2=v2`.
    Selector(String),
}

impl BulkRevoke {
    /// Revoke these tokens.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use tokenops_client::BulkRevoke;
    /// assert_eq!(BulkRevoke::ids(["tok_1"]), BulkRevoke::Ids(vec!["tok_1".to_string()]));
    /// ```
    pub fn ids<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BulkRevoke::Ids(ids.into_iter().map(Into::into).collect())
    }

    /// Revoke every token matching a label selector.
    ///
    /// ```
    /// # let client = tokenops_client::Client::builder("http://localhost:8080").build().unwrap();
    /// use tokenops_client::BulkRevoke;
    /// assert_eq!(BulkRevoke::selector("team=web"), BulkRevoke::Selector("team=web".into()));
    /// ```
    pub fn selector(selector: impl Into<String>) -> Self {
        BulkRevoke::Selector(selector.into())
    }
}

impl Client {
    /// Creates a token named `name`; see [`CreateToken`] for the options.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use secrecy::ExposeSecret;
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let created = client.create_token("ci").role("read-only").lifetime(Duration::from_secs(86_400)).await?;
    /// println!("{} = {}", created.token.id, created.secret.expose_secret());
    /// # Ok(()) }
    /// ```
    pub fn create_token(&self, name: impl Into<String>) -> CreateToken {
        self.create_token_from(CreateTokenRequest {
            name: name.into(),
            ..Default::default()
        })
    }

    /// Creates a token from a complete request body.
    ///
    /// ```no_run
    /// use tokenops_client::CreateTokenRequest;
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let request = CreateTokenRequest {
    ///     name: "ci".into(),
    ///     lifetime: Some("720h".into()),
    ///     ..Default::default()
    /// };
    /// let created = client.create_token_from(request).idempotency_key("ci-v1").await?;
    /// # Ok(()) }
    /// ```
    pub fn create_token_from(&self, request: CreateTokenRequest) -> CreateToken {
        CreateToken {
            client: self.clone(),
            request,
            idempotency_key: None,
        }
    }

    /// Lists tokens (masked), one page at a time or all; see [`ListTokens`].
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let page = client.list_tokens().limit(20).await?;
    /// if let Some(next) = page.next_page_token {
    ///     let more = client.list_tokens().limit(20).page_token(next).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list_tokens(&self) -> ListTokens {
        ListTokens {
            client: self.clone(),
            status: None,
            all_statuses: false,
            project: None,
            name: None,
            selector: Vec::new(),
            limit: None,
            page_token: None,
        }
    }

    /// Every token matching the filters of `list`, following all pages.
    /// Shorthand for `list.all()`.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let mine = client.list_all_tokens(client.list_tokens().label("managed-by", "terraform")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_all_tokens(&self, list: ListTokens) -> Result<Vec<Token>> {
        list.all().await
    }

    /// One token (masked).
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// match client.get_token("tok_123").await {
    ///     Ok(token) => println!("{} is {}", token.id, token.status),
    ///     Err(e) if e.is_not_found() => println!("gone"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_token(&self, id: &str) -> Result<Token> {
        self.execute_json(Call::new("get_token", Method::GET, &["v1", "tokens", id]))
            .await
    }

    /// Changes a token's name, description or labels; see [`UpdateToken`].
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let token = client.update_token("tok_123").description("used by the nightly export").await?;
    /// # Ok(()) }
    /// ```
    pub fn update_token(&self, id: impl Into<String>) -> UpdateToken {
        UpdateToken {
            client: self.clone(),
            id: id.into(),
            request: UpdateTokenRequest::default(),
        }
    }

    /// Issues a new value (and expiry) for the same token id; see [`RegenerateToken`].
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let renewed = client.regenerate_token("tok_123").await?;
    /// assert_eq!(renewed.token.id, "tok_123");
    /// # Ok(()) }
    /// ```
    pub fn regenerate_token(&self, id: impl Into<String>) -> RegenerateToken {
        RegenerateToken {
            client: self.clone(),
            id: id.into(),
            request: RegenerateRequest::default(),
            idempotency_key: None,
        }
    }

    /// Revokes one token; its record stays for audit. Revoking a revoked token
    /// is not an error.
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let token = client.revoke_token("tok_123").await?;
    /// assert_eq!(token.status, tokenops_client::TokenStatus::Revoked);
    /// # Ok(()) }
    /// ```
    pub async fn revoke_token(&self, id: &str) -> Result<Token> {
        self.execute_json(Call::new(
            "revoke_token",
            Method::POST,
            &["v1", "tokens", id, "revoke"],
        ))
        .await
    }

    /// Revokes one token `after` from now instead of at once: its expiry is
    /// brought forward, so consumers keep working until then (an overlap, as
    /// when a replacement is being rolled out).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let token = client.revoke_token_after("tok_123", Duration::from_secs(3600)).await?;
    /// println!("works until {:?}", token.expires_at);
    /// # Ok(()) }
    /// ```
    pub async fn revoke_token_after(&self, id: &str, after: Duration) -> Result<Token> {
        let body = crate::RevokeRequest {
            after: Some(format_duration(after)),
        };
        let call = Call::new(
            "revoke_token",
            Method::POST,
            &["v1", "tokens", id, "revoke"],
        )
        .json(&body)?;
        self.execute_json(call).await
    }

    /// Deletes a token permanently. A `404` answering a *repeated* attempt
    /// counts as success (an earlier attempt deleted it); a `404` on the first
    /// attempt is [`Error::NotFound`].
    ///
    /// ```no_run
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// client.delete_token("tok_123").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_token(&self, id: &str) -> Result<()> {
        let mut call = Call::new("delete_token", Method::DELETE, &["v1", "tokens", id]);
        call.not_found_after_retry_is_success = true;
        self.execute(call).await.map(|_| ())
    }

    /// Revokes several tokens at once, by id or by label selector, and returns
    /// how many active tokens this revoked, the ids that name no token, and the
    /// tokens left alone (outside the caller's authority, or the caller itself
    /// when a selector matched it).
    ///
    /// Repeating a bulk revoke is safe, but when an attempt's answer was lost
    /// and the call was retried, the count covers only the last attempt (the
    /// tokens the lost one revoked were no longer active). Callers that need
    /// an exact figure list the matching tokens afterwards.
    ///
    /// ```no_run
    /// use tokenops_client::BulkRevoke;
    /// # async fn run(client: tokenops_client::Client) -> tokenops_client::Result<()> {
    /// let outcome = client.revoke_tokens(BulkRevoke::selector("team=web")).await?;
    /// println!("revoked {}", outcome.revoked);
    /// # Ok(()) }
    /// ```
    pub async fn revoke_tokens(&self, target: BulkRevoke) -> Result<BulkRevokeResponse> {
        let body = match target {
            BulkRevoke::Ids(ids) => BulkRevokeRequest {
                ids: Some(ids),
                selector: None,
            },
            BulkRevoke::Selector(s) => BulkRevokeRequest {
                ids: None,
                selector: Some(s),
            },
        };
        let call =
            Call::new("bulk_revoke", Method::POST, &["v1", "tokens", "revoke"]).json(&body)?;
        self.execute_json(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::builder("http://127.0.0.1:9").build().unwrap()
    }

    #[test]
    fn create_builder_fills_the_request() {
        let b = client()
            .create_token("n")
            .scope("billing:read")
            .scope("usage:read")
            .resource(ResourceRef::new("site", "s-1"))
            .resource(ResourceRef::new("device", "d-1"))
            .lifetime(Duration::from_secs(5400))
            .label("a", "b");
        let r = b.request();
        assert_eq!(r.name, "n");
        assert_eq!(
            r.scopes.as_deref(),
            Some(&["billing:read".to_string(), "usage:read".to_string()][..])
        );
        assert_eq!(
            r.resources,
            Some(Resources::list([
                ResourceRef::new("site", "s-1"),
                ResourceRef::new("device", "d-1")
            ]))
        );
        assert_eq!(r.lifetime.as_deref(), Some("1h30m"));
        assert_eq!(
            r.labels.as_ref().unwrap().get("a").map(String::as_str),
            Some("b")
        );
    }

    #[test]
    fn handles_and_errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Client>();
        send_sync::<CreateToken>();
        send_sync::<ListTokens>();
        send_sync::<crate::Verify>();
        send_sync::<CreatedToken>();
        send_sync::<Error>();
    }

    #[test]
    fn created_token_debug_hides_the_secret() {
        let json = serde_json::json!({
            "token": {"id": "tok_1", "project": "default", "name": "n", "status": "active",
                      "masked": "tko_…abcd", "created_at": "2026-01-01T00:00:00Z",
                      "updated_at": "2026-01-01T00:00:00Z", "generation": 0},
            "secret": "tko_supersecretvalue",
        });
        let created: CreatedToken = serde_json::from_value(json).unwrap();
        assert!(!format!("{created:?}").contains("supersecret"));
    }
}
