//! Leader election against kube-memserver's Lease API.

use std::time::Duration;

use kube_memserver::MemServer;
use tokenops_operator::leader::LeaderElector;

#[tokio::test]
async fn only_one_replica_leads_and_a_released_lease_passes_on() {
    let server = MemServer::start().await;
    let a = LeaderElector::new(server.client(), "tokenops", "tokenops-operator", "a");
    let b = LeaderElector::new(server.client(), "tokenops", "tokenops-operator", "b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap(), "two leaders");
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "the leader could not renew"
    );
    a.release().await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "a released lease was not taken"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let server = MemServer::start().await;
    let mut a = LeaderElector::new(server.client(), "tokenops", "l", "a");
    a.lease_duration = Duration::from_secs(1);
    let mut b = LeaderElector::new(server.client(), "tokenops", "l", "b");
    b.lease_duration = Duration::from_secs(1);
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "an expired lease was not taken over"
    );
}
