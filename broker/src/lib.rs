//! twilio-broker: keeps an organisation's Twilio credentials in one hardened
//! place and hands each internal service only what it needs.
//!
//! The crate is laid out by concept (see `ARCHITECTURE.md`):
//! domain modules (`credential`, `store`, `bearer`, `mint`, `webhook`,
//! `recommend`) know nothing of tonic; `grpc` is the only place that sees
//! generated types; `server` wires them into a running daemon; `cli` is the
//! `twilio-broker` command line.
//!
//! No `unsafe` here (forbidden): plugin loading is the crate
//! `twilio-broker-plugin-host`, system calls are `twilio-broker-system`.
//!
//! **Every module is `pub(crate)`**, so rustc reports dead code and the
//! boundaries below are the compiler's. The public surface is the list of
//! re-exports at the end of this file: exactly what the end-to-end tests
//! (`tests/e2e`), the benches (`broker/benches`) and `fuzz/` use
//! (ARCHITECTURE.md, "Public surface"). Add to it only for one of those.

#![forbid(unsafe_code)]

pub(crate) mod audit;
pub(crate) mod bearer;
pub(crate) mod caller;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod console;
pub(crate) mod credential;
pub(crate) mod doctor;
pub(crate) mod error;
pub(crate) mod gate;
pub(crate) mod grpc;
pub(crate) mod keyring;
pub(crate) mod listing;
pub(crate) mod master_key;
pub(crate) mod mint;
pub(crate) mod notify;
pub(crate) mod policy;
pub(crate) mod recommend;
pub(crate) mod rotation;
pub(crate) mod seal;
pub(crate) mod sealed_secret;
pub(crate) mod server;
pub(crate) mod settings;
pub(crate) mod sid;
pub(crate) mod snapshot;
pub(crate) mod state_file;
pub(crate) mod store;
pub(crate) mod telemetry;
pub(crate) mod transport;
pub(crate) mod twilio_api;
pub(crate) mod webhook;

/// The plugin host crate under its old module path (`crate::plugin_host`),
/// so code that loads plugins reads the same as before the host moved out.
pub(crate) use twilio_broker_plugin_host as plugin_host;

/// The fuzz bodies `fuzz/` wraps: only with the `fuzzing` feature (off by
/// default, so never in the daemon binary) and in this crate's tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tidy;

// The public surface (ARCHITECTURE.md, "Public surface"). Each line names
// its users; an item no test, bench or fuzz target uses does not belong here.

/// The command line: what `main.rs` calls.
pub use cli::main;
/// The error type of every public function below.
pub use error::Error;
// tests/e2e (resilience, plugins/host) and broker/benches: stores and the vault.
pub use store::{BlockingStore, SledStore, Store, StoreError, Vault, vault::credential_key};
// tests/e2e (resilience) and broker/benches: the master key.
pub use master_key::MasterKey;
// tests/e2e (audit_trust): the audit chain's check and its hex decoding.
pub use audit::{AuditTrail, Chain, unhex};
// tests/e2e (plugins/schema) and broker/benches: the policy.
pub use policy::{GrantKind, PolicyEngine, Rpc, Source as PolicySource};
// broker/benches: an in-process daemon on a listener.
pub use bearer::{Bearers, OAuthConfig};
pub use credential::{Credential, KeyType, Secret};
pub use mint::json::{MAX_JSON_BYTES, MAX_JSON_KEYS, parse_object};
pub use mint::{Grants, Minter, TokenRequest, VideoGrant, VoiceGrant};
pub use server::{State, run};
pub use transport::Bound;
