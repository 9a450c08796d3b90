//! `{{name}}`: a twilio-broker storage backend.
//!
//! The broker keeps its credentials here, sealed: every value is ciphertext
//! it encrypted before the call, so this backend never sees a secret and
//! stores and returns bytes exactly. As generated, it keeps everything in
//! memory (nothing survives a restart); replace the `State` behind the lock
//! with your database client, keeping the rules written on each method.
//!
//! Configuration (the `config` table of the broker's `[[plugins]]` entry;
//! at most one storage plugin):
//! ```toml
//! [[plugins]]
//! kind = "storage"
//! path = "/usr/lib/twilio-broker/lib{{crate}}.so"
//! config = {}
//! ```

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{Cas, PluginError, Storage, StoragePlugin, Versioned};

/// What the store holds.
#[derive(Default)]
struct State {
    /// Key → value and version, ordered by key bytes (as `list` must be).
    entries: BTreeMap<String, Versioned>,
    /// The last version handed out. One counter for the whole store is the
    /// simplest way to keep the rule "a key never sees a version twice, not
    /// even after it is deleted and written again" (a database sequence).
    last_version: u64,
}

/// The backend. Every method may be called from many threads at once.
pub struct {{Type}} {
    state: Mutex<State>,
}

impl {{Type}} {
    /// Locks the state; a poisoned lock is an error, never a second panic.
    fn state(&self) -> Result<MutexGuard<'_, State>, PluginError> {
        self.state
            .lock()
            .map_err(|_| PluginError::failed("an earlier call panicked"))
    }
}

impl State {
    /// Writes `value` at `key` under a fresh version.
    fn write(&mut self, key: &str, value: &[u8]) -> u64 {
        self.last_version += 1;
        let version = self.last_version;
        self.entries.insert(
            key.to_owned(),
            Versioned {
                value: value.to_vec(),
                version,
            },
        );
        version
    }
}

/// How the broker builds and shuts down the backend.
impl StoragePlugin for {{Type}} {
    /// The name the broker shows in logs, errors and `plugin check`.
    const NAME: &'static str = "{{name}}";

    /// Builds the backend from its `config` table (as JSON): connect here
    /// and fail with a clear message (it stops the broker at start-up).
    fn init(config: &Value) -> Result<Self, PluginError> {
        let object = config
            .as_object()
            .ok_or_else(|| PluginError::invalid("config must be a table"))?;
        if let Some(unknown) = object.keys().next() {
            return Err(PluginError::invalid(format!(
                "unknown config key {unknown:?} (this backend takes none)"
            )));
        }
        Ok({{Type}} {
            state: Mutex::new(State::default()),
        })
    }
}

/// The calls. Return promptly: the broker abandons a call after the entry's
/// `timeout_ms` (5 s by default). `PluginError::unavailable` says "down,
/// retry later"; errors never hold a value (the broker never sends secrets,
/// but keep it that way).
impl Storage for {{Type}} {
    /// The value and version at `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        Ok(self.state()?.entries.get(key).cloned())
    }

    /// Stores `value` unconditionally and durably; returns its new version.
    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        Ok(self.state()?.write(key, value))
    }

    /// Removes `key` durably; true when it existed.
    fn delete(&self, key: &str) -> Result<bool, PluginError> {
        Ok(self.state()?.entries.remove(key).is_some())
    }

    /// Every entry whose key starts with `prefix`, ordered by key bytes.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        let state = self.state()?;
        Ok(state
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    /// Writes `value` only if the key is at version `expected` (0: the key
    /// must be absent), atomically: in SQL, one conditional UPDATE/INSERT.
    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError> {
        let mut state = self.state()?;
        let current = state.entries.get(key).map_or(0, |v| v.version);
        if current != expected {
            return Ok(Cas::Conflict { current });
        }
        Ok(Cas::Swapped {
            version: state.write(key, value),
        })
    }

    // `wait_for_change` is optional: without it the broker re-reads on a
    // timer. Implement it (e.g. PostgreSQL LISTEN/NOTIFY) when several
    // brokers share the store, so one sees another's writes at once.
}

// The one line that makes this crate a plugin: it exports the ABI symbols
// and the table of C functions that call the traits above (no `unsafe` here).
twilio_broker_plugin_sdk::export_storage!({{Type}});
