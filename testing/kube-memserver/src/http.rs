//! The HTTP surface: path parsing, discovery, the REST verbs, and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::error::ApiError;
use crate::hooks::{FaultOutcome, Hooks, RequestRecord, Verb};
use crate::registry::{self, ResourceType};
use crate::selector::Selector;
use crate::store::{
    DeleteOpts, EventType, PatchKind, Store, StoredEvent, Target, WriteOpts, present,
};
use crate::table;

/// State shared by the HTTP handlers, the garbage collector and the test hooks.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub hooks: Arc<Hooks>,
    pub rv_rx: watch::Receiver<u64>,
    /// Bumped to end every open watch stream.
    pub close_tx: watch::Sender<u64>,
    pub bookmark_interval: Duration,
    /// How long after a write its watch events go out (see `Builder::watch_latency`).
    pub watch_latency: Duration,
    /// Set when the `MemServer` is dropped: connections still open get 503.
    pub stopped: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock would be a bug in this crate; keep serving.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// A request path, split into its API parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    Health,
    CoreGroup,
    Groups,
    CoreVersion(String),
    Group(String),
    GroupVersion(String, String),
    Resource(ResPath),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ResPath {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let mk = |ns: Option<&str>, plural: &str, name: Option<&&str>, sub: Option<&&str>| {
        Route::Resource(ResPath {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            namespace: ns.map(String::from),
            name: name.map(|s| s.to_string()),
            subresource: sub.map(|s| s.to_string()),
        })
    };
    match rest {
        ["namespaces", ns, sub] if group.is_empty() && matches!(*sub, "status" | "finalize") => {
            mk(None, "namespaces", Some(ns), Some(sub))
        }
        ["namespaces", ns, plural, tail @ ..] => match tail {
            [] => mk(Some(ns), plural, None, None),
            [name] => mk(Some(ns), plural, Some(name), None),
            [name, sub] => mk(Some(ns), plural, Some(name), Some(sub)),
            _ => Route::Unknown,
        },
        [plural] => mk(None, plural, None, None),
        [plural, name] => mk(None, plural, Some(name), None),
        [plural, name, sub] => mk(None, plural, Some(name), Some(sub)),
        _ => Route::Unknown,
    }
}

pub(crate) fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreGroup,
        ["api", v] => Route::CoreVersion(v.to_string()),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::Unknown,
    }
}

type Query = HashMap<String, String>;

fn classify(method: &Method, route: &Route, q: &Query, content_type: &str) -> Verb {
    let Route::Resource(r) = route else {
        return match route {
            Route::Unknown => Verb::Other,
            _ => Verb::Discovery,
        };
    };
    let item = r.name.is_some();
    match *method {
        Method::GET if item => Verb::Get,
        Method::GET if is_true(q.get("watch")) => Verb::Watch,
        Method::GET => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH if content_type.starts_with("application/apply-patch") => Verb::Apply,
        Method::PATCH => Verb::Patch,
        Method::DELETE if item => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => Verb::Other,
    }
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

fn json_response(code: u16, body: &Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    (code, axum::Json(body)).into_response()
}

async fn handle(State(srv): State<Arc<Shared>>, req: Request) -> Response {
    if srv.stopped.load(std::sync::atomic::Ordering::SeqCst) {
        return ApiError::from_code(503, Some("the server is shut down".into())).into_response();
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query: Query = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
    let accept = header(header::ACCEPT).unwrap_or_default();
    let user_agent = header(header::USER_AGENT);
    let route = parse_route(&path);
    let verb = classify(&parts.method, &route, &query, &content_type);
    let rp = match &route {
        Route::Resource(r) => r.clone(),
        _ => ResPath::default(),
    };
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("cannot read body: {e}")).into_response();
        }
    };
    let record = RequestRecord {
        seq: 0,
        method: parts.method.clone(),
        path: path.clone(),
        query: raw_query,
        verb,
        group: rp.group.clone(),
        version: rp.version.clone(),
        resource: rp.plural.clone(),
        subresource: rp.subresource.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        field_manager: query.get("fieldManager").cloned(),
        user_agent: user_agent.clone(),
        status: 0,
        changed: false,
        faulted: false,
        body: if srv.hooks.record_bodies {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            String::new()
        },
    };
    let seq = srv.hooks.log_start(record.clone());
    let (fault, faulted) = srv.hooks.before(&record).await;
    if let FaultOutcome::Fail { code, message } = fault {
        srv.hooks.log_finish(seq, code, false, true);
        return ApiError::from_code(code, message).into_response();
    }
    let ctx = Ctx {
        method: parts.method,
        query,
        content_type,
        accept,
        user_agent,
        body,
    };
    let (resp, changed) = match dispatch(&srv, &route, verb, &ctx) {
        Ok(Reply::Json(code, v, changed)) => (json_response(code, &v), changed),
        Ok(Reply::Raw(r)) => (r, false),
        Err(e) => (e.into_response(), false),
    };
    srv.hooks
        .log_finish(seq, resp.status().as_u16(), changed, faulted);
    resp
}

struct Ctx {
    method: Method,
    query: Query,
    content_type: String,
    accept: String,
    user_agent: Option<String>,
    body: Bytes,
}

enum Reply {
    Json(u16, Value, bool),
    Raw(Response),
}

fn ok(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(200, v, false))
}

fn dispatch(srv: &Arc<Shared>, route: &Route, verb: Verb, ctx: &Ctx) -> Result<Reply, ApiError> {
    if ctx.method != Method::GET && !matches!(route, Route::Resource(_)) {
        return Err(ApiError::method_not_allowed());
    }
    match route {
        Route::Version => ok(registry::version_info()),
        Route::Health => Ok(Reply::Raw("ok".into_response())),
        Route::CoreGroup if aggregated(ctx) => {
            ok(registry::aggregated_discovery(&srv.store().types, true))
        }
        Route::Groups if aggregated(ctx) => {
            ok(registry::aggregated_discovery(&srv.store().types, false))
        }
        Route::CoreGroup => ok(registry::core_api_versions()),
        Route::Groups => ok(registry::api_group_list(&srv.store().types)),
        Route::CoreVersion(v) => registry::api_resource_list(&srv.store().types, "", v)
            .map(json200)
            .ok_or_else(ApiError::no_route),
        Route::Group(g) => registry::api_group(&srv.store().types, g)
            .map(json200)
            .ok_or_else(ApiError::no_route),
        Route::GroupVersion(g, v) => registry::api_resource_list(&srv.store().types, g, v)
            .map(json200)
            .ok_or_else(ApiError::no_route),
        Route::Resource(r) => {
            let reply = resource(srv, r, verb, ctx)?;
            Ok(match reply {
                Reply::Json(code, body, changed) if wants_metadata(ctx) && code < 300 => {
                    Reply::Json(code, partial_metadata(body), changed)
                }
                other => other,
            })
        }
        Route::Unknown => Err(ApiError::no_route()),
    }
}

/// The client asked for `PartialObjectMetadata` (kube's `get_metadata`, `list_metadata`,
/// `metadata_watcher`).
fn wants_metadata(ctx: &Ctx) -> bool {
    ctx.accept.contains("as=PartialObjectMetadata")
}

/// The client asked for aggregated discovery (`apidiscovery.k8s.io/v2`).
fn aggregated(ctx: &Ctx) -> bool {
    ctx.accept.contains("as=APIGroupDiscoveryList")
}

fn partial_object(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Reduces an object or a list to `PartialObjectMetadata(List)`; `Status` passes through.
fn partial_metadata(body: Value) -> Value {
    match body.get("kind").and_then(Value::as_str) {
        Some("Status") => body,
        _ => match body.get("items").and_then(Value::as_array) {
            Some(items) => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": body.get("metadata").cloned().unwrap_or(json!({})),
                "items": items.iter().map(partial_object).collect::<Vec<_>>(),
            }),
            None => partial_object(&body),
        },
    }
}

fn json200(v: Value) -> Reply {
    Reply::Json(200, v, false)
}

fn selector(q: &Query) -> Result<Selector, ApiError> {
    Selector::parse(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    )
}

fn write_opts(ctx: &Ctx, apply: bool) -> WriteOpts {
    let default_manager = || {
        ctx.user_agent
            .as_deref()
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    };
    let field_manager = match ctx.query.get("fieldManager") {
        Some(m) => m.clone(),
        None if apply => String::new(),
        None => default_manager(),
    };
    WriteOpts {
        dry_run: ctx.query.get("dryRun").is_some_and(|d| d == "All"),
        field_manager,
        force: is_true(ctx.query.get("force")),
    }
}

fn parse_body(ctx: &Ctx) -> Result<Value, ApiError> {
    serde_json::from_slice(&ctx.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn resource(srv: &Arc<Shared>, r: &ResPath, verb: Verb, ctx: &Ctx) -> Result<Reply, ApiError> {
    let rt: Arc<ResourceType> = srv
        .store()
        .find_type(&r.group, &r.plural)
        .ok_or_else(ApiError::no_route)?;
    if rt.version(&r.version).is_none() {
        return Err(ApiError::no_route());
    }
    if !rt.namespaced && r.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    if rt.namespaced && r.name.is_some() && r.namespace.is_none() {
        return Err(ApiError::no_route());
    }
    let subresource = match r.subresource.as_deref() {
        None => String::new(),
        Some("status") if rt.has_status(&r.version) => "status".to_string(),
        Some(_) => return Err(ApiError::no_route()),
    };
    let t = Target {
        rt: rt.clone(),
        version: r.version.clone(),
        namespace: r.namespace.clone().unwrap_or_default(),
        name: r.name.clone().unwrap_or_default(),
        subresource,
    };
    let q = &ctx.query;
    let outcome = |o: crate::store::Outcome| Ok(Reply::Json(o.code, o.body, o.changed));
    // `kubectl get` asks custom resources for a Table (server-side printing).
    let printed = |body: Value| {
        let columns = rt
            .version(&r.version)
            .map(|v| v.printer_columns.as_slice())
            .unwrap_or_default();
        if rt.custom && table::wanted(&ctx.accept) {
            let include = q.get("includeObject").map(String::as_str);
            table::convert(&body, columns, include, chrono::Utc::now())
        } else {
            body
        }
    };
    match verb {
        Verb::Get => ok(printed(srv.store().get(&t)?)),
        Verb::List => {
            let limit = q.get("limit").and_then(|l| l.parse().ok());
            ok(printed(srv.store().list(
                &t,
                &selector(q)?,
                limit,
                q.get("continue").map(String::as_str),
            )?))
        }
        Verb::Watch => watch(srv, t, selector(q)?, q, wants_metadata(ctx)).map(Reply::Raw),
        Verb::Create => {
            if r.name.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let body = parse_body(ctx)?;
            outcome(srv.store().create(&t, body, &write_opts(ctx, false))?)
        }
        Verb::Update if r.name.is_some() => {
            let body = parse_body(ctx)?;
            outcome(srv.store().update(&t, body, &write_opts(ctx, false))?)
        }
        Verb::Patch | Verb::Apply if r.name.is_some() => {
            let ct = ctx
                .content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            let kind = match ct {
                "application/json-patch+json" => PatchKind::Json,
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let opts = write_opts(ctx, kind == PatchKind::Apply);
            outcome(srv.store().patch(&t, kind, &ctx.body, &opts)?)
        }
        Verb::Delete => {
            let d = delete_opts(ctx)?;
            outcome(srv.store().delete(&t, &d)?)
        }
        Verb::DeleteCollection => {
            let d = delete_opts(ctx)?;
            outcome(srv.store().delete_collection(&t, &selector(q)?, &d)?)
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn delete_opts(ctx: &Ctx) -> Result<DeleteOpts, ApiError> {
    let body: Value = if ctx.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(ctx)?
    };
    let s = |p: &str| body.pointer(p).and_then(Value::as_str).map(String::from);
    let dry_run = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|d| d == "All"))
        || ctx.query.get("dryRun").is_some_and(|d| d == "All");
    Ok(DeleteOpts {
        propagation: s("/propagationPolicy")
            .or_else(|| ctx.query.get("propagationPolicy").cloned()),
        uid: s("/preconditions/uid"),
        resource_version: s("/preconditions/resourceVersion"),
        dry_run,
    })
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({ "type": kind, "object": object })).expect("JSON encodes");
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(rt: &ResourceType, version: &str, rv: u64, initial_end: bool) -> Bytes {
    let mut obj = json!({
        "kind": rt.kind,
        "apiVersion": rt.api_version(version),
        "metadata": { "resourceVersion": rv.to_string() },
    });
    if initial_end {
        obj["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line("BOOKMARK", &obj)
}

/// The watch event (if any) that `e` produces for a watch on `t` with `sel`.
fn event_for(t: &Target, sel: &Selector, e: &StoredEvent) -> Option<(EventType, Value)> {
    if e.group != t.rt.storage_group() || e.plural != t.rt.plural {
        return None;
    }
    if !t.namespace.is_empty() && e.namespace != t.namespace {
        return None;
    }
    let now = t.rt.selects(sel, &e.object);
    let kind = match (e.kind, &e.old) {
        (EventType::Modified, Some(old)) => match (t.rt.selects(sel, old), now) {
            (true, true) => EventType::Modified,
            (true, false) => EventType::Deleted,
            (false, true) => EventType::Added,
            (false, false) => return None,
        },
        (k, _) if now => k,
        _ => return None,
    };
    Some((kind, present(&e.object, &t.rt, &t.version)))
}

fn watch(
    srv: &Arc<Shared>,
    t: Target,
    sel: Selector,
    q: &Query,
    metadata_only: bool,
) -> Result<Response, ApiError> {
    let view = move |o: &Value| {
        if metadata_only {
            partial_object(o)
        } else {
            o.clone()
        }
    };
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = is_true(q.get("allowWatchBookmarks"));
    let send_initial = is_true(q.get("sendInitialEvents"));
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let mut rv_rx = srv.rv_rx.clone();
    rv_rx.borrow_and_update();
    let mut close_rx = srv.close_tx.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (initial, mut cursor) = {
        let store = srv.store();
        if rv_param.is_empty() || rv_param == "0" || send_initial {
            let list = store.list(&t, &sel, None, None)?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            (items, store.rv)
        } else {
            let x: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
            })?;
            if x < store.compacted {
                let gone = ApiError::gone(format!(
                    "too old resource version: {x} ({})",
                    store.compacted
                ));
                // A full queue is impossible here: the channel is new.
                let _ = tx.try_send(line("ERROR", &gone.to_status()));
                return Ok(stream_response(rx));
            }
            (Vec::new(), x)
        }
    };
    let srv = srv.clone();
    let interval = srv.bookmark_interval;
    let latency = srv.watch_latency;
    tokio::spawn(async move {
        for obj in &initial {
            if tx.send(line("ADDED", &view(obj))).await.is_err() {
                return;
            }
        }
        if send_initial
            && bookmarks
            && tx
                .send(bookmark(&t.rt, &t.version, cursor, true))
                .await
                .is_err()
        {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            rv_rx.borrow_and_update();
            let batch: Result<(Vec<Bytes>, u64), Value> = {
                let store = srv.store();
                if cursor < store.compacted {
                    Err(ApiError::gone(format!(
                        "too old resource version: {cursor} ({})",
                        store.compacted
                    ))
                    .to_status())
                } else {
                    let start = store.history.partition_point(|e| e.rv <= cursor);
                    let lines = store
                        .history
                        .range(start..)
                        .filter_map(|e| event_for(&t, &sel, e))
                        .map(|(k, o)| line(k.as_str(), &view(&o)))
                        .collect();
                    Ok((lines, store.rv))
                }
            };
            match batch {
                Err(status) => {
                    let _ = tx.send(line("ERROR", &status)).await;
                    return;
                }
                Ok((lines, rv)) => {
                    for l in lines {
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                    cursor = rv;
                }
            }
            tokio::select! {
                r = rv_rx.changed() => if r.is_err() { return },
                _ = close_rx.changed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(bookmark(&t.rt, &t.version, cursor, false)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
            // A real API server's watch lags its writes (etcd, the watch cache):
            // a client's cache can be behind what it has just written.
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
        }
    });
    Ok(stream_response(rx))
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_api_parts() {
        let r = |p: &str| parse_route(p);
        assert_eq!(r("/api"), Route::CoreGroup);
        assert_eq!(
            r("/apis/apps/v1"),
            Route::GroupVersion("apps".into(), "v1".into())
        );
        let Route::Resource(x) = r("/api/v1/namespaces/ns1/secrets/s1") else {
            panic!()
        };
        assert_eq!(
            (x.namespace.as_deref(), x.plural.as_str(), x.name.as_deref()),
            (Some("ns1"), "secrets", Some("s1"))
        );
        let Route::Resource(x) = r("/api/v1/namespaces/ns1") else {
            panic!()
        };
        assert_eq!(
            (x.plural.as_str(), x.name.as_deref(), x.namespace),
            ("namespaces", Some("ns1"), None)
        );
        let Route::Resource(x) = r("/api/v1/namespaces/ns1/status") else {
            panic!()
        };
        assert_eq!(
            (x.plural.as_str(), x.subresource.as_deref()),
            ("namespaces", Some("status"))
        );
        let Route::Resource(x) = r("/apis/tokenops.dev/v1alpha1/namespaces/a/apitokens/t/status")
        else {
            panic!()
        };
        assert_eq!(
            (x.group.as_str(), x.subresource.as_deref()),
            ("tokenops.dev", Some("status"))
        );
        let Route::Resource(x) = r("/apis/tokenops.dev/v1alpha1/clustertokenbackends/c") else {
            panic!()
        };
        assert_eq!((x.namespace, x.name.as_deref()), (None, Some("c")));
    }
}
