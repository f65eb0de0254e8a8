//! `ClusterTokenBackend`: a tokenops server usable from every namespace.

// kube's `printcolumn(...)` repeats `type_` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TokenBackendStatus;

/// A tokenops backend that `ApiToken`s in any namespace can use.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tokenops.dev",
    version = "v1alpha1",
    kind = "ClusterTokenBackend",
    status = "TokenBackendStatus",
    category = "tokenops",
    doc = "A tokenops backend that ApiTokens in every namespace can use.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTokenBackendSpec {
    /// Base URL of the tokenops server, e.g. `https://tokens.example.com`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub url: String,
    /// The Secret holding the management token the operator authenticates with.
    pub credentials_secret_ref: NamespacedSecretKeyRef,
    /// PEM-encoded CA certificate(s) to trust for `url`, on top of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Project (tenant) the tokens are created in. Defaults to the management token's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// A key of a Secret in a named namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedSecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Key within the Secret. Defaults to `token`.
    #[serde(default = "super::token_backend::default_key")]
    pub key: String,
}
