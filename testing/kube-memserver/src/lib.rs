//! An in-memory Kubernetes API server for tests.
//!
//! It speaks plain HTTP on `127.0.0.1` to a real [`kube::Client`], with enough of
//! the API for `kube-runtime`'s `Controller`, `watcher` and event `Recorder` to run
//! unchanged: CRUD, merge/JSON/strategic patches, server-side apply with field
//! managers, watches with bookmarks and `410 Gone`, the status subresource,
//! `metadata.generation`, finalizers, ownerReference garbage collection, and
//! CustomResourceDefinitions installed by POSTing them — their schemas applied
//! to every write (defaults, pruning, types, bounds, patterns and the
//! `x-kubernetes-validations` CEL rules, with the Kubernetes CEL libraries of
//! the `kube-cel` crate) and their printer columns served as the `Table` that
//! `kubectl get` asks for.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube::Error> {
//! use k8s_openapi::api::core::v1::Secret;
//! use kube::api::{Api, PostParams};
//!
//! let server = kube_memserver::MemServer::start().await;
//! let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
//! let mut s = Secret::default();
//! s.metadata.name = Some("demo".into());
//! secrets.create(&PostParams::default(), &s).await?;
//! assert_eq!(server.writes_since(0).len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! This crate enables k8s-openapi's `latest` feature (`v1_37`, the version
//! `/version` reports). k8s-openapi allows one version feature per build, so a
//! crate using this one must enable `latest` (or `v1_37`) too, or none at all.
//!
//! Test hooks: [`MemServer::inject`] (fault injection), [`MemServer::pause`],
//! [`MemServer::requests_since`] (the request log), [`MemServer::close_watches`]
//! [`MemServer::expire_history`] (an apiserver restart as watchers see it), and
//! [`Builder::watch_latency`] (watch events that lag the writes, so a client's
//! cache is behind its own last write, as on a loaded API server).
//!
//! # Using it from an operator's end-to-end tests
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kube_memserver::{Fault, MemServer};
//!
//! let server = MemServer::start().await;
//! // Install the generated CRDs (multi-document YAML), as `kubectl apply` would.
//! server.apply_yaml(&std::fs::read_to_string("crds/apitokens.yaml")?)?;
//!
//! // In process: run the controller with `server.client()`. As a subprocess:
//! let dir = tempfile::tempdir()?;
//! server.write_kubeconfig(dir.path().join("kubeconfig"))?;
//! // Command::new(operator).env("KUBECONFIG", dir.path().join("kubeconfig"))...
//!
//! // Make the next two Secret writes fail, then check the retry.
//! let fault = server.inject(Fault::error(500).resource("secrets").writes().times(2));
//! # let _ = fault;
//!
//! // After convergence, a resync must not write.
//! let mark = server.request_mark();
//! // ... trigger the resync, wait for it ...
//! assert!(server.writes_since(mark).is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Served resources
//!
//! Built in: `v1` namespaces, secrets, configmaps, events, serviceaccounts,
//! services, pods; `apps/v1` deployments, statefulsets, daemonsets, replicasets;
//! `coordination.k8s.io/v1` leases; `events.k8s.io/v1` events (one storage with
//! core `v1` events, as in Kubernetes); `apiextensions.k8s.io/v1`
//! customresourcedefinitions. POSTing a CRD (or [`MemServer::apply_yaml`]) serves
//! its resource at once, with discovery (`/api`, `/apis`, per group-version, and
//! aggregated discovery) updated.
//!
//! # How close to Kubernetes
//!
//! Faithful: resourceVersions (one global counter; no-op writes keep the
//! version and emit no event), `409 Conflict` on stale writes, `409
//! AlreadyExists`, `404`, `422 Invalid`, `Status` error bodies; the status
//! subresource (create drops status, main writes keep it, `/status` writes
//! change nothing else); `metadata.generation` on non-metadata changes
//! (excluding status when it is a subresource); finalizers and
//! `deletionTimestamp`; `Background`/`Foreground`/`Orphan` propagation and
//! ownerReference garbage collection (asynchronous, by owner UID, including
//! dangling owners); `generateName`; Secret `stringData`; watches with
//! selectors (label selectors with `=`, `!=`, `in`, `notin`, exists; field
//! selectors on any field path), bookmarks, `sendInitialEvents`, `410 Gone`
//! for expired resourceVersions; `limit`/`continue`; `dryRun=All`;
//! `PartialObjectMetadata` responses.
//!
//! Approximations: server-side apply tracks ownership per leaf field with lists
//! treated atomically (no `listType=map` merging); strategic merge patch is a
//! JSON merge patch (lists replace, `$patch` directives are dropped); CRD
//! schemas are applied lightly (defaults, pruning, types, `required`, `enum`,
//! numeric bounds, lengths, item counts, `pattern`; no CEL
//! `x-kubernetes-validations`, no `format`); metadata is validated for label
//! and annotation syntax and ownerReference fields; multiple CRD versions share
//! one stored object (no conversion). Namespaces need not exist before objects
//! are created in them unless [`Builder::require_namespaces`] is set; deleting a
//! Namespace deletes its contents at once.
//! No authentication, authorization, admission webhooks, protobuf, or
//! `fieldValidation=Strict`.

mod cel;
mod error;
mod fields;
mod hooks;
mod http;
mod meta;
mod registry;
mod schema;
mod selector;
mod store;
mod table;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, watch};

pub use error::ApiError;
pub use hooks::{Fault, FaultHandle, RequestRecord, Verb};

use crate::http::Shared;
use crate::store::{Store, Target, WriteOpts};

/// Configures a [`MemServer`] before it starts.
#[derive(Debug, Clone)]
pub struct Builder {
    bookmark_interval: Duration,
    watch_latency: Duration,
    history_limit: usize,
    require_namespaces: bool,
    record_bodies: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(5),
            watch_latency: Duration::ZERO,
            history_limit: 10_000,
            require_namespaces: false,
            record_bodies: true,
        }
    }
}

impl Builder {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 5s).
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    /// Deliver watch events this long after the write that caused them
    /// (default: at once). A real API server lags by milliseconds under load,
    /// so a controller's watch cache can be older than its own last write:
    /// with a latency here, tests see what that does (for example a JSON patch
    /// whose `test` was computed from the cached copy fails with 422).
    pub fn watch_latency(mut self, d: Duration) -> Self {
        self.watch_latency = d;
        self
    }

    /// How many events the watch history keeps; older resourceVersions get
    /// `410 Gone` (default 10 000).
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n.max(1);
        self
    }

    /// Reject creating namespaced objects in a namespace that does not exist, as
    /// Kubernetes does (default: off, any namespace works without creating it).
    /// `default`, `kube-system`, `kube-public` and `kube-node-lease` always exist.
    pub fn require_namespaces(mut self, on: bool) -> Self {
        self.require_namespaces = on;
        self
    }

    /// Keep request bodies in the request log (default on; turn off for long
    /// benchmarks to save memory).
    pub fn record_bodies(mut self, on: bool) -> Self {
        self.record_bodies = on;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> std::io::Result<MemServer> {
        let (rv_tx, rv_rx) = watch::channel(0u64);
        let gc_notify = Arc::new(Notify::new());
        let mut store = Store::new(self.history_limit, rv_tx, gc_notify.clone());
        store.require_namespaces = self.require_namespaces;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            hooks: Arc::new(hooks::Hooks::new(self.record_bodies)),
            rv_rx,
            close_tx: watch::Sender::new(0),
            bookmark_interval: self.bookmark_interval,
            watch_latency: self.watch_latency,
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = http::router(shared.clone());
        let gc_shared = shared.clone();
        // The server runs on its own thread and runtime, so a test that blocks its
        // own thread (say, waiting for a subprocess) cannot stall it.
        std::thread::Builder::new()
            .name(format!("kube-memserver-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "kube-memserver cannot listen");
                            return;
                        }
                    };
                    tokio::spawn(async move {
                        loop {
                            gc_notify.notified().await;
                            // Bounded so a bug can never spin forever; the next write re-triggers.
                            for _ in 0..1000 {
                                if !gc_shared.store().gc_pass() {
                                    break;
                                }
                            }
                        }
                    });
                    let serve = axum::serve(listener, app).into_future();
                    tokio::select! {
                        r = serve => if let Err(e) = r {
                            tracing::error!(error = %e, "kube-memserver stopped");
                        },
                        // Dropping the runtime afterwards ends every connection and task.
                        _ = stop_rx => {}
                    }
                });
            })?;
        Ok(MemServer {
            shared,
            addr,
            stop: Some(stop_tx),
        })
    }
}

/// A running in-memory API server. Dropping it stops the server.
///
/// The server runs on its own thread with its own Tokio runtime, so it keeps
/// serving even while the test's thread blocks (e.g. waiting for a subprocess
/// that uses [`MemServer::kubeconfig_yaml`]).
pub struct MemServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for MemServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for MemServer {
    fn drop(&mut self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.close_tx.send_modify(|n| *n += 1);
        self.shared.hooks.paused.send_replace(false);
        if let Some(stop) = self.stop.take() {
            // The server thread may already be gone; nothing left to stop then.
            let _ = stop.send(());
        }
    }
}

/// Why a [`MemServer::apply_yaml`] document was rejected.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The text is not valid YAML.
    #[error("invalid YAML: {0}")]
    Parse(String),
    /// A document lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("document {index} is missing {field}")]
    Missing { index: usize, field: &'static str },
    /// No installed resource has this `apiVersion` and `kind`.
    #[error("document {index}: no resource for {api_version} {kind}")]
    UnknownKind {
        index: usize,
        api_version: String,
        kind: String,
    },
    /// The server rejected the object.
    #[error("document {index}: {error}")]
    Rejected { index: usize, error: ApiError },
}

impl MemServer {
    /// Starts a server with default settings.
    ///
    /// # Panics
    /// If no local port can be bound (use [`MemServer::builder`] to handle that).
    pub async fn start() -> Self {
        Self::builder().start().await.expect("bind 127.0.0.1:0")
    }

    /// A [`Builder`] for non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `kube::Config` for this server (default namespace `default`).
    pub fn kube_config(&self) -> kube::Config {
        let uri: ::http::Uri = self.url().parse().expect("valid URL");
        kube::Config::new(uri)
    }

    /// A new client talking to this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config()).expect("an http client needs no TLS")
    }

    /// A kubeconfig pointing at this server, for subprocesses (`KUBECONFIG`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: memserver\n  cluster:\n    server: {url}\n\
             contexts:\n\
             - name: memserver\n  context:\n    cluster: memserver\n    user: memserver\n    namespace: default\n\
             current-context: memserver\n\
             users:\n\
             - name: memserver\n  user: {{}}\n",
            url = self.url()
        )
    }

    /// Writes [`MemServer::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    // ---- test hooks -------------------------------------------------------

    /// Installs a fault; it applies to requests arriving from now on.
    pub fn inject(&self, fault: Fault) -> FaultHandle {
        self.shared.hooks.inject(fault)
    }

    /// Removes every installed fault.
    pub fn clear_faults(&self) {
        self.shared.hooks.clear_faults();
    }

    /// Holds every new request until [`MemServer::resume`] (open watches keep streaming).
    pub fn pause(&self) {
        self.shared.hooks.paused.send_replace(true);
    }

    /// Releases requests held by [`MemServer::pause`].
    pub fn resume(&self) {
        self.shared.hooks.paused.send_replace(false);
    }

    /// The position the next request will take in the log (pass to `requests_since`).
    pub fn request_mark(&self) -> u64 {
        self.shared.hooks.mark()
    }

    /// Forgets the request log so far (long benchmarks); marks stay valid,
    /// requests before the clear are no longer returned.
    pub fn clear_requests(&self) {
        self.shared.hooks.clear_log();
    }

    /// Requests received since `mark` (0 for all), in arrival order.
    pub fn requests_since(&self, mark: u64) -> Vec<RequestRecord> {
        self.shared.hooks.requests_since(mark)
    }

    /// Write requests (create/update/patch/apply/delete) received since `mark`,
    /// including failed and no-op ones.
    pub fn writes_since(&self, mark: u64) -> Vec<RequestRecord> {
        self.requests_since(mark)
            .into_iter()
            .filter(RequestRecord::is_write)
            .collect()
    }

    /// Write requests to one resource plural (e.g. `secrets`) since `mark`.
    pub fn writes_to_since(&self, resource: &str, mark: u64) -> Vec<RequestRecord> {
        self.writes_since(mark)
            .into_iter()
            .filter(|r| r.resource == resource)
            .collect()
    }

    /// Ends every open watch stream, as an apiserver restart would. Watchers
    /// reconnect from their last resourceVersion.
    pub fn close_watches(&self) {
        self.shared.close_tx.send_modify(|n| *n += 1);
    }

    /// Drops the watch history: a watch resuming from any resourceVersion older
    /// than the current one gets `410 Gone` and must re-list.
    pub fn expire_history(&self) {
        self.shared.store().expire_history();
    }

    /// [`MemServer::expire_history`] then [`MemServer::close_watches`].
    pub fn restart_watches(&self) {
        self.expire_history();
        self.close_watches();
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv
    }

    /// Runs garbage collection to a fixed point now (it also runs in the
    /// background after every write).
    pub fn collect_garbage(&self) {
        let mut store = self.shared.store();
        for _ in 0..1000 {
            if !store.gc_pass() {
                break;
            }
        }
    }

    /// A stored object, read directly (no request is logged). `group` is "" for
    /// the core group; `namespace` is "" for cluster-scoped objects. Events of
    /// both APIs are stored under `events.k8s.io` in that API's shape.
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store();
        let key = store::ObjKey {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        store.objects.get(&key).cloned()
    }

    /// All stored objects of a resource (every namespace), read directly.
    pub fn objects(&self, group: &str, plural: &str) -> Vec<Value> {
        let store = self.shared.store();
        store
            .objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Calls `f` on every stored object of a resource (every namespace)
    /// without copying them: cheap enough to poll a store of thousands.
    /// The server waits while `f` runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    /// use kube::api::{Api, PostParams};
    ///
    /// let server = kube_memserver::MemServer::start().await;
    /// for ns in ["a", "b"] {
    ///     let mut s = Secret::default();
    ///     s.metadata.name = Some("s".into());
    ///     Api::<Secret>::namespaced(server.client(), ns)
    ///         .create(&PostParams::default(), &s)
    ///         .await
    ///         .unwrap();
    /// }
    /// let mut c = ConfigMap::default();
    /// c.metadata.name = Some("c".into());
    /// Api::<ConfigMap>::namespaced(server.client(), "a")
    ///     .create(&PostParams::default(), &c)
    ///     .await
    ///     .unwrap();
    ///
    /// let mut secrets = 0;
    /// server.inspect("", "secrets", |_| secrets += 1);
    /// assert_eq!(secrets, 2);
    /// # }
    /// ```
    pub fn inspect(&self, group: &str, plural: &str, mut f: impl FnMut(&Value)) {
        let store = self.shared.store();
        // Keys sort by group, then plural: one resource is one contiguous range.
        let first = store::ObjKey {
            group: group.into(),
            plural: plural.into(),
            namespace: String::new(),
            name: String::new(),
        };
        store
            .objects
            .range(first..)
            .take_while(|(k, _)| k.group == group && k.plural == plural)
            .for_each(|(_, v)| f(v));
    }

    /// Creates or updates objects from (multi-document) YAML or JSON, like
    /// `kubectl apply --server-side --force-conflicts` with field manager
    /// `kubectl`. CRDs take effect immediately, so a CRD and its instances may
    /// share one file. Returns the stored objects.
    pub fn apply_yaml(&self, text: &str) -> Result<Vec<Value>, YamlError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| YamlError::Parse(e.to_string()))?;
        let mut out = Vec::new();
        for (index, doc) in docs.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
            out.push(self.apply_value(index, doc)?);
        }
        Ok(out)
    }

    /// Installs a CustomResourceDefinition (given as its JSON/YAML value).
    pub fn install_crd(&self, crd: Value) -> Result<Value, YamlError> {
        self.apply_value(0, crd)
    }

    fn apply_value(&self, index: usize, doc: Value) -> Result<Value, YamlError> {
        let field = |f: &'static str| YamlError::Missing { index, field: f };
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| field("apiVersion"))?;
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| field("kind"))?;
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| field("metadata.name"))?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut store = self.shared.store();
        let rt = store
            .find_kind(group, kind)
            .filter(|rt| rt.version(version).is_some())
            .ok_or_else(|| YamlError::UnknownKind {
                index,
                api_version: api_version.into(),
                kind: kind.into(),
            })?;
        let namespace = if rt.namespaced {
            doc.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let t = Target {
            rt,
            version: version.into(),
            namespace,
            name: name.into(),
            subresource: String::new(),
        };
        let opts = WriteOpts {
            dry_run: false,
            field_manager: "kubectl".into(),
            force: true,
        };
        let body = serde_json::to_vec(&doc).expect("JSON encodes");
        store
            .patch(&t, store::PatchKind::Apply, &body, &opts)
            .map(|o| o.body)
            .map_err(|error| YamlError::Rejected { index, error })
    }
}
