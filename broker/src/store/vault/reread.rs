//! Re-reading the store when another replica changed it (issue 20).
//!
//! The manifest's top is read, then the buckets it lists newer than held;
//! then the credential records. A store that can say what changed since a
//! cursor ([`Store::changes_since`], e.g. PostgreSQL) is asked for only
//! that, so a replica's resynchronisation after a missed notification reads
//! the changed rows, not the table; any other store is listed whole and
//! compared by store version. Either way only records whose store version
//! changed are opened again.
//!
//! **Invariant:** a record a changed manifest may judge differently is
//! judged again: with a whole listing, every unreadable or now-refused
//! record; with changes, every unreadable record and every record of a
//! re-read bucket that the new manifest refuses (fetched again by key). A
//! record served without a manifest entry (a write whose manifest update a
//! crash cut off) is judged again when its bucket changes, and at start-up.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::{CREDENTIAL_PREFIX, Index, Manifest, Vault, manifest};
use crate::store::{Store, StoreError, Versioned};

/// Every credential record, and the cursor to ask for changes from next
/// (0 when the store cannot say what changed).
pub(super) async fn read_all(
    store: &dyn Store,
) -> Result<(Vec<(String, Versioned)>, u64), StoreError> {
    match store.changes_since(CREDENTIAL_PREFIX, 0).await? {
        Some(changes) => Ok((
            changes
                .entries
                .into_iter()
                .filter_map(|(key, entry)| entry.map(|entry| (key, entry)))
                .collect(),
            changes.cursor,
        )),
        None => Ok((store.list(CREDENTIAL_PREFIX).await?, 0)),
    }
}

/// True when the record at `store_key`, now at store version `version`,
/// need not be opened again.
fn unchanged(
    current: &Index,
    next: &Index,
    store_key: &str,
    version: u64,
    manifest_changed: bool,
) -> bool {
    current.entries.get(store_key).is_some_and(|entry| {
        entry.store_version == version
            && !(manifest_changed
                && (current.unreadable.contains_key(store_key)
                    || next
                        .manifest
                        .refusal(store_key, entry.record_version)
                        .is_some()))
    })
}

impl Vault {
    /// See [`Vault::reread`]; the caller holds the write lock.
    pub(super) async fn reread_locked(&self) -> Result<usize, StoreError> {
        let current = self.index.load();
        let mut manifest = current.manifest.clone();
        let top = self.store.get(manifest::TOP).await?;
        match &top {
            Some(stored) if stored.version == manifest.top_version => {}
            Some(stored) => manifest.adopt_top(&self.key.load(), stored)?,
            None => manifest = Manifest::default(),
        }
        // Only buckets the top lists newer than held are read again.
        let buckets_read = manifest
            .refresh(self.store.as_ref(), &self.key.load())
            .await?;
        if manifest.generation < current.manifest.generation {
            return Err(StoreError::Backend(format!(
                "the store was rolled back while running (generation {} < {}); \
                 serving what was last read",
                manifest.generation, current.manifest.generation
            )));
        }
        let manifest_changed =
            manifest.top_version != current.manifest.top_version || !buckets_read.is_empty();
        // Start from the current index (an O(1) clone) and change only the
        // records whose store version changed, or whose verdict a new
        // manifest may change: O(changes · log n) beyond what is read.
        let mut next = Index {
            high: current.high.max(manifest.generation),
            manifest,
            ..Index::clone(&current)
        };
        let changes = match current.cursor {
            0 => None,
            cursor => self.store.changes_since(CREDENTIAL_PREFIX, cursor).await?,
        };
        let (read, changed) = match changes {
            Some(changes) => {
                next.cursor = changes.cursor;
                let read = changes.entries.len();
                let changed = self
                    .apply_changes(
                        &current,
                        &mut next,
                        changes.entries,
                        &buckets_read,
                        manifest_changed,
                    )
                    .await?;
                (read, changed)
            }
            None => {
                let (listed, cursor) = read_all(self.store.as_ref()).await?;
                next.cursor = cursor;
                let changed = self.apply_listing(&current, &mut next, &listed, manifest_changed);
                (listed.len(), changed)
            }
        };
        tracing::debug!(
            read,
            changed,
            since_cursor = current.cursor,
            "re-read the store's credential records"
        );
        let generation = next.manifest.generation;
        if changed > 0 || manifest_changed || next.cursor != current.cursor {
            if changed > 0 {
                tracing::info!(
                    changed,
                    "credentials changed in the store; now serving them"
                );
            }
            self.index.store(Arc::new(next));
        }
        if let Some(state) = &self.state_file
            && let Err(err) = state.set_store_generation(generation, false)
        {
            tracing::warn!(error = %err, "cannot raise the state file's store mark");
        }
        Ok(changed)
    }

    /// Applies a whole listing of the records; returns how many changed.
    fn apply_listing(
        &self,
        current: &Index,
        next: &mut Index,
        listed: &[(String, Versioned)],
        manifest_changed: bool,
    ) -> usize {
        let mut changed = 0;
        for (store_key, stored) in listed {
            if !unchanged(current, next, store_key, stored.version, manifest_changed) {
                changed += 1;
                next.insert_record(&self.key.load(), &self.names, store_key, stored);
            }
        }
        if listed.len() != next.entries.len() {
            let present: HashSet<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
            let gone: Vec<String> = next
                .entries
                .keys()
                .filter(|k| !present.contains(k.as_str()))
                .cloned()
                .collect();
            changed += gone.len();
            for store_key in gone {
                next.remove_record(&store_key);
            }
        }
        changed
    }

    /// Applies the records changed since the last read (`None`: gone),
    /// then judges again what the new manifest may judge differently (see
    /// the module's invariant). Returns how many changed.
    async fn apply_changes(
        &self,
        current: &Index,
        next: &mut Index,
        entries: Vec<(String, Option<Versioned>)>,
        buckets_read: &[usize],
        manifest_changed: bool,
    ) -> Result<usize, StoreError> {
        let mut changed = 0;
        let mut seen = HashSet::with_capacity(entries.len());
        for (store_key, entry) in entries {
            match &entry {
                Some(stored) => {
                    if !unchanged(current, next, &store_key, stored.version, manifest_changed) {
                        changed += 1;
                        next.insert_record(&self.key.load(), &self.names, &store_key, stored);
                    }
                }
                None => {
                    if next.entries.contains_key(&store_key) {
                        changed += 1;
                        next.remove_record(&store_key);
                    }
                }
            }
            seen.insert(store_key);
        }
        if !manifest_changed {
            return Ok(changed);
        }
        let mut again: BTreeSet<String> = current.unreadable.keys().cloned().collect();
        for bucket in buckets_read {
            let prefix = manifest::bucket_prefix(*bucket);
            again.extend(
                next.entries
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .filter(|(k, e)| next.manifest.refusal(k, e.record_version).is_some())
                    .map(|(k, _)| k.clone()),
            );
        }
        for store_key in again.iter().filter(|k| !seen.contains(*k)) {
            changed += 1;
            match self.store.get(store_key).await? {
                Some(stored) => {
                    next.insert_record(&self.key.load(), &self.names, store_key, &stored)
                }
                None => next.remove_record(store_key),
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use super::*;
    use crate::credential::{Credential, Secret};
    use crate::master_key::MasterKey;
    use crate::store::memory::MemoryStore;
    use crate::store::{Cas, Changes};

    /// A [`MemoryStore`] that counts the records its listings return.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        rows: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Store for Counting {
        async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, StoreError> {
            self.inner.put(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<bool, StoreError> {
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
            let listed = self.inner.list(prefix).await?;
            self.rows.fetch_add(listed.len(), Ordering::Relaxed);
            Ok(listed)
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: u64,
            value: Vec<u8>,
        ) -> Result<Cas, StoreError> {
            self.inner.compare_and_swap(key, expected, value).await
        }
        async fn replace_all(
            &self,
            prefix: &str,
            entries: Vec<(String, Vec<u8>)>,
        ) -> Result<(), StoreError> {
            self.inner.replace_all(prefix, entries).await
        }
        async fn changes_since(
            &self,
            prefix: &str,
            cursor: u64,
        ) -> Result<Option<Changes>, StoreError> {
            let changes = self.inner.changes_since(prefix, cursor).await?;
            if let Some(changes) = &changes {
                self.rows
                    .fetch_add(changes.entries.len(), Ordering::Relaxed);
            }
            Ok(changes)
        }
    }

    fn auth(name: &str, token: &str) -> Credential {
        Credential {
            name: name.into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::AuthToken {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: token.into(),
                secondary_auth_token: None,
                rotation: None,
            },
        }
    }

    /// With 200 credentials stored, a replica's re-read after two writes
    /// and a delete reads those three records, not the 200, and serves them.
    #[tokio::test]
    async fn a_reread_reads_only_what_changed() {
        let store = Arc::new(Counting::default());
        let key = MasterKey::generate();
        let a = Vault::open(Arc::clone(&store) as Arc<dyn Store>, key.clone())
            .await
            .expect("a");
        let b = Vault::open(Arc::clone(&store) as Arc<dyn Store>, key)
            .await
            .expect("b");
        for i in 0..200 {
            a.put(auth(&format!("c{i}"), "t")).await.expect("put");
        }
        assert_eq!(b.reread().await.expect("reread"), 200);
        store.rows.store(0, Ordering::Relaxed);
        a.put(auth("c7", "changed")).await.expect("put");
        a.put(auth("new", "t")).await.expect("put");
        a.delete("c9").await.expect("delete");
        assert_eq!(b.reread().await.expect("reread"), 3);
        let read = store.rows.load(Ordering::Relaxed);
        assert_eq!(read, 3, "the re-read read {read} records");
        assert!(b.get("new").is_some() && b.get("c9").is_none());
        assert_eq!(b.len(), 200);
        store.rows.store(0, Ordering::Relaxed);
        assert_eq!(b.reread().await.expect("idle reread"), 0);
        assert_eq!(store.rows.load(Ordering::Relaxed), 0);
    }
}
