//! The master key that seals every record: where it comes from and how it is
//! identified.
//!
//! **Invariants:** the key never lives in the data directory. It comes from
//! `TWILIO_BROKER_MASTER_KEY` (base64 of 32 random bytes),
//! `TWILIO_BROKER_MASTER_KEY_FILE` (a file no group or other may read), or,
//! with `--dev` only, a throw-away key. The variable is taken out of the
//! process's environment block before any thread starts
//! ([`take_from_environment`]), and the key's bytes are locked in RAM
//! (never swapped) where the system allows it.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;

/// The variable holding the key inline.
pub const ENV_VAR: &str = "TWILIO_BROKER_MASTER_KEY";

/// A 256-bit master key. Prints as its key id only; zeroized on drop;
/// clones share one copy of the bytes, locked in RAM when possible.
///
/// A key loaded from a keyring (see [`crate::keyring`]) is the keyring's
/// newest key and carries the older ones: it seals under itself only and
/// opens what any key of the ring sealed ([`MasterKey::opener`]).
#[derive(Clone)]
pub struct MasterKey {
    bytes: Arc<KeyBytes>,
    id: KeyId,
    /// The older keys of the keyring, newest first (never nested: each has none).
    older: Arc<[MasterKey]>,
}

/// The key's bytes and its derived subkeys at a fixed address, locked in RAM
/// while they live.
struct KeyBytes {
    bytes: Box<Zeroizing<[u8; KEY_LEN]>>,
    subkeys: Box<Zeroizing<[[u8; KEY_LEN]; Purpose::COUNT]>>,
    _locked: Option<twilio_broker_system::Locked>,
    _subkeys_locked: Option<twilio_broker_system::Locked>,
}

/// What a subkey is for. Each purpose has its own HKDF label, so a key
/// learned for one purpose says nothing about another.
///
/// Labels reserved for later purposes (never to be reused for anything
/// else): `twilio-broker/v1/audit-chain`, `twilio-broker/v1/state-file`,
/// `twilio-broker/v1/backup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The AEAD key of sealed records (format `TBS2`) and the state file.
    Seal,
    /// The HMAC key that turns credential names into store keys.
    NameHash,
    /// The seed of the Ed25519 key that signs audit checkpoints.
    AuditSigning,
}

impl Purpose {
    const COUNT: usize = 3;

    /// The HKDF `info` label of this purpose.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::Seal => "twilio-broker/v1/seal",
            Purpose::NameHash => "twilio-broker/v1/name-hash",
            Purpose::AuditSigning => "twilio-broker/v1/audit-signing",
        }
    }

    fn index(self) -> usize {
        match self {
            Purpose::Seal => 0,
            Purpose::NameHash => 1,
            Purpose::AuditSigning => 2,
        }
    }
}

/// The HKDF salt of every subkey derivation (version 1 of the derivation;
/// the version is what the record header's key id covers with the master key id).
const HKDF_SALT: &[u8] = b"twilio-broker key derivation v1";

/// HKDF-SHA256 of `master` for `purpose`.
pub fn derive_subkey(master: &[u8; KEY_LEN], purpose: Purpose) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), master);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF-SHA256's limit of 8160.
    hk.expand(purpose.label().as_bytes(), out.as_mut_slice())
        .unwrap_or_default();
    out
}

static FROM_ENVIRONMENT: OnceLock<Option<Zeroizing<String>>> = OnceLock::new();

/// Takes [`ENV_VAR`] out of the environment: its bytes in the process's
/// original environment block (`/proc/PID/environ`) are overwritten and it is
/// removed, so neither other processes nor children see it; the value is
/// kept for [`env_value`]. Call first thing in `main`, before any thread.
pub fn take_from_environment() -> std::io::Result<()> {
    let value = twilio_broker_system::take_env_secret(ENV_VAR)?;
    let _ = FROM_ENVIRONMENT.set(value);
    Ok(())
}

/// The value [`ENV_VAR`] had: as taken by [`take_from_environment`], or
/// read now when it was not taken (library use, tests).
pub fn env_value() -> Option<Zeroizing<String>> {
    match FROM_ENVIRONMENT.get() {
        Some(taken) => taken.clone(),
        None => std::env::var(ENV_VAR).ok().map(Zeroizing::new),
    }
}

/// A public fingerprint of a master key (first 8 bytes of a domain-separated
/// SHA-256), stored beside each sealed record so the broker can tell "wrong
/// key" from "damaged record" and so that rotation can find old records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
        write!(f, "MasterKey(id {}", self.id)?;
        for older in self.older.iter() {
            write!(f, ", older {}", older.id)?;
        }
        write!(f, ")")
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
    /// A keyring file that is not a list of distinct keys.
    #[error("the keyring {path}: {reason}")]
    Keyring {
        /// The file.
        path: String,
        /// What is wrong (never a key's bytes).
        reason: String,
    },
    /// The key file may be read by its group or others.
    #[error(
        "the master key file {path} has mode {mode:04o}: its group or others may open it; \
         run `chmod 600 {path}` (owned by the broker's user)"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
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
        let bytes = Box::new(Zeroizing::new(bytes));
        let mut subkeys = Box::new(Zeroizing::new([[0u8; KEY_LEN]; Purpose::COUNT]));
        for purpose in [Purpose::Seal, Purpose::NameHash, Purpose::AuditSigning] {
            subkeys[purpose.index()] = *derive_subkey(&bytes, purpose);
        }
        let lock = |what: &[u8]| match twilio_broker_system::lock_in_ram(what) {
            Ok(locked) => Some(locked),
            Err(err) => {
                tracing::debug!(%err, "cannot lock the master key in RAM (RLIMIT_MEMLOCK?)");
                None
            }
        };
        let locked = lock(bytes.as_slice());
        let subkeys_locked = lock(subkeys.as_flattened());
        MasterKey {
            bytes: Arc::new(KeyBytes {
                bytes,
                subkeys,
                _locked: locked,
                _subkeys_locked: subkeys_locked,
            }),
            id,
            older: Arc::from(Vec::new()),
        }
    }

    /// This key as the newest of a keyring whose older keys are `older`
    /// (newest first; their own older keys and any repeat of an id are dropped).
    pub fn with_older(self, older: Vec<MasterKey>) -> Self {
        let mut kept: Vec<MasterKey> = Vec::with_capacity(older.len());
        for key in older {
            if key.id != self.id && kept.iter().all(|k| k.id != key.id) {
                kept.push(key.alone());
            }
        }
        MasterKey {
            older: Arc::from(kept),
            ..self
        }
    }

    /// This key without the older keys of its keyring.
    pub fn alone(&self) -> Self {
        MasterKey {
            bytes: Arc::clone(&self.bytes),
            id: self.id,
            older: Arc::from(Vec::new()),
        }
    }

    /// The key of the keyring whose id is `id` (this one or an older one).
    pub fn opener(&self, id: KeyId) -> Option<&MasterKey> {
        if id == self.id {
            return Some(self);
        }
        self.older.iter().find(|k| k.id == id)
    }

    /// Every key of the keyring, newest (this one) first.
    pub fn ring(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(self).chain(self.older.iter())
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

    /// Reads a key file: one key, or a keyring of several (see
    /// [`crate::keyring`]: base64 lines, newest first), returned as its
    /// newest key carrying the older ones. A file that its group or others
    /// may read (or write) is refused.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let text = Self::read_key_file(path)?;
        Self::parse_keyring(&text, path)
    }

    /// Parses keyring text (the format of `crate::keyring`: one base64 key
    /// per line, newest first, `#` comments and blank lines ignored): the
    /// newest key, carrying the older ones. Empty rings and a key given
    /// twice are refused, naming the line (never a key's bytes).
    pub fn parse_keyring(text: &str, path: &Path) -> Result<Self, MasterKeyError> {
        let keyring_error = |reason: String| MasterKeyError::Keyring {
            path: path.display().to_string(),
            reason,
        };
        let mut keys: Vec<MasterKey> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key =
                Self::from_base64(line, &format!("{} (line {})", path.display(), number + 1))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(keyring_error(format!(
                    "key id {} appears twice (line {})",
                    key.id,
                    number + 1
                )));
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let newest = keys
            .next()
            .ok_or_else(|| keyring_error("holds no key".to_owned()))?;
        Ok(newest.with_older(keys.collect()))
    }

    /// Reads the text of a key file after checking its mode.
    fn read_key_file(path: &Path) -> Result<Zeroizing<String>, MasterKeyError> {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(MasterKeyError::Exposed {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(
            |error| MasterKeyError::Unreadable {
                path: path.display().to_string(),
                error,
            },
        )?))
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

    /// The key from the environment: `TWILIO_BROKER_MASTER_KEY` (taken out
    /// of the environment block at start-up) or `TWILIO_BROKER_MASTER_KEY_FILE`
    /// (both set is an error), else `config_file` (the config's
    /// `master_key_file`), else none.
    pub fn from_environment(config_file: Option<&Path>) -> Result<Option<Self>, MasterKeyError> {
        let inline = env_value();
        let file = std::env::var_os("TWILIO_BROKER_MASTER_KEY_FILE").map(std::path::PathBuf::from);
        match Self::from_env_values(inline.as_deref().map(String::as_str), file.as_deref())? {
            Some(key) => Ok(Some(key)),
            None => config_file.map(Self::from_file).transpose(),
        }
    }

    /// The keyring file the daemon's key comes from, which SIGHUP reloads:
    /// `TWILIO_BROKER_MASTER_KEY_FILE`, else `config_file`; none when the
    /// key is inline in `TWILIO_BROKER_MASTER_KEY` (always exactly one key).
    pub fn keyring_file(config_file: Option<&Path>) -> Option<std::path::PathBuf> {
        if env_value().is_some() {
            return None;
        }
        std::env::var_os("TWILIO_BROKER_MASTER_KEY_FILE")
            .map(std::path::PathBuf::from)
            .or_else(|| config_file.map(Path::to_path_buf))
    }

    /// Base64 text of the key, for `keygen` and the keyring file only.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.bytes.bytes.as_slice()))
    }

    /// The raw key: for deriving keys of other purposes (the audit chain)
    /// and for opening records of the first format (`TBS1`) only.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes.bytes
    }

    /// The subkey for `purpose` (HKDF-SHA256 of the master key).
    pub(crate) fn subkey(&self, purpose: Purpose) -> &[u8; KEY_LEN] {
        &self.bytes.subkeys[purpose.index()]
    }

    /// The public fingerprint of this key (the newest of its keyring).
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
    fn subkeys_differ_per_purpose_and_from_the_master_key() {
        let key = MasterKey::generate();
        let seal = *key.subkey(Purpose::Seal);
        let names = *key.subkey(Purpose::NameHash);
        assert_ne!(seal, names);
        assert_ne!(&seal, key.expose());
        assert_eq!(*derive_subkey(key.expose(), Purpose::Seal), seal);
        // RFC 5869 shape: same master, same label, same key; another master, another key.
        assert_ne!(*MasterKey::generate().subkey(Purpose::Seal), seal);
    }

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
