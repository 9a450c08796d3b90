//! The storage backend kind: a key-value store of opaque (sealed) bytes with
//! a version per key and compare-and-swap on it.
//!
//! The broker seals every record before it reaches a backend, so a backend
//! never sees a secret in clear; it stores and returns bytes exactly.

use std::time::Duration;

use crate::PluginError;

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes, exactly as written.
    pub value: Vec<u8>,
    /// Positive; changes on every write of the key and never repeats for it.
    pub version: u64,
}

/// The result of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// The value was written; this is its new version.
    Swapped {
        /// The new version.
        version: u64,
    },
    /// The key was not at the expected version; nothing was written.
    Conflict {
        /// The version found (0: the key is absent).
        current: u64,
    },
}

/// What may have changed under a prefix since a cursor
/// ([`Storage::changes_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Each key that may have changed, in ascending key order: its entry
    /// now, or `None` when it is gone. Unchanged keys may be included.
    pub entries: Vec<(String, Option<Versioned>)>,
    /// Where the next call starts from (positive).
    pub cursor: u64,
}

/// The operations of a storage backend. Every method may be called from many
/// threads at once.
///
/// Versions: a write (`put`, a successful `compare_and_swap`) gives the key a
/// new positive version, greater than every version the key had before, even
/// across a delete. Simplest: one counter for the whole store (a sequence).
pub trait Storage: Send + Sync {
    /// The value and version at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError>;
    /// Stores `value` at `key` unconditionally and durably; returns the new version.
    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError>;
    /// Removes `key` durably; true when it existed.
    fn delete(&self, key: &str) -> Result<bool, PluginError>;
    /// Every entry whose key starts with `prefix`, ordered by key bytes.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError>;
    /// Writes `value` only if the key is at `expected` (0: absent), atomically.
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError>;
    /// Waits until the change generation differs from `after` or `timeout`
    /// passes, and returns the current generation; `Ok(None)` when the
    /// backend cannot tell (the broker then re-reads on a timer).
    ///
    /// Backends shared by several broker replicas implement this (e.g. with
    /// PostgreSQL LISTEN/NOTIFY) so that a write through one replica is
    /// served by the others quickly.
    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<Option<u64>, PluginError> {
        let _ = (after, timeout);
        Ok(None)
    }
    /// What changed under `prefix` since `cursor`, so that a replica that
    /// missed notifications re-reads only that (issue 20). With `cursor` 0:
    /// every entry under `prefix`, as [`Storage::list`]. With a cursor from
    /// an earlier answer: at least every key under `prefix` written or
    /// removed since that answer was read (removed ones as `None`), and the
    /// cursor to ask from next. `Ok(None)` when the backend cannot tell
    /// (the default): the broker then reads everything with `list`.
    fn changes_since(&self, prefix: &str, cursor: u64) -> Result<Option<Changes>, PluginError> {
        let _ = (prefix, cursor);
        Ok(None)
    }
}

/// A storage backend the broker can load: [`Storage`] plus its life cycle.
/// Export it with [`export_storage!`](crate::export_storage).
pub trait StoragePlugin: Storage + Sized + 'static {
    /// A short name for logs and errors, e.g. `postgres`.
    const NAME: &'static str;
    /// Builds the backend from the `config` table of its `[[plugins]]` entry.
    fn init(config: &serde_json::Value) -> Result<Self, PluginError>;
    /// Releases resources at shutdown.
    fn close(self) -> Result<(), PluginError> {
        Ok(())
    }
}
