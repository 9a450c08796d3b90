//! The master key that seals every record: where it comes from and how it is
//! identified.
//!
//! **Invariant:** the key never lives in the data directory. It comes from
//! `TWILIO_BROKER_MASTER_KEY` (base64 of 32 random bytes),
//! `TWILIO_BROKER_MASTER_KEY_FILE`, or, with `--dev` only, a throw-away key.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit master key. Prints as its key id only; zeroized on drop.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
}

/// A public fingerprint of a master key (first 8 bytes of a domain-separated
/// SHA-256), stored beside each sealed record so the broker can tell "wrong
/// key" from "damaged record" and so that rotation can find old records.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", self.id)
    }
}

/// Why a master key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// Neither variable is set and `--dev` was not given.
    #[error(
        "no master key: set TWILIO_BROKER_MASTER_KEY (base64 of 32 random bytes) or \
         TWILIO_BROKER_MASTER_KEY_FILE (a file holding it); `twilio-broker keygen` makes one"
    )]
    Missing,
    /// Both variables are set.
    #[error("both TWILIO_BROKER_MASTER_KEY and TWILIO_BROKER_MASTER_KEY_FILE are set; keep one")]
    Ambiguous,
    /// The value is not base64 of exactly 32 bytes.
    #[error("the master key from {source_name} is not base64 of exactly 32 bytes")]
    Malformed {
        /// Where it came from (a variable name or file path).
        source_name: String,
    },
    /// The key file could not be read.
    #[error("cannot read the master key file {path}: {error}")]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let id = key_id(&bytes);
        MasterKey {
            bytes: Zeroizing::new(bytes),
            id,
        }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// Parses base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, MasterKeyError> {
        let malformed = || MasterKeyError::Malformed {
            source_name: source_name.to_owned(),
        };
        let decoded = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| malformed())?);
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| malformed())?;
        Ok(Self::from_bytes(bytes))
    }

    /// Reads a key file holding base64 text.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
            MasterKeyError::Unreadable {
                path: path.display().to_string(),
                error,
            }
        })?);
        Self::from_base64(&text, &path.display().to_string())
    }

    /// Loads the key from the two environment variables (values passed in so
    /// callers and tests decide where they come from). `Ok(None)` when neither is set.
    pub fn from_env_values(
        inline: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, MasterKeyError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(MasterKeyError::Ambiguous),
            (Some(text), None) => Self::from_base64(text, "TWILIO_BROKER_MASTER_KEY").map(Some),
            (None, Some(path)) => Self::from_file(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Base64 text of the key, for `keygen` only.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.bytes.as_slice()))
    }

    /// The raw key, for the AEAD in `store::seal` only.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The public fingerprint of this key.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

fn key_id(bytes: &[u8; KEY_LEN]) -> KeyId {
    let digest = Sha256::new()
        .chain_update(b"twilio-broker master key id v1\0")
        .chain_update(bytes)
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    KeyId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_lengths() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64(), "test").expect("parses");
        assert_eq!(key.id(), again.id());
        assert!(MasterKey::from_base64("c2hvcnQ=", "test").is_err());
        assert!(MasterKey::from_base64("not base64!", "test").is_err());
        assert!(!format!("{key:?}").contains(key.to_base64().as_str()));
    }

    #[test]
    fn env_values_are_exclusive() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        assert!(matches!(
            MasterKey::from_env_values(Some(&text), Some(Path::new("/x"))),
            Err(MasterKeyError::Ambiguous)
        ));
        assert!(matches!(MasterKey::from_env_values(None, None), Ok(None)));
    }
}
