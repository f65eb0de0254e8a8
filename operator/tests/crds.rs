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
