//! Running the operator: probes and metrics, leader election, the controllers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend_controller;
use crate::controller::{self, Context};
use crate::http::{self, Health};
use crate::leader::LeaderElector;
use crate::metrics::Metrics;
use crate::secret::ValueHasher;

/// Where the Lease for leader election lives.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal (a standby takes over after it).
    pub lease_duration: Duration,
    /// How often the leader renews and a standby tries to take the Lease.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The Lease `namespace/name` for replica `identity`, with the default
    /// timing (15 s lease, renewed every 2 s).
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`; `None` to serve nothing.
    pub http_addr: Option<SocketAddr>,
    /// Leader election; `None` runs unconditionally (one replica).
    pub leader_election: Option<LeaseConfig>,
    /// Key of the Secret value hash; `None` keys it by the token id.
    pub hash_key: Option<Vec<u8>>,
    /// How long a deletion waits for a backend that is down.
    pub cleanup_timeout: Duration,
    /// How many `ApiToken`s are reconciled at once (per watched namespace).
    pub concurrency: u16,
    /// How often each `ApiToken` is checked against its backend when nothing
    /// changed in Kubernetes.
    pub resync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespaces: Vec::new(),
            http_addr: None,
            leader_election: None,
            hash_key: None,
            cleanup_timeout: Duration::from_secs(15 * 60),
            concurrency: controller::DEFAULT_CONCURRENCY,
            resync_period: controller::DEFAULT_RESYNC_PERIOD,
        }
    }
}

/// Runs the `ApiToken` controllers (one per watched namespace, or one for all)
/// until a shutdown signal.
pub async fn run_controllers(ctx: Arc<Context>, namespaces: &[String]) {
    if namespaces.is_empty() {
        futures::join!(
            controller::run(ctx.clone(), None),
            backend_controller::run(ctx, None, true)
        );
    } else {
        let tokens = futures::future::join_all(
            namespaces
                .iter()
                .map(|ns| controller::run(ctx.clone(), Some(ns.as_str()))),
        );
        let backends = futures::future::join_all(namespaces.iter().enumerate().map(|(i, ns)| {
            // One ClusterTokenBackend loop is enough.
            backend_controller::run(ctx.clone(), Some(ns.as_str()), i == 0)
        }));
        futures::join!(tokens, backends);
    }
}

/// Runs the operator until a shutdown signal (Ok) or lost leadership (Err: the
/// process should exit and be restarted as a standby).
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    run_with_metrics(client, config, Arc::new(Metrics::default())).await
}

/// [`run`], counting into `metrics` (tests read them to see which replica works).
pub async fn run_with_metrics(
    client: kube::Client,
    config: Config,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::default());
    if let Some(addr) = config.http_addr {
        let router = http::router(metrics.clone(), health.clone());
        tokio::spawn(async move {
            if let Err(e) = http::serve(addr, router).await {
                tracing::error!(error = %e, "the probe and metrics server stopped");
            }
        });
    }
    client.apiserver_version().await?;
    health.ready.store(true, Ordering::Relaxed);

    let elector = config.leader_election.as_ref().map(|l| {
        let mut e = LeaderElector::new(client.clone(), &l.namespace, &l.name, &l.identity);
        e.lease_duration = l.lease_duration;
        e.retry_period = l.retry_period;
        e
    });
    if let Some(e) = &elector {
        e.acquire().await;
    }
    let mut ctx = Context::new(
        client,
        ValueHasher::new(config.hash_key.clone()),
        metrics,
        config.cleanup_timeout,
    );
    ctx.concurrency = config.concurrency.max(1);
    ctx.resync_period = config.resync_period.max(Duration::from_secs(1));
    let ctx = Arc::new(ctx);
    match &elector {
        None => run_controllers(ctx, &config.namespaces).await,
        Some(e) => {
            tokio::select! {
                _ = run_controllers(ctx, &config.namespaces) => e.release().await,
                _ = e.hold() => anyhow::bail!("lost leadership; exiting so a standby can take over"),
            }
        }
    }
    tracing::info!("shut down");
    Ok(())
}
