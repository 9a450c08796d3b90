//! [`BlockingStore`]: any [`Store`] seen through the plugin SDK's synchronous
//! [`Storage`] trait, so the SDK's conformance suite runs unchanged against
//! the broker's own backends (sled, and storage plugins through the host).
//!
//! Call it from a thread outside the async executor (`spawn_blocking`).

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use twilio_broker_plugin_sdk::{Cas, Changes, PluginError, Storage, Versioned};

use super::{ChangeFeed, Store, StoreError};

/// A [`Store`] driven from blocking code.
pub struct BlockingStore {
    store: Arc<dyn Store>,
    runtime: Handle,
    changes: Option<watch::Receiver<u64>>,
}

impl BlockingStore {
    /// Wraps `store`; `runtime` runs its futures. Reads the change feed once.
    pub async fn new(store: Arc<dyn Store>, runtime: Handle) -> Self {
        let changes = match store.change_feed().await {
            ChangeFeed::Notified(rx) => Some(rx),
            ChangeFeed::Exclusive | ChangeFeed::Poll(_) => None,
        };
        BlockingStore {
            store,
            runtime,
            changes,
        }
    }

    fn run<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, PluginError> {
        self.runtime.block_on(call).map_err(|err| match err {
            StoreError::Unavailable(msg) => PluginError::unavailable(msg),
            other => PluginError::failed(other),
        })
    }
}

impl Storage for BlockingStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        self.run(self.store.get(key))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        self.run(self.store.put(key, value.to_vec()))
    }

    fn delete(&self, key: &str) -> Result<bool, PluginError> {
        self.run(self.store.delete(key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        self.run(self.store.list(prefix))
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError> {
        self.run(self.store.compare_and_swap(key, expected, value.to_vec()))
    }

    fn changes_since(&self, prefix: &str, cursor: u64) -> Result<Option<Changes>, PluginError> {
        self.run(self.store.changes_since(prefix, cursor))
    }

    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<Option<u64>, PluginError> {
        let Some(changes) = &self.changes else {
            return Ok(None);
        };
        let mut changes = changes.clone();
        self.runtime.block_on(async {
            // A time-out is an answer ("no change"), not an error.
            let _ = tokio::time::timeout(timeout, changes.wait_for(|g| *g != after)).await;
        });
        Ok(Some(*changes.borrow()))
    }
}
