//! Test-only storage plugin: the SDK's in-memory store, with faults injected
//! per call (see plugins/testing/README.md).

#![allow(missing_docs)]

#[path = "../../faults.rs"]
mod faults;

use std::time::Duration;

use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{
    Cas, MemoryStorage, PluginError, Storage, StoragePlugin, Versioned,
};

pub struct FaultyStorage {
    faults: faults::Faults,
    inner: MemoryStorage,
}

impl Storage for FaultyStorage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        self.faults.check("get")?;
        self.inner.get(key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        self.faults.check("put")?;
        self.inner.put(key, value)
    }

    fn delete(&self, key: &str) -> Result<bool, PluginError> {
        self.faults.check("delete")?;
        self.inner.delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        self.faults.check("list")?;
        self.inner.list(prefix)
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError> {
        self.faults.check("compare_and_swap")?;
        self.inner.compare_and_swap(key, expected, value)
    }

    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<Option<u64>, PluginError> {
        self.faults.check("wait_for_change")?;
        self.inner.wait_for_change(after, timeout)
    }
}

impl StoragePlugin for FaultyStorage {
    const NAME: &'static str = "faulty-storage";

    fn init(config: &Value) -> Result<Self, PluginError> {
        Ok(FaultyStorage {
            faults: faults::Faults::from_config(config)?,
            inner: MemoryStorage::new(),
        })
    }
}

twilio_broker_plugin_sdk::export_storage!(FaultyStorage);
