//! AEAD sealing of records (XChaCha20-Poly1305 under the master key).
//!
//! Layout of a sealed record:
//! `magic "TBS1" (4) | key id (8) | nonce (24) | ciphertext + tag`.
//! The associated data is the header (magic and key id) followed by the
//! record's store key, so a record copied under another name, truncated or
//! bit-flipped fails to open. Nonces are random (192 bits, safe to draw at
//! random for the life of a key).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::master_key::{KeyId, MasterKey};

const MAGIC: &[u8; 4] = b"TBS1";
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 4 + 8;
const TAG_LEN: usize = 16;

/// Why a sealed record did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Too short or not a sealed record at all.
    #[error("not a sealed record (truncated or foreign data)")]
    Malformed,
    /// Sealed under another master key.
    #[error("sealed under master key {found}, but the broker holds key {expected}")]
    WrongKey {
        /// The key id in the record.
        found: KeyId,
        /// The key id of the key in use.
        expected: KeyId,
    },
    /// Authentication failed: damaged, or moved from another name.
    #[error("authentication failed (the record was modified or moved from another name)")]
    Tampered,
}

fn associated_data(header: &[u8], store_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + store_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(store_key.as_bytes());
    aad
}

/// Seals `plaintext` for storage at `store_key`.
pub fn seal(key: &MasterKey, store_key: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
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
        // Encryption fails only for inputs beyond 256 GiB.
        .unwrap_or_default();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// The key id a sealed record claims, if it is one.
pub fn key_id_of(sealed: &[u8]) -> Option<KeyId> {
    if sealed.len() < HEADER_LEN || &sealed[..4] != MAGIC {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&sealed[4..HEADER_LEN]);
    Some(KeyId(id))
}

/// Opens a record sealed for `store_key`.
pub fn open(
    key: &MasterKey,
    store_key: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    let found = key_id_of(sealed).ok_or(OpenError::Malformed)?;
    if found != key.id() {
        return Err(OpenError::WrongKey {
            found,
            expected: key.id(),
        });
    }
    let (header, rest) = sealed.split_at(HEADER_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let aad = associated_data(header, store_key);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.expose()));
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Tampered)
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
}
