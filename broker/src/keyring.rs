//! The keyring file: several master keys, newest first (issue 18).
//!
//! Format: UTF-8 text, one key per line (base64 of 32 bytes, as `keygen`
//! prints), the **newest first**; blank lines and lines starting with `#`
//! are ignored. The newest key seals every new write; the older ones only
//! open what they sealed until the daemon's re-seal task has moved it to the
//! newest. A file with one key is the format every earlier release read,
//! so `master_key_file` and `TWILIO_BROKER_MASTER_KEY_FILE` may name either;
//! `TWILIO_BROKER_MASTER_KEY` keeps meaning exactly one key.
//!
//! **Invariants:** a keyring holds at least one key and no key twice (by
//! id); the file is written whole (temporary file, `fsync`, rename, `fsync`
//! of the directory) with mode 0600, so a crash leaves the old or the new
//! ring; a key is removed ([`retire`]) only when it is not the newest and
//! the daemon's last complete re-seal pass found nothing sealed under it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::master_key::{KeyId, MasterKey};

const HEADER: &str = "# twilio-broker keyring: one base64 master key per line, newest first.\n\
                      # The first key seals new records; older keys only open records not yet re-sealed.\n";

/// The text of a keyring file holding `ring`'s keys, newest first.
pub fn format(ring: &MasterKey) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::from(HEADER));
    for key in ring.ring() {
        text.push_str(key.to_base64().as_str());
        text.push('\n');
    }
    text
}

/// Writes `ring` to `path` whole: temporary file (mode 0600), `fsync`,
/// rename, `fsync` of the directory.
pub fn write_file(path: &Path, ring: &MasterKey) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
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
        file.write_all(format(ring).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// `ring` with `key` as its new newest key.
pub fn add(ring: &MasterKey, key: MasterKey) -> MasterKey {
    key.with_older(ring.ring().cloned().collect())
}

/// Parses a key id (16 hex digits, as `keyring list` prints).
pub fn parse_id(text: &str) -> Option<KeyId> {
    let text = text.trim();
    if text.len() != 16 {
        return None;
    }
    let mut id = [0u8; 8];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyId(id))
}

/// Why a key may not be retired.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetireError {
    /// No key of the ring has that id.
    #[error("key id {0} is not in the keyring (`twilio-broker keyring list` shows its ids)")]
    Unknown(KeyId),
    /// It is the newest key: it seals every new write.
    #[error(
        "key id {0} is the newest key, which seals every new write; add a new key first \
         (`twilio-broker keyring add`) and let the broker re-seal everything"
    )]
    Newest(KeyId),
    /// The broker has not reported a complete re-seal pass with this ring's
    /// newest key.
    #[error(
        "the broker has not finished re-sealing under the newest key {newest} yet (its state \
         file reports no complete pass with that key); reload the broker (SIGHUP) after \
         `keyring add` and wait until twilio_broker_keyring_reseal_remaining is 0"
    )]
    NotResealed {
        /// The ring's newest key.
        newest: KeyId,
    },
    /// Records are still sealed under it.
    #[error(
        "{records} record(s) are still sealed under key id {id}; wait until the broker's re-seal \
         task has moved them (twilio_broker_keyring_reseal_remaining is 0)"
    )]
    InUse {
        /// The key.
        id: KeyId,
        /// How many records the last pass found under it.
        records: u64,
    },
}

/// `ring` without the key `id`, if the broker's last complete re-seal pass
/// (`usage`, from its state file) found nothing sealed under it.
pub fn retire(
    ring: &MasterKey,
    id: KeyId,
    usage: Option<&crate::state_file::KeyringUse>,
) -> Result<MasterKey, RetireError> {
    if ring.id() == id {
        return Err(RetireError::Newest(id));
    }
    if ring.opener(id).is_none() {
        return Err(RetireError::Unknown(id));
    }
    let newest = ring.id();
    let usage = usage
        .filter(|u| u.newest == newest.to_string() && u.complete)
        .ok_or(RetireError::NotResealed { newest })?;
    let records = usage
        .sealed_under
        .get(&id.to_string())
        .copied()
        .unwrap_or(0);
    if records > 0 {
        return Err(RetireError::InUse { id, records });
    }
    Ok(ring.alone().with_older(
        ring.ring()
            .skip(1)
            .filter(|k| k.id() != id)
            .cloned()
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state_file::KeyringUse;

    fn ids(ring: &MasterKey) -> Vec<KeyId> {
        ring.ring().map(MasterKey::id).collect()
    }

    #[test]
    fn a_keyring_round_trips_newest_first_and_opens_with_every_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keyring");
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let ring = add(&old, new.clone());
        write_file(&path, &ring).expect("write");
        let mode = std::fs::metadata(&path).expect("meta");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let read = MasterKey::from_file(&path).expect("read");
        assert_eq!(ids(&read), vec![new.id(), old.id()]);
        assert_eq!(read.id(), new.id(), "the newest key seals");
        assert!(read.opener(old.id()).is_some());
        assert!(read.opener(MasterKey::generate().id()).is_none());
        // A one-key file (every earlier release's format) still reads.
        std::fs::write(&path, format!("{}\n", old.to_base64().as_str())).expect("write");
        assert_eq!(
            ids(&MasterKey::from_file(&path).expect("one")),
            vec![old.id()]
        );
        // The key file never shows up in Debug.
        assert!(!format!("{read:?}").contains(new.to_base64().as_str()));
    }

    #[test]
    fn empty_duplicated_and_malformed_rings_are_refused_with_the_line() {
        let key = MasterKey::generate();
        let path = Path::new("/etc/twilio-broker/keyring");
        let err = MasterKey::parse_keyring("# nothing\n\n", path).expect_err("empty");
        assert!(err.to_string().contains("holds no key"), "{err}");
        let twice = format!("{0}\n{0}\n", key.to_base64().as_str());
        let err = MasterKey::parse_keyring(&twice, path).expect_err("twice");
        assert!(err.to_string().contains("appears twice (line 2)"), "{err}");
        assert!(!err.to_string().contains(key.to_base64().as_str()));
        let err = MasterKey::parse_keyring("not-a-key\n", path).expect_err("malformed");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn retire_refuses_the_newest_an_unknown_key_and_a_key_in_use() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let ring = add(&old, new.clone());
        let usage = |newest: &MasterKey, complete, count: u64| KeyringUse {
            newest: newest.id().to_string(),
            complete,
            sealed_under: BTreeMap::from([(old.id().to_string(), count)]),
        };
        assert_eq!(
            retire(&ring, new.id(), None).err(),
            Some(RetireError::Newest(new.id()))
        );
        let stranger = MasterKey::generate().id();
        assert_eq!(
            retire(&ring, stranger, None).err(),
            Some(RetireError::Unknown(stranger))
        );
        assert!(matches!(
            retire(&ring, old.id(), None),
            Err(RetireError::NotResealed { .. })
        ));
        assert!(matches!(
            retire(&ring, old.id(), Some(&usage(&old, true, 0))),
            Err(RetireError::NotResealed { .. })
        ));
        assert!(matches!(
            retire(&ring, old.id(), Some(&usage(&new, false, 0))),
            Err(RetireError::NotResealed { .. })
        ));
        assert_eq!(
            retire(&ring, old.id(), Some(&usage(&new, true, 3))).err(),
            Some(RetireError::InUse {
                id: old.id(),
                records: 3
            })
        );
        let retired = retire(&ring, old.id(), Some(&usage(&new, true, 0))).expect("retired");
        assert_eq!(ids(&retired), vec![new.id()]);
        assert_eq!(parse_id(&old.id().to_string()), Some(old.id()));
        assert_eq!(parse_id("xyz"), None);
    }
}
