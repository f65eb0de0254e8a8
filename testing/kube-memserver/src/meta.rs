//! Validation of `metadata` that Kubernetes applies to every object: label and
//! annotation syntax, and ownerReferences.

use serde_json::Value;

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A label value, or the name part of a qualified key: at most 63 characters of
/// alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
fn qualified_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

fn dns_subdomain(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty() && s.len() <= 253 && s.chars().all(ok) && s.starts_with(edge) && s.ends_with(edge)
}

/// `prefix/name` or `name`, as label and annotation keys must be.
fn qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => dns_subdomain(prefix) && qualified_part(name),
        None => qualified_part(key),
    }
}

fn label_value(v: &str) -> bool {
    v.is_empty() || qualified_part(v)
}

/// The field errors in an object's metadata (empty when valid).
pub(crate) fn validate(obj: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(meta) = obj.get("metadata") else {
        return errors;
    };
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !qualified_name(k) {
                errors.push(format!("metadata.labels: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match v.as_str() {
                Some(s) if label_value(s) => {}
                _ => errors.push(format!("metadata.labels: Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)")),
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            if !qualified_name(&k.to_lowercase()) {
                errors.push(format!(
                    "metadata.annotations: Invalid value: {k:?}: must be a qualified name"
                ));
            }
            match v.as_str() {
                Some(s) => total += k.len() + s.len(),
                None => errors.push(format!(
                    "metadata.annotations.{k}: Invalid value: annotation values must be strings"
                )),
            }
        }
        if total > 256 * 1024 {
            errors.push("metadata.annotations: Too long: must have at most 262144 bytes".into());
        }
    }
    if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
        let mut controllers = 0;
        for (i, r) in refs.iter().enumerate() {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errors.push(format!("metadata.ownerReferences[{i}].{field}: Invalid value: \"\": {field} must not be empty"));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errors.push("metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true".into());
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_annotations_and_owner_references_are_checked() {
        let ok = json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "tokenops-operator", "empty": ""},
            "annotations": {"tokenops.dev/rotate": "any value / at all"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "n", "uid": "u", "controller": true}],
        }});
        assert!(validate(&ok).is_empty());
        let bad = json!({"metadata": {
            "labels": {"bad key!": "x", "k": "has space", "long": "x".repeat(64)},
            "ownerReferences": [{"kind": "K", "name": "n", "uid": "u", "controller": true},
                                {"apiVersion": "v1", "kind": "K", "name": "m", "uid": "v", "controller": true}],
        }});
        assert_eq!(validate(&bad).len(), 5, "{:?}", validate(&bad));
    }
}
