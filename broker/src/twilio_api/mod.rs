//! A typed client of Twilio's REST APIs for managing credentials (WIRE.md
//! section 4): Standard keys through v2010 `Keys.json`, Standard and
//! Restricted keys through IAM v1 `/v1/Keys` (with a `Policy`), and the
//! secondary Auth Token with its promotion through accounts v1. It is domain
//! code: it knows nothing of tonic, and the rotation logic drives it.
//!
//! Every call authenticates with HTTP Basic as a *manager*: a Main key or the
//! account's Auth Token ([`Manager`]), whose secret stays sealed except while
//! one request is being built.
//!
//! **Invariant:** no secret (the manager's, or one Twilio returns) appears in
//! an [`ApiError`]: messages come from status codes, Twilio's error code and
//! message (scrubbed of the manager's secret) and the broker's own words; a
//! body that does not parse is reported by position, never quoted. Secrets
//! Twilio returns are sealed as soon as they are parsed.
//!
//! `rotation/` (the `credential rotate` command and its Admin RPC) drives it.

mod client;
mod error;
mod rotation;
mod settings;

#[cfg(test)]
mod http_tests;

pub use client::{Manager, TwilioApi};
pub use error::ApiError;
pub use rotation::{retire_key, successor_key};
pub use settings::{Endpoints, TwilioConfig};
