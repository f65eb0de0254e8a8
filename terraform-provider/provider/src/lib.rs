//! `terraform-provider-tokenops`: the Terraform front end of tokenops.
//!
//! The provider offers
//!
//! - resource `tokenops_api_token` ([`token`]): a token managed as code,
//!   regenerated in place when its rotation window opens;
//! - data sources `tokenops_api_token` and `tokenops_api_tokens`
//!   ([`data_sources`]);
//! - ephemeral resource `tokenops_api_token` ([`ephemeral`]): a short-lived
//!   token for one Terraform run, revoked when Terraform closes it.
//!
//! Everything talks to the backend through `tokenops-client`; the Terraform
//! protocol is `tfplugin`'s. The binary (`src/main.rs`) is a thin wrapper
//! over [`run`]; [`docs`] renders the registry documentation from the same
//! schemas Terraform sees.

pub mod backend;
pub mod config;
pub mod data_sources;
pub mod docs;
pub mod ephemeral;
pub mod token;
pub mod validate;

use tfplugin::{ConfigureRequest, Diagnostics, Provider, Registry, Result};

pub use backend::Backend;
pub use config::ProviderConfig;

/// The provider type name (`tokenops_…` resources, `provider "tokenops"`).
pub const PROVIDER_NAME: &str = "tokenops";

/// Label every token Terraform creates carries: `managed-by=terraform`.
pub const MANAGED_BY_TERRAFORM: &str = "terraform";

/// The `managed-by` value of tokens the Kubernetes operator owns.
pub const MANAGED_BY_OPERATOR: &str = "tokenops-operator";

/// The tokenops provider: its configuration and its resource types.
#[derive(Default)]
pub struct TokenOpsProvider {
    backend: Backend,
}

impl TokenOpsProvider {
    /// A provider that is not configured yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[tfplugin::async_trait]
impl Provider for TokenOpsProvider {
    type Config = ProviderConfig;

    fn register(&self, registry: &mut Registry) {
        registry
            .resource(
                "tokenops_api_token",
                token::ApiTokenResource::new(self.backend.clone()),
            )
            .data_source(
                "tokenops_api_token",
                data_sources::TokenDataSource::new(self.backend.clone()),
            )
            .data_source(
                "tokenops_api_tokens",
                data_sources::TokensDataSource::new(self.backend.clone()),
            )
            .ephemeral_resource(
                "tokenops_api_token",
                ephemeral::EphemeralToken::new(self.backend.clone()),
            );
    }

    async fn validate(&self, config: &ProviderConfig, diags: &mut Diagnostics) {
        config::validate(config, diags);
    }

    async fn configure(&self, request: ConfigureRequest<ProviderConfig>) -> Result<()> {
        let connection = config::connect(request.config).await?;
        self.backend.set(connection);
        Ok(())
    }
}

/// Serves the provider to Terraform (what the binary does without arguments).
pub async fn run() -> std::result::Result<(), tfplugin::ServeError> {
    tfplugin::serve(TokenOpsProvider::new()).await
}
