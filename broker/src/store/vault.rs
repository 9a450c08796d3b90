//! The [`Vault`]: credentials sealed in a [`Store`], indexed in memory.
//!
//! Reads are lock-free (an [`ArcSwap`] of an immutable index), so the hot
//! paths (GetBearer, MintAccessToken) never wait on a write. Writes are
//! serialised, sealed, made durable in the store, and only then published in
//! the index. A replaced or deleted credential is a different (or absent)
//! `Arc`, which is how caches built on a credential notice the change.
//!
//! Several replicas may share one store (a storage plugin such as
//! PostgreSQL). Writes use compare-and-swap on the record's version, so a
//! replica never overwrites a change it has not seen, and [`Vault::follow`]
//! re-reads the store whenever its [`ChangeFeed`] says another replica
//! changed it: only records whose version changed are opened again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::seal::{self, OpenError};
use super::{Cas, ChangeFeed, Store, StoreError, Versioned, record};
use crate::credential::Credential;
use crate::error::Error;
use crate::master_key::{KeyId, MasterKey};

const CREDENTIAL_PREFIX: &str = "credential/";
const KEY_CHECK: &str = "meta/key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"twilio-broker master key check v1";

/// How many times a put tries before giving up on a record other replicas
/// keep changing. Each loss means another replica's write landed, so the
/// system as a whole always progresses; the jittered pause keeps two busy
/// replicas from losing to each other in lockstep.
const PUT_ATTEMPTS: u64 = 16;
/// With change notifications, still re-read this often in case one was lost.
const SAFETY_REREAD: Duration = Duration::from_secs(30);

fn credential_key(name: &str) -> String {
    format!("{CREDENTIAL_PREFIX}{name}")
}

/// Why the vault could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The data directory was sealed under another master key.
    #[error(
        "the master key does not match this data directory: its records are sealed under \
         key id {found}, the key given has id {expected}. Start with the key this data \
         directory was created with (or run `twilio-broker rekey` with it)"
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The in-memory view: every readable credential, and the names of records
/// that could not be opened (refused, never served).
#[derive(Default, Clone)]
struct Index {
    credentials: BTreeMap<String, Arc<Credential>>,
    unreadable: BTreeMap<String, String>,
    /// The store version of every record above, readable or not: a re-read
    /// opens only records whose version changed, and a put swaps against it.
    versions: BTreeMap<String, u64>,
}

impl Index {
    /// Adds the record `name` at `version`, opened if possible.
    fn insert_record(&mut self, key: &MasterKey, name: String, stored: &Versioned) {
        let store_key = credential_key(&name);
        self.versions.insert(name.clone(), stored.version);
        match open_credential(key, &store_key, &stored.value) {
            Ok(credential) if credential.name == name => {
                self.unreadable.remove(&name);
                self.credentials.insert(name, Arc::new(credential));
            }
            Ok(_) => {
                tracing::error!(record = %name, "record names another credential; refusing to serve it");
                self.credentials.remove(&name);
                self.unreadable
                    .insert(name, "the record names another credential".into());
            }
            Err(reason) => {
                tracing::error!(record = %name, %reason, "record cannot be opened; refusing to serve it");
                self.credentials.remove(&name);
                self.unreadable.insert(name, reason);
            }
        }
    }

    /// Forgets the record `name`.
    fn remove_record(&mut self, name: &str) {
        self.credentials.remove(name);
        self.unreadable.remove(name);
        self.versions.remove(name);
    }
}

/// Credentials sealed at rest, readable in memory.
pub struct Vault {
    store: Arc<dyn Store>,
    key: MasterKey,
    index: ArcSwap<Index>,
    /// Serialises writers so the store and the index change in the same order.
    write_lock: tokio::sync::Mutex<()>,
}

impl Vault {
    /// Opens the vault: checks the master key against the store, then loads
    /// and opens every record. A record that does not open is logged, kept
    /// out of service and reported on lookup; the rest are served.
    pub async fn open(store: Arc<dyn Store>, key: MasterKey) -> Result<Self, VaultError> {
        check_master_key(store.as_ref(), &key).await?;
        let mut index = Index::default();
        for (store_key, stored) in store.list(CREDENTIAL_PREFIX).await? {
            let name = store_key[CREDENTIAL_PREFIX.len()..].to_owned();
            index.insert_record(&key, name, &stored);
        }
        tracing::info!(
            credentials = index.credentials.len(),
            unreadable = index.unreadable.len(),
            key_id = %key.id(),
            "vault open"
        );
        Ok(Vault {
            store,
            key,
            index: ArcSwap::from_pointee(index),
            write_lock: tokio::sync::Mutex::new(()),
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
        match index.unreadable.get(name) {
            Some(reason) => Err(Error::FailedPrecondition(format!(
                "the stored record of credential {name:?} cannot be opened ({reason}); \
                 it is not served. Put the credential again to replace it"
            ))),
            None => Err(Error::CredentialNotFound {
                name: name.to_owned(),
            }),
        }
    }

    /// Every readable credential, ordered by name.
    pub fn list(&self) -> Vec<Arc<Credential>> {
        self.index.load().credentials.values().cloned().collect()
    }

    /// How many credentials are served.
    pub fn len(&self) -> usize {
        self.index.load().credentials.len()
    }

    /// True when no credential is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `credential` durably, keeping the original `created_at` when it
    /// replaces one. Returns what is now served.
    ///
    /// The write is a compare-and-swap against the version this vault last
    /// saw; when another replica changed the record meanwhile, the vault
    /// re-reads it (keeping its `created_at`) and tries again.
    pub async fn put(&self, mut credential: Credential) -> Result<Arc<Credential>, Error> {
        let _writer = self.write_lock.lock().await;
        let store_key = credential_key(&credential.name);
        let new_created_at = credential.created_at;
        for attempt in 0..PUT_ATTEMPTS {
            let index = self.index.load();
            let expected = index.versions.get(&credential.name).copied().unwrap_or(0);
            credential.created_at = index
                .credentials
                .get(&credential.name)
                .map_or(new_created_at, |existing| existing.created_at);
            let sealed = seal::seal(&self.key, &store_key, &record::encode(&credential));
            match self
                .store
                .compare_and_swap(&store_key, expected, sealed)
                .await?
            {
                Cas::Swapped { version } => {
                    let credential = Arc::new(credential);
                    self.publish(|index| {
                        index.unreadable.remove(&credential.name);
                        index.versions.insert(credential.name.clone(), version);
                        index
                            .credentials
                            .insert(credential.name.clone(), Arc::clone(&credential));
                    });
                    return Ok(credential);
                }
                Cas::Conflict { .. } => {
                    tracing::debug!(credential = %credential.name, "record changed by another replica; re-reading it before writing");
                    tokio::time::sleep(Duration::from_millis(rand::random_range(0..=attempt * 4)))
                        .await;
                    self.reread_record(&credential.name).await?;
                }
            }
        }
        Err(Error::Unavailable(format!(
            "credential {:?} is being changed by other broker replicas at the same time; retry",
            credential.name
        )))
    }

    /// Re-reads one record from the store into the index.
    async fn reread_record(&self, name: &str) -> Result<(), StoreError> {
        let stored = self.store.get(&credential_key(name)).await?;
        self.publish(|index| match &stored {
            Some(stored) => index.insert_record(&self.key, name.to_owned(), stored),
            None => index.remove_record(name),
        });
        Ok(())
    }

    /// Re-reads the store and serves what it holds now, opening only records
    /// whose version changed. Returns how many records changed.
    pub async fn reread(&self) -> Result<usize, StoreError> {
        let _writer = self.write_lock.lock().await;
        let listed = self.store.list(CREDENTIAL_PREFIX).await?;
        let current = self.index.load();
        let mut next = Index::default();
        let mut changed = 0;
        for (store_key, stored) in &listed {
            let name = &store_key[CREDENTIAL_PREFIX.len()..];
            if current.versions.get(name) == Some(&stored.version) {
                next.versions.insert(name.to_owned(), stored.version);
                if let Some(credential) = current.credentials.get(name) {
                    next.credentials
                        .insert(name.to_owned(), Arc::clone(credential));
                }
                if let Some(reason) = current.unreadable.get(name) {
                    next.unreadable.insert(name.to_owned(), reason.clone());
                }
            } else {
                changed += 1;
                next.insert_record(&self.key, name.to_owned(), stored);
            }
        }
        changed += current
            .versions
            .keys()
            .filter(|name| !next.versions.contains_key(*name))
            .count();
        if changed > 0 {
            tracing::info!(
                changed,
                "credentials changed in the store; now serving them"
            );
            self.index.store(Arc::new(next));
        }
        Ok(changed)
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

    /// Removes a credential durably. Returns what was removed (`None` for a
    /// record that could not be opened); NOT_FOUND when nothing was there.
    pub async fn delete(&self, name: &str) -> Result<Option<Arc<Credential>>, Error> {
        let _writer = self.write_lock.lock().await;
        let existing = self.get(name);
        let was_unreadable = self.index.load().unreadable.contains_key(name);
        if existing.is_none() && !was_unreadable {
            return Err(Error::CredentialNotFound {
                name: name.to_owned(),
            });
        }
        self.store.delete(&credential_key(name)).await?;
        self.publish(|index| index.remove_record(name));
        Ok(existing)
    }

    fn publish(&self, change: impl FnOnce(&mut Index)) {
        let mut next = Index::clone(&self.index.load());
        change(&mut next);
        self.index.store(Arc::new(next));
    }

    /// Re-seals every record under `new_key` in one atomic store write.
    /// Refuses if any record cannot be opened under the current key.
    pub async fn rekey(&self, new_key: &MasterKey) -> Result<usize, Error> {
        let _writer = self.write_lock.lock().await;
        let index = self.index.load();
        if let Some((name, reason)) = index.unreadable.iter().next() {
            return Err(Error::FailedPrecondition(format!(
                "record {name:?} cannot be opened ({reason}); delete or replace it before rekeying"
            )));
        }
        let mut entries = vec![(
            KEY_CHECK.to_owned(),
            seal::seal(new_key, KEY_CHECK, KEY_CHECK_PLAINTEXT),
        )];
        for credential in index.credentials.values() {
            let store_key = credential_key(&credential.name);
            let sealed = seal::seal(new_key, &store_key, &record::encode(credential));
            entries.push((store_key, sealed));
        }
        let count = index.credentials.len();
        self.store.replace_all("", entries).await?;
        Ok(count)
    }
}

/// Checks `key` against the store's key-check record, writing one (with
/// compare-and-swap, so two replicas starting together agree) if absent.
async fn check_master_key(store: &dyn Store, key: &MasterKey) -> Result<(), VaultError> {
    for _ in 0..2 {
        let Some(stored) = store.get(KEY_CHECK).await? else {
            // A record sealed under another key with no key check means
            // the check was removed: never adopt a new key silently.
            for (_, stored) in store.list(CREDENTIAL_PREFIX).await? {
                if let Some(found) = seal::key_id_of(&stored.value)
                    && found != key.id()
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

fn open_credential(key: &MasterKey, store_key: &str, sealed: &[u8]) -> Result<Credential, String> {
    let plaintext = seal::open(key, store_key, sealed).map_err(|e| e.to_string())?;
    record::decode(&plaintext)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use secrecy::SecretString;

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
                client_secret: SecretString::from("client-secret-value".to_owned()),
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
        let store = Arc::new(SledStore::open(dir.path()).expect("reopen"));
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
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("reopen"));
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
            .get("credential/a")
            .await
            .expect("get")
            .expect("present");
        store
            .put("credential/evil", sealed.value)
            .await
            .expect("copy");
        let vault = Vault::open(store, key).await.expect("vault");
        assert!(vault.get("a").is_some());
        assert!(matches!(
            vault.lookup("evil"),
            Err(Error::FailedPrecondition(_))
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
        let b = Vault::open(Arc::clone(&store), key).await.expect("b");
        a.put(oauth("x")).await.expect("put");
        assert!(b.get("x").is_none());
        assert_eq!(b.reread().await.expect("reread"), 1);
        assert!(b.get("x").is_some());
        assert_eq!(b.reread().await.expect("idle reread"), 0, "nothing changed");
        store
            .put("credential/junk", b"not sealed".to_vec())
            .await
            .expect("junk");
        a.delete("x").await.expect("delete");
        assert_eq!(b.reread().await.expect("reread"), 2);
        assert!(b.get("x").is_none());
        assert!(matches!(
            b.lookup("junk"),
            Err(Error::FailedPrecondition(_))
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
}
