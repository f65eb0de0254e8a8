//! Drift repaired: a token revoked or deleted on the backend, a deleted
//! Secret, a backend that goes down and comes back.

use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tokenops_operator::crd::{self, ConditionStatus};
use tokenops_operator::error::Backoff;

use crate::support::{Options, Proxy, env, env_with, eventually, is_ready, metric};

/// Waits until `name` is Ready with a token other than `old`; returns its id.
async fn new_token(env: &crate::support::Env, name: &str, old: &str) -> String {
    eventually(20, "a new token", || async {
        let t = env.tokens().get(name).await.unwrap();
        let id = t.status.clone()?.token_id?;
        (id != old && is_ready(&t)).then_some(id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_the_backend_is_replaced_by_a_new_one() {
    let env = env().await;
    env.create("revoked", json!({"lifetime": "1h"})).await;
    let tok = env.ready("revoked").await;
    let old = tok.status.clone().unwrap().token_id.unwrap();
    let old_value = env.secret_value("revoked").await;
    env.admin.revoke_token(&old).await.unwrap();
    env.touch("revoked").await;
    let new = new_token(&env, "revoked", &old).await;
    let value = env.secret_value("revoked").await;
    assert_ne!(value, old_value);
    assert!(env.verifies(&value).await);
    let active = env.active_tokens(&tok).await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, new);
    eventually(10, "a second Issued event", || async {
        let issued = env
            .event_reasons()
            .await
            .iter()
            .filter(|r| *r == "Issued")
            .count();
        (issued >= 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_deleted_on_the_backend_is_replaced_by_a_new_one() {
    let env = env().await;
    env.create("deleted", json!({"lifetime": "1h"})).await;
    let tok = env.ready("deleted").await;
    let old = tok.status.clone().unwrap().token_id.unwrap();
    env.admin.delete_token(&old).await.unwrap();
    env.touch("deleted").await;
    let new = new_token(&env, "deleted", &old).await;
    assert!(env.verifies(&env.secret_value("deleted").await).await);
    let all = env.backend_tokens(&tok).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_gets_a_new_value_of_the_same_token() {
    let env = env().await;
    env.create("lost", json!({"lifetime": "1h"})).await;
    let tok = env.ready("lost").await;
    let id = tok.status.clone().unwrap().token_id.unwrap();
    let old_value = env.secret_value("lost").await;
    env.secrets()
        .delete("lost", &DeleteParams::default())
        .await
        .unwrap();
    let value = eventually(20, "a new Secret", || async {
        let s = env.secrets().get_opt("lost").await.unwrap()?;
        let v = String::from_utf8(s.data?.get("token")?.0.clone()).ok()?;
        (v != old_value).then_some(v)
    })
    .await;
    assert!(env.verifies(&value).await);
    assert!(
        !env.verifies(&old_value).await,
        "no grace period was asked for"
    );
    let active = env.active_tokens(&tok).await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, id, "the value is rotated, the token kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_is_retried_with_back_off_and_recovers() {
    let env = env_with(Options {
        backoff: Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        },
        ..Options::default()
    })
    .await;
    let proxy = Proxy::start(&env.backend().url()).await;
    proxy.set_up(false);
    Api::<crd::TokenBackend>::namespaced(env.client.clone(), &env.ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "flaky"},
                "spec": {"url": proxy.url, "credentialsSecretRef": {"name": "tokenops-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    env.create(
        "patient",
        json!({"lifetime": "1h", "backendRef": {"name": "flaky"}}),
    )
    .await;
    let cond = eventually(20, "a BackendUnavailable condition", || async {
        let s = env.tokens().get("patient").await.unwrap().status?;
        s.conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.reason == "BackendUnavailable")
    })
    .await;
    assert_eq!(cond.status, ConditionStatus::False);

    // With 0.5 s doubling, 6 s hold at most 4 retries (0.5, 1, 2, 4 s), plus a
    // couple of wake-ups from the backend's own status; a hot loop makes hundreds.
    let failures = || {
        metric(
            &env.metrics,
            "tokenops_operator_reconcile_errors_total",
            &["kind=\"ApiToken\"", "backend_unreachable"],
        )
    };
    let start = failures();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let in_window = failures() - start;
    assert!(
        (1.0..=6.0).contains(&in_window),
        "{in_window} failed attempts in 6 s"
    );

    proxy.set_up(true);
    let tok = eventually(20, "recovery once the backend is back", || async {
        env.tokens()
            .get_opt("patient")
            .await
            .unwrap()
            .filter(is_ready)
    })
    .await;
    assert!(env.verifies(&env.secret_value("patient").await).await);
    assert_eq!(env.active_tokens(&tok).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resync_notices_a_token_revoked_on_the_backend_without_any_kubernetes_change() {
    let env = env_with(Options {
        resync_period: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    // Renewal is hours away: only the resync can wake this ApiToken.
    env.create("quiet", json!({"lifetime": "24h"})).await;
    let tok = env.ready("quiet").await;
    let old = tok.status.clone().unwrap().token_id.unwrap();
    env.admin.revoke_token(&old).await.unwrap();
    let new = new_token(&env, "quiet", &old).await;
    assert!(env.verifies(&env.secret_value("quiet").await).await);
    assert_eq!(env.active_tokens(&tok).await[0].id, new);
}
