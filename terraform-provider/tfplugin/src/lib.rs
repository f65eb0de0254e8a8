//! A generic Terraform plugin (protocol 6) server on tonic.
//!
//! This crate knows nothing about any particular provider. It provides:
//!
//! - [`serve`]: the go-plugin handshake (magic cookie, the handshake line on
//!   stdout, AutoMTLS with Terraform's client certificate, `TCP_NODELAY`),
//!   go-plugin's controller, stdio and health services, and a clean exit when
//!   Terraform calls `Shutdown`;
//! - the protocol 6 `Provider` service as Terraform 1.11 speaks it,
//!   including ephemeral resources and write-only attributes; RPCs it does not
//!   implement answer `UNIMPLEMENTED`;
//! - [`Dynamic`] values with msgpack and JSON encodings, including unknown
//!   values, [`Type`] with cty's JSON type encoding, [`AttributePath`] and
//!   [`Diagnostics`];
//! - [`model!`]: one declaration per resource from which both the schema and
//!   the conversions are derived;
//! - the [`Provider`], [`Resource`], [`DataSource`] and
//!   [`EphemeralResource`] traits a provider author implements.
//!
//! Callbacks fail with [`Diagnostics`]; a callback that succeeds can still
//! attach warnings with [`warn`]. Panics in provider callbacks become a
//! generic error diagnostic; the panic message (which might hold a secret)
//! and backtrace never reach Terraform. Logs go to stderr via `tracing` in
//! go-plugin's JSON line format, so `TF_LOG` shows them at their own level.
//!
//! `StopProvider` (Terraform's Ctrl-C) calls [`Provider::stop`] so running
//! work can wind down, but does not exit: Terraform still waits for the
//! results of in-flight applies to record them in state. The process exits
//! on go-plugin's `Shutdown` (or SIGTERM); SIGINT is ignored, as Terraform
//! decides when its plugins stop.
//!
//! ```
//! use tfplugin::{Diagnostics, Model, Resource, Result, Value};
//!
//! tfplugin::model! {
//!     /// A note kept by the provider.
//!     pub struct Note {
//!         /// The text. Changing it replaces the note.
//!         #[tf(required, requires_replace)]
//!         pub text: Value<String>,
//!         /// Identifier assigned on create.
//!         #[tf(computed)]
//!         pub id: Value<String>,
//!     }
//! }
//!
//! struct NoteResource;
//!
//! #[tfplugin::async_trait]
//! impl Resource for NoteResource {
//!     type State = Note;
//!     async fn read(&self, state: Note, _: &mut Vec<u8>) -> Result<Option<Note>> {
//!         Ok(Some(state))
//!     }
//!     async fn create(&self, mut planned: Note, _: Note, _: &mut Vec<u8>) -> Result<Note> {
//!         planned.id = Value::Known("note-1".into());
//!         Ok(planned)
//!     }
//!     async fn update(&self, _: Note, planned: Note, _: Note, _: &mut Vec<u8>) -> Result<Note> {
//!         Ok(planned)
//!     }
//!     async fn delete(&self, _: Note, _: &[u8]) -> Result<()> {
//!         Ok(())
//!     }
//! }
//! assert_eq!(Note::attributes().len(), 2);
//! ```

#![warn(missing_docs)]

mod diag;
mod erased;
mod logging;
pub mod model;
mod path;
mod provider;
mod schema;
mod serve;
mod server;
mod tls;
mod types;
mod value;

/// Code generated from `proto/`: the wire messages and gRPC services.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// Terraform plugin protocol 6.
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    /// go-plugin's controller and stdio services.
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    /// gRPC health checking.
    pub mod grpc {
        /// `grpc.health`
        pub mod health {
            /// `grpc.health.v1`
            pub mod v1 {
                tonic::include_proto!("grpc.health.v1");
            }
        }
    }
}

pub use async_trait::async_trait;
pub use diag::{Diagnostic, Diagnostics, Result, Severity, warn};
pub use logging::init_logging;
pub use model::{ConvertError, ConvertErrorKind, Model, NestedObject, Nesting, TfValue, Value};
pub use path::{AttributePath, Step};
pub use provider::{
    ClientCapabilities, ConfigureRequest, DataSource, EphemeralResource, Opened, Plan, Provider,
    Registry, Renewed, Resource,
};
pub use schema::{Attribute, Schema};
pub use serve::{
    MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSION, ServeError, handshake_line, serve,
};
pub use server::{PANIC_SUMMARY, ProviderService};
pub use tls::TlsError;
pub use types::{Type, TypeError};
pub use value::{Dynamic, Number, ValueError};

model! {
    /// An empty model, for a provider without a `provider` block.
    pub struct NoConfig {}
}
