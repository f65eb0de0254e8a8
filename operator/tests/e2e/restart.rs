//! `restartTargets`: a rotation rolls each named workload exactly once; a
//! resync without a new value rolls nothing.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::support::{env, eventually, metric};

const RESTARTED_AT: &str = "tokenops.dev/restartedAt";

fn pod_template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rotation_restarts_each_target_once_and_a_resync_restarts_nothing() {
    let env = env().await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(env.client.clone(), &env.ns);
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template("web")},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    statefulsets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "db"},
                "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": pod_template("db")},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let generations = || async {
        let d = deployments.get("web").await.unwrap();
        let s = statefulsets.get("db").await.unwrap();
        let annotation = |t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>| {
            t.and_then(|t| {
                t.metadata
                    .as_ref()?
                    .annotations
                    .as_ref()?
                    .get(RESTARTED_AT)
                    .cloned()
            })
        };
        (
            d.metadata.generation.unwrap(),
            s.metadata.generation.unwrap(),
            annotation(Some(&d.spec.template)),
            annotation(Some(&s.spec.template)),
        )
    };
    let (d0, s0, _, _) = generations().await;

    env.create(
        "rolling",
        json!({
            "lifetime": "1h",
            "restartTargets": [{"kind": "Deployment", "name": "web"}, {"kind": "StatefulSet", "name": "db"}],
        }),
    )
    .await;
    env.ready("rolling").await;
    let (d, s, da, sa) = generations().await;
    assert_eq!((d, s), (d0, s0), "the first issue restarted workloads");
    assert_eq!((da, sa), (None, None));

    env.patch(
        "rolling",
        json!({"metadata": {"annotations": {"tokenops.dev/rotate": "1"}}}),
    )
    .await;
    eventually(20, "both workloads restarted", || async {
        let (_, _, da, sa) = generations().await;
        (da.is_some() && sa.is_some()).then_some(())
    })
    .await;
    let (d1, s1, da, sa) = generations().await;
    assert_eq!((d1, s1), (d0 + 1, s0 + 1), "one rotation, one restart each");
    assert_eq!(da, sa, "both carry the same rotation time");

    // A resync with nothing to do: wake the ApiToken and wait for its reconcile.
    let before = metric(
        &env.metrics,
        "tokenops_operator_reconciles_total",
        &["ApiToken"],
    );
    env.touch("rolling").await;
    eventually(10, "a resync", || async {
        (metric(
            &env.metrics,
            "tokenops_operator_reconciles_total",
            &["ApiToken"],
        ) > before)
            .then_some(())
    })
    .await;
    // Reconciles of one object run one at a time, so every reconcile the
    // rotation caused (its own Secret and status writes) has run by now.
    let (d2, s2, _, _) = generations().await;
    assert_eq!(
        (d2, s2),
        (d0 + 1, s0 + 1),
        "restarted more than once, or by a resync"
    );
}
