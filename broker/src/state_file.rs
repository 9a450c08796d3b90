//! The broker's state file: a small, sealed, versioned file outside the data
//! directory, the database and the audit files, holding what an attacker who
//! can rewrite those must not be able to roll back unnoticed.
//!
//! Today it holds the head of each audit chain (`audit`: sink name → the
//! sequence number and hash of the last durable line). The store's
//! high-water mark (rollback protection, issue 14) joins it as a new field.
//! Issue 18 adds what the re-seal task last counted per master key (what
//! `keyring retire` checks) and the audit signer handover an offline `rekey`
//! leaves for the daemon.
//! A reader refuses a file written by a newer format version, and older
//! readers ignore fields they do not know, so a field that an older broker
//! must not drop when it rewrites the file comes with a version bump.
//!
//! Layout on disk: the JSON document sealed with `seal` (XChaCha20-
//! Poly1305 under the master key, associated data [`SEAL_NAME`]), so it can be
//! neither read nor forged without the master key. Every write goes to a
//! temporary file in the same directory, is `fsync`ed, renamed over the old
//! file, and the directory is `fsync`ed: a crash leaves the old or the new
//! file, never a mix.
//!
//! Default path: `<data-dir>.state` (next to the data directory, outside it);
//! the `state_file` config key or `--state-file` sets it, and it is required
//! with a storage plugin.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::master_key::MasterKey;
use crate::seal;

/// The format version this broker writes (and the newest it reads).
///
/// 1: audit anchors (issue 13). 2: adds [`StateData::store`] (issue 14); a
/// format-1 file is read as having no store mark.
pub const FORMAT_VERSION: u32 = 2;
/// The associated data the state file is sealed under.
pub const SEAL_NAME: &str = "twilio-broker/state-file";

/// The head of one audit chain: the last line known to be durable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anchor {
    /// Sequence number of the anchored line.
    pub seq: u64,
    /// Its hash (64 hex digits).
    pub hash: String,
}

/// The contents of the state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateData {
    /// The format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Audit chain heads, by sink (`file`, `plugin:<name>`).
    #[serde(default)]
    pub audit: BTreeMap<String, Anchor>,
    /// The store's high-water mark (format 2): the highest manifest
    /// generation this broker wrote or served. A store whose manifest is
    /// older was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMark>,
    /// Which master keys the store's records are sealed under, as the
    /// daemon's re-seal task last counted them (issue 18): what `keyring
    /// retire` checks. No version bump: a broker that drops the field only
    /// makes `retire` refuse until the next pass writes it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<KeyringUse>,
    /// The audit signer handover an offline `rekey` made (it held both
    /// keys), for the daemon to write into the chain at its next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_handover: Option<SignerRecord>,
}

/// A change of audit checkpoint key (see `audit::chain`): the new public
/// key, the old one and, when the old key was at hand, its handover
/// signature (hex) over the new key. An offline `rekey` keeps one here
/// until the daemon writes it into the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignerRecord {
    /// The new public key (64 hex digits).
    pub signer: String,
    /// The previous public key (64 hex digits).
    pub previous: String,
    /// The previous key's signature over the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<String>,
}

/// What the re-seal task last counted (see [`StateData::keyring`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyringUse {
    /// The id of the keyring's newest key during the count (16 hex digits).
    pub newest: String,
    /// True when the count covered every record (the key check, the name
    /// key, the manifest and every credential) and none was unreadable.
    pub complete: bool,
    /// Key id → how many records are sealed under it.
    pub sealed_under: BTreeMap<String, u64>,
}

/// The store's high-water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreMark {
    /// The highest manifest generation seen.
    pub generation: u64,
}

impl Default for StateData {
    fn default() -> Self {
        StateData {
            version: FORMAT_VERSION,
            audit: BTreeMap::new(),
            store: None,
            keyring: None,
            audit_handover: None,
        }
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Reading or writing failed.
    #[error("state file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file did not open with the master key.
    #[error(
        "state file {path} does not open with this master key ({reason}); it was modified, \
         or belongs to another broker"
    )]
    Sealed {
        /// The file.
        path: String,
        /// What the AEAD said.
        reason: String,
    },
    /// The content is not a state document this broker understands.
    #[error("state file {path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The state file of a running broker: the last written contents, and the
/// path. Writes are serialised by an internal lock.
pub struct StateFile {
    path: PathBuf,
    /// The keyring: its newest key seals each write (swapped by
    /// [`StateFile::set_key`] when the keyring is reloaded).
    key: arc_swap::ArcSwap<MasterKey>,
    current: Mutex<StateData>,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateFile({})", self.path.display())
    }
}

/// The default state file path for a data directory: `<data-dir>.state`.
pub fn default_path(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.as_os_str().to_owned();
    name.push(".state");
    PathBuf::from(name)
}

impl StateFile {
    /// Opens the state file at `path` (absent: empty state, created at the
    /// first write).
    pub fn open(path: &Path, key: MasterKey) -> Result<Self, StateFileError> {
        let current = read(path, &key)?.unwrap_or_default();
        Ok(StateFile {
            path: path.to_path_buf(),
            key: arc_swap::ArcSwap::from_pointee(key),
            current: Mutex::new(current),
        })
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> StateData {
        self.lock().clone()
    }

    /// The anchored head of the audit chain of `sink`.
    pub fn anchor(&self, sink: &str) -> Option<Anchor> {
        self.lock().audit.get(sink).cloned()
    }

    /// Records the head of `sink`'s chain and writes the file atomically.
    /// Nothing is written when the anchor did not change.
    pub fn set_anchor(&self, sink: &str, anchor: Anchor) -> Result<(), StateFileError> {
        let mut current = self.lock();
        if current.audit.get(sink) == Some(&anchor) {
            return Ok(());
        }
        let mut next = current.clone();
        next.version = FORMAT_VERSION;
        next.audit.insert(sink.to_owned(), anchor);
        write(&self.path, &self.key.load(), &next)?;
        *current = next;
        Ok(())
    }

    /// The store's high-water mark (0 when none was recorded).
    pub fn store_generation(&self) -> u64 {
        self.lock().store.map_or(0, |mark| mark.generation)
    }

    /// Raises the store's high-water mark to `generation` and writes the file
    /// atomically; a lower or equal value changes nothing, unless `lower` (an
    /// accepted rollback) is set.
    pub fn set_store_generation(&self, generation: u64, lower: bool) -> Result<(), StateFileError> {
        let mut current = self.lock();
        let now = current.store.map_or(0, |mark| mark.generation);
        if generation == now || (generation < now && !lower) {
            return Ok(());
        }
        let mut next = current.clone();
        next.version = FORMAT_VERSION;
        next.store = Some(StoreMark { generation });
        write(&self.path, &self.key.load(), &next)?;
        *current = next;
        Ok(())
    }

    /// Takes a reloaded keyring: the file is written again at once, sealed
    /// under its newest key (so an older key can be retired).
    pub fn set_key(&self, key: MasterKey) -> Result<(), StateFileError> {
        let current = self.lock();
        if self.key.load().id() != key.id() && self.path.exists() {
            write(&self.path, &key, &current)?;
        }
        self.key.store(std::sync::Arc::new(key));
        Ok(())
    }

    /// The id of the key the file is sealed under now.
    pub fn sealed_under(&self) -> crate::master_key::KeyId {
        self.key.load().id()
    }

    /// Records what the re-seal task counted; written only when it changed.
    pub fn set_keyring_use(&self, usage: KeyringUse) -> Result<(), StateFileError> {
        let mut current = self.lock();
        if current.keyring.as_ref() == Some(&usage) {
            return Ok(());
        }
        let mut next = current.clone();
        next.version = FORMAT_VERSION;
        next.keyring = Some(usage);
        write(&self.path, &self.key.load(), &next)?;
        *current = next;
        Ok(())
    }

    /// After `twilio-broker restore` (a deliberate rollback): sets the
    /// store's mark to the restored `generation`, lower or higher, and
    /// forgets every audit chain's anchor, so the next start neither
    /// refuses the restored store as rolled back nor the audit files as
    /// cut against anchors of the store that was replaced. The restore's
    /// own audit event is the first line anchored afterwards.
    pub fn reset_after_restore(&self, generation: u64) -> Result<(), StateFileError> {
        let mut current = self.lock();
        let next = StateData {
            version: FORMAT_VERSION,
            audit: BTreeMap::new(),
            store: Some(StoreMark { generation }),
            // The restored store's keys are counted again by the next re-seal
            // pass; until then `keyring retire` refuses.
            keyring: None,
            // A pending signer handover concerns the audit files, which a
            // restore keeps.
            audit_handover: current.audit_handover.clone(),
        };
        write(&self.path, &self.key.load(), &next)?;
        *current = next;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateData> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn io_error(path: &Path, error: std::io::Error) -> StateFileError {
    StateFileError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Reads and opens a state file; `Ok(None)` when it does not exist.
pub fn read(path: &Path, key: &MasterKey) -> Result<Option<StateData>, StateFileError> {
    let sealed = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error(path, err)),
    };
    let plain = seal::open(key, SEAL_NAME, &sealed).map_err(|e| StateFileError::Sealed {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let format = |reason: String| StateFileError::Format {
        path: path.display().to_string(),
        reason,
    };
    #[derive(serde::Deserialize)]
    struct Version {
        version: u32,
    }
    let version: Version =
        serde_json::from_slice(&plain).map_err(|e| format(format!("not a state document: {e}")))?;
    if version.version > FORMAT_VERSION || version.version == 0 {
        return Err(format(format!(
            "format version {} is not understood by this broker (it reads up to {FORMAT_VERSION}); \
             it was written by a newer release",
            version.version
        )));
    }
    let data: StateData =
        serde_json::from_slice(&plain).map_err(|e| format(format!("not a state document: {e}")))?;
    Ok(Some(data))
}

/// Writes `data` sealed to `path`: temporary file, `fsync`, rename, `fsync`
/// of the directory.
pub fn write(path: &Path, key: &MasterKey, data: &StateData) -> Result<(), StateFileError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let plain =
        zeroize::Zeroizing::new(
            serde_json::to_vec(data).map_err(|e| StateFileError::Format {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
        );
    let sealed = seal::seal(key, SEAL_NAME, &plain);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = path.file_name().unwrap_or_default().to_owned();
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&sealed)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|e| io_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(seq: u64) -> Anchor {
        Anchor {
            seq,
            hash: format!("{seq:064x}"),
        }
    }

    #[test]
    fn round_trips_sealed_and_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = default_path(&dir.path().join("data"));
        assert_eq!(path, dir.path().join("data.state"));
        let key = MasterKey::generate();
        let state = StateFile::open(&path, key.clone()).expect("open");
        assert_eq!(state.anchor("file"), None);
        assert!(!path.exists(), "nothing is written before the first anchor");
        state.set_anchor("file", anchor(7)).expect("write");
        state.set_anchor("plugin:x", anchor(3)).expect("write");
        state.set_store_generation(9, false).expect("mark");
        state.set_store_generation(4, false).expect("never lowered");
        let again = StateFile::open(&path, key.clone()).expect("reopen");
        assert_eq!(again.anchor("file"), Some(anchor(7)));
        assert_eq!(again.store_generation(), 9);
        assert_eq!(again.snapshot(), state.snapshot());
        again
            .set_store_generation(4, true)
            .expect("accepted rollback");
        assert_eq!(again.store_generation(), 4);
        let v1 = serde_json::json!({"version": 1, "audit": {}});
        let v1 = seal::seal(&key, SEAL_NAME, v1.to_string().as_bytes());
        std::fs::write(dir.path().join("v1.state"), v1).expect("write v1");
        let old = StateFile::open(&dir.path().join("v1.state"), key.clone()).expect("v1 reads");
        assert_eq!(old.store_generation(), 0);
        std::fs::remove_file(dir.path().join("v1.state")).expect("rm");
        // Sealed: no hash in clear, and only one file left in the directory.
        let bytes = std::fs::read(&path).expect("read");
        assert!(!String::from_utf8_lossy(&bytes).contains(&anchor(7).hash));
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        let mode = std::fs::metadata(&path).expect("meta");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }

    #[test]
    fn refuses_another_key_a_flipped_bit_and_a_newer_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.state");
        let key = MasterKey::generate();
        StateFile::open(&path, key.clone())
            .expect("open")
            .set_anchor("file", anchor(1))
            .expect("write");
        let other = StateFile::open(&path, MasterKey::generate()).expect_err("other key");
        assert!(other.to_string().contains("does not open"), "{other}");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            StateFile::open(&path, key.clone()),
            Err(StateFileError::Sealed { .. })
        ));
        let newer = StateData {
            version: FORMAT_VERSION + 1,
            ..StateData::default()
        };
        write(&path, &key, &newer).expect("write");
        let err = StateFile::open(&path, key).expect_err("newer");
        assert!(err.to_string().contains("newer release"), "{err}");
    }

    #[test]
    fn a_restore_sets_the_mark_either_way_and_forgets_audit_anchors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.state");
        let key = MasterKey::generate();
        let state = StateFile::open(&path, key.clone()).expect("open");
        state.set_anchor("file", anchor(7)).expect("anchor");
        state.set_store_generation(90, false).expect("mark");
        state.reset_after_restore(40).expect("lowered");
        let again = StateFile::open(&path, key.clone()).expect("reopen");
        assert_eq!(again.store_generation(), 40);
        assert_eq!(again.anchor("file"), None);
        again.reset_after_restore(120).expect("raised");
        assert_eq!(
            StateFile::open(&path, key)
                .expect("reopen")
                .store_generation(),
            120
        );
    }
}
