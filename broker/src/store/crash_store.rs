//! A [`Store`] that can crash, for tests of the vault's group commit: it
//! keeps what a real disk would hold after a power cut. A plain write is
//! durable on return (and, like sled's flush, makes every earlier deferred
//! write durable); a deferred write becomes durable only at the next
//! [`Store::sync`]. [`CrashStore::crash`] returns a store holding only what
//! was durable, as a restart after `kill -9` would find it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Cas, Store, StoreError, Versioned};

#[derive(Default, Clone)]
struct Disk {
    /// What a reader sees now.
    live: BTreeMap<String, Versioned>,
    /// What survives a crash.
    durable: BTreeMap<String, Versioned>,
    /// Writes since the last sync, in order (not durable yet).
    unsynced: Vec<(String, Option<Versioned>)>,
    /// The last version handed out.
    last_version: u64,
    /// How many syncs were asked for.
    syncs: u64,
}

impl Disk {
    fn write(&mut self, key: &str, value: Option<Vec<u8>>) {
        let written = value.map(|value| {
            self.last_version += 1;
            Versioned {
                value,
                version: self.last_version,
            }
        });
        match &written {
            Some(v) => self.live.insert(key.to_owned(), v.clone()),
            None => self.live.remove(key),
        };
        self.unsynced.push((key.to_owned(), written));
    }

    /// Makes the first `keep` unsynced writes durable (all: a sync).
    fn persist(&mut self, keep: usize) {
        let unsynced = std::mem::take(&mut self.unsynced);
        for (key, written) in unsynced.into_iter().take(keep) {
            match written {
                Some(v) => self.durable.insert(key, v),
                None => self.durable.remove(&key),
            };
        }
    }

    fn sync(&mut self) {
        self.persist(usize::MAX);
    }
}

/// An in-memory store with a crash that loses unsynced writes.
#[derive(Default)]
pub(crate) struct CrashStore {
    disk: Mutex<Disk>,
    /// How long a sync takes (a disk's flush is not free).
    sync_time: Duration,
}

impl CrashStore {
    /// A store whose every sync takes `sync_time`.
    pub(crate) fn with_sync_time(sync_time: Duration) -> Self {
        CrashStore {
            sync_time,
            ..CrashStore::default()
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a restart finds: only the durable writes.
    pub(crate) fn crash(&self) -> CrashStore {
        self.crash_keeping(0)
    }

    /// What a restart finds when the disk had also written the first `keep`
    /// unsynced writes, in order (sled's log is written as a prefix).
    pub(crate) fn crash_keeping(&self, keep: usize) -> CrashStore {
        let mut disk = self.disk().clone();
        disk.persist(keep);
        CrashStore {
            disk: Mutex::new(Disk {
                live: disk.durable.clone(),
                durable: disk.durable.clone(),
                unsynced: Vec::new(),
                last_version: disk.last_version,
                syncs: 0,
            }),
            sync_time: Duration::ZERO,
        }
    }

    /// How many syncs were asked for so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.disk().syncs
    }

    fn cas(&self, key: &str, expected: u64, value: Vec<u8>, durable: bool) -> Cas {
        let mut disk = self.disk();
        let current = disk.live.get(key).map_or(0, |v| v.version);
        if current != expected {
            return Cas::Conflict { current };
        }
        disk.write(key, Some(value));
        if durable {
            disk.sync();
        }
        Cas::Swapped {
            version: disk.last_version,
        }
    }

    fn remove(&self, key: &str, durable: bool) -> bool {
        let mut disk = self.disk();
        let existed = disk.live.contains_key(key);
        disk.write(key, None);
        if durable {
            disk.sync();
        }
        existed
    }
}

#[async_trait::async_trait]
impl Store for CrashStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.disk().live.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        let mut disk = self.disk();
        disk.write(key, Some(value));
        disk.sync();
        Ok(disk.last_version)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.remove(key, true))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        Ok(self
            .disk()
            .live
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        Ok(self.cas(key, expected, value, true))
    }

    async fn replace_all(
        &self,
        _prefix: &str,
        _entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        Err(StoreError::Backend("not supported in tests".into()))
    }

    async fn compare_and_swap_deferred(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        Ok(self.cas(key, expected, value, false))
    }

    async fn delete_deferred(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.remove(key, false))
    }

    async fn sync(&self) -> Result<(), StoreError> {
        // What the sync covers is fixed when it starts, as with a flush.
        let covered = {
            let mut disk = self.disk();
            disk.syncs += 1;
            disk.unsynced.len()
        };
        if !self.sync_time.is_zero() {
            tokio::time::sleep(self.sync_time).await;
        }
        let mut disk = self.disk();
        let at = covered.min(disk.unsynced.len());
        let later = disk.unsynced.split_off(at);
        disk.sync();
        disk.unsynced = later;
        Ok(())
    }
}
