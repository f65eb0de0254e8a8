//! kube-runtime against the server, unchanged: watcher, Controller, Recorder.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer;
use kube::runtime::watcher::{self, Event as WEvent};
use kube::{Resource, ResourceExt};
use kube_memserver::{MemServer, Verb};
use serde_json::json;
use support::*;

/// Summarises watcher events as (kind, name, size).
fn summary(e: &WEvent<Widget>) -> (&'static str, String, i32) {
    match e {
        WEvent::Apply(w) => ("apply", w.name_any(), w.spec.size),
        WEvent::Delete(w) => ("delete", w.name_any(), w.spec.size),
        WEvent::Init => ("init", String::new(), 0),
        WEvent::InitApply(w) => ("init-apply", w.name_any(), w.spec.size),
        WEvent::InitDone => ("init-done", String::new(), 0),
    }
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = watcher::Result<WEvent<Widget>>> + Unpin),
) -> (&'static str, String, i32) {
    let e = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("watch event within 10s")
        .expect("watch ok")
        .expect("stream open");
    summary(&e)
}

#[tokio::test]
async fn watcher_sees_create_modify_delete_in_order() {
    // No periodic bookmarks: they would move the watcher past the expired history.
    let server = MemServer::builder()
        .bookmark_interval(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    install_crds(&server).await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("pre", 1))
        .await
        .unwrap();

    let mut stream = watcher::watcher(widgets.clone(), watcher::Config::default()).boxed();
    assert_eq!(next_event(&mut stream).await.0, "init");
    assert_eq!(
        next_event(&mut stream).await,
        ("init-apply", "pre".into(), 1)
    );
    assert_eq!(next_event(&mut stream).await.0, "init-done");

    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    assert_eq!(next_event(&mut stream).await, ("apply", "w".into(), 1));
    assert_eq!(next_event(&mut stream).await, ("apply", "w".into(), 2));
    assert_eq!(next_event(&mut stream).await, ("delete", "w".into(), 2));

    // A closed watch resumes from its last resourceVersion without a relist...
    server.close_watches();
    widgets
        .create(&PostParams::default(), &widget("after-close", 3))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        ("apply", "after-close".into(), 3)
    );

    // ...while an expired history forces a 410 and a fresh list. The Secret moves
    // the resourceVersion past everything this watcher has seen.
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let mut s = Secret::default();
    s.metadata.name = Some("bump".into());
    secrets.create(&PostParams::default(), &s).await.unwrap();
    server.restart_watches();
    let mut saw_gone = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event")
        {
            Some(Ok(e)) if summary(&e).0 == "init" => break,
            Some(Ok(e)) => panic!("unexpected event before the relist: {:?}", summary(&e)),
            Some(Err(_)) => saw_gone = true,
            None => panic!("stream ended"),
        }
    }
    assert!(saw_gone, "the watcher saw the 410");
    assert_eq!(
        next_event(&mut stream).await,
        ("init-apply", "after-close".into(), 3)
    );
    assert_eq!(
        next_event(&mut stream).await,
        ("init-apply", "pre".into(), 1)
    );
    assert_eq!(next_event(&mut stream).await.0, "init-done");
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_and_bookmarks() {
    let server = server_with_crds().await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let cfg = watcher::Config::default().streaming_lists().labels("!skip");
    let mut stream = watcher::watcher(widgets.clone(), cfg).boxed();
    assert_eq!(next_event(&mut stream).await.0, "init");
    assert_eq!(next_event(&mut stream).await, ("init-apply", "a".into(), 1));
    assert_eq!(next_event(&mut stream).await.0, "init-done");

    let mut skipped = widget("b", 2);
    skipped.metadata.labels = Some([("skip".to_string(), "yes".to_string())].into());
    widgets
        .create(&PostParams::default(), &skipped)
        .await
        .unwrap();
    widgets
        .create(&PostParams::default(), &widget("c", 3))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await,
        ("apply", "c".into(), 3),
        "label selector filters b"
    );
    // Losing the label makes b appear.
    widgets
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": null}})),
        )
        .await
        .unwrap();
    assert_eq!(next_event(&mut stream).await, ("apply", "b".into(), 2));
    let watch = server
        .requests_since(0)
        .into_iter()
        .find(|r| r.verb == Verb::Watch)
        .unwrap();
    assert!(
        watch.query.contains("sendInitialEvents=true"),
        "{}",
        watch.query
    );
}

#[tokio::test]
async fn raw_watch_sends_bookmarks_when_allowed() {
    let server = MemServer::builder()
        .bookmark_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let rv = secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = kube::api::WatchParams::default().timeout(5);
    let mut stream = secrets.watch(&wp, &rv).await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, kube::api::WatchEvent::Bookmark(ref b) if b.metadata.resource_version == rv),
        "{first:?}"
    );

    // A too-old resourceVersion yields a 410 error event.
    let mut s = Secret::default();
    s.metadata.name = Some("x".into());
    secrets.create(&PostParams::default(), &s).await.unwrap();
    server.expire_history();
    let mut old = secrets
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match old.try_next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

struct Ctx {
    client: kube::Client,
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<finalizer::Error<kube::Error>>),
}

const MANAGER: &str = "widget-controller";
const FINALIZER: &str = "test.memserver.dev/cleanup";

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = w.namespace().unwrap();
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    let client = ctx.client.clone();
    finalizer(&widgets, FINALIZER, w, |ev| async move {
        match ev {
            finalizer::Event::Apply(w) => {
                let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
                let name = format!("{}-secret", w.name_any());
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        owner_references: Some(vec![w.controller_owner_ref(&()).unwrap()]),
                        ..Default::default()
                    },
                    string_data: Some([("size".to_string(), w.spec.size.to_string())].into()),
                    ..Default::default()
                };
                let pp = PatchParams::apply(MANAGER).force();
                secrets.patch(&name, &pp, &Patch::Apply(&secret)).await?;
                let status = json!({
                    "apiVersion": "test.memserver.dev/v1", "kind": "Widget",
                    "status": {"ready": true, "observed_generation": w.metadata.generation}
                });
                let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns);
                widgets
                    .patch_status(&w.name_any(), &pp, &Patch::Apply(&status))
                    .await?;
                Ok(Action::await_change())
            }
            finalizer::Event::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Widget>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn controller_reconciles_widgets_into_secrets_and_status() {
    let server = server_with_crds().await;
    let client = server.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let controller = tokio::spawn(
        Controller::new(
            Api::<Widget>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
        )
        .run(
            reconcile,
            error_policy,
            Arc::new(Ctx {
                client: client.clone(),
            }),
        )
        .for_each(|_| async {}),
    );

    widgets
        .create(&PostParams::default(), &widget("w", 3))
        .await
        .unwrap();
    let reconciled = wait_for("status to be written", || async {
        let w = widgets.get("w").await.unwrap();
        w.status
            .as_ref()
            .is_some_and(|s| s.ready && s.observed_generation == Some(1))
            .then_some(w)
    })
    .await;
    assert_eq!(reconciled.finalizers(), [FINALIZER]);
    let secret = secrets.get("w-secret").await.unwrap();
    assert_eq!(secret.data.as_ref().unwrap()["size"].0, b"3");
    assert_eq!(secret.owner_references()[0].uid, reconciled.uid().unwrap());

    // A spec change is reconciled again.
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .unwrap();
    wait_for("the new generation to be observed", || async {
        let w = widgets.get("w").await.unwrap();
        (w.status?.observed_generation == Some(2)).then_some(())
    })
    .await;
    assert_eq!(
        secrets.get("w-secret").await.unwrap().data.unwrap()["size"].0,
        b"4"
    );

    // A converged reconcile changes nothing: its applies are no-ops.
    let mark = server.request_mark();
    let rv_before = server.resource_version();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"poke": "1"}}})),
        )
        .await
        .unwrap();
    wait_for("the poke to be reconciled", || async {
        let writes = server.writes_since(mark);
        (writes.iter().filter(|w| w.verb == Verb::Apply).count() >= 2).then_some(())
    })
    .await;
    let changed: Vec<_> = server
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.changed)
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only the annotation patch changed state: {changed:?}"
    );
    assert_eq!(server.resource_version(), rv_before + 1);

    // The controller survives an apiserver restart (watches closed, history gone).
    server.restart_watches();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    wait_for("reconcile after the restart", || async {
        let w = widgets.get("w").await.unwrap();
        (w.status?.observed_generation == Some(3)).then_some(())
    })
    .await;

    // Deleting runs the finalizer, then the object and its Secret go away.
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    wait_for("widget and secret to be gone", || async {
        let w = widgets.get_opt("w").await.unwrap();
        let s = secrets.get_opt("w-secret").await.unwrap();
        (w.is_none() && s.is_none()).then_some(())
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn recorder_publishes_events() {
    let server = server_with_crds().await;
    let client = server.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let w = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "widget-controller".into(),
            instance: Some("pod-0".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Rotated".into(),
        note: Some("token rotated".into()),
        action: "Rotate".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    // The same event again becomes a series on the existing object.
    recorder.publish(&ev, &reference).await.unwrap();

    let events: Api<EventV1> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Rotated"));
    assert_eq!(e.note.as_deref(), Some("token rotated"));
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("w"));
    assert_eq!(e.reporting_controller.as_deref(), Some("widget-controller"));
    assert!(e.series.is_some());

    // The same Event, read through the core v1 API.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(server.client(), "default");
    let core_list = core.list(&ListParams::default()).await.unwrap();
    assert_eq!(core_list.items.len(), 1);
    let ce = &core_list.items[0];
    assert_eq!(ce.message.as_deref(), Some("token rotated"));
    assert_eq!(ce.involved_object.name.as_deref(), Some("w"));
    assert_eq!(ce.reporting_component.as_deref(), Some("widget-controller"));
    // The request log carries bodies: the event note went out in a write.
    assert!(
        server
            .writes_to_since("events", 0)
            .iter()
            .any(|r| r.body.contains("token rotated"))
    );
    let about_w = ListParams::default().fields("involvedObject.name=w");
    assert_eq!(core.list(&about_w).await.unwrap().items.len(), 1);
    let about_other = ListParams::default().fields("involvedObject.name=other");
    assert!(core.list(&about_other).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn metadata_watcher_streams_partial_objects() {
    let server = MemServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let metas: Api<kube::core::PartialObjectMeta<Secret>> =
        Api::namespaced(server.client(), "default");
    let mut stream = watcher::watcher(metas, watcher::Config::default()).boxed();
    let mut s = Secret::default();
    s.metadata.name = Some("m".into());
    secrets.create(&PostParams::default(), &s).await.unwrap();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("event within 10s")
            .unwrap()
            .unwrap();
        if let WEvent::Apply(m) | WEvent::InitApply(m) = e
            && m.name_any() == "m"
        {
            assert_eq!(m.types.unwrap().kind, "PartialObjectMetadata");
            break;
        }
    }
}

/// With watch latency a reflector's copy is older than the write just made, and
/// a finalizer JSON patch computed from it fails as on a real API server.
#[tokio::test]
async fn a_lagging_watch_leaves_the_cache_behind_and_a_finalizer_patch_from_it_is_refused() {
    let server = MemServer::builder()
        .watch_latency(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    install_crds(&server).await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let (reader, writer) = kube::runtime::reflector::store();
    let reflector = tokio::spawn(
        kube::runtime::reflector(
            writer,
            watcher::watcher(widgets.clone(), watcher::Config::default()),
        )
        .for_each(|_| async {}),
    );
    let key = kube::runtime::reflector::ObjectRef::new("w").within("default");
    wait_for("the reflector to hold the widget", || async {
        reader.get(&key)
    })
    .await;

    let add_finalizer = |name: &'static str| {
        Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [name]},
            ]))
            .unwrap(),
        )
    };
    widgets
        .patch("w", &PatchParams::default(), &add_finalizer("a.dev/first"))
        .await
        .unwrap();
    // The cache has not seen the write yet; a patch built from it conflicts.
    let cached = reader.get(&key).unwrap();
    assert!(cached.finalizers().is_empty(), "the cache is not behind");
    let refused = widgets
        .patch("w", &PatchParams::default(), &add_finalizer("a.dev/second"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref e) if e.code == 422),
        "{refused:?}"
    );
    wait_for("the cache to catch up", || async {
        reader.get(&key).filter(|w| !w.finalizers().is_empty())
    })
    .await;
    reflector.abort();
}
