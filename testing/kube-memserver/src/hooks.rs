//! Test hooks: fault injection, pausing, and the request log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;

/// What a request did, as classified from its method, path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `GET` of one object (or its `/status`).
    Get,
    /// `GET` of a collection.
    List,
    /// `GET` of a collection with `watch=true`.
    Watch,
    /// `POST` to a collection.
    Create,
    /// `PUT` of an object or its status.
    Update,
    /// `PATCH` with a JSON, merge or strategic-merge patch.
    Patch,
    /// `PATCH` with `application/apply-patch+yaml` (server-side apply).
    Apply,
    /// `DELETE` of one object.
    Delete,
    /// `DELETE` of a collection.
    DeleteCollection,
    /// Discovery and version endpoints.
    Discovery,
    /// Anything else.
    Other,
}

impl Verb {
    /// Whether this verb asks the server to change state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create
                | Self::Update
                | Self::Patch
                | Self::Apply
                | Self::Delete
                | Self::DeleteCollection
        )
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Position in the log (0-based, increasing).
    pub seq: u64,
    /// HTTP method.
    pub method: Method,
    /// URL path, e.g. `/api/v1/namespaces/default/secrets/s`.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// What the request did.
    pub verb: Verb,
    /// API group ("" for core).
    pub group: String,
    /// API version from the path (empty for non-resource paths).
    pub version: String,
    /// Resource plural, e.g. `secrets`.
    pub resource: String,
    /// `status` for status subresource requests.
    pub subresource: Option<String>,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name from the path, if any.
    pub name: Option<String>,
    /// The `fieldManager` query parameter, if given.
    pub field_manager: Option<String>,
    /// The `User-Agent` header, if given.
    pub user_agent: Option<String>,
    /// The response status code (0 while a request is still being served).
    pub status: u16,
    /// For writes: whether stored state actually changed (a no-op update or apply
    /// leaves it unchanged, as does a failed request).
    pub changed: bool,
    /// Whether a [`Fault`] answered, delayed or held this request.
    pub faulted: bool,
    /// The request body (lossy UTF-8; empty for most reads). Lets a test check,
    /// say, that a secret value never reached a status or an Event.
    pub body: String,
}

impl RequestRecord {
    /// Whether this request asked to change state.
    pub fn is_write(&self) -> bool {
        self.verb.is_write()
    }
}

/// What an injected fault does to a matching request.
#[derive(Debug, Clone)]
enum Action {
    Error { code: u16, message: Option<String> },
    Delay(Duration),
    Hold,
}

/// A rule that makes matching requests fail or slow down.
///
/// ```
/// use kube_memserver::Fault;
/// // The next two writes to secrets fail with 500.
/// let fault = Fault::error(500).resource("secrets").writes().times(2);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    action: Action,
    method: Option<Method>,
    verbs: Option<Vec<Verb>>,
    resource: Option<String>,
    subresource: Option<String>,
    path_contains: Option<String>,
    name: Option<String>,
    times: Option<usize>,
}

impl Fault {
    /// Answer matching requests with a `Status` error of this HTTP code.
    pub fn error(code: u16) -> Self {
        Self::with(Action::Error {
            code,
            message: None,
        })
    }

    /// Delay matching requests by `d`, then serve them normally.
    pub fn delay(d: Duration) -> Self {
        Self::with(Action::Delay(d))
    }

    /// Hold matching requests until the fault is removed ([`FaultHandle::remove`]
    /// or [`crate::MemServer::clear_faults`]), then serve them normally.
    pub fn hold() -> Self {
        Self::with(Action::Hold)
    }

    fn with(action: Action) -> Self {
        Self {
            action,
            method: None,
            verbs: None,
            resource: None,
            subresource: None,
            path_contains: None,
            name: None,
            times: None,
        }
    }

    /// The `Status.message` for an error fault.
    pub fn message(mut self, m: impl Into<String>) -> Self {
        if let Action::Error { message, .. } = &mut self.action {
            *message = Some(m.into());
        }
        self
    }

    /// Only requests with this HTTP method.
    pub fn method(mut self, m: Method) -> Self {
        self.method = Some(m);
        self
    }

    /// Only requests with this verb (may be called repeatedly to allow several).
    pub fn verb(mut self, v: Verb) -> Self {
        self.verbs.get_or_insert_with(Vec::new).push(v);
        self
    }

    /// Only write requests (create, update, patch, apply, delete).
    pub fn writes(mut self) -> Self {
        self.verbs = Some(vec![
            Verb::Create,
            Verb::Update,
            Verb::Patch,
            Verb::Apply,
            Verb::Delete,
            Verb::DeleteCollection,
        ]);
        self
    }

    /// Only requests for this resource plural (e.g. `secrets`, `apitokens`).
    pub fn resource(mut self, plural: impl Into<String>) -> Self {
        self.resource = Some(plural.into());
        self
    }

    /// Only requests for this subresource (`status`).
    pub fn subresource(mut self, sub: impl Into<String>) -> Self {
        self.subresource = Some(sub.into());
        self
    }

    /// Only requests whose path contains this string.
    pub fn path_contains(mut self, s: impl Into<String>) -> Self {
        self.path_contains = Some(s.into());
        self
    }

    /// Only requests for the object with this name.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }

    /// Fire for the next `n` matching requests only (default: until removed).
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, r: &RequestRecord) -> bool {
        self.method.as_ref().is_none_or(|m| *m == r.method)
            && self.verbs.as_ref().is_none_or(|vs| vs.contains(&r.verb))
            && self.resource.as_ref().is_none_or(|p| *p == r.resource)
            && self
                .subresource
                .as_ref()
                .is_none_or(|s| r.subresource.as_ref() == Some(s))
            && self
                .path_contains
                .as_ref()
                .is_none_or(|p| r.path.contains(p.as_str()))
            && self
                .name
                .as_ref()
                .is_none_or(|n| r.name.as_deref() == Some(n.as_str()))
    }
}

struct ActiveFault {
    id: u64,
    fault: Fault,
    hits: Arc<AtomicUsize>,
    /// Set to true when the fault is removed: releases held requests.
    released: tokio::sync::watch::Sender<bool>,
}

/// A fault that is installed; see [`crate::MemServer::inject`].
#[derive(Clone)]
pub struct FaultHandle {
    id: u64,
    hits: Arc<AtomicUsize>,
    hooks: Arc<Hooks>,
}

impl FaultHandle {
    /// How many requests this fault has affected so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Uninstalls the fault.
    pub fn remove(&self) {
        self.hooks.faults.lock().expect("faults lock").retain(|f| {
            if f.id == self.id {
                f.released.send_replace(true);
            }
            f.id != self.id
        });
    }
}

impl std::fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultHandle")
            .field("id", &self.id)
            .field("hits", &self.hits())
            .finish()
    }
}

/// What the request handler must do because of faults.
pub(crate) enum FaultOutcome {
    Proceed,
    Fail { code: u16, message: Option<String> },
}

/// The request log; `base` is the sequence number of the first record kept.
#[derive(Default)]
struct RequestLog {
    base: u64,
    records: std::collections::VecDeque<RequestRecord>,
}

pub(crate) struct Hooks {
    pub record_bodies: bool,
    faults: Mutex<Vec<ActiveFault>>,
    next_id: Mutex<u64>,
    log: Mutex<RequestLog>,
    pub paused: tokio::sync::watch::Sender<bool>,
}

impl Hooks {
    pub fn new(record_bodies: bool) -> Self {
        Self {
            record_bodies,
            faults: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
            log: Mutex::new(RequestLog::default()),
            paused: tokio::sync::watch::Sender::new(false),
        }
    }

    pub fn inject(self: &Arc<Self>, fault: Fault) -> FaultHandle {
        let id = {
            let mut n = self.next_id.lock().expect("id lock");
            *n += 1;
            *n
        };
        let hits = Arc::new(AtomicUsize::new(0));
        self.faults.lock().expect("faults lock").push(ActiveFault {
            id,
            fault,
            hits: hits.clone(),
            released: tokio::sync::watch::Sender::new(false),
        });
        FaultHandle {
            id,
            hits,
            hooks: self.clone(),
        }
    }

    pub fn clear_faults(&self) {
        let mut faults = self.faults.lock().expect("faults lock");
        for f in faults.iter() {
            f.released.send_replace(true);
        }
        faults.clear();
    }

    /// Waits while paused, then applies matching faults (delays first, in order;
    /// the first error fault answers the request).
    pub async fn before(&self, r: &RequestRecord) -> (FaultOutcome, bool) {
        let mut paused = self.paused.subscribe();
        // An error only means the sender is gone, which cannot happen while `self` lives.
        let _ = paused.wait_for(|p| !*p).await;
        let mut delays = Vec::new();
        let mut holds = Vec::new();
        let mut outcome = FaultOutcome::Proceed;
        {
            let mut faults = self.faults.lock().expect("faults lock");
            for f in faults.iter_mut() {
                if !f.fault.matches(r) {
                    continue;
                }
                if let Some(t) = &mut f.fault.times {
                    if *t == 0 {
                        continue;
                    }
                    *t -= 1;
                }
                f.hits.fetch_add(1, Ordering::SeqCst);
                match &f.fault.action {
                    Action::Delay(d) => delays.push(*d),
                    Action::Hold => holds.push(f.released.subscribe()),
                    Action::Error { code, message } => {
                        outcome = FaultOutcome::Fail {
                            code: *code,
                            message: message.clone(),
                        };
                        break;
                    }
                }
            }
            faults.retain(|f| f.fault.times != Some(0) || matches!(f.fault.action, Action::Hold));
        }
        let faulted =
            !delays.is_empty() || !holds.is_empty() || matches!(outcome, FaultOutcome::Fail { .. });
        for mut h in holds {
            // An error means the fault was dropped, which also releases the request.
            let _ = h.wait_for(|released| *released).await;
        }
        for d in delays {
            tokio::time::sleep(d).await;
        }
        (outcome, faulted)
    }

    pub fn log_start(&self, mut r: RequestRecord) -> u64 {
        let mut log = self.log.lock().expect("log lock");
        r.seq = log.base + log.records.len() as u64;
        let seq = r.seq;
        log.records.push_back(r);
        seq
    }

    pub fn log_finish(&self, seq: u64, status: u16, changed: bool, faulted: bool) {
        let mut log = self.log.lock().expect("log lock");
        let Some(i) = seq.checked_sub(log.base) else {
            return;
        };
        if let Some(r) = log.records.get_mut(i as usize) {
            r.status = status;
            r.changed = changed;
            r.faulted = faulted;
        }
    }

    pub fn requests_since(&self, mark: u64) -> Vec<RequestRecord> {
        let log = self.log.lock().expect("log lock");
        let skip = mark.saturating_sub(log.base) as usize;
        log.records.iter().skip(skip).cloned().collect()
    }

    pub fn mark(&self) -> u64 {
        let log = self.log.lock().expect("log lock");
        log.base + log.records.len() as u64
    }

    /// Forgets the records so far; sequence numbers keep counting.
    pub fn clear_log(&self) {
        let mut log = self.log.lock().expect("log lock");
        log.base += log.records.len() as u64;
        log.records.clear();
    }
}
