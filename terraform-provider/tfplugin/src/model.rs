//! One source of truth for a resource: a Rust struct declared with
//! [`crate::model!`] yields both its Terraform [`Schema`](crate::Schema) and
//! the conversion to and from [`Dynamic`] values.
//!
//! Field types map to Terraform types through [`TfValue`]:
//!
//! | Rust | Terraform | null | unknown |
//! | --- | --- | --- | --- |
//! | `String`, `bool`, `i64`, `f64`, `SecretString` | `string`, `bool`, `number`, `number`, `string` | error | error |
//! | `Option<T>` | as `T` | `None` | error |
//! | [`Value<T>`] | as `T` | `Value::Null` | `Value::Unknown` |
//! | `Vec<T>` / `BTreeSet<T>` / `BTreeMap<String, T>` | `list` / `set` / `map` | error | error |
//! | another `model!` struct | `object` | error | error |
//!
//! Use [`Value<T>`] for anything that can be unknown during planning: every
//! computed attribute, and any configurable attribute that may come from
//! another resource's result.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::{ExposeSecret, SecretString};

use crate::diag::Diagnostic;
use crate::path::AttributePath;
use crate::schema::Attribute;
use crate::types::Type;
use crate::value::{Dynamic, Number};

/// A value that may be null or unknown, for model fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value<T> {
    /// Not set.
    #[default]
    Null,
    /// Not known until apply.
    Unknown,
    /// Set and known.
    Known(T),
}

impl<T> Value<T> {
    /// The known value, if any.
    pub fn known(&self) -> Option<&T> {
        match self {
            Value::Known(v) => Some(v),
            _ => None,
        }
    }

    /// Consumes into the known value, if any.
    pub fn into_known(self) -> Option<T> {
        match self {
            Value::Known(v) => Some(v),
            _ => None,
        }
    }

    /// True for [`Value::Known`].
    pub fn is_known(&self) -> bool {
        matches!(self, Value::Known(_))
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True for [`Value::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
}

impl<T> From<T> for Value<T> {
    fn from(v: T) -> Self {
        Value::Known(v)
    }
}

/// Why a [`Dynamic`] could not become a Rust value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// Where.
    pub path: AttributePath,
    /// What went wrong.
    pub kind: ConvertErrorKind,
}

/// The kind of [`ConvertError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertErrorKind {
    /// Unknown where the Rust type cannot hold unknown (use [`Value<T>`]).
    Unknown,
    /// Null where the Rust type cannot hold null (use `Option` or [`Value`]).
    Null,
    /// The value has the wrong shape.
    Mismatch(String),
}

impl ConvertError {
    /// An error of `kind` at `path`.
    pub fn new(path: &AttributePath, kind: ConvertErrorKind) -> Self {
        Self {
            path: path.clone(),
            kind,
        }
    }

    /// The error as a user-facing diagnostic.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let detail = match &self.kind {
            ConvertErrorKind::Unknown => {
                "This value must be known during planning; it depends on something that is only known after apply.".to_owned()
            }
            ConvertErrorKind::Null => "This value must be set.".to_owned(),
            ConvertErrorKind::Mismatch(m) => m.clone(),
        };
        let summary = match &self.kind {
            ConvertErrorKind::Unknown => "Value not yet known",
            ConvertErrorKind::Null => "Missing value",
            ConvertErrorKind::Mismatch(_) => "Unexpected value",
        };
        let diag = Diagnostic::error(summary).with_detail(detail);
        if self.path.is_root() {
            diag
        } else {
            diag.with_attribute(self.path.clone())
        }
    }
}

impl From<ConvertError> for crate::Diagnostics {
    fn from(e: ConvertError) -> Self {
        e.to_diagnostic().into()
    }
}

/// A Rust type with a Terraform type and conversions to and from
/// [`Dynamic`]. Implemented for the usual scalars and collections, and by
/// [`crate::model!`] for model structs.
pub trait TfValue: Sized {
    /// The Terraform type.
    fn tf_type() -> Type;
    /// Converts to a Terraform value.
    fn to_dynamic(&self) -> Dynamic;
    /// Converts from a Terraform value; `path` is where it sits, for errors.
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError>;
    /// The nested-attribute form of this type, when it is a model or a
    /// list, set or map of models (see [`crate::Attribute::nested`]).
    fn nested_object() -> Option<NestedObject> {
        None
    }
}

/// How a nested attribute holds its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// One object.
    Single,
    /// A list of objects.
    List,
    /// A set of objects.
    Set,
    /// A map of objects.
    Map,
}

/// The objects of a nested attribute: their attributes (each with its own
/// flags and documentation) and how they are held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedObject {
    /// How the objects are held.
    pub nesting: Nesting,
    /// The attributes of each object.
    pub attributes: Vec<Attribute>,
}

impl NestedObject {
    /// A list, set or map of `T`, when `T` is one object (a model).
    fn collection_of<T: TfValue>(nesting: Nesting) -> Option<NestedObject> {
        T::nested_object()
            .filter(|n| n.nesting == Nesting::Single)
            .map(|n| NestedObject {
                nesting,
                attributes: n.attributes,
            })
    }
}

/// A model struct: an object whose attributes are described for a schema.
/// Implemented by [`crate::model!`]; write it by hand only for unusual cases.
pub trait Model: TfValue + Send + Sync + 'static {
    /// Documentation of the whole object (from the struct's doc comment).
    fn description() -> String;
    /// The schema attributes, one per field.
    fn attributes() -> Vec<Attribute>;
}

fn scalar_err(value: Dynamic, path: &AttributePath, want: &Type) -> ConvertError {
    let kind = match value {
        Dynamic::Null => ConvertErrorKind::Null,
        Dynamic::Unknown => ConvertErrorKind::Unknown,
        other => ConvertErrorKind::Mismatch(format!("expected {want}, got {other:?}")),
    };
    ConvertError::new(path, kind)
}

impl TfValue for String {
    fn tf_type() -> Type {
        Type::String
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::String(self.clone())
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::String(s) => Ok(s),
            other => Err(scalar_err(other, path, &Type::String)),
        }
    }
}

impl TfValue for SecretString {
    fn tf_type() -> Type {
        Type::String
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::String(self.expose_secret().to_owned())
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        String::from_dynamic(value, path).map(SecretString::from)
    }
}

impl TfValue for bool {
    fn tf_type() -> Type {
        Type::Bool
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::Bool(*self)
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::Bool(b) => Ok(b),
            other => Err(scalar_err(other, path, &Type::Bool)),
        }
    }
}

impl TfValue for i64 {
    fn tf_type() -> Type {
        Type::Number
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::Number(Number::Int(*self))
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::Number(n) => n.as_i64().ok_or_else(|| {
                ConvertError::new(
                    path,
                    ConvertErrorKind::Mismatch(format!("{n} is not a whole number in range")),
                )
            }),
            other => Err(scalar_err(other, path, &Type::Number)),
        }
    }
}

impl TfValue for f64 {
    fn tf_type() -> Type {
        Type::Number
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::Number(Number::Float(*self))
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::Number(n) => Ok(n.as_f64()),
            other => Err(scalar_err(other, path, &Type::Number)),
        }
    }
}

impl<T: TfValue> TfValue for Option<T> {
    fn tf_type() -> Type {
        T::tf_type()
    }
    fn nested_object() -> Option<NestedObject> {
        T::nested_object()
    }
    fn to_dynamic(&self) -> Dynamic {
        self.as_ref().map_or(Dynamic::Null, T::to_dynamic)
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::Null => Ok(None),
            other => T::from_dynamic(other, path).map(Some),
        }
    }
}

impl<T: TfValue> TfValue for Value<T> {
    fn tf_type() -> Type {
        T::tf_type()
    }
    fn nested_object() -> Option<NestedObject> {
        T::nested_object()
    }
    fn to_dynamic(&self) -> Dynamic {
        match self {
            Value::Null => Dynamic::Null,
            Value::Unknown => Dynamic::Unknown,
            Value::Known(v) => v.to_dynamic(),
        }
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::Null => Ok(Value::Null),
            Dynamic::Unknown => Ok(Value::Unknown),
            other => T::from_dynamic(other, path).map(Value::Known),
        }
    }
}

fn collection_err(value: Dynamic, path: &AttributePath, want: Type) -> ConvertError {
    scalar_err(value, path, &want)
}

impl<T: TfValue> TfValue for Vec<T> {
    fn tf_type() -> Type {
        Type::list(T::tf_type())
    }
    fn nested_object() -> Option<NestedObject> {
        NestedObject::collection_of::<T>(Nesting::List)
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::List(self.iter().map(T::to_dynamic).collect())
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::List(items) | Dynamic::Tuple(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| T::from_dynamic(v, &path.clone().index(i as i64)))
                .collect(),
            other => Err(collection_err(other, path, Self::tf_type())),
        }
    }
}

impl<T: TfValue + Ord> TfValue for BTreeSet<T> {
    fn tf_type() -> Type {
        Type::set(T::tf_type())
    }
    fn nested_object() -> Option<NestedObject> {
        NestedObject::collection_of::<T>(Nesting::Set)
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::Set(self.iter().map(T::to_dynamic).collect())
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            // Set elements have no index; errors point at the set itself.
            Dynamic::Set(items) => items
                .into_iter()
                .map(|v| T::from_dynamic(v, path))
                .collect(),
            other => Err(collection_err(other, path, Self::tf_type())),
        }
    }
}

impl<T: TfValue> TfValue for BTreeMap<String, T> {
    fn tf_type() -> Type {
        Type::map(T::tf_type())
    }
    fn nested_object() -> Option<NestedObject> {
        NestedObject::collection_of::<T>(Nesting::Map)
    }
    fn to_dynamic(&self) -> Dynamic {
        Dynamic::Map(
            self.iter()
                .map(|(k, v)| (k.clone(), v.to_dynamic()))
                .collect(),
        )
    }
    fn from_dynamic(value: Dynamic, path: &AttributePath) -> Result<Self, ConvertError> {
        match value {
            Dynamic::Map(items) | Dynamic::Object(items) => items
                .into_iter()
                .map(|(k, v)| {
                    let p = path.clone().key(k.clone());
                    Ok((k, T::from_dynamic(v, &p)?))
                })
                .collect(),
            other => Err(collection_err(other, path, Self::tf_type())),
        }
    }
}

impl TfValue for Dynamic {
    /// A raw value of any type (`dynamic` in the schema).
    fn tf_type() -> Type {
        Type::Dynamic
    }
    fn to_dynamic(&self) -> Dynamic {
        self.clone()
    }
    fn from_dynamic(value: Dynamic, _path: &AttributePath) -> Result<Self, ConvertError> {
        Ok(value)
    }
}

/// Support for [`crate::model!`]; not for direct use.
#[doc(hidden)]
pub mod support {
    use super::*;

    /// Splits an object value into its attributes.
    pub fn object_fields(
        value: Dynamic,
        path: &AttributePath,
        ty: &Type,
    ) -> Result<BTreeMap<String, Dynamic>, ConvertError> {
        match value {
            Dynamic::Object(attrs) => Ok(attrs),
            other => Err(scalar_err(other, path, ty)),
        }
    }

    /// The attribute name of a field: raw identifiers (`r#type`) lose
    /// their `r#`, so Terraform sees `type`.
    pub fn field_name(ident: &'static str) -> &'static str {
        ident.strip_prefix("r#").unwrap_or(ident)
    }

    /// Turns `///` lines into one description.
    pub fn join_doc(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned()
    }
}

/// Declares a model struct and derives from it, in one place, the
/// Terraform schema attributes ([`Model`]) and the conversions to and from
/// Terraform values ([`TfValue`]).
///
/// Each field carries `#[tf(...)]` with the [`Attribute`](crate::Attribute)
/// flags it needs (`required`, `optional`, `computed`, `sensitive`,
/// `write_only`, `deprecated`, `requires_replace`); its `///` comment becomes
/// the attribute's description. The attribute name is the field name
/// (`r#type` gives `type`). The
/// struct derives `Debug` and `Clone`, plus whatever an optional
/// `#[derive(...)]` after the doc comment lists.
///
/// ```
/// use tfplugin::{Model, Value, Type};
///
/// tfplugin::model! {
///     /// A greeting.
///     #[derive(PartialEq)]
///     pub struct Greeting {
///         /// Who to greet.
///         #[tf(required, requires_replace)]
///         pub name: Value<String>,
///         /// The greeting text, set by the provider.
///         #[tf(computed)]
///         pub text: Value<String>,
///     }
/// }
///
/// let attrs = Greeting::attributes();
/// assert!(attrs[0].required && attrs[0].requires_replace);
/// assert_eq!(attrs[1].description, "The greeting text, set by the provider.");
/// assert_eq!(<Greeting as tfplugin::TfValue>::tf_type(),
///            Type::object([("name", Type::String), ("text", Type::String)]));
/// ```
#[macro_export]
macro_rules! model {
    (
        $(#[doc = $sdoc:literal])*
        $(#[derive($($derive:path),* $(,)?)])?
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                #[tf($($flag:ident),* $(,)?)]
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone $($(, $derive)*)?)]
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                $fvis $field: $ty,
            )*
        }

        impl $crate::TfValue for $name {
            fn nested_object() -> ::std::option::Option<$crate::NestedObject> {
                ::std::option::Option::Some($crate::NestedObject {
                    nesting: $crate::Nesting::Single,
                    attributes: <Self as $crate::Model>::attributes(),
                })
            }

            fn tf_type() -> $crate::Type {
                $crate::Type::object(::std::vec::Vec::<(&str, $crate::Type)>::from([
                    $( ($crate::model::support::field_name(stringify!($field)), <$ty as $crate::TfValue>::tf_type()) ),*
                ]))
            }

            fn to_dynamic(&self) -> $crate::Dynamic {
                $crate::Dynamic::object(::std::vec::Vec::<(&str, $crate::Dynamic)>::from([
                    $( ($crate::model::support::field_name(stringify!($field)), $crate::TfValue::to_dynamic(&self.$field)) ),*
                ]))
            }

            fn from_dynamic(
                value: $crate::Dynamic,
                path: &$crate::AttributePath,
            ) -> ::std::result::Result<Self, $crate::ConvertError> {
                #[allow(unused_mut, unused_variables)]
                let mut attrs = $crate::model::support::object_fields(
                    value,
                    path,
                    &<Self as $crate::TfValue>::tf_type(),
                )?;
                Ok(Self {
                    $(
                        $field: <$ty as $crate::TfValue>::from_dynamic(
                            attrs.remove($crate::model::support::field_name(stringify!($field))).unwrap_or($crate::Dynamic::Null),
                            &path.clone().attr($crate::model::support::field_name(stringify!($field))),
                        )?,
                    )*
                })
            }
        }

        impl $crate::Model for $name {
            fn description() -> ::std::string::String {
                $crate::model::support::join_doc(&[$($sdoc),*])
            }

            fn attributes() -> ::std::vec::Vec<$crate::Attribute> {
                ::std::vec![
                    $(
                        $crate::Attribute::new(
                            $crate::model::support::field_name(stringify!($field)),
                            <$ty as $crate::TfValue>::tf_type(),
                        )
                        .description($crate::model::support::join_doc(&[$($doc),*]))
                        $(.$flag())*
                        .resolve_nested(<$ty as $crate::TfValue>::nested_object())
                    ),*
                ]
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::model! {
        /// A rule.
        pub struct Rule {
            /// Rule id.
            #[tf(required)]
            pub id: String,
            /// A keyword as attribute name.
            #[tf(optional)]
            pub r#type: Option<String>,
            /// Optional weight.
            #[tf(optional)]
            pub weight: Option<i64>,
        }
    }

    crate::model! {
        /// A token.
        ///
        /// Second paragraph.
        pub struct Token {
            /// The name.
            #[tf(required, requires_replace)]
            pub name: Value<String>,
            /// Secret value.
            #[tf(computed, sensitive)]
            pub secret: Value<SecretString>,
            /// Labels.
            #[tf(optional)]
            pub labels: Option<BTreeMap<String, String>>,
            /// Scopes.
            #[tf(optional)]
            pub scopes: Option<BTreeSet<String>>,
            /// Rules.
            #[tf(optional)]
            pub rules: Option<Vec<Rule>>,
            /// Write-only password.
            #[tf(optional, write_only)]
            pub password: Option<String>,
        }
    }

    crate::model! {
        /// Rules as nested attributes.
        pub struct Policy {
            /// A set of rules.
            #[tf(optional, nested)]
            pub rules: Option<BTreeSet<RuleKey>>,
            /// One rule.
            #[tf(required, nested)]
            pub main: Rule,
            /// Rules by name.
            #[tf(computed, nested)]
            pub named: Value<BTreeMap<String, Rule>>,
        }
    }

    crate::model! {
        /// A rule usable in a set.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        pub struct RuleKey {
            /// Key.
            #[tf(required)]
            pub key: String,
        }
    }

    crate::model! {
        /// `nested` on a type that holds no objects.
        pub struct NotNested {
            /// A plain list.
            #[tf(optional, nested)]
            pub names: Option<Vec<String>>,
        }
    }

    #[test]
    fn nested_attributes_describe_their_objects_to_terraform() {
        use crate::proto::tfplugin6::schema::object::NestingMode;
        let attrs = Policy::attributes();
        let rules = attrs[0].nested.as_ref().expect("rules is nested");
        assert_eq!(rules.nesting, Nesting::Set);
        assert!(rules.attributes[0].required && rules.attributes[0].name == "key");
        assert_eq!(attrs[1].nested.as_ref().unwrap().nesting, Nesting::Single);
        let named = attrs[2].nested.as_ref().unwrap();
        assert_eq!(named.nesting, Nesting::Map);
        // the inner flags are the inner model's own
        let weight = &named.attributes[2];
        assert!(weight.optional && !weight.required && weight.name == "weight");

        let proto = crate::Schema::of::<Policy>(0).to_proto();
        let block = proto.block.unwrap();
        let rules = &block.attributes[0];
        assert!(
            rules.r#type.is_empty(),
            "a nested attribute carries no type"
        );
        let object = rules.nested_type.as_ref().unwrap();
        assert_eq!(object.nesting, NestingMode::Set as i32);
        assert_eq!(object.attributes[0].name, "key");
        assert_eq!(object.attributes[0].r#type, b"\"string\"");
        assert!(object.attributes[0].required);
        assert_eq!(
            block.attributes[2].nested_type.as_ref().unwrap().nesting,
            NestingMode::Map as i32
        );
        // the value type is unchanged: a set of objects
        assert_eq!(
            crate::Schema::of::<Policy>(0).value_type(),
            Policy::tf_type()
        );
        assert!(crate::Schema::of::<Policy>(0).check(true).is_empty());
        // without `nested`, an object-typed attribute stays a plain type
        assert!(Token::attributes()[4].nested.is_none());
    }

    #[test]
    fn nested_on_a_type_without_objects_is_a_schema_error() {
        let diags = crate::Schema::of::<NotNested>(0).check(true);
        assert!(diags.has_errors());
        let detail = format!("{:?}", diags);
        assert!(detail.contains("nested needs a model"), "{detail}");
    }

    #[test]
    fn one_definition_gives_schema_and_type() {
        assert_eq!(Token::description(), "A token.\n\nSecond paragraph.");
        let attrs = Token::attributes();
        let names: Vec<_> = attrs.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["name", "secret", "labels", "scopes", "rules", "password"]
        );
        assert!(attrs[0].required && attrs[0].requires_replace && !attrs[0].optional);
        assert!(attrs[1].computed && attrs[1].sensitive);
        assert!(attrs[5].write_only && attrs[5].optional);
        assert_eq!(attrs[4].description, "Rules.");
        assert_eq!(
            attrs[4].ty,
            Type::list(Type::object([
                ("id", Type::String),
                ("type", Type::String),
                ("weight", Type::Number)
            ]))
        );
        let schema = crate::Schema::of::<Token>(2);
        assert_eq!(schema.value_type(), Token::tf_type());
        assert!(schema.check(true).is_empty());
    }

    #[test]
    fn models_convert_both_ways_including_unknowns() {
        let value = Dynamic::object([
            ("name", Dynamic::from("ci")),
            ("secret", Dynamic::Unknown),
            (
                "labels",
                Dynamic::Map([("team".to_owned(), "infra".into())].into()),
            ),
            ("scopes", Dynamic::Set(vec!["a:read".into()])),
            (
                "rules",
                Dynamic::List(vec![Dynamic::object([
                    ("id", Dynamic::from("r")),
                    ("type", Dynamic::from("device")),
                    ("weight", Dynamic::Null),
                ])]),
            ),
            ("password", Dynamic::Null),
        ]);
        let token = Token::from_dynamic(value.clone(), &AttributePath::root()).unwrap();
        assert_eq!(token.name, Value::Known("ci".to_owned()));
        assert!(token.secret.is_unknown());
        assert_eq!(token.rules.as_ref().unwrap()[0].weight, None);
        assert_eq!(
            token.rules.as_ref().unwrap()[0].r#type.as_deref(),
            Some("device")
        );
        assert_eq!(token.to_dynamic(), value);
    }

    #[test]
    fn unknown_in_a_plain_field_is_reported_with_its_path() {
        let value = Dynamic::object([
            ("name", Dynamic::from("ci")),
            (
                "rules",
                Dynamic::List(vec![Dynamic::object([("id", Dynamic::Unknown)])]),
            ),
        ]);
        let err = Token::from_dynamic(value, &AttributePath::root()).unwrap_err();
        assert_eq!(err.kind, ConvertErrorKind::Unknown);
        assert_eq!(err.path, AttributePath::new("rules").index(0).attr("id"));
        let diag = err.to_diagnostic();
        assert_eq!(diag.attribute, Some(err.path.clone()));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let token = Token {
            name: Value::Known("n".into()),
            secret: Value::Known(SecretString::from("tko_supersecret")),
            labels: None,
            scopes: None,
            rules: None,
            password: None,
        };
        assert!(!format!("{token:?}").contains("supersecret"));
    }
}
