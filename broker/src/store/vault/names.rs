//! The store's name key: the HMAC key that turns credential names into
//! store keys (`c/<hash>`), kept in the store itself, sealed, at
//! `meta/name-key` (issue 18).
//!
//! **Invariant:** a store's name key never changes while it lives, whatever
//! the keyring: records keep their store keys through an online key
//! rotation (only their sealing changes), so retiring the key a store was
//! founded with never moves a record. The name key is the name-hash subkey
//! of the master key the store was founded with (so stores written before
//! the record existed keep their keys, and [`super::credential_key`] still
//! names them); it is sealed like every record, re-sealed under the newest
//! key by the re-seal task, and changes only with an offline `rekey`, which
//! rewrites every store key.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::{CREDENTIAL_PREFIX, VaultError, hashed_key};
use crate::master_key::{MasterKey, Purpose};
use crate::seal::{self, RecordKind};
use crate::store::{Cas, Store};

/// Where the name key is kept.
pub const NAME_KEY: &str = "meta/name-key";

/// The store's name-hash key (32 bytes), zeroized on drop and locked in RAM
/// where the system allows it; prints as nothing.
#[derive(Clone)]
pub struct NameKey(Arc<Locked>);

struct Locked {
    bytes: Box<Zeroizing<[u8; 32]>>,
    _locked: Option<twilio_broker_system::Locked>,
}

impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameKey([REDACTED])")
    }
}

impl NameKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let bytes = Box::new(Zeroizing::new(bytes));
        let locked = twilio_broker_system::lock_in_ram(bytes.as_slice()).ok();
        NameKey(Arc::new(Locked {
            bytes,
            _locked: locked,
        }))
    }

    /// The name key of a store founded with `key` (its name-hash subkey).
    pub fn derive(key: &MasterKey) -> Self {
        Self::from_bytes(*key.subkey(Purpose::NameHash))
    }

    /// The store key of the credential called `name`.
    pub fn store_key(&self, name: &str) -> String {
        hashed_key(&self.0.bytes, name)
    }

    /// The name-key record sealed under `key`.
    pub fn sealed(&self, key: &MasterKey) -> (String, Vec<u8>) {
        (
            NAME_KEY.to_owned(),
            seal::seal(key, NAME_KEY, self.0.bytes.as_slice()),
        )
    }

    fn open(key: &MasterKey, sealed: &[u8]) -> Result<Self, VaultError> {
        let plain = seal::open(key, NAME_KEY, sealed)
            .map_err(|e| VaultError::DamagedNameKey(e.to_string()))?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::DamagedNameKey("not 32 bytes".into()))?;
        Ok(Self::from_bytes(bytes))
    }
}

/// The store's name key, written (compare-and-swap, so replicas starting
/// together agree) when the store has none yet: then it is the name-hash
/// subkey of whichever key of the ring names the store's existing records
/// (a store written before the record existed), else of the newest key.
pub async fn load(store: &dyn Store, key: &MasterKey) -> Result<NameKey, VaultError> {
    for _ in 0..2 {
        if let Some(stored) = store.get(NAME_KEY).await? {
            return NameKey::open(key, &stored.value);
        }
        let founder = founding_key(store, key).await?;
        let names = NameKey::derive(founder);
        let (_, sealed) = names.sealed(key);
        match store.compare_and_swap(NAME_KEY, 0, sealed).await? {
            Cas::Swapped { .. } => return Ok(names),
            Cas::Conflict { .. } => continue,
        }
    }
    Err(VaultError::DamagedNameKey(
        "the record appeared and vanished while starting; retry".into(),
    ))
}

/// The key of the ring whose name-hash subkey names the first credential
/// record that opens (the newest key when none does).
async fn founding_key<'k>(
    store: &dyn Store,
    key: &'k MasterKey,
) -> Result<&'k MasterKey, VaultError> {
    for (store_key, stored) in store.list(CREDENTIAL_PREFIX).await? {
        let Ok(opened) = seal::open_record(key, &store_key, &stored.value) else {
            continue;
        };
        if opened.kind != RecordKind::Credential {
            continue;
        }
        let Ok(credential) = super::record::decode(&opened.plaintext) else {
            continue;
        };
        if let Some(founder) = key
            .ring()
            .find(|k| super::credential_key(k, &credential.name) == store_key)
        {
            return Ok(founder);
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn the_name_key_is_the_founders_and_survives_a_new_newest_key() {
        let store = MemoryStore::default();
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let names = load(&store, &old).await.expect("written");
        assert_eq!(
            names.store_key("a"),
            super::super::credential_key(&old, "a")
        );
        // The ring's newest key changed: the store keys did not.
        let ring = new.clone().with_older(vec![old.clone()]);
        let again = load(&store, &ring).await.expect("read");
        assert_eq!(again.store_key("a"), names.store_key("a"));
        // Sealed: the bytes are not in the store in clear.
        let stored = store.get(NAME_KEY).await.expect("get").expect("present");
        let raw = old.subkey(Purpose::NameHash);
        assert!(!stored.value.windows(32).any(|w| w == raw.as_slice()));
        assert!(!format!("{names:?}").contains(&format!("{:?}", raw)));
    }

    #[tokio::test]
    async fn a_store_without_the_record_takes_the_key_that_names_its_records() {
        let store = MemoryStore::default();
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let credential = crate::credential::Credential {
            name: "x".into(),
            labels: Default::default(),
            created_at: std::time::SystemTime::now(),
            updated_at: std::time::SystemTime::now(),
            secret: crate::credential::Secret::AuthToken {
                account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                auth_token: "0123456789abcdef0123456789abcdef".into(),
                secondary_auth_token: None,
                rotation: None,
            },
        };
        let store_key = super::super::credential_key(&old, "x");
        let sealed = seal::seal_record(
            &old,
            &store_key,
            RecordKind::Credential,
            1,
            &super::super::record::encode(&credential),
        );
        store.put(&store_key, sealed).await.expect("put");
        let ring = new.with_older(vec![old]);
        let names = load(&store, &ring).await.expect("chosen");
        assert_eq!(names.store_key("x"), store_key);
    }
}
