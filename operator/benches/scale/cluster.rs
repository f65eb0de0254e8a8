//! The scale bench against a real cluster (`TOKENOPS_E2E_KUBECONFIG`).
//!
//! Measures what the issue asks of a real API server, in one run:
//!
//! 1. the backend alone: `BENCH_TOKENS` creates (as in the in-memory run);
//! 2. `BENCH_TOKENS` `ApiToken`s created at once in a fresh namespace until all
//!    are Ready with their Secret; the operator's Kubernetes requests and
//!    reconciles per new `ApiToken` (its own count, as in the in-memory run);
//! 3. a plain client sending only those Kubernetes writes, the same number in
//!    flight, into a second fresh namespace that no operator watches; and the
//!    ratio of (2) to (3).
//!
//! The operator is the release binary on this machine, watching only the
//! bench's namespace (`WATCH_NAMESPACES`), so the backend on 127.0.0.1 is
//! reachable from it. The kubeconfig's user needs cluster-admin (the CRDs are
//! applied, namespaces created), as for the e2e suite's real-cluster mode. At
//! the end the bench's `ApiToken`s are deleted through the operator (their
//! tokens revoked), the plain client's have their finalizers released, and
//! both namespaces are deleted and waited for.

use super::real_cluster::{self, delete_api_tokens, delete_namespace};
use super::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::ListParams;
use std::collections::HashSet;

pub use real_cluster::kubeconfig;

async fn create_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating the bench's namespace");
}

/// `ApiToken`s of `ns` that are Ready and have their Secret (named as the
/// `ApiToken`, as in the in-memory run).
async fn ready_with_secrets(client: &kube::Client, ns: &str) -> usize {
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let (Ok(tokens), Ok(secrets)) = (
        tokens.list(&ListParams::default()).await,
        secrets.list_metadata(&ListParams::default()).await,
    ) else {
        return 0;
    };
    let secrets: HashSet<String> = secrets.items.iter().map(|s| s.name_any()).collect();
    tokens
        .items
        .iter()
        .filter(|t| secrets.contains(&t.name_any()))
        .filter(|t| is_ready(&serde_json::to_value(t).unwrap()))
        .count()
}

/// Waits until the operator has sent no Kubernetes request for a second (its
/// own count): the reconciles woken by its own writes are done.
async fn wait_until_settled(operator: &OperatorProcess) {
    let start = Instant::now();
    let mut last = kube_requests_by(&operator.metrics().await);
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = kube_requests_by(&operator.metrics().await);
        if now != last {
            last = now;
            since = Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the operator never settled"
        );
    }
}

pub async fn run(kubeconfig: &Path) {
    let tokens = env_num("BENCH_TOKENS", 1000);
    let repeat = env_num("BENCH_REPEAT", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "tokenops-operator benchmark on the cluster of {}: {tokens} ApiTokens; \
         tokenops-server (SQLite) and tokenops-operator on this machine; \
         {} reconciles / creates / plain-client writes in flight\n",
        kubeconfig.display(),
        concurrency()
    );
    let client = real_cluster::client(kubeconfig).await;
    real_cluster::install_crds(&client).await;
    let stamp = format!(
        "{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
    );
    let ns = format!("tokenops-bench-{stamp}");
    let plain_ns = format!("tokenops-bench-plain-{stamp}");
    create_namespace(&client, &ns).await;
    create_namespace(&client, &plain_ns).await;
    let mut rows = Vec::new();

    // --- 1. the backend alone ---
    let baseline = backend_baseline(dir.path(), tokens, repeat).await;
    rows.push(row(
        format!("backend alone: {tokens} creates, median of {repeat}"),
        format!("{baseline:.2} s"),
        "—",
        None,
    ));

    // --- 2. the operator: N ApiTokens at once ---
    let backend = BackendProcess::start(dir.path(), "operator");
    setup_backend_objects(client.clone(), &ns, &backend).await;
    let log = dir.path().join("operator.log");
    let operator = OperatorProcess::watching(kubeconfig, &log, Some(&ns));
    let backends: Api<crd::TokenBackend> = Api::namespaced(client.clone(), &ns);
    wait_for(
        "the TokenBackend to be Ready",
        Duration::from_secs(120),
        async || {
            backends
                .get("main")
                .await
                .is_ok_and(|b| is_ready(&serde_json::to_value(&b).unwrap()))
        },
    )
    .await;
    let before = operator.metrics().await;
    let start = Instant::now();
    let mut creating = std::pin::pin!(create_api_tokens(
        client.clone(),
        &ns,
        (0..tokens).map(|i| format!("t-{i}")),
        "720h",
        None,
    ));
    let mut created = false;
    loop {
        tokio::select! {
            _ = &mut creating, if !created => created = true,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if created && ready_with_secrets(&client, &ns).await == tokens {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "timed out: {} of {tokens} Ready (operator log: {})",
            ready_with_secrets(&client, &ns).await,
            log.display()
        );
    }
    let operator_time = start.elapsed().as_secs_f64();
    println!("operator: {tokens} Ready with Secrets in {operator_time:.2} s");
    wait_until_settled(&operator).await;
    let budget = Budget::between(&before, &operator.metrics().await, tokens);
    // Deleted while the operator runs: it revokes their tokens and releases them.
    delete_api_tokens(&client, &ns, false, Duration::from_secs(900)).await;
    operator.stop();
    drop(backend);

    // --- 3. the same writes from a plain client, where no operator watches ---
    let plain = plain_client_writes_to(client.clone(), &plain_ns, tokens, &budget.requests).await;
    println!(
        "plain client: the operator's writes for {tokens} ApiTokens in {:.2} s",
        plain.as_secs_f64()
    );
    delete_api_tokens(&client, &plain_ns, true, Duration::from_secs(900)).await;
    delete_namespace(&client, &ns, Duration::from_secs(300)).await;
    delete_namespace(&client, &plain_ns, Duration::from_secs(300)).await;

    rows.extend(budget.rows(tokens));
    rows.push(row(
        format!("operator: {tokens} ApiTokens created at once → Ready with Secrets"),
        format!(
            "{operator_time:.2} s ({:.2}× the backend alone)",
            operator_time / baseline
        ),
        "—",
        None,
    ));
    let ratio = operator_time / plain.as_secs_f64();
    rows.push(row(
        "operator time / a plain client sending only its Kubernetes writes",
        format!(
            "{ratio:.2}× ({operator_time:.2} s / {:.2} s)",
            plain.as_secs_f64()
        ),
        "≤ 1.2×",
        Some(ratio <= 1.2),
    ));
    print_table(&rows);
}
