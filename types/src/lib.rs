//! Wire types and small pure rules shared by every part of tokenops.
//!
//! The server depends only on this crate for its wire format; the client crate
//! re-exports all of it, so callers never need to name this crate directly.
//! Nothing here does I/O.

pub mod duration;
pub mod model;
pub mod permission;
pub mod problem;
pub mod secret;

pub use duration::{DurationError, GoDuration, format_duration, parse_duration};
pub use model::*;
pub use problem::{Problem, codes};
