//! The gRPC services: tfplugin6 `Provider` on top of the erased resources,
//! plus go-plugin's controller and stdio services and the health check.
//!
//! Every provider callback runs under [`guarded`], which turns a panic into
//! a generic error diagnostic: the panic payload may contain secrets, so it
//! never reaches Terraform (the panic hook installed by [`crate::serve`] logs
//! only its location).

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use tokio::sync::{OnceCell, watch};
use tonic::{Request, Response, Status};

use crate::diag::{Diagnostic, Diagnostics, Result};
use crate::erased::{ErasedDataSource, ErasedEphemeral, ErasedResource};
use crate::model::TfValue;
use crate::path::AttributePath;
use crate::proto::grpc::health::v1 as health;
use crate::proto::plugin;
use crate::proto::tfplugin6 as pb;
use crate::provider::{ClientCapabilities, ConfigureRequest, Provider, Registry};
use crate::schema::Schema;
use crate::types::Type;
use crate::value::Dynamic;

/// The summary of the diagnostic that replaces a panic.
pub const PANIC_SUMMARY: &str = "Internal error in provider";

/// Runs a provider callback, turning a panic into an error diagnostic
/// without the panic's message. Also returns the warnings the callback
/// added with [`crate::warn`].
pub(crate) async fn guarded<T>(fut: impl Future<Output = Result<T>>) -> (Result<T>, Diagnostics) {
    let (result, warnings) =
        crate::diag::collect_warnings(AssertUnwindSafe(fut).catch_unwind()).await;
    let result = match result {
        Ok(result) => result,
        Err(_payload) => {
            tracing::error!("provider callback panicked; returning a generic error to Terraform");
            Err(Diagnostic::error(PANIC_SUMMARY)
                .with_detail(
                    "The provider hit an unexpected condition and stopped this operation. \
                     Run with TF_LOG=debug for the location, and report it to the provider's authors.",
                )
                .into())
        }
    };
    (result, warnings)
}

/// `diags` followed by the collected warnings, in wire form.
/// Runs a step whose only answer is diagnostics (the validate calls), under
/// [`guarded`]: its errors, its warnings and any panic, as Terraform wants them.
async fn diagnostics_of(step: impl Future<Output = Result<Diagnostics>>) -> Vec<pb::Diagnostic> {
    let (result, warnings) = guarded(step).await;
    with_warnings(result.unwrap_or_else(|d| d), &warnings)
}

fn with_warnings(diags: Diagnostics, warnings: &Diagnostics) -> Vec<pb::Diagnostic> {
    let mut all = diags;
    all.extend(warnings.clone());
    all.to_proto()
}

fn decode(value: Option<&pb::DynamicValue>, ty: &Type) -> Result<Dynamic> {
    let Some(value) = value else {
        return Ok(Dynamic::Null);
    };
    let decoded = if !value.msgpack.is_empty() {
        Dynamic::from_msgpack(&value.msgpack, ty)
    } else if !value.json.is_empty() {
        serde_json::from_slice(&value.json)
            .map_err(|e| crate::value::ValueError {
                path: AttributePath::root(),
                message: e.to_string(),
            })
            .and_then(|json| Dynamic::from_json(&json, ty))
    } else {
        Ok(Dynamic::Null)
    };
    decoded.map_err(|e| {
        Diagnostic::error("Invalid value from Terraform")
            .with_detail(e.to_string())
            .into()
    })
}

fn encode(value: &Dynamic, ty: &Type) -> Result<pb::DynamicValue> {
    let msgpack = value.to_msgpack(ty).map_err(|e| {
        Diagnostics::from(
            Diagnostic::error("Provider produced an invalid value").with_detail(e.to_string()),
        )
    })?;
    Ok(pb::DynamicValue {
        msgpack,
        json: Vec::new(),
    })
}

fn unknown_type(kind: &str, name: &str) -> Diagnostics {
    Diagnostic::error(format!("Unknown {kind} type"))
        .with_detail(format!("This provider has no {kind} type {name:?}."))
        .into()
}

fn capabilities(c: Option<&pb::ClientCapabilities>) -> ClientCapabilities {
    c.map(|c| ClientCapabilities {
        deferral_allowed: c.deferral_allowed,
        write_only_attributes_allowed: c.write_only_attributes_allowed,
    })
    .unwrap_or_default()
}

fn timestamp(t: std::time::SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// Terraform before 1.11 treats write-only attributes as ordinary ones and
/// would reject the plan that drops them; say so clearly instead.
fn write_only_unsupported(schema: &Schema, config: &Dynamic) -> Diagnostics {
    schema
        .attributes
        .iter()
        .filter(|a| a.write_only && config.get(&a.name).is_some_and(|v| !v.is_null()))
        .map(|a| {
            Diagnostic::error("Write-only attribute not supported")
                .with_detail(format!(
                    "The attribute {:?} is write-only, which needs Terraform 1.11 or later.",
                    a.name
                ))
                .with_attribute(AttributePath::new(a.name.clone()))
        })
        .collect()
}

/// Splits a result into (value, diagnostics) with a fallback value on error.
fn split<T>(result: Result<T>, fallback: T) -> (T, Diagnostics) {
    match result {
        Ok(v) => (v, Diagnostics::new()),
        Err(d) => (fallback, d),
    }
}

/// The tfplugin6 `Provider` gRPC service for a [`Provider`].
///
/// [`crate::serve`] runs it; tests can also call its RPC methods directly
/// (through [`crate::proto::tfplugin6::provider_server::Provider`]).
pub struct ProviderService<P: Provider> {
    provider: Arc<P>,
    provider_schema: Schema,
    resources: BTreeMap<String, Arc<dyn ErasedResource>>,
    data_sources: BTreeMap<String, Arc<dyn ErasedDataSource>>,
    ephemeral: BTreeMap<String, Arc<dyn ErasedEphemeral>>,
    configured: OnceCell<()>,
}

impl<P: Provider> ProviderService<P> {
    /// Builds the service: registers the provider's resource types.
    pub fn new(provider: P) -> Self {
        let mut registry = Registry::default();
        provider.register(&mut registry);
        Self {
            provider: Arc::new(provider),
            provider_schema: Schema::of::<P::Config>(0),
            resources: registry.resources,
            data_sources: registry.data_sources,
            ephemeral: registry.ephemeral,
            configured: OnceCell::new(),
        }
    }

    fn resource(&self, name: &str) -> Result<&Arc<dyn ErasedResource>> {
        self.resources
            .get(name)
            .ok_or_else(|| unknown_type("resource", name))
    }

    fn data_source(&self, name: &str) -> Result<&Arc<dyn ErasedDataSource>> {
        self.data_sources
            .get(name)
            .ok_or_else(|| unknown_type("data source", name))
    }

    fn ephemeral(&self, name: &str) -> Result<&Arc<dyn ErasedEphemeral>> {
        self.ephemeral
            .get(name)
            .ok_or_else(|| unknown_type("ephemeral resource", name))
    }

    fn schema_response(&self) -> pb::get_provider_schema::Response {
        let mut diags = self.provider_schema.check(false);
        let mut resource_schemas = std::collections::HashMap::new();
        for (name, r) in &self.resources {
            diags.extend(r.schema().check(true));
            resource_schemas.insert(name.clone(), r.schema().to_proto());
        }
        let mut data_source_schemas = std::collections::HashMap::new();
        for (name, d) in &self.data_sources {
            diags.extend(d.schema().check(false));
            data_source_schemas.insert(name.clone(), d.schema().to_proto());
        }
        let mut ephemeral_resource_schemas = std::collections::HashMap::new();
        for (name, e) in &self.ephemeral {
            diags.extend(e.schema().check(false));
            ephemeral_resource_schemas.insert(name.clone(), e.schema().to_proto());
        }
        pb::get_provider_schema::Response {
            provider: Some(self.provider_schema.to_proto()),
            resource_schemas,
            data_source_schemas,
            diagnostics: diags.to_proto(),
            provider_meta: None,
            server_capabilities: Some(server_capabilities()),
            functions: Default::default(),
            ephemeral_resource_schemas,
        }
    }
}

type RpcResult<T> = std::result::Result<Response<T>, Status>;

/// What this server tells Terraform it can do. The schema never changes
/// during a run, so Terraform may reuse the one it fetched from the first
/// instance instead of asking every instance it starts (each `plan` starts
/// several).
fn server_capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        get_provider_schema_optional: true,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for ProviderService<P> {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> RpcResult<pb::get_metadata::Response> {
        use pb::get_metadata as m;
        Ok(Response::new(m::Response {
            server_capabilities: Some(server_capabilities()),
            diagnostics: Vec::new(),
            data_sources: (self.data_sources.keys())
                .map(|n| m::DataSourceMetadata {
                    type_name: n.clone(),
                })
                .collect(),
            resources: (self.resources.keys())
                .map(|n| m::ResourceMetadata {
                    type_name: n.clone(),
                })
                .collect(),
            functions: Vec::new(),
            ephemeral_resources: (self.ephemeral.keys())
                .map(|n| m::EphemeralMetadata {
                    type_name: n.clone(),
                })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> RpcResult<pb::get_provider_schema::Response> {
        Ok(Response::new(self.schema_response()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> RpcResult<pb::validate_provider_config::Response> {
        let req = request.into_inner();
        let diagnostics = diagnostics_of(async {
            let config = decode(req.config.as_ref(), &self.provider_schema.value_type())?;
            let mut diags = Diagnostics::new();
            match P::Config::from_dynamic(config, &AttributePath::root()) {
                Ok(config) => self.provider.validate(&config, &mut diags).await,
                Err(e) if e.kind == crate::model::ConvertErrorKind::Unknown => {}
                Err(e) => {
                    diags.push(e.to_diagnostic());
                }
            }
            Ok(diags)
        })
        .await;
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics,
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> RpcResult<pb::validate_resource_config::Response> {
        let req = request.into_inner();
        let diagnostics = diagnostics_of(async {
            let r = self.resource(&req.type_name)?;
            let config = decode(req.config.as_ref(), &r.schema().value_type())?;
            let mut diags = Diagnostics::new();
            if !capabilities(req.client_capabilities.as_ref()).write_only_attributes_allowed {
                diags.extend(write_only_unsupported(r.schema(), &config));
            }
            diags.extend(r.validate(config).await);
            Ok(diags)
        })
        .await;
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> RpcResult<pb::validate_data_resource_config::Response> {
        let req = request.into_inner();
        let diagnostics = diagnostics_of(async {
            let d = self.data_source(&req.type_name)?;
            let config = decode(req.config.as_ref(), &d.schema().value_type())?;
            Ok(d.validate(config).await)
        })
        .await;
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> RpcResult<pb::validate_ephemeral_resource_config::Response> {
        let req = request.into_inner();
        let diagnostics = diagnostics_of(async {
            let e = self.ephemeral(&req.type_name)?;
            let config = decode(req.config.as_ref(), &e.schema().value_type())?;
            Ok(e.validate(config).await)
        })
        .await;
        Ok(Response::new(
            pb::validate_ephemeral_resource_config::Response { diagnostics },
        ))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> RpcResult<pb::upgrade_resource_state::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let r = self.resource(&req.type_name)?;
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() && !raw.flatmap.is_empty() {
                return Err(Diagnostic::error("Unsupported state format")
                    .with_detail("Pre-0.12 (flatmap) state cannot be upgraded by this provider.")
                    .into());
            }
            let json: serde_json::Value = if raw.json.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&raw.json).map_err(|e| {
                    Diagnostics::from(
                        Diagnostic::error("Invalid stored state").with_detail(e.to_string()),
                    )
                })?
            };
            let upgraded = r.upgrade(req.version, json).await?;
            encode(&upgraded, &r.schema().value_type())
        })
        .await;
        let (upgraded_state, diags) = match result {
            Ok(v) => (Some(v), Diagnostics::new()),
            Err(d) => (None, d),
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics: with_warnings(diags, &warnings),
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> RpcResult<pb::configure_provider::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let config = decode(req.config.as_ref(), &self.provider_schema.value_type())?;
            let config = P::Config::from_dynamic(config, &AttributePath::root())?;
            self.provider
                .configure(ConfigureRequest {
                    terraform_version: req.terraform_version.clone(),
                    config,
                    capabilities: capabilities(req.client_capabilities.as_ref()),
                })
                .await?;
            let _ = self.configured.set(());
            Ok(())
        })
        .await;
        let diags = result.err().unwrap_or_default();
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: with_warnings(diags, &warnings),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> RpcResult<pb::read_resource::Response> {
        let req = request.into_inner();
        let fallback = req.current_state.clone();
        let (result, warnings) = guarded(async {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let current = decode(req.current_state.as_ref(), &ty)?;
            let out = r.read(current, req.private.clone()).await?;
            Ok((encode(&out.state, &ty)?, out.private, out.diags))
        })
        .await;
        let response = match result {
            Ok((state, private, diags)) => pb::read_resource::Response {
                new_state: Some(state),
                diagnostics: with_warnings(diags, &warnings),
                private,
                deferred: None,
                new_identity: None,
            },
            // On error Terraform keeps what it had.
            Err(diags) => pb::read_resource::Response {
                new_state: fallback,
                diagnostics: with_warnings(diags, &warnings),
                private: req.private,
                deferred: None,
                new_identity: None,
            },
        };
        Ok(Response::new(response))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> RpcResult<pb::plan_resource_change::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let out = r
                .plan(
                    decode(req.prior_state.as_ref(), &ty)?,
                    decode(req.proposed_new_state.as_ref(), &ty)?,
                    decode(req.config.as_ref(), &ty)?,
                    req.prior_private.clone(),
                )
                .await?;
            Ok((encode(&out.planned, &ty)?, out))
        })
        .await;
        let response = match result {
            Ok((planned, out)) => pb::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: out
                    .requires_replace
                    .iter()
                    .map(AttributePath::to_proto)
                    .collect(),
                planned_private: out.private,
                diagnostics: with_warnings(out.diags, &warnings),
                ..Default::default()
            },
            Err(diags) => pb::plan_resource_change::Response {
                diagnostics: with_warnings(diags, &warnings),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> RpcResult<pb::apply_resource_change::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let out = r
                .apply(
                    decode(req.prior_state.as_ref(), &ty)?,
                    decode(req.planned_state.as_ref(), &ty)?,
                    decode(req.config.as_ref(), &ty)?,
                    req.planned_private.clone(),
                )
                .await?;
            Ok((encode(&out.state, &ty)?, out.private, out.diags))
        })
        .await;
        let response = match result {
            Ok((state, private, diags)) => pb::apply_resource_change::Response {
                new_state: Some(state),
                private,
                diagnostics: with_warnings(diags, &warnings),
                ..Default::default()
            },
            // A failed create leaves nothing; a failed update or delete
            // leaves the object as it was.
            Err(diags) => pb::apply_resource_change::Response {
                new_state: req.prior_state,
                private: req.planned_private,
                diagnostics: with_warnings(diags, &warnings),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> RpcResult<pb::import_resource_state::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let r = self.resource(&req.type_name)?;
            let state = r.import(&req.id).await?;
            encode(&state, &r.schema().value_type())
        })
        .await;
        let (imported, diags) = split(result.map(Some), None);
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: imported
                .map(|state| pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(state),
                    private: Vec::new(),
                    identity: None,
                })
                .into_iter()
                .collect(),
            diagnostics: with_warnings(diags, &warnings),
            deferred: None,
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> RpcResult<pb::read_data_source::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let d = self.data_source(&req.type_name)?;
            let ty = d.schema().value_type();
            let state = d.read(decode(req.config.as_ref(), &ty)?).await?;
            encode(&state, &ty)
        })
        .await;
        let (state, diags) = split(result.map(Some), None);
        Ok(Response::new(pb::read_data_source::Response {
            state,
            diagnostics: with_warnings(diags, &warnings),
            deferred: None,
        }))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<pb::open_ephemeral_resource::Request>,
    ) -> RpcResult<pb::open_ephemeral_resource::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let e = self.ephemeral(&req.type_name)?;
            let ty = e.schema().value_type();
            let out = e.open(decode(req.config.as_ref(), &ty)?).await?;
            Ok((encode(&out.result, &ty)?, out))
        })
        .await;
        let response = match result {
            Ok((value, out)) => pb::open_ephemeral_resource::Response {
                diagnostics: warnings.to_proto(),
                renew_at: out.renew_at.map(timestamp),
                result: Some(value),
                private: out.private,
                deferred: None,
            },
            Err(diags) => pb::open_ephemeral_resource::Response {
                diagnostics: with_warnings(diags, &warnings),
                ..Default::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn renew_ephemeral_resource(
        &self,
        request: Request<pb::renew_ephemeral_resource::Request>,
    ) -> RpcResult<pb::renew_ephemeral_resource::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let e = self.ephemeral(&req.type_name)?;
            e.renew(req.private.clone()).await
        })
        .await;
        let response = match result {
            Ok(renewed) => pb::renew_ephemeral_resource::Response {
                diagnostics: warnings.to_proto(),
                renew_at: renewed.renew_at.map(timestamp),
                private: renewed.private,
            },
            Err(diags) => pb::renew_ephemeral_resource::Response {
                diagnostics: with_warnings(diags, &warnings),
                renew_at: None,
                private: req.private,
            },
        };
        Ok(Response::new(response))
    }

    async fn close_ephemeral_resource(
        &self,
        request: Request<pb::close_ephemeral_resource::Request>,
    ) -> RpcResult<pb::close_ephemeral_resource::Response> {
        let req = request.into_inner();
        let (result, warnings) = guarded(async {
            let e = self.ephemeral(&req.type_name)?;
            e.close(req.private.clone()).await
        })
        .await;
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics: with_warnings(result.err().unwrap_or_default(), &warnings),
        }))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> RpcResult<pb::stop_provider::Response> {
        tracing::info!("StopProvider: asking running operations to stop");
        // StopProvider has no diagnostics to carry warnings.
        let (result, _warnings) = guarded(async {
            self.provider.stop().await;
            Ok(())
        })
        .await;
        Ok(Response::new(pb::stop_provider::Response {
            error: result.err().map(|d| d.to_string()).unwrap_or_default(),
        }))
    }
}

/// go-plugin's controller: `Shutdown` ends the process cleanly.
pub(crate) struct Controller {
    pub(crate) shutdown: watch::Sender<bool>,
}

#[tonic::async_trait]
impl plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _request: Request<plugin::Empty>) -> RpcResult<plugin::Empty> {
        tracing::debug!("Shutdown requested by Terraform");
        let _ = self.shutdown.send(true);
        Ok(Response::new(plugin::Empty {}))
    }
}

/// go-plugin's stdio service. Output goes to the real stderr, so this
/// stream only stays open until shutdown, which tells the host the plugin
/// is alive and has nothing to forward.
pub(crate) struct Stdio {
    pub(crate) shutdown: watch::Receiver<bool>,
}

type StdioStream =
    Pin<Box<dyn futures::Stream<Item = std::result::Result<plugin::StdioData, Status>> + Send>>;

#[tonic::async_trait]
impl plugin::grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(&self, _request: Request<()>) -> RpcResult<StdioStream> {
        let mut shutdown = self.shutdown.clone();
        let stream = futures::stream::once(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .filter_map(|()| futures::future::ready(None));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The gRPC health service: always serving (go-plugin pings "plugin").
pub(crate) struct HealthService;

#[tonic::async_trait]
impl health::health_server::Health for HealthService {
    async fn check(
        &self,
        _request: Request<health::HealthCheckRequest>,
    ) -> RpcResult<health::HealthCheckResponse> {
        Ok(Response::new(health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::Serving as i32,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tfplugin6::provider_server::Provider as _;
    use crate::provider::{DataSource, EphemeralResource, Opened, Plan, Resource};
    use crate::{Value, model};

    model! {
        /// Test provider config.
        pub struct Config {
            /// Endpoint.
            #[tf(optional)]
            pub endpoint: Value<String>,
        }
    }

    model! {
        /// Thing.
        pub struct Thing {
            /// Name; changing it replaces the thing.
            #[tf(required, requires_replace)]
            pub name: Value<String>,
            /// Write-only secret.
            #[tf(optional, sensitive, write_only)]
            pub secret: Value<String>,
            /// Set on create.
            #[tf(computed)]
            pub id: Value<String>,
            /// Optional with a default.
            #[tf(optional, computed)]
            pub size: Value<i64>,
        }
    }

    struct TestProvider;

    #[async_trait::async_trait]
    impl Provider for TestProvider {
        type Config = Config;
        fn register(&self, registry: &mut Registry) {
            registry
                .resource("test_thing", ThingResource)
                .data_source("test_boom", Boom)
                .ephemeral_resource("test_lease", Lease);
        }
        async fn configure(&self, _request: ConfigureRequest<Config>) -> Result<()> {
            Ok(())
        }
    }

    struct ThingResource;

    #[async_trait::async_trait]
    impl Resource for ThingResource {
        type State = Thing;
        fn schema_version(&self) -> i64 {
            1
        }
        async fn modify_plan(&self, plan: &mut Plan<Thing>, _diags: &mut Diagnostics) {
            if plan.planned.size.is_unknown() {
                plan.planned.size = Value::Known(1);
            }
        }
        async fn read(&self, state: Thing, _: &mut Vec<u8>) -> Result<Option<Thing>> {
            if state.name.known().map(String::as_str) == Some("gone") {
                return Ok(None);
            }
            Ok(Some(state))
        }
        async fn create(
            &self,
            mut planned: Thing,
            config: Thing,
            _: &mut Vec<u8>,
        ) -> Result<Thing> {
            if config.secret.known().is_some_and(|s| s == "explode") {
                panic!("token tko_do_not_leak was rejected");
            }
            planned.id = Value::Known("thing-1".into());
            Ok(planned)
        }
        async fn update(
            &self,
            _: Thing,
            planned: Thing,
            _: Thing,
            _: &mut Vec<u8>,
        ) -> Result<Thing> {
            crate::warn(Diagnostic::warning("Size is large").with_attribute("size"));
            Ok(planned)
        }
        async fn delete(&self, _: Thing, _: &[u8]) -> Result<()> {
            Ok(())
        }
        async fn upgrade_state(
            &self,
            version: i64,
            mut state: serde_json::Value,
        ) -> Result<serde_json::Value> {
            assert_eq!(version, 0);
            let obj = state.as_object_mut().expect("object");
            let old = obj.remove("title").expect("title");
            obj.insert("name".into(), old);
            Ok(state)
        }
    }

    model! {
        /// Data source that panics.
        pub struct BoomModel {
            /// Anything.
            #[tf(optional)]
            pub input: Value<String>,
        }
    }

    struct Boom;

    #[async_trait::async_trait]
    impl DataSource for Boom {
        type State = BoomModel;
        async fn read(&self, _config: BoomModel) -> Result<BoomModel> {
            panic!("password=hunter2");
        }
    }

    model! {
        /// A lease.
        pub struct LeaseModel {
            /// Lease name.
            #[tf(required)]
            pub name: String,
            /// The leased value.
            #[tf(computed, sensitive)]
            pub value: Value<String>,
        }
    }

    struct Lease;

    #[async_trait::async_trait]
    impl EphemeralResource for Lease {
        type State = LeaseModel;
        async fn open(&self, mut config: LeaseModel) -> Result<Opened<LeaseModel>> {
            config.value = Value::Known(format!("v-{}", config.name));
            Ok(Opened {
                result: config,
                private: Some(b"lease-42".to_vec()),
                renew_at: Some(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000),
                ),
            })
        }
        async fn close(&self, private: Option<Vec<u8>>) -> Result<()> {
            if private.as_deref() == Some(b"lease-42") {
                Ok(())
            } else {
                Err(Diagnostic::error("wrong private data").into())
            }
        }
    }

    fn service() -> ProviderService<TestProvider> {
        ProviderService::new(TestProvider)
    }

    fn thing_type() -> Type {
        <Thing as TfValue>::tf_type()
    }

    fn dv(value: Dynamic, ty: &Type) -> Option<pb::DynamicValue> {
        Some(encode(&value, ty).expect("encode"))
    }

    fn undv(value: Option<pb::DynamicValue>, ty: &Type) -> Dynamic {
        decode(value.as_ref(), ty).expect("decode")
    }

    fn thing(name: &str, secret: Dynamic, id: Dynamic, size: Dynamic) -> Dynamic {
        Dynamic::object([
            ("name", Dynamic::from(name)),
            ("secret", secret),
            ("id", id),
            ("size", size),
        ])
    }

    #[tokio::test]
    async fn schema_lists_everything_with_flags_and_cty_types() {
        let resp = service()
            .get_provider_schema(Request::new(Default::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        let thing = &resp.resource_schemas["test_thing"];
        assert_eq!(thing.version, 1);
        let block = thing.block.as_ref().unwrap();
        let secret = block
            .attributes
            .iter()
            .find(|a| a.name == "secret")
            .unwrap();
        assert!(secret.write_only && secret.sensitive && secret.optional);
        assert_eq!(secret.r#type, b"\"string\"");
        assert!(resp.data_source_schemas.contains_key("test_boom"));
        assert!(resp.ephemeral_resource_schemas.contains_key("test_lease"));
        assert_eq!(block.description, "Thing.");
    }

    #[tokio::test]
    async fn planning_a_create_marks_computed_unknown_and_drops_write_only() {
        let ty = thing_type();
        let config = thing("a", "pw".into(), Dynamic::Null, Dynamic::Null);
        let resp = service()
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "test_thing".into(),
                prior_state: dv(Dynamic::Null, &ty),
                proposed_new_state: dv(config.clone(), &ty),
                config: dv(config, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        let planned = undv(resp.planned_state, &ty);
        assert_eq!(planned.get("id"), Some(&Dynamic::Unknown));
        assert_eq!(planned.get("secret"), Some(&Dynamic::Null));
        // The hook runs after the mechanical rules and may override them.
        assert_eq!(planned.get("size"), Some(&Dynamic::from(1)));
        assert!(resp.requires_replace.is_empty());
    }

    #[tokio::test]
    async fn changing_a_requires_replace_attribute_is_reported() {
        let ty = thing_type();
        let prior = thing("a", Dynamic::Null, "thing-1".into(), Dynamic::from(1));
        let proposed = thing("b", Dynamic::Null, "thing-1".into(), Dynamic::from(1));
        let config = thing("b", Dynamic::Null, Dynamic::Null, Dynamic::Null);
        let resp = service()
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "test_thing".into(),
                prior_state: dv(prior, &ty),
                proposed_new_state: dv(proposed, &ty),
                config: dv(config, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let paths: Vec<_> = resp
            .requires_replace
            .iter()
            .map(AttributePath::from_proto)
            .collect();
        assert_eq!(paths, [AttributePath::new("name")]);
    }

    #[tokio::test]
    async fn apply_creates_and_never_stores_write_only_values() {
        let ty = thing_type();
        let planned = thing("a", Dynamic::Null, Dynamic::Unknown, Dynamic::from(1));
        let config = thing("a", "pw".into(), Dynamic::Null, Dynamic::Null);
        let resp = service()
            .apply_resource_change(Request::new(pb::apply_resource_change::Request {
                type_name: "test_thing".into(),
                prior_state: dv(Dynamic::Null, &ty),
                planned_state: dv(planned, &ty),
                config: dv(config, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        let state = undv(resp.new_state, &ty);
        assert_eq!(state.get("id"), Some(&Dynamic::from("thing-1")));
        assert_eq!(state.get("secret"), Some(&Dynamic::Null));
    }

    #[tokio::test]
    async fn warnings_from_successful_callbacks_reach_terraform() {
        let ty = thing_type();
        let state = thing("a", Dynamic::Null, "thing-1".into(), Dynamic::from(1));
        let resp = service()
            .apply_resource_change(Request::new(pb::apply_resource_change::Request {
                type_name: "test_thing".into(),
                prior_state: dv(state.clone(), &ty),
                planned_state: dv(state.clone(), &ty),
                config: dv(state.clone(), &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.diagnostics.len(), 1);
        assert_eq!(resp.diagnostics[0].summary, "Size is large");
        assert_eq!(
            resp.diagnostics[0].severity,
            pb::diagnostic::Severity::Warning as i32
        );
        assert_eq!(undv(resp.new_state, &ty), state);
    }

    #[tokio::test]
    async fn a_panicking_create_becomes_a_generic_error_without_the_payload() {
        let ty = thing_type();
        let config = thing("a", "explode".into(), Dynamic::Null, Dynamic::Null);
        let resp = service()
            .apply_resource_change(Request::new(pb::apply_resource_change::Request {
                type_name: "test_thing".into(),
                prior_state: dv(Dynamic::Null, &ty),
                planned_state: dv(
                    thing("a", Dynamic::Null, Dynamic::Unknown, Dynamic::from(1)),
                    &ty,
                ),
                config: dv(config, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.diagnostics.len(), 1);
        assert_eq!(resp.diagnostics[0].summary, PANIC_SUMMARY);
        assert!(!format!("{:?}", resp.diagnostics).contains("tko_do_not_leak"));
        // A failed create leaves no state behind.
        assert_eq!(undv(resp.new_state, &ty), Dynamic::Null);
    }

    #[tokio::test]
    async fn a_panicking_data_source_becomes_a_generic_error() {
        let ty = <BoomModel as TfValue>::tf_type();
        let resp = service()
            .read_data_source(Request::new(pb::read_data_source::Request {
                type_name: "test_boom".into(),
                config: dv(Dynamic::object([("input", Dynamic::Null)]), &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.diagnostics[0].summary, PANIC_SUMMARY);
        assert!(!format!("{resp:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn read_returning_none_removes_the_resource() {
        let ty = thing_type();
        let resp = service()
            .read_resource(Request::new(pb::read_resource::Request {
                type_name: "test_thing".into(),
                current_state: dv(
                    thing("gone", Dynamic::Null, "x".into(), Dynamic::from(1)),
                    &ty,
                ),
                private: b"keep".to_vec(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(undv(resp.new_state, &ty), Dynamic::Null);
        assert_eq!(resp.private, b"keep");
    }

    #[tokio::test]
    async fn old_state_is_upgraded_through_the_hook() {
        let ty = thing_type();
        let resp = service()
            .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
                type_name: "test_thing".into(),
                version: 0,
                raw_state: Some(pb::RawState {
                    json: br#"{"title":"old","id":"thing-1","size":3}"#.to_vec(),
                    flatmap: Default::default(),
                }),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        assert_eq!(
            undv(resp.upgraded_state, &ty),
            thing("old", Dynamic::Null, "thing-1".into(), Dynamic::from(3))
        );
    }

    #[tokio::test]
    async fn current_state_needs_no_hook_and_newer_state_is_refused() {
        let ty = thing_type();
        let request = |version| pb::upgrade_resource_state::Request {
            type_name: "test_thing".into(),
            version,
            raw_state: Some(pb::RawState {
                json: br#"{"name":"n","id":"i","size":1}"#.to_vec(),
                flatmap: Default::default(),
            }),
        };
        let current = service()
            .upgrade_resource_state(Request::new(request(1)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            undv(current.upgraded_state, &ty),
            thing("n", Dynamic::Null, "i".into(), Dynamic::from(1))
        );
        let newer = service()
            .upgrade_resource_state(Request::new(request(7)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            newer.diagnostics[0].summary,
            "State is newer than this provider"
        );
    }

    #[tokio::test]
    async fn ephemeral_resources_open_with_private_data_and_close() {
        let ty = <LeaseModel as TfValue>::tf_type();
        let svc = service();
        let opened = svc
            .open_ephemeral_resource(Request::new(pb::open_ephemeral_resource::Request {
                type_name: "test_lease".into(),
                config: dv(
                    Dynamic::object([("name", "db".into()), ("value", Dynamic::Null)]),
                    &ty,
                ),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(opened.diagnostics.is_empty());
        assert_eq!(
            undv(opened.result, &ty).get("value"),
            Some(&Dynamic::from("v-db"))
        );
        assert_eq!(opened.renew_at.unwrap().seconds, 2_000_000_000);
        let closed = svc
            .close_ephemeral_resource(Request::new(pb::close_ephemeral_resource::Request {
                type_name: "test_lease".into(),
                private: opened.private,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(closed.diagnostics.is_empty(), "{:?}", closed.diagnostics);
    }

    #[tokio::test]
    async fn unknown_type_names_and_unused_rpcs_are_reported() {
        let svc = service();
        let resp = svc
            .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                type_name: "test_nope".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.diagnostics[0].summary, "Unknown resource type");
        let status = svc
            .get_functions(Request::new(Default::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }

    #[tokio::test]
    async fn write_only_values_need_a_terraform_that_supports_them() {
        let ty = thing_type();
        let request = |write_only_ok| pb::validate_resource_config::Request {
            type_name: "test_thing".into(),
            config: dv(thing("a", "pw".into(), Dynamic::Null, Dynamic::Null), &ty),
            client_capabilities: Some(pb::ClientCapabilities {
                deferral_allowed: false,
                write_only_attributes_allowed: write_only_ok,
            }),
        };
        let old = service()
            .validate_resource_config(Request::new(request(false)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            old.diagnostics[0].summary,
            "Write-only attribute not supported"
        );
        let new = service()
            .validate_resource_config(Request::new(request(true)))
            .await
            .unwrap()
            .into_inner();
        assert!(new.diagnostics.is_empty(), "{:?}", new.diagnostics);
    }

    #[tokio::test]
    async fn renew_hands_private_data_back_by_default() {
        let resp = service()
            .renew_ephemeral_resource(Request::new(pb::renew_ephemeral_resource::Request {
                type_name: "test_lease".into(),
                private: Some(b"lease-42".to_vec()),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty());
        assert_eq!(resp.private.as_deref(), Some(&b"lease-42"[..]));
        assert!(resp.renew_at.is_none());
    }

    #[tokio::test]
    async fn validation_is_skipped_while_values_are_unknown() {
        let ty = <LeaseModel as TfValue>::tf_type();
        let resp = service()
            .validate_ephemeral_resource_config(Request::new(
                pb::validate_ephemeral_resource_config::Request {
                    type_name: "test_lease".into(),
                    config: dv(Dynamic::object([("name", Dynamic::Unknown)]), &ty),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    }
}
