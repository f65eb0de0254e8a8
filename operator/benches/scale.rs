//! `cargo bench -p tokenops-operator --bench scale` — the operator figures of
//! the README's Performance section, measured in one run:
//!
//! 1. backend alone: 1,000 creates through `tokenops-client`, as many in flight
//!    at once as the operator's controller runs reconciles;
//! 2. 1,000 `ApiToken`s created at once until all are Ready with their Secret,
//!    and the ratio to (1); the operator's Kubernetes requests (its own count,
//!    `tokenops_operator_kube_requests_total`, without watches and lists) and
//!    reconciles per new `ApiToken`; and the time a plain client takes to send
//!    the same Kubernetes writes on a fresh kube-memserver (no operator, no
//!    backend);
//! 3. a full resync of those 1,000 in steady state (the operator restarted: it
//!    lists and reconciles everything): writes to the backend and to Kubernetes;
//! 4. rotation latency: 100 short-lived tokens, from each one's
//!    `status.renewalTime` to the backend's audit record of its regeneration;
//! 5. the operator's resident memory with 10,000 `ApiToken`s Ready.
//!
//! Three processes: this one (the load generator and kube-memserver, on its
//! own thread), the backend (this same executable re-run as a
//! `tokenops-server` on a fresh SQLite file: the release-built server library,
//! with its CPU apart from ours) and the operator (the release
//! `tokenops-operator` binary, with a kubeconfig pointing at kube-memserver).
//!
//! With `TOKENOPS_E2E_KUBECONFIG=<kubeconfig>` it measures (1) and (2) against
//! that cluster instead ([`cluster`]): the real-cluster figures of the README.
//!
//! `BENCH_TOKENS` (default 1000), `BENCH_ROTATIONS` (100), `BENCH_MEMORY_TOKENS`
//! (10000), `BENCH_REPEAT` (3, for the backend baseline) and `BENCH_CONCURRENCY`
//! (the operator's default `--concurrency`) scale it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use tokenops_testkit::procfs::{cpu_seconds, free_port, memory_mb};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use kube_memserver::MemServer;
use serde_json::{Value, json};
use tokenops_client::secrecy::SecretString;
use tokenops_client::{CreateTokenRequest, Labels, Resources};
use tokenops_operator::crd::{self, ApiToken};

/// Set in the environment of the re-run that acts as the backend.
const BACKEND_ROLE: &str = "TOKENOPS_BENCH_BACKEND_DB";
/// Reconciles the operator runs at once (its default `--concurrency`, or
/// `BENCH_CONCURRENCY`); the backend baseline keeps as many creates in flight.
fn concurrency() -> usize {
    env_num(
        "BENCH_CONCURRENCY",
        tokenops_operator::controller::DEFAULT_CONCURRENCY.into(),
    )
}
/// `ApiToken`s created through the Kubernetes API at once.
const KUBE_CLIENTS: usize = 64;
const NS: &str = "bench";
const ROTATION_NS: &str = "bench-rotation";
const POLL: Duration = Duration::from_millis(50);

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(database) = std::env::var(BACKEND_ROLE) {
        return backend_main(&database);
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "scale: a benchmark; run it with `cargo bench -p tokenops-operator --bench scale`"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

#[path = "scale/cluster.rs"]
mod cluster;
#[path = "../tests/e2e/real_cluster.rs"]
mod real_cluster;

// ---- the backend process ---------------------------------------------------

/// Runs a tokenops-server on `database` (127.0.0.1, any port); prints its URL
/// and an owner token on stdout, and stops when stdin closes.
fn backend_main(database: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let policy = tokenops_server::Policy::default();
        let owner = tokenops_server::bootstrap(
            database,
            &policy,
            &tokenops_server::BootstrapOptions {
                project: "default".into(),
                name: "bench-owner".into(),
                lifetime: None,
            },
        )
        .await
        .expect("bootstrap");
        let server = tokenops_server::Server::start(tokenops_server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: database.into(),
            policy,
        })
        .await
        .expect("start tokenops-server");
        println!("{}\n{owner}", server.url());
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
            .await
            .unwrap();
        server.stop().await.expect("stop");
    });
}

/// The backend, as seen from the bench.
struct BackendProcess {
    child: Child,
    _stdin: ChildStdin,
    url: String,
    owner: String,
}

impl BackendProcess {
    fn start(dir: &Path, name: &str) -> BackendProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(BACKEND_ROLE, dir.join(format!("{name}.db")))
            .env("TOKENOPS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the backend process");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines.next().unwrap().unwrap();
        let owner = lines.next().unwrap().unwrap();
        BackendProcess {
            child,
            _stdin: stdin,
            url,
            owner,
        }
    }

    fn client(&self) -> tokenops_client::Client {
        tokenops_client::Client::builder(&self.url)
            .token(SecretString::from(self.owner.clone()))
            .build()
            .unwrap()
    }

    /// Requests the backend has served that change state (anything but GET),
    /// from its `/metrics`.
    async fn write_requests(&self) -> u64 {
        let text = http_get(&self.url, "/metrics").await;
        metric_sum(&text, "tokenops_http_requests_total", |labels| {
            !labels.contains("method=\"GET\"")
        })
    }

    async fn read_requests(&self) -> u64 {
        let text = http_get(&self.url, "/metrics").await;
        metric_sum(&text, "tokenops_http_requests_total", |labels| {
            labels.contains("method=\"GET\"") && !labels.contains("/metrics")
        })
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the operator process --------------------------------------------------

struct OperatorProcess {
    child: Child,
    metrics_url: String,
}

impl OperatorProcess {
    fn start(kubeconfig: &Path, log: &Path) -> OperatorProcess {
        OperatorProcess::watching(kubeconfig, log, None)
    }

    /// The operator, watching only `namespace` when given (`WATCH_NAMESPACES`).
    fn watching(kubeconfig: &Path, log: &Path, namespace: Option<&str>) -> OperatorProcess {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokenops-operator"));
        if let Some(ns) = namespace {
            command.env("WATCH_NAMESPACES", ns);
        }
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env("CONCURRENCY", concurrency().to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tokenops-operator");
        OperatorProcess {
            child,
            metrics_url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reconciles of `ApiToken`s finished so far.
    async fn reconciles_done(&self) -> u64 {
        let text = try_http_get(&self.metrics_url, "/metrics")
            .await
            .unwrap_or_default();
        metric_sum(
            &text,
            "tokenops_operator_reconcile_duration_seconds_count",
            |_| true,
        )
    }

    /// The operator's `/metrics` text.
    async fn metrics(&self) -> String {
        try_http_get(&self.metrics_url, "/metrics")
            .await
            .unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `stat` file of kube-memserver's thread in this process.
fn memserver_thread_stat(kube: &MemServer) -> String {
    let want = format!("kube-memserver-{}", kube.addr().port());
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // Thread names are cut to 15 bytes.
        if want.starts_with(comm.trim()) && !comm.trim().is_empty() {
            return task.path().join("stat").display().to_string();
        }
    }
    String::new()
}

/// CPU seconds used so far by: the operator, the backend, kube-memserver, the rest of this process.
struct Cpu {
    operator: f64,
    backend: f64,
    memserver: f64,
    bench: f64,
}

impl Cpu {
    fn now(operator: u32, backend: u32, memserver: &str) -> Cpu {
        let memserver = cpu_seconds(memserver);
        Cpu {
            operator: cpu_seconds(&format!("/proc/{operator}/stat")),
            backend: cpu_seconds(&format!("/proc/{backend}/stat")),
            memserver,
            bench: cpu_seconds("/proc/self/stat") - memserver,
        }
    }

    fn since(&self, before: &Cpu) -> String {
        format!(
            "CPU s: operator {:.2}, backend {:.2}, kube-memserver {:.2}, bench client {:.2}",
            self.operator - before.operator,
            self.backend - before.backend,
            self.memserver - before.memserver,
            self.bench - before.bench
        )
    }
}

// ---- plain HTTP for /metrics ------------------------------------------------

async fn try_http_get(base: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.strip_prefix("http://")?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

async fn http_get(base: &str, path: &str) -> String {
    try_http_get(base, path)
        .await
        .unwrap_or_else(|| panic!("GET {base}{path} failed"))
}

/// Requests by verb and resource, e.g. `Get apitokens: 2000`.
fn request_breakdown(requests: &[kube_memserver::RequestRecord]) -> String {
    let mut by = BTreeMap::<String, usize>::new();
    for r in requests {
        let what = match &r.subresource {
            Some(sub) => format!("{:?} {}/{sub}", r.verb, r.resource),
            None => format!("{:?} {}", r.verb, r.resource),
        };
        *by.entry(what).or_default() += 1;
    }
    let total: usize = by.values().sum();
    let parts: Vec<String> = by.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// Backend requests between two `/metrics` texts, by method and route, with
/// the server time they took.
fn backend_breakdown(before: &str, after: &str) -> String {
    let series = |text: &str, name: &str| -> BTreeMap<String, f64> {
        text.lines()
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let rest = series.strip_prefix(name)?.strip_prefix('{')?;
                Some((rest.trim_end_matches('}').to_string(), value.parse().ok()?))
            })
            .collect()
    };
    let count = |t| series(t, "tokenops_http_requests_total");
    let secs = |t| series(t, "tokenops_http_request_duration_seconds_sum");
    let (c0, c1, s0, s1) = (count(before), count(after), secs(before), secs(after));
    let mut parts = Vec::new();
    for (labels, n) in &c1 {
        let n = n - c0.get(labels).copied().unwrap_or(0.0);
        if n > 0.0 && !labels.contains("/metrics") {
            parts.push(format!("{labels}: {n}"));
        }
    }
    for (labels, t) in &s1 {
        let t = t - s0.get(labels).copied().unwrap_or(0.0);
        if t > 0.0 && !labels.contains("/metrics") {
            parts.push(format!("{labels}: {t:.2} s"));
        }
    }
    parts.join("; ")
}

/// Sum of the samples of `name` whose label set passes `keep`.
fn metric_sum(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (series, ""),
            };
            (metric == name && keep(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum::<f64>() as u64
}

/// The operator's own count of its Kubernetes requests
/// (`tokenops_operator_kube_requests_total`) by `verb resource`, without
/// watches and lists (they serve every `ApiToken` at once).
fn kube_requests_by(text: &str) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(labels) = series.strip_prefix("tokenops_operator_kube_requests_total{") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            Some(labels[start..].split('"').next()?.to_string())
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
            continue;
        };
        if verb == "watch" || verb == "list" {
            continue;
        }
        let n = value.parse::<f64>().unwrap_or(0.0) as u64;
        *by.entry(format!("{verb} {resource}")).or_default() += n;
    }
    by
}

/// `after - before`, per key, without the keys that did not grow.
fn grown(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0).min(*v)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// `ApiToken`s reconciled (started) so far, from the operator's metrics.
fn reconciles_started(text: &str) -> u64 {
    metric_sum(text, "tokenops_operator_reconciles_total", |l| {
        l.contains("kind=\"ApiToken\"")
    })
}

// ---- Kubernetes side ---------------------------------------------------------

fn is_ready(obj: &Value) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn name_of(obj: &Value) -> (&str, &str) {
    (
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// How many `ApiToken`s in `ns` are Ready (read from the server's store
/// directly, so the polling adds no requests).
fn ready(kube: &MemServer, ns: &str) -> usize {
    let mut ready = 0;
    kube.inspect("tokenops.dev", "apitokens", |t| {
        if name_of(t).0 == ns && is_ready(t) {
            ready += 1;
        }
    });
    ready
}

/// Whether all `n` `ApiToken`s in `ns` are Ready and have their Secret.
fn all_ready_with_secrets(kube: &MemServer, ns: &str, n: usize) -> bool {
    // The cheap count first: it is what changes while we wait.
    if ready(kube, ns) < n {
        return false;
    }
    let mut secrets = std::collections::HashSet::new();
    kube.inspect("", "secrets", |s| {
        if name_of(s).0 == ns {
            secrets.insert(name_of(s).1.to_string());
        }
    });
    let mut with_secret = 0;
    kube.inspect("tokenops.dev", "apitokens", |t| {
        if name_of(t).0 == ns && is_ready(t) && secrets.contains(name_of(t).1) {
            with_secret += 1;
        }
    });
    with_secret == n
}

/// Polls `check` every [`POLL`] until it holds; panics after `limit`.
async fn wait_for(what: &str, limit: Duration, check: impl AsyncFnMut() -> bool) {
    wait_every(POLL, what, limit, check).await
}

/// Polls `check` every `every` until it holds; panics after `limit`.
async fn wait_every(
    every: Duration,
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

async fn setup_backend_objects(client: kube::Client, ns: &str, backend: &BackendProcess) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "tokenops-credentials"},
                "stringData": {"token": backend.owner},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let backends: Api<crd::TokenBackend> = Api::namespaced(client, ns);
    backends
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "tokenops.dev/v1alpha1", "kind": "TokenBackend",
                "metadata": {"name": "main"},
                "spec": {"url": backend.url, "credentialsSecretRef": {"name": "tokenops-credentials"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn api_token(name: &str, lifetime: &str, renew_before: Option<&str>) -> ApiToken {
    let mut spec = json!({
        "backendRef": {"name": "main"},
        "role": "read-only",
        "lifetime": lifetime,
    });
    if let Some(r) = renew_before {
        spec["renewBefore"] = json!(r);
    }
    serde_json::from_value(json!({
        "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// Creates `names` as `ApiToken`s in `ns`, [`KUBE_CLIENTS`] requests at a time.
async fn create_api_tokens(
    client: kube::Client,
    ns: &str,
    names: impl Iterator<Item = String>,
    lifetime: &str,
    renew_before: Option<&str>,
) {
    let api: Api<ApiToken> = Api::namespaced(client, ns);
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            let tok = api_token(&name, lifetime, renew_before);
            async move { api.create(&PostParams::default(), &tok).await.unwrap() }
        })
        .buffer_unordered(KUBE_CLIENTS)
        .for_each(|_| async {})
        .await;
}

// ---- measurements ------------------------------------------------------------

/// Creates `n` tokens with `concurrency` in flight, shaped as the operator's.
async fn backend_creates(backend: &BackendProcess, n: usize, concurrency: usize) -> Duration {
    let client = backend.client();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move {
                let mut labels = Labels::new();
                labels.insert("managed-by".into(), "tokenops-operator".into());
                labels.insert("tokenops.dev/apitoken-uid".into(), uuid_like(i).to_string());
                labels.insert("tokenops.dev/namespace".into(), NS.into());
                labels.insert("tokenops.dev/name".into(), format!("t-{i}"));
                let request = CreateTokenRequest {
                    name: format!("{NS}/t-{i}"),
                    role: Some("read-only".into()),
                    resources: Some(Resources::all()),
                    lifetime: Some("720h".into()),
                    labels: Some(labels),
                    ..Default::default()
                };
                client.create_token_from(request).await.unwrap();
            }
        })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
    start.elapsed()
}

/// A kube-memserver with the CRDs installed, keeping the whole request history.
async fn fresh_memserver() -> MemServer {
    let kube = MemServer::builder()
        .record_bodies(false)
        .history_limit(1_000_000)
        .start()
        .await
        .unwrap();
    for (_, def) in crd::all() {
        kube.install_crd(serde_json::to_value(def).unwrap())
            .unwrap();
    }
    kube
}

/// Sends, from a plain client, the Kubernetes writes the operator sent for
/// `n` new `ApiToken`s (`requests`: per kind, as counted), [`concurrency`]
/// `ApiToken`s at a time, each one's writes in order: the finalizer patch, the
/// Secret and the status applies, the Event. Runs on a fresh kube-memserver
/// whose `ApiToken`s exist beforehand (not timed).
async fn plain_client_writes(n: usize, requests: &BTreeMap<String, u64>) -> Duration {
    let kube = fresh_memserver().await;
    plain_client_writes_to(kube.client(), NS, n, requests).await
}

/// [`plain_client_writes`] against any API server: creates `n` `ApiToken`s in
/// `ns` (not timed), then times their writes.
async fn plain_client_writes_to(
    client: kube::Client,
    ns: &str,
    n: usize,
    requests: &BTreeMap<String, u64>,
) -> Duration {
    create_api_tokens(
        client.clone(),
        ns,
        (0..n).map(|i| format!("t-{i}")),
        "720h",
        None,
    )
    .await;
    let each = |kind: &str| requests.get(kind).copied().unwrap_or(0) as f64 / n as f64 >= 0.5;
    let (finalizer, secret, status, event) = (
        each("patch apitokens"),
        each("apply secrets"),
        each("apply apitokens/status"),
        each("create events"),
    );
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let ns = ns.to_string();
            async move {
                let ns = ns.as_str();
                let name = format!("t-{i}");
                let tokens: Api<ApiToken> = Api::namespaced(client.clone(), ns);
                let apply = kube::api::PatchParams::apply("tokenops-operator").force();
                if finalizer {
                    let patch: json_patch::Patch = serde_json::from_value(json!([
                        {"op": "test", "path": "/metadata/finalizers", "value": null},
                        {"op": "add", "path": "/metadata/finalizers", "value": ["tokenops.dev/token-cleanup"]},
                    ]))
                    .unwrap();
                    tokens
                        .patch(&name, &Default::default(), &kube::api::Patch::Json::<()>(patch))
                        .await
                        .unwrap();
                }
                if secret {
                    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
                    let body = json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "tokenops-operator"}},
                        "stringData": {"token": format!("tko_plain_{i:032}")},
                    });
                    secrets
                        .patch(&name, &apply, &kube::api::Patch::Apply(&body))
                        .await
                        .unwrap();
                }
                if status {
                    let body = json!({
                        "apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken",
                        "status": {"tokenId": format!("tok-{i}"), "secretName": name},
                    });
                    tokens
                        .patch_status(&name, &apply, &kube::api::Patch::Apply(&body))
                        .await
                        .unwrap();
                }
                if event {
                    let events: Api<k8s_openapi::api::events::v1::Event> =
                        Api::namespaced(client.clone(), ns);
                    let body: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
                        "metadata": {"generateName": format!("{name}.")},
                        "eventTime": Utc::now(),
                        "reason": "Issued", "action": "Issued", "type": "Normal",
                        "note": "plain client", "reportingController": "tokenops-operator",
                        "reportingInstance": "bench",
                        "regarding": {"apiVersion": "tokenops.dev/v1alpha1", "kind": "ApiToken", "namespace": ns, "name": name},
                    }))
                    .unwrap();
                    events.create(&PostParams::default(), &body).await.unwrap();
                }
            }
        })
        .buffer_unordered(concurrency())
        .for_each(|_| async {})
        .await;
    start.elapsed()
}

/// The backend alone: `tokens` creates on a fresh backend, `repeat` times;
/// the median time in seconds.
async fn backend_baseline(dir: &Path, tokens: usize, repeat: usize) -> f64 {
    let mut runs = Vec::new();
    for i in 0..repeat {
        let backend = BackendProcess::start(dir, &format!("baseline-{i}"));
        let cpu = cpu_seconds(&format!("/proc/{}/stat", backend.child.id()));
        let took = backend_creates(&backend, tokens, concurrency()).await;
        println!(
            "backend alone, run {}: {tokens} creates in {:.2} s; backend CPU {:.2} s",
            i + 1,
            took.as_secs_f64(),
            cpu_seconds(&format!("/proc/{}/stat", backend.child.id())) - cpu
        );
        runs.push(took.as_secs_f64());
    }
    median(runs)
}

fn uuid_like(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The operator's Kubernetes requests and reconciles for a burst of new
/// `ApiToken`s, from its own metrics before and after (watches and lists are
/// not counted).
struct Budget {
    /// Requests by verb and resource.
    requests: BTreeMap<String, u64>,
    per_token: f64,
    reconciles_per_token: f64,
}

impl Budget {
    fn between(before: &str, after: &str, tokens: usize) -> Budget {
        let requests = grown(&kube_requests_by(after), &kube_requests_by(before));
        let budget = Budget {
            per_token: requests.values().sum::<u64>() as f64 / tokens as f64,
            reconciles_per_token: reconciles_started(after)
                .saturating_sub(reconciles_started(before))
                as f64
                / tokens as f64,
            requests,
        };
        println!(
            "  the operator's own count: {:.2} Kubernetes requests per new ApiToken ({}), \
             not counting watches and lists; {:.2} reconciles per new ApiToken",
            budget.per_token,
            budget.breakdown(tokens),
            budget.reconciles_per_token
        );
        budget
    }

    fn breakdown(&self, tokens: usize) -> String {
        self.requests
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / tokens as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The table's rows, against the targets (≤ 5 requests, ≤ 2 reconciles).
    fn rows(&self, tokens: usize) -> [Row; 2] {
        [
            row(
                format!("operator: Kubernetes requests per new ApiToken ({tokens} at once)"),
                format!("{:.2} ({})", self.per_token, self.breakdown(tokens)),
                "≤ 5",
                Some(self.per_token <= 5.0),
            ),
            row(
                format!("operator: reconciles per new ApiToken ({tokens} at once)"),
                format!("{:.2}", self.reconciles_per_token),
                "≤ 2",
                Some(self.reconciles_per_token <= 2.0),
            ),
        ]
    }
}

struct Row {
    measure: String,
    result: String,
    target: String,
    met: Option<bool>,
}

fn row(
    measure: impl Into<String>,
    result: impl Into<String>,
    target: &str,
    met: Option<bool>,
) -> Row {
    Row {
        measure: measure.into(),
        result: result.into(),
        target: target.into(),
        met,
    }
}

async fn run() {
    if let Some(kubeconfig) = cluster::kubeconfig() {
        return cluster::run(&kubeconfig).await;
    }
    let tokens = env_num("BENCH_TOKENS", 1000);
    let rotations = env_num("BENCH_ROTATIONS", 100);
    let memory_tokens = env_num("BENCH_MEMORY_TOKENS", 10_000).max(tokens);
    let repeat = env_num("BENCH_REPEAT", 3).max(1);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "tokenops-operator benchmark: {tokens} ApiTokens, {rotations} rotations, {memory_tokens} for memory; \
         kube-memserver in this process, tokenops-server (SQLite) and tokenops-operator in their own; \
         {} reconciles / creates in flight; 2 cores shared by all\n",
        concurrency()
    );
    let mut rows = Vec::new();

    // --- 1. the backend alone ---
    let baseline = backend_baseline(dir.path(), tokens, repeat).await;
    rows.push(row(
        format!(
            "backend alone: {tokens} creates ({} in flight), median of {repeat}",
            concurrency()
        ),
        format!("{baseline:.2} s ({:.0}/s)", tokens as f64 / baseline),
        "—",
        None,
    ));

    // --- 2. the operator: N ApiTokens at once ---
    let kube = fresh_memserver().await;
    let backend = BackendProcess::start(dir.path(), "operator");
    setup_backend_objects(kube.client(), NS, &backend).await;
    setup_backend_objects(kube.client(), ROTATION_NS, &backend).await;
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let log = dir.path().join("operator.log");
    let mut operator = OperatorProcess::start(&kubeconfig, &log);
    wait_for(
        "the TokenBackends to be Ready",
        Duration::from_secs(60),
        async || {
            let mut all = true;
            kube.inspect("tokenops.dev", "tokenbackends", |b| all &= is_ready(b));
            all
        },
    )
    .await;

    let (rss_idle, _) = memory_mb(operator.pid());
    let memserver_stat = memserver_thread_stat(&kube);
    let cpu_before = Cpu::now(operator.pid(), backend.child.id(), &memserver_stat);
    let kube_mark = kube.request_mark();
    let backend_metrics = http_get(&backend.url, "/metrics").await;
    let operator_metrics = operator.metrics().await;
    let start = Instant::now();
    let creating = create_api_tokens(
        kube.client(),
        NS,
        (0..tokens).map(|i| format!("t-{i}")),
        "720h",
        None,
    );
    let mut creating = std::pin::pin!(creating);
    let mut created = false;
    loop {
        tokio::select! {
            _ = &mut creating, if !created => created = true,
            _ = tokio::time::sleep(POLL) => {}
        }
        if created && all_ready_with_secrets(&kube, NS, tokens) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out: {} of {tokens} Ready (operator log: {})",
            ready(&kube, NS),
            log.display()
        );
    }
    let operator_time = start.elapsed().as_secs_f64();
    println!(
        "operator: {tokens} Ready with Secrets in {operator_time:.2} s; {}",
        Cpu::now(operator.pid(), backend.child.id(), &memserver_stat).since(&cpu_before)
    );
    println!(
        "  Kubernetes requests: {}",
        request_breakdown(&kube.requests_since(kube_mark))
    );
    println!(
        "  backend requests: {}",
        backend_breakdown(&backend_metrics, &http_get(&backend.url, "/metrics").await)
    );
    let ratio = operator_time / baseline;

    // Steady state: nothing more to write (the reconciles woken by our own
    // writes find nothing to do).
    let quiet = wait_quiet(&kube, &backend).await;
    println!(
        "steady state {:.1} s after all were Ready",
        quiet.as_secs_f64()
    );
    let budget = Budget::between(&operator_metrics, &operator.metrics().await, tokens);
    // The same writes from a plain client (no operator, no backend), on a
    // fresh kube-memserver, as many in flight as the operator reconciles.
    let plain = plain_client_writes(tokens, &budget.requests).await;
    println!(
        "plain client: the operator's writes for {tokens} ApiTokens in {:.2} s",
        plain.as_secs_f64()
    );
    rows.extend(budget.rows(tokens));
    rows.push(row(
        "operator time / a plain client sending only its Kubernetes writes",
        format!(
            "{:.2}× ({operator_time:.2} s / {:.2} s; the backend's time is in the first, not the second)",
            operator_time / plain.as_secs_f64(),
            plain.as_secs_f64()
        ),
        "≤ 1.2× on a real cluster (not measured here)",
        None,
    ));
    rows.push(row(
        format!("operator: {tokens} ApiTokens created at once → Ready with Secrets"),
        format!(
            "{operator_time:.2} s ({:.0}/s)",
            tokens as f64 / operator_time
        ),
        "—",
        None,
    ));
    rows.push(row(
        "operator / backend alone",
        format!("{ratio:.2}×"),
        "≤ 2×",
        Some(ratio <= 2.0),
    ));

    // --- 3. a full resync in steady state ---
    let reconciled_before = operator.reconciles_done().await;
    let kube_mark = kube.request_mark();
    let backend_writes = backend.write_requests().await;
    let backend_reads = backend.read_requests().await;
    operator.stop();
    let resync_start = Instant::now();
    operator = OperatorProcess::start(&kubeconfig, &log);
    wait_for("the resync", Duration::from_secs(300), async || {
        operator.reconciles_done().await >= tokens as u64
    })
    .await;
    let resync_time = resync_start.elapsed().as_secs_f64();
    // Reconciles woken twice (by the ApiToken and by its Secret) may still run.
    let mut done = operator.reconciles_done().await;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = operator.reconciles_done().await;
        if now != done {
            (done, since) = (now, Instant::now());
        }
    }
    let kube_writes = kube.writes_since(kube_mark);
    let backend_writes = backend.write_requests().await - backend_writes;
    let backend_reads = backend.read_requests().await - backend_reads;
    let mut by_resource = BTreeMap::<String, usize>::new();
    for w in &kube_writes {
        *by_resource
            .entry(format!("{:?} {}", w.verb, w.resource))
            .or_default() += 1;
    }
    println!(
        "resync: operator restarted, {} reconciles in {resync_time:.2} s ({reconciled_before} before the restart); \
         backend reads {backend_reads}; Kubernetes writes by kind: {by_resource:?}",
        operator.reconciles_done().await
    );
    rows.push(row(
        format!("resync of {tokens} in steady state: writes to the backend"),
        backend_writes.to_string(),
        "0",
        Some(backend_writes == 0),
    ));
    rows.push(row(
        format!("resync of {tokens} in steady state: writes to Kubernetes"),
        kube_writes.len().to_string(),
        "0",
        Some(kube_writes.is_empty()),
    ));

    // --- 4. rotation latency ---
    // Renewal 20 s after issue: all are issued (and requeued) well before.
    let names: Vec<String> = (0..rotations).map(|i| format!("r-{i}")).collect();
    create_api_tokens(
        kube.client(),
        ROTATION_NS,
        names.iter().cloned(),
        "60s",
        Some("40s"),
    )
    .await;
    wait_for(
        "the rotation tokens to be Ready",
        Duration::from_secs(60),
        async || all_ready_with_secrets(&kube, ROTATION_NS, rotations),
    )
    .await;
    let mut due: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for t in kube.objects("tokenops.dev", "apitokens") {
        if name_of(&t).0 != ROTATION_NS {
            continue;
        }
        let id = t
            .pointer("/status/tokenId")
            .and_then(Value::as_str)
            .unwrap();
        let renewal = t
            .pointer("/status/renewalTime")
            .and_then(Value::as_str)
            .unwrap()
            .parse()
            .unwrap();
        due.insert(id.to_string(), renewal);
    }
    let last_due = *due.values().max().unwrap();
    println!(
        "rotation: {} tokens Ready; renewal times between {} and {}",
        due.len(),
        due.values().min().unwrap().format("%H:%M:%S%.3f"),
        last_due.format("%H:%M:%S%.3f")
    );
    let admin = backend.client();
    let mut regenerated: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while regenerated.len() < due.len() {
        assert!(Instant::now() < deadline, "timed out waiting for rotations");
        tokio::time::sleep(Duration::from_millis(500)).await;
        for e in admin.audit().all().await.unwrap() {
            if e.action == "token.regenerate"
                && let Some(id) = e.token_id
                && due.contains_key(&id)
            {
                let at = regenerated.entry(id).or_insert(e.at);
                *at = (*at).min(e.at);
            }
        }
    }
    let mut late: Vec<f64> = due
        .iter()
        .map(|(id, renewal)| (regenerated[id] - *renewal).as_seconds_f64())
        .collect();
    late.sort_by(f64::total_cmp);
    let (early, max, p99, p50) = (
        late[0],
        late[late.len() - 1],
        percentile(&late, 0.99),
        percentile(&late, 0.50),
    );
    rows.push(row(
        format!("rotation: renewalTime → regenerate on the backend ({rotations} tokens)"),
        format!("max {max:.3} s, p99 {p99:.3} s, p50 {p50:.3} s, min {early:.3} s"),
        "≤ 2 s",
        Some(max <= 2.0 && early >= 0.0),
    ));
    // Let them go (revoked by the finalizer) so the memory phase is all steady.
    let rot_api: Api<ApiToken> = Api::namespaced(kube.client(), ROTATION_NS);
    rot_api
        .delete_collection(&Default::default(), &Default::default())
        .await
        .unwrap();
    wait_for(
        "the rotation tokens to be gone",
        Duration::from_secs(60),
        async || {
            let mut any = false;
            kube.inspect("tokenops.dev", "apitokens", |t| {
                any |= name_of(t).0 == ROTATION_NS
            });
            !any
        },
    )
    .await;

    // --- 5. memory with many ApiTokens ---
    let cpu_before = Cpu::now(operator.pid(), backend.child.id(), &memserver_stat);
    let start = Instant::now();
    create_api_tokens(
        kube.client(),
        NS,
        (tokens..memory_tokens).map(|i| format!("t-{i}")),
        "720h",
        None,
    )
    .await;
    // Not a timed figure: poll 10,000 objects less often.
    wait_every(
        Duration::from_millis(500),
        "all ApiTokens to be Ready",
        Duration::from_secs(1200),
        async || all_ready_with_secrets(&kube, NS, memory_tokens),
    )
    .await;
    let took = start.elapsed().as_secs_f64();
    println!(
        "memory phase: {} created and Ready in {took:.1} s; {}",
        memory_tokens - tokens,
        Cpu::now(operator.pid(), backend.child.id(), &memserver_stat).since(&cpu_before)
    );
    let (rss_ready, _) = memory_mb(operator.pid());
    wait_quiet(&kube, &backend).await;
    let (rss, hwm) = memory_mb(operator.pid());
    println!(
        "memory: {} more ApiTokens Ready in {took:.1} s; operator RSS idle (before phase 2) {rss_idle:.1} MB, \
         at all Ready {rss_ready:.1} MB, steady {rss:.1} MB, peak (VmHWM since the restart) {hwm:.1} MB",
        memory_tokens - tokens
    );
    rows.push(row(
        format!("operator resident memory, {memory_tokens} ApiTokens Ready"),
        format!("{rss:.1} MB (peak {hwm:.1} MB)"),
        "≤ 150 MB",
        Some(rss <= 150.0),
    ));
    operator.stop();

    print_table(&rows);
}

/// Waits until neither Kubernetes nor the backend has seen a write for a
/// second; returns how long that took.
async fn wait_quiet(kube: &MemServer, backend: &BackendProcess) -> Duration {
    let start = Instant::now();
    let mut mark = kube.request_mark();
    let mut writes = backend.write_requests().await;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now_writes = backend.write_requests().await;
        if !kube.writes_since(mark).is_empty() || now_writes != writes {
            mark = kube.request_mark();
            writes = now_writes;
            since = Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the operator never settled"
        );
    }
    start.elapsed() - Duration::from_secs(1)
}

fn print_table(rows: &[Row]) {
    let w0 = rows
        .iter()
        .map(|r| r.measure.chars().count())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.result.chars().count())
        .max()
        .unwrap_or(0);
    println!();
    for r in rows {
        let mark = match r.met {
            Some(true) => "✓",
            Some(false) => "✗",
            None => " ",
        };
        println!(
            "{mark} {:<w0$}  {:<w1$}  target {}",
            r.measure, r.result, r.target
        );
    }
}
