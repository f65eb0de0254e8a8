//! Two operator replicas through the real `run()` path with leader election:
//! only the leader reconciles; when it dies, the standby takes over within
//! the lease duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use tokenops_operator::metrics::Metrics;
use tokenops_operator::run::{Config, LeaseConfig, run_with_metrics};

use crate::support::{AbortOnDrop, Env, HASH_KEY, Options, env_with, eventually, metric};

const LEASE: &str = "tokenops-operator";
const LEASE_DURATION: Duration = Duration::from_secs(3);

fn replica(env: &Env, identity: &str) -> (AbortOnDrop, Arc<Metrics>) {
    let config = Config {
        namespaces: vec![env.ns.clone()],
        leader_election: Some(LeaseConfig {
            lease_duration: LEASE_DURATION,
            retry_period: Duration::from_millis(300),
            ..LeaseConfig::new(&env.ns, LEASE, identity)
        }),
        hash_key: Some(HASH_KEY.to_vec()),
        ..Config::default()
    };
    let metrics = Arc::new(Metrics::default());
    let (client, m) = (env.client.clone(), metrics.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = run_with_metrics(client, config, m).await {
            tracing::info!(error = %e, "replica stopped");
        }
    });
    (AbortOnDrop(task), metrics)
}

fn reconciles(m: &Metrics) -> f64 {
    metric(
        m,
        "tokenops_operator_reconciles_total",
        &["kind=\"ApiToken\""],
    )
}

async fn holder(env: &Env) -> Option<String> {
    Api::<Lease>::namespaced(env.client.clone(), &env.ns)
        .get_opt(LEASE)
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_the_standby_takes_over_when_it_dies() {
    let env = env_with(Options {
        controller: false,
        ..Options::default()
    })
    .await;
    let (a, a_metrics) = replica(&env, "replica-a");
    eventually(10, "replica-a to lead", || async {
        (holder(&env).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let (_b, b_metrics) = replica(&env, "replica-b");

    env.create("one", json!({"lifetime": "1h"})).await;
    let one = env.ready("one").await;
    // Give the standby several election rounds to (wrongly) start working.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(reconciles(&a_metrics) > 0.0);
    assert_eq!(reconciles(&b_metrics), 0.0, "the standby reconciled");
    assert_eq!(env.active_tokens(&one).await.len(), 1);
    assert_eq!(holder(&env).await.as_deref(), Some("replica-a"));

    // The leader dies without giving the Lease up.
    let mut a = a;
    a.0.abort();
    let _ = (&mut a.0).await;
    let killed = Instant::now();
    eventually(15, "replica-b to take the Lease", || async {
        (holder(&env).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took <= LEASE_DURATION + Duration::from_secs(2),
        "took over after {took:?}"
    );

    env.create("two", json!({"lifetime": "1h"})).await;
    let two = env.ready("two").await;
    assert!(reconciles(&b_metrics) > 0.0);
    assert_eq!(env.active_tokens(&two).await.len(), 1);
    // The new leader's first look at `one` found it converged: no second token.
    assert_eq!(env.active_tokens(&one).await.len(), 1);
    assert_eq!(env.backend_tokens(&one).await.len(), 1);
}
