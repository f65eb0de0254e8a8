//! What the API server refuses: every invalid `ApiToken` spec that the
//! operator README lists ("What the API refuses") is refused at create time —
//! by the CRD's schema and CEL rules, on kube-memserver (which evaluates them)
//! and on a real cluster alike — and the valid neighbours of each are accepted.

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::json;
use tokenops_operator::crd::ApiToken;

use crate::support::{Options, env_with};

/// `(spec, a part of the API server's message)`; the spec gets `backendRef` added.
fn invalid_specs() -> Vec<(serde_json::Value, &'static str)> {
    let one_of = "set at most one of renewBefore and renewBeforePercentage";
    let grace = "gracePeriod must be shorter than lifetime";
    let renew = "renewBefore must be shorter than lifetime";
    let positive = "lifetime must be longer than 0";
    vec![
        (
            json!({"renewBefore": "1h", "renewBeforePercentage": 10}),
            one_of,
        ),
        (json!({"lifetime": "0"}), positive),
        (json!({"lifetime": "0h0m"}), positive),
        (json!({"lifetime": "1h", "gracePeriod": "2h"}), grace),
        (json!({"lifetime": "1h", "gracePeriod": "60m"}), grace),
        (json!({"lifetime": "1d", "gracePeriod": "2d"}), grace),
        (json!({"lifetime": "1d", "gracePeriod": "48h"}), grace),
        (json!({"lifetime": "1d", "gracePeriod": "24h"}), grace),
        (json!({"lifetime": "36h", "gracePeriod": "1.5d"}), grace),
        (json!({"lifetime": "1w", "gracePeriod": "7d"}), grace),
        (json!({"lifetime": "2h", "renewBefore": "1d"}), renew),
        (json!({"lifetime": "1d1h", "renewBefore": "1500m"}), renew),
        (json!({"lifetime": "2w", "renewBefore": "336h"}), renew),
        (json!({"lifetime": "5 minutes"}), "should match"),
        (json!({"gracePeriod": "1y"}), "should match"),
        (
            json!({"renewBeforePercentage": 100}),
            "less than or equal to 99",
        ),
        (
            json!({"renewBeforePercentage": 0}),
            "greater than or equal to 1",
        ),
        (json!({"deletionPolicy": "Keep"}), "Unsupported value"),
        (json!({"name": ""}), "at least 1 chars long"),
        (
            json!({"description": "x".repeat(1025)}),
            "may not be more than 1024",
        ),
        (
            json!({"restartTargets": [{"kind": "Pod", "name": "web"}]}),
            "Unsupported value",
        ),
    ]
}

/// The valid neighbours of the invalid specs above.
fn valid_specs() -> Vec<serde_json::Value> {
    vec![
        json!({"lifetime": "1d", "gracePeriod": "23h", "renewBefore": "12h"}),
        json!({"lifetime": "1d", "gracePeriod": "1439m"}),
        json!({"lifetime": "1d1h", "renewBefore": "1499m"}),
        json!({"lifetime": "1.5d", "gracePeriod": "35h59m"}),
        json!({"lifetime": "2w", "gracePeriod": "13d", "renewBefore": "1w"}),
        json!({"lifetime": "30d", "renewBeforePercentage": 20}),
        json!({"renewBefore": "240h"}),
        json!({"lifetime": "1ns"}),
    ]
}

/// An `ApiToken` as written, invalid values included (the Rust type cannot hold them).
fn api_token(name: &str, spec: &serde_json::Value) -> DynamicObject {
    let mut spec = spec.clone();
    spec["backendRef"] = json!({"name": "main"});
    serde_json::from_value(json!({
        "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_every_invalid_spec_the_readme_lists() {
    // No controller: only the API server's answer is under test.
    let env = env_with(Options {
        controller: false,
        ..Options::default()
    })
    .await;
    let pp = PostParams::default();
    let tokens: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &ApiResource::erase::<ApiToken>(&()),
    );
    for (i, (spec, message)) in invalid_specs().into_iter().enumerate() {
        match tokens
            .create(&pp, &api_token(&format!("bad-{i}"), &spec))
            .await
        {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{spec}: {e:?}");
                assert!(
                    e.message.contains(message),
                    "{spec}: expected {message:?} in {:?}",
                    e.message
                );
            }
            other => panic!("{spec} was not refused: {other:?}"),
        }
    }
    for (i, spec) in valid_specs().into_iter().enumerate() {
        let name = format!("good-{i}");
        tokens
            .create(&pp, &api_token(&name, &spec))
            .await
            .unwrap_or_else(|e| panic!("{spec} was refused: {e}"));
        tokens
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
    }
}
