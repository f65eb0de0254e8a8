//! `TokenBackend`: a tokenops server reachable from one namespace.

// kube's `printcolumn(...)` repeats `type_` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A tokenops backend for the `ApiToken`s of one namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tokenops.dev",
    version = "v1alpha1",
    kind = "TokenBackend",
    namespaced,
    status = "TokenBackendStatus",
    category = "tokenops",
    doc = "A tokenops backend that ApiTokens in the same namespace can use.",
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
pub struct TokenBackendSpec {
    /// Base URL of the tokenops server, e.g. `https://tokens.example.com`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub url: String,
    /// The Secret (in this namespace) holding the management token the operator authenticates with.
    pub credentials_secret_ref: SecretKeyRef,
    /// PEM-encoded CA certificate(s) to trust for `url`, on top of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Project (tenant) the tokens are created in. Defaults to the management token's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// A key of a Secret in the referring object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret. Defaults to `token`.
    #[serde(default = "default_key")]
    pub key: String,
}

pub(crate) fn default_key() -> String {
    crate::SECRET_KEY_DEFAULT.to_string()
}

/// Observed state of a backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenBackendStatus {
    /// The masked management token the backend answered `whoami` for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The project of the management token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` after a successful `whoami` round trip.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
