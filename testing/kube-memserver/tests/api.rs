//! The server against a real `kube::Client` over HTTP: CRUD, conflicts, status,
//! generation, finalizers, garbage collection, patches, apply, discovery, hooks.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, Resource, ResourceExt};
use kube_memserver::{Fault, MemServer, Verb};
use serde_json::json;
use support::*;

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn custom_resources_support_create_get_list_replace_delete() {
    let server = server_with_crds().await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "team-a");

    let created = widgets
        .create(&PostParams::default(), &widget("w1", 3))
        .await
        .unwrap();
    assert_eq!(created.spec.size, 3);
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.namespace().as_deref(), Some("team-a"));
    let managers = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managers.len(), 1, "the creator owns the fields it set");

    let fetched = widgets.get("w1").await.unwrap();
    assert_eq!(fetched, created);
    assert!(widgets.get_opt("missing").await.unwrap().is_none());

    widgets
        .create(&PostParams::default(), &widget("w2", 5))
        .await
        .unwrap();
    let names: Vec<String> = widgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names, ["w1", "w2"]);
    let all: Api<Widget> = Api::all(server.client());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    let mut changed = fetched.clone();
    changed.spec.size = 4;
    let replaced = widgets
        .replace("w1", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.spec.size, 4);
    assert_ne!(replaced.resource_version(), fetched.resource_version());

    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .unwrap();
    let gone = status_of(widgets.get("w1").await);
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert!(
        gone.message
            .contains("widgets.test.memserver.dev \"w1\" not found"),
        "{}",
        gone.message
    );

    // Cluster-scoped custom resources live outside namespaces.
    let gadgets: Api<Gadget> = Api::all(server.client());
    let g = Gadget::new(
        "g1",
        GadgetSpec {
            color: "red".into(),
        },
    );
    let g = gadgets.create(&PostParams::default(), &g).await.unwrap();
    assert_eq!(g.namespace(), None);
    assert_eq!(
        gadgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn secrets_round_trip_and_string_data_becomes_data() {
    let server = MemServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let created = secrets
        .create(&PostParams::default(), &secret("s1", &[("token", "abc")]))
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.metadata.generation, None);

    let mut with_string_data = secret("s2", &[]);
    with_string_data.string_data = Some(BTreeMap::from([("token".to_string(), "xyz".to_string())]));
    let s2 = secrets
        .create(&PostParams::default(), &with_string_data)
        .await
        .unwrap();
    assert_eq!(s2.string_data, None);
    assert_eq!(s2.data.unwrap()["token"].0, b"xyz");

    let got = secrets.get("s1").await.unwrap();
    assert_eq!(got.data.unwrap()["token"].0, b"abc");
    secrets
        .delete("s1", &DeleteParams::default())
        .await
        .unwrap();
    assert!(secrets.get_opt("s1").await.unwrap().is_none());
}

#[tokio::test]
async fn stale_writes_and_duplicate_creates_conflict() {
    let server = server_with_crds().await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    let v1 = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();

    let dup = status_of(
        widgets
            .create(&PostParams::default(), &widget("w", 1))
            .await,
    );
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let mut first = v1.clone();
    first.spec.size = 2;
    widgets
        .replace("w", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = v1.clone();
    stale.spec.size = 3;
    let err = status_of(widgets.replace("w", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.is_conflict());

    // Custom resources need a resourceVersion to be replaced.
    let mut unconditional = v1.clone();
    unconditional.metadata.resource_version = None;
    let err = status_of(
        widgets
            .replace("w", &PostParams::default(), &unconditional)
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    // A merge patch that carries a resourceVersion is a precondition too.
    let patch =
        json!({"metadata": {"resourceVersion": v1.resource_version()}, "spec": {"size": 9}});
    let err = status_of(
        widgets
            .patch("w", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn status_subresource_keeps_spec_and_status_apart() {
    let server = server_with_crds().await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    let mut w = widget("w", 1);
    w.status = Some(WidgetStatus {
        ready: true,
        observed_generation: None,
    });
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.status, None, "status is dropped on create");

    // Writing status through /status leaves spec alone.
    let mut s = created.clone();
    s.spec.size = 100;
    s.status = Some(WidgetStatus {
        ready: true,
        observed_generation: Some(1),
    });
    let after_status = widgets
        .replace_status("w", &PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(after_status.spec.size, 1);
    assert!(after_status.status.as_ref().unwrap().ready);

    // Writing the main resource leaves status alone.
    let mut m = after_status.clone();
    m.spec.size = 2;
    m.status = None;
    let after_main = widgets
        .replace("w", &PostParams::default(), &m)
        .await
        .unwrap();
    assert_eq!(after_main.spec.size, 2);
    assert_eq!(after_main.status, after_status.status);

    let patch = json!({"spec": {"size": 7}, "status": {"ready": false}});
    let patched = widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.size, 2);
    assert!(!patched.status.unwrap().ready);
}

#[tokio::test]
async fn generation_moves_on_spec_changes_only() {
    let server = server_with_crds().await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    let pp = PatchParams::default();
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();

    let labelled = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let status = widgets
        .patch_status("w", &pp, &Patch::Merge(json!({"status": {"ready": true}})))
        .await
        .unwrap();
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );

    let spec = widgets
        .patch("w", &pp, &Patch::Merge(json!({"spec": {"size": 2}})))
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));

    // A write that changes nothing is a no-op: same resourceVersion, no event.
    let same = widgets
        .patch("w", &pp, &Patch::Merge(json!({"spec": {"size": 2}})))
        .await
        .unwrap();
    assert_eq!(same.resource_version(), spec.resource_version());
    assert_eq!(same.metadata.generation, Some(2));
    let last = server.requests_since(0).pop().unwrap();
    assert!(last.is_write() && !last.changed);
}

#[tokio::test]
async fn finalizers_hold_an_object_until_they_are_removed() {
    let server = MemServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("held".into()),
            finalizers: Some(vec!["test.dev/hold".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let pending = cms.delete("held", &DeleteParams::default()).await.unwrap();
    let pending = pending
        .left()
        .expect("deletion is pending while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = cms.get("held").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());

    let err = status_of(
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test.dev/hold", "test.dev/new"]}})),
        )
        .await,
    );
    assert_eq!(
        err.code, 422,
        "no new finalizers on an object being deleted"
    );

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let server = server_with_crds().await;
    let client = server.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let owner = widgets
        .create(&PostParams::default(), &widget("owner", 1))
        .await
        .unwrap();
    let owner_ref = owner.controller_owner_ref(&()).unwrap();

    for name in ["dep-1", "dep-2"] {
        let mut s = secret(name, &[("k", "v")]);
        s.metadata.owner_references = Some(vec![owner_ref.clone()]);
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let mut kept = secret("unowned", &[]);
    kept.metadata.owner_references = None;
    secrets.create(&PostParams::default(), &kept).await.unwrap();

    widgets
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    wait_for("dependents to be collected", || async {
        let left = secrets.list(&ListParams::default()).await.unwrap();
        (left.items.len() == 1).then_some(())
    })
    .await;
    assert!(secrets.get_opt("unowned").await.unwrap().is_some());

    // Orphan propagation strips the ownerReference instead.
    let owner = widgets
        .create(&PostParams::default(), &widget("owner2", 1))
        .await
        .unwrap();
    let mut s = secret("orphan", &[]);
    s.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    widgets
        .delete("owner2", &DeleteParams::orphan())
        .await
        .unwrap();
    wait_for("owner to go", || async {
        widgets
            .get_opt("owner2")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let orphan = secrets.get("orphan").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Foreground propagation removes dependents before the owner.
    let owner = widgets
        .create(&PostParams::default(), &widget("owner3", 1))
        .await
        .unwrap();
    let mut s = secret("fg", &[]);
    s.metadata.owner_references = Some(vec![OwnerReference {
        block_owner_deletion: Some(true),
        ..owner.controller_owner_ref(&()).unwrap()
    }]);
    secrets.create(&PostParams::default(), &s).await.unwrap();
    widgets
        .delete("owner3", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_for("foreground deletion", || async {
        let owner_gone = widgets.get_opt("owner3").await.unwrap().is_none();
        let dep_gone = secrets.get_opt("fg").await.unwrap().is_none();
        (owner_gone && dep_gone).then_some(())
    })
    .await;
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers() {
    let server = server_with_crds().await;
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    let alice = PatchParams::apply("alice");
    let bob = PatchParams::apply("bob");
    let cfg = |size: i32, label: Option<&str>| {
        let mut w = widget("w", size);
        w.spec.label = label.map(String::from);
        w
    };

    let created = widgets
        .patch("w", &alice, &Patch::Apply(cfg(1, Some("a"))))
        .await
        .unwrap();
    assert_eq!(created.spec.size, 1);
    let mf = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("alice"), Some("Apply"))
    );

    // Re-applying the same configuration changes nothing.
    let again = widgets
        .patch("w", &alice, &Patch::Apply(cfg(1, Some("a"))))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), created.resource_version());

    // Bob applying a different value for alice's field conflicts...
    let err = status_of(widgets.patch("w", &bob, &Patch::Apply(cfg(2, None))).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("alice"), "{}", err.message);
    // ...unless forced, which moves ownership to bob.
    let forced = widgets
        .patch("w", &bob.clone().force(), &Patch::Apply(cfg(2, None)))
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 2);
    assert_eq!(forced.spec.label.as_deref(), Some("a"));

    // Alice stops applying the label: nobody else owns it, so it is removed.
    let mut no_label = serde_json::to_value(cfg(2, None)).unwrap();
    no_label["spec"].as_object_mut().unwrap().remove("size");
    let pruned = widgets
        .patch("w", &alice, &Patch::Apply(&no_label))
        .await
        .unwrap();
    assert_eq!(pruned.spec.label, None);
    assert_eq!(pruned.spec.size, 2, "bob's field stays");

    // Applying status goes through /status and leaves spec alone.
    let status = json!({
        "apiVersion": "test.memserver.dev/v1", "kind": "Widget",
        "status": {"ready": true, "observed_generation": 2}
    });
    let st = widgets
        .patch_status("w", &alice, &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().observed_generation, Some(2));
    assert_eq!(st.spec.size, 2);

    // An apply without a field manager is rejected.
    let err = status_of(
        widgets
            .patch("w", &PatchParams::default(), &Patch::Apply(cfg(2, None)))
            .await,
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn merge_json_and_strategic_patches_apply() {
    let server = MemServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
        ])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pp = PatchParams::default();

    let merged = cms
        .patch(
            "c",
            &pp,
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.data.unwrap(),
        BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())])
    );

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "20"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
    ]))
    .unwrap();
    let patched = cms.patch("c", &pp, &Patch::Json::<()>(ops)).await.unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["b"], "20");
    assert_eq!(patched.labels()["x"], "y");

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/b", "value": "nope"}]))
            .unwrap();
    let err = status_of(cms.patch("c", &pp, &Patch::Json::<()>(failing)).await);
    assert_eq!(err.code, 422);

    let strategic = cms
        .patch("c", &pp, &Patch::Strategic(json!({"data": {"d": "4"}})))
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["d"], "4");

    let missing = status_of(cms.patch("nope", &pp, &Patch::Merge(json!({}))).await);
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn generate_name_and_selectors_work() {
    let server = MemServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for (i, app) in ["web", "web", "db"].iter().enumerate() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                generate_name: Some("cm-".into()),
                labels: Some(BTreeMap::from([
                    ("app".into(), app.to_string()),
                    ("i".into(), i.to_string()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        assert!(created.name_any().starts_with("cm-") && created.name_any().len() == 8);
    }
    let web = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 2);
    let not_web = cms
        .list(&ListParams::default().labels("app notin (web)"))
        .await
        .unwrap();
    assert_eq!(not_web.items.len(), 1);
    let name = web.items[0].name_any();
    let by_name = cms
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    // Pagination with limit/continue.
    let page1 = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page1.items.len(), 2);
    let token = page1.metadata.continue_.clone().unwrap();
    let page2 = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(page2.items.len(), 1);
    assert!(page2.metadata.continue_.is_none());
}

#[tokio::test]
async fn lease_updates_conflict_like_leader_election() {
    let server = MemServer::start().await;
    let leases_a: Api<Lease> = Api::namespaced(server.client(), "default");
    let leases_b: Api<Lease> = Api::namespaced(server.client(), "default");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    leases_a
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    let dup = status_of(leases_b.create(&PostParams::default(), &lease).await);
    assert!(dup.is_already_exists());

    // Both candidates read the same version; only the first write wins.
    let seen_a = leases_a.get("leader").await.unwrap();
    let seen_b = leases_b.get("leader").await.unwrap();
    let mut renew = seen_a.clone();
    renew.spec.as_mut().unwrap().lease_transitions = Some(1);
    leases_a
        .replace("leader", &PostParams::default(), &renew)
        .await
        .unwrap();
    let mut takeover = seen_b.clone();
    takeover.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let err = status_of(
        leases_b
            .replace("leader", &PostParams::default(), &takeover)
            .await,
    );
    assert!(err.is_conflict());

    // After re-reading, b can take over.
    let fresh = leases_b.get("leader").await.unwrap();
    let mut takeover = fresh.clone();
    takeover.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let now = leases_b
        .replace("leader", &PostParams::default(), &takeover)
        .await
        .unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn discovery_lists_builtin_and_custom_resources() {
    let server = server_with_crds().await;
    let discovery = kube::Discovery::new(server.client()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "test.memserver.dev",
            "v1",
            "Widget",
        ))
        .expect("Widget is discoverable");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(discovery.has_group("apps"));
    assert!(discovery.has_group("events.k8s.io"));
    assert!(discovery.has_group("coordination.k8s.io"));
    let (gadget, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "test.memserver.dev",
            "v1",
            "Gadget",
        ))
        .unwrap();
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);

    // The discovered resource works with the dynamic API.
    let dynamic: Api<kube::api::DynamicObject> = Api::all_with(server.client(), &gadget);
    assert!(
        dynamic
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let version = server.client().apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn crd_schema_prunes_unknown_fields_and_rejects_wrong_types() {
    let server = server_with_crds().await;
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(
        server.client(),
        "default",
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.memserver.dev/v1", "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, "unknown": true}
    }))
    .unwrap();
    let created = widgets.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.data["spec"], json!({"size": 1}));

    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.memserver.dev/v1", "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {"size": "big"}
    }))
    .unwrap();
    let err = status_of(widgets.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn apply_yaml_installs_crds_and_objects() {
    let server = MemServer::start().await;
    let crd_yaml = serde_json::to_string(&<Gadget as kube::CustomResourceExt>::crd()).unwrap();
    let yaml = format!(
        "{crd_yaml}\n---\napiVersion: test.memserver.dev/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  color: blue\n"
    );
    let stored = server.apply_yaml(&yaml).unwrap();
    assert_eq!(stored.len(), 2);
    let gadgets: Api<Gadget> = Api::all(server.client());
    assert_eq!(gadgets.get("g").await.unwrap().spec.color, "blue");
    assert!(
        server
            .object("test.memserver.dev", "gadgets", "", "g")
            .is_some()
    );
}

#[tokio::test]
async fn deployments_have_status_and_generation() {
    let server = MemServer::start().await;
    let deploys: Api<Deployment> = Api::namespaced(server.client(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let restarted = deploys
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}})),
        )
        .await
        .unwrap();
    assert_eq!(restarted.metadata.generation, Some(2));
}

#[tokio::test]
async fn injected_faults_fail_requests_and_the_log_counts_writes() {
    let server = MemServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let mark = server.request_mark();

    let fault = server.inject(Fault::error(500).resource("secrets").writes().times(1));
    let err = status_of(
        secrets
            .create(&PostParams::default(), &secret("s", &[]))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert_eq!(fault.hits(), 1);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();

    let status_only = server.inject(Fault::error(503).resource("secrets").subresource("status"));
    secrets.get("s").await.unwrap();
    assert_eq!(status_only.hits(), 0, "only status requests match");
    status_only.remove();

    let conflict = server.inject(Fault::error(409).verb(Verb::Update).name("s"));
    let current = secrets.get("s").await.unwrap();
    assert!(status_of(secrets.replace("s", &PostParams::default(), &current).await).is_conflict());
    conflict.remove();
    secrets
        .replace("s", &PostParams::default(), &current)
        .await
        .unwrap();

    let writes = server.writes_to_since("secrets", mark);
    assert_eq!(writes.len(), 4);
    assert_eq!(
        writes
            .iter()
            .map(|w| (w.verb, w.status, w.faulted))
            .collect::<Vec<_>>(),
        [
            (Verb::Create, 500, true),
            (Verb::Create, 201, false),
            (Verb::Update, 409, true),
            (Verb::Update, 200, false),
        ]
    );
    // The last replace sent the same object back: nothing changed.
    assert!(!writes[3].changed);
    let before_clear = server.request_mark();
    server.clear_requests();
    assert!(server.requests_since(0).is_empty());
    assert_eq!(
        server.request_mark(),
        before_clear,
        "sequence numbers keep counting"
    );

    // Paused requests wait until resumed.
    server.pause();
    let pending = tokio::spawn({
        let secrets = secrets.clone();
        async move { secrets.get("s").await }
    });
    wait_for("the request to arrive", || async {
        server
            .requests_since(mark)
            .iter()
            .any(|r| r.verb == Verb::Get && r.status == 0)
            .then_some(())
    })
    .await;
    assert!(!pending.is_finished());
    server.resume();
    pending.await.unwrap().unwrap();

    // A hold fault keeps matching requests waiting until it is removed.
    let hold = server.inject(Fault::hold().verb(Verb::Delete));
    let deleting = tokio::spawn({
        let secrets = secrets.clone();
        async move { secrets.delete("s", &DeleteParams::default()).await }
    });
    wait_for("the delete to be held", || async {
        (hold.hits() == 1).then_some(())
    })
    .await;
    assert!(
        secrets.get_opt("s").await.unwrap().is_some(),
        "other requests pass"
    );
    hold.remove();
    deleting.await.unwrap().unwrap();
    assert!(secrets.get_opt("s").await.unwrap().is_none());
}

#[tokio::test]
async fn kubeconfig_yaml_configures_a_client() {
    let server = MemServer::start().await;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(names.contains(&"default".to_string()));

    // The same kubeconfig written to a file, as a subprocess would read it via KUBECONFIG.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let from_file = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(from_file, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        server.url()
    );
}

#[tokio::test]
async fn metadata_only_requests_get_partial_object_metadata() {
    let server = MemServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    secrets
        .create(&PostParams::default(), &secret("s", &[("token", "hidden")]))
        .await
        .unwrap();
    let meta = secrets.get_metadata("s").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("s"));
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let list = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

#[tokio::test]
async fn aggregated_discovery_describes_the_same_resources() {
    let server = server_with_crds().await;
    let discovery = kube::Discovery::new(server.client())
        .run_aggregated()
        .await
        .unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "test.memserver.dev",
            "v1",
            "Widget",
        ))
        .expect("Widget is discoverable");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let (secret, _) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Secret"))
        .expect("core resources are discoverable");
    assert_eq!(secret.plural, "secrets");
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let server = MemServer::start().await;
    let client = server.client();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some("scratch".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let in_scratch: Api<Secret> = Api::namespaced(client.clone(), "scratch");
    let in_default: Api<Secret> = Api::namespaced(client.clone(), "default");
    in_scratch
        .create(&PostParams::default(), &secret("a", &[]))
        .await
        .unwrap();
    in_default
        .create(&PostParams::default(), &secret("b", &[]))
        .await
        .unwrap();
    namespaces
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        in_scratch
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        in_default
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn server_keeps_serving_while_the_test_thread_blocks() {
    // Like a test waiting synchronously for an operator subprocess: the test's
    // runtime is blocked, the server (on its own thread) is not.
    let server = MemServer::start().await;
    let kubeconfig = server.kubeconfig_yaml();
    let names = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap();
            let client = kube::Client::try_from(config).unwrap();
            let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
            namespaces
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len()
        })
    })
    .join()
    .unwrap();
    assert_eq!(names, 4);
}

#[tokio::test]
async fn invalid_metadata_is_rejected() {
    let server = MemServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let mut s = secret("bad-label", &[]);
    s.metadata.labels = Some(BTreeMap::from([("app".into(), "not a valid value".into())]));
    let err = status_of(secrets.create(&PostParams::default(), &s).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    let err = status_of(
        secrets
            .create(&PostParams::default(), &secret("Upper_Case", &[]))
            .await,
    );
    assert_eq!(err.code, 422);

    let mut with_rv = secret("with-rv", &[]);
    with_rv.metadata.resource_version = Some("12".into());
    let err = status_of(secrets.create(&PostParams::default(), &with_rv).await);
    assert_eq!(err.code, 500, "as the real apiserver answers");
}

#[tokio::test]
async fn namespaces_can_be_required_to_exist() {
    let server = MemServer::builder()
        .require_namespaces(true)
        .start()
        .await
        .unwrap();
    let nowhere: Api<Secret> = Api::namespaced(server.client(), "nowhere");
    let err = status_of(
        nowhere
            .create(&PostParams::default(), &secret("s", &[]))
            .await,
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
    let default: Api<Secret> = Api::namespaced(server.client(), "default");
    default
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
}

/// The `x-kubernetes-validations` rules of a CRD are enforced on writes, and
/// `kubectl get` gets a Table with the CRD's printer columns.
#[tokio::test]
async fn cel_rules_refuse_writes_and_tables_print_the_columns() {
    let server = MemServer::start().await;
    let mut crd = serde_json::to_value(Widget::crd()).unwrap();
    let version = &mut crd["spec"]["versions"][0];
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.size < 10", "message": "size must be under 10"}]);
    version["additionalPrinterColumns"] =
        json!([{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]);
    server.install_crd(crd).unwrap();
    let widgets: Api<Widget> = Api::namespaced(server.client(), "default");
    let refused = widgets
        .create(&PostParams::default(), &widget("big", 12))
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 422);
            assert!(
                e.message
                    .contains("spec: Invalid value: \"object\": size must be under 10"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    widgets
        .create(&PostParams::default(), &widget("small", 3))
        .await
        .unwrap();
    let request = http::Request::get("/apis/test.memserver.dev/v1/namespaces/default/widgets")
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value =
        serde_json::from_str(&server.client().request_text(request).await.unwrap()).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][1]["name"], "Size");
    assert_eq!(table["rows"][0]["cells"], json!(["small", 3]));
}
