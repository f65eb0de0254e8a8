//! Leader election over a `coordination.k8s.io/v1` Lease, so only one replica
//! reconciles at a time. kube-runtime has no elector of its own; this one is
//! the client-go protocol in small: take the Lease if it is free, ours, or not
//! renewed within its duration; renew it every `retry_period`; optimistic
//! concurrency (resourceVersion) settles races.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

fn to_micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(Timestamp::from_microsecond(t.timestamp_micros()).expect("a valid time"))
}

fn from_micro(t: &MicroTime) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.0.as_microsecond()).unwrap_or_default()
}

/// The Lease spec after `me` takes or renews it at `now`, or `None` when
/// someone else holds a lease that has not yet expired.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    me: &str,
    now: DateTime<Utc>,
    duration: Duration,
) -> Option<LeaseSpec> {
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(secs),
        acquire_time: Some(to_micro(now)),
        renew_time: Some(to_micro(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(cur) = current else {
        return Some(fresh(0));
    };
    let transitions = cur.lease_transitions.unwrap_or(0);
    match cur.holder_identity.as_deref() {
        Some(holder) if holder == me => Some(LeaseSpec {
            renew_time: Some(to_micro(now)),
            lease_duration_seconds: Some(secs),
            ..cur.clone()
        }),
        None | Some("") => Some(fresh(transitions + 1)),
        Some(_) => {
            let renewed = cur
                .renew_time
                .as_ref()
                .or(cur.acquire_time.as_ref())
                .map(from_micro);
            let held_for =
                TimeDelta::seconds(i64::from(cur.lease_duration_seconds.unwrap_or(secs)));
            match renewed {
                Some(r) if r + held_for > now => None,
                _ => Some(fresh(transitions + 1)),
            }
        }
    }
}

/// Elects one leader among the replicas sharing a Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often to try to take or renew the Lease.
    pub retry_period: Duration,
}

impl LeaderElector {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// One attempt to take or renew the Lease; `Ok(true)` when we hold it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Utc::now();
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: next_spec(None, &self.identity, now, self.lease_duration),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let Some(spec) = next_spec(
                    lease.spec.as_ref(),
                    &self.identity,
                    now,
                    self.lease_duration,
                ) else {
                    return Ok(false);
                };
                lease.spec = Some(spec);
                // `replace` carries the resourceVersion we read: a concurrent
                // writer makes this a 409 and we simply did not win.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads"),
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "leader election"),
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// Keeps renewing; returns when leadership is lost (another holder, or no
    /// successful renewal for `lease_duration`).
    pub async fn hold(&self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.name, "lost the lease to another replica");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "renewing the lease");
                    if last_renewed.elapsed() >= self.lease_duration {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up (best effort) so a standby takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(&self.identity)
        {
            spec.holder_identity = None;
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const D: Duration = Duration::from_secs(15);

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_missing_or_free_lease_is_taken() {
        let spec = next_spec(None, "a", now(), D).unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        let free = LeaseSpec {
            holder_identity: None,
            lease_transitions: Some(3),
            ..spec
        };
        assert_eq!(
            next_spec(Some(&free), "b", now(), D)
                .unwrap()
                .lease_transitions,
            Some(4)
        );
    }

    #[test]
    fn a_live_lease_of_another_replica_is_respected_until_it_expires() {
        let held = next_spec(None, "a", now(), D).unwrap();
        assert_eq!(
            next_spec(Some(&held), "b", now() + TimeDelta::seconds(14), D),
            None
        );
        let taken = next_spec(Some(&held), "b", now() + TimeDelta::seconds(16), D).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn our_own_lease_is_renewed_without_a_transition() {
        let held = next_spec(None, "a", now(), D).unwrap();
        let later = now() + TimeDelta::seconds(5);
        let renewed = next_spec(Some(&held), "a", later, D).unwrap();
        assert_eq!(renewed.renew_time.as_ref().map(from_micro), Some(later));
        assert_eq!(renewed.acquire_time, held.acquire_time);
        assert_eq!(renewed.lease_transitions, Some(0));
    }
}
