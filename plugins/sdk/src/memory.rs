//! [`MemoryStorage`]: an in-memory [`Storage`], the reference for the
//! semantics the conformance suite checks (one version counter for the whole
//! store, a change generation with a condition variable). Handy in tests;
//! nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::PluginError;
use crate::storage::{Cas, Changes, Storage, Versioned};

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Versioned>,
    /// The last version handed out; versions come from one counter so a key
    /// never sees a version again, even after it is deleted.
    last_version: u64,
    /// Bumped on every change; `wait_for_change` watches it.
    generation: u64,
    /// Key → the generation of its last write or removal
    /// (`changes_since`; removed keys stay, as tombstones).
    changed: BTreeMap<String, u64>,
}

/// An in-memory storage backend.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
    changed: Condvar,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, PluginError> {
        self.state
            .lock()
            .map_err(|_| PluginError::failed("the store's lock is poisoned by an earlier panic"))
    }

    fn write(&self, state: &mut State, key: &str, value: &[u8]) -> u64 {
        state.last_version += 1;
        state.generation += 1;
        let (version, generation) = (state.last_version, state.generation);
        state.changed.insert(key.to_owned(), generation);
        state.entries.insert(
            key.to_owned(),
            Versioned {
                value: value.to_vec(),
                version,
            },
        );
        self.changed.notify_all();
        version
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        Ok(self.lock()?.entries.get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        let mut state = self.lock()?;
        Ok(self.write(&mut state, key, value))
    }

    fn delete(&self, key: &str) -> Result<bool, PluginError> {
        let mut state = self.lock()?;
        let existed = state.entries.remove(key).is_some();
        if existed {
            state.generation += 1;
            let generation = state.generation;
            state.changed.insert(key.to_owned(), generation);
            self.changed.notify_all();
        }
        Ok(existed)
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        let state = self.lock()?;
        Ok(state
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError> {
        let mut state = self.lock()?;
        let current = state.entries.get(key).map_or(0, |v| v.version);
        if current != expected {
            return Ok(Cas::Conflict { current });
        }
        Ok(Cas::Swapped {
            version: self.write(&mut state, key, value),
        })
    }

    /// Cursors are the generation read plus one; a key is reported when its
    /// last write or removal came at or after the cursor.
    fn changes_since(&self, prefix: &str, cursor: u64) -> Result<Option<Changes>, PluginError> {
        let state = self.lock()?;
        let under = |k: &String| k.starts_with(prefix);
        let entries = if cursor == 0 {
            state
                .entries
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| under(k))
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect()
        } else {
            state
                .changed
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| under(k))
                .filter(|(_, at)| **at >= cursor)
                .map(|(k, _)| (k.clone(), state.entries.get(k).cloned()))
                .collect()
        };
        Ok(Some(Changes {
            entries,
            cursor: state.generation + 1,
        }))
    }

    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<Option<u64>, PluginError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock()?;
        while state.generation == after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map_err(|_| PluginError::failed("the store's lock is poisoned"))?
                .0;
        }
        Ok(Some(state.generation))
    }
}
