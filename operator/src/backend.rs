//! The dereference step: an `ApiToken`'s `spec.backendRef` (or a backend
//! named in its status) into a ready [`tokenops_client::Client`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};
use tokenops_client::Client;
use tokenops_client::secrecy::SecretString;

use crate::crd::{ApiToken, BackendKind, ClusterTokenBackend, TokenBackend};
use crate::metrics::Metrics;
use crate::{Error, Result};

/// A backend ready to use.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `<kind>/<namespace>/<name>` (namespace empty for the cluster kind).
    pub id: String,
    /// The backend's `spec.project`.
    pub project: Option<String>,
    pub client: Client,
}

/// Where a backend object is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendLocation {
    pub kind: BackendKind,
    pub namespace: String,
    pub name: String,
}

impl BackendLocation {
    /// The backend an `ApiToken` refers to.
    pub fn of(tok: &ApiToken) -> Self {
        let kind = tok.spec.backend_ref.kind;
        BackendLocation {
            kind,
            namespace: match kind {
                BackendKind::TokenBackend => tok.namespace().unwrap_or_default(),
                BackendKind::ClusterTokenBackend => String::new(),
            },
            name: tok.spec.backend_ref.name.clone(),
        }
    }

    /// `<kind>/<namespace>/<name>`, as recorded in `status.backend`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kind.as_str(), self.namespace, self.name)
    }

    /// Parses an id written by [`BackendLocation::id`].
    pub fn parse(id: &str) -> Option<Self> {
        let mut parts = id.splitn(3, '/');
        let kind = match parts.next()? {
            "TokenBackend" => BackendKind::TokenBackend,
            "ClusterTokenBackend" => BackendKind::ClusterTokenBackend,
            _ => return None,
        };
        Some(BackendLocation {
            kind,
            namespace: parts.next()?.to_string(),
            name: parts.next()?.to_string(),
        })
    }
}

/// The settings of a backend object, whichever its kind.
struct BackendSettings {
    url: String,
    secret_namespace: String,
    secret_name: String,
    secret_key: String,
    ca_bundle: Option<String>,
    project: Option<String>,
}

/// Reads the backend object and its credentials Secret: the settings, and the
/// management token.
async fn read(kube: &kube::Client, at: &BackendLocation) -> Result<(BackendSettings, String)> {
    let not_found = |kind| Error::BackendNotFound {
        kind,
        name: at.name.clone(),
    };
    let settings = match at.kind {
        BackendKind::TokenBackend => {
            let b = Api::<TokenBackend>::namespaced(kube.clone(), &at.namespace)
                .get_opt(&at.name)
                .await?
                .ok_or_else(|| not_found("TokenBackend"))?;
            BackendSettings {
                url: b.spec.url,
                secret_namespace: at.namespace.clone(),
                secret_name: b.spec.credentials_secret_ref.name,
                secret_key: b.spec.credentials_secret_ref.key,
                ca_bundle: b.spec.ca_bundle,
                project: b.spec.project,
            }
        }
        BackendKind::ClusterTokenBackend => {
            let b = Api::<ClusterTokenBackend>::all(kube.clone())
                .get_opt(&at.name)
                .await?
                .ok_or_else(|| not_found("ClusterTokenBackend"))?;
            BackendSettings {
                url: b.spec.url,
                secret_namespace: b.spec.credentials_secret_ref.namespace,
                secret_name: b.spec.credentials_secret_ref.name,
                secret_key: b.spec.credentials_secret_ref.key,
                ca_bundle: b.spec.ca_bundle,
                project: b.spec.project,
            }
        }
    };
    let secret = Api::<Secret>::namespaced(kube.clone(), &settings.secret_namespace)
        .get_opt(&settings.secret_name)
        .await?
        .ok_or_else(|| {
            Error::Credentials(format!(
                "Secret {}/{} not found",
                settings.secret_namespace, settings.secret_name
            ))
        })?;
    let token = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&settings.secret_key))
        .map(|v| String::from_utf8(v.0.clone()))
        .transpose()
        .map_err(|_| Error::Credentials("the management token is not UTF-8".into()))?
        .ok_or_else(|| {
            Error::Credentials(format!(
                "Secret {}/{} has no key {:?}",
                settings.secret_namespace, settings.secret_name, settings.secret_key
            ))
        })?;
    Ok((settings, token))
}

/// Backends recently resolved, so that the reconciles of many `ApiToken`s on
/// one backend (and the follow-up reconciles their own writes cause) do not
/// each read the backend object and its credentials Secret again.
///
/// An entry is dropped when the controller's watches see the backend object or
/// its credentials Secret change ([`Resolver::forget`]), when a reconcile
/// using it fails, and after [`Resolver::TTL`] in any case (a change missed
/// while a watch was re-connecting, or credentials in a namespace the
/// operator does not watch). Revocations (deletion, replaced tokens) use it
/// too, and read afresh only when the backend refuses (see
/// [`crate::reconcile::revoke::revoke_one`]).
///
/// It also keeps the clients it builds, by a hash of what they were built from
/// (endpoint, token, CA): a backend with the same settings as before reuses its
/// client — TLS setup and open connections — instead of a new handshake per
/// reconcile. Every client reports its requests' latency to the metrics.
pub struct Resolver {
    /// Entries by location, and a count of invalidations: a resolve that
    /// raced with one does not store its (maybe stale) result.
    inner: Mutex<(HashMap<BackendLocation, Resolved>, u64)>,
    /// One read at a time per location: the reconciles of a burst of new
    /// `ApiToken`s on one backend wait for the first one's read instead of
    /// each reading the backend object and its credentials Secret.
    reading: Mutex<HashMap<BackendLocation, Arc<tokio::sync::Mutex<()>>>>,
    clients: Mutex<HashMap<[u8; 32], Client>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// A backend and when it was read.
type Resolved = (Backend, Instant);

impl Resolver {
    /// The longest an entry is used without reading the objects again.
    pub const TTL: Duration = Duration::from_secs(30);

    /// A resolver whose clients record their requests in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Resolver {
            inner: Mutex::default(),
            reading: Mutex::default(),
            clients: Mutex::default(),
            metrics,
        }
    }

    /// Reads the backend object and its credentials Secret now, and returns
    /// the backend with its client (used where a stale read would do harm:
    /// a revoke the backend refused, the backend's own `Ready` check).
    pub async fn resolve_fresh(
        &self,
        kube: &kube::Client,
        at: &BackendLocation,
    ) -> Result<Backend> {
        let (settings, token) = read(kube, at).await?;
        let ca = settings.ca_bundle.filter(|c| !c.trim().is_empty());
        let client = self.client_for(settings.url, token.trim(), ca)?;
        Ok(Backend {
            id: at.id(),
            project: settings.project,
            client,
        })
    }

    /// The remembered backend at `at`, if fresh; else the invalidation count.
    fn remembered(&self, at: &BackendLocation) -> Result<Backend, u64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.0.get(at) {
            Some((b, when)) if when.elapsed() < Self::TTL => Ok(b.clone()),
            _ => Err(inner.1),
        }
    }

    /// [`Resolver::resolve_fresh`], from memory when possible.
    pub async fn resolve(&self, kube: &kube::Client, at: &BackendLocation) -> Result<Backend> {
        if let Ok(b) = self.remembered(at) {
            return Ok(b);
        }
        let reading = self
            .reading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(at.clone())
            .or_default()
            .clone();
        let one_at_a_time = reading.lock().await;
        let result = self.read_and_remember(kube, at).await;
        drop(one_at_a_time);
        // The last one out removes the lock, so the map holds only locations
        // being read now, not every location ever resolved.
        let mut locks = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(at).is_some_and(|l| Arc::ptr_eq(l, &reading))
            && Arc::strong_count(&reading) == 2
        {
            locks.remove(at);
        }
        result
    }

    /// Under the location's read lock: another resolve may have read it while
    /// this one waited; else reads it and remembers it, unless an
    /// invalidation came in between.
    async fn read_and_remember(
        &self,
        kube: &kube::Client,
        at: &BackendLocation,
    ) -> Result<Backend> {
        let epoch = match self.remembered(at) {
            Ok(b) => return Ok(b),
            Err(epoch) => epoch,
        };
        let backend = self.resolve_fresh(kube, at).await?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.1 == epoch {
            inner
                .0
                .insert(at.clone(), (backend.clone(), Instant::now()));
        }
        Ok(backend)
    }

    fn client_for(&self, url: String, token: &str, ca: Option<String>) -> Result<Client> {
        let mut hash = Sha256::new();
        for part in [
            url.as_bytes(),
            token.as_bytes(),
            ca.as_deref().unwrap_or("").as_bytes(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        let key: [u8; 32] = hash.finalize().into();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let metrics = self.metrics.clone();
        let mut builder = Client::builder(url)
            .token(SecretString::from(token.to_string()))
            .user_agent(concat!("tokenops-operator/", env!("CARGO_PKG_VERSION")))
            .observer(move |attempt| metrics.backend_request(attempt));
        if let Some(ca) = ca {
            builder = builder.ca_cert_pem(ca.into_bytes());
        }
        let client = builder.build()?;
        // More distinct settings than this (credentials rotated many times) start afresh.
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Drops the entry of the backend at `at`.
    pub fn forget(&self, at: &BackendLocation) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1 += 1;
        inner.0.remove(at);
    }
}

/// Distinct client settings kept at most (see [`Resolver::client_for`]).
const MAX_CACHED_CLIENTS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_ids_round_trip() {
        for loc in [
            BackendLocation {
                kind: BackendKind::TokenBackend,
                namespace: "team-a".into(),
                name: "main".into(),
            },
            BackendLocation {
                kind: BackendKind::ClusterTokenBackend,
                namespace: String::new(),
                name: "shared".into(),
            },
        ] {
            assert_eq!(BackendLocation::parse(&loc.id()), Some(loc));
        }
        assert_eq!(BackendLocation::parse("Other/x/y"), None);
    }

    #[tokio::test]
    async fn a_dead_backend_with_userinfo_in_its_url_is_reported_without_it() {
        let resolver = Resolver::new(Arc::new(Metrics::default()));
        // Nothing listens on port 1: the request fails in transport, and the
        // client's error names the URL it tried.
        let client = resolver
            .client_for("http://admin:hunter2@127.0.0.1:1".into(), "tko_x", None)
            .unwrap();
        let e = Error::from(client.whoami().await.unwrap_err());
        let shown = e.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("admin"),
            "{shown}"
        );
        assert_eq!(e.condition_reason(), "BackendUnavailable");
    }

    #[tokio::test]
    async fn read_locks_are_kept_only_while_a_location_is_read() {
        let resolver = Resolver::new(Arc::new(Metrics::default()));
        // No API server listens on port 1: every read fails, after which no
        // lock may stay behind, however many locations were tried.
        let kube = kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
            .unwrap();
        for i in 0..20 {
            let at = BackendLocation {
                kind: BackendKind::TokenBackend,
                namespace: format!("team-{i}"),
                name: "main".into(),
            };
            assert!(resolver.resolve(&kube, &at).await.is_err());
        }
        assert!(resolver.reading.lock().unwrap().is_empty());
    }

    #[test]
    fn a_backend_client_is_reused_only_for_the_same_settings() {
        let url = "http://backend.invalid:8080".to_string();
        let resolver = Resolver::new(Arc::new(Metrics::default()));
        let client_for = |url, token, ca| resolver.client_for(url, token, ca);
        let a = client_for(url.clone(), "tko_one", None).unwrap();
        let b = client_for(url.clone(), "tko_one", None).unwrap();
        let key = |c: &Client| format!("{:p}", c.endpoint());
        assert_eq!(key(&a), key(&b), "same settings, same client");
        let other_token = client_for(url.clone(), "tko_two", None).unwrap();
        assert_ne!(key(&a), key(&other_token));
        let other_url = client_for("http://elsewhere.invalid".into(), "tko_one", None).unwrap();
        assert_ne!(key(&a), key(&other_url));
    }
}
