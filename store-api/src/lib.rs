//! The storage contract of twilio-broker: the [`Store`] trait (a versioned
//! key-value store over opaque sealed bytes, with compare-and-swap, a
//! change feed, reads of what changed since a cursor, and deferred writes
//! for group commit), [`StoreError`] and [`ChangeFeed`].
//!
//! Its own crate, below both the daemon (whose sled backend and vault use
//! it) and the plugin host (whose `PluginStore` implements it), so neither
//! depends on the other. No `unsafe`, no I/O: only the contract.
//!
//! **Invariant (kept by the daemon's vault):** no byte reaches a [`Store`]
//! unsealed.

use std::time::Duration;

pub use twilio_broker_plugin_sdk::{Cas, Changes, Versioned};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached right now; a retry may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend failed.
    #[error("storage error: {0}")]
    Backend(String),
    /// A record could not be opened: damaged, truncated, moved or sealed under
    /// another key. Never served.
    #[error("record {key:?} cannot be opened: {reason}")]
    Unsealable {
        /// The store key of the record.
        key: String,
        /// What failed.
        reason: String,
    },
}

/// How a process learns that another process changed the store.
pub enum ChangeFeed {
    /// Only this process writes (sled holds an exclusive lock): nothing to follow.
    Exclusive,
    /// The backend reports changes; each new value means "re-read".
    Notified(tokio::sync::watch::Receiver<u64>),
    /// The backend cannot tell; re-read on this interval.
    Poll(Duration),
}

/// A key-value store of sealed records. Keys are UTF-8 paths such as
/// `credential/prod-key`; values are opaque sealed bytes.
///
/// Versions are positive, change on every write of a key and never repeat
/// for it (not even across a delete), so compare-and-swap cannot be fooled
/// by a key deleted and written again.
///
/// Implementations must make a write durable before it returns.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value and version at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;
    /// Stores `value` at `key`, durably; returns the new version.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError>;
    /// Removes `key`, durably. True when it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Every entry whose key starts with `prefix`, ordered by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;
    /// Writes `value` only if `key` is at version `expected` (0: absent).
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError>;
    /// Replaces every entry under `prefix` with `entries` atomically (used by `rekey`).
    async fn replace_all(
        &self,
        prefix: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError>;
    /// How to follow changes made by other processes.
    async fn change_feed(&self) -> ChangeFeed {
        ChangeFeed::Exclusive
    }
    /// What changed under `prefix` since `cursor` (0: everything), so that
    /// a replica re-reads only that; `Ok(None)` when the backend cannot
    /// tell (the default), and the caller reads everything with
    /// [`Store::list`]. See the SDK's `Storage::changes_since`.
    async fn changes_since(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<Option<Changes>, StoreError> {
        let _ = (prefix, cursor);
        Ok(None)
    }
    /// As [`Store::compare_and_swap`], but the write need only be durable
    /// once a later [`Store::sync`] returns (group commit: several writers'
    /// records, then one sync). Backends whose every write is durable on
    /// return (the default) simply write.
    async fn compare_and_swap_deferred(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        self.compare_and_swap(key, expected, value).await
    }
    /// As [`Store::delete`], durable once a later [`Store::sync`] returns.
    async fn delete_deferred(&self, key: &str) -> Result<bool, StoreError> {
        self.delete(key).await
    }
    /// Makes every write made before the call durable, deferred ones
    /// included. The default does nothing: every write was durable on return.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
