//! Light structural-schema handling for custom resources: defaults, pruning of
//! unknown fields, and type/required/enum checks. CEL rules are in `cel`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Map, Value};

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, root: bool, errors: &mut Vec<String>) {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if int_or_string {
        if !matches!(type_name(v), "integer" | "string") {
            errors.push(format!(
                "{path}: Invalid value: \"{}\": {path} in body must be of type integer-or-string",
                type_name(v)
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            errors.push(format!("{path}: Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{path}: Unsupported value: {v}: supported values: {}",
            list.join(", ")
        ));
    }
    check_bounds(schema, v, path, errors);
    match v {
        Value::Object(obj) => walk_object(schema, obj, path, root, errors),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), false, errors);
                }
            }
        }
        _ => {}
    }
}

/// `minimum`/`maximum`, `minLength`/`maxLength`/`pattern`, `minItems`/`maxItems`,
/// `minProperties`/`maxProperties`.
/// Whether `s` matches the schema `pattern`; `None` for a pattern this regex
/// engine cannot compile (then it is not checked). Compiled patterns are kept:
/// a CRD's few patterns are checked on every write of its objects.
fn matches_pattern(pattern: &str, s: &str) -> Option<bool> {
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if !compiled.contains_key(pattern) {
        compiled.insert(pattern.to_string(), regex::Regex::new(pattern).ok());
    }
    compiled[pattern].as_ref().map(|re| re.is_match(s))
}

fn check_bounds(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    let count = |k: &str| schema.get(k).and_then(Value::as_u64);
    let exclusive = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = num("minimum")
                && (x < min || (exclusive("exclusiveMinimum") && x == min))
            {
                errors.push(format!("{path}: Invalid value: {n}: {path} in body should be greater than or equal to {min}"));
            }
            if let Some(max) = num("maximum")
                && (x > max || (exclusive("exclusiveMaximum") && x == max))
            {
                errors.push(format!("{path}: Invalid value: {n}: {path} in body should be less than or equal to {max}"));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = count("minLength")
                && len < min
            {
                errors.push(format!("{path}: Invalid value: {s:?}: {path} in body should be at least {min} chars long"));
            }
            if let Some(max) = count("maxLength")
                && len > max
            {
                errors.push(format!(
                    "{path}: Too long: may not be more than {max} bytes"
                ));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && matches_pattern(pattern, s) == Some(false)
            {
                errors.push(format!(
                    "{path}: Invalid value: {s:?}: {path} in body should match '{pattern}'"
                ));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if count("minItems").is_some_and(|min| len < min) {
                errors.push(format!(
                    "{path}: Invalid value: {len}: {path} in body should have at least {} items",
                    count("minItems").unwrap_or_default()
                ));
            }
            if count("maxItems").is_some_and(|max| len > max) {
                errors.push(format!(
                    "{path}: Too many: {len}: must have at most {} items",
                    count("maxItems").unwrap_or_default()
                ));
            }
        }
        Value::Object(m) => {
            let len = m.len() as u64;
            if count("minProperties").is_some_and(|min| len < min) {
                errors.push(format!("{path}: Invalid value: {len}: {path} in body should have at least {} properties", count("minProperties").unwrap_or_default()));
            }
            if count("maxProperties").is_some_and(|max| len > max) {
                errors.push(format!(
                    "{path}: Too many: {len}: must have at most {} properties",
                    count("maxProperties").unwrap_or_default()
                ));
            }
        }
        _ => {}
    }
}

fn walk_object(
    schema: &Value,
    obj: &mut Map<String, Value>,
    path: &str,
    root: bool,
    errors: &mut Vec<String>,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let keep_unknown =
        preserves_unknown(schema) || schema.get("additionalProperties") == Some(&Value::Bool(true));
    let embedded = schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let child_path = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    // Defaults for absent properties.
    if let Some(props) = props {
        for (k, ps) in props {
            if !obj.contains_key(k)
                && let Some(d) = ps.get("default")
            {
                obj.insert(k.clone(), d.clone());
            }
        }
    }
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let nullable = |s: &Value| s.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let child_schema = props.and_then(|p| p.get(&k)).or(additional);
        match child_schema {
            Some(cs) => {
                if obj[&k].is_null() {
                    if !nullable(cs) {
                        obj.remove(&k);
                    }
                    continue;
                }
                let value = obj.get_mut(&k).expect("key exists");
                walk(cs, value, &child_path(&k), false, errors);
            }
            None => {
                if !keep_unknown {
                    obj.remove(&k);
                }
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                errors.push(format!("{}: Required value", child_path(r)));
            }
        }
    }
}

/// Defaults, prunes and checks `obj` against an `openAPIV3Schema`; returns the
/// validation errors (empty when valid).
pub(crate) fn validate(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut errors = Vec::new();
    walk(schema, obj, "", true, &mut errors);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_prunes_and_validates() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "replicas": {"type": "integer", "default": 1},
                        "mode": {"type": "string", "enum": ["A", "B"]},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "opt": {"type": "string", "nullable": true},
                    }
                }
            }
        });
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"name": "n", "unknown": 1, "extra": {"any": true}, "opt": null}, "junk": 1});
        assert!(validate(&schema, &mut obj).is_empty());
        assert_eq!(
            obj["spec"],
            json!({"name": "n", "replicas": 1, "extra": {"any": true}, "opt": null})
        );
        assert!(obj.get("junk").is_none());
        let mut bad = json!({"spec": {"replicas": "x", "mode": "C"}});
        let errs = validate(&schema, &mut bad);
        assert_eq!(errs.len(), 3, "{errs:?}");

        let bounded = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 3},
            "s": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3},
            "l": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        }});
        assert!(validate(&bounded, &mut json!({"n": 2, "s": "ab", "l": ["x"]})).is_empty());
        let errs = validate(&bounded, &mut json!({"n": 4, "s": "ABCD", "l": []}));
        assert_eq!(errs.len(), 4, "{errs:?}");
    }
}
