//! Many `ApiToken`s created at once: every one converges with no failed
//! reconcile (in particular no finalizer patch refused because the watch cache
//! was behind) and exactly one token issued for each. On kube-memserver the
//! watch events lag the writes, as a real API server's do under load.

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
