//! `terraform-provider-floor`: the benchmark's floor for the
//! `tokenops_api_token` schema. One resource, `floor_api_token`, with
//! exactly the tokenops resource's state type ([`ApiToken`]) and provider
//! configuration ([`ProviderConfig`]), served by the same `tfplugin`, but no
//! backend and no logic: create fills the computed attributes with values of
//! the same shape as the backend's, read returns the state unchanged, plan
//! accepts Terraform's proposal.
//!
//! A no-change plan of 100 of these is what Terraform itself costs for this
//! schema through a plugin; `examples/bench.rs` reports tokenops against it
//! and against `terraform_data`. Built with
//! `cargo build --release -p terraform-provider-tokenops --examples`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Duration, Utc};
use secrecy::SecretString;
use terraform_provider_tokenops::ProviderConfig;
use terraform_provider_tokenops::token::{ApiToken, timestamp};
use tfplugin::{ConfigureRequest, Provider, Registry, Resource, Result, Value};

struct FloorProvider;

#[tfplugin::async_trait]
impl Provider for FloorProvider {
    type Config = ProviderConfig;

    fn register(&self, registry: &mut Registry) {
        registry.resource("floor_api_token", FloorToken::default());
    }

    async fn configure(&self, _request: ConfigureRequest<ProviderConfig>) -> Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct FloorToken {
    next_id: AtomicU64,
}

#[tfplugin::async_trait]
impl Resource for FloorToken {
    type State = ApiToken;

    async fn read(&self, state: ApiToken, _private: &mut Vec<u8>) -> Result<Option<ApiToken>> {
        Ok(Some(state))
    }

    async fn create(
        &self,
        mut planned: ApiToken,
        _config: ApiToken,
        _private: &mut Vec<u8>,
    ) -> Result<ApiToken> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now();
        if !matches!(planned.project, Value::Known(_)) {
            planned.project = Value::Known("default".into());
        }
        planned.id = Value::Known(format!("tok_floor{n:011}"));
        planned.token = Value::Known(SecretString::from(format!("tko_floor{n:023}")));
        planned.masked = Value::Known(format!("tko_…{:04}", n % 10_000));
        planned.expires_at = Value::Known(timestamp(now + Duration::days(30)));
        planned.status = Value::Known("active".into());
        planned.created_at = Value::Known(timestamp(now));
        planned.regenerated_at = Value::Null;
        planned.renewal_at = Value::Known(timestamp(now + Duration::days(20)));
        Ok(planned)
    }

    async fn update(
        &self,
        _prior: ApiToken,
        planned: ApiToken,
        _config: ApiToken,
        _private: &mut Vec<u8>,
    ) -> Result<ApiToken> {
        Ok(planned)
    }

    async fn delete(&self, _prior: ApiToken, _private: &[u8]) -> Result<()> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match tfplugin::serve(FloorProvider).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-floor: {e}");
            ExitCode::FAILURE
        }
    }
}
