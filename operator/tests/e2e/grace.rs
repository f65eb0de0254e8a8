//! A replaced token (permissions changed) keeps working for `gracePeriod`,
//! then is revoked — also when the operator restarts in between.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokenops_client::TokenStatus;
use tokenops_operator::crd::ApiTokenStatus;

use crate::support::{Env, env, eventually, is_ready};

/// Changes the role and waits for the replacement; returns the old id and
/// value and the status naming the new token.
async fn replace(env: &Env, name: &str) -> (String, String, ApiTokenStatus) {
    env.create(
        name,
        json!({"lifetime": "1h", "role": "read-only", "gracePeriod": "3s"}),
    )
    .await;
    let old = env.ready(name).await.status.unwrap().token_id.unwrap();
    let old_value = env.secret_value(name).await;
    env.patch(name, json!({"spec": {"role": "accounting"}}))
        .await;
    let status = eventually(20, "the replacement", || async {
        let t = env.tokens().get(name).await.unwrap();
        let s = t.status.clone()?;
        (s.token_id.as_deref() != Some(old.as_str()) && is_ready(&t)).then_some(s)
    })
    .await;
    (old, old_value, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_token_keeps_working_for_the_grace_period_then_is_revoked() {
    let env = env().await;
    let (old, old_value, status) = replace(&env, "perm").await;
    let replaced_at = Utc::now();
    let new_value = env.secret_value("perm").await;
    assert!(env.verifies(&new_value).await);
    assert!(
        env.verifies(&old_value).await,
        "the old value stopped before the grace period"
    );
    let pending = &status.pending_revocations;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].token_id, old);
    let revoke_at = pending[0].revoke_at;

    eventually(15, "the old token to be revoked", || async {
        (!env.verifies(&old_value).await).then_some(())
    })
    .await;
    assert!(
        revoke_at - replaced_at >= chrono::TimeDelta::milliseconds(2500),
        "the grace period was cut short: revoke at {revoke_at}, replaced at {replaced_at}"
    );
    assert!(
        Utc::now() >= revoke_at,
        "revoked before the grace period was over"
    );
    assert_eq!(
        env.admin.get_token(&old).await.unwrap().status,
        TokenStatus::Revoked
    );
    eventually(10, "the pending revocation to leave the status", || async {
        let s = env.tokens().get("perm").await.unwrap().status?;
        s.pending_revocations.is_empty().then_some(())
    })
    .await;
    assert!(env.verifies(&new_value).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_revocation_survives_an_operator_restart() {
    let mut env = env().await;
    let (old, old_value, status) = replace(&env, "restart").await;
    let revoke_at = status.pending_revocations[0].revoke_at;
    env.kill_controller().await;
    // Wait out the grace period with no operator running: nobody revokes.
    let past = (revoke_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(500);
    tokio::time::sleep(past).await;
    assert!(env.verifies(&old_value).await);

    env.start_controller();
    eventually(
        15,
        "the restarted operator to revoke the old token",
        || async {
            (env.admin.get_token(&old).await.unwrap().status == TokenStatus::Revoked).then_some(())
        },
    )
    .await;
    assert!(!env.verifies(&old_value).await);
    assert!(env.verifies(&env.secret_value("restart").await).await);
}
