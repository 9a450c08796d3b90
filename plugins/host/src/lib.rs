//! The plugin host: loads plugin libraries (audit sinks, storage backends)
//! named in the `[[plugins]]` config and calls them through the C ABI of
//! `twilio_broker_plugin_sdk::abi`, contained.
//!
//! Its own crate (`twilio-broker-plugin-host`), so that the daemon crate can
//! `#![forbid(unsafe_code)]`: **architecture invariant:** this crate is one
//! of the three with `unsafe` (with the plugin SDK and `twilio-broker-system`),
//! and inside it only `raw` and `library` (dlopen, symbol lookup, calls
//! through C function pointers, reading plugin buffers) and the `close`
//! calls of `audit` and `storage` allow it; the crate denies it everywhere
//! else (`guard`, `set`, `spec`). The broker's `Store` trait comes from
//! `twilio-broker-store-api`, below both.
//!
//! Containment, by what a plugin can do wrong:
//!
//! | plugin behaviour              | what the broker does                                   | caller sees |
//! |-------------------------------|--------------------------------------------------------|-------------|
//! | ABI version not 1 or 2        | refuses at start-up, naming both sides' versions       | no start    |
//! | missing symbol or table entry | refuses at start-up, naming it                         | no start    |
//! | `struct_size` too small (v2)  | refuses at start-up, naming the table                  | no start    |
//! | sha256 differs from the pin   | refuses at start-up, before loading                    | no start    |
//! | `init` fails or times out     | refuses at start-up with the plugin's message          | no start    |
//! | returns an error status       | [`PluginError::Failed`]                                | UNAVAILABLE |
//! | panics (Rust, via the SDK)    | caught in the plugin; [`PluginError::Failed`]          | UNAVAILABLE |
//! | hangs                         | abandons the call after its time-out ([`PluginError::TimedOut`]); the call keeps one blocking thread | UNAVAILABLE |
//! | hangs again and again         | after [`MAX_IN_FLIGHT`] stuck calls, fails fast ([`PluginError::Saturated`]) | UNAVAILABLE |
//! | returns garbage               | checks every status, length and encoding ([`PluginError::Garbage`]) | UNAVAILABLE |
//! | crashes the process, or reads/writes broker memory | nothing can stop it: it runs in-process     | —           |
//!
//! Every call runs on tokio's blocking pool, never on an executor thread, so
//! a slow plugin cannot stall request handling. Libraries are never
//! unloaded (a call abandoned after its time-out may still be running).
//! Error messages name the plugin and the operation; plugins never see a
//! secret, so their messages cannot carry one.

#[allow(unsafe_code)]
mod audit;
mod guard;
#[allow(unsafe_code)]
mod library;
#[allow(unsafe_code)]
mod raw;
mod set;
mod spec;
#[allow(unsafe_code)]
mod storage;

use std::time::Duration;

pub use audit::PluginAuditSink;
pub use library::{
    BeforeLoad, Inspected, LoadError, Loaded, init, inspect, inspect_with, load, load_with,
};
pub use set::Plugins;
pub use spec::{PluginKind, PluginSpec, Sha256Pin};
pub use storage::PluginStore;

/// Calls into one plugin that may be running at once (and so the most
/// threads a plugin that never returns can hold).
pub const MAX_IN_FLIGHT: usize = 64;
/// The default time-out of a call (`timeout_ms`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time-out of `init` (`init_timeout_ms`): it may connect to a database.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a plugin call failed. The message names the plugin and the call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin answered with an error status (or the SDK caught a panic).
    #[error("plugin {plugin:?} failed in {op}: {reason}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// The call, e.g. `put`.
        op: &'static str,
        /// What the plugin said (`panicked: ...` for a caught panic).
        reason: String,
    },
    /// The plugin did not return within its time-out.
    #[error(
        "plugin {plugin:?} did not answer {op} within {after:?}; the call was abandoned \
         (raise `timeout_ms` if the plugin is merely slow)"
    )]
    TimedOut {
        /// The plugin's name.
        plugin: String,
        /// The call.
        op: &'static str,
        /// The time-out.
        after: Duration,
    },
    /// The plugin answered something the ABI does not allow.
    #[error("plugin {plugin:?} returned garbage from {op}: {what}")]
    Garbage {
        /// The plugin's name.
        plugin: String,
        /// The call.
        op: &'static str,
        /// What was wrong (never the bytes themselves).
        what: String,
    },
    /// Too many earlier calls never returned.
    #[error(
        "plugin {plugin:?} has {MAX_IN_FLIGHT} calls that have not returned; refusing to call \
         it again until some do"
    )]
    Saturated {
        /// The plugin's name.
        plugin: String,
    },
    /// The plugin was closed at shutdown.
    #[error("plugin {plugin:?} is closed")]
    Closed {
        /// The plugin's name.
        plugin: String,
    },
}
