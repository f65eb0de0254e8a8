//! Shared fixtures: two tiny custom resources and a wait-for-condition helper.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{CustomResource, CustomResourceExt};
use kube_memserver::MemServer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A namespaced test resource with a status subresource.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "test.memserver.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd",
    derive = "PartialEq"
)]
pub struct WidgetSpec {
    pub size: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct WidgetStatus {
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A cluster-scoped test resource without a status subresource.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(group = "test.memserver.dev", version = "v1", kind = "Gadget")]
pub struct GadgetSpec {
    pub color: String,
}

pub fn widget(name: &str, size: i32) -> Widget {
    Widget::new(name, WidgetSpec { size, label: None })
}

/// A server with the Widget and Gadget CRDs installed over HTTP.
pub async fn server_with_crds() -> MemServer {
    let server = MemServer::start().await;
    install_crds(&server).await;
    server
}

/// Installs the Widget and Gadget CRDs by POSTing them.
pub async fn install_crds(server: &MemServer) {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    for crd in [Widget::crd(), Gadget::crd()] {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("install CRD");
    }
}

/// Polls `check` until it returns `Some`, failing the test after 10 seconds.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Kubernetes `Status` carried by an API error.
pub fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
