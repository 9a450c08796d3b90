//! The twilio-broker plugin SDK: the only crate a Rust plugin author depends
//! on. It holds the versioned C ABI ([`abi`], mirrored by
//! `include/twilio_broker_plugin.h` for C, Zig or Go authors), safe traits for
//! the two plugin kinds ([`AuditPlugin`], [`StoragePlugin`]), the export
//! macros that turn a type into a loadable library without `unsafe`, and the
//! [`conformance`] suites that every backend passes (the broker's own sled
//! store included).
//!
//! Depend on it from your plugin's own repository with the tag of the
//! broker release you run (`twilio-broker plugin new` writes this for you):
//! ```toml
//! [dependencies]
//! twilio-broker-plugin-sdk = { git = "<twilio-broker repository URL>", tag = "v0.1.0" }
//! ```
//! Plugins built with this SDK speak plugin ABI version 2; the broker loads
//! versions 1 and 2.
//!
//! A storage plugin, whole:
//! ```ignore
//! use twilio_broker_plugin_sdk::{Cas, PluginError, Storage, StoragePlugin, Versioned};
//! struct MyStore { /* ... */ }
//! impl Storage for MyStore { /* get, put, delete, list, compare_and_swap */ }
//! impl StoragePlugin for MyStore {
//!     const NAME: &'static str = "my-store";
//!     fn init(config: &serde_json::Value) -> Result<Self, PluginError> { /* ... */ }
//! }
//! twilio_broker_plugin_sdk::export_storage!(MyStore);
//! ```
//! and in its tests:
//! `twilio_broker_plugin_sdk::conformance::storage::run(&store).assert_passed()`.
//!
//! **An in-process plugin can read all of the broker's memory**, the master
//! key included. Only load libraries you would trust with that key.

pub mod abi;
mod audit;
pub mod conformance;
mod error;
mod export;
mod memory;
mod storage;
pub mod wire;

pub use audit::{Audit, AuditPlugin};
pub use error::{ErrorKind, PluginError};
pub use memory::MemoryStorage;
pub use storage::{Cas, Changes, Storage, StoragePlugin, Versioned};

/// Re-exported so plugins parse their configuration with the same version.
pub use serde_json;
