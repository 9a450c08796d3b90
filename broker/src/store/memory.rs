//! A [`Store`] over the SDK's in-memory storage, for tests that need several
//! vaults sharing one store (as broker replicas share PostgreSQL).

use twilio_broker_plugin_sdk::{MemoryStorage, PluginError, Storage as _};

use super::{Cas, Changes, Store, StoreError, Versioned};

/// An in-memory store shared by reference.
#[derive(Default)]
pub(crate) struct MemoryStore(pub MemoryStorage);

fn backend(err: PluginError) -> StoreError {
    StoreError::Backend(err.to_string())
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.0.get(key).map_err(backend)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        self.0.put(key, &value).map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.0.delete(key).map_err(backend)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        self.0.list(prefix).map_err(backend)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        self.0
            .compare_and_swap(key, expected, &value)
            .map_err(backend)
    }

    async fn changes_since(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<Option<Changes>, StoreError> {
        self.0.changes_since(prefix, cursor).map_err(backend)
    }

    async fn replace_all(
        &self,
        _prefix: &str,
        _entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        Err(StoreError::Backend("not supported in tests".into()))
    }
}
