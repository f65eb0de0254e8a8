//! The traits a provider author implements: [`Provider`], [`Resource`],
//! [`DataSource`] and [`EphemeralResource`]. Each works on typed
//! [`Model`]s; this crate does the schema, wire encoding and the
//! mechanical parts of planning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::diag::{Diagnostic, Diagnostics, Result};
use crate::model::Model;
use crate::path::AttributePath;

/// What the calling Terraform supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCapabilities {
    /// Terraform accepts deferred responses.
    pub deferral_allowed: bool,
    /// Terraform understands write-only attributes (1.11+).
    pub write_only_attributes_allowed: bool,
}

/// Input of [`Provider::configure`].
#[derive(Debug, Clone)]
pub struct ConfigureRequest<C> {
    /// Version of the calling Terraform, e.g. `1.11.4`.
    pub terraform_version: String,
    /// The `provider` block.
    pub config: C,
    /// What the calling Terraform supports.
    pub capabilities: ClientCapabilities,
}

/// A Terraform provider: its own configuration plus the resource types it
/// offers.
///
/// Resources usually need something `configure` produces (an API client).
/// Share it through a field both hold, e.g. an
/// `Arc<tokio::sync::OnceCell<Client>>` that `configure` fills and the
/// resources read.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The `provider` block.
    type Config: Model;

    /// Registers resource types, data sources and ephemeral resources.
    /// Called once, before serving.
    fn register(&self, registry: &mut Registry);

    /// Checks the `provider` block beyond what the schema says. The config
    /// may contain unknown values; if it cannot be converted because of
    /// them, this is not called.
    async fn validate(&self, _config: &Self::Config, _diags: &mut Diagnostics) {}

    /// Configures the provider; called before any resource operation.
    async fn configure(&self, request: ConfigureRequest<Self::Config>) -> Result<()>;

    /// Terraform asks running operations to stop (Ctrl-C). The process keeps
    /// serving until Terraform shuts it down.
    async fn stop(&self) {}
}

/// The planning state handed to [`Resource::modify_plan`].
#[derive(Debug, Clone)]
pub struct Plan<S> {
    /// Current state; `None` when the resource is being created.
    pub prior: Option<S>,
    /// The configuration as written (write-only values included).
    pub config: S,
    /// The planned new state. This crate has already marked computed
    /// attributes unknown on create and cleared write-only attributes;
    /// change it further as needed (e.g. `Value::Unknown` for values the
    /// update will change).
    pub planned: S,
    /// Attributes whose change forces replacement. Pre-filled from
    /// `requires_replace` attributes that changed.
    pub requires_replace: Vec<AttributePath>,
    /// Private data to carry from plan to apply.
    pub private: Vec<u8>,
}

/// A managed resource type. `State` is its one model: the schema, the
/// configuration and the state all come from it.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The model (declare it with [`crate::model!`]).
    type State: Model;

    /// The schema version. Bump it with a change that needs
    /// [`Resource::upgrade_state`].
    fn schema_version(&self) -> i64 {
        0
    }

    /// Checks configuration beyond the schema. Not called when the config
    /// cannot be converted because it contains unknown values.
    async fn validate(&self, _config: &Self::State, _diags: &mut Diagnostics) {}

    /// Adjusts a plan: mark attributes unknown, add replacement paths,
    /// reject impossible changes. Not called when destroying.
    async fn modify_plan(&self, _plan: &mut Plan<Self::State>, _diags: &mut Diagnostics) {}

    /// Refreshes state from the remote object; `Ok(None)` means it is gone
    /// and Terraform removes it from state.
    async fn read(&self, state: Self::State, private: &mut Vec<u8>) -> Result<Option<Self::State>>;

    /// Creates the remote object. `config` holds write-only values, which
    /// `planned` does not.
    async fn create(
        &self,
        planned: Self::State,
        config: Self::State,
        private: &mut Vec<u8>,
    ) -> Result<Self::State>;

    /// Updates the remote object in place.
    async fn update(
        &self,
        prior: Self::State,
        planned: Self::State,
        config: Self::State,
        private: &mut Vec<u8>,
    ) -> Result<Self::State>;

    /// Deletes the remote object.
    async fn delete(&self, prior: Self::State, private: &[u8]) -> Result<()>;

    /// Produces state for `terraform import`/`import` blocks from a user
    /// supplied id; Terraform calls [`Resource::read`] on it afterwards.
    async fn import(&self, _id: &str) -> Result<Self::State> {
        Err(Diagnostic::error("Import not supported")
            .with_detail("This resource type cannot be imported.")
            .into())
    }

    /// Rewrites state stored under schema `version` (older than the
    /// current one) into the JSON shape of the current schema. States
    /// already at the current version never reach this hook.
    async fn upgrade_state(
        &self,
        version: i64,
        _state: serde_json::Value,
    ) -> Result<serde_json::Value> {
        Err(Diagnostic::error("Unsupported state version")
            .with_detail(format!(
                "State was written with schema version {version}, which this provider cannot upgrade."
            ))
            .into())
    }
}

/// A data source type: configuration in, computed attributes out.
#[async_trait]
pub trait DataSource: Send + Sync + 'static {
    /// The model (declare it with [`crate::model!`]).
    type State: Model;

    /// Checks configuration beyond the schema.
    async fn validate(&self, _config: &Self::State, _diags: &mut Diagnostics) {}

    /// Reads the data; returns `config` with the computed attributes set.
    async fn read(&self, config: Self::State) -> Result<Self::State>;
}

/// The result of [`EphemeralResource::open`].
#[derive(Debug, Clone)]
pub struct Opened<S> {
    /// The value Terraform may use during this run; never stored.
    pub result: S,
    /// Opaque data handed back on renew and close (e.g. a lease id).
    pub private: Option<Vec<u8>>,
    /// When Terraform should call [`EphemeralResource::renew`].
    pub renew_at: Option<SystemTime>,
}

/// The result of [`EphemeralResource::renew`].
#[derive(Debug, Clone, Default)]
pub struct Renewed {
    /// Replacement private data.
    pub private: Option<Vec<u8>>,
    /// When to renew again.
    pub renew_at: Option<SystemTime>,
}

/// An ephemeral resource type: opened for one Terraform run, never stored
/// in plan or state, closed when Terraform is done with it.
#[async_trait]
pub trait EphemeralResource: Send + Sync + 'static {
    /// The model (declare it with [`crate::model!`]).
    type State: Model;

    /// Checks configuration beyond the schema.
    async fn validate(&self, _config: &Self::State, _diags: &mut Diagnostics) {}

    /// Produces the value.
    async fn open(&self, config: Self::State) -> Result<Opened<Self::State>>;

    /// Extends whatever `open` obtained.
    async fn renew(&self, private: Option<Vec<u8>>) -> Result<Renewed> {
        Ok(Renewed {
            private,
            renew_at: None,
        })
    }

    /// Releases whatever `open` obtained.
    async fn close(&self, _private: Option<Vec<u8>>) -> Result<()> {
        Ok(())
    }
}

/// The resource types of a provider, keyed by full type name
/// (e.g. `tokenops_token`).
#[derive(Default)]
pub struct Registry {
    pub(crate) resources: BTreeMap<String, Arc<dyn crate::erased::ErasedResource>>,
    pub(crate) data_sources: BTreeMap<String, Arc<dyn crate::erased::ErasedDataSource>>,
    pub(crate) ephemeral: BTreeMap<String, Arc<dyn crate::erased::ErasedEphemeral>>,
}

impl Registry {
    /// Registers a managed resource type.
    pub fn resource<R: Resource>(
        &mut self,
        type_name: impl Into<String>,
        resource: R,
    ) -> &mut Self {
        self.resources.insert(
            type_name.into(),
            Arc::new(crate::erased::ResourceAdapter::new(resource)),
        );
        self
    }

    /// Registers a data source type.
    pub fn data_source<D: DataSource>(
        &mut self,
        type_name: impl Into<String>,
        source: D,
    ) -> &mut Self {
        self.data_sources.insert(
            type_name.into(),
            Arc::new(crate::erased::DataSourceAdapter::new(source)),
        );
        self
    }

    /// Registers an ephemeral resource type.
    pub fn ephemeral_resource<E: EphemeralResource>(
        &mut self,
        type_name: impl Into<String>,
        resource: E,
    ) -> &mut Self {
        self.ephemeral.insert(
            type_name.into(),
            Arc::new(crate::erased::EphemeralAdapter::new(resource)),
        );
        self
    }
}
