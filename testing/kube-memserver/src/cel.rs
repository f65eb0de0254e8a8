//! The `x-kubernetes-validations` CEL rules of custom resources, evaluated as
//! the API server does on every write (with the Kubernetes CEL libraries, from
//! the `kube-cel` crate). A rule's failure becomes a `422 Invalid` with the
//! rule's message; on an update, a failure the stored object already had is
//! let through, as the API server's validation ratcheting does.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use kube_cel::{CompiledSchema, ValidationError, Validator};
use serde_json::Value;

/// The validator and the schemas compiled so far, keyed by their JSON text:
/// a CRD's rules are compiled once and checked on every write of its objects.
struct Rules {
    validator: Validator,
    compiled: HashMap<String, Arc<CompiledSchema>>,
}

static RULES: LazyLock<Mutex<Rules>> = LazyLock::new(|| {
    Mutex::new(Rules {
        validator: Validator::new(),
        compiled: HashMap::new(),
    })
});

/// One failure as the API server words it: `<path>: Invalid value: "object": <message>`.
fn describe(e: &ValidationError) -> String {
    let path = if e.field_path.is_empty() {
        "<nil>"
    } else {
        &e.field_path
    };
    format!("{path}: Invalid value: \"object\": {}", e.message)
}

/// The CEL rules of `schema` that `new` breaks (empty when it keeps them all);
/// `old` is the stored object on an update.
pub(crate) fn validate(schema: &Value, new: &Value, old: Option<&Value>) -> Vec<String> {
    if !schema.to_string().contains("x-kubernetes-validations") {
        return Vec::new();
    }
    let mut rules = RULES.lock().unwrap_or_else(|e| e.into_inner());
    let key = schema.to_string();
    let compiled = Arc::clone(
        rules
            .compiled
            .entry(key)
            .or_insert_with(|| Arc::new(kube_cel::compile_schema(schema))),
    );
    let broken = |object: &Value, old: Option<&Value>| -> Vec<String> {
        match rules.validator.validate_compiled(&compiled, object, old) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(describe).collect(),
        }
    };
    let mut errors = broken(new, old);
    if let Some(old) = old
        && !errors.is_empty()
    {
        let already = broken(old, None);
        errors.retain(|e| !already.contains(e));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "message": "min must not exceed max"},
                {"rule": "duration(self.every) < duration('1h')", "message": "every must be under an hour"},
            ],
            "properties": {
                "min": {"type": "integer"}, "max": {"type": "integer"},
                "every": {"type": "string", "default": "1m"},
            },
        }}})
    }

    #[test]
    fn broken_rules_are_reported_with_their_message_and_path() {
        let ok = json!({"spec": {"min": 1, "max": 2}});
        assert!(validate(&schema(), &ok, None).is_empty());
        let bad = json!({"spec": {"min": 3, "max": 2, "every": "2h"}});
        assert_eq!(
            validate(&schema(), &bad, None),
            [
                "spec: Invalid value: \"object\": min must not exceed max",
                "spec: Invalid value: \"object\": every must be under an hour",
            ]
        );
    }

    #[test]
    fn an_update_keeps_failures_the_stored_object_already_had() {
        let old = json!({"spec": {"min": 3, "max": 2}});
        let new = json!({"spec": {"min": 3, "max": 2, "every": "2h"}});
        assert_eq!(
            validate(&schema(), &new, Some(&old)),
            ["spec: Invalid value: \"object\": every must be under an hour"]
        );
    }
}
