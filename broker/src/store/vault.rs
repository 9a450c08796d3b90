//! The [`Vault`]: credentials sealed in a [`Store`], indexed in memory.
//!
//! Reads are lock-free (an [`ArcSwap`] of an immutable index), so the hot
//! paths (GetBearer, MintAccessToken) never wait on a write. Writes are
//! serialised, sealed, made durable in the store, and only then published in
//! the index. A replaced or deleted credential is a different (or absent)
//! `Arc`, which is how caches built on a credential notice the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::seal::{self, OpenError};
use super::{Store, StoreError, record};
use crate::credential::Credential;
use crate::error::Error;
use crate::master_key::{KeyId, MasterKey};

const CREDENTIAL_PREFIX: &str = "credential/";
const KEY_CHECK: &str = "meta/key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"twilio-broker master key check v1";

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
#[derive(Default)]
struct Index {
    credentials: BTreeMap<String, Arc<Credential>>,
    unreadable: BTreeMap<String, String>,
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
        match store.get(KEY_CHECK).await? {
            Some(sealed) => match seal::open(&key, KEY_CHECK, &sealed) {
                Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT => {}
                Ok(_) => return Err(VaultError::DamagedKeyCheck(OpenError::Tampered)),
                Err(OpenError::WrongKey { found, expected }) => {
                    return Err(VaultError::WrongMasterKey { found, expected });
                }
                Err(other) => return Err(VaultError::DamagedKeyCheck(other)),
            },
            None => {
                // A record sealed under another key with no key check means
                // the check was removed: never adopt a new key silently.
                for (_, sealed) in store.list(CREDENTIAL_PREFIX).await? {
                    if let Some(found) = seal::key_id_of(&sealed)
                        && found != key.id()
                    {
                        return Err(VaultError::WrongMasterKey {
                            found,
                            expected: key.id(),
                        });
                    }
                }
                store
                    .put(KEY_CHECK, seal::seal(&key, KEY_CHECK, KEY_CHECK_PLAINTEXT))
                    .await?;
            }
        }
        let mut index = Index::default();
        for (store_key, sealed) in store.list(CREDENTIAL_PREFIX).await? {
            let name = store_key[CREDENTIAL_PREFIX.len()..].to_owned();
            match open_credential(&key, &store_key, &sealed) {
                Ok(credential) if credential.name == name => {
                    index.credentials.insert(name, Arc::new(credential));
                }
                Ok(_) => {
                    tracing::error!(record = %name, "record names another credential; refusing to serve it");
                    index
                        .unreadable
                        .insert(name, "the record names another credential".into());
                }
                Err(reason) => {
                    tracing::error!(record = %name, %reason, "record cannot be opened; refusing to serve it");
                    index.unreadable.insert(name, reason);
                }
            }
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
    pub async fn put(&self, mut credential: Credential) -> Result<Arc<Credential>, Error> {
        let _writer = self.write_lock.lock().await;
        if let Some(existing) = self.get(&credential.name) {
            credential.created_at = existing.created_at;
        }
        let store_key = credential_key(&credential.name);
        let sealed = seal::seal(&self.key, &store_key, &record::encode(&credential));
        self.store.put(&store_key, sealed).await?;
        let credential = Arc::new(credential);
        self.publish(|index| {
            index.unreadable.remove(&credential.name);
            index
                .credentials
                .insert(credential.name.clone(), Arc::clone(&credential));
        });
        Ok(credential)
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
        self.publish(|index| {
            index.credentials.remove(name);
            index.unreadable.remove(name);
        });
        Ok(existing)
    }

    fn publish(&self, change: impl FnOnce(&mut Index)) {
        let current = self.index.load();
        let mut next = Index {
            credentials: current.credentials.clone(),
            unreadable: current.unreadable.clone(),
        };
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
        store.put("credential/evil", sealed).await.expect("copy");
        let vault = Vault::open(store, key).await.expect("vault");
        assert!(vault.get("a").is_some());
        assert!(matches!(
            vault.lookup("evil"),
            Err(Error::FailedPrecondition(_))
        ));
    }
}
