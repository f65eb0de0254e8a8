//! Many `ApiToken`s created at once: every one converges with no failed
//! reconcile (in particular no finalizer patch refused because the watch cache
//! was behind) and exactly one token issued for each. On kube-memserver the
//! watch events lag the writes, as a real API server's do under load.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;

use crate::support::{Options, env_with, eventually, is_ready, metric};

const BURST: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_api_tokens_converges_with_no_errors_and_one_issue_each() {
    let env = env_with(Options {
        watch_latency: Duration::from_millis(25),
        ..Options::default()
    })
    .await;
    let names: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|name| env.create(name, json!({"lifetime": "24h"}))),
    )
    .await;
    let tokens = eventually(90, "every ApiToken of the burst to be Ready", || async {
        let list = env.tokens().list(&ListParams::default()).await.ok()?;
        let ready: Vec<_> = list.items.into_iter().filter(is_ready).collect();
        (ready.len() == BURST).then_some(ready)
    })
    .await;

    let errors = metric(
        &env.metrics,
        "tokenops_operator_reconcile_errors_total",
        &["kind=\"ApiToken\""],
    );
    assert_eq!(errors, 0.0, "failed reconciles:\n{}", env.metrics.render());
    let issued = metric(
        &env.metrics,
        "tokenops_operator_token_issuances_total",
        &["action=\"issue\""],
    );
    assert_eq!(issued, BURST as f64, "{}", env.metrics.render());
    for tok in &tokens {
        let on_backend = env.backend_tokens(tok).await;
        assert_eq!(
            on_backend.len(),
            1,
            "{} has {} tokens on the backend",
            tok.name_any(),
            on_backend.len()
        );
        assert_eq!(
            tok.status.as_ref().and_then(|s| s.token_id.as_deref()),
            Some(on_backend[0].id.as_str())
        );
    }
}

/// The Kubernetes requests the operator sent, by `verb resource`, from its
/// own count (`tokenops_operator_kube_requests_total`), without the watches
/// and lists (they serve every `ApiToken` at once).
fn kube_requests(metrics: &tokenops_operator::metrics::Metrics) -> BTreeMap<String, f64> {
    let mut by = BTreeMap::new();
    for line in metrics.render().lines() {
        let Some(rest) = line.strip_prefix("tokenops_operator_kube_requests_total{") else {
            continue;
        };
        let label = |name: &str| {
            let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
            Some(rest[start..].split('"').next()?.to_string())
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
            continue;
        };
        if verb == "watch" || verb == "list" {
            continue;
        }
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by.entry(format!("{verb} {resource}")).or_default() += n;
    }
    by
}

fn difference(
    after: &BTreeMap<String, f64>,
    before: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// New `ApiToken`s cost at most 5 Kubernetes requests and 2 reconciles each
/// (the issue's budget; the pipeline needs 4 and 1), with watch events late
/// as under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_api_tokens_stay_within_five_kubernetes_requests_and_two_reconciles_each() {
    const N: usize = 50;
    let env = env_with(Options {
        watch_latency: Duration::from_millis(25),
        ..Options::default()
    })
    .await;
    // The backend controller's own status write is not part of the budget.
    eventually(20, "the TokenBackend to be Ready", || async {
        let b = kube::Api::<tokenops_operator::crd::TokenBackend>::namespaced(
            env.client.clone(),
            &env.ns,
        )
        .get("main")
        .await
        .ok()?;
        let status = b.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready")
            .then_some(())
    })
    .await;
    env.settled().await;
    let requests_before = kube_requests(&env.metrics);
    let reconciles_before = metric(
        &env.metrics,
        "tokenops_operator_reconciles_total",
        &["kind=\"ApiToken\""],
    );
    let names: Vec<String> = (0..N).map(|i| format!("budget-{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|name| env.create(name, json!({"lifetime": "24h"}))),
    )
    .await;
    eventually(60, "every ApiToken to be Ready", || async {
        let list = env.tokens().list(&ListParams::default()).await.ok()?;
        (list.items.iter().filter(|t| is_ready(t)).count() == N).then_some(())
    })
    .await;
    env.settled().await;
    let requests = difference(&kube_requests(&env.metrics), &requests_before);
    let reconciles = metric(
        &env.metrics,
        "tokenops_operator_reconciles_total",
        &["kind=\"ApiToken\""],
    ) - reconciles_before;
    let total: f64 = requests.values().sum();
    let per_token = total / N as f64;
    let reconciles_per_token = reconciles / N as f64;
    eprintln!(
        "{N} new ApiTokens: {per_token:.2} Kubernetes requests each ({requests:?}), {reconciles_per_token:.2} reconciles each"
    );
    assert!(
        per_token <= 5.0,
        "{per_token:.2} Kubernetes requests per new ApiToken: {requests:?}"
    );
    assert!(
        reconciles_per_token <= 2.0,
        "{reconciles_per_token:.2} reconciles per new ApiToken"
    );
    let errors = metric(
        &env.metrics,
        "tokenops_operator_reconcile_errors_total",
        &["kind=\"ApiToken\""],
    );
    assert_eq!(errors, 0.0, "failed reconciles:\n{}", env.metrics.render());
    let issued = metric(
        &env.metrics,
        "tokenops_operator_token_issuances_total",
        &["action=\"issue\""],
    );
    assert_eq!(issued, N as f64, "{}", env.metrics.render());
}
