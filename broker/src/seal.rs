//! AEAD sealing of records (XChaCha20-Poly1305).
//!
//! Layout of a sealed record (format 2, written since issue 14):
//! `magic "TBS2" (4) | master key id (8) | kind (1) | version (u64 BE, 8) |
//! nonce (24) | ciphertext + tag`. The AEAD key is the master key's
//! [`Purpose::Seal`] subkey (HKDF), never the master key itself. The
//! associated data is the whole header (so the key id, the kind and the
//! version are authenticated) followed by the record's store key: a record
//! copied under another key, relabelled as another kind, given another
//! version, truncated or bit-flipped fails to open. Nonces are random (192
//! bits, safe to draw at random for the life of a key).
//!
//! Format 1 (`"TBS1" | key id | nonce | ciphertext`, the master key used
//! directly, associated data `header | store key`) is still opened, so a data
//! directory written before issue 14 can be migrated; it is never written.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::master_key::{KeyId, MasterKey, Purpose};

const MAGIC_V1: &[u8; 4] = b"TBS1";
const MAGIC: &[u8; 4] = b"TBS2";
const NONCE_LEN: usize = 24;
const HEADER_V1_LEN: usize = 4 + 8;
const HEADER_LEN: usize = 4 + 8 + 1 + 8;
const TAG_LEN: usize = 16;

/// What a sealed record holds; authenticated with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Anything else sealed under a fixed name (the key check, the state file).
    Plain,
    /// A credential record.
    Credential,
    /// The store's manifest (every record's version).
    Manifest,
    /// A record of format 1 (no kind, no version): opened for migration only.
    Legacy,
}

impl RecordKind {
    fn byte(self) -> u8 {
        match self {
            RecordKind::Plain => 0,
            RecordKind::Credential => 1,
            RecordKind::Manifest => 2,
            RecordKind::Legacy => 0xff,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(RecordKind::Plain),
            1 => Some(RecordKind::Credential),
            2 => Some(RecordKind::Manifest),
            _ => None,
        }
    }
}

/// Why a sealed record did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Too short or not a sealed record at all.
    #[error("not a sealed record (truncated or foreign data)")]
    Malformed,
    /// Sealed under a master key the keyring does not hold.
    #[error(
        "sealed under master key {found}, which is not in the broker's keyring (newest key {expected})"
    )]
    WrongKey {
        /// The key id in the record.
        found: KeyId,
        /// The key id of the key in use.
        expected: KeyId,
    },
    /// Authentication failed: damaged, or moved from another name.
    #[error("authentication failed (the record was modified or moved from another name)")]
    Tampered,
    /// A sound record of another kind than expected.
    #[error("the record is of another kind than expected (moved)")]
    WrongKind,
}

/// An opened record.
pub struct Opened {
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// Its kind.
    pub kind: RecordKind,
    /// Its version (0 for format 1 and [`RecordKind::Plain`]).
    pub version: u64,
}

fn associated_data(header: &[u8], store_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + store_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(store_key.as_bytes());
    aad
}

/// Seals `plaintext` of `kind` at `version` for storage at `store_key`.
pub fn seal_record(
    key: &MasterKey,
    store_key: &str,
    kind: RecordKind,
    version: u64,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.id().0);
    out.push(kind.byte());
    out.extend_from_slice(&version.to_be_bytes());
    let aad = associated_data(&out, store_key);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.subkey(Purpose::Seal)));
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Encryption fails only for inputs beyond 256 GiB.
        .unwrap_or_default();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// Seals `plaintext` for storage under the fixed name `store_key` (kind
/// [`RecordKind::Plain`], version 0).
pub fn seal(key: &MasterKey, store_key: &str, plaintext: &[u8]) -> Vec<u8> {
    seal_record(key, store_key, RecordKind::Plain, 0, plaintext)
}

/// The key id a sealed record claims, if it is one (either format).
pub fn key_id_of(sealed: &[u8]) -> Option<KeyId> {
    if sealed.len() < HEADER_V1_LEN || (&sealed[..4] != MAGIC && &sealed[..4] != MAGIC_V1) {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&sealed[4..HEADER_V1_LEN]);
    Some(KeyId(id))
}

/// True when `sealed` is of format 1 (to be migrated).
pub fn is_legacy(sealed: &[u8]) -> bool {
    sealed.starts_with(MAGIC_V1)
}

/// Opens a record sealed for `store_key`, of either format.
pub fn open_record(key: &MasterKey, store_key: &str, sealed: &[u8]) -> Result<Opened, OpenError> {
    let legacy = is_legacy(sealed);
    let header_len = if legacy { HEADER_V1_LEN } else { HEADER_LEN };
    if sealed.len() < header_len + NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    let found = key_id_of(sealed).ok_or(OpenError::Malformed)?;
    // Any key of the keyring opens what it sealed; only the newest seals.
    let key = key.opener(found).ok_or(OpenError::WrongKey {
        found,
        expected: key.id(),
    })?;
    let (header, rest) = sealed.split_at(header_len);
    let (kind, version, aead_key) = if legacy {
        (RecordKind::Legacy, 0, key.expose())
    } else {
        let kind = RecordKind::from_byte(header[12]).ok_or(OpenError::Malformed)?;
        let mut version = [0u8; 8];
        version.copy_from_slice(&header[13..HEADER_LEN]);
        (kind, u64::from_be_bytes(version), key.subkey(Purpose::Seal))
    };
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let aad = associated_data(header, store_key);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(aead_key));
    let plaintext = cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Tampered)?;
    Ok(Opened {
        plaintext,
        kind,
        version,
    })
}

/// Opens a record sealed with [`seal`] under the fixed name `store_key`
/// (format 1 accepted too).
pub fn open(
    key: &MasterKey,
    store_key: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let opened = open_record(key, store_key, sealed)?;
    match opened.kind {
        RecordKind::Plain | RecordKind::Legacy => Ok(opened.plaintext),
        RecordKind::Credential | RecordKind::Manifest => Err(OpenError::WrongKind),
    }
}

/// Seals in format 1, for tests of the migration only.
#[cfg(test)]
pub(crate) fn seal_v1(key: &MasterKey, store_key: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC_V1);
    out.extend_from_slice(&key.id().0);
    let aad = associated_data(&out, store_key);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("small input");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_moved_truncated_flipped_and_foreign_key() {
        let key = MasterKey::generate();
        let sealed = seal(&key, "credential/a", b"secret payload");
        assert_eq!(
            open(&key, "credential/a", &sealed)
                .expect("opens")
                .as_slice(),
            b"secret payload"
        );
        assert_eq!(
            open(&key, "credential/b", &sealed),
            Err(OpenError::Tampered)
        );
        assert_eq!(
            open(&key, "credential/a", &sealed[..sealed.len() - 1]),
            Err(OpenError::Tampered)
        );
        assert_eq!(
            open(&key, "credential/a", &sealed[..20]),
            Err(OpenError::Malformed)
        );
        for bit in [0usize, 5 * 8, 20 * 8, (sealed.len() - 1) * 8] {
            let mut flipped = sealed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&key, "credential/a", &flipped).is_err(), "bit {bit}");
        }
        let other = MasterKey::generate();
        assert!(matches!(
            open(&other, "credential/a", &sealed),
            Err(OpenError::WrongKey { .. })
        ));
        assert!(!sealed.windows(14).any(|w| w == b"secret payload"));
    }

    #[test]
    fn kind_and_version_are_authenticated_and_the_subkey_is_used() {
        let key = MasterKey::generate();
        let sealed = seal_record(&key, "c/x", RecordKind::Credential, 7, b"p");
        let opened = open_record(&key, "c/x", &sealed).expect("opens");
        assert_eq!((opened.kind, opened.version), (RecordKind::Credential, 7));
        assert_eq!(opened.plaintext.as_slice(), b"p");
        // Another version or kind in the header: authentication fails.
        let mut older = sealed.clone();
        older[13..21].copy_from_slice(&6u64.to_be_bytes());
        assert_eq!(
            open_record(&key, "c/x", &older).err(),
            Some(OpenError::Tampered)
        );
        let mut relabelled = sealed.clone();
        relabelled[12] = RecordKind::Manifest.byte();
        assert_eq!(
            open_record(&key, "c/x", &relabelled).err(),
            Some(OpenError::Tampered)
        );
        assert_eq!(open(&key, "c/x", &sealed), Err(OpenError::WrongKind));
        // Not sealed with the master key directly.
        let mut as_v1 = MAGIC_V1.to_vec();
        as_v1.extend_from_slice(&sealed[4..12]);
        as_v1.extend_from_slice(&sealed[HEADER_LEN..]);
        assert!(open_record(&key, "c/x", &as_v1).is_err());
    }

    #[test]
    fn a_keyring_opens_what_any_of_its_keys_sealed_and_seals_under_the_newest() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let ring = new.clone().with_older(vec![old.clone()]);
        let by_old = seal(&old, "k", b"old");
        assert_eq!(open(&ring, "k", &by_old).expect("opens").as_slice(), b"old");
        let by_ring = seal(&ring, "k", b"new");
        assert_eq!(key_id_of(&by_ring), Some(new.id()));
        assert_eq!(open(&new, "k", &by_ring).expect("opens").as_slice(), b"new");
        // The old key alone does not hold the new one.
        assert!(matches!(
            open(&old, "k", &by_ring),
            Err(OpenError::WrongKey { .. })
        ));
        // A key retired from the ring no longer opens.
        assert!(matches!(
            open(&new, "k", &by_old),
            Err(OpenError::WrongKey { .. })
        ));
    }

    #[test]
    fn format_1_still_opens() {
        let key = MasterKey::generate();
        let sealed = seal_v1(&key, "credential/a", b"old");
        assert!(is_legacy(&sealed));
        let opened = open_record(&key, "credential/a", &sealed).expect("opens");
        assert_eq!(opened.kind, RecordKind::Legacy);
        assert_eq!(opened.plaintext.as_slice(), b"old");
        assert!(open_record(&key, "credential/b", &sealed).is_err());
    }
}
