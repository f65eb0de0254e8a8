//! End to end: the controller against kube-memserver (a real kube::Client over
//! HTTP) or a real cluster (`TOKENOPS_E2E_KUBECONFIG`, see `e2e/support.rs`),
//! and a real tokenops-server on SQLite.

#[path = "e2e/real_cluster.rs"]
mod real_cluster;
#[path = "e2e/support.rs"]
mod support;

#[path = "e2e/backends.rs"]
mod backends;
#[path = "e2e/burst.rs"]
mod burst;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/credentials.rs"]
mod credentials;
#[path = "e2e/drift.rs"]
mod drift;
#[path = "e2e/grace.rs"]
mod grace;
#[path = "e2e/replicas.rs"]
mod replicas;
#[path = "e2e/restart.rs"]
mod restart;
#[path = "e2e/validation.rs"]
mod validation;

use std::time::Duration;

use chrono::Utc;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokenops_client::TokenStatus;
use tokenops_operator::crd::{self, ConditionStatus};

use support::{Options, env, env_with, eventually, is_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_becomes_ready_with_a_secret_that_verifies_on_the_backend() {
    let env = env().await;
    env.create(
        "exporter",
        json!({"role": "read-only", "lifetime": "24h", "description": "nightly"}),
    )
    .await;
    let tok = env.ready("exporter").await;
    let status = tok.status.clone().unwrap();
    let id = status.token_id.clone().unwrap();
    assert_eq!(status.secret_name.as_deref(), Some("exporter"));
    assert!(status.renewal_time.unwrap() < status.expires_at.unwrap());

    let value = env.secret_value("exporter").await;
    assert!(env.verifies(&value).await);
    assert!(
        !serde_json::to_string(&tok).unwrap().contains(&value),
        "the value leaked into the ApiToken"
    );

    let secret = env.secrets().get("exporter").await.unwrap();
    assert_eq!(
        secret.labels()["app.kubernetes.io/managed-by"],
        "tokenops-operator"
    );
    assert_eq!(secret.owner_references()[0].uid, tok.uid().unwrap());
    assert!(!secret.annotations()["tokenops.dev/value-hash"].contains(&value));

    let on_backend = env.admin.get_token(&id).await.unwrap();
    assert_eq!(on_backend.name, format!("{}/exporter", env.ns));
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
        env.event_reasons()
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

/// `kubectl get apitokens` asks the API server for a `Table`: the server prints
/// the columns. EXPIRES and RENEWAL must read as the future times they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_expiry_and_renewal_as_future_times() {
    let env = env().await;
    env.create("printed", json!({"lifetime": "720h"})).await;
    let status = env.ready("printed").await.status.unwrap();
    let request = http::Request::get(format!(
        "/apis/tokenops.dev/v1alpha1/namespaces/{}/apitokens",
        env.ns
    ))
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value =
        serde_json::from_str(&env.client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(table["kind"], "Table", "{table}");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Name", "Ready", "Token", "Expires", "Renewal", "Age"]
    );
    let cells = &table["rows"][0]["cells"];
    let printed = |column: usize| -> chrono::DateTime<Utc> {
        let cell = cells[column].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(cell)
            .unwrap_or_else(|_| panic!("{cell:?} is not a time (cells {cells})"))
            .with_timezone(&Utc)
    };
    assert_eq!(cells[0], "printed");
    assert_eq!(cells[1], "True");
    assert_eq!(printed(3), status.expires_at.unwrap());
    assert_eq!(printed(4), status.renewal_time.unwrap());
    assert!(printed(4) > Utc::now() && printed(3) > printed(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_rotated_at_its_renewal_time() {
    let env = env().await;
    // Renewal at 2/3 of 6s: about 4s after issue.
    env.create("short", json!({"lifetime": "6s", "gracePeriod": "1s"}))
        .await;
    let first = env.ready("short").await.status.unwrap();
    let first_value = env.secret_value("short").await;
    let rotated = eventually(20, "a rotation", || async {
        let s = env.tokens().get("short").await.unwrap().status?;
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
        let v = env.secret_value("short").await;
        (v != first_value).then_some(v)
    })
    .await;
    assert!(env.verifies(&second_value).await);
    eventually(10, "a Rotated event", || async {
        env.event_reasons()
            .await
            .contains(&"Rotated".to_string())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_api_token_revokes_its_token() {
    let env = env().await;
    env.create("doomed", json!({"lifetime": "1h"})).await;
    let id = env.ready("doomed").await.status.unwrap().token_id.unwrap();
    let value = env.secret_value("doomed").await;
    env.tokens()
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the ApiToken to go", || async {
        env.tokens()
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
    assert!(!env.verifies(&value).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_with_retain_leaves_the_token_active() {
    let env = env().await;
    env.create(
        "kept",
        json!({"lifetime": "1h", "deletionPolicy": "Retain"}),
    )
    .await;
    let id = env.ready("kept").await.status.unwrap().token_id.unwrap();
    env.tokens()
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the ApiToken to go", || async {
        env.tokens()
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
    env.create("tamper", json!({"lifetime": "1h"})).await;
    let first = env.ready("tamper").await.status.unwrap();
    let original = env.secret_value("tamper").await;
    env.secrets()
        .patch(
            "tamper",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": "tko_forged"}})),
        )
        .await
        .unwrap();
    let rotated = eventually(20, "a rotation after tampering", || async {
        let s = env.tokens().get("tamper").await.unwrap().status?;
        (s.last_rotation_time != first.last_rotation_time).then_some(s)
    })
    .await;
    assert_eq!(rotated.token_id, first.token_id);
    let now = eventually(10, "a fresh value", || async {
        let v = env.secret_value("tamper").await;
        (v != "tko_forged" && v != original).then_some(v)
    })
    .await;
    assert!(env.verifies(&now).await);
    assert!(
        !env.verifies(&original).await,
        "a tampered value gets no grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotate_annotation_rotates_once() {
    let env = env().await;
    env.create("manual", json!({"lifetime": "1h"})).await;
    let first = env.ready("manual").await.status.unwrap();
    env.tokens()
        .patch(
            "manual",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"tokenops.dev/rotate": "now"}}})),
        )
        .await
        .unwrap();
    let rotated = eventually(20, "a manual rotation", || async {
        let s = env.tokens().get("manual").await.unwrap().status?;
        (s.last_rotate_request.as_deref() == Some("now")).then_some(s)
    })
    .await;
    assert_ne!(rotated.last_rotation_time, first.last_rotation_time);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = env.tokens().get("manual").await.unwrap().status.unwrap();
    assert_eq!(
        later.last_rotation_time, rotated.last_rotation_time,
        "rotated more than once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_permissions_replace_the_token_and_revoke_the_old_one() {
    let env = env().await;
    env.create("perm", json!({"lifetime": "1h", "role": "read-only"}))
        .await;
    let old = env.ready("perm").await.status.unwrap().token_id.unwrap();
    env.tokens()
        .patch(
            "perm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"role": "accounting"}})),
        )
        .await
        .unwrap();
    let new = eventually(20, "a replacement token", || async {
        let t = env.tokens().get("perm").await.unwrap();
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
    env.create("bad", json!({"resources": "some"})).await;
    let cond = eventually(20, "an InvalidSpec condition", || async {
        let s = env.tokens().get("bad").await.unwrap().status?;
        s.conditions.into_iter().find(|c| c.reason == "InvalidSpec")
    })
    .await;
    assert_eq!(cond.status, ConditionStatus::False);
    assert!(cond.message.contains("spec.resources"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_does_not_wait_forever_for_a_backend_that_is_down() {
    let mut env = env_with(Options {
        cleanup_timeout: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    env.create("stuck", json!({"lifetime": "1h"})).await;
    env.ready("stuck").await;
    env.stop_backend().await;
    let started = Utc::now();
    env.tokens()
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the finalizer to give up", || async {
        env.tokens()
            .get_opt("stuck")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        Utc::now() - started >= chrono::TimeDelta::seconds(2),
        "gave up before the timeout"
    );
    let reasons = env.event_reasons().await;
    assert!(
        reasons.contains(&"RevokeAbandoned".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_backend_is_ready_after_a_whoami_round_trip() {
    let env = env().await;
    let backends: Api<crd::TokenBackend> = Api::namespaced(env.client.clone(), &env.ns);
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
            .contains(&env.backend().owner_token())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_token_issues_exactly_one_token() {
    let env = env().await;
    env.create("single", json!({"lifetime": "1h"})).await;
    let tok = env.ready("single").await;
    env.settled().await;
    let all = env
        .admin
        .list_tokens()
        .selector(format!("tokenops.dev/apitoken-uid={}", tok.uid().unwrap()))
        .all()
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
}

/// A new `ApiToken` costs the backend one request, the create (its
/// idempotency key makes a listing unnecessary), and a reconcile that the
/// operator's own Secret and status writes wake, if any, reads nothing from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_api_token_costs_the_backend_one_create() {
    let env = env().await;
    env.settled().await;
    let before_reconciles = env.settled().await;
    let before = env.backend_requests().await;
    env.create("lean", json!({"lifetime": "1h"})).await;
    env.ready("lean").await;
    let reconciles = env.settled().await - before_reconciles;
    let after = env.backend_requests().await;
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    assert_eq!(delta("POST /v1/tokens"), 1.0, "{after:?}");
    assert_eq!(delta("GET /v1/tokens"), 0.0, "listed: {after:?}");
    assert_eq!(delta("GET /v1/tokens/{id}"), 0.0, "read back: {after:?}");
    // The finalizer and the issue in one reconcile (the finalizer patch no
    // longer ends it); the events of our own writes wake at most one more.
    assert!((1.0..=2.0).contains(&reconciles), "{reconciles} reconciles");
    // The backend's latency, by operation, in the operator's metrics.
    let created = support::metric(
        &env.metrics,
        "tokenops_operator_backend_request_duration_seconds_count",
        &["operation=\"create_token\"", "outcome=\"2xx\""],
    );
    assert_eq!(created, 1.0, "{}", env.metrics.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_the_operator_cannot_be_handed_to_terraform() {
    // Ownership labels are set once (DESIGN "Who may do what"): the backend
    // refuses to relabel an operator token, so no other front end can take
    // it over and the operator never meets a token it made under another owner.
    let env = env().await;
    env.create("handover", json!({"lifetime": "1h"})).await;
    let id = env
        .ready("handover")
        .await
        .status
        .unwrap()
        .token_id
        .unwrap();
    let before = env.admin.get_token(&id).await.unwrap();
    let mut labels = before.labels.clone();
    labels.insert("managed-by".to_string(), "terraform".to_string());
    let err = env
        .admin
        .update_token(&id)
        .labels(labels)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable_field"), "{err}");
    let after = env.admin.get_token(&id).await.unwrap();
    assert_eq!(
        after.labels.get("managed-by").map(String::as_str),
        Some("tokenops-operator")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_waiting_for_its_backend_is_issued_when_the_backend_appears() {
    let env = env().await;
    let mut spec = json!({"lifetime": "1h", "role": "read-only"});
    spec["backendRef"] = json!({"name": "late"});
    env.tokens()
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
        let s = env.tokens().get("early").await.unwrap().status?;
        s.conditions
            .into_iter()
            .find(|c| c.reason == "BackendNotFound")
    })
    .await;
    // Let the back-off grow past what the test waits for below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Api::<crd::TokenBackend>::namespaced(env.client.clone(), &env.ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "late"},
                "spec": {"url": env.backend().url(), "credentialsSecretRef": {"name": "tokenops-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(
        4,
        "the ApiToken to be Ready soon after its backend appears",
        || async {
            env.tokens()
                .get_opt("early")
                .await
                .unwrap()
                .filter(is_ready)
        },
    )
    .await;
}

/// `examples/kubernetes/backend.yaml` and `apitoken.yaml` as a user applies
/// them, with only what must differ here replaced: the namespace, the
/// backend's URL and the management token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_example_reaches_ready_with_its_secret() {
    let env = env().await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes");
    let apply = PatchParams::apply("e2e-example").force();
    for file in ["backend.yaml", "apitoken.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            doc["metadata"]["namespace"] = json!(env.ns);
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            match doc["kind"].as_str().unwrap() {
                "Secret" => {
                    doc["stringData"]["token"] = json!(env.backend().owner_token());
                    env.secrets()
                        .patch(&name, &apply, &Patch::Apply(&doc))
                        .await
                        .unwrap();
                }
                "TokenBackend" => {
                    doc["spec"]["url"] = json!(env.backend().url());
                    Api::<crd::TokenBackend>::namespaced(env.client.clone(), &env.ns)
                        .patch(&name, &apply, &Patch::Apply(&doc))
                        .await
                        .unwrap();
                }
                "ApiToken" => {
                    env.tokens()
                        .patch(&name, &apply, &Patch::Apply(&doc))
                        .await
                        .unwrap();
                }
                other => panic!("{file}: unexpected kind {other}"),
            }
        }
    }
    let tok = env.ready("exporter").await;
    let status = tok.status.unwrap();
    assert_eq!(status.secret_name.as_deref(), Some("exporter-token"));
    let secret = env.secrets().get("exporter-token").await.unwrap();
    assert_eq!(
        secret.labels().get("app").map(String::as_str),
        Some("exporter")
    );
    let data = secret.data.unwrap();
    let value = String::from_utf8(data["token"].0.clone()).unwrap();
    assert!(env.verifies(&value).await);
    assert_eq!(
        data["url"].0, b"http://tokenops-server.tokenops.svc",
        "the template's extra key"
    );
    let token = env
        .admin
        .get_token(status.token_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(token.role.as_deref(), Some("read-only"));
}
