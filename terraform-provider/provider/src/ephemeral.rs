//! Ephemeral resource `tokenops_api_token`: a short-lived token opened for
//! one Terraform run and revoked when Terraform closes it. Its value is
//! never written to a plan or to state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use secrecy::SecretString;
use tfplugin::{Diagnostic, Diagnostics, EphemeralResource, Opened, Result, Value};
use tokenops_client::{CreateTokenRequest, format_duration};

use crate::backend::{Backend, api_error, labels_for_backend};
use crate::token::{ResourceSelector, timestamp};
use crate::validate;

/// Lifetime of an ephemeral token when `lifetime` is not set.
pub const DEFAULT_LIFETIME: &str = "15m";

/// Label marking ephemeral tokens, so they are easy to find in the audit log.
pub const EPHEMERAL_LABEL: &str = "tokenops.dev/ephemeral";

tfplugin::model! {
    /// A short-lived token for one Terraform run: created when Terraform
    /// opens it (during plan and again during apply), revoked when Terraform
    /// closes it. The value never reaches the plan or the state; use it in
    /// provider blocks, other ephemeral resources or write-only attributes.
    ///
    /// The token carries the labels `managed-by=terraform` and
    /// `tokenops.dev/ephemeral=true`.
    pub struct EphemeralApiToken {
        /// Display name, 1–128 characters.
        #[tf(required)]
        pub name: Value<String>,
        /// Free text, at most 1024 characters.
        #[tf(optional)]
        pub description: Value<String>,
        /// Name of a permission bundle defined by the backend, e.g. `read-only`.
        #[tf(optional)]
        pub role: Value<String>,
        /// Extra permissions `<resource>:<action>`.
        #[tf(optional)]
        pub scopes: Value<Vec<String>>,
        /// Resources the token is limited to (`{ type, id }`); omitted means all.
        #[tf(optional, nested)]
        pub resources: Value<BTreeSet<ResourceSelector>>,
        /// How long the token lives at most (default `"15m"`); it is revoked
        /// as soon as Terraform is done with it anyway.
        #[tf(optional)]
        pub lifetime: Value<String>,
        /// Extra labels.
        #[tf(optional)]
        pub labels: Value<BTreeMap<String, String>>,
        /// The token's id.
        #[tf(computed)]
        pub id: Value<String>,
        /// The secret value, for this run only.
        #[tf(computed, sensitive)]
        pub token: Value<SecretString>,
        /// The masked value.
        #[tf(computed)]
        pub masked: Value<String>,
        /// When the token expires (RFC 3339).
        #[tf(computed)]
        pub expires_at: Value<String>,
    }
}

/// `ephemeral "tokenops_api_token"`.
pub struct EphemeralToken {
    backend: Backend,
}

impl EphemeralToken {
    /// The ephemeral resource, using the provider's shared connection.
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

fn lifetime(config: &EphemeralApiToken) -> Duration {
    config
        .lifetime
        .known()
        .and_then(|l| tokenops_client::parse_duration(l).ok())
        .unwrap_or(Duration::from_secs(15 * 60))
}

#[tfplugin::async_trait]
impl EphemeralResource for EphemeralToken {
    type State = EphemeralApiToken;

    async fn validate(&self, config: &EphemeralApiToken, diags: &mut Diagnostics) {
        validate::name(&config.name, diags);
        validate::description(&config.description, diags);
        validate::scopes(&config.scopes, diags);
        validate::resources(&config.resources, diags);
        validate::labels("labels", &config.labels, diags);
        validate::duration("lifetime", &config.lifetime, diags);
        validate::combinations(&config.role, &config.scopes, None, None, None, diags);
    }

    async fn open(&self, mut config: EphemeralApiToken) -> Result<Opened<EphemeralApiToken>> {
        let connection = self.backend.get()?;
        let mut labels = labels_for_backend(config.labels.known());
        labels.insert(EPHEMERAL_LABEL.to_owned(), "true".to_owned());
        let request = CreateTokenRequest {
            name: config.name.known().cloned().unwrap_or_default(),
            description: config.description.known().cloned(),
            project: Some(connection.project.clone()),
            role: config.role.known().cloned(),
            scopes: config.scopes.known().cloned(),
            resources: config.resources.known().map(|items| {
                tokenops_client::Resources::list(items.iter().map(|r| {
                    tokenops_client::ResourceRef::new(
                        r.r#type.known().cloned().unwrap_or_default(),
                        r.id.known().cloned().unwrap_or_default(),
                    )
                }))
            }),
            lifetime: Some(format_duration(lifetime(&config))),
            expires_at: None,
            labels: Some(labels),
        };
        let created = connection
            .client
            .create_token_from(request)
            .await
            .map_err(|e| api_error("Cannot open ephemeral token", &e))?;
        let id = created.token.id.clone();
        tracing::info!(%id, "opened ephemeral token");
        config.id = Value::Known(id.clone());
        config.token = Value::Known(created.secret);
        config.masked = Value::Known(created.token.masked.clone());
        config.expires_at = created
            .token
            .expires_at
            .map_or(Value::Null, |t| Value::Known(timestamp(t)));
        Ok(Opened {
            result: config,
            private: Some(id.into_bytes()),
            renew_at: None,
        })
    }

    async fn close(&self, private: Option<Vec<u8>>) -> Result<()> {
        let Some(id) = private.and_then(|p| String::from_utf8(p).ok()) else {
            return Err(Diagnostic::error("Cannot close ephemeral token")
                .with_detail("Terraform handed back no token id. This is a bug in Terraform or the provider.")
                .into());
        };
        match self.backend.client()?.revoke_token(&id).await {
            Ok(_) => {
                tracing::info!(%id, "revoked ephemeral token");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(api_error(
                &format!("Cannot revoke ephemeral token {id}"),
                &e,
            )),
        }
    }
}
