//! Light structural-schema handling for custom resources: defaults, pruning of
//! unknown fields, and type/required/enum checks. No CEL, no formats.

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
    }
}
