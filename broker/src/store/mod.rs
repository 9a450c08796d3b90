//! Persistence: a small key-value [`Store`] trait over opaque bytes, the sled
//! backend, the AEAD sealing of records, and the [`Vault`] that ties them to
//! credentials.
//!
//! **Invariant:** no byte reaches a [`Store`] unsealed. Only [`vault`] calls
//! [`seal`], so backends (sled today, plugins later) never see a secret or an
//! Account SID in clear.

mod record;
pub mod seal;
pub mod sled_store;
pub mod vault;

pub use sled_store::SledStore;
pub use vault::Vault;

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

/// A key-value store of sealed records. Keys are UTF-8 paths such as
/// `credential/prod-key`; values are opaque sealed bytes.
///
/// Implementations must make a write durable before `put`/`delete` return.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` at `key`, durably.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Removes `key`, durably. True when it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Every entry whose key starts with `prefix`, ordered by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Replaces every entry under `prefix` with `entries` atomically (used by `rekey`).
    async fn replace_all(
        &self,
        prefix: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError>;
}
