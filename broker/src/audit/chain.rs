//! Tamper evidence: each line of an audit file carries `seq`, `prev` (the
//! previous line's hash) and `hash`, an HMAC-SHA256 keyed with a key derived
//! from the master key. Without the key nobody can rebuild the chain after
//! editing, inserting or deleting a line; `verify_file` finds the first
//! broken or missing link.
//!
//! Line layout: `{"seq":N,"prev":"<hex>",<event fields>,"hash":"<hex>"}`;
//! the hash covers the line with its `,"hash":…` member removed.

use std::io::BufRead as _;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::master_key::MasterKey;

type HmacSha256 = Hmac<Sha256>;

/// The `prev` of the first line of a new chain.
pub const GENESIS: [u8; 32] = [0; 32];
const HASH_SUFFIX_LEN: usize = ",\"hash\":\"".len() + 64 + "\"}".len();

/// The key of the chain's HMAC, derived from the master key.
#[derive(Clone)]
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl ChainKey {
    /// Derives the chain key from the master key.
    pub fn derive(master: &MasterKey) -> Self {
        let mut mac =
            HmacSha256::new_from_slice(master.expose()).expect("HMAC takes keys of any length");
        mac.update(b"twilio-broker audit chain v1");
        ChainKey(Zeroizing::new(mac.finalize().into_bytes().into()))
    }

    fn mac(&self, body: &[u8]) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(self.0.as_slice()).expect("HMAC takes keys of any length");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Builds the line for `event_json` (a JSON object) after `prev`.
    pub fn link(&self, seq: u64, prev: &[u8; 32], event_json: &str) -> (String, [u8; 32]) {
        let fields = event_json.strip_prefix('{').unwrap_or(event_json);
        let body = format!("{{\"seq\":{seq},\"prev\":\"{}\",{fields}", hex(prev));
        let hash = self.mac(body.as_bytes());
        let mut line = body;
        line.pop();
        line.push_str(&format!(",\"hash\":\"{}\"}}", hex(&hash)));
        (line, hash)
    }

    /// Checks one line: its hash, and returns (seq, prev, hash).
    fn check(&self, line: &str) -> Result<(u64, [u8; 32], [u8; 32]), String> {
        #[derive(serde::Deserialize)]
        struct Head {
            seq: u64,
            prev: String,
            hash: String,
        }
        let head: Head =
            serde_json::from_str(line).map_err(|_| "not a JSON audit line".to_owned())?;
        let prev = unhex(&head.prev).ok_or("prev is not a 64-digit hex hash")?;
        let hash = unhex(&head.hash).ok_or("hash is not a 64-digit hex hash")?;
        let split = line.len().saturating_sub(HASH_SUFFIX_LEN);
        let (Some(head_text), Some(tail)) = (line.get(..split), line.get(split..)) else {
            return Err("the hash is not the line's last member".into());
        };
        if !tail.starts_with(",\"hash\":\"") || !tail.ends_with("\"}") {
            return Err("the hash is not the line's last member".into());
        }
        let body = format!("{head_text}}}");
        if self.mac(body.as_bytes()) != hash {
            return Err(
                "hash does not match: the line was modified, or written under another key".into(),
            );
        }
        Ok((head.seq, prev, hash))
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The result of verifying a file.
#[derive(Debug)]
pub struct VerifyReport {
    /// Lines checked and intact.
    pub events: u64,
    /// The first and last sequence numbers.
    pub seq_range: Option<(u64, u64)>,
    /// True when the first line continues an earlier (rotated) file.
    pub continues_earlier_file: bool,
    /// The first problem: (line number, what is wrong).
    pub broken: Option<(usize, String)>,
}

/// The chain state at the end of a file: (next seq, last hash).
pub fn tail_state(key: &ChainKey, path: &Path) -> std::io::Result<Option<(u64, [u8; 32])>> {
    match std::fs::metadata(path) {
        // Only a regular file has a tail to continue (not a pipe or a device).
        Ok(meta) if !meta.is_file() => return Ok(None),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    }
    let file = std::fs::File::open(path)?;
    let mut last = None;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            last = Some(line);
        }
    }
    Ok(last.and_then(|line| key.check(&line).ok().map(|(seq, _, hash)| (seq + 1, hash))))
}

/// Verifies every link of an audit file.
pub fn verify_file(key: &ChainKey, path: &Path) -> std::io::Result<VerifyReport> {
    let file = std::fs::File::open(path)?;
    let mut report = VerifyReport {
        events: 0,
        seq_range: None,
        continues_earlier_file: false,
        broken: None,
    };
    let mut expected: Option<(u64, [u8; 32])> = None;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (seq, prev, hash) = match key.check(&line) {
            Ok(parts) => parts,
            Err(reason) => {
                report.broken = Some((number, reason));
                return Ok(report);
            }
        };
        match expected {
            None => report.continues_earlier_file = prev != GENESIS,
            Some((next_seq, last_hash)) => {
                if seq != next_seq {
                    report.broken = Some((
                        number,
                        format!(
                            "missing link: seq {seq} follows seq {} (events removed or reordered)",
                            next_seq - 1
                        ),
                    ));
                    return Ok(report);
                }
                if prev != last_hash {
                    report.broken = Some((
                        number,
                        "prev does not match the previous line's hash".into(),
                    ));
                    return Ok(report);
                }
            }
        }
        report.events += 1;
        report.seq_range = Some((report.seq_range.map_or(seq, |(first, _)| first), seq));
        expected = Some((seq + 1, hash));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_chain(key: &ChainKey, n: u64) -> Vec<String> {
        let mut prev = GENESIS;
        (0..n)
            .map(|seq| {
                let (line, hash) = key.link(
                    seq,
                    &prev,
                    &format!("{{\"rpc\":\"GetBearer\",\"n\":{seq}}}"),
                );
                prev = hash;
                line
            })
            .collect()
    }

    fn verify_lines(key: &ChainKey, lines: &[String]) -> VerifyReport {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        verify_file(key, &path).expect("verify")
    }

    #[test]
    fn intact_modified_removed_and_foreign_key() {
        let key = ChainKey::derive(&MasterKey::generate());
        let lines = write_chain(&key, 5);
        let ok = verify_lines(&key, &lines);
        assert!(ok.broken.is_none() && ok.events == 5 && !ok.continues_earlier_file);

        let mut edited = lines.clone();
        edited[2] = edited[2].replace("GetBearer", "MintAccessToken");
        assert_eq!(verify_lines(&key, &edited).broken.expect("broken").0, 3);

        let mut removed = lines.clone();
        removed.remove(3);
        let report = verify_lines(&key, &removed);
        let (line, reason) = report.broken.expect("broken");
        assert_eq!(line, 4);
        assert!(reason.contains("missing link"), "{reason}");

        let other = ChainKey::derive(&MasterKey::generate());
        assert_eq!(verify_lines(&other, &lines).broken.expect("broken").0, 1);

        let rotated = verify_lines(&key, &lines[2..]);
        assert!(rotated.broken.is_none() && rotated.continues_earlier_file);
    }
}
