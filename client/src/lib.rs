//! The Rust client of the tokenops token backend.
//!
//! This is the one client every Rust part of tokenops uses — the CLI, the
//! Kubernetes operator and the Terraform provider. It brings:
//!
//! * [`Client`]: one typed async method per endpoint of the v1 API, with
//!   builders for optional parameters (`.send()` them or just `.await` them);
//! * [`Error`]: one error taxonomy callers can match on, carrying the server's
//!   stable problem `code`;
//! * [`RetryPolicy`]: one retry rule (exponential backoff, full jitter,
//!   `Retry-After` honoured), made safe for create and regenerate by an
//!   `Idempotency-Key`;
//! * [`rotation`]: the one rule deciding when a token is due for renewal;
//! * the wire types and the duration parser of `tokenops-types`, re-exported
//!   here (also as [`types`]) so callers never name that crate.
//!
//! Secrets — the client's own token and the values create and regenerate
//! return — are [`secrecy::SecretString`]s throughout; no `Debug` or error
//! message ever shows one.
//!
//! ```no_run
//! use std::time::Duration;
//! use secrecy::{ExposeSecret, SecretString};
//! use tokenops_client::{Client, rotation};
//!
//! # async fn run() -> tokenops_client::Result<()> {
//! let client = Client::builder("https://tokens.example.com")
//!     .token(SecretString::from(std::env::var("TOKENOPS_TOKEN").unwrap()))
//!     .build()?;
//!
//! let created = client
//!     .create_token("nightly-export")
//!     .role("read-only")
//!     .lifetime(Duration::from_secs(30 * 86_400))
//!     .label("team", "data")
//!     .await?;
//! store(created.secret.expose_secret());
//!
//! let renew_at = rotation::token_renewal_time(&created.token, None);
//! println!("{} renews at {renew_at:?}", created.token.id);
//! # Ok(()) }
//! # fn store(_: &str) {}
//! ```

#![warn(missing_docs)]

mod client;
pub mod error;
pub mod gateway;
pub mod retry;
pub mod rotation;
mod service;
mod tokens;

pub use tokenops_types as types;
pub use tokenops_types::*;

pub use client::{Attempt, Client, ClientBuilder, IDEMPOTENCY_KEY_HEADER};
pub use error::{Error, Result};
pub use retry::RetryPolicy;
pub use rotation::{RenewBefore, RenewBeforeError};
pub use service::{Audit, Verify};
pub use tokens::{
    BoxFuture, BulkRevoke, CreateToken, CreatedToken, ListTokens, RegenerateToken, UpdateToken,
};

/// Re-exported so callers can build a [`SecretString`](secrecy::SecretString) without naming `secrecy`.
pub use secrecy;
