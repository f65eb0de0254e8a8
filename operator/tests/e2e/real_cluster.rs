//! A real cluster named by `TOKENOPS_E2E_KUBECONFIG`, as the e2e suite and the
//! scale bench use it: a client for it, the CRDs applied, and the clean-up of
//! a namespace of their own. (Included by both with `#[path]`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokenops_operator::crd::{self, ApiToken};

/// The kubeconfig of the real cluster to run against, if any.
pub fn kubeconfig() -> Option<PathBuf> {
    std::env::var_os("TOKENOPS_E2E_KUBECONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// A client for the cluster of `path`.
pub async fn client(path: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("TOKENOPS_E2E_KUBECONFIG is readable");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a Kubernetes client")
}

/// Polls `check` every `every` until it holds; panics after `limit`.
async fn until(what: &str, every: Duration, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Applies the committed CRDs (what `kubectl apply -f crds/` does) and waits
/// until the cluster serves them.
pub async fn install_crds(client: &kube::Client) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, _) in crd::all() {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let def: CustomResourceDefinition = serde_saphyr::from_str(&text).unwrap();
        let name = def.name_any();
        api.patch(
            &name,
            &PatchParams::apply("tokenops-e2e").force(),
            &Patch::Apply(&def),
        )
        .await
        .expect("applying a CRD");
        until(
            "the CRD to be established",
            Duration::from_millis(100),
            Duration::from_secs(60),
            async || {
                api.get(&name)
                    .await
                    .ok()
                    .and_then(|c| c.status?.conditions)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        )
        .await;
    }
}

/// Deletes every `ApiToken` of `ns` and waits until they are gone: through a
/// running operator (which revokes their tokens), or with their finalizers
/// released when none will come (`release_finalizers`).
pub async fn delete_api_tokens(
    client: &kube::Client,
    ns: &str,
    release_finalizers: bool,
    limit: Duration,
) {
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), ns);
    let _ = tokens
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    if release_finalizers && let Ok(list) = tokens.list(&ListParams::default()).await {
        for t in list {
            let _ = tokens
                .patch(
                    &t.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
    }
    until(
        "the ApiTokens to be gone",
        Duration::from_millis(250),
        limit,
        async || {
            tokens
                .list(&ListParams::default().limit(1))
                .await
                .is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
}

/// Deletes namespace `ns` and waits until it is gone.
pub async fn delete_namespace(client: &kube::Client, ns: &str, limit: Duration) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(ns, &DeleteParams::default()).await;
    until(
        "the namespace to be gone",
        Duration::from_millis(250),
        limit,
        async || matches!(namespaces.get_opt(ns).await, Ok(None)),
    )
    .await;
}
