//! The committed `crds/` must be exactly what the Rust types generate.
//! Refresh with `UPDATE_CRDS=1 cargo test -p tokenops-operator --test crds`.

use std::path::PathBuf;

use tokenops_operator::crd;

/// `crds/` and the operator chart's copy (Helm cannot read outside a chart).
fn crds_dirs() -> [PathBuf; 2] {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        root.join("crds"),
        root.join("charts/tokenops-operator/files/crds"),
    ]
}

#[test]
fn committed_crds_match_the_rust_types() {
    for dir in crds_dirs() {
        check_dir(&dir);
    }
}

fn check_dir(dir: &std::path::Path) {
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for (file, def) in crd::all() {
        let want = crd::to_yaml(&def);
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale: {stale:?}: run `UPDATE_CRDS=1 cargo test -p tokenops-operator --test crds`"
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = crd::all().iter().map(|(f, _)| f.to_string()).collect();
    expected.sort();
    assert_eq!(
        on_disk,
        expected,
        "{} holds files no kind generates",
        dir.display()
    );
}

#[test]
fn the_crd_command_prints_every_committed_crd() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenops-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let want: String = crd::all().iter().map(|(_, d)| crd::to_yaml(d)).collect();
    assert_eq!(text, want);
}

#[test]
fn the_api_token_crd_has_the_contracted_shape() {
    let def = serde_json::to_value(crd::all().remove(0).1).unwrap();
    let version = &def["spec"]["versions"][0];
    assert_eq!(def["spec"]["group"], "tokenops.dev");
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Ready", "Token", "Expires", "Renewal", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules = serde_json::to_string(&spec["x-kubernetes-validations"]).unwrap();
    assert!(rules.contains("renewBeforePercentage"), "{rules}");
    assert!(rules.contains("gracePeriod"), "{rules}");
    assert_eq!(spec["properties"]["deletionPolicy"]["default"], "Revoke");
    // Every field is documented.
    fn undocumented(path: &str, schema: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                if v["description"].as_str().is_none_or(str::is_empty) {
                    out.push(p.clone());
                }
                undocumented(&p, v, out);
                undocumented(&p, &v["items"], out);
            }
        }
    }
    for (_, d) in crd::all() {
        let v = serde_json::to_value(&d).unwrap();
        let mut missing = Vec::new();
        let root = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        undocumented("spec", &root["properties"]["spec"], &mut missing);
        undocumented("status", &root["properties"]["status"], &mut missing);
        assert!(
            missing.is_empty(),
            "{}: undocumented {missing:?}",
            d.spec.names.kind
        );
    }
}

/// Every `x-kubernetes-validations` rule under `schema`: the path of the object
/// it applies to, the rule and its message.
fn cel_rules(
    schema: &serde_json::Value,
    path: &[String],
    out: &mut Vec<(Vec<String>, String, String)>,
) {
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for r in rules {
            out.push((
                path.to_vec(),
                r["rule"].as_str().unwrap().to_string(),
                r["message"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            let mut p = path.to_vec();
            p.push(k.clone());
            cel_rules(v, &p, out);
        }
    }
}

/// The messages of the rules that `object` breaks; panics if a rule does not
/// evaluate to a boolean (e.g. a function the interpreter lacks).
fn broken_rules(
    rules: &[(Vec<String>, String, String)],
    object: &serde_json::Value,
) -> Vec<String> {
    let mut broken = Vec::new();
    for (path, rule, message) in rules {
        let mut target = object;
        for p in path {
            target = &target[p];
        }
        if target.is_null() {
            continue;
        }
        let program = cel_interpreter::Program::compile(rule)
            .unwrap_or_else(|e| panic!("rule {rule:?} does not parse: {e}"));
        let mut context = cel_interpreter::Context::default();
        context
            .add_variable("self", cel_interpreter::to_value(target).unwrap())
            .unwrap();
        match program.execute(&context) {
            Ok(cel_interpreter::Value::Bool(true)) => {}
            Ok(cel_interpreter::Value::Bool(false)) => broken.push(message.clone()),
            other => panic!("rule {rule:?} on {target} gave {other:?}, not a boolean"),
        }
    }
    broken
}

#[test]
fn every_cel_rule_accepts_valid_specs_and_rejects_what_the_operator_rejects() {
    let mut rules = Vec::new();
    for (_, def) in crd::all() {
        let v = serde_json::to_value(&def).unwrap();
        for version in v["spec"]["versions"].as_array().unwrap() {
            cel_rules(&version["schema"]["openAPIV3Schema"], &[], &mut rules);
        }
    }
    assert!(rules.len() >= 3, "{rules:?}");

    let object = |spec: serde_json::Value| {
        let mut spec = spec;
        spec["backendRef"] = serde_json::json!({"name": "main"});
        serde_json::json!({
            "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
            "metadata": {"name": "t", "namespace": "n", "uid": "u-1"},
            "spec": spec,
        })
    };
    // The operator's own validation must agree with the CEL rules.
    let operator_accepts = |o: &serde_json::Value| {
        let tok: tokenops_operator::crd::ApiToken = serde_json::from_value(o.clone()).unwrap();
        tokenops_operator::desired::desired(&tok, "TokenBackend/n/main", None).is_ok()
    };
    for valid in [
        serde_json::json!({}),
        serde_json::json!({"lifetime": "2h", "gracePeriod": "1h", "renewBefore": "30m"}),
        serde_json::json!({"lifetime": "1h30m", "renewBefore": "45m", "gracePeriod": "89m"}),
        serde_json::json!({"lifetime": "30d", "gracePeriod": "1h", "renewBeforePercentage": 20}),
        serde_json::json!({"renewBefore": "240h"}),
    ] {
        let o = object(valid);
        assert_eq!(broken_rules(&rules, &o), Vec::<String>::new(), "{o}");
        assert!(operator_accepts(&o), "{o}");
    }
    for (invalid, message) in [
        (
            serde_json::json!({"renewBefore": "1h", "renewBeforePercentage": 10}),
            "set at most one of renewBefore and renewBeforePercentage",
        ),
        (
            serde_json::json!({"lifetime": "1h", "gracePeriod": "2h"}),
            "gracePeriod must be shorter than lifetime",
        ),
        (
            serde_json::json!({"lifetime": "1h", "gracePeriod": "60m"}),
            "gracePeriod must be shorter than lifetime",
        ),
        (
            serde_json::json!({"lifetime": "1h", "renewBefore": "1h30m"}),
            "renewBefore must be shorter than lifetime",
        ),
    ] {
        let o = object(invalid);
        assert_eq!(broken_rules(&rules, &o), vec![message.to_string()], "{o}");
        assert!(!operator_accepts(&o), "{o}");
    }
    // CEL's duration() has no days, so the rules let day durations through;
    // the operator still rejects the contradiction (Ready=False, InvalidSpec).
    let days = object(serde_json::json!({"lifetime": "1d", "gracePeriod": "2d"}));
    assert!(broken_rules(&rules, &days).is_empty());
    assert!(!operator_accepts(&days));
}
