//! Schemas: what a provider, resource, data source or ephemeral resource
//! accepts and returns. Normally produced by [`crate::model!`] rather than
//! written by hand.

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Model, NestedObject, Nesting};
use crate::path::AttributePath;
use crate::proto::tfplugin6 as pb;
use crate::types::Type;

/// One attribute of a schema, with its Terraform type and plan behaviour.
///
/// The flag methods are what `#[tf(...)]` in [`crate::model!`] calls, so
/// `#[tf(optional, computed, requires_replace)]` is
/// `Attribute::new(..).optional().computed().requires_replace()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name as written in configuration.
    pub name: String,
    /// Terraform type.
    pub ty: Type,
    /// Documentation (Markdown).
    pub description: String,
    /// Must be set in configuration.
    pub required: bool,
    /// May be set in configuration.
    pub optional: bool,
    /// Set by the provider (alone: read-only; with `optional`: defaulted).
    pub computed: bool,
    /// Redacted in Terraform's output.
    pub sensitive: bool,
    /// Taken from configuration but never stored in plan or state
    /// (managed resources only; Terraform 1.11+).
    pub write_only: bool,
    /// Shown as deprecated.
    pub deprecated: bool,
    /// Changing the value destroys and re-creates the resource. Not a wire
    /// field: the plan step of this crate turns it into `requires_replace`.
    pub requires_replace: bool,
    /// Sent to Terraform as a nested attribute (its objects' attributes
    /// described one by one) rather than as a plain object-typed value.
    pub nested: Option<NestedObject>,
    /// `nested` was asked for (by `#[tf(nested)]`); resolved against the
    /// field's type by [`Attribute::resolve_nested`].
    wants_nested: bool,
}

impl Attribute {
    /// An attribute with no flags set yet.
    pub fn new(name: impl Into<String>, ty: Type) -> Self {
        Self {
            name: name.into(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecated: false,
            requires_replace: false,
            nested: None,
            wants_nested: false,
        }
    }
    /// Describes the attribute to Terraform as a nested attribute: its type
    /// must be a model, or a list, set or map of models. Terraform then knows
    /// each inner attribute (required ones are checked, documentation shows
    /// them), where a plain object type would be opaque.
    pub fn nested(mut self) -> Self {
        self.wants_nested = true;
        self
    }
    /// Gives the nested form of the attribute's type; kept only when
    /// [`Attribute::nested`] was asked for. Called by [`crate::model!`].
    pub fn resolve_nested(mut self, nested: Option<NestedObject>) -> Self {
        if self.wants_nested {
            self.nested = nested;
        }
        self
    }

    /// Sets the documentation.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
    /// Marks the attribute required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Marks the attribute optional.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    /// Marks the attribute computed.
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    /// Marks the attribute sensitive.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    /// Marks the attribute write-only.
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    /// Marks the attribute deprecated.
    pub fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }
    /// Changing this attribute forces replacement.
    pub fn requires_replace(mut self) -> Self {
        self.requires_replace = true;
        self
    }

    fn to_proto(&self) -> pb::schema::Attribute {
        use pb::schema::object::NestingMode;
        let nested_type = self.nested.as_ref().map(|n| pb::schema::Object {
            attributes: n.attributes.iter().map(Attribute::to_proto).collect(),
            nesting: match n.nesting {
                Nesting::Single => NestingMode::Single,
                Nesting::List => NestingMode::List,
                Nesting::Set => NestingMode::Set,
                Nesting::Map => NestingMode::Map,
            } as i32,
            ..Default::default()
        });
        pb::schema::Attribute {
            name: self.name.clone(),
            // Terraform derives a nested attribute's type from its objects.
            r#type: if nested_type.is_some() {
                Vec::new()
            } else {
                self.ty.to_json_bytes()
            },
            nested_type,
            description: self.description.clone(),
            required: self.required,
            optional: self.optional,
            computed: self.computed,
            sensitive: self.sensitive,
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: self.deprecated,
            write_only: self.write_only,
        }
    }
}

/// A versioned schema: a list of attributes plus documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Schema version; bump it when stored state needs an upgrade.
    pub version: i64,
    /// Documentation (Markdown).
    pub description: String,
    /// Top-level attributes.
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// The schema of model `M` at `version`.
    pub fn of<M: Model>(version: i64) -> Self {
        Self {
            version,
            description: M::description(),
            attributes: M::attributes(),
        }
    }

    /// The object type of values conforming to this schema.
    pub fn value_type(&self) -> Type {
        Type::object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.ty.clone())),
        )
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Checks the flag combinations Terraform rejects, so a provider author
    /// sees a clear message instead of a confusing one from Terraform.
    pub fn check(&self, managed: bool) -> Diagnostics {
        let mut diags = Diagnostics::new();
        check_attributes(&self.attributes, managed, "", &mut diags);
        diags
    }

    pub(crate) fn to_proto(&self) -> pb::Schema {
        pb::Schema {
            version: self.version,
            block: Some(pb::schema::Block {
                version: self.version,
                attributes: self.attributes.iter().map(Attribute::to_proto).collect(),
                block_types: Vec::new(),
                description: self.description.clone(),
                description_kind: pb::StringKind::Markdown as i32,
                deprecated: false,
            }),
        }
    }
}

/// The checks of [`Schema::check`] for one level of attributes and below.
fn check_attributes(
    attributes: &[Attribute],
    managed: bool,
    prefix: &str,
    diags: &mut Diagnostics,
) {
    for a in attributes {
        let name = format!("{prefix}{}", a.name);
        let mut bad = |why: &str| {
            diags.push(
                Diagnostic::error("Invalid provider schema")
                    .with_detail(format!("attribute {name:?}: {why}"))
                    .with_attribute(AttributePath::new(a.name.clone())),
            );
        };
        if !a.required && !a.optional && !a.computed {
            bad("must be required, optional or computed");
        }
        if a.required && (a.optional || a.computed) {
            bad("required cannot be combined with optional or computed");
        }
        if a.write_only && (a.computed || !managed) {
            bad("write_only is only for managed resources and cannot be computed");
        }
        if a.wants_nested && a.nested.is_none() {
            bad("nested needs a model, or a list, set or map of models");
        }
        if let Some(n) = &a.nested {
            check_attributes(&n.attributes, managed, &format!("{name}."), diags);
        }
    }
}
