//! End-to-end tests: the real `terraform` binary drives the provider binary
//! against a real tokenops server (SQLite). Without `terraform` on PATH the
//! tests print why they skip, unless `CI=true`, where they fail.

mod support;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use support::{Tf, client, contains_token_value};
use tokenops_client::secrecy::SecretString;
use tokenops_client::{Client, TokenStatus, VerifyCode};
use tokenops_testkit::TestServer;

async fn verify(client: &Client, value: &str) -> VerifyCode {
    client
        .verify(SecretString::from(value.to_owned()))
        .await
        .expect("verify")
        .code
}

fn s(v: &Json) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

const LIFECYCLE_TF: &str = r#"
variable "name" {
  type    = string
  default = "ci"
}
variable "role" {
  type    = string
  default = "read-only"
}
resource "tokenops_api_token" "ci" {
  name     = var.name
  role     = var.role
  lifetime = "720h"
  labels = {
    team = "platform"
  }
}
output "id" { value = tokenops_api_token.ci.id }
output "token" {
  value     = tokenops_api_token.ci.token
  sensitive = true
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_replace_drift_and_destroy() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(LIFECYCLE_TF);

    // Create.
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains("(sensitive value)"), "{plan}");
    tf.apply(&[]).await;
    let id = s(&tf.output("id").await);
    let value = s(&tf.output("token").await);
    assert_eq!(verify(&api, &value).await, VerifyCode::Valid);
    let backend = api.get_token(&id).await.unwrap();
    assert_eq!(
        backend.labels.get("managed-by").map(String::as_str),
        Some("terraform")
    );
    let attrs = tf.attributes("tokenops_api_token.ci");
    assert_eq!(attrs["labels"], serde_json::json!({"team": "platform"}));
    assert_eq!(attrs["project"], "default");
    assert_eq!(attrs["status"], "active");

    // No changes.
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 0, "{plan}");

    // In place: the name.
    let (code, plan) = tf.plan(&["-var", "name=ci-renamed"]).await;
    assert_eq!(code, 2);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(
        plan.contains("0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    tf.apply(&["-var", "name=ci-renamed"]).await;
    assert_eq!(s(&tf.output("id").await), id);
    assert_eq!(
        s(&tf.output("token").await),
        value,
        "a rename keeps the value"
    );
    assert_eq!(api.get_token(&id).await.unwrap().name, "ci-renamed");

    // Replacement: the role is immutable on the backend.
    let vars = ["-var", "name=ci-renamed", "-var", "role=accounting"];
    let (_, plan) = tf.plan(&vars).await;
    assert!(plan.contains("must be replaced"), "{plan}");
    assert!(plan.contains("# forces replacement"), "{plan}");
    tf.apply(&vars).await;
    let replaced = s(&tf.output("id").await);
    assert_ne!(replaced, id);
    assert_eq!(
        api.get_token(&id).await.unwrap().status,
        TokenStatus::Revoked
    );
    assert_eq!(verify(&api, &value).await, VerifyCode::Revoked);

    // Drift: revoked behind Terraform's back, it reads as gone.
    api.revoke_token(&replaced).await.unwrap();
    let (code, plan) = tf.plan(&vars).await;
    assert_eq!(code, 2);
    assert!(
        plan.contains("1 to add, 0 to change, 0 to destroy"),
        "{plan}"
    );
    assert!(plan.contains("will be created"), "{plan}");
    tf.apply(&vars).await;
    let recreated = s(&tf.output("id").await);
    assert_ne!(recreated, replaced);
    let value = s(&tf.output("token").await);
    assert_eq!(verify(&api, &value).await, VerifyCode::Valid);

    // Drift: deleted behind Terraform's back, the same.
    api.delete_token(&recreated).await.unwrap();
    let (_, plan) = tf.plan(&vars).await;
    assert!(
        plan.contains("1 to add, 0 to change, 0 to destroy"),
        "{plan}"
    );
    tf.apply(&vars).await;
    let last = s(&tf.output("id").await);

    // Destroy revokes on the backend.
    tf.ok(&[
        "destroy",
        "-auto-approve",
        "-var",
        "name=ci-renamed",
        "-var",
        "role=accounting",
    ])
    .await;
    assert_eq!(
        api.get_token(&last).await.unwrap().status,
        TokenStatus::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_keeps_the_value_null_and_refuses_operator_tokens() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let existing = api
        .create_token("legacy")
        .role("read-only")
        .lifetime(std::time::Duration::from_secs(720 * 3600))
        .label("team", "web")
        .await
        .unwrap();
    let id = existing.token.id.clone();
    let tf = Tf::new(&server.url(), &server.owner_token());
    let config = format!(
        r#"
import {{
  to = tokenops_api_token.legacy
  id = "{id}"
}}
resource "tokenops_api_token" "legacy" {{
  name     = "legacy"
  role     = "read-only"
  lifetime = "720h"
  labels   = {{ team = "web" }}
}}
"#
    );
    tf.config(&config);
    let (_, plan) = tf.plan(&[]).await;
    assert!(
        plan.contains("1 to import, 0 to add, 0 to change, 0 to destroy"),
        "{plan}"
    );
    assert!(plan.contains("Token value not imported"), "{plan}");
    tf.apply(&[]).await;
    let attrs = tf.attributes("tokenops_api_token.legacy");
    assert_eq!(attrs["id"], id.as_str());
    assert_eq!(attrs["token"], Json::Null);
    assert_eq!(attrs["masked"], existing.token.masked.as_str());
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(
        code, 0,
        "an imported token matching its config plans nothing\n{plan}"
    );

    // A token of the Kubernetes operator cannot be imported.
    let operator = api
        .create_token("k8s")
        .role("read-only")
        .lifetime(std::time::Duration::from_secs(3600))
        .label("managed-by", "tokenops-operator")
        .await
        .unwrap();
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(&format!(
        r#"
import {{
  to = tokenops_api_token.k8s
  id = "{}"
}}
resource "tokenops_api_token" "k8s" {{
  name     = "k8s"
  role     = "read-only"
  lifetime = "1h"
}}
"#,
        operator.token.id
    ));
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("is managed by the tokenops operator"), "{out}");
    assert!(out.contains("managed-by=tokenops-operator"), "{out}");
}

const ROTATION_TF: &str = r#"
variable "rotate_before" {
  type    = string
  default = "59m59s"
}
variable "lifetime" {
  type    = string
  default = "1h"
}
variable "triggers" {
  type    = map(string)
  default = null
}
variable "grace" {
  type    = string
  default = null
}
resource "tokenops_api_token" "r" {
  name              = "rotating"
  role              = "read-only"
  lifetime          = var.lifetime
  rotate_before     = var.rotate_before
  rotation_triggers = var.triggers
  grace_period      = var.grace
}
output "id" { value = tokenops_api_token.r.id }
output "renewal_at" { value = tokenops_api_token.r.renewal_at }
output "expires_at" { value = tokenops_api_token.r.expires_at }
output "token" {
  value     = tokenops_api_token.r.token
  sensitive = true
}
"#;

/// Waits until the wall clock reaches `at` (the rotation window is a time,
/// so the condition is the clock itself).
async fn wait_until(at: &str) {
    let at: DateTime<Utc> = at.parse().expect("RFC 3339");
    if let Ok(left) = (at - Utc::now()).to_std() {
        tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_window_triggers_and_lifetime_regenerate_in_place() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(ROTATION_TF);
    tf.apply(&[]).await;
    let id = s(&tf.output("id").await);
    let first = s(&tf.output("token").await);

    // The rotation window opens one second after issue.
    wait_until(&s(&tf.output("renewal_at").await)).await;
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 2);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(
        plan.contains("0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    assert!(plan.contains("expires_at"), "{plan}");
    assert!(plan.contains("(known after apply)"), "{plan}");
    tf.apply(&[]).await;
    assert_eq!(s(&tf.output("id").await), id, "rotation keeps the id");
    let second = s(&tf.output("token").await);
    assert_ne!(second, first);
    assert_ne!(verify(&api, &first).await, VerifyCode::Valid);
    assert_eq!(verify(&api, &second).await, VerifyCode::Valid);
    assert_eq!(api.get_token(&id).await.unwrap().generation, 1);

    // rotation_triggers: a change regenerates; grace_period keeps the old value working.
    let vars = [
        "-var",
        "rotate_before=10m",
        "-var",
        "triggers={v=\"1\"}",
        "-var",
        "grace=10m",
    ];
    let (_, plan) = tf.plan(&vars).await;
    assert!(
        plan.contains("0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    tf.apply(&vars).await;
    let third = s(&tf.output("token").await);
    assert_ne!(third, second);
    assert_eq!(s(&tf.output("id").await), id);
    assert_eq!(verify(&api, &third).await, VerifyCode::Valid);
    assert_eq!(
        verify(&api, &second).await,
        VerifyCode::Valid,
        "inside the grace period"
    );
    let (code, plan) = tf.plan(&vars).await;
    assert_eq!(code, 0, "{plan}");

    // lifetime: regenerates with the new lifetime.
    let before: DateTime<Utc> = s(&tf.output("expires_at").await).parse().unwrap();
    let longer = [
        "-var",
        "rotate_before=10m",
        "-var",
        "triggers={v=\"1\"}",
        "-var",
        "lifetime=2h",
    ];
    let (_, plan) = tf.plan(&longer).await;
    assert!(
        plan.contains("0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    tf.apply(&longer).await;
    let after: DateTime<Utc> = s(&tf.output("expires_at").await).parse().unwrap();
    assert!(
        after - before > chrono::TimeDelta::minutes(50),
        "{before} -> {after}"
    );
    assert_eq!(s(&tf.output("id").await), id);
    let fourth = s(&tf.output("token").await);
    assert_eq!(verify(&api, &fourth).await, VerifyCode::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sources_find_tokens_by_id_and_filters() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let web = api
        .create_token("web-1")
        .role("read-only")
        .lifetime(std::time::Duration::from_secs(3600))
        .label("team", "web")
        .await
        .unwrap();
    api.create_token("db-1")
        .role("read-only")
        .lifetime(std::time::Duration::from_secs(3600))
        .label("team", "db")
        .await
        .unwrap();
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(&format!(
        r#"
data "tokenops_api_token" "one" {{
  id = "{}"
}}
data "tokenops_api_tokens" "web" {{
  status = "active"
  labels = {{ team = "web" }}
}}
data "tokenops_api_tokens" "by_name" {{
  name = "db-1"
}}
output "one_name" {{ value = data.tokenops_api_token.one.name }}
output "one_masked" {{ value = data.tokenops_api_token.one.masked }}
output "one_labels" {{ value = data.tokenops_api_token.one.labels }}
output "web_ids" {{ value = data.tokenops_api_tokens.web.ids }}
output "db_names" {{ value = data.tokenops_api_tokens.by_name.tokens[*].name }}
"#,
        web.token.id
    ));
    tf.apply(&[]).await;
    assert_eq!(tf.output("one_name").await, "web-1");
    assert_eq!(tf.output("one_masked").await, web.token.masked.as_str());
    assert_eq!(
        tf.output("one_labels").await,
        serde_json::json!({"team": "web"})
    );
    assert_eq!(
        tf.output("web_ids").await,
        serde_json::json!([web.token.id])
    );
    assert_eq!(tf.output("db_names").await, serde_json::json!(["db-1"]));
    assert!(!contains_token_value(&tf.state_text()));

    tf.config(
        r#"
data "tokenops_api_token" "missing" {
  id = "tok_doesnotexist"
}
"#,
    );
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("Token tok_doesnotexist not found"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_token_works_during_the_run_and_is_revoked_after() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(
        r#"
ephemeral "tokenops_api_token" "run" {
  name     = "e2e-run"
  scopes   = ["tokens:read"]
  lifetime = "5m"
}
# A second provider configuration that authenticates with the ephemeral
# token: configure makes a whoami round trip with it.
provider "tokenops" {
  alias = "run"
  token = ephemeral.tokenops_api_token.run.token
}
data "tokenops_api_tokens" "seen_by_run" {
  provider = tokenops.run
  name     = "e2e-run"
  status   = "active"
}
output "active_run_tokens" { value = length(data.tokenops_api_tokens.seen_by_run.ids) }
"#,
    );
    let plan = tf.ok(&["plan", "-out", "run.tfplan"]).await;
    assert!(!contains_token_value(&plan), "{plan}");
    let plan_file = std::fs::read(tf.dir.join("run.tfplan")).unwrap();
    let plan_json = tf.ok(&["show", "-json", "run.tfplan"]).await;
    assert!(!contains_token_value(&plan_json), "{plan_json}");
    assert!(!contains_token_value(&String::from_utf8_lossy(&plan_file)));
    tf.ok(&["apply", "run.tfplan"]).await;

    // The token verified during the run: the aliased provider listed itself.
    assert_eq!(tf.output("active_run_tokens").await, 1);
    assert!(
        !contains_token_value(&tf.state_text()),
        "{}",
        tf.state_text()
    );
    // Every ephemeral token opened (plan and apply each open one) is revoked.
    let opened = api
        .list_tokens()
        .label("tokenops.dev/ephemeral", "true")
        .all_statuses()
        .all()
        .await
        .unwrap();
    assert!(opened.len() >= 2, "{opened:?}");
    for t in &opened {
        assert_eq!(t.status, TokenStatus::Revoked, "{} not revoked", t.id);
        assert_eq!(
            t.labels.get("managed-by").map(String::as_str),
            Some("terraform")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_attributes_fail_at_plan_before_any_api_call() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    // Nothing listens on port 9: a call to the backend would fail differently.
    let tf = Tf::new("http://127.0.0.1:9", "tko_unused");
    let long = "n".repeat(129);
    tf.config(&format!(
        r#"
resource "tokenops_api_token" "bad" {{
  name          = "{long}"
  scopes        = ["usage:read", "nope"]
  lifetime      = "5 minutes"
  rotate_before = "150%"
  grace_period  = "forever"
  labels        = {{ managed-by = "me" }}
  resources     = []
}}
resource "tokenops_api_token" "conflict" {{
  name          = "ok"
  lifetime      = "1h"
  rotate_before = "2h"
}}
"#
    ));
    let out = tf.fails(&["validate"]).await;
    for expected in [
        "Name too long",
        "Invalid scope",
        "Invalid lifetime",
        "Invalid rotate_before",
        "Invalid grace_period",
        "Reserved label",
        "Empty resources",
        "Missing permissions",
        "rotate_before conflicts with lifetime",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    // Each points at its attribute (Terraform quotes the offending line).
    assert!(out.contains("on main.tf line"), "{out}");
    assert!(out.contains("lifetime      = \"5 minutes\""), "{out}");
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("Name too long"), "{out}");
    assert!(
        !out.contains("Cannot reach"),
        "validation comes first:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_configuration_errors_are_clear_diagnostics() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let resource = r#"
resource "tokenops_api_token" "t" {
  name     = "t"
  role     = "read-only"
  lifetime = "1h"
}
"#;
    // No endpoint at all.
    let mut tf = Tf::new("", &server.owner_token());
    tf.config(resource);
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("Missing tokenops endpoint"), "{out}");
    assert!(out.contains("TOKENOPS_ENDPOINT"), "{out}");

    // Unreachable endpoint: refused connection, reported at configure.
    tf.env("TOKENOPS_ENDPOINT", "http://127.0.0.1:9");
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("Cannot reach the tokenops backend"), "{out}");
    assert!(!out.contains(&server.owner_token()), "{out}");

    // A token the backend does not know.
    tf.env("TOKENOPS_ENDPOINT", &server.url());
    tf.env("TOKENOPS_TOKEN", "tko_notarealtoken");
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("rejected the provider's token"), "{out}");

    // A project the token does not belong to.
    tf.env("TOKENOPS_TOKEN", &server.owner_token());
    tf.config(&format!(
        "provider \"tokenops\" {{\n  project = \"other\"\n}}\n{resource}"
    ));
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("Project does not match"), "{out}");

    // A malformed endpoint is caught by validate, without the network.
    tf.config(&format!(
        "provider \"tokenops\" {{\n  endpoint = \"localhost:8080\"\n}}\n{resource}"
    ));
    let out = tf.fails(&["plan"]).await;
    assert!(out.contains("Invalid endpoint"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_the_operator_cannot_be_changed_or_revoked() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(LIFECYCLE_TF);
    tf.apply(&[]).await;
    let id = s(&tf.output("id").await);
    // Nobody can hand a Terraform token to the operator (or back): the
    // ownership label is set once.
    let err = api
        .update_token(id.clone())
        .labels([("managed-by".to_owned(), "tokenops-operator".to_owned())].into())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable_field"), "{err}");
    // A token the operator made cannot be imported, so Terraform never acts on one.
    let operator_token = api
        .create_token("from-the-operator")
        .role("read-only")
        .lifetime(std::time::Duration::from_secs(3600))
        .label("managed-by", "tokenops-operator")
        .await
        .unwrap();
    tf.config(&format!(
        "{LIFECYCLE_TF}\nresource \"tokenops_api_token\" \"taken\" {{\n  name = \"x\"\n  role = \"read-only\"\n  lifetime = \"1h\"\n}}\n"
    ));
    let out = tf
        .fails(&[
            "import",
            "tokenops_api_token.taken",
            &operator_token.token.id,
        ])
        .await;
    assert!(out.contains("is managed by the tokenops operator"), "{out}");
    assert_eq!(
        api.get_token(&operator_token.token.id)
            .await
            .unwrap()
            .status,
        TokenStatus::Active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tokens_refresh_in_bulk_and_still_see_drift() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let api = client(&server.url(), &server.owner_token());
    let tf = Tf::new(&server.url(), &server.owner_token());
    tf.config(
        r#"
resource "tokenops_api_token" "many" {
  count    = 8
  name     = "many-${count.index}"
  role     = "read-only"
  lifetime = "24h"
}
output "ids" { value = tokenops_api_token.many[*].id }
"#,
    );
    tf.apply(&[]).await;
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 0, "{plan}");
    let ids = tf.output("ids").await;
    let ids: Vec<String> = ids.as_array().unwrap().iter().map(s).collect();
    // Behind Terraform's back: one revoked, one deleted, one renamed.
    api.revoke_token(&ids[6]).await.unwrap();
    api.delete_token(&ids[7]).await.unwrap();
    api.update_token(ids[5].clone())
        .name("renamed")
        .await
        .unwrap();
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 2);
    assert!(
        plan.contains("2 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    tf.apply(&[]).await;
    let (code, plan) = tf.plan(&[]).await;
    assert_eq!(code, 0, "{plan}");
}

/// A token-admin credential, as automation should hold (not an owner).
async fn automation_token(server: &TestServer) -> String {
    let owner = client(&server.url(), &server.owner_token());
    let created = owner
        .create_token("terraform-ci")
        .role("token-admin")
        .lifetime(std::time::Duration::from_secs(2000 * 3600))
        .await
        .expect("token-admin for Terraform");
    use tokenops_client::secrecy::ExposeSecret;
    created.secret.expose_secret().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_checks_role_resource_types_and_lifetime_against_the_server_policy() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let token = automation_token(&server).await;
    let tf = Tf::new(&server.url(), &token);
    tf.config(
        r#"
resource "tokenops_api_token" "bad" {
  name      = "viewer"
  role      = "viewer"
  lifetime  = "9000h"
  resources = [{ type = "planet", id = "p-1" }]
}
"#,
    );
    let out = tf.fails(&["plan"]).await;
    for expected in [
        "Unknown role",
        "Unknown resource type",
        "Lifetime over the server's maximum",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(out.contains("token-admin"), "names the roles: {out}");
    let api = client(&server.url(), &server.owner_token());
    let names: Vec<String> = api
        .list_tokens()
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names.iter().any(|n| n == "viewer"),
        "nothing created: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_with_grace_period_overlaps_with_the_old_value() {
    if !tokenops_testkit::require_tool("terraform") {
        return;
    }
    let server = TestServer::sqlite().await;
    let token = automation_token(&server).await;
    let api = client(&server.url(), &server.owner_token());
    let tf = Tf::new(&server.url(), &token);
    tf.config(
        r#"
variable "scopes" {
  type    = list(string)
  default = ["devices:read"]
}
resource "tokenops_api_token" "app" {
  name         = "app"
  scopes       = var.scopes
  lifetime     = "720h"
  grace_period = "1h"
  lifecycle {
    create_before_destroy = true
  }
}
output "id" { value = tokenops_api_token.app.id }
output "token" {
  value     = tokenops_api_token.app.token
  sensitive = true
}
"#,
    );
    tf.apply(&[]).await;
    let old_id = s(&tf.output("id").await);
    let old_value = s(&tf.output("token").await);
    let vars = ["-var", r#"scopes=["devices:read","devices:write"]"#];
    let (_, plan) = tf.plan(&vars).await;
    assert!(plan.contains("must be replaced"), "{plan}");
    tf.apply(&vars).await;
    let new_id = s(&tf.output("id").await);
    let new_value = s(&tf.output("token").await);
    assert_ne!(new_id, old_id);
    assert_eq!(verify(&api, &new_value).await, VerifyCode::Valid);
    assert_eq!(
        verify(&api, &old_value).await,
        VerifyCode::Valid,
        "consumers keep working during the grace period"
    );
    let old = api.get_token(&old_id).await.unwrap();
    let ends = old.expires_at.expect("expiry brought forward");
    let in_an_hour = Utc::now() + chrono::Duration::hours(1);
    assert!(
        (ends - in_an_hour).num_seconds().abs() < 120,
        "the old token ends with the grace period: {ends}"
    );
    let _: DateTime<Utc> = ends;
}
