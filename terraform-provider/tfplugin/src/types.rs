//! Terraform (cty) types and their JSON encoding, as used in schemas and in
//! the msgpack encoding of dynamically-typed values.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value as Json, json};

/// A Terraform value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `bool`
    Bool,
    /// `number` (arbitrary precision in Terraform; see [`crate::Number`]).
    Number,
    /// `string`
    String,
    /// `dynamic`: any type, decided per value.
    Dynamic,
    /// `list(T)`
    List(Box<Type>),
    /// `set(T)`
    Set(Box<Type>),
    /// `map(T)`: string keys.
    Map(Box<Type>),
    /// `object({...})`: a fixed set of named attributes.
    Object(BTreeMap<String, Type>),
    /// `tuple([...])`: a fixed sequence of element types.
    Tuple(Vec<Type>),
}

/// A type description that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid type description: {0}")]
pub struct TypeError(pub String);

impl Type {
    /// `list(elem)`
    pub fn list(elem: Type) -> Self {
        Type::List(Box::new(elem))
    }
    /// `set(elem)`
    pub fn set(elem: Type) -> Self {
        Type::Set(Box::new(elem))
    }
    /// `map(elem)`
    pub fn map(elem: Type) -> Self {
        Type::Map(Box::new(elem))
    }
    /// `object({...})` from `(name, type)` pairs.
    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Type)>) -> Self {
        Type::Object(attrs.into_iter().map(|(k, t)| (k.into(), t)).collect())
    }

    /// The JSON form Terraform uses in schemas: `"string"`, `["list","number"]`,
    /// `["object",{"a":"bool"}]`, ...
    pub fn to_json(&self) -> Json {
        match self {
            Type::Bool => json!("bool"),
            Type::Number => json!("number"),
            Type::String => json!("string"),
            Type::Dynamic => json!("dynamic"),
            Type::List(e) => json!(["list", e.to_json()]),
            Type::Set(e) => json!(["set", e.to_json()]),
            Type::Map(e) => json!(["map", e.to_json()]),
            Type::Object(attrs) => {
                let attrs: serde_json::Map<String, Json> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", attrs])
            }
            Type::Tuple(elems) => {
                json!(["tuple", elems.iter().map(Type::to_json).collect::<Vec<_>>()])
            }
        }
    }

    /// [`Type::to_json`] serialised to bytes, as schemas carry it.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// Parses the JSON form. Optional-attribute markers of object type
    /// constraints (a third array element) are accepted and ignored.
    pub fn from_json(json: &Json) -> Result<Self, TypeError> {
        match json {
            Json::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(TypeError(format!("unknown primitive type {other:?}"))),
            },
            Json::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0]
                    .as_str()
                    .ok_or_else(|| TypeError("type kind must be a string".into()))?;
                let arg = &parts[1];
                match (kind, parts.len()) {
                    ("list", 2) => Ok(Type::list(Type::from_json(arg)?)),
                    ("set", 2) => Ok(Type::set(Type::from_json(arg)?)),
                    ("map", 2) => Ok(Type::map(Type::from_json(arg)?)),
                    ("object", 2 | 3) => {
                        let attrs = arg
                            .as_object()
                            .ok_or_else(|| TypeError("object attributes must be a map".into()))?;
                        attrs
                            .iter()
                            .map(|(k, v)| Ok((k.clone(), Type::from_json(v)?)))
                            .collect::<Result<_, _>>()
                            .map(Type::Object)
                    }
                    ("tuple", 2) => {
                        let elems = arg
                            .as_array()
                            .ok_or_else(|| TypeError("tuple elements must be a list".into()))?;
                        elems
                            .iter()
                            .map(Type::from_json)
                            .collect::<Result<_, _>>()
                            .map(Type::Tuple)
                    }
                    _ => Err(TypeError(format!("unknown type kind {kind:?}"))),
                }
            }
            other => Err(TypeError(format!("unexpected {other}"))),
        }
    }

    /// [`Type::from_json`] from bytes.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, TypeError> {
        let json: Json = serde_json::from_slice(bytes).map_err(|e| TypeError(e.to_string()))?;
        Type::from_json(&json)
    }
}

impl fmt::Display for Type {
    /// Terraform's own spelling: `list(object({a=string}))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Number => f.write_str("number"),
            Type::String => f.write_str("string"),
            Type::Dynamic => f.write_str("dynamic"),
            Type::List(e) => write!(f, "list({e})"),
            Type::Set(e) => write!(f, "set({e})"),
            Type::Map(e) => write!(f, "map({e})"),
            Type::Object(attrs) => {
                f.write_str("object({")?;
                for (i, (k, t)) in attrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}={t}")?;
                }
                f.write_str("})")
            }
            Type::Tuple(elems) => {
                f.write_str("tuple([")?;
                for (i, t) in elems.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str("])")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cty_json_matches_terraform_spelling() {
        let ty = Type::object([
            ("id", Type::String),
            ("scopes", Type::set(Type::String)),
            (
                "rules",
                Type::list(Type::object([("weight", Type::Number)])),
            ),
            ("labels", Type::map(Type::Bool)),
            ("pair", Type::Tuple(vec![Type::String, Type::Dynamic])),
        ]);
        let json = ty.to_json();
        assert_eq!(
            json,
            json!(["object", {
                "id": "string",
                "labels": ["map", "bool"],
                "pair": ["tuple", ["string", "dynamic"]],
                "rules": ["list", ["object", {"weight": "number"}]],
                "scopes": ["set", "string"],
            }])
        );
        assert_eq!(Type::from_json_bytes(&ty.to_json_bytes()).unwrap(), ty);
    }

    #[test]
    fn optional_attribute_markers_are_accepted() {
        let json = json!(["object", {"a": "string", "b": "number"}, ["b"]]);
        assert_eq!(
            Type::from_json(&json).unwrap(),
            Type::object([("a", Type::String), ("b", Type::Number)])
        );
    }

    #[test]
    fn invalid_type_descriptions_are_errors() {
        for bad in [
            json!("float"),
            json!(["list"]),
            json!(["object", []]),
            json!(42),
        ] {
            assert!(Type::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_uses_terraform_syntax() {
        let ty = Type::list(Type::object([
            ("a", Type::String),
            ("b", Type::set(Type::Number)),
        ]));
        assert_eq!(ty.to_string(), "list(object({a=string,b=set(number)}))");
    }
}
