//! The operator killed at each step of issuing, rotating and replacing a
//! token. A memserver fault makes the step after the one under test fail; the
//! controller is killed while it waits to retry (as a crash at that point
//! would leave things), the fault is lifted, and a fresh controller starts.
//! Afterwards: exactly one active token carries the `ApiToken`'s UID, its value
//! is in the Secret and verifies, and the status is Ready and names it.

use kube::ResourceExt;
use kube_memserver::{Fault, FaultHandle, Verb};
use serde_json::json;
use tokenops_client::{Token, TokenStatus};
use tokenops_operator::crd::ApiToken;

use crate::support::{Env, env, eventually, is_ready};

/// Secret writes for `name` fail: the controller stops right after the backend step.
fn secret_write(name: &str) -> Fault {
    Fault::error(500)
        .resource("secrets")
        .verb(Verb::Apply)
        .name(name)
}

/// Status writes for `name` fail: the controller stops right after the Secret write.
fn status_write(name: &str) -> Fault {
    Fault::error(500)
        .resource("apitokens")
        .subresource("status")
        .name(name)
}

/// Installs `fault` (these tests are ignored on a real cluster, see `build.rs`).
fn inject(env: &Env, fault: Fault) -> Option<FaultHandle> {
    Some(env.memserver("fault injection")?.inject(fault))
}

/// Waits for the fault to fire, kills the controller, lifts the fault.
async fn crash_at(env: &mut Env, fault: FaultHandle) {
    eventually(15, "the controller to reach the faulty step", || async {
        (fault.hits() > 0).then_some(())
    })
    .await;
    env.kill_controller().await;
    fault.remove();
}

/// Waits until `name` has converged and returns it with its one active token.
async fn converged(env: &Env, name: &str) -> (ApiToken, Token) {
    let (tok, token) = eventually(20, "convergence after the restart", || async {
        let tok = env.tokens().get(name).await.unwrap();
        let id = tok.status.as_ref()?.token_id.clone()?;
        if !is_ready(&tok) {
            return None;
        }
        let secret = env.secrets().get_opt(name).await.unwrap()?;
        if secret.annotations().get("tokenops.dev/token-id") != Some(&id) {
            return None;
        }
        let mut active = env.active_tokens(&tok).await;
        if active.len() != 1 || active[0].id != id {
            return None;
        }
        if secret.annotations().get("tokenops.dev/token-generation")
            != Some(&active[0].generation.to_string())
        {
            return None;
        }
        Some((tok, active.remove(0)))
    })
    .await;
    let value = env.secret_value(name).await;
    assert!(
        env.verifies(&value).await,
        "the Secret's value does not verify"
    );
    (tok, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_after_the_backend_created_a_token_and_before_the_secret_write() {
    let mut env = env().await;
    let Some(fault) = inject(&env, secret_write("a")) else {
        return;
    };
    env.create("a", json!({"lifetime": "1h"})).await;
    crash_at(&mut env, fault).await;
    let tok = env.tokens().get("a").await.unwrap();
    assert_eq!(
        env.backend_tokens(&tok).await.len(),
        1,
        "nothing was created"
    );
    assert!(env.secrets().get_opt("a").await.unwrap().is_none());

    env.start_controller();
    let (tok, _) = converged(&env, "a").await;
    assert_eq!(
        env.backend_tokens(&tok).await.len(),
        1,
        "the undelivered token was not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_after_the_secret_write_and_before_the_status_write() {
    let mut env = env().await;
    let Some(fault) = inject(&env, status_write("b")) else {
        return;
    };
    env.create("b", json!({"lifetime": "1h"})).await;
    crash_at(&mut env, fault).await;
    let tok = env.tokens().get("b").await.unwrap();
    assert!(tok.status.and_then(|s| s.token_id).is_none());
    let delivered = env.secret_value("b").await;

    env.start_controller();
    let (tok, token) = converged(&env, "b").await;
    assert_eq!(env.backend_tokens(&tok).await.len(), 1);
    assert_eq!(token.generation, 0, "the delivered value was rotated");
    assert_eq!(env.secret_value("b").await, delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_after_a_regenerate_and_before_the_secret_update() {
    let mut env = env().await;
    env.create("c", json!({"lifetime": "1h"})).await;
    let first = env.ready("c").await;
    let old_value = env.secret_value("c").await;
    let Some(fault) = inject(&env, secret_write("c")) else {
        return;
    };
    // A changed lifetime rotates the value in place.
    env.patch("c", json!({"spec": {"lifetime": "2h"}})).await;
    crash_at(&mut env, fault).await;
    let id = first.status.unwrap().token_id.unwrap();
    let on_backend = env.admin.get_token(&id).await.unwrap();
    // (The failed attempt's status write wakes one immediate retry, which
    // regenerates once more and fails the same way.)
    assert!(on_backend.generation >= 1, "the backend did not regenerate");
    assert_eq!(env.secret_value("c").await, old_value);
    assert!(
        !env.verifies(&old_value).await,
        "without a grace period the Secret's value is dead until recovery"
    );

    env.start_controller();
    let (tok, token) = converged(&env, "c").await;
    assert_eq!(token.id, id, "recovery keeps the token id");
    assert_eq!(
        token.generation,
        on_backend.generation + 1,
        "the lost value was regenerated once"
    );
    assert_eq!(env.backend_tokens(&tok).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_after_the_secret_update_and_before_the_status_write() {
    let mut env = env().await;
    env.create("d", json!({"lifetime": "1h"})).await;
    let first = env.ready("d").await.status.unwrap();
    let Some(fault) = inject(&env, status_write("d")) else {
        return;
    };
    env.patch("d", json!({"spec": {"lifetime": "2h"}})).await;
    crash_at(&mut env, fault).await;
    let delivered = env.secret_value("d").await;
    assert!(env.verifies(&delivered).await);

    env.start_controller();
    let (tok, token) = eventually(20, "the new expiry in the status", || async {
        let (tok, token) = converged(&env, "d").await;
        (tok.status.as_ref()?.expires_at != first.expires_at).then_some((tok, token))
    })
    .await;
    assert_eq!(
        token.generation, 1,
        "rotated again although the Secret was current"
    );
    assert_eq!(env.secret_value("d").await, delivered);
    assert_eq!(env.backend_tokens(&tok).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_after_creating_a_replacement_and_before_the_secret_write() {
    let mut env = env().await;
    env.create("e", json!({"lifetime": "1h", "role": "read-only"}))
        .await;
    let old = env.ready("e").await.status.unwrap().token_id.unwrap();
    let Some(fault) = inject(&env, secret_write("e")) else {
        return;
    };
    env.patch("e", json!({"spec": {"role": "accounting"}}))
        .await;
    crash_at(&mut env, fault).await;
    let tok = env.tokens().get("e").await.unwrap();
    assert_eq!(env.backend_tokens(&tok).await.len(), 2);

    env.start_controller();
    let (tok, token) = eventually(20, "the replacement to be delivered", || async {
        let (tok, token) = converged(&env, "e").await;
        (token.id != old).then_some((tok, token))
    })
    .await;
    assert_eq!(token.role.as_deref(), Some("accounting"));
    assert_eq!(
        env.backend_tokens(&tok).await.len(),
        2,
        "a third token was created instead of reusing the undelivered one"
    );
    assert_eq!(
        env.admin.get_token(&old).await.unwrap().status,
        TokenStatus::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_after_the_replacement_reached_the_secret_and_before_the_status_write() {
    let mut env = env().await;
    env.create("f", json!({"lifetime": "1h", "role": "read-only"}))
        .await;
    let old = env.ready("f").await.status.unwrap().token_id.unwrap();
    let Some(fault) = inject(&env, status_write("f")) else {
        return;
    };
    env.patch("f", json!({"spec": {"role": "accounting"}}))
        .await;
    crash_at(&mut env, fault).await;
    let delivered = env.secret_value("f").await;
    let tok = env.tokens().get("f").await.unwrap();
    assert_eq!(tok.status.unwrap().token_id.as_deref(), Some(old.as_str()));

    env.start_controller();
    let (tok, token) = eventually(20, "the replacement to be recorded", || async {
        let (tok, token) = converged(&env, "f").await;
        (token.id != old).then_some((tok, token))
    })
    .await;
    assert_eq!(token.role.as_deref(), Some("accounting"));
    assert_eq!(
        env.secret_value("f").await,
        delivered,
        "adopted, not reissued"
    );
    assert_eq!(env.backend_tokens(&tok).await.len(), 2);
    assert_eq!(
        env.admin.get_token(&old).await.unwrap().status,
        TokenStatus::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    e2e_real_cluster,
    ignore = "needs kube-memserver: a crash is staged by fault injection"
)]
async fn killed_before_the_secret_write_and_the_spec_changed_before_the_restart() {
    let mut env = env().await;
    let Some(fault) = inject(&env, secret_write("g")) else {
        return;
    };
    env.create("g", json!({"lifetime": "1h", "role": "read-only"}))
        .await;
    crash_at(&mut env, fault).await;
    let tok = env.tokens().get("g").await.unwrap();
    let undelivered = env.backend_tokens(&tok).await;
    assert_eq!(undelivered.len(), 1, "nothing was created");
    // While the operator is down the role changes: the interrupted attempt's
    // request (and so its idempotency key) no longer fits.
    env.patch("g", json!({"spec": {"role": "accounting"}}))
        .await;

    env.start_controller();
    let (_, token) = eventually(20, "a token with the new role", || async {
        let (tok, token) = converged(&env, "g").await;
        (token.role.as_deref() == Some("accounting")).then_some((tok, token))
    })
    .await;
    assert_ne!(token.id, undelivered[0].id);
    assert_eq!(
        env.admin
            .get_token(&undelivered[0].id)
            .await
            .unwrap()
            .status,
        TokenStatus::Revoked,
        "the undelivered token with the old role was left active"
    );
}
