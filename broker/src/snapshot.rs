//! The snapshot file of `twilio-broker backup` / `restore` (issue 17): the
//! sealed store at one manifest generation, byte for byte as stored.
//!
//! Layout (format 1), every integer big-endian:
//!
//! ```text
//! "TBSNAP" | format u16 | header length u32 | header (JSON)
//! | per entry: key length u32 | key (UTF-8) | value length u32 | value (sealed bytes)
//! | SHA-256 of everything before it (32 bytes)
//! ```
//!
//! The header names the master key id the store is sealed under, the
//! manifest generation, the number of entries and of credential records,
//! and when and by which version the snapshot was taken.
//!
//! **Invariants:** a snapshot holds sealed records only (every value is
//! what the store held: the key check, the manifest's top and buckets and
//! the credential records, never a secret or a name in clear), so a file
//! can be kept like the data directory itself. [`decode`] accepts a file
//! only when its magic, format, digest, framing and counts all agree; a
//! truncated, padded or bit-flipped file is refused before any byte is
//! restored. Refusing a snapshot of another master key is the restore's
//! job (it compares [`Header::key_id`] with the configured key first).

use sha2::{Digest as _, Sha256};

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8; 6] = b"TBSNAP";
/// The format this broker writes (and the newest it reads).
pub const FORMAT: u16 = 1;
/// The longest header accepted, in bytes.
const MAX_HEADER: usize = 64 * 1024;
const DIGEST_LEN: usize = 32;

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The id of the master key the records are sealed under (hex).
    pub key_id: String,
    /// The store's manifest generation the snapshot was taken at.
    pub generation: u64,
    /// Number of entries (every store record, manifest included).
    pub entries: u64,
    /// Number of credential records among them.
    pub credentials: u64,
    /// When it was taken (RFC 3339, UTC).
    pub taken_at: String,
    /// The broker version that took it.
    pub broker_version: String,
}

/// A snapshot in memory: its header and every entry, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// What the snapshot says about itself.
    pub header: Header,
    /// Store key → sealed bytes, ordered by key.
    pub entries: Vec<(String, Vec<u8>)>,
}

impl Snapshot {
    /// The snapshot of a vault's sealed copy, taken now.
    pub fn of(copy: crate::store::vault::SealedCopy) -> Self {
        let credentials = copy
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with(crate::store::vault::CREDENTIAL_PREFIX))
            .count() as u64;
        Snapshot {
            header: Header {
                key_id: copy.key_id.to_string(),
                generation: copy.generation,
                entries: copy.entries.len() as u64,
                credentials,
                taken_at: crate::audit::rfc3339(std::time::SystemTime::now()),
                broker_version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            entries: copy.entries,
        }
    }
}

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot file at all.
    #[error("not a twilio-broker snapshot (the file does not start with TBSNAP)")]
    NotASnapshot,
    /// Written by a newer broker.
    #[error(
        "snapshot format {0} is newer than this broker reads (format {FORMAT}); restore it with \
         the release that took it or a later one"
    )]
    NewerFormat(u16),
    /// The digest does not match: the file was cut, padded or changed.
    #[error(
        "the snapshot is damaged: its SHA-256 does not match its content (cut short, copied \
         incompletely or changed); take a new backup"
    )]
    Damaged,
    /// The framing or header is inconsistent.
    #[error("the snapshot is malformed: {0}")]
    Malformed(String),
}

/// Encodes a snapshot file.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let header = serde_json::to_vec(&snapshot.header).expect("a header always serialises");
    let size = snapshot
        .entries
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(12 + header.len() + size + DIGEST_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_be_bytes());
    push_len(&mut out, header.len());
    out.extend_from_slice(&header);
    for (key, value) in &snapshot.entries {
        push_len(&mut out, key.len());
        out.extend_from_slice(key.as_bytes());
        push_len(&mut out, value.len());
        out.extend_from_slice(value);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("store keys and records are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
}

/// Decodes and checks a snapshot file (magic, format, digest, framing,
/// counts); see the module's invariants.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err(SnapshotError::NotASnapshot);
    };
    let mut reader = Reader { rest };
    let format = u16::from_be_bytes(reader.array::<2>()?);
    if format > FORMAT {
        return Err(SnapshotError::NewerFormat(format));
    }
    if format == 0 {
        return Err(SnapshotError::Malformed("format 0".into()));
    }
    let (body, digest) = bytes
        .split_at_checked(bytes.len().saturating_sub(DIGEST_LEN))
        .filter(|(body, _)| body.len() >= MAGIC.len() + 2)
        .ok_or(SnapshotError::Damaged)?;
    if Sha256::digest(body).as_slice() != digest {
        return Err(SnapshotError::Damaged);
    }
    let mut reader = Reader {
        rest: &body[MAGIC.len() + 2..],
    };
    let header_len = reader.len()?;
    if header_len > MAX_HEADER {
        return Err(SnapshotError::Malformed("header too long".into()));
    }
    let header: Header = serde_json::from_slice(reader.take(header_len)?)
        .map_err(|e| SnapshotError::Malformed(format!("header: {e}")))?;
    let mut entries = Vec::new();
    while !reader.rest.is_empty() {
        let key_len = reader.len()?;
        let key = std::str::from_utf8(reader.take(key_len)?)
            .map_err(|_| SnapshotError::Malformed("a store key is not UTF-8".into()))?
            .to_owned();
        let value_len = reader.len()?;
        entries.push((key, reader.take(value_len)?.to_vec()));
    }
    let credentials = entries
        .iter()
        .filter(|(k, _)| k.starts_with(crate::store::vault::CREDENTIAL_PREFIX))
        .count();
    if entries.len() as u64 != header.entries || credentials as u64 != header.credentials {
        return Err(SnapshotError::Malformed(format!(
            "the header counts {} entries ({} credentials) but the file holds {} ({})",
            header.entries,
            header.credentials,
            entries.len(),
            credentials
        )));
    }
    Ok(Snapshot { header, entries })
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let (head, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| SnapshotError::Malformed("an entry runs past the end".into()))?;
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }

    fn len(&mut self) -> Result<usize, SnapshotError> {
        Ok(u32::from_be_bytes(self.array::<4>()?) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let entries = vec![
            ("c/00ab".to_owned(), vec![1, 2, 3]),
            ("meta/key-check".to_owned(), vec![4; 40]),
            ("meta/manifest".to_owned(), Vec::new()),
        ];
        Snapshot {
            header: Header {
                key_id: "0011223344556677".into(),
                generation: 42,
                entries: 3,
                credentials: 1,
                taken_at: "2026-11-30T04:00:00Z".into(),
                broker_version: "0.0.0".into(),
            },
            entries,
        }
    }

    #[test]
    fn a_snapshot_round_trips() {
        let snapshot = sample();
        let bytes = encode(&snapshot);
        assert!(bytes.starts_with(b"TBSNAP\x00\x01"));
        assert_eq!(decode(&bytes), Ok(snapshot));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len} accepted");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(decode(&flipped).is_err(), "flip at {at} accepted");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(decode(&padded), Err(SnapshotError::Damaged));
    }

    #[test]
    fn other_files_and_newer_formats_are_named() {
        assert_eq!(
            decode(b"SQLite format 3\0"),
            Err(SnapshotError::NotASnapshot)
        );
        let mut newer = encode(&sample());
        newer[7] = 2;
        let err = decode(&newer).expect_err("newer format");
        assert_eq!(err, SnapshotError::NewerFormat(2));
        assert!(err.to_string().contains("format 2 is newer"), "{err}");
    }

    #[test]
    fn counts_that_disagree_with_the_entries_are_refused() {
        let mut snapshot = sample();
        snapshot.header.credentials = 2;
        let err = decode(&encode(&snapshot)).expect_err("wrong count");
        assert!(matches!(err, SnapshotError::Malformed(m) if m.contains("counts 3 entries (2")));
    }
}
