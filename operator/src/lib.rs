//! The tokenops Kubernetes operator: `ApiToken` custom resources become tokens
//! on a tokenops backend and Secrets in the cluster, rotated before they expire.
//!
//! The reconcile of an `ApiToken` is a short pipeline ([`reconcile`]), one
//! module per step:
//!
//! 1. [`reconcile::finalizer`] — added before anything is issued;
//! 2. [`backend`] — dereference `spec.backendRef` into a backend client;
//! 3. [`desired`] — validate the spec into the token it asks for;
//! 4. [`reconcile::observe`] — the Secret ([`secret`]) and the token on the backend;
//! 5. [`decide`] — the pure core: what to do next and when to look again;
//! 6. [`reconcile::act`] — carry it out: [`reconcile::issue`],
//!    [`reconcile::deliver`] (the Secret, restarts), [`reconcile::revoke`];
//! 7. [`reconcile::status`] — the status, written only when it changed;
//!
//! and [`reconcile::cleanup`] once deletion is requested. [`controller`] holds
//! the watches that wake it and the caches it reads.
//!
//! `main.rs` is a thin command line over [`run()`] and [`crd::all_yaml`].

pub mod backend;
pub mod backend_controller;
pub mod controller;
pub mod crd;
pub mod decide;
pub mod desired;
pub mod error;
pub mod http;
pub mod kube_requests;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod redact;
pub mod run;
pub mod secret;

pub use error::{Error, Result};
pub use run::{Config, run};

/// Label (on backend tokens) naming the front end that manages a token.
pub const MANAGED_BY: &str = tokenops_client::LABEL_MANAGED_BY;
/// Value of [`MANAGED_BY`] on tokens this operator manages.
pub const MANAGED_BY_VALUE: &str = "tokenops-operator";
/// Label (on backend tokens) carrying the UID of the owning `ApiToken`.
pub const LABEL_OWNER_UID: &str = "tokenops.dev/apitoken-uid";
/// Labels (on backend tokens) naming the owning `ApiToken`, for people.
pub const LABEL_OWNER_NAMESPACE: &str = "tokenops.dev/namespace";
pub const LABEL_OWNER_NAME: &str = "tokenops.dev/name";
/// Kubernetes label on every Secret the operator writes.
pub const K8S_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Annotation on an `ApiToken`: set it to a new value to rotate the token now.
pub const ANNOTATION_ROTATE: &str = "tokenops.dev/rotate";
/// Annotation on the Secret: the keyed hash of the value (never the value).
pub const ANNOTATION_VALUE_HASH: &str = "tokenops.dev/value-hash";
/// Annotation on the Secret: the id of the token whose value it holds.
pub const ANNOTATION_TOKEN_ID: &str = "tokenops.dev/token-id";
/// Annotation on the Secret: the backend's `generation` of the value it holds, so a
/// rotation interrupted between regenerate and the Secret write is noticed.
pub const ANNOTATION_TOKEN_GENERATION: &str = "tokenops.dev/token-generation";
/// Annotation set on a workload's pod template to restart it after a rotation.
pub const ANNOTATION_RESTARTED_AT: &str = "tokenops.dev/restartedAt";
/// Finalizer that revokes the token (or lets it go, per `deletionPolicy`).
pub const FINALIZER: &str = "tokenops.dev/token-cleanup";
/// The one field manager for every server-side apply.
pub const FIELD_MANAGER: &str = "tokenops-operator";
/// Default key of a token in a Secret.
pub const SECRET_KEY_DEFAULT: &str = "token";
