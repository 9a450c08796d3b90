//! The [`Vault`]: credentials sealed in a [`Store`], indexed in memory.
//!
//! Reads are lock-free (an [`ArcSwap`] of an immutable index), so the hot
//! paths (GetBearer, MintAccessToken) never wait on a write. Writes are
//! serialised, sealed, made durable in the store, and only then published in
//! the index. The index's maps are persistent ([`imbl::OrdMap`]): a write
//! publishes a new index sharing all but O(log n) nodes with the old one,
//! so a write costs O(log n) and loading n credentials O(n log n) (issue 20). A replaced or deleted credential is a different (or absent)
//! `Arc`, which is how caches built on a credential notice the change.
//!
//! Several replicas may share one store (a storage plugin such as
//! PostgreSQL). Writes use compare-and-swap on the record's version, so a
//! replica never overwrites a change it has not seen, and [`Vault::follow`]
//! re-reads the store whenever its [`ChangeFeed`] says another replica
//! changed it: only records whose version changed are opened again.
//!
//! # Record format and rollback (issue 14)
//!
//! A credential lives at `c/<32 hex digits>`, the first 128 bits of
//! HMAC-SHA256 of its name under the master key's name-hash subkey; the name
//! is sealed inside. Each record is sealed (see [`seal`]) with its kind and a
//! *record version* in the authenticated header. The sealed *manifest*
//! maps every store key to its record version and carries the store's
//! *generation* (the highest record version committed). It is sharded (see
//! [`manifest`]): 256 buckets `meta/manifest/<xx>` by store-key prefix and a
//! top record `meta/manifest` with the generation and each bucket's version,
//! so a write rewrites one bucket and the top (issue 20). A record
//! is served only if its version is at least the manifest's entry for it, or
//! (when the manifest has no entry) above the manifest's generation (a write
//! whose manifest update a crash cut off); so a single replayed record, or a
//! deleted one brought back, is refused. The manifest's generation is kept
//! as the high-water mark in the broker's state file; a store whose manifest
//! is older (a whole-store rollback) is refused at start-up unless
//! `--accept-rollback` is given.
//!
//! A put writes the record, then the manifest (bucket, then top), then the
//! state file; a delete writes the manifest first, then removes the record.
//! Concurrent writes are committed as a group ([`group`]) that keeps this
//! order for each of them and syncs the store once per step.
//! A manifest of the first format (one record) is rewritten as buckets when
//! the vault opens, after the rollback check. Records of the first
//! format (`credential/<name>`, sealed under the master key itself) are
//! migrated when the vault opens.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hmac::Mac as _;
use imbl::OrdMap;

use super::seal::{self, OpenError, RecordKind};
use super::{Cas, ChangeFeed, Store, StoreError, Versioned, record};
use crate::credential::Credential;
use crate::error::Error;
use crate::master_key::{KeyId, MasterKey, Purpose};
use crate::state_file::StateFile;

mod group;
mod manifest;
mod names;
mod reread;
pub(crate) mod reseal;

use manifest::Manifest;
pub use names::NameKey;

/// Store keys of credential records (a keyed hash of the name follows).
pub const CREDENTIAL_PREFIX: &str = "c/";
/// Store keys of the first format (the name in clear), migrated on open.
const LEGACY_PREFIX: &str = "credential/";
const KEY_CHECK: &str = "meta/key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"twilio-broker master key check v1";

/// How many times a put tries before giving up on a record other replicas
/// keep changing. Each loss means another replica's write landed, so the
/// system as a whole always progresses; the jittered pause keeps two busy
/// replicas from losing to each other in lockstep.
const PUT_ATTEMPTS: u64 = 16;
/// With change notifications, still re-read this often in case one was lost.
const SAFETY_REREAD: Duration = Duration::from_secs(30);

/// The store key of the credential called `name` in a store founded with
/// `key` (whose name key is `key`'s name-hash subkey, see [`NameKey`]).
pub fn credential_key(key: &MasterKey, name: &str) -> String {
    hashed_key(key.subkey(Purpose::NameHash), name)
}

/// The store key of `name` under the name-hash key `name_key`.
fn hashed_key(name_key: &[u8; 32], name: &str) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(name_key)
        .expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(CREDENTIAL_PREFIX.len() + 32);
    out.push_str(CREDENTIAL_PREFIX);
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Why the vault could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The data directory was sealed under a key the keyring does not hold.
    #[error(
        "the master key does not match this data directory: its records are sealed under \
         key id {found}, which is not in the keyring (newest key id {expected}). Start with \
         the key (or keyring) this data directory was sealed under, or run `twilio-broker \
         rekey` with it"
    )]
    WrongMasterKey {
        /// The key id in the data directory.
        found: KeyId,
        /// The key id of the key given.
        expected: KeyId,
    },
    /// The key-check record is damaged.
    #[error("the master key check record is damaged ({0}); refusing to start")]
    DamagedKeyCheck(OpenError),
    /// The name-key record is damaged.
    #[error(
        "the store's name key record (meta/name-key) cannot be opened ({0}); refusing to start"
    )]
    DamagedNameKey(String),
    /// The manifest is damaged.
    #[error("the store's manifest cannot be opened ({0}); refusing to start")]
    DamagedManifest(String),
    /// The store is older than the state file says it was.
    #[error(
        "the store was rolled back: its generation is {found}, but the state file records \
         that generation {expected} was written. An older copy of the data directory (or \
         database) is being served, which can bring back rotated-away or deleted credentials. \
         Restore the current copy, or, if the rollback is deliberate, start once with \
         --accept-rollback"
    )]
    Rollback {
        /// The store's generation.
        found: u64,
        /// The high-water mark in the state file.
        expected: u64,
    },
    /// The state file could not be written.
    #[error(transparent)]
    StateFile(#[from] crate::state_file::StateFileError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every entry of a store, sealed, and the generation of its manifest.
pub type Resealed = (Vec<(String, Vec<u8>)>, u64);

/// How to open a vault.
#[derive(Default, Clone)]
pub struct VaultOptions {
    /// Where the store's high-water mark is kept; without it, a whole-store
    /// rollback is not detected (single-record replays still are).
    pub state_file: Option<Arc<StateFile>>,
    /// Accept a store older than the state file's mark (and lower the mark).
    pub accept_rollback: bool,
}

/// A manifest that does not open (or is refused) at start-up: the daemon
/// refuses to start.
fn damaged_manifest(err: StoreError) -> VaultError {
    match err {
        StoreError::Unsealable { reason, .. } => VaultError::DamagedManifest(reason),
        other => VaultError::Store(other),
    }
}

/// What the index knows of one stored record.
#[derive(Clone)]
struct Entry {
    /// The store's version of the record (compare-and-swap).
    store_version: u64,
    /// The sealed record version (0 when it did not open).
    record_version: u64,
    /// The credential's name, when the record opened.
    name: Option<String>,
    /// The master key id the record is sealed under (`None`: not a sealed record).
    sealed_under: Option<KeyId>,
}

/// The in-memory view: every readable credential, and the records that could
/// not be opened or were refused (never served).
///
/// Invariant: cloning an index is O(1) (every map is a persistent
/// [`OrdMap`]), so [`Vault::publish`] costs O(log n) per change.
#[derive(Default, Clone)]
struct Index {
    /// Name → credential, ordered by name (ListCredentials pages by range).
    credentials: OrdMap<String, Arc<Credential>>,
    /// Store key → why its record is not served.
    unreadable: OrdMap<String, String>,
    /// Store key → what was read there, readable or not: a re-read opens only
    /// records whose store version changed, and a put swaps against it.
    entries: OrdMap<String, Entry>,
    /// The manifest last read or written (with its store versions).
    manifest: Manifest,
    /// The highest record version seen (the next put takes one above).
    high: u64,
    /// Where the next re-read asks the store for changes from
    /// ([`Store::changes_since`]); 0: read everything.
    cursor: u64,
}

impl Index {
    /// Adds the record at `store_key`, opened and checked if possible.
    fn insert_record(
        &mut self,
        key: &MasterKey,
        names: &NameKey,
        store_key: &str,
        stored: &Versioned,
    ) {
        self.remove_record(store_key);
        let mut entry = Entry {
            store_version: stored.version,
            record_version: 0,
            name: None,
            sealed_under: seal::key_id_of(&stored.value),
        };
        let outcome = seal::open_record(key, store_key, &stored.value)
            .map_err(|e| e.to_string())
            .and_then(|opened| {
                if opened.kind != RecordKind::Credential {
                    return Err("the record is not a credential record (moved)".to_owned());
                }
                entry.record_version = opened.version;
                let credential = record::decode(&opened.plaintext).map_err(|e| e.to_string())?;
                if names.store_key(&credential.name) != store_key {
                    return Err("the record names another credential (moved)".to_owned());
                }
                entry.name = Some(credential.name.clone());
                match self.manifest.refusal(store_key, opened.version) {
                    Some(refusal) => Err(refusal),
                    None => Ok(credential),
                }
            });
        match outcome {
            Ok(credential) => {
                self.high = self.high.max(entry.record_version);
                self.credentials
                    .insert(credential.name.clone(), Arc::new(credential));
            }
            Err(reason) => {
                tracing::error!(record = %store_key, %reason, "record cannot be opened or was refused; refusing to serve it");
                self.unreadable.insert(store_key.to_owned(), reason);
            }
        }
        self.entries.insert(store_key.to_owned(), entry);
    }

    /// Forgets the record at `store_key`.
    fn remove_record(&mut self, store_key: &str) {
        if let Some(Entry {
            name: Some(name), ..
        }) = self.entries.remove(store_key)
        {
            self.credentials.remove(&name);
        }
        self.unreadable.remove(store_key);
    }
}

/// Credentials sealed at rest, readable in memory.
pub struct Vault {
    store: Arc<dyn Store>,
    /// The keyring: its newest key seals, any of its keys opens. Swapped
    /// whole by [`Vault::set_keyring`] (SIGHUP), never while a writer runs.
    key: ArcSwap<MasterKey>,
    /// The store's name-hash key: fixed for the store's life, whatever the
    /// keyring (see [`NameKey`]).
    names: NameKey,
    index: ArcSwap<Index>,
    state_file: Option<Arc<StateFile>>,
    /// Serialises writers so the store and the index change in the same
    /// order; its holder commits every queued write as one group.
    write_lock: tokio::sync::Mutex<()>,
    /// Writes waiting for the next group commit (see [`group`]).
    writes: group::Queue,
}

impl Vault {
    /// Opens the vault without a state file (see [`Vault::open_with`]).
    pub async fn open(store: Arc<dyn Store>, key: MasterKey) -> Result<Self, VaultError> {
        Self::open_with(store, key, VaultOptions::default()).await
    }

    /// Opens the vault: checks the master key against the store, migrates
    /// records of the first format, checks the store's generation against
    /// the state file's high-water mark, then loads, opens and checks every
    /// record. A record that does not open, or is refused as a replay, is
    /// logged, kept out of service and reported on lookup; the rest are served.
    pub async fn open_with(
        store: Arc<dyn Store>,
        key: MasterKey,
        options: VaultOptions,
    ) -> Result<Self, VaultError> {
        check_master_key(store.as_ref(), &key).await?;
        let names = names::load(store.as_ref(), &key).await?;
        let manifest = manifest::load(store.as_ref(), &key)
            .await
            .map_err(damaged_manifest)?;
        let mut manifest = migrate_legacy(store.as_ref(), &key, &names, manifest).await?;
        if let Some(state) = &options.state_file {
            let mark = state.store_generation();
            if manifest.generation < mark {
                if !options.accept_rollback {
                    return Err(VaultError::Rollback {
                        found: manifest.generation,
                        expected: mark,
                    });
                }
                tracing::warn!(
                    store = manifest.generation,
                    state_file = mark,
                    "ACCEPTED ROLLBACK (--accept-rollback): serving a store older than the \
                     state file's mark, and lowering the mark"
                );
                state.set_store_generation(manifest.generation, true)?;
            } else {
                state.set_store_generation(manifest.generation, false)?;
            }
        }
        // Only after the rollback check: the rewrite raises the generation.
        if manifest.first_format {
            manifest =
                manifest::write_all(store.as_ref(), &key, &manifest, manifest.generation + 1)
                    .await?;
            tracing::info!(
                generation = manifest.generation,
                "rewrote the store's manifest in sharded buckets (one write now rewrites one bucket)"
            );
            if let Some(state) = &options.state_file {
                state.set_store_generation(manifest.generation, false)?;
            }
        }
        let mut index = Index {
            high: manifest.generation,
            manifest,
            ..Index::default()
        };
        let (listed, cursor) = reread::read_all(store.as_ref()).await?;
        index.cursor = cursor;
        for (store_key, stored) in &listed {
            index.insert_record(&key, &names, store_key, stored);
        }
        tracing::info!(
            credentials = index.credentials.len(),
            unreadable = index.unreadable.len(),
            generation = index.manifest.generation,
            key_id = %key.id(),
            "vault open"
        );
        Ok(Vault {
            store,
            key: ArcSwap::from_pointee(key),
            names,
            index: ArcSwap::from_pointee(index),
            state_file: options.state_file,
            write_lock: tokio::sync::Mutex::new(()),
            writes: group::Queue::default(),
        })
    }

    /// The credential called `name`, without waiting on writers.
    pub fn get(&self, name: &str) -> Option<Arc<Credential>> {
        self.index.load().credentials.get(name).cloned()
    }

    /// The credential called `name`, or the error a caller should see:
    /// NOT_FOUND, or FAILED_PRECONDITION for a record that cannot be opened.
    pub fn lookup(&self, name: &str) -> Result<Arc<Credential>, Error> {
        let index = self.index.load();
        if let Some(credential) = index.credentials.get(name) {
            return Ok(Arc::clone(credential));
        }
        match index.unreadable.get(&self.names.store_key(name)) {
            Some(reason) => Err(Error::CredentialUnreadable {
                credential: name.to_owned(),
                detail: reason.clone(),
            }),
            None => Err(Error::CredentialNotFound {
                name: name.to_owned(),
            }),
        }
    }

    /// Every readable credential, ordered by name.
    pub fn list(&self) -> Vec<Arc<Credential>> {
        self.index.load().credentials.values().cloned().collect()
    }

    /// Up to `limit` credentials named after `after` (from the first when
    /// `None`) that `keep` accepts, ordered by name, read from one snapshot
    /// of the index without waiting on writers. Costs O(log n) to find the
    /// start plus the credentials looked at, so a page of a large store
    /// does not copy the store.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&Credential) -> bool,
    ) -> Vec<Arc<Credential>> {
        let index = self.index.load();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        index
            .credentials
            .range::<_, str>((start, Bound::Unbounded))
            .map(|(_, credential)| credential)
            .filter(|credential| keep(credential))
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many credentials are served.
    pub fn len(&self) -> usize {
        self.index.load().credentials.len()
    }

    /// True when no credential is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The store's generation as this vault last committed or read it.
    pub fn generation(&self) -> u64 {
        self.index.load().manifest.generation
    }

    /// Stores `credential` durably, keeping the original `created_at` when it
    /// replaces one. Returns what is now served.
    ///
    /// The write is a compare-and-swap against the version this vault last
    /// saw; when another replica changed the record meanwhile, the vault
    /// re-reads it (keeping its `created_at`) and tries again. Concurrent
    /// puts and deletes are committed together, one sync per step for the
    /// whole group ([`group`]).
    pub async fn put(&self, credential: Credential) -> Result<Arc<Credential>, Error> {
        self.put_grouped(credential).await
    }

    /// Re-reads the store and serves what it holds now, opening only records
    /// whose version changed (and those a changed manifest may judge
    /// differently); a store that can say what changed since the last read
    /// is asked for only that ([`reread`]). Returns how many records changed.
    pub async fn reread(&self) -> Result<usize, StoreError> {
        let _writer = self.write_lock.lock().await;
        self.reread_locked().await
    }

    /// Follows changes other processes make to the store, until the returned
    /// task is aborted: re-reads on every notification (and every
    /// [`SAFETY_REREAD`] in case one was lost), or on a timer when the store
    /// cannot notify. Does nothing for a store only this process writes.
    pub fn follow(self: Arc<Self>, feed: ChangeFeed) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            match feed {
                ChangeFeed::Exclusive => {}
                ChangeFeed::Poll(every) => loop {
                    tokio::time::sleep(every).await;
                    self.reread_logged().await;
                },
                ChangeFeed::Notified(mut changes) => loop {
                    match tokio::time::timeout(SAFETY_REREAD, changes.changed()).await {
                        Ok(Err(_)) => {
                            tracing::warn!(
                                "the store stopped reporting changes; re-reading on a timer"
                            );
                            loop {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                self.reread_logged().await;
                            }
                        }
                        Ok(Ok(())) | Err(_) => self.reread_logged().await,
                    }
                },
            }
        })
    }

    async fn reread_logged(&self) {
        if let Err(err) = self.reread().await {
            tracing::warn!(error = %err, "cannot re-read the store; serving what was last read");
        }
    }

    /// Removes a credential durably: first from the manifest (so the record
    /// can never be put back), then from the store. Returns what was removed
    /// (`None` for a record that could not be opened); NOT_FOUND when nothing
    /// was there.
    pub async fn delete(&self, name: &str) -> Result<Option<Arc<Credential>>, Error> {
        self.delete_grouped(name).await
    }

    /// Publishes `change` applied to the current index. Callers hold the
    /// write lock, so no change is lost between the load and the store; the
    /// clone is O(1) (persistent maps) and `change` O(log n).
    fn publish(&self, change: impl FnOnce(&mut Index)) {
        let mut next = Index::clone(&self.index.load());
        change(&mut next);
        self.index.store(Arc::new(next));
    }

    /// Every sealed entry of the store as it would be written under `key`
    /// with the name key `names`: the key check, the name key, the
    /// manifest's buckets and top (one generation up) and every credential
    /// at its record version. Refuses if any record cannot be opened.
    fn resealed(&self, key: &MasterKey, names: &NameKey) -> Result<Resealed, Error> {
        let index = self.index.load();
        if let Some((store_key, reason)) = index.unreadable.iter().next() {
            return Err(Error::RecordUnreadable {
                record: store_key.clone(),
                detail: reason.clone(),
            });
        }
        let generation = index.high.max(index.manifest.generation) + 1;
        let mut records = OrdMap::new();
        let mut entries = vec![
            (
                KEY_CHECK.to_owned(),
                seal::seal(key, KEY_CHECK, KEY_CHECK_PLAINTEXT),
            ),
            names.sealed(key),
        ];
        for (old_key, entry) in &index.entries {
            let Some(credential) = entry.name.as_ref().and_then(|n| index.credentials.get(n))
            else {
                return Err(Error::RecordUnreadable {
                    record: old_key.clone(),
                    detail: "it is not served".into(),
                });
            };
            let store_key = names.store_key(&credential.name);
            let sealed = seal::seal_record(
                key,
                &store_key,
                RecordKind::Credential,
                entry.record_version,
                &record::encode(credential),
            );
            records.insert(store_key.clone(), entry.record_version);
            entries.push((store_key, sealed));
        }
        entries.extend(manifest::sealed_all(key, &records, generation));
        Ok((entries, generation))
    }

    /// Re-seals every record under `new_key` in one atomic store write
    /// (fresh nonces, store keys hashed under a name key derived from the
    /// new key; leftovers of earlier formats are dropped). Refuses if any
    /// record cannot be opened under the current key. Returns how many
    /// credentials were re-sealed. (Offline `rekey`; a running daemon
    /// re-seals record by record instead, see `reseal.rs`.)
    pub async fn rekey(&self, new_key: &MasterKey) -> Result<usize, Error> {
        let _writer = self.write_lock.lock().await;
        let (entries, generation) = self.resealed(new_key, &NameKey::derive(new_key))?;
        let count = entries
            .iter()
            .filter(|(k, _)| k.starts_with(CREDENTIAL_PREFIX))
            .count();
        self.store.replace_all("", entries).await?;
        self.raise_mark(generation)?;
        Ok(count)
    }

    /// Every entry of the store re-sealed under the current key, for
    /// `twilio-broker compact` to write into a fresh store; the state file's
    /// mark is raised to the returned generation once it is written.
    pub fn export_resealed(&self) -> Result<Resealed, Error> {
        self.resealed(&self.key.load(), &self.names)
    }

    /// Raises the state file's mark to `generation`.
    pub fn raise_mark(&self, generation: u64) -> Result<(), Error> {
        if let Some(state) = &self.state_file {
            state.set_store_generation(generation, false).map_err(|e| {
                Error::StorageUnavailable {
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(())
    }
}

/// Every entry of a store exactly as stored (sealed), at one manifest
/// generation: what `twilio-broker backup` writes (see [`Vault::sealed_copy`]).
pub struct SealedCopy {
    /// Store key → sealed bytes, ordered by key: the key check, the
    /// manifest's top and buckets, every credential record.
    pub entries: Vec<(String, Vec<u8>)>,
    /// The manifest generation they were read at.
    pub generation: u64,
    /// The master key they are sealed under.
    pub key_id: KeyId,
}

/// How many times [`Vault::sealed_copy`] reads a shared store again when
/// another replica wrote while it was read.
const COPY_ATTEMPTS: usize = 5;

impl Vault {
    /// A point-in-time copy of every stored entry, sealed as stored (for
    /// `backup`; nothing is opened or re-sealed).
    ///
    /// **Invariant (consistency):** the copy is read under the write lock,
    /// so no write of this process is half-applied in it: every write
    /// acknowledged before the copy began is in it, at the manifest
    /// generation it names. A store other replicas share is read again
    /// (after a re-read of the index) until the credential records and the
    /// manifest's top in the copy are the versions this vault's index
    /// holds, i.e. the copy equals the state the vault serves; at worst an
    /// in-flight write of another replica is caught between its record and
    /// its manifest, a state the vault opens like the one after a crash.
    pub async fn sealed_copy(&self) -> Result<SealedCopy, Error> {
        let _writer = self.write_lock.lock().await;
        for _ in 0..COPY_ATTEMPTS {
            let listed = self.store.list("").await?;
            let index = self.index.load();
            let consistent = listed.iter().all(|(store_key, stored)| {
                if store_key.starts_with(CREDENTIAL_PREFIX) {
                    index
                        .entries
                        .get(store_key)
                        .is_some_and(|e| e.store_version == stored.version)
                } else if store_key == manifest::TOP {
                    index.manifest.top_version == stored.version
                } else {
                    true
                }
            }) && listed
                .iter()
                .filter(|(k, _)| k.starts_with(CREDENTIAL_PREFIX))
                .count()
                == index.entries.len();
            if consistent {
                return Ok(SealedCopy {
                    generation: index.manifest.generation,
                    key_id: self.key.load().id(),
                    entries: listed.into_iter().map(|(k, v)| (k, v.value)).collect(),
                });
            }
            tracing::debug!("the store changed while it was copied; re-reading it");
            self.reread_locked().await?;
        }
        Err(Error::ConcurrentChange {
            what: "the store (other replicas kept writing while it was copied)".into(),
        })
    }
}

/// Moves records of the first format (`credential/<name>`, sealed under
/// the master key itself, no version) to the current one: each is opened,
/// sealed again at a hashed key with a fresh version, recorded in the
/// manifest, and only then removed. A record of the first format that does
/// not open is left in place (and logged): it was never served either.
async fn migrate_legacy(
    store: &dyn Store,
    key: &MasterKey,
    names: &NameKey,
    mut manifest: Manifest,
) -> Result<Manifest, VaultError> {
    let legacy = store.list(LEGACY_PREFIX).await?;
    if legacy.is_empty() {
        return Ok(manifest);
    }
    let mut moved = Vec::new();
    for (old_key, stored) in &legacy {
        let credential = seal::open_record(key, old_key, &stored.value)
            .map_err(|e| e.to_string())
            .and_then(|opened| {
                if opened.kind != RecordKind::Legacy {
                    return Err("a current-format record under a legacy key".to_owned());
                }
                record::decode(&opened.plaintext).map_err(|e| e.to_string())
            })
            .and_then(|credential| {
                if old_key[LEGACY_PREFIX.len()..] == credential.name {
                    Ok(credential)
                } else {
                    Err("the record names another credential (moved)".to_owned())
                }
            });
        let credential = match credential {
            Ok(credential) => credential,
            Err(reason) => {
                tracing::error!(record = %old_key, %reason, "record of the first format cannot be opened; left in place, not served");
                continue;
            }
        };
        let version = manifest.generation + 1;
        let store_key = names.store_key(&credential.name);
        let sealed = seal::seal_record(
            key,
            &store_key,
            RecordKind::Credential,
            version,
            &record::encode(&credential),
        );
        store.put(&store_key, sealed).await?;
        manifest.records.insert(store_key, version);
        manifest.generation = version;
        moved.push(old_key.clone());
    }
    if moved.is_empty() {
        return Ok(manifest);
    }
    let generation = manifest.generation;
    let manifest = manifest::write_all(store, key, &manifest, generation).await?;
    store
        .put(KEY_CHECK, seal::seal(key, KEY_CHECK, KEY_CHECK_PLAINTEXT))
        .await?;
    for old_key in &moved {
        store.delete(old_key).await?;
    }
    tracing::info!(
        records = moved.len(),
        "migrated credential records to the current format (hashed names, versioned); \
         run `twilio-broker compact` (broker stopped) to drop the old format's bytes from the data directory"
    );
    Ok(manifest)
}

/// Checks `key` against the store's key-check record, writing one (with
/// compare-and-swap, so two replicas starting together agree) if absent.
/// Called first at start-up, so a wrong key is reported as such.
pub async fn check_master_key(store: &dyn Store, key: &MasterKey) -> Result<(), VaultError> {
    for _ in 0..2 {
        let Some(stored) = store.get(KEY_CHECK).await? else {
            // A record sealed under another key with no key check means
            // the check was removed: never adopt a new key silently.
            for (_, stored) in store.list("").await? {
                if let Some(found) = seal::key_id_of(&stored.value)
                    && key.opener(found).is_none()
                {
                    return Err(VaultError::WrongMasterKey {
                        found,
                        expected: key.id(),
                    });
                }
            }
            let check = seal::seal(key, KEY_CHECK, KEY_CHECK_PLAINTEXT);
            match store.compare_and_swap(KEY_CHECK, 0, check).await? {
                Cas::Swapped { .. } => return Ok(()),
                // Another replica wrote it first: check against theirs.
                Cas::Conflict { .. } => continue,
            }
        };
        return match seal::open(key, KEY_CHECK, &stored.value) {
            Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
            Ok(_) => Err(VaultError::DamagedKeyCheck(OpenError::Tampered)),
            Err(OpenError::WrongKey { found, expected }) => {
                Err(VaultError::WrongMasterKey { found, expected })
            }
            Err(other) => Err(VaultError::DamagedKeyCheck(other)),
        };
    }
    Err(VaultError::Store(StoreError::Backend(
        "the master key check record appeared and vanished while starting; retry".into(),
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use super::*;
    use crate::credential::Secret;
    use crate::store::SledStore;

    fn oauth(name: &str) -> Credential {
        Credential {
            name: name.into(),
            labels: BTreeMap::from([("environment".into(), "production".into())]),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::OAuthClient {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                client_id: "OQ0123456789abcdef0123456789abcdef".into(),
                client_secret: "client-secret-value".into(),
            },
        }
    }

    #[tokio::test]
    async fn put_get_delete_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = MasterKey::generate();
        {
            let store = Arc::new(SledStore::open(dir.path()).expect("open"));
            let vault = Vault::open(store, key.clone()).await.expect("vault");
            vault.put(oauth("a")).await.expect("put a");
            vault.put(oauth("b")).await.expect("put b");
            vault.delete("b").await.expect("delete b");
            assert!(matches!(
                vault.delete("b").await,
                Err(Error::CredentialNotFound { .. })
            ));
        }
        let store = Arc::new(SledStore::reopen(dir.path()));
        let vault = Vault::open(store, key).await.expect("vault");
        let names: Vec<_> = vault.list().iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["a"]);
    }

    #[tokio::test]
    async fn wrong_key_is_refused_and_rekey_switches_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        {
            let store = Arc::new(SledStore::open(dir.path()).expect("open"));
            let vault = Vault::open(store, old.clone()).await.expect("vault");
            vault.put(oauth("a")).await.expect("put");
            assert_eq!(vault.rekey(&new).await.expect("rekey"), 1);
        }
        let store: Arc<dyn Store> = Arc::new(SledStore::reopen(dir.path()));
        match Vault::open(Arc::clone(&store), old).await {
            Err(VaultError::WrongMasterKey { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("old key accepted after rekey"),
        }
        let vault = Vault::open(store, new).await.expect("new key opens");
        assert!(vault.get("a").is_some());
    }

    #[tokio::test]
    async fn a_moved_record_is_refused_not_served() {
        let key = MasterKey::generate();
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().expect("store"));
        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("vault");
        vault.put(oauth("a")).await.expect("put");
        let sealed = store
            .get(&credential_key(&key, "a"))
            .await
            .expect("get")
            .expect("present");
        store
            .put(&credential_key(&key, "evil"), sealed.value)
            .await
            .expect("copy");
        let vault = Vault::open(store, key).await.expect("vault");
        assert!(vault.get("a").is_some());
        assert!(matches!(
            vault.lookup("evil"),
            Err(Error::CredentialUnreadable { .. })
        ));
    }

    fn shared() -> Arc<dyn Store> {
        Arc::new(crate::store::memory::MemoryStore::default())
    }

    #[tokio::test]
    async fn replicas_serve_each_others_writes_after_a_reread() {
        let (store, key) = (shared(), MasterKey::generate());
        let a = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("a");
        let b = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("b");
        a.put(oauth("x")).await.expect("put");
        assert!(b.get("x").is_none());
        assert_eq!(b.reread().await.expect("reread"), 1);
        assert!(b.get("x").is_some());
        assert_eq!(b.reread().await.expect("idle reread"), 0, "nothing changed");
        store
            .put(&credential_key(&key, "junk"), b"not sealed".to_vec())
            .await
            .expect("junk");
        a.delete("x").await.expect("delete");
        assert_eq!(b.reread().await.expect("reread"), 2);
        assert!(b.get("x").is_none());
        assert!(matches!(
            b.lookup("junk"),
            Err(Error::CredentialUnreadable { .. })
        ));
    }

    #[tokio::test]
    async fn a_put_that_loses_a_race_rereads_and_keeps_created_at() {
        let (store, key) = (shared(), MasterKey::generate());
        let a = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("a");
        let b = Vault::open(Arc::clone(&store), key).await.expect("b");
        let first = a.put(oauth("x")).await.expect("first put");
        b.reread().await.expect("reread");
        a.put(oauth("x"))
            .await
            .expect("a replaces it; b has not seen that");
        let mut late = oauth("x");
        late.created_at = SystemTime::UNIX_EPOCH;
        late.labels = BTreeMap::from([("writer".into(), "b".into())]);
        let stored = b.put(late).await.expect("b retries after the conflict");
        // Records keep milliseconds.
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .ok()
        };
        assert_eq!(ms(stored.created_at), ms(first.created_at));
        a.reread().await.expect("reread");
        assert_eq!(
            a.get("x")
                .expect("present")
                .labels
                .get("writer")
                .map(String::as_str),
            Some("b"),
            "a serves b's write"
        );
    }

    #[tokio::test]
    async fn replicas_starting_together_agree_on_the_master_key() {
        let (store, key) = (shared(), MasterKey::generate());
        let (a, b) = tokio::join!(
            Vault::open(Arc::clone(&store), key.clone()),
            Vault::open(Arc::clone(&store), key)
        );
        assert!(a.is_ok() && b.is_ok());
        match Vault::open(store, MasterKey::generate()).await {
            Err(VaultError::WrongMasterKey { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("another key was accepted"),
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

    fn token_of(vault: &Vault, name: &str) -> Option<String> {
        match &vault.get(name)?.secret {
            Secret::AuthToken { auth_token, .. } => Some(auth_token.open().to_string()),
            _ => None,
        }
    }

    fn random_token() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    #[tokio::test]
    async fn a_replayed_record_or_a_deleted_one_put_back_is_refused() {
        let (store, key) = (shared(), MasterKey::generate());
        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("vault");
        let (old, new) = (random_token(), random_token());
        vault.put(auth("main", &old)).await.expect("put old");
        vault.put(auth("gone", &old)).await.expect("put gone");
        let main_key = credential_key(&key, "main");
        let gone_key = credential_key(&key, "gone");
        let old_main = store.get(&main_key).await.expect("get").expect("present");
        let old_gone = store.get(&gone_key).await.expect("get").expect("present");
        vault.put(auth("main", &new)).await.expect("rotate");
        vault.delete("gone").await.expect("delete");
        vault.put(auth("other", &new)).await.expect("put other");
        // The attacker writes the old records back (a copied row, a restored file).
        store.put(&main_key, old_main.value).await.expect("replay");
        store
            .put(&gone_key, old_gone.value)
            .await
            .expect("undelete");
        for reopened in [
            Vault::open(Arc::clone(&store), key.clone())
                .await
                .expect("reopen"),
            vault,
        ] {
            if reopened.generation() > 0 {
                reopened.reread().await.expect("reread");
            }
            assert_eq!(token_of(&reopened, "main"), None, "old token served");
            assert!(matches!(
                reopened.lookup("main"),
                Err(Error::CredentialUnreadable { detail, .. }) if detail.contains("replay refused")
            ));
            assert!(matches!(
                reopened.lookup("gone"),
                Err(Error::CredentialUnreadable { detail, .. }) if detail.contains("deleted record was put back")
            ));
            assert_eq!(token_of(&reopened, "other").as_deref(), Some(new.as_str()));
        }
        // Putting the credential again repairs it.
        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("reopen");
        vault.put(auth("main", &new)).await.expect("repair");
        assert_eq!(token_of(&vault, "main").as_deref(), Some(new.as_str()));
    }

    #[tokio::test]
    async fn a_whole_store_rollback_is_refused_unless_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let copy = dir.path().join("copy");
        let key = MasterKey::generate();
        let state = || {
            Arc::new(
                StateFile::open(&crate::state_file::default_path(&data), key.clone())
                    .expect("state"),
            )
        };
        let open = |accept_rollback: bool| {
            let store: Arc<dyn Store> = Arc::new(SledStore::open(&data).expect("open"));
            Vault::open_with(
                store,
                key.clone(),
                VaultOptions {
                    state_file: Some(state()),
                    accept_rollback,
                },
            )
        };
        let (old, new) = (random_token(), random_token());
        {
            let vault = open(false).await.expect("vault");
            vault.put(auth("main", &old)).await.expect("put");
        }
        copy_dir(&data, &copy);
        {
            let vault = open(false).await.expect("vault");
            vault.put(auth("main", &new)).await.expect("rotate");
        }
        std::fs::remove_dir_all(&data).expect("rm");
        copy_dir(&copy, &data);
        match open(false).await {
            Err(err @ VaultError::Rollback { .. }) => {
                assert!(err.to_string().contains("--accept-rollback"), "{err}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a rolled-back store was served"),
        }
        {
            let vault = open(true).await.expect("accepted");
            assert_eq!(token_of(&vault, "main").as_deref(), Some(old.as_str()));
        }
        // The mark was lowered: the next start needs no flag.
        let vault = open(false).await.expect("vault");
        assert_eq!(token_of(&vault, "main").as_deref(), Some(old.as_str()));
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("ls") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }

    #[tokio::test]
    async fn records_of_the_first_format_migrate_and_names_leave_the_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = MasterKey::generate();
        let token = random_token();
        {
            let store = SledStore::open(dir.path()).expect("open");
            let plain = record::encode(&auth("legacy-name", &token));
            store
                .put(
                    "credential/legacy-name",
                    seal::seal_v1(&key, "credential/legacy-name", &plain),
                )
                .await
                .expect("put v1");
            store
                .put(
                    KEY_CHECK,
                    seal::seal_v1(&key, KEY_CHECK, KEY_CHECK_PLAINTEXT),
                )
                .await
                .expect("check v1");
        }
        let store: Arc<dyn Store> = Arc::new(SledStore::reopen(dir.path()));
        let vault = Vault::open(Arc::clone(&store), key.clone())
            .await
            .expect("migrates");
        assert_eq!(
            token_of(&vault, "legacy-name").as_deref(),
            Some(token.as_str())
        );
        let keys: Vec<String> = store
            .list("")
            .await
            .expect("list")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(keys.iter().all(|k| !k.contains("legacy-name")), "{keys:?}");
        assert!(keys.contains(&credential_key(&key, "legacy-name")));
        for (k, stored) in store.list("").await.expect("list") {
            assert!(!seal::is_legacy(&stored.value), "{k} still in format 1");
        }
        drop(vault);
        let vault = Vault::open(store, key).await.expect("reopens");
        assert_eq!(vault.len(), 1);
    }
}
