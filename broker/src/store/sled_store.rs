//! The embedded default [`Store`]: one sled tree in the data directory.
//!
//! Each value is stored as `version (u64, big-endian) | sealed bytes`.
//! Versions come from sled's `generate_id`, which is monotonic across
//! restarts and crashes, so a key never sees a version twice.
//! Compare-and-swap uses sled's own atomic compare-and-swap on the whole
//! stored value.
//!
//! sled syncs only in the background, so every write is followed by
//! `flush_async()` before it is acknowledged: an acknowledged write survives
//! `kill -9`. The deferred writes (`compare_and_swap_deferred`,
//! `delete_deferred`) skip that flush; the vault's group commit makes a
//! group of them durable with one `sync` (one `flush_async`).

use std::path::Path;

use super::{Cas, Store, StoreError, Versioned};

/// A [`Store`] backed by sled.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

/// The tree of versioned records.
const TREE: &str = "versioned-records";
/// The tree of the first format (sealed bytes without a version), migrated
/// into [`TREE`] on open.
const UNVERSIONED_TREE: &str = "records";
const VERSION_LEN: usize = 8;

fn backend(err: sled::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn key_string(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec())
        .map_err(|_| StoreError::Backend("a record key is not UTF-8".into()))
}

fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(stored: &[u8]) -> Result<Versioned, StoreError> {
    let (version, value) = stored
        .split_first_chunk::<VERSION_LEN>()
        .ok_or_else(|| StoreError::Backend("a stored record is shorter than its version".into()))?;
    Ok(Versioned {
        value: value.to_vec(),
        version: u64::from_be_bytes(*version),
    })
}

impl SledStore {
    /// Opens `dir` again in the same process (tests): sled's background
    /// threads of a store just dropped can hold the directory's lock for a
    /// moment, so a lock conflict is retried for up to five seconds.
    #[cfg(test)]
    pub(crate) fn reopen(dir: &Path) -> Self {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Self::open(dir) {
                Ok(store) => return store,
                Err(StoreError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => panic!("cannot reopen {}: {err}", dir.display()),
            }
        }
    }

    /// Opens (or creates) the store in `dir`. One process at a time.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|err| match err {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Unavailable(format!(
                        "the data directory {} is in use by another process",
                        dir.display()
                    ))
                }
                other => StoreError::Backend(format!(
                    "cannot open the data directory {}: {other}",
                    dir.display()
                )),
            })?;
        Self::from_db(db)
    }

    /// A throw-away store that vanishes when dropped (`--dev` without `--data-dir`).
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree(TREE).map_err(backend)?;
        let store = SledStore { db, tree };
        store.migrate_unversioned()?;
        Ok(store)
    }

    /// Moves records of the first format into the versioned tree, in one
    /// transaction, giving each a fresh version.
    fn migrate_unversioned(&self) -> Result<(), StoreError> {
        use sled::Transactional as _;
        let old = self.db.open_tree(UNVERSIONED_TREE).map_err(backend)?;
        let entries = old.iter().collect::<Result<Vec<_>, _>>().map_err(backend)?;
        if entries.is_empty() {
            return Ok(());
        }
        let mut versioned = Vec::with_capacity(entries.len());
        for (key, value) in &entries {
            versioned.push((key.clone(), encode(self.next_version()?, value)));
        }
        (&old, &self.tree)
            .transaction(|(old, new)| {
                for (key, value) in &versioned {
                    old.remove(key)?;
                    new.insert(key, value.as_slice())?;
                }
                Ok(())
            })
            .map_err(|err: sled::transaction::TransactionError<()>| {
                StoreError::Backend(format!(
                    "cannot migrate records to the versioned format: {err:?}"
                ))
            })?;
        self.db.flush().map_err(backend)?;
        tracing::info!(
            records = entries.len(),
            "migrated records to the versioned format"
        );
        Ok(())
    }

    fn next_version(&self) -> Result<u64, StoreError> {
        // generate_id may start at 0; versions are positive.
        Ok(self.db.generate_id().map_err(backend)? + 1)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map_err(backend)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.tree
            .get(key)
            .map_err(backend)?
            .map(|stored| decode(&stored))
            .transpose()
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
        let version = self.next_version()?;
        self.tree
            .insert(key, encode(version, &value))
            .map_err(backend)?;
        self.flush().await?;
        Ok(version)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let existed = self.tree.remove(key).map_err(backend)?.is_some();
        self.flush().await?;
        Ok(existed)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = entry.map_err(backend)?;
                Ok((key_string(&k)?, decode(&v)?))
            })
            .collect()
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        let cas = self.compare_and_swap_deferred(key, expected, value).await?;
        if let Cas::Swapped { .. } = cas {
            self.flush().await?;
        }
        Ok(cas)
    }

    async fn compare_and_swap_deferred(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<Cas, StoreError> {
        loop {
            let stored = self.tree.get(key).map_err(backend)?;
            let current = match &stored {
                Some(stored) => decode(stored)?.version,
                None => 0,
            };
            if current != expected {
                return Ok(Cas::Conflict { current });
            }
            let version = self.next_version()?;
            // sled swaps only if the whole stored value (version included)
            // is still what was read; otherwise someone wrote in between.
            let swapped = self
                .tree
                .compare_and_swap(key, stored, Some(encode(version, &value)))
                .map_err(backend)?;
            if swapped.is_ok() {
                return Ok(Cas::Swapped { version });
            }
        }
    }

    async fn delete_deferred(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.tree.remove(key).map_err(backend)?.is_some())
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.flush().await
    }

    async fn replace_all(
        &self,
        prefix: &str,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in self.tree.scan_prefix(prefix).keys() {
            batch.remove(entry.map_err(backend)?);
        }
        for (k, v) in entries {
            batch.insert(k.as_bytes(), encode(self.next_version()?, &v));
        }
        self.tree.apply_batch(batch).map_err(backend)?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::BlockingStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_sdk_storage_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("open"));
        let blocking = BlockingStore::new(store, tokio::runtime::Handle::current()).await;
        let report = tokio::task::spawn_blocking(move || {
            twilio_broker_plugin_sdk::conformance::storage::run(&blocking)
        })
        .await
        .expect("suite ran");
        report.assert_passed();
    }

    #[tokio::test]
    async fn versions_survive_a_restart_and_old_records_migrate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = {
            let db = sled::open(dir.path()).expect("raw open");
            db.open_tree(UNVERSIONED_TREE)
                .expect("old tree")
                .insert("credential/old", &b"sealed-old"[..])
                .expect("insert");
            db.flush().expect("flush");
            drop(db);
            let store = SledStore::reopen(dir.path());
            store
                .put("credential/new", b"n".to_vec())
                .await
                .expect("put")
        };
        let store = SledStore::reopen(dir.path());
        let old = store
            .get("credential/old")
            .await
            .expect("get")
            .expect("migrated");
        assert_eq!(old.value, b"sealed-old");
        let after = store
            .put("credential/new", b"m".to_vec())
            .await
            .expect("put");
        assert!(
            after > before,
            "version went from {before} to {after} across a restart"
        );
    }
}
