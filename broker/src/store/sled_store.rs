//! The embedded default [`Store`]: one sled tree in the data directory.
//!
//! sled syncs only in the background, so every write is followed by
//! `flush_async()` before it is acknowledged: an acknowledged write survives
//! `kill -9`.

use std::path::Path;

use super::{Store, StoreError};

/// A [`Store`] backed by sled.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

const TREE: &str = "records";

fn backend(err: sled::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn key_string(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec())
        .map_err(|_| StoreError::Backend("a record key is not UTF-8".into()))
}

impl SledStore {
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
        Ok(SledStore { db, tree })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map_err(backend)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.tree.insert(key, value).map_err(backend)?;
        self.flush().await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let existed = self.tree.remove(key).map_err(backend)?.is_some();
        self.flush().await?;
        Ok(existed)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = entry.map_err(backend)?;
                Ok((key_string(&k)?, v.to_vec()))
            })
            .collect()
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
            batch.insert(k.as_bytes(), v);
        }
        self.tree.apply_batch(batch).map_err(backend)?;
        self.flush().await
    }
}
