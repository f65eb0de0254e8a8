//! Backends the operator cannot reach: the failure is logged (without the
//! credentials) and counted under the backend's own kind.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tokenops_operator::crd::{ClusterTokenBackend, ConditionStatus};

use crate::support::{env, eventually, metric};

/// Log lines, as the operator's JSON logs would carry them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_backend_with_a_dead_url_is_logged_and_counted_under_its_kind() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Installed before the harness's own subscriber, which then stands aside
    // (nextest runs each test in a process of its own; where another test of
    // the same process came first, the log is not checked).
    let logged = tracing_subscriber::fmt()
        .with_env_filter("tokenops_operator=info")
        .with_writer(move || writer.clone())
        .try_init()
        .is_ok();
    let env = env().await;
    // Nothing listens on port 1 of the loopback address.
    let name = format!("dead-{}", env.ns);
    let backends: Api<ClusterTokenBackend> = Api::all(env.client.clone());
    backends
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "ClusterTokenBackend",
                "metadata": {"name": name},
                "spec": {"url": "http://127.0.0.1:1", "credentialsSecretRef": {
                    "name": "tokenops-credentials", "namespace": env.ns}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let reason = eventually(20, "the dead backend to be not Ready", || async {
        let b = backends.get(&name).await.ok()?;
        let ready = b
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == ConditionStatus::False).then_some(ready.reason)
    })
    .await;
    assert_eq!(reason, "BackendUnavailable");
    if logged {
        eventually(10, "the failure in the log", || async {
            logs.text().contains("backend check failed").then_some(())
        })
        .await;
    }

    let counted = |kind: &str| {
        metric(
            &env.metrics,
            "tokenops_operator_reconcile_errors_total",
            &[
                &format!("kind=\"{kind}\""),
                "reason=\"backend_unreachable\"",
            ],
        )
    };
    assert!(
        counted("ClusterTokenBackend") >= 1.0,
        "{}",
        env.metrics.render()
    );
    assert_eq!(counted("TokenBackend"), 0.0, "{}", env.metrics.render());
    if logged {
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains("backend check failed"))
            .unwrap();
        assert!(
            line.contains(&format!("ClusterTokenBackend//{name}")),
            "{line}"
        );
        assert!(
            !text.contains(&env.backend().owner_token()),
            "the management token is in the log"
        );
    } else {
        eprintln!("another test set the log subscriber first: the log is not checked");
    }
    backends
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
}
