//! The object store: every write goes through here, under one lock, and each
//! change gets the next resourceVersion and an entry in the watch history.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

use crate::error::ApiError;
use crate::fields::{self, Manager};
use crate::registry::{self, ResourceType, TypeKey};
use crate::selector::Selector;
use crate::{cel, schema};

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_PLURAL: &str = "customresourcedefinitions";
const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// Where an object lives: namespace is empty for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as replayed to watches.
#[derive(Debug)]
pub(crate) struct StoredEvent {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The previous state for modifications (to turn selector transitions into ADDED/DELETED).
    pub old: Option<Arc<Value>>,
}

/// The request a write operation serves.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub rt: Arc<ResourceType>,
    pub version: String,
    /// Empty for cluster-scoped resources (or for all namespaces on collections).
    pub namespace: String,
    /// Empty on collections.
    pub name: String,
    /// Empty, or `status`.
    pub subresource: String,
}

impl Target {
    fn key(&self) -> ObjKey {
        self.key_for(&self.name)
    }

    fn key_for(&self, name: &str) -> ObjKey {
        ObjKey {
            group: self.rt.storage_group().to_string(),
            plural: self.rt.plural.clone(),
            namespace: self.namespace.clone(),
            name: name.to_string(),
        }
    }

    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    fn has_status(&self) -> bool {
        self.rt.has_status(&self.version)
    }
}

/// Per-write options from the query string.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub dry_run: bool,
    pub field_manager: String,
    pub force: bool,
}

/// What a write returns: the body, the HTTP code, and whether stored state changed.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub body: Value,
    pub code: u16,
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// `DeleteOptions` fields that matter here.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

enum Ownership {
    /// An Update-style write by the request's field manager.
    Update,
    /// Managers already computed by server-side apply.
    Applied(Vec<Manager>),
}

pub(crate) struct Store {
    pub rv: u64,
    pub types: BTreeMap<TypeKey, Arc<ResourceType>>,
    pub objects: BTreeMap<ObjKey, Value>,
    pub history: VecDeque<Arc<StoredEvent>>,
    /// Watches from a resourceVersion below this get 410 Gone.
    pub compacted: u64,
    pub history_limit: usize,
    /// Reject creating namespaced objects in a namespace that does not exist.
    pub require_namespaces: bool,
    pub rv_tx: watch::Sender<u64>,
    pub gc_notify: Arc<Notify>,
    /// Where each stored object is, by UID: lets a write tell whether its
    /// owners exist without scanning every object.
    pub by_uid: HashMap<String, ObjKey>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj
        .as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("metadata is a map")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(obj: &mut Value, fs: &[String]) {
    let m = meta_mut(obj);
    if fs.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(fs));
    }
}

fn is_deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Kubernetes object names: DNS subdomains (lowercase alphanumerics, '-' and '.').
fn valid_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(ok_char)
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Removes strategic-merge-patch directives (`$patch`, `$setElementOrder/...`) so
/// the patch can be applied as a JSON merge patch.
fn strip_directives(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, _| !k.starts_with('$'));
        m.values_mut().for_each(strip_directives);
    }
}

/// The object as served at `version` (objects are stored once per resource, not
/// per version; versions are not converted, only relabelled).
pub(crate) fn present(obj: &Value, rt: &ResourceType, version: &str) -> Value {
    let mut o = rt.served_shape(obj);
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
    }
    o
}

fn success_status(t: &Target, obj: &Value) -> Value {
    let mut details = json!({
        "name": t.name,
        "kind": t.rt.plural,
        "uid": meta_str(obj, "uid").unwrap_or_default(),
    });
    if !t.rt.group.is_empty() {
        details["group"] = json!(t.rt.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

impl Store {
    pub fn new(history_limit: usize, rv_tx: watch::Sender<u64>, gc_notify: Arc<Notify>) -> Self {
        let mut store = Self {
            rv: 1,
            types: registry::builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            history_limit,
            require_namespaces: false,
            rv_tx,
            gc_notify,
            by_uid: HashMap::new(),
        };
        let ns_type = store.types[&(String::new(), "namespaces".to_string())].clone();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let t = Target {
                rt: ns_type.clone(),
                version: "v1".into(),
                namespace: String::new(),
                name: String::new(),
                subresource: String::new(),
            };
            let body = json!({ "metadata": { "name": ns } });
            let opts = WriteOpts {
                field_manager: "memserver".into(),
                ..Default::default()
            };
            store
                .create(&t, body, &opts)
                .expect("built-in namespaces are valid");
        }
        store
    }

    pub fn find_type(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), plural.to_string()))
            .cloned()
    }

    pub fn find_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .values()
            .find(|rt| rt.group == group && rt.kind == kind)
            .cloned()
    }

    /// Stores (or removes) an object under the next resourceVersion and records the event.
    fn commit(&mut self, key: ObjKey, mut obj: Value, kind: EventType) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let old = match kind {
            EventType::Deleted => self.objects.remove(&key),
            _ => self.objects.insert(key.clone(), obj.clone()),
        };
        if let Some(uid) = old.as_ref().and_then(|o| meta_str(o, "uid")) {
            self.by_uid.remove(uid);
        }
        if kind != EventType::Deleted
            && let Some(uid) = meta_str(&obj, "uid")
        {
            self.by_uid.insert(uid.to_string(), key.clone());
        }
        self.history.push_back(Arc::new(StoredEvent {
            rv: self.rv,
            group: key.group.clone(),
            plural: key.plural.clone(),
            namespace: key.namespace.clone(),
            kind,
            object: Arc::new(obj.clone()),
            old: old.filter(|_| kind == EventType::Modified).map(Arc::new),
        }));
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted = e.rv;
            }
        }
        self.rv_tx.send_replace(self.rv);
        // Only deletions, objects being deleted and dependents of owners that
        // are gone or being deleted can give the garbage collector work (a
        // full pass looks at every object, so not after every write).
        if kind == EventType::Deleted || is_deleting(&obj) || self.has_gone_owner(&obj) {
            self.gc_notify.notify_one();
        }
        if key.group == CRD_GROUP && key.plural == CRD_PLURAL {
            self.crd_changed(&obj, kind);
        }
        if key.group.is_empty() && key.plural == "namespaces" && kind == EventType::Deleted {
            self.namespace_deleted(&key.name);
        }
        obj
    }

    /// Whether an owner of `obj` does not exist or is being deleted.
    fn has_gone_owner(&self, obj: &Value) -> bool {
        owner_uids(obj).iter().any(|uid| {
            self.by_uid
                .get(uid)
                .and_then(|key| self.objects.get(key))
                .is_none_or(is_deleting)
        })
    }

    fn crd_changed(&mut self, crd: &Value, kind: EventType) {
        let Ok(rt) = registry::from_crd(crd) else {
            return;
        };
        if kind == EventType::Deleted {
            let keys: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| k.group == rt.group && k.plural == rt.plural)
                .cloned()
                .collect();
            for k in keys {
                if let Some(obj) = self.objects.get(&k).cloned() {
                    self.commit(k, obj, EventType::Deleted);
                }
            }
            self.types.remove(&rt.key());
        } else {
            self.types.insert(rt.key(), Arc::new(rt));
        }
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.to_string(),
        };
        self.objects.get(&key).is_some_and(|n| !is_deleting(n))
    }

    /// Deletes everything in a deleted namespace (objects with finalizers stay,
    /// marked for deletion, until their finalizers are removed).
    fn namespace_deleted(&mut self, ns: &str) {
        let keys: Vec<ObjKey> = self
            .objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect();
        for key in keys {
            let Some(rt) = self.find_type(&key.group, &key.plural) else {
                continue;
            };
            let version = rt
                .versions
                .iter()
                .find(|v| v.storage)
                .map(|v| v.name.clone())
                .unwrap_or_default();
            let t = Target {
                rt,
                version,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                subresource: String::new(),
            };
            // The object exists (we hold the lock), so deletion cannot fail.
            let _ = self.delete(&t, &DeleteOpts::default());
        }
    }

    /// Forgets the watch history: watches resuming from an older resourceVersion get 410.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        self.objects
            .get(&t.key())
            .map(|o| present(o, &t.rt, &t.version))
            .ok_or_else(|| ApiError::not_found(t.rt.subject(&t.name)))
    }

    pub fn list(
        &self,
        t: &Target,
        sel: &Selector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (list_rv, after) = match continue_token.filter(|c| !c.is_empty()) {
            Some(c) => {
                let mut parts = c.splitn(3, '/');
                let rv = parts.next().and_then(|r| r.parse::<u64>().ok());
                match (rv, parts.next(), parts.next()) {
                    (Some(rv), Some(ns), Some(name)) => {
                        (rv, Some((ns.to_string(), name.to_string())))
                    }
                    _ => return Err(ApiError::bad_request("invalid continue token")),
                }
            }
            None => (self.rv, None),
        };
        let group = t.rt.storage_group();
        let start = ObjKey {
            group: group.to_string(),
            plural: t.rt.plural.clone(),
            namespace: String::new(),
            name: String::new(),
        };
        let matching = self
            .objects
            .range(start..)
            .take_while(|(k, _)| k.group == group && k.plural == t.rt.plural)
            .filter(|(k, _)| t.namespace.is_empty() || k.namespace == t.namespace)
            .filter(|(k, _)| {
                after
                    .as_ref()
                    .is_none_or(|(ns, name)| (&k.namespace, &k.name) > (ns, name))
            })
            .filter(|(_, o)| t.rt.selects(sel, o));
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut last: Option<&ObjKey> = None;
        for (k, o) in matching {
            if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(present(o, &t.rt, &t.version));
            last = Some(k);
        }
        let mut list_meta = json!({ "resourceVersion": list_rv.to_string() });
        if remaining > 0
            && let Some(k) = last
        {
            list_meta["continue"] = json!(format!("{list_rv}/{}/{}", k.namespace, k.name));
            list_meta["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "kind": t.rt.list_kind,
            "apiVersion": t.api_version(),
            "metadata": list_meta,
            "items": items,
        }))
    }

    /// Checks `apiVersion`/`kind` in a request body against the URL.
    fn check_type_meta(t: &Target, body: &Value) -> Result<(), ApiError> {
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && k != t.rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the provided object ({k}) does not match the resource ({})",
                t.rt.kind
            )));
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
            let (g, v) = av.rsplit_once('/').unwrap_or(("", av));
            if g != t.rt.group || t.rt.version(v).is_none() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    t.api_version()
                )));
            }
        }
        Ok(())
    }

    fn check_namespace(t: &Target, body: &Value) -> Result<(), ApiError> {
        if let Some(ns) = meta_str(body, "namespace")
            && !ns.is_empty()
            && t.rt.namespaced
            && ns != t.namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    fn invalid(t: &Target, name: &str, msg: &str) -> ApiError {
        ApiError::invalid(t.rt.subject(name), msg)
    }

    pub fn create(&mut self, t: &Target, body: Value, o: &WriteOpts) -> Result<Outcome, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        Self::check_type_meta(t, &body)?;
        Self::check_namespace(t, &body)?;
        if meta_str(&body, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            // What the real apiserver answers (as an internal error).
            return Err(ApiError::new(
                500,
                "InternalError",
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut new = t.rt.to_storage(body);
        let name = match meta_str(&new, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta_str(&new, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => {
                    let mut n;
                    loop {
                        n = format!("{prefix}{}", random_suffix());
                        if !self.objects.contains_key(&t.key_for(&n)) {
                            break;
                        }
                    }
                    n
                }
                None => {
                    return Err(Self::invalid(
                        t,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        let t = Target {
            name: name.clone(),
            ..t.clone()
        };
        if t.rt.namespaced && t.namespace.is_empty() {
            return Err(ApiError::no_route());
        }
        if self.require_namespaces && t.rt.namespaced && !self.namespace_exists(&t.namespace) {
            return Err(ApiError::not_found(crate::error::Subject {
                group: "",
                plural: "namespaces",
                kind: "Namespace",
                name: &t.namespace,
            }));
        }
        if self.objects.contains_key(&t.key()) {
            return Err(ApiError::already_exists(t.rt.subject(&name)));
        }
        {
            let m = meta_mut(&mut new);
            m.insert("name".into(), json!(name));
            if t.rt.namespaced {
                m.insert("namespace".into(), json!(t.namespace));
            } else {
                m.remove("namespace");
            }
        }
        if t.has_status()
            && let Some(m) = new.as_object_mut()
        {
            m.remove("status");
        }
        self.finish_create(&t, new, Ownership::Update, o)
    }

    fn finish_create(
        &mut self,
        t: &Target,
        mut new: Value,
        own: Ownership,
        o: &WriteOpts,
    ) -> Result<Outcome, ApiError> {
        if !valid_name(&t.name) {
            return Err(Self::invalid(
                t,
                &t.name,
                &format!(
                    "metadata.name: Invalid value: \"{}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    t.name
                ),
            ));
        }
        if let Some(m) = new.as_object_mut() {
            m.insert("apiVersion".into(), json!(t.rt.storage_api_version()));
            m.insert("kind".into(), json!(t.rt.kind));
        }
        self.normalize(t, None, &mut new)?;
        let now = now();
        {
            let m = meta_mut(&mut new);
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                m.remove(f);
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now));
            if t.rt.generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        let managers = match own {
            Ownership::Applied(ms) => ms,
            Ownership::Update => {
                let has_status = t.has_status();
                let fields = fields::leaf_paths(&new)
                    .into_iter()
                    .filter(|p| fields::in_scope(p, "", has_status))
                    .collect();
                vec![Manager {
                    manager: o.field_manager.clone(),
                    operation: "Update".into(),
                    subresource: String::new(),
                    api_version: t.api_version(),
                    time: now.clone(),
                    fields,
                }]
            }
        };
        meta_mut(&mut new).insert("managedFields".into(), fields::render_managed(&managers));
        if o.dry_run {
            return Ok(Outcome {
                body: present(&new, &t.rt, &t.version),
                code: 201,
                changed: false,
            });
        }
        let stored = self.commit(t.key(), new, EventType::Added);
        Ok(Outcome {
            body: present(&stored, &t.rt, &t.version),
            code: 201,
            changed: true,
        })
    }

    /// Type-specific defaulting and validation on every write (`old` is `None` on create).
    fn normalize(&self, t: &Target, old: Option<&Value>, new: &mut Value) -> Result<(), ApiError> {
        let rt = &t.rt;
        let errors = crate::meta::validate(new);
        if !errors.is_empty() {
            return Err(Self::invalid(
                t,
                &t.name,
                &format!("[{}]", errors.join(", ")),
            ));
        }
        if rt.group.is_empty() && rt.plural == "secrets" {
            let obj = new.as_object_mut().expect("object");
            if let Some(Value::Object(sd)) = obj.remove("stringData") {
                let data = obj.entry("data").or_insert_with(|| json!({}));
                if !data.is_object() {
                    *data = json!({});
                }
                let data = data.as_object_mut().expect("map");
                for (k, v) in sd {
                    let s = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(s)),
                    );
                }
            }
            if let Some(Value::Object(data)) = obj.get("data") {
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    });
                    if !ok {
                        return Err(Self::invalid(
                            t,
                            &t.name,
                            &format!("data[{k}]: Invalid value: must be a base64 encoded string"),
                        ));
                    }
                }
            }
            obj.entry("type").or_insert_with(|| json!("Opaque"));
            if let Some(old) = old
                && old.get("type") != new.get("type")
            {
                return Err(Self::invalid(
                    t,
                    &t.name,
                    "type: Invalid value: field is immutable",
                ));
            }
            if let Some(old) = old
                && old.get("immutable").and_then(Value::as_bool) == Some(true)
                && (old.get("data") != new.get("data") || old.get("type") != new.get("type"))
            {
                return Err(Self::invalid(
                    t,
                    &t.name,
                    "data: Forbidden: field is immutable when `immutable` is set",
                ));
            }
        }
        if rt.group.is_empty()
            && rt.plural == "namespaces"
            && new.pointer("/status/phase").is_none()
        {
            new["status"] = json!({ "phase": "Active" });
        }
        if rt.group == CRD_GROUP && rt.plural == CRD_PLURAL && t.subresource.is_empty() {
            let declared = registry::from_crd(new)?;
            if let Some(existing) = self.find_type(&declared.group, &declared.plural)
                && !existing.custom
            {
                return Err(Self::invalid(
                    t,
                    &t.name,
                    "spec.names.plural: Invalid value: the resource is built in",
                ));
            }
            let mut stored: Vec<String> = old
                .and_then(|o| o.pointer("/status/storedVersions"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(s) = declared.versions.iter().find(|v| v.storage)
                && !stored.contains(&s.name)
            {
                stored.push(s.name.clone());
            }
            let names = new.pointer("/spec/names").cloned().unwrap_or(json!({}));
            let ts = now();
            new["status"] = json!({
                "acceptedNames": names,
                "storedVersions": stored,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": ts},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": ts},
                ],
            });
        }
        if rt.custom
            && let Some(schema) = rt.version(&t.version).and_then(|v| v.schema.as_ref())
        {
            let mut errors = schema::validate(schema, new);
            errors.extend(cel::validate(schema, new, old));
            if !errors.is_empty() {
                return Err(Self::invalid(
                    t,
                    &t.name,
                    &format!("[{}]", errors.join(", ")),
                ));
            }
        }
        Ok(())
    }

    pub fn update(&mut self, t: &Target, body: Value, o: &WriteOpts) -> Result<Outcome, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        Self::check_type_meta(t, &body)?;
        Self::check_namespace(t, &body)?;
        if let Some(n) = meta_str(&body, "name")
            && n != t.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                t.name
            )));
        }
        let old = self
            .objects
            .get(&t.key())
            .cloned()
            .ok_or_else(|| ApiError::not_found(t.rt.subject(&t.name)))?;
        if let Some(uid) = meta_str(&body, "uid").filter(|u| !u.is_empty())
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict_msg(
                t.rt.subject(&t.name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        match meta_str(&body, "resourceVersion").filter(|r| !r.is_empty()) {
            None if !t.rt.unconditional_update => {
                return Err(Self::invalid(
                    t,
                    &t.name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            Some(rv) if Some(rv) != meta_str(&old, "resourceVersion") => {
                return Err(ApiError::conflict(t.rt.subject(&t.name)));
            }
            _ => {}
        }
        let body = t.rt.to_storage(body);
        self.finish_update(t, &old, body, Ownership::Update, o)
    }

    pub fn patch(
        &mut self,
        t: &Target,
        kind: PatchKind,
        body: &[u8],
        o: &WriteOpts,
    ) -> Result<Outcome, ApiError> {
        if kind == PatchKind::Apply {
            let config = parse_json_or_yaml(body)?;
            return self.apply(t, config, o);
        }
        let old = self
            .objects
            .get(&t.key())
            .cloned()
            .ok_or_else(|| ApiError::not_found(t.rt.subject(&t.name)))?;
        let mut new = present(&old, &t.rt, &t.version);
        match kind {
            PatchKind::Merge | PatchKind::Strategic => {
                let mut p: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid patch: {e}")))?;
                if !p.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                if kind == PatchKind::Strategic {
                    strip_directives(&mut p);
                }
                json_patch::merge(&mut new, &p);
            }
            PatchKind::Json => {
                let p: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                for op in &p.0 {
                    // Like the real apiserver, `test` against a missing path passes for `null`
                    // (kube-runtime's finalizer helper relies on this).
                    if let json_patch::PatchOperation::Test(test) = op
                        && test.value.is_null()
                        && new.pointer(test.path.as_str()).is_none()
                    {
                        continue;
                    }
                    json_patch::patch(&mut new, std::slice::from_ref(op)).map_err(|e| {
                        Self::invalid(t, &t.name, &format!("the patch could not be applied: {e}"))
                    })?;
                }
            }
            PatchKind::Apply => unreachable!("handled above"),
        }
        if !new.is_object() {
            return Err(Self::invalid(
                t,
                &t.name,
                "the patched object is not a JSON object",
            ));
        }
        Self::check_type_meta(t, &new)?;
        if meta_str(&new, "name") != Some(t.name.as_str()) {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty())
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict_msg(
                t.rt.subject(&t.name),
                "Precondition failed: UID in precondition does not match the object",
            ));
        }
        // A patch that sets a resourceVersion makes it a precondition; one that
        // drops it is unconditional.
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(t.rt.subject(&t.name)));
        }
        let new = t.rt.to_storage(new);
        self.finish_update(t, &old, new, Ownership::Update, o)
    }

    fn apply(&mut self, t: &Target, config: Value, o: &WriteOpts) -> Result<Outcome, ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request("an apply patch must be an object"));
        }
        if o.field_manager.is_empty() {
            return Err(Self::invalid(
                t,
                &t.name,
                "fieldManager: Required value: is required for apply patch",
            ));
        }
        if config.get("apiVersion").and_then(Value::as_str).is_none()
            || config.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(Self::invalid(
                t,
                &t.name,
                "apiVersion and kind must be set in an apply configuration",
            ));
        }
        Self::check_type_meta(t, &config)?;
        Self::check_namespace(t, &config)?;
        if let Some(n) = meta_str(&config, "name")
            && n != t.name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                t.name
            )));
        }
        let config = t.rt.to_storage(config);
        let has_status = t.has_status();
        let sub = t.subresource.clone();
        let scope = move |p: &[String]| fields::in_scope(p, &sub, has_status);
        let who = (o.field_manager.as_str(), t.subresource.as_str(), "");
        let api_version = t.api_version();
        let who = (who.0, who.1, api_version.as_str());
        let now = now();
        let Some(old) = self.objects.get(&t.key()).cloned() else {
            if !t.subresource.is_empty() {
                return Err(ApiError::not_found(t.rt.subject(&t.name)));
            }
            let (mut new, managers) =
                fields::apply(&json!({}), &config, &[], scope, who, o.force, &now)
                    .map_err(|_| ApiError::bad_request("conflicting apply"))?;
            let m = meta_mut(&mut new);
            m.insert("name".into(), json!(t.name));
            if t.rt.namespaced {
                m.insert("namespace".into(), json!(t.namespace));
            }
            if has_status && let Some(obj) = new.as_object_mut() {
                obj.remove("status");
            }
            return self.finish_create(t, new, Ownership::Applied(managers), o);
        };
        if let Some(rv) = meta_str(&config, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(t.rt.subject(&t.name)));
        }
        let managers = fields::parse_managed(&old);
        match fields::apply(&old, &config, &managers, scope, who, o.force, &now) {
            Ok((merged, ms)) => self.finish_update(t, &old, merged, Ownership::Applied(ms), o),
            Err(conflicts) => {
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|c| {
                        format!(
                            "conflict with \"{}\" using {}: .{}",
                            c.manager,
                            c.api_version,
                            c.path.join(".")
                        )
                    })
                    .collect();
                let n = list.len();
                let plural = if n == 1 { "" } else { "s" };
                Err(ApiError::conflict_msg(
                    t.rt.subject(&t.name),
                    format!(
                        "Apply failed with {n} conflict{plural}: {}",
                        list.join("\n")
                    ),
                ))
            }
        }
    }

    /// The common tail of update, patch and apply: subresource scoping, generation,
    /// finalizer rules, field ownership, no-op detection, commit.
    fn finish_update(
        &mut self,
        t: &Target,
        old: &Value,
        body: Value,
        own: Ownership,
        o: &WriteOpts,
    ) -> Result<Outcome, ApiError> {
        let has_status = t.has_status();
        let mut new = if t.subresource == "status" {
            let mut n = old.clone();
            match body.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            n
        } else {
            let mut n = body;
            let om = meta(old).cloned().unwrap_or_default();
            let m = meta_mut(&mut n);
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
                "managedFields",
                "selfLink",
            ] {
                match om.get(f) {
                    Some(v) => m.insert(f.to_string(), v.clone()),
                    None => m.remove(f),
                };
            }
            if has_status {
                let obj = n.as_object_mut().expect("object");
                match old.get("status") {
                    Some(s) => obj.insert("status".into(), s.clone()),
                    None => obj.remove("status"),
                };
            }
            n
        };
        if let Some(m) = new.as_object_mut() {
            m.insert("apiVersion".into(), json!(t.rt.storage_api_version()));
            m.insert("kind".into(), json!(t.rt.kind));
        }
        self.normalize(t, Some(old), &mut new)?;

        if is_deleting(old) {
            let before = finalizers(old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(Self::invalid(
                    t,
                    &t.name,
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if t.rt.generation && t.subresource.is_empty() {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("metadata");
                    if has_status {
                        m.remove("status");
                    }
                }
                v
            };
            if strip(old) != strip(&new) {
                let g = meta(old)
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                meta_mut(&mut new).insert("generation".into(), json!(g + 1));
            }
        }

        let now = now();
        let managers = match own {
            Ownership::Applied(ms) => ms,
            Ownership::Update => {
                let mut ms = fields::parse_managed(old);
                let sub = t.subresource.clone();
                let api_version = t.api_version();
                fields::record_update(
                    &mut ms,
                    old,
                    &new,
                    |p| fields::in_scope(p, &sub, has_status),
                    (&o.field_manager, &t.subresource, &api_version),
                    &now,
                );
                ms
            }
        };
        {
            let m = meta_mut(&mut new);
            let rendered = fields::render_managed(&managers);
            if rendered.as_array().is_some_and(Vec::is_empty) {
                m.remove("managedFields");
            } else {
                m.insert("managedFields".into(), rendered);
            }
        }

        if &new == old {
            return Ok(Outcome {
                body: present(old, &t.rt, &t.version),
                code: 200,
                changed: false,
            });
        }
        if o.dry_run {
            return Ok(Outcome {
                body: present(&new, &t.rt, &t.version),
                code: 200,
                changed: false,
            });
        }
        let kind = if is_deleting(&new) && finalizers(&new).is_empty() {
            EventType::Deleted
        } else {
            EventType::Modified
        };
        let stored = self.commit(t.key(), new, kind);
        Ok(Outcome {
            body: present(&stored, &t.rt, &t.version),
            code: 200,
            changed: true,
        })
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| owner_uids(o).iter().any(|u| u == uid))
    }

    pub fn delete(&mut self, t: &Target, d: &DeleteOpts) -> Result<Outcome, ApiError> {
        let key = t.key();
        let Some(mut obj) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(t.rt.subject(&t.name)));
        };
        if let Some(uid) = &d.uid
            && Some(uid.as_str()) != meta_str(&obj, "uid")
        {
            return Err(ApiError::conflict_msg(
                t.rt.subject(&t.name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&obj, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &d.resource_version
            && Some(rv.as_str()) != meta_str(&obj, "resourceVersion")
        {
            return Err(ApiError::conflict(t.rt.subject(&t.name)));
        }
        let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
        let mut fins = finalizers(&obj);
        let extra = match d.propagation.as_deref() {
            Some("Orphan") => Some(ORPHAN),
            Some("Foreground") => Some(FOREGROUND),
            _ => None,
        };
        if let Some(f) = extra
            && !fins.iter().any(|x| x == f)
            && !is_deleting(&obj)
            && self.has_dependents(&uid)
        {
            fins.push(f.to_string());
        }
        if fins.is_empty() {
            if d.dry_run {
                return Ok(Outcome {
                    body: success_status(t, &obj),
                    code: 200,
                    changed: false,
                });
            }
            self.commit(key, obj.clone(), EventType::Deleted);
            return Ok(Outcome {
                body: success_status(t, &obj),
                code: 200,
                changed: true,
            });
        }
        if is_deleting(&obj) && fins == finalizers(&obj) {
            return Ok(Outcome {
                body: present(&obj, &t.rt, &t.version),
                code: 200,
                changed: false,
            });
        }
        set_finalizers(&mut obj, &fins);
        if !is_deleting(&obj) {
            let m = meta_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(g) = m.get("generation").and_then(Value::as_i64) {
                m.insert("generation".into(), json!(g + 1));
            }
        }
        if d.dry_run {
            return Ok(Outcome {
                body: present(&obj, &t.rt, &t.version),
                code: 200,
                changed: false,
            });
        }
        let stored = self.commit(key, obj, EventType::Modified);
        Ok(Outcome {
            body: present(&stored, &t.rt, &t.version),
            code: 200,
            changed: true,
        })
    }

    pub fn delete_collection(
        &mut self,
        t: &Target,
        sel: &Selector,
        d: &DeleteOpts,
    ) -> Result<Outcome, ApiError> {
        let names: Vec<(String, String)> = self
            .objects
            .iter()
            .filter(|(k, o)| {
                k.group == t.rt.storage_group()
                    && k.plural == t.rt.plural
                    && (t.namespace.is_empty() || k.namespace == t.namespace)
                    && t.rt.selects(sel, o)
            })
            .map(|(k, _)| (k.namespace.clone(), k.name.clone()))
            .collect();
        let mut items = Vec::new();
        let mut changed = false;
        for (ns, name) in names {
            let one = Target {
                namespace: ns,
                name,
                ..t.clone()
            };
            let obj = self.get(&one)?;
            let out = self.delete(&one, d)?;
            changed |= out.changed;
            items.push(obj);
        }
        Ok(Outcome {
            body: json!({
                "kind": t.rt.list_kind,
                "apiVersion": t.api_version(),
                "metadata": { "resourceVersion": self.rv.to_string() },
                "items": items,
            }),
            code: 200,
            changed,
        })
    }

    /// Applies `f` to a stored object as the server itself (the garbage collector).
    fn system_update(&mut self, key: &ObjKey, f: impl FnOnce(&mut Value)) -> bool {
        let Some(old) = self.objects.get(key).cloned() else {
            return false;
        };
        let mut new = old.clone();
        f(&mut new);
        if new == old {
            return false;
        }
        let kind = if is_deleting(&new) && finalizers(&new).is_empty() {
            EventType::Deleted
        } else {
            EventType::Modified
        };
        self.commit(key.clone(), new, kind);
        true
    }

    /// One garbage-collection pass over ownerReferences; returns whether anything changed.
    pub fn gc_pass(&mut self) -> bool {
        // uid -> (orphaning, foreground-deleting)
        let mut owners: HashMap<String, (bool, bool)> = HashMap::new();
        for o in self.objects.values() {
            if let Some(uid) = meta_str(o, "uid") {
                let fins = finalizers(o);
                let deleting = is_deleting(o);
                owners.insert(
                    uid.to_string(),
                    (
                        deleting && fins.iter().any(|f| f == ORPHAN),
                        deleting && fins.iter().any(|f| f == FOREGROUND),
                    ),
                );
            }
        }
        let mut changed = false;
        let mut referenced: HashSet<String> = HashSet::new();
        let dependents: Vec<(ObjKey, Vec<String>)> = self
            .objects
            .iter()
            .map(|(k, o)| (k.clone(), owner_uids(o)))
            .filter(|(_, uids)| !uids.is_empty())
            .collect();
        for (key, uids) in dependents {
            let orphaned: Vec<&String> = uids
                .iter()
                .filter(|u| owners.get(*u).is_some_and(|s| s.0))
                .collect();
            if !orphaned.is_empty() {
                let drop: HashSet<String> = orphaned.iter().map(|s| s.to_string()).collect();
                changed |= self.system_update(&key, |o| {
                    let m = meta_mut(o);
                    if let Some(Value::Array(refs)) = m.get_mut("ownerReferences") {
                        refs.retain(|r| {
                            !r.get("uid")
                                .and_then(Value::as_str)
                                .is_some_and(|u| drop.contains(u))
                        });
                        if refs.is_empty() {
                            m.remove("ownerReferences");
                        }
                    }
                });
                continue;
            }
            let all_gone = uids.iter().all(|u| !owners.contains_key(u));
            let foreground = uids.iter().any(|u| owners.get(u).is_some_and(|s| s.1));
            if all_gone || foreground {
                let Some(rt) = self.find_type(&key.group, &key.plural) else {
                    continue;
                };
                let version = rt
                    .versions
                    .iter()
                    .find(|v| v.storage)
                    .map(|v| v.name.clone())
                    .unwrap_or_default();
                let t = Target {
                    rt,
                    version,
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    subresource: String::new(),
                };
                let propagation = if foreground {
                    Some("Foreground".to_string())
                } else {
                    None
                };
                if let Ok(out) = self.delete(
                    &t,
                    &DeleteOpts {
                        propagation,
                        ..Default::default()
                    },
                ) {
                    changed |= out.changed;
                }
                if self.objects.contains_key(&key) {
                    referenced.extend(uids);
                }
            } else {
                referenced.extend(uids);
            }
        }
        // Owners waiting on their dependents: release them once nothing refers to them.
        let waiting: Vec<(ObjKey, String)> = self
            .objects
            .iter()
            .filter(|(_, o)| is_deleting(o))
            .filter(|(_, o)| finalizers(o).iter().any(|f| f == ORPHAN || f == FOREGROUND))
            .map(|(k, o)| {
                (
                    k.clone(),
                    meta_str(o, "uid").unwrap_or_default().to_string(),
                )
            })
            .collect();
        for (key, uid) in waiting {
            if !referenced.contains(&uid) && !self.has_dependents(&uid) {
                changed |= self.system_update(&key, |o| {
                    let fins: Vec<String> = finalizers(o)
                        .into_iter()
                        .filter(|f| f != ORPHAN && f != FOREGROUND)
                        .collect();
                    set_finalizers(o, &fins);
                });
            }
        }
        changed
    }
}

/// Apply bodies are YAML (JSON is YAML too).
pub(crate) fn parse_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("invalid YAML: {e}")))
}
