//! Type erasure: adapters that let the server hold resources with
//! different models behind one object-safe interface working on
//! [`Dynamic`] values. The mechanical plan rules live here.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::diag::{Diagnostic, Diagnostics, Result};
use crate::model::{ConvertErrorKind, Model, TfValue};
use crate::path::AttributePath;
use crate::provider::{DataSource, EphemeralResource, Plan, Resource};
use crate::schema::Schema;
use crate::value::Dynamic;

fn to_model<M: Model>(value: Dynamic) -> Result<M> {
    Ok(M::from_dynamic(value, &AttributePath::root())?)
}

/// Converts a config for validation; `None` (skip validation) when the
/// conversion failed only because something is not known yet.
fn config_for_validation<M: Model>(config: Dynamic, diags: &mut Diagnostics) -> Option<M> {
    match M::from_dynamic(config, &AttributePath::root()) {
        Ok(m) => Some(m),
        Err(e) if e.kind == ConvertErrorKind::Unknown => None,
        Err(e) => {
            diags.push(e.to_diagnostic());
            None
        }
    }
}

/// Sets every write-only attribute to null: Terraform rejects plans and
/// states that carry them.
fn clear_write_only(schema: &Schema, value: &mut Dynamic) {
    for attr in schema.attributes.iter().filter(|a| a.write_only) {
        if let Some(v) = value.get_mut(&attr.name) {
            *v = Dynamic::Null;
        }
    }
}

pub(crate) struct PlanOutput {
    pub planned: Dynamic,
    pub requires_replace: Vec<AttributePath>,
    pub private: Vec<u8>,
    pub diags: Diagnostics,
}

pub(crate) struct StateOutput {
    pub state: Dynamic,
    pub private: Vec<u8>,
    pub diags: Diagnostics,
}

#[async_trait]
pub(crate) trait ErasedResource: Send + Sync {
    fn schema(&self) -> &Schema;
    async fn validate(&self, config: Dynamic) -> Diagnostics;
    async fn plan(
        &self,
        prior: Dynamic,
        proposed: Dynamic,
        config: Dynamic,
        private: Vec<u8>,
    ) -> Result<PlanOutput>;
    async fn apply(
        &self,
        prior: Dynamic,
        planned: Dynamic,
        config: Dynamic,
        private: Vec<u8>,
    ) -> Result<StateOutput>;
    async fn read(&self, current: Dynamic, private: Vec<u8>) -> Result<StateOutput>;
    async fn import(&self, id: &str) -> Result<Dynamic>;
    async fn upgrade(&self, version: i64, state: serde_json::Value) -> Result<Dynamic>;
}

pub(crate) struct ResourceAdapter<R: Resource> {
    inner: R,
    schema: Schema,
}

impl<R: Resource> ResourceAdapter<R> {
    pub(crate) fn new(inner: R) -> Self {
        let schema = Schema::of::<R::State>(inner.schema_version());
        Self { inner, schema }
    }

    fn finish_state(&self, state: R::State) -> Result<Dynamic> {
        let mut value = state.to_dynamic();
        clear_write_only(&self.schema, &mut value);
        if !value.is_wholly_known() {
            return Err(Diagnostic::error("Provider returned an unknown value")
                .with_detail(
                    "Every attribute must be known after apply. This is a bug in the provider.",
                )
                .into());
        }
        Ok(value)
    }
}

#[async_trait]
impl<R: Resource> ErasedResource for ResourceAdapter<R> {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn validate(&self, config: Dynamic) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if let Some(config) = config_for_validation::<R::State>(config, &mut diags) {
            self.inner.validate(&config, &mut diags).await;
        }
        diags
    }

    async fn plan(
        &self,
        prior: Dynamic,
        proposed: Dynamic,
        config: Dynamic,
        private: Vec<u8>,
    ) -> Result<PlanOutput> {
        if proposed.is_null() {
            // Destroy: nothing to decide.
            return Ok(PlanOutput {
                planned: Dynamic::Null,
                requires_replace: Vec::new(),
                private,
                diags: Diagnostics::new(),
            });
        }
        let creating = prior.is_null();
        let mut planned = proposed;
        clear_write_only(&self.schema, &mut planned);
        let mut requires_replace = Vec::new();
        for attr in &self.schema.attributes {
            let configured = config.get(&attr.name).is_some_and(|v| !v.is_null());
            if creating
                && attr.computed
                && !configured
                && let Some(v) = planned.get_mut(&attr.name)
            {
                *v = Dynamic::Unknown;
            }
            if !creating
                && attr.requires_replace
                && prior.get(&attr.name) != planned.get(&attr.name)
            {
                requires_replace.push(AttributePath::new(attr.name.clone()));
            }
        }

        let mut plan = Plan {
            prior: if creating {
                None
            } else {
                Some(to_model::<R::State>(prior)?)
            },
            config: to_model::<R::State>(config)?,
            planned: to_model::<R::State>(planned)?,
            requires_replace,
            private,
        };
        let mut diags = Diagnostics::new();
        self.inner.modify_plan(&mut plan, &mut diags).await;
        let mut planned = plan.planned.to_dynamic();
        clear_write_only(&self.schema, &mut planned);
        Ok(PlanOutput {
            planned,
            requires_replace: plan.requires_replace,
            private: plan.private,
            diags,
        })
    }

    async fn apply(
        &self,
        prior: Dynamic,
        planned: Dynamic,
        config: Dynamic,
        mut private: Vec<u8>,
    ) -> Result<StateOutput> {
        let state = if planned.is_null() {
            self.inner.delete(to_model(prior)?, &private).await?;
            private.clear();
            Dynamic::Null
        } else if prior.is_null() {
            let created = self
                .inner
                .create(to_model(planned)?, to_model(config)?, &mut private)
                .await?;
            self.finish_state(created)?
        } else {
            let updated = self
                .inner
                .update(
                    to_model(prior)?,
                    to_model(planned)?,
                    to_model(config)?,
                    &mut private,
                )
                .await?;
            self.finish_state(updated)?
        };
        Ok(StateOutput {
            state,
            private,
            diags: Diagnostics::new(),
        })
    }

    async fn read(&self, current: Dynamic, mut private: Vec<u8>) -> Result<StateOutput> {
        let state = match self.inner.read(to_model(current)?, &mut private).await? {
            Some(state) => self.finish_state(state)?,
            None => Dynamic::Null,
        };
        Ok(StateOutput {
            state,
            private,
            diags: Diagnostics::new(),
        })
    }

    async fn import(&self, id: &str) -> Result<Dynamic> {
        let state = self.inner.import(id).await?;
        let mut value = state.to_dynamic();
        clear_write_only(&self.schema, &mut value);
        Ok(value)
    }

    async fn upgrade(&self, version: i64, state: serde_json::Value) -> Result<Dynamic> {
        let current = self.schema.version;
        let json = if version == current {
            state
        } else if version < current {
            self.inner.upgrade_state(version, state).await?
        } else {
            return Err(Diagnostic::error("State is newer than this provider")
                .with_detail(format!(
                    "State has schema version {version}; this provider understands up to {current}. Upgrade the provider."
                ))
                .into());
        };
        let mut value = Dynamic::from_json(&json, &self.schema.value_type())
            .map_err(|e| Diagnostic::error("Invalid upgraded state").with_detail(e.to_string()))?;
        clear_write_only(&self.schema, &mut value);
        Ok(value)
    }
}

#[async_trait]
pub(crate) trait ErasedDataSource: Send + Sync {
    fn schema(&self) -> &Schema;
    async fn validate(&self, config: Dynamic) -> Diagnostics;
    async fn read(&self, config: Dynamic) -> Result<Dynamic>;
}

pub(crate) struct DataSourceAdapter<D: DataSource> {
    inner: D,
    schema: Schema,
}

impl<D: DataSource> DataSourceAdapter<D> {
    pub(crate) fn new(inner: D) -> Self {
        Self {
            inner,
            schema: Schema::of::<D::State>(0),
        }
    }
}

#[async_trait]
impl<D: DataSource> ErasedDataSource for DataSourceAdapter<D> {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn validate(&self, config: Dynamic) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if let Some(config) = config_for_validation::<D::State>(config, &mut diags) {
            self.inner.validate(&config, &mut diags).await;
        }
        diags
    }

    async fn read(&self, config: Dynamic) -> Result<Dynamic> {
        let state = self.inner.read(to_model(config)?).await?;
        Ok(state.to_dynamic())
    }
}

pub(crate) struct OpenOutput {
    pub result: Dynamic,
    pub private: Option<Vec<u8>>,
    pub renew_at: Option<SystemTime>,
}

#[async_trait]
pub(crate) trait ErasedEphemeral: Send + Sync {
    fn schema(&self) -> &Schema;
    async fn validate(&self, config: Dynamic) -> Diagnostics;
    async fn open(&self, config: Dynamic) -> Result<OpenOutput>;
    async fn renew(&self, private: Option<Vec<u8>>) -> Result<crate::provider::Renewed>;
    async fn close(&self, private: Option<Vec<u8>>) -> Result<()>;
}

pub(crate) struct EphemeralAdapter<E: EphemeralResource> {
    inner: E,
    schema: Schema,
}

impl<E: EphemeralResource> EphemeralAdapter<E> {
    pub(crate) fn new(inner: E) -> Self {
        Self {
            inner,
            schema: Schema::of::<E::State>(0),
        }
    }
}

#[async_trait]
impl<E: EphemeralResource> ErasedEphemeral for EphemeralAdapter<E> {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn validate(&self, config: Dynamic) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if let Some(config) = config_for_validation::<E::State>(config, &mut diags) {
            self.inner.validate(&config, &mut diags).await;
        }
        diags
    }

    async fn open(&self, config: Dynamic) -> Result<OpenOutput> {
        let opened = self.inner.open(to_model(config)?).await?;
        Ok(OpenOutput {
            result: opened.result.to_dynamic(),
            private: opened.private,
            renew_at: opened.renew_at,
        })
    }

    async fn renew(&self, private: Option<Vec<u8>>) -> Result<crate::provider::Renewed> {
        self.inner.renew(private).await
    }

    async fn close(&self, private: Option<Vec<u8>>) -> Result<()> {
        self.inner.close(private).await
    }
}
