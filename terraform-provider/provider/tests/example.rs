//! `examples/terraform/main.tf` applies, plans clean, and destroys under
//! the real `terraform` against a real server.

mod support;

use support::{Tf, client};
use tokenops_client::secrecy::SecretString;
use tokenops_client::{TokenStatus, VerifyCode};
use tokenops_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_applies_and_destroys() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    // As the example says: automation holds a token-admin token, not an owner's.
    let admin = api
        .create_token("terraform")
        .role("token-admin")
        .lifetime(std::time::Duration::from_secs(8760 * 3600))
        .await
        .expect("a token-admin token");
    let tf = Tf::new(
        &server.url(),
        tokenops_client::secrecy::ExposeSecret::expose_secret(&admin.secret),
    );
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/terraform/main.tf");
    std::fs::copy(&example, tf.dir.join("main.tf")).expect("copy the example");

    tf.apply(&[]).await;
    let cicd = tf.attributes("tokenops_api_token.cicd");
    let value = cicd["token"].as_str().unwrap().to_owned();
    let answer = api
        .verify(SecretString::from(value))
        .permission("deployments:write")
        .await
        .unwrap();
    assert_eq!(answer.code, VerifyCode::Valid);
    // "*" is every product permission and no management permission.
    let value = cicd["token"].as_str().unwrap().to_owned();
    let answer = api
        .verify(SecretString::from(value))
        .permission("tokens:create")
        .await
        .unwrap();
    assert_eq!(answer.code, VerifyCode::InsufficientPermissions);
    let monitoring = tf.attributes("tokenops_api_token.monitoring");
    assert_eq!(monitoring["resources"].as_array().unwrap().len(), 2);
    assert_eq!(
        tf.output("smoke_test_saw_cicd_expiring_at").await,
        cicd["expires_at"]
    );
    let masked = tf.output("accounting_token_masked").await;
    assert!(masked.as_str().unwrap().starts_with("tko_"), "{masked}");

    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 0, "{plan}");

    // The smoke-test tokens were revoked after each run and never stored.
    let smoke = api
        .list_tokens()
        .name("terraform-smoke-test")
        .all_statuses()
        .all()
        .await
        .unwrap();
    assert!(!smoke.is_empty());
    assert!(
        smoke.iter().all(|t| t.status == TokenStatus::Revoked),
        "{smoke:?}"
    );
    let state = tf.state_text();
    for t in [&cicd, &monitoring] {
        assert!(state.contains(t["token"].as_str().unwrap()));
    }
    let stored_values = state.matches("\"token\": \"tko_").count();
    assert_eq!(
        stored_values, 3,
        "only the three managed tokens' values are in state"
    );

    tf.ok(&["destroy", "-auto-approve"]).await;
    let ours = api
        .list_tokens()
        .label("managed-by", "terraform")
        .all_statuses()
        .all()
        .await
        .unwrap();
    // Destroy revokes; tokens with a grace_period (the rotation policy's
    // 1h) are revoked when it ends: their expiry is brought forward to it.
    let grace_end = chrono::Utc::now() + chrono::Duration::minutes(61);
    assert!(
        ours.iter()
            .all(|t| t.status == TokenStatus::Revoked
                || t.expires_at.is_some_and(|e| e <= grace_end)),
        "{ours:?}"
    );
}
