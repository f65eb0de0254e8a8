//! The committed registry docs (`terraform-provider/docs/`) must match what
//! `terraform-provider-tokenops docs` renders from the schemas.

use std::path::Path;

#[test]
fn committed_docs_match_the_schema() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut stale = Vec::new();
    for (rel, rendered) in terraform_provider_tokenops::docs::render_all() {
        let committed = std::fs::read_to_string(docs.join(&rel)).unwrap_or_default();
        if committed != rendered {
            stale.push(rel.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale docs: {stale:?}; regenerate with `cargo run -p terraform-provider-tokenops -- docs terraform-provider/docs` from the workspace root"
    );
}

mod support;

/// Every snippet in the docs is valid configuration for this provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_docs_example_is_valid_terraform() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    for (name, snippet) in terraform_provider_tokenops::docs::examples() {
        let tf = support::Tf::new("http://127.0.0.1:9", "tko_unused");
        if snippet.contains("required_providers") {
            std::fs::write(tf.dir.join("main.tf"), snippet).unwrap();
        } else {
            tf.config(snippet);
        }
        let out = tf.run(&["validate", "-no-color"]).await;
        assert!(
            out.status.success(),
            "docs example {name:?} is invalid:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
