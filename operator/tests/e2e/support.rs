//! The end-to-end harness: a Kubernetes API (kube-memserver, or a real cluster
//! when `TOKENOPS_E2E_KUBECONFIG` is set), a real tokenops-server on SQLite, and
//! the controller running in this process.
//!
//! # Real-cluster mode
//!
//! With `TOKENOPS_E2E_KUBECONFIG=<path>` every test uses that kubeconfig instead
//! of a memserver: the CRDs under `crds/` are applied (server-side apply), each
//! test gets its own namespace (deleted at the end) and the controller watches
//! only that namespace. The backend stays a local `TestServer`, reachable
//! because the operator runs in this process. Tests that need memserver
//! internals (fault injection, the request log) print why they skip.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_memserver::MemServer;
use serde_json::json;
use tokenops_client::secrecy::SecretString;
use tokenops_client::{Client, Token, TokenStatus};
use tokenops_operator::controller::Context;
use tokenops_operator::crd::{self, ApiToken, ConditionStatus};
use tokenops_operator::error::Backoff;
use tokenops_operator::metrics::Metrics;
use tokenops_operator::secret::ValueHasher;
use tokenops_testkit::TestServer;

/// The operator's hash key in every test (replicas must share it).
pub const HASH_KEY: &[u8] = b"test-key";

use crate::real_cluster;

/// Stops a task when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Deletes a real cluster's test objects when the test ends: its `ApiToken`s
/// (their finalizers released, as the controller is gone by then), then the
/// namespace, waiting until both are gone so that no later operator finds them.
struct NamespaceGuard {
    kubeconfig: PathBuf,
    ns: String,
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        let (path, ns) = (self.kubeconfig.clone(), self.ns.clone());
        // A fresh runtime on its own thread: Drop cannot await, and the test's
        // runtime is busy running this drop.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                delete_test_namespace(real_cluster::client(&path).await, ns).await
            });
        });
        if cleanup.join().is_err() {
            eprintln!("cleaning up the test namespace failed");
        }
    }
}

/// Deletes every `ApiToken` in `ns`, releases their finalizers, waits until
/// they are gone, then deletes `ns` and waits until it is gone.
async fn delete_test_namespace(client: kube::Client, ns: String) {
    real_cluster::delete_api_tokens(&client, &ns, true, Duration::from_secs(60)).await;
    real_cluster::delete_namespace(&client, &ns, Duration::from_secs(120)).await;
}

/// How a test's environment starts.
pub struct Options {
    pub cleanup_timeout: Duration,
    /// Start the controller at once (off: the test starts it, e.g. several replicas).
    pub controller: bool,
    /// Back-off of failing `ApiToken`s (the operator's default unless set).
    pub backoff: Backoff,
    /// The controller's resync period (the operator's default unless set).
    pub resync_period: Duration,
    /// How late kube-memserver delivers watch events (none unless set; a real
    /// cluster has its own).
    pub watch_latency: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cleanup_timeout: Duration::from_secs(900),
            controller: true,
            backoff: Backoff::default(),
            resync_period: tokenops_operator::controller::DEFAULT_RESYNC_PERIOD,
            watch_latency: Duration::ZERO,
        }
    }
}

pub struct Env {
    mem: Option<MemServer>,
    pub client: kube::Client,
    /// The namespace of the test's objects (`team-a` on a memserver, unique on a real cluster).
    pub ns: String,
    backend: Option<TestServer>,
    pub admin: Client,
    /// The metrics of the current controller (replaced by a restart).
    pub metrics: Arc<Metrics>,
    controller: Option<AbortOnDrop>,
    cleanup_timeout: Duration,
    backoff: Backoff,
    resync_period: Duration,
    _namespace: Option<NamespaceGuard>,
}

pub async fn env() -> Env {
    env_with(Options::default()).await
}

pub async fn env_with(options: Options) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (mem, client, ns, guard) = match real_cluster::kubeconfig() {
        None => {
            let kube = MemServer::builder()
                .watch_latency(options.watch_latency)
                .start()
                .await
                .expect("kube-memserver starts");
            for (_, def) in crd::all() {
                kube.install_crd(serde_json::to_value(def).unwrap())
                    .unwrap();
            }
            let client = kube.client();
            (Some(kube), client, "team-a".to_string(), None)
        }
        Some(path) => {
            let client = real_cluster::client(&path).await;
            real_cluster::install_crds(&client).await;
            let ns = unique_namespace();
            Api::<Namespace>::all(client.clone())
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
                )
                .await
                .expect("creating the test namespace");
            let guard = NamespaceGuard {
                kubeconfig: path,
                ns: ns.clone(),
            };
            (None, client, ns, Some(guard))
        }
    };
    let backend = TestServer::sqlite().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "tokenops-credentials"},
                "stringData": {"token": backend.owner_token()},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let backends: Api<crd::TokenBackend> = Api::namespaced(client.clone(), &ns);
    backends
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "main"},
                "spec": {"url": backend.url(), "credentialsSecretRef": {"name": "tokenops-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let admin = Client::builder(backend.url())
        .token(SecretString::from(backend.owner_token()))
        .build()
        .unwrap();
    let mut env = Env {
        mem,
        client,
        ns,
        backend: Some(backend),
        admin,
        metrics: Arc::new(Metrics::default()),
        controller: None,
        cleanup_timeout: options.cleanup_timeout,
        backoff: options.backoff,
        resync_period: options.resync_period,
        _namespace: guard,
    };
    if options.controller {
        env.start_controller();
    }
    env
}

fn unique_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("tokenops-e2e-{}-{nanos:x}", std::process::id())
}

impl Env {
    /// The memserver, or `None` (with the reason printed) on a real cluster.
    pub fn memserver(&self, needed_for: &str) -> Option<&MemServer> {
        if self.mem.is_none() {
            eprintln!("skipped on a real cluster: needs kube-memserver for {needed_for}");
        }
        self.mem.as_ref()
    }

    pub fn backend(&self) -> &TestServer {
        self.backend.as_ref().expect("the backend is running")
    }

    /// Stops the backend for good, keeping its database.
    pub async fn stop_backend(&mut self) {
        if let Some(b) = self.backend.take() {
            let _db = b.stop().await;
        }
    }

    /// A context like the operator's, with a fresh metrics registry.
    pub fn context(&mut self) -> Arc<Context> {
        self.metrics = Arc::new(Metrics::default());
        let mut ctx = Context::new(
            self.client.clone(),
            ValueHasher::new(Some(HASH_KEY.to_vec())),
            self.metrics.clone(),
            self.cleanup_timeout,
        );
        ctx.backoff = self.backoff;
        ctx.resync_period = self.resync_period;
        Arc::new(ctx)
    }

    /// Starts a controller (a fresh process, as far as the operator can tell).
    pub fn start_controller(&mut self) {
        let ctx = self.context();
        let namespaces = if self.mem.is_some() {
            Vec::new()
        } else {
            vec![self.ns.clone()]
        };
        self.controller = Some(AbortOnDrop(tokio::spawn(async move {
            tokenops_operator::run::run_controllers(ctx, &namespaces).await
        })));
    }

    /// Kills the controller wherever it is, as a crash would.
    pub async fn kill_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            c.0.abort();
            let _ = (&mut c.0).await;
        }
    }

    pub fn tokens(&self) -> Api<ApiToken> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates an `ApiToken` on backend `main` (role `read-only` unless given).
    pub async fn create(&self, name: &str, spec: serde_json::Value) -> ApiToken {
        let mut spec = spec;
        if spec.get("backendRef").is_none() {
            spec["backendRef"] = json!({"name": "main"});
        }
        // The backend requires a role or a scope.
        if spec.get("role").is_none() {
            spec["role"] = json!("read-only");
        }
        self.tokens()
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
                    "metadata": {"name": name},
                    "spec": spec,
                }))
                .unwrap(),
            )
            .await
            .unwrap()
    }

    /// Merges `patch` into the `ApiToken`.
    pub async fn patch(&self, name: &str, patch: serde_json::Value) {
        self.tokens()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    /// Wakes the controller for `name` without changing what it asks for.
    pub async fn touch(&self, name: &str) {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_string();
        self.patch(
            name,
            json!({"metadata": {"annotations": {"e2e/touched": n}}}),
        )
        .await;
    }

    pub async fn ready(&self, name: &str) -> ApiToken {
        eventually(20, &format!("{name} to be Ready"), || async {
            self.tokens().get_opt(name).await.unwrap().filter(is_ready)
        })
        .await
    }

    pub async fn secret_value(&self, name: &str) -> String {
        let s = self.secrets().get(name).await.unwrap();
        String::from_utf8(s.data.unwrap()["token"].0.clone()).unwrap()
    }

    pub async fn verifies(&self, value: &str) -> bool {
        self.admin
            .verify(SecretString::from(value.to_string()))
            .send()
            .await
            .unwrap()
            .valid
    }

    pub async fn event_reasons(&self) -> Vec<String> {
        Api::<K8sEvent>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    /// Every token on the backend that carries the `ApiToken`'s UID label, any status.
    pub async fn backend_tokens(&self, tok: &ApiToken) -> Vec<Token> {
        self.admin
            .list_tokens()
            .selector(format!("tokenops.dev/apitoken-uid={}", tok.uid().unwrap()))
            .all_statuses()
            .all()
            .await
            .unwrap()
    }

    /// The active ones of [`Env::backend_tokens`].
    pub async fn active_tokens(&self, tok: &ApiToken) -> Vec<Token> {
        self.backend_tokens(tok)
            .await
            .into_iter()
            .filter(|t| t.status == TokenStatus::Active)
            .collect()
    }
}

/// Polls until `check` returns Some, failing after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn is_ready(t: &ApiToken) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

/// The sum of the samples of metric `name` whose labels contain every `label`.
pub fn metric(metrics: &Metrics, name: &str, labels: &[&str]) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A TCP proxy in front of the backend that can be taken down (connections
/// refused and open ones cut) and brought back on the same address.
pub struct Proxy {
    pub url: String,
    up: tokio::sync::watch::Sender<bool>,
    _task: AbortOnDrop,
}

impl Proxy {
    pub async fn start(target_url: &str) -> Proxy {
        let target = target_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (up, _) = tokio::sync::watch::channel(true);
        let state = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut down = state.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy {
            url,
            up,
            _task: AbortOnDrop(task),
        }
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Env {
    /// Waits until the controller has finished every reconcile that is due:
    /// its count of finished reconciles stays the same over half a second
    /// (each reconcile the operator's own writes wake starts within
    /// milliseconds of the write).
    pub async fn settled(&self) -> f64 {
        let count = || {
            metric(
                &self.metrics,
                "tokenops_operator_reconcile_duration_seconds_count",
                &[],
            )
        };
        let mut last = (count(), tokio::time::Instant::now());
        eventually(20, "the controller to settle", || {
            let now = count();
            let settled = if now == last.0 {
                last.1.elapsed() >= Duration::from_millis(500)
            } else {
                last = (now, tokio::time::Instant::now());
                false
            };
            async move { settled.then_some(now) }
        })
        .await
    }

    /// Requests the backend has served, by `METHOD route`, from its `/metrics`.
    pub async fn backend_requests(&self) -> std::collections::BTreeMap<String, f64> {
        let text = reqwest::get(format!("{}/metrics", self.backend().url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut by = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("tokenops_http_requests_total{") else {
                continue;
            };
            let label = |name: &str| {
                let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
                Some(rest[start..].split('"').next()?.to_string())
            };
            let (Some(method), Some(route)) = (label("method"), label("route")) else {
                continue;
            };
            let n: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *by.entry(format!("{method} {route}")).or_default() += n;
        }
        by
    }
}
