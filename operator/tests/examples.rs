//! Every example under examples/kubernetes parses as our types and is accepted
//! by an API server serving the generated CRDs.

use std::path::PathBuf;

use kube_memserver::MemServer;
use tokenops_operator::crd::{self, ApiToken, ClusterTokenBackend, TokenBackend};
use tokenops_operator::desired::desired;

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_example_is_valid() {
    let server = MemServer::start().await;
    for (_, def) in crd::all() {
        server
            .install_crd(serde_json::to_value(def).unwrap())
            .unwrap();
    }
    for (path, text) in examples() {
        let objects = server
            .apply_yaml(&text)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        for obj in objects {
            match obj["kind"].as_str().unwrap() {
                "ApiToken" => {
                    let mut tok: ApiToken = serde_json::from_value(obj.clone()).unwrap();
                    tok.metadata.uid.get_or_insert_with(|| "uid".into());
                    desired(&tok, "TokenBackend/x/y", None)
                        .unwrap_or_else(|e| panic!("{path}: {e}"));
                }
                "TokenBackend" => {
                    serde_json::from_value::<TokenBackend>(obj).unwrap();
                }
                "ClusterTokenBackend" => {
                    serde_json::from_value::<ClusterTokenBackend>(obj).unwrap();
                }
                "Secret" => {}
                other => panic!("{path}: unexpected kind {other}"),
            }
        }
    }
}
