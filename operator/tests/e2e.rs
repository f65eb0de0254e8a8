//! End to end: the controller against kube-memserver (a real kube::Client over
//! HTTP) and a real tokenops-server on SQLite.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_memserver::MemServer;
use serde_json::json;
use tokenops_client::secrecy::SecretString;
use tokenops_client::{Client, TokenStatus};
use tokenops_operator::controller::Context;
use tokenops_operator::crd::{self, ApiToken, ConditionStatus};
use tokenops_operator::metrics::Metrics;
use tokenops_operator::secret::ValueHasher;
use tokenops_testkit::TestServer;

const NS: &str = "team-a";

struct Env {
    kube: MemServer,
    backend: TestServer,
    admin: Client,
    metrics: Arc<Metrics>,
    controller: AbortOnDrop,
}

/// Stops the controller when a test ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn env_with(cleanup_timeout: Duration) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let kube = MemServer::start().await;
    for (_, def) in crd::all() {
        kube.install_crd(serde_json::to_value(def).unwrap())
            .unwrap();
    }
    let backend = TestServer::sqlite().await;
    let client = kube.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "tokenops-credentials"},
                "stringData": {"token": backend.owner_token()},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let backends: Api<crd::TokenBackend> = Api::namespaced(client.clone(), NS);
    backends
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "main"},
                "spec": {"url": backend.url(), "credentialsSecretRef": {"name": "tokenops-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client,
        ValueHasher::new(Some(b"test-key".to_vec())),
        metrics.clone(),
        cleanup_timeout,
    ));
    let controller = AbortOnDrop(tokio::spawn(async move {
        tokenops_operator::run::run_controllers(ctx, &[]).await
    }));
    let admin = Client::builder(backend.url())
        .token(SecretString::from(backend.owner_token()))
        .build()
        .unwrap();
    Env {
        kube,
        backend,
        admin,
        metrics,
        controller,
    }
}

async fn env() -> Env {
    env_with(Duration::from_secs(900)).await
}

fn tokens(env: &Env) -> Api<ApiToken> {
    Api::namespaced(env.kube.client(), NS)
}

fn secrets(env: &Env) -> Api<Secret> {
    Api::namespaced(env.kube.client(), NS)
}

async fn create(env: &Env, name: &str, spec: serde_json::Value) -> ApiToken {
    let mut spec = spec;
    spec["backendRef"] = json!({"name": "main"});
    // The backend requires a role or a scope.
    if spec.get("role").is_none() {
        spec["role"] = json!("read-only");
    }
    tokens(env)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
                "metadata": {"name": name},
                "spec": spec,
            }))
            .unwrap(),
        )
        .await
        .unwrap()
}

/// Polls until `check` returns Some, failing after `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_ready(t: &ApiToken) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

async fn ready(env: &Env, name: &str) -> ApiToken {
    eventually(30, &format!("{name} to be Ready"), || async {
        tokens(env).get_opt(name).await.unwrap().filter(is_ready)
    })
    .await
}

async fn secret_value(env: &Env, name: &str) -> String {
    let s = secrets(env).get(name).await.unwrap();
    String::from_utf8(s.data.unwrap()["token"].0.clone()).unwrap()
}

async fn verifies(env: &Env, value: &str) -> bool {
    env.admin
        .verify(SecretString::from(value.to_string()))
        .send()
        .await
        .unwrap()
        .valid
}

async fn event_reasons(env: &Env) -> Vec<String> {
    Api::<K8sEvent>::namespaced(env.kube.client(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_becomes_ready_with_a_secret_that_verifies_on_the_backend() {
    let env = env().await;
    create(
        &env,
        "exporter",
        json!({"role": "read-only", "lifetime": "24h", "description": "nightly"}),
    )
    .await;
    let tok = ready(&env, "exporter").await;
    let status = tok.status.clone().unwrap();
    let id = status.token_id.clone().unwrap();
    assert_eq!(status.secret_name.as_deref(), Some("exporter"));
    assert!(status.renewal_time.unwrap() < status.expires_at.unwrap());

    let value = secret_value(&env, "exporter").await;
    assert!(verifies(&env, &value).await);
    assert!(
        !serde_json::to_string(&tok).unwrap().contains(&value),
        "the value leaked into the ApiToken"
    );

    let secret = secrets(&env).get("exporter").await.unwrap();
    assert_eq!(
        secret.labels()["app.kubernetes.io/managed-by"],
        "tokenops-operator"
    );
    assert_eq!(secret.owner_references()[0].uid, tok.uid().unwrap());
    assert!(!secret.annotations()["tokenops.dev/value-hash"].contains(&value));

    let on_backend = env.admin.get_token(&id).await.unwrap();
    assert_eq!(on_backend.name, "team-a/exporter");
    assert_eq!(on_backend.role.as_deref(), Some("read-only"));
    assert_eq!(on_backend.labels["managed-by"], "tokenops-operator");
    assert_eq!(
        on_backend.labels["tokenops.dev/apitoken-uid"],
        tok.uid().unwrap()
    );
    assert_eq!(
        status.masked_token.as_deref(),
        Some(on_backend.masked.as_str())
    );
    assert!(
        tok.finalizers()
            .iter()
            .any(|f| f == "tokenops.dev/token-cleanup")
    );
    eventually(10, "an Issued event", || async {
        event_reasons(&env)
            .await
            .contains(&"Issued".to_string())
            .then_some(())
    })
    .await;
    assert!(
        env.metrics
            .render()
            .contains("tokenops_operator_token_expiry_timestamp_seconds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_rotated_at_its_renewal_time() {
    let env = env().await;
    // Renewal at 2/3 of 6s: about 4s after issue.
    create(
        &env,
        "short",
        json!({"lifetime": "6s", "gracePeriod": "1s"}),
    )
    .await;
    let first = ready(&env, "short").await.status.unwrap();
    let first_value = secret_value(&env, "short").await;
    let rotated = eventually(20, "a rotation", || async {
        let s = tokens(&env).get("short").await.unwrap().status?;
        (s.last_rotation_time != first.last_rotation_time && s.expires_at != first.expires_at)
            .then_some(s)
    })
    .await;
    assert_eq!(
        rotated.token_id, first.token_id,
        "rotation keeps the token id"
    );
    assert!(rotated.last_rotation_time.unwrap() >= first.renewal_time.unwrap());
    let second_value = eventually(10, "the new value in the Secret", || async {
        let v = secret_value(&env, "short").await;
        (v != first_value).then_some(v)
    })
    .await;
    assert!(verifies(&env, &second_value).await);
    eventually(10, "a Rotated event", || async {
        event_reasons(&env)
            .await
            .contains(&"Rotated".to_string())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_api_token_revokes_its_token() {
    let env = env().await;
    create(&env, "doomed", json!({"lifetime": "1h"})).await;
    let id = ready(&env, "doomed")
        .await
        .status
        .unwrap()
        .token_id
        .unwrap();
    let value = secret_value(&env, "doomed").await;
    tokens(&env)
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the ApiToken to go", || async {
        tokens(&env)
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        env.admin.get_token(&id).await.unwrap().status,
        TokenStatus::Revoked
    );
    assert!(!verifies(&env, &value).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_with_retain_leaves_the_token_active() {
    let env = env().await;
    create(
        &env,
        "kept",
        json!({"lifetime": "1h", "deletionPolicy": "Retain"}),
    )
    .await;
    let id = ready(&env, "kept").await.status.unwrap().token_id.unwrap();
    tokens(&env)
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the ApiToken to go", || async {
        tokens(&env)
            .get_opt("kept")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        env.admin.get_token(&id).await.unwrap().status,
        TokenStatus::Active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_secret_is_rotated_and_the_tampered_value_never_verifies() {
    let env = env().await;
    create(&env, "tamper", json!({"lifetime": "1h"})).await;
    let first = ready(&env, "tamper").await.status.unwrap();
    let original = secret_value(&env, "tamper").await;
    secrets(&env)
        .patch(
            "tamper",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": "tko_forged"}})),
        )
        .await
        .unwrap();
    let rotated = eventually(20, "a rotation after tampering", || async {
        let s = tokens(&env).get("tamper").await.unwrap().status?;
        (s.last_rotation_time != first.last_rotation_time).then_some(s)
    })
    .await;
    assert_eq!(rotated.token_id, first.token_id);
    let now = eventually(10, "a fresh value", || async {
        let v = secret_value(&env, "tamper").await;
        (v != "tko_forged" && v != original).then_some(v)
    })
    .await;
    assert!(verifies(&env, &now).await);
    assert!(
        !verifies(&env, &original).await,
        "a tampered value gets no grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotate_annotation_rotates_once() {
    let env = env().await;
    create(&env, "manual", json!({"lifetime": "1h"})).await;
    let first = ready(&env, "manual").await.status.unwrap();
    tokens(&env)
        .patch(
            "manual",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"tokenops.dev/rotate": "now"}}})),
        )
        .await
        .unwrap();
    let rotated = eventually(20, "a manual rotation", || async {
        let s = tokens(&env).get("manual").await.unwrap().status?;
        (s.last_rotate_request.as_deref() == Some("now")).then_some(s)
    })
    .await;
    assert_ne!(rotated.last_rotation_time, first.last_rotation_time);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = tokens(&env).get("manual").await.unwrap().status.unwrap();
    assert_eq!(
        later.last_rotation_time, rotated.last_rotation_time,
        "rotated more than once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_permissions_replace_the_token_and_revoke_the_old_one() {
    let env = env().await;
    create(&env, "perm", json!({"lifetime": "1h", "role": "read-only"})).await;
    let old = ready(&env, "perm").await.status.unwrap().token_id.unwrap();
    tokens(&env)
        .patch(
            "perm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"role": "accounting"}})),
        )
        .await
        .unwrap();
    let new = eventually(20, "a replacement token", || async {
        let t = tokens(&env).get("perm").await.unwrap();
        let id = t.status.clone()?.token_id?;
        (id != old && is_ready(&t)).then_some(id)
    })
    .await;
    assert_eq!(
        env.admin.get_token(&new).await.unwrap().role.as_deref(),
        Some("accounting")
    );
    assert_eq!(
        env.admin.get_token(&old).await.unwrap().status,
        TokenStatus::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_is_reported_not_retried() {
    let env = env().await;
    create(&env, "bad", json!({"resources": "some"})).await;
    let cond = eventually(20, "an InvalidSpec condition", || async {
        let s = tokens(&env).get("bad").await.unwrap().status?;
        s.conditions.into_iter().find(|c| c.reason == "InvalidSpec")
    })
    .await;
    assert_eq!(cond.status, ConditionStatus::False);
    assert!(cond.message.contains("spec.resources"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_does_not_wait_forever_for_a_backend_that_is_down() {
    let env = env_with(Duration::from_secs(2)).await;
    create(&env, "stuck", json!({"lifetime": "1h"})).await;
    ready(&env, "stuck").await;
    let Env {
        kube,
        backend,
        controller,
        ..
    } = env;
    let _db = backend.stop().await;
    let api: Api<ApiToken> = Api::namespaced(kube.client(), NS);
    let started = Utc::now();
    api.delete("stuck", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt("stuck").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finalizer held the deletion"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        Utc::now() - started >= chrono::TimeDelta::seconds(2),
        "gave up before the timeout"
    );
    let reasons: Vec<String> = Api::<K8sEvent>::namespaced(kube.client(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.contains(&"RevokeAbandoned".to_string()),
        "{reasons:?}"
    );
    drop(controller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_backend_is_ready_after_a_whoami_round_trip() {
    let env = env().await;
    let backends: Api<crd::TokenBackend> = Api::namespaced(env.kube.client(), NS);
    let status = eventually(20, "the backend to be Ready", || async {
        let s = backends.get("main").await.unwrap().status?;
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
            .then_some(s)
    })
    .await;
    assert_eq!(status.project.as_deref(), Some("default"));
    assert!(
        !status
            .identity
            .unwrap()
            .contains(&env.backend.owner_token())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_token_issues_exactly_one_token() {
    let env = env().await;
    create(&env, "single", json!({"lifetime": "1h"})).await;
    let tok = ready(&env, "single").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = env
        .admin
        .list_tokens()
        .selector(format!("tokenops.dev/apitoken-uid={}", tok.uid().unwrap()))
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_taken_over_by_terraform_is_never_touched() {
    let env = env().await;
    create(&env, "handover", json!({"lifetime": "1h"})).await;
    let id = ready(&env, "handover")
        .await
        .status
        .unwrap()
        .token_id
        .unwrap();
    let labels =
        tokenops_client::Labels::from([("managed-by".to_string(), "terraform".to_string())]);
    env.admin.update_token(&id).labels(labels).await.unwrap();
    // Wake the controller: a manual rotation request it must refuse.
    tokens(&env)
        .patch(
            "handover",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"tokenops.dev/rotate": "please"}}})),
        )
        .await
        .unwrap();
    eventually(20, "a NotOwned condition", || async {
        let s = tokens(&env).get("handover").await.unwrap().status?;
        s.conditions
            .into_iter()
            .find(|c| c.reason == "NotOwned" && c.status == ConditionStatus::False)
    })
    .await;
    let before = env.admin.get_token(&id).await.unwrap();
    assert_eq!(before.generation, 0, "a terraform token was rotated");
    tokens(&env)
        .delete("handover", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the ApiToken to go", || async {
        tokens(&env)
            .get_opt("handover")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let after = env.admin.get_token(&id).await.unwrap();
    assert_eq!(
        after.status,
        TokenStatus::Active,
        "a terraform token was revoked"
    );
    assert_eq!(after.generation, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_waiting_for_its_backend_is_issued_when_the_backend_appears() {
    let env = env().await;
    let mut spec = json!({"lifetime": "1h", "role": "read-only"});
    spec["backendRef"] = json!({"name": "late"});
    tokens(&env)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
                "metadata": {"name": "early"}, "spec": spec,
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(20, "a BackendNotFound condition", || async {
        let s = tokens(&env).get("early").await.unwrap().status?;
        s.conditions
            .into_iter()
            .find(|c| c.reason == "BackendNotFound")
    })
    .await;
    // Let the back-off grow past what the test waits for below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Api::<crd::TokenBackend>::namespaced(env.kube.client(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "late"},
                "spec": {"url": env.backend.url(), "credentialsSecretRef": {"name": "tokenops-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(
        4,
        "the ApiToken to be Ready soon after its backend appears",
        || async {
            tokens(&env)
                .get_opt("early")
                .await
                .unwrap()
                .filter(is_ready)
        },
    )
    .await;
}
