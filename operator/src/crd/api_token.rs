//! `ApiToken`: one token on a backend, delivered as a Secret and rotated before it expires.

// kube's `printcolumn(...)` repeats `type_` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// Go-style duration such as `720h`, `30m`, `1h30m`, `7d` or `2w`: every unit the
/// operator's parser (`tokenops_types::parse_duration`) accepts.
const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h|d|w))+)$";

/// A CEL expression for the duration written in the string field `self.<field>`,
/// read the way the operator's parser reads it. CEL's `duration()` knows Go's
/// units only (up to `h`), so each `<n>d` or `<n>w` part is rewritten in
/// nanoseconds first (`<n>` × 86,400 × 10⁹ or × 604,800 × 10⁹, exact for any
/// whole number of days or weeks a lifetime can have) and `0s` is appended so
/// that `0` reads as zero. One pass over at most 64 characters: cheap enough
/// for the API server's cost budget.
fn cel_duration(field: &str) -> String {
    let nanos = |per_unit: &str| {
        format!("string(int(double(c.substring(0, size(c) - 1)) * {per_unit})) + 'ns'")
    };
    format!(
        "duration(self.{field}.findAll('[0-9.]+[^0-9.]+').map(c, \
         c.endsWith('w') ? {} : c.endsWith('d') ? {} : c).join() + '0s')",
        nanos("604800000000000.0"),
        nanos("86400000000000.0")
    )
}

/// The CEL rule "`self.<shorter>`, when set with `lifetime`, is shorter than it".
fn shorter_than_lifetime(shorter: &str) -> String {
    format!(
        "!has(self.{shorter}) || !has(self.lifetime) || {} < {}",
        cel_duration(shorter),
        cel_duration("lifetime")
    )
}

/// The CEL rule "`self.lifetime`, when set, is longer than 0".
fn positive_lifetime() -> String {
    format!(
        "!has(self.lifetime) || {} > duration('0s')",
        cel_duration("lifetime")
    )
}

/// Desired state of an `ApiToken`: which token should exist, where, and how it is delivered and rotated.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tokenops.dev",
    version = "v1alpha1",
    kind = "ApiToken",
    namespaced,
    status = "ApiTokenStatus",
    shortname = "apitok",
    category = "tokenops",
    doc = "An API token on a tokenops backend, delivered as a Secret and rotated before it expires.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Token", type_ = "string", json_path = ".status.maskedToken"),
    // Future times as RFC 3339 strings: a `date` column prints an age, and a
    // future time as `<invalid>`.
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Renewal", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("!(has(self.renewBefore) && has(self.renewBeforePercentage))").message("set at most one of renewBefore and renewBeforePercentage"),
    validation = Rule::new(positive_lifetime()).message("lifetime must be longer than 0"),
    validation = Rule::new(shorter_than_lifetime("gracePeriod")).message("gracePeriod must be shorter than lifetime"),
    validation = Rule::new(shorter_than_lifetime("renewBefore")).message("renewBefore must be shorter than lifetime")
)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenSpec {
    /// The backend that issues the token: a `TokenBackend` in this namespace or a `ClusterTokenBackend`.
    pub backend_ref: BackendRef,

    /// Display name of the token on the backend (1–128 characters). Defaults to `<namespace>/<metadata.name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,

    /// Free-text description of the token (at most 1024 characters). Editable in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Name of a server-defined permission bundle, e.g. `read-only`. Changing it issues a new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub role: Option<String>,

    /// Extra permissions `<resource>:<action>` (`*` wildcards allowed). Changing them issues a new token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,

    /// The resources the token may act on: the string `all` (the default) or a list of `{type, id}`.
    /// Changing them issues a new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<serde_json::Value>,

    /// How long each issued value lives (Go-style duration, e.g. `720h` or `30d`). Defaults to the backend's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = DURATION_PATTERN))]
    pub lifetime: Option<String>,

    /// Renew this long before expiry (duration). Exclusive with `renewBeforePercentage`.
    /// Default: renew when one third of the lifetime is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = DURATION_PATTERN))]
    pub renew_before: Option<String>,

    /// Renew when this percentage of the lifetime is left (1–99). Exclusive with `renewBefore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub renew_before_percentage: Option<u8>,

    /// How long the previous value keeps working after a rotation, so consumers can pick up
    /// the new one. Default: the previous value stops at once. Must be shorter than `lifetime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = DURATION_PATTERN))]
    pub grace_period: Option<String>,

    /// Name of the Secret that receives the token. Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,

    /// Key of the token value in the Secret. Defaults to `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_key: Option<String>,

    /// Extra labels, annotations and keys for the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// What happens to the token when the `ApiToken` is deleted: `Revoke` (default) or `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Workloads in this namespace to restart (rolling) after each rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_targets: Vec<RestartTarget>,
}

fn resources_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // "all" or a list: not expressible as one structural type, so the value is
    // kept as written and checked by the operator (condition reason InvalidSpec).
    // Kept as raw JSON in Rust too: one bad object must not break decoding the list.
    schemars::json_schema!({
        "description": "The string `all`, or a list of `{type, id}` objects.",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Which backend issues the token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// `TokenBackend` (same namespace) or `ClusterTokenBackend`.
    #[serde(default)]
    pub kind: BackendKind,
    /// Name of the backend object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The kind of a backend reference.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackendKind {
    /// A `TokenBackend` in the `ApiToken`'s namespace.
    #[default]
    TokenBackend,
    /// A cluster-wide `ClusterTokenBackend`.
    ClusterTokenBackend,
}

impl BackendKind {
    /// The kind's name, as in `backendRef.kind` and the metrics' `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::TokenBackend => "TokenBackend",
            BackendKind::ClusterTokenBackend => "ClusterTokenBackend",
        }
    }
}

/// What to do with the token when its `ApiToken` is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Revoke the token on the backend (it stays there for audit).
    #[default]
    Revoke,
    /// Leave the token active on the backend.
    Retain,
}

/// Extra metadata and keys written into the token's Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret (keys under `tokenops.dev/` are reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra keys with fixed string values (e.g. the backend URL for the consumer).
    /// The token key cannot be overridden.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

/// A workload restarted after a rotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartTarget {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: RestartKind,
    /// Name of the workload in the `ApiToken`'s namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The kinds of workload that can be restarted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RestartKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// Observed state of an `ApiToken`. Never holds the token value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenStatus {
    /// Id of the token on the backend (`tok_…`); stable across rotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The masked value of the current token, e.g. `tko_…a1B2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_token: Option<String>,
    /// When the current value expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the operator will rotate the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<DateTime<Utc>>,
    /// When the value was last issued or rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<DateTime<Utc>>,
    /// The Secret holding the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The backend the token lives on, as `<kind>/<namespace>/<name>`; a change issues a new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The last value of the `tokenops.dev/rotate` annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_request: Option<String>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Previous tokens still valid during `gracePeriod` after a replacement, and when
    /// the operator revokes them. Recorded here so a restart does not forget them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_revocations: Vec<PendingRevocation>,
    /// `Ready` with a reason, e.g. `Issued`, `Rotated`, `BackendUnavailable`, `InvalidSpec`, `NotOwned`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A replaced token that keeps working until `revokeAt`, then is revoked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevocation {
    /// Id of the replaced token (`tok_…`).
    pub token_id: String,
    /// The backend it lives on, as `<kind>/<namespace>/<name>`.
    pub backend: String,
    /// When the operator revokes it (the end of the grace period).
    pub revoke_at: DateTime<Utc>,
}

impl ApiToken {
    /// The token's display name: `spec.name` or `<namespace>/<metadata.name>`.
    pub fn token_name(&self) -> String {
        self.spec.name.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                self.metadata.namespace.as_deref().unwrap_or_default(),
                self.metadata.name.as_deref().unwrap_or_default()
            )
        })
    }

    /// The Secret's name: `spec.secretName` or `metadata.name`.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// The key of the token value in the Secret: `spec.secretKey` or `token`.
    pub fn secret_key(&self) -> String {
        self.spec
            .secret_key
            .clone()
            .unwrap_or_else(|| crate::SECRET_KEY_DEFAULT.to_string())
    }
}
