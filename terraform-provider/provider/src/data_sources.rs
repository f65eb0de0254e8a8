//! Data sources `tokenops_api_token` (one token by id) and
//! `tokenops_api_tokens` (a filtered list). Both show tokens masked; no
//! data source ever returns a token value.

use std::collections::BTreeMap;

use tfplugin::{DataSource, Diagnostic, Diagnostics, Result, Value};
use tokenops_client::{Resources, Token, TokenStatus};

use crate::backend::{Backend, api_error, labels_from_backend};
use crate::token::timestamp;

tfplugin::model! {
    /// One resource a token is limited to.
    pub struct ResourceEntry {
        /// Resource type.
        #[tf(computed)]
        pub r#type: String,
        /// Resource id.
        #[tf(computed)]
        pub id: String,
    }
}

tfplugin::model! {
    /// A token as listed by `tokenops_api_tokens`.
    pub struct TokenEntry {
        /// The token's id.
        #[tf(computed)]
        pub id: String,
        /// Display name.
        #[tf(computed)]
        pub name: String,
        /// Description.
        #[tf(computed)]
        pub description: Option<String>,
        /// Project.
        #[tf(computed)]
        pub project: String,
        /// Role.
        #[tf(computed)]
        pub role: Option<String>,
        /// Scopes.
        #[tf(computed)]
        pub scopes: Vec<String>,
        /// Resources; empty means all.
        #[tf(computed, nested)]
        pub resources: Vec<ResourceEntry>,
        /// Labels, including `managed-by`.
        #[tf(computed)]
        pub labels: BTreeMap<String, String>,
        /// Masked value.
        #[tf(computed)]
        pub masked: String,
        /// `active`, `expired` or `revoked`.
        #[tf(computed)]
        pub status: String,
        /// Expiry (RFC 3339).
        #[tf(computed)]
        pub expires_at: Option<String>,
        /// Creation time (RFC 3339).
        #[tf(computed)]
        pub created_at: String,
    }
}

fn resources_of(token: &Token) -> Vec<ResourceEntry> {
    match &token.resources {
        Resources::All(_) => Vec::new(),
        Resources::List(items) => items
            .iter()
            .map(|r| ResourceEntry {
                r#type: r.kind.clone(),
                id: r.id.clone(),
            })
            .collect(),
    }
}

impl TokenEntry {
    fn from_token(t: &Token) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            description: t.description.clone().filter(|d| !d.is_empty()),
            project: t.project.clone(),
            role: t.role.clone(),
            scopes: t.scopes.clone(),
            resources: resources_of(t),
            labels: t.labels.clone(),
            masked: t.masked.clone(),
            status: t.status.to_string(),
            expires_at: t.expires_at.map(timestamp),
            created_at: timestamp(t.created_at),
        }
    }
}

tfplugin::model! {
    /// Looks up one token by id. Shows it masked; the value is never
    /// available from a data source.
    pub struct TokenLookup {
        /// The token's id (`tok_…`).
        #[tf(required)]
        pub id: Value<String>,
        /// Display name.
        #[tf(computed)]
        pub name: Value<String>,
        /// Description.
        #[tf(computed)]
        pub description: Value<String>,
        /// Project.
        #[tf(computed)]
        pub project: Value<String>,
        /// Role.
        #[tf(computed)]
        pub role: Value<String>,
        /// Scopes.
        #[tf(computed)]
        pub scopes: Value<Vec<String>>,
        /// Resources the token is limited to; empty means all.
        #[tf(computed, nested)]
        pub resources: Value<Vec<ResourceEntry>>,
        /// Labels, without `managed-by` (see `managed_by`).
        #[tf(computed)]
        pub labels: Value<BTreeMap<String, String>>,
        /// Which front end manages the token (`terraform`,
        /// `tokenops-operator`), from its `managed-by` label.
        #[tf(computed)]
        pub managed_by: Value<String>,
        /// Masked value, e.g. `tko_…a1B2`.
        #[tf(computed)]
        pub masked: Value<String>,
        /// `active`, `expired` or `revoked`.
        #[tf(computed)]
        pub status: Value<String>,
        /// Expiry (RFC 3339).
        #[tf(computed)]
        pub expires_at: Value<String>,
        /// Creation time (RFC 3339).
        #[tf(computed)]
        pub created_at: Value<String>,
        /// Last regeneration (RFC 3339); null if never.
        #[tf(computed)]
        pub regenerated_at: Value<String>,
    }
}

/// `data "tokenops_api_token"`.
pub struct TokenDataSource {
    backend: Backend,
}

impl TokenDataSource {
    /// The data source, using the provider's shared connection.
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

fn opt(v: Option<String>) -> Value<String> {
    v.map_or(Value::Null, Value::Known)
}

#[tfplugin::async_trait]
impl DataSource for TokenDataSource {
    type State = TokenLookup;

    async fn validate(&self, config: &TokenLookup, diags: &mut Diagnostics) {
        if config.id.known().is_some_and(|id| id.trim().is_empty()) {
            diags.push(
                Diagnostic::error("Invalid id")
                    .with_detail("Give the id of a token, e.g. \"tok_…\".")
                    .with_attribute("id"),
            );
        }
    }

    async fn read(&self, mut config: TokenLookup) -> Result<TokenLookup> {
        let Value::Known(id) = config.id.clone() else {
            return Err(Diagnostic::error("Token id not known")
                .with_attribute("id")
                .into());
        };
        let client = self.backend.client()?;
        let t = client.get_token(&id).await.map_err(|e| {
            if e.is_not_found() {
                Diagnostics::from(
                    Diagnostic::error(format!("Token {id} not found"))
                        .with_detail(format!(
                            "The backend has no token with id {id:?} in this project."
                        ))
                        .with_attribute("id"),
                )
            } else {
                api_error(&format!("Cannot read token {id}"), &e)
            }
        })?;
        config.name = Value::Known(t.name.clone());
        config.description = opt(t.description.clone().filter(|d| !d.is_empty()));
        config.project = Value::Known(t.project.clone());
        config.role = opt(t.role.clone());
        config.scopes = Value::Known(t.scopes.clone());
        config.resources = Value::Known(resources_of(&t));
        config.labels = Value::Known(labels_from_backend(&t.labels));
        config.managed_by = opt(crate::backend::managed_by(&t).map(str::to_owned));
        config.masked = Value::Known(t.masked.clone());
        config.status = Value::Known(t.status.to_string());
        config.expires_at = opt(t.expires_at.map(timestamp));
        config.created_at = Value::Known(timestamp(t.created_at));
        config.regenerated_at = opt(t.regenerated_at.map(timestamp));
        Ok(config)
    }
}

tfplugin::model! {
    /// Lists tokens of the provider's project, optionally filtered by name,
    /// status and labels. Tokens are shown masked.
    pub struct TokenList {
        /// Only tokens with exactly this name.
        #[tf(optional)]
        pub name: Value<String>,
        /// Only tokens in this state: `active`, `expired` or `revoked`.
        #[tf(optional)]
        pub status: Value<String>,
        /// Only tokens carrying all these labels (e.g. `{ team = "web" }`;
        /// `managed-by` may be used here to select by owner).
        #[tf(optional)]
        pub labels: Value<BTreeMap<String, String>>,
        /// The matching tokens, in the backend's order.
        #[tf(computed, nested)]
        pub tokens: Value<Vec<TokenEntry>>,
        /// The ids of the matching tokens.
        #[tf(computed)]
        pub ids: Value<Vec<String>>,
    }
}

/// `data "tokenops_api_tokens"`.
pub struct TokensDataSource {
    backend: Backend,
}

impl TokensDataSource {
    /// The data source, using the provider's shared connection.
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

#[tfplugin::async_trait]
impl DataSource for TokensDataSource {
    type State = TokenList;

    async fn validate(&self, config: &TokenList, diags: &mut Diagnostics) {
        if let Value::Known(status) = &config.status
            && let Err(e) = status.parse::<TokenStatus>()
        {
            diags.push(
                Diagnostic::error("Invalid status")
                    .with_detail(e)
                    .with_attribute("status"),
            );
        }
        if let Value::Known(labels) = &config.labels {
            for (k, v) in labels {
                if let Err(e) = tokenops_client::validate_label_key(k)
                    .and_then(|()| tokenops_client::validate_label_value(v))
                {
                    diags.push(
                        Diagnostic::error("Invalid label filter")
                            .with_detail(e)
                            .with_attribute(tfplugin::AttributePath::new("labels").key(k.clone())),
                    );
                }
            }
        }
    }

    async fn read(&self, mut config: TokenList) -> Result<TokenList> {
        let client = self.backend.client()?;
        let mut list = client.list_tokens();
        if let Value::Known(name) = &config.name {
            list = list.name(name.clone());
        }
        if let Value::Known(status) = &config.status {
            let status = status.parse::<TokenStatus>().map_err(|e| {
                Diagnostics::from(
                    Diagnostic::error("Invalid status")
                        .with_detail(e)
                        .with_attribute("status"),
                )
            })?;
            list = list.status(status);
        }
        if let Value::Known(labels) = &config.labels {
            for (k, v) in labels {
                list = list.label(k, v);
            }
        }
        let tokens = list
            .all()
            .await
            .map_err(|e| api_error("Cannot list tokens", &e))?;
        config.ids = Value::Known(tokens.iter().map(|t| t.id.clone()).collect());
        config.tokens = Value::Known(tokens.iter().map(TokenEntry::from_token).collect());
        Ok(config)
    }
}
