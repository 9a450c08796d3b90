//! Online key rotation of the vault (issue 18): taking a reloaded keyring,
//! re-sealing every record under its newest key in the background, and
//! counting which key each record is sealed under.
//!
//! **Invariants:**
//! - A re-seal keeps a record's plaintext, store key and record version and
//!   changes only its sealing (fresh nonce, newest key id): the manifest is
//!   untouched, a served credential stays the same `Arc` (caches keep their
//!   tokens), and an old-key copy of the same version put back holds the
//!   same content (it only delays retirement).
//! - Each record is re-sealed under the write lock with compare-and-swap
//!   against the store version the index holds, so neither a local put nor
//!   another replica's write is ever overwritten; a conflict re-reads and the
//!   next pass tries again.
//! - A keyring is taken only if it holds every key a record is still sealed
//!   under ([`Vault::set_keyring`]), so a reload never makes a record
//!   unreadable.
//! - The pass is stateless (it looks for records not under the newest key),
//!   so it resumes after a restart and works the same on every `Store`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use super::names::NAME_KEY;
use super::{Entry, KEY_CHECK, KEY_CHECK_PLAINTEXT, Vault, manifest, record};
use crate::error::Error;
use crate::master_key::{KeyId, MasterKey};
use crate::seal::{self, RecordKind};
use crate::state_file::{KeyringUse, StateFile};
use crate::store::{Cas, StoreError};

/// Credential records re-sealed per batch (under the write lock once each).
pub const BATCH: usize = 64;
/// Pause between two batches: with [`BATCH`], at most 1,280 records a
/// second, so a rotation never competes with the calls being served.
pub const BATCH_PAUSE: Duration = Duration::from_millis(50);
/// How often an idle task checks again (a reload or another replica may
/// have written under an older key).
pub const IDLE_PAUSE: Duration = Duration::from_secs(2);
/// Store keys of the vault's own records (key check, name key, manifest).
const META_PREFIX: &str = "meta/";

/// Which key each record is sealed under, as counted by one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringProgress {
    /// The keyring's newest key.
    pub newest: KeyId,
    /// Key id → records sealed under it (credentials and the vault's own
    /// records, the state file included when there is one).
    pub sealed_under: BTreeMap<KeyId, u64>,
    /// Records that could not be opened (never re-sealed; they keep
    /// [`KeyringProgress::complete`] false).
    pub unreadable: u64,
}

impl KeyringProgress {
    /// Records not yet under the newest key.
    pub fn remaining(&self) -> u64 {
        self.sealed_under
            .iter()
            .filter(|(id, _)| **id != self.newest)
            .map(|(_, n)| n)
            .sum()
    }

    /// True when every record is readable and under the newest key.
    pub fn complete(&self) -> bool {
        self.remaining() == 0 && self.unreadable == 0
    }

    /// What the state file keeps of it (for `keyring retire`).
    pub fn to_use(&self) -> KeyringUse {
        KeyringUse {
            newest: self.newest.to_string(),
            complete: self.complete(),
            sealed_under: self
                .sealed_under
                .iter()
                .map(|(id, n)| (id.to_string(), *n))
                .collect(),
        }
    }
}

/// Why a reloaded keyring was not taken.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// A key records are still sealed under is missing from the new ring.
    #[error(
        "the reloaded keyring lacks key id {id}, which {records} record(s) are still sealed \
         under; keeping the current keyring (put the key back, or wait until \
         twilio_broker_keyring_reseal_remaining is 0 before retiring it)"
    )]
    StillInUse {
        /// The missing key.
        id: KeyId,
        /// How many records use it.
        records: u64,
    },
    /// The store failed while counting.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Vault {
    /// The id of the keyring's newest key (the one new writes are sealed under).
    pub fn key_id(&self) -> KeyId {
        self.key.load().id()
    }

    /// Takes a reloaded keyring: from now on writes seal under its newest
    /// key and the re-seal task moves every record there. Refused (the
    /// current ring kept) when it lacks a key some record is sealed under.
    pub async fn set_keyring(&self, key: MasterKey) -> Result<(), KeyringError> {
        let _writer = self.write_lock.lock().await;
        let mut counted = self.count(&key).await?;
        counted
            .sealed_under
            .retain(|id, _| key.opener(*id).is_none());
        if let Some((id, records)) = counted.sealed_under.into_iter().next() {
            return Err(KeyringError::StillInUse { id, records });
        }
        tracing::info!(newest = %key.id(), keys = key.ring().count(), "keyring loaded");
        self.key.store(Arc::new(key));
        Ok(())
    }

    /// Counts which key every record is sealed under (a whole pass over the
    /// index and the vault's own records).
    pub async fn keyring_progress(&self) -> Result<KeyringProgress, StoreError> {
        let key = self.key.load_full();
        self.count(&key).await
    }

    async fn count(&self, key: &MasterKey) -> Result<KeyringProgress, StoreError> {
        let index = self.index.load_full();
        let mut progress = KeyringProgress {
            newest: key.id(),
            sealed_under: key.ring().map(|k| (k.id(), 0)).collect(),
            unreadable: index.unreadable.len() as u64,
        };
        let mut add = |id: Option<KeyId>| {
            if let Some(id) = id {
                *progress.sealed_under.entry(id).or_default() += 1;
            }
        };
        for entry in index.entries.values() {
            add(entry.sealed_under);
        }
        for (_, stored) in self.store.list(META_PREFIX).await? {
            add(seal::key_id_of(&stored.value));
        }
        if let Some(state) = &self.state_file {
            add(Some(state.sealed_under()));
        }
        Ok(progress)
    }

    /// Re-seals under the newest key up to [`BATCH`] credential records
    /// whose store key follows `after` (from the first when `None`). Returns
    /// the last store key looked at (`None` once the end is reached) and how
    /// many records were re-sealed.
    pub async fn reseal_credentials(
        &self,
        after: Option<String>,
    ) -> Result<(Option<String>, usize), Error> {
        let _writer = self.write_lock.lock().await;
        let key = self.key.load_full();
        let index = self.index.load_full();
        let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut resealed = 0;
        let mut last = None;
        for (store_key, entry) in index.entries.range::<_, str>((start, Bound::Unbounded)) {
            if resealed == BATCH {
                return Ok((last, resealed));
            }
            last = Some(store_key.clone());
            if entry.sealed_under == Some(key.id()) || index.unreadable.contains_key(store_key) {
                continue;
            }
            let Some(credential) = entry.name.as_ref().and_then(|n| index.credentials.get(n))
            else {
                continue;
            };
            let sealed = seal::seal_record(
                &key,
                store_key,
                RecordKind::Credential,
                entry.record_version,
                &record::encode(credential),
            );
            match self
                .store
                .compare_and_swap(store_key, entry.store_version, sealed)
                .await?
            {
                Cas::Swapped { version } => {
                    resealed += 1;
                    let updated = Entry {
                        store_version: version,
                        sealed_under: Some(key.id()),
                        ..entry.clone()
                    };
                    self.publish(|index| {
                        index.entries.insert(store_key.clone(), updated);
                    });
                }
                Cas::Conflict { .. } => {
                    // Another replica wrote it: read what it wrote; the
                    // next pass looks again.
                    self.reread_locked().await?;
                    return Ok((last, resealed));
                }
            }
        }
        Ok((None, resealed))
    }

    /// Re-seals the vault's own records (key check, name key, manifest
    /// buckets and top) that are not under the newest key, each at its own
    /// version and with compare-and-swap. Returns how many were re-sealed.
    pub async fn reseal_meta(&self) -> Result<usize, Error> {
        let _writer = self.write_lock.lock().await;
        let key = self.key.load_full();
        let mut resealed = 0;
        for (store_key, stored) in self.store.list(META_PREFIX).await? {
            if seal::key_id_of(&stored.value) == Some(key.id()) {
                continue;
            }
            let opened = seal::open_record(&key, &store_key, &stored.value).map_err(|e| {
                Error::RecordUnreadable {
                    record: store_key.clone(),
                    detail: e.to_string(),
                }
            })?;
            let expected_kind = if store_key == KEY_CHECK || store_key == NAME_KEY {
                RecordKind::Plain
            } else {
                RecordKind::Manifest
            };
            // A key check of the first format becomes a current one.
            let kind = match opened.kind {
                RecordKind::Legacy if expected_kind == RecordKind::Plain => RecordKind::Plain,
                kind => kind,
            };
            if kind != expected_kind
                || (store_key == KEY_CHECK && opened.plaintext.as_slice() != KEY_CHECK_PLAINTEXT)
            {
                return Err(Error::RecordUnreadable {
                    record: store_key,
                    detail: "not the record expected there".into(),
                });
            }
            let sealed =
                seal::seal_record(&key, &store_key, kind, opened.version, &opened.plaintext);
            let Cas::Swapped { version } = self
                .store
                .compare_and_swap(&store_key, stored.version, sealed)
                .await?
            else {
                continue;
            };
            resealed += 1;
            // Keep the held store versions current, so the next manifest
            // commit does not lose a compare-and-swap to this re-seal.
            self.publish(|index| {
                let held = &mut index.manifest;
                if store_key == manifest::TOP {
                    if held.top_version == stored.version {
                        held.top_version = version;
                    }
                } else if let Some(bucket) = store_key
                    .strip_prefix(manifest::BUCKET_PREFIX)
                    .and_then(|hex| usize::from_str_radix(hex, 16).ok())
                    .filter(|b| *b < manifest::BUCKETS)
                    && held.held[bucket].store_version == stored.version
                {
                    held.held[bucket].store_version = version;
                }
            });
        }
        Ok(resealed)
    }
}

/// Runs the re-seal task until aborted: walks every credential record in
/// batches ([`BATCH`], [`BATCH_PAUSE`]), then the vault's own records and
/// the state file, then counts, publishes the `twilio_broker_keyring_*`
/// metrics and records the count in the state file; idles when everything
/// is under the newest key.
pub fn spawn(vault: Arc<Vault>, state: Option<Arc<StateFile>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let idle = match pass(&vault, state.as_deref()).await {
                Ok(progress) => progress.complete(),
                Err(err) => {
                    tracing::warn!(error = %err, "re-sealing under the newest master key failed; trying again");
                    false
                }
            };
            tokio::time::sleep(if idle { IDLE_PAUSE } else { BATCH_PAUSE }).await;
        }
    })
}

async fn pass(vault: &Vault, state: Option<&StateFile>) -> Result<KeyringProgress, Error> {
    let before = vault.keyring_progress().await?;
    let mut total = 0;
    if before.remaining() > 0 {
        let mut cursor = None;
        loop {
            let (next, resealed) = vault.reseal_credentials(cursor).await?;
            total += resealed;
            metrics::counter!("twilio_broker_keyring_resealed_total").increment(resealed as u64);
            let Some(next) = next else { break };
            cursor = Some(next);
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        let meta = vault.reseal_meta().await?;
        total += meta;
        metrics::counter!("twilio_broker_keyring_resealed_total").increment(meta as u64);
        if let Some(state) = state
            && state.sealed_under() != vault.key_id()
        {
            state
                .set_key((*vault.key.load_full()).clone())
                .map_err(|e| Error::StorageUnavailable {
                    detail: e.to_string(),
                })?;
        }
    }
    let progress = vault.keyring_progress().await?;
    publish_metrics(&progress);
    if total > 0 {
        tracing::info!(
            resealed = total,
            remaining = progress.remaining(),
            newest = %progress.newest,
            "re-sealed records under the newest master key"
        );
    }
    if let Some(state) = state {
        state
            .set_keyring_use(progress.to_use())
            .map_err(|e| Error::StorageUnavailable {
                detail: e.to_string(),
            })?;
    }
    Ok(progress)
}

fn publish_metrics(progress: &KeyringProgress) {
    metrics::gauge!("twilio_broker_keyring_reseal_remaining").set(progress.remaining() as f64);
    metrics::gauge!("twilio_broker_keyring_unreadable_records").set(progress.unreadable as f64);
    for (id, records) in &progress.sealed_under {
        metrics::gauge!("twilio_broker_keyring_records", "key_id" => id.to_string())
            .set(*records as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::credential::{Credential, Secret};
    use crate::store::Store;
    use crate::store::vault::VaultOptions;

    fn auth(name: &str) -> Credential {
        Credential {
            name: name.into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::AuthToken {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: format!("{:032x}", rand::random::<u128>()).into(),
                secondary_auth_token: None,
                rotation: None,
            },
        }
    }

    async fn sealed_under(store: &dyn Store) -> BTreeMap<KeyId, usize> {
        let mut out = BTreeMap::new();
        for (_, stored) in store.list("").await.expect("list") {
            if let Some(id) = seal::key_id_of(&stored.value) {
                *out.entry(id).or_default() += 1;
            }
        }
        out
    }

    async fn reseal_all(vault: &Vault) {
        let mut cursor = None;
        loop {
            let (next, _) = vault.reseal_credentials(cursor).await.expect("reseal");
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        vault.reseal_meta().await.expect("meta");
    }

    #[tokio::test]
    async fn an_online_rotation_reseals_everything_and_frees_the_old_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let state =
            Arc::new(StateFile::open(&dir.path().join("s.state"), old.clone()).expect("state"));
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::temporary().expect("store"));
        let options = VaultOptions {
            state_file: Some(Arc::clone(&state)),
            accept_rollback: false,
        };
        let vault = Vault::open_with(Arc::clone(&store), old.clone(), options)
            .await
            .expect("vault");
        let count = BATCH * 2 + 5;
        for n in 0..count {
            vault.put(auth(&format!("c{n}"))).await.expect("put");
        }
        let before = vault.get("c0").expect("served");
        // A ring without the key in use is refused.
        let err = vault
            .set_keyring(new.clone())
            .await
            .expect_err("old key missing");
        assert!(err.to_string().contains(&old.id().to_string()), "{err}");
        let ring = new.clone().with_older(vec![old.clone()]);
        vault.set_keyring(ring.clone()).await.expect("ring");
        assert_eq!(vault.key_id(), new.id());
        // New writes are sealed under the newest key at once.
        vault.put(auth("fresh")).await.expect("put");
        let fresh = store
            .get(&vault.names.store_key("fresh"))
            .await
            .expect("get")
            .expect("present");
        assert_eq!(seal::key_id_of(&fresh.value), Some(new.id()));
        let progress = vault.keyring_progress().await.expect("count");
        assert!(progress.remaining() >= count as u64, "{progress:?}");
        assert!(!progress.complete());
        // One batch at a time: the first stops after BATCH records.
        let (cursor, resealed) = vault.reseal_credentials(None).await.expect("batch");
        assert_eq!(resealed, BATCH);
        assert!(cursor.is_some());
        reseal_all(&vault).await;
        state.set_key(ring.clone()).expect("state file");
        let progress = vault.keyring_progress().await.expect("count");
        assert!(progress.complete(), "{progress:?}");
        assert_eq!(progress.sealed_under.get(&old.id()), Some(&0));
        assert_eq!(
            sealed_under(store.as_ref())
                .await
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![new.id()]
        );
        // The served credential is the same Arc: caches keep their tokens.
        assert!(Arc::ptr_eq(&before, &vault.get("c0").expect("served")));
        // The old key is retirable now; the store opens with the new key alone.
        state.set_keyring_use(progress.to_use()).expect("use");
        let usage = crate::state_file::read(state.path(), &new)
            .expect("read")
            .and_then(|d| d.keyring);
        let retired = crate::keyring::retire(&ring, old.id(), usage.as_ref()).expect("retirable");
        vault
            .set_keyring(retired.clone())
            .await
            .expect("new key alone");
        drop(vault);
        let options = VaultOptions {
            state_file: Some(Arc::new(
                StateFile::open(state.path(), retired.clone()).expect("state under the new key"),
            )),
            accept_rollback: false,
        };
        let reopened = Vault::open_with(store, retired, options)
            .await
            .expect("reopens");
        assert_eq!(reopened.len(), count + 1);
        assert!(reopened.get("c0").is_some());
    }

    #[tokio::test]
    async fn a_replica_that_resealed_does_not_lose_the_others_writes() {
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::default());
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let a = Vault::open(Arc::clone(&store), old.clone())
            .await
            .expect("a");
        let b = Vault::open(Arc::clone(&store), old.clone())
            .await
            .expect("b");
        for n in 0..10 {
            a.put(auth(&format!("c{n}"))).await.expect("put");
        }
        b.reread().await.expect("reread");
        let ring = new.clone().with_older(vec![old.clone()]);
        a.set_keyring(ring.clone()).await.expect("a ring");
        b.set_keyring(ring).await.expect("b ring");
        // b writes under the new key while a re-seals: both land.
        let ((), written) = tokio::join!(reseal_all(&a), b.put(auth("c3")));
        let written = written.expect("b's write");
        reseal_all(&a).await;
        a.reread().await.expect("reread");
        b.reread().await.expect("reread");
        for vault in [&a, &b] {
            let served = vault.get("c3").expect("served");
            assert_eq!(
                served.secret.secret_value().open().to_string(),
                written.secret.secret_value().open().to_string(),
                "b's write survives a's re-seal"
            );
            assert_eq!(vault.len(), 10);
        }
        assert!(a.keyring_progress().await.expect("count").complete());
        // b can still write (its held manifest versions recover from a's re-seal).
        b.put(auth("c11")).await.expect("put after the re-seal");
    }
}
