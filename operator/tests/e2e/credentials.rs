//! A backend's credentials Secret that appears (or changes) wakes the
//! `ApiToken`s of that backend at once, not at their next retry.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokenops_operator::crd;
use tokenops_operator::error::Backoff;

use crate::support::{Options, env_with, eventually, is_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_secret_created_later_wakes_the_api_tokens_of_its_backend() {
    // Retries far beyond the test: only the Secret watch can wake the ApiToken.
    let env = env_with(Options {
        backoff: Backoff {
            initial: Duration::from_secs(120),
            max: Duration::from_secs(120),
        },
        ..Options::default()
    })
    .await;
    Api::<crd::TokenBackend>::namespaced(env.client.clone(), &env.ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "later"},
                "spec": {"url": env.backend().url(), "credentialsSecretRef": {"name": "later-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    env.create(
        "waiting",
        json!({"lifetime": "1h", "backendRef": {"name": "later"}}),
    )
    .await;
    eventually(20, "a CredentialsNotFound condition", || async {
        let s = env.tokens().get("waiting").await.unwrap().status?;
        s.conditions
            .into_iter()
            .find(|c| c.reason == "CredentialsNotFound")
    })
    .await;

    Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "later-credentials"},
                "stringData": {"token": env.backend().owner_token()},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(
        5,
        "the ApiToken to be Ready soon after its credentials appear",
        || async {
            env.tokens()
                .get_opt("waiting")
                .await
                .unwrap()
                .filter(is_ready)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_credentials_are_used_by_the_next_reconcile() {
    let env = env_with(Options::default()).await;
    env.create("user", json!({"lifetime": "1h"})).await;
    env.ready("user").await;
    // The operator keeps resolved backends for a while; a change of the
    // credentials Secret must end that at once.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    secrets
        .patch(
            "tokenops-credentials",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"token": "tko_not_a_known_token"}})),
        )
        .await
        .unwrap();
    env.touch("user").await;
    eventually(
        10,
        "the ApiToken to report the refused credentials",
        || async {
            let s = env.tokens().get("user").await.unwrap().status?;
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.reason == "BackendDenied")
        },
    )
    .await;
}
