//! Tamper evidence for audit streams (files and plugin streams alike).
//!
//! Each line is `{"seq":N,"prev":"<hex>",<fields>,"hash":"<hex>"}`: `prev` is
//! the previous line's hash and `hash` is the plain SHA-256 of the line with
//! its `,"hash":…` member removed, so anyone can check the links. Authenticity
//! comes from signed checkpoints: every so many lines or seconds a
//! `"record":"checkpoint"` line carries an Ed25519 signature over its own
//! `seq` and `prev` (the hash of everything before it), made with a key
//! derived from the master key (its HKDF `AuditSigning` subkey). `audit pubkey`
//! prints the public half; anyone holding it can verify every line up to the
//! last checkpoint, and the lines after it are reported as an unsigned tail.
//!
//! Every stream begins with a `"record":"start"` line whose `prev` says where
//! it continues from: all zeros for the genesis of a chain, the last hash of
//! the previous (rotated) file otherwise. A file that does not begin with a
//! start line lost its head. Other records: `"gap"` (a non-required sink
//! dropped events on a full queue) and `"truncation"` (the operator accepted
//! a file cut before its anchored head).
//!
//! A master key rotation (issue 18: `keyring add` and a reload, or an
//! offline `rekey`) changes the checkpoint key. The chain continues: the
//! writer signs a last checkpoint with the old key, then writes a
//! `"record":"signer"` line naming the new public key (`signer`), the old
//! one (`previous`) and `handover`, the old key's Ed25519 signature over
//! the new public key; later checkpoints are signed by the new key. A
//! verifier holding the old public key thus learns to trust the new one,
//! and one holding only the new key accepts the earlier checkpoints
//! because a later checkpoint of its own key covers every line before it.
//! **Invariant:** a checkpoint verifies only under the signer its stream
//! declared last (start or signer line); it authenticates the lines before
//! it only when that signer is trusted (given, or handed over from a
//! trusted one), and a stream whose last such checkpoint is not trusted is
//! reported broken.
//!
//! Format 1 (before issue 13) chained lines with an HMAC keyed from the
//! master key and had no start line; such files still verify with the
//! master key, and a broker that opens one continues it with a start line.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Instant;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::master_key::MasterKey;
use crate::state_file::Anchor;
pub use crate::state_file::SignerRecord;

type HmacSha256 = Hmac<Sha256>;

/// The `prev` of the first line of a new chain.
pub const GENESIS: [u8; 32] = [0; 32];
/// The chain format this broker writes.
pub const FORMAT: u32 = 2;
const HASH_SUFFIX_LEN: usize = ",\"hash\":\"".len() + 64 + "\"}".len();
const CHECKPOINT_DOMAIN: &[u8] = b"twilio-broker audit checkpoint v2\0";
const HANDOVER_DOMAIN: &[u8] = b"twilio-broker audit signer handover v1\0";

/// The key of format 1's HMAC chain, derived from the master key.
#[derive(Clone)]
pub struct ChainKey(Zeroizing<[u8; 32]>);

impl ChainKey {
    /// Derives the format-1 chain key from the master key.
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

    /// Builds a format-1 line for `event_json` after `prev` (fixtures and
    /// migration tests only: the broker no longer writes this format).
    #[cfg(test)]
    pub fn link(&self, seq: u64, prev: &[u8; 32], event_json: &str) -> (String, [u8; 32]) {
        let fields = event_json.strip_prefix('{').unwrap_or(event_json);
        let body = format!("{{\"seq\":{seq},\"prev\":\"{}\",{fields}", hex(prev));
        let hash = self.mac(body.as_bytes());
        let mut line = body;
        line.pop();
        line.push_str(&format!(",\"hash\":\"{}\"}}", hex(&hash)));
        (line, hash)
    }
}

/// The checkpoint signing key (Ed25519), derived from the master key.
pub struct Signer(SigningKey);

impl Signer {
    /// Derives the signing key from the master key: its seed is the master
    /// key's `AuditSigning` subkey (HKDF-SHA256, see `crate::master_key`).
    pub fn derive(master: &MasterKey) -> Self {
        Signer(SigningKey::from_bytes(
            master.subkey(crate::master_key::Purpose::AuditSigning),
        ))
    }

    /// The public key that verifies this signer's checkpoints.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    fn sign(&self, seq: u64, prev: &[u8; 32]) -> [u8; 64] {
        self.0.sign(&checkpoint_message(seq, prev)).to_bytes()
    }

    /// This key's signature handing the chain over to `next` (hex).
    pub fn handover(&self, next: &PublicKey) -> String {
        hex(&self.0.sign(&handover_message(next)).to_bytes())
    }
}

fn handover_message(next: &PublicKey) -> Vec<u8> {
    let mut message = HANDOVER_DOMAIN.to_vec();
    message.extend_from_slice(next.0.as_bytes());
    message
}

/// The public key of audit checkpoints.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = unhex(text.trim())?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    /// 64 hex digits.
    pub fn to_hex(self) -> String {
        hex(self.0.as_bytes())
    }

    fn verify(&self, seq: u64, prev: &[u8; 32], signature: &str) -> bool {
        self.verify_message(&checkpoint_message(seq, prev), signature)
    }

    /// True when `signature` (hex) is this key's handover to `next`.
    pub fn verify_handover(&self, next: &PublicKey, signature: &str) -> bool {
        self.verify_message(&handover_message(next), signature)
    }

    fn verify_message(&self, message: &[u8], signature: &str) -> bool {
        let Some(bytes) = unhex64(signature) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0.verify(message, &signature).is_ok()
    }
}

fn checkpoint_message(seq: u64, prev: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 8 + 32);
    message.extend_from_slice(CHECKPOINT_DOMAIN);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(prev);
    message
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// Parses 64 hex digits.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    unhex_into(text, &mut out)?;
    Some(out)
}

fn unhex64(text: &str) -> Option<[u8; 64]> {
    let mut out = [0u8; 64];
    unhex_into(text, &mut out)?;
    Some(out)
}

fn unhex_into(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// The writer's side of one chain: the next line's `seq` and `prev`, and
/// how much is not yet covered by a checkpoint.
#[derive(Debug, Clone)]
pub struct Chain {
    next_seq: u64,
    prev: [u8; 32],
    unsigned: u64,
    last_checkpoint: Instant,
}

impl Chain {
    /// A chain whose next line has `next_seq` and links to `prev`.
    pub fn new(next_seq: u64, prev: [u8; 32]) -> Self {
        Chain {
            next_seq,
            prev,
            unsigned: 0,
            last_checkpoint: Instant::now(),
        }
    }

    /// The chain continuing after `anchor` (genesis without one).
    pub fn after(anchor: Option<&Anchor>) -> Self {
        match anchor.and_then(|a| Some((a.seq, unhex(&a.hash)?))) {
            Some((seq, hash)) => Chain::new(seq + 1, hash),
            None => Chain::new(0, GENESIS),
        }
    }

    /// The last line written: (seq, hash); `None` before the first line.
    pub fn head(&self) -> Option<Anchor> {
        self.next_seq.checked_sub(1).map(|seq| Anchor {
            seq,
            hash: hex(&self.prev),
        })
    }

    /// Lines written since the last checkpoint.
    pub fn unsigned(&self) -> u64 {
        self.unsigned
    }

    /// Time since the last checkpoint (or since the chain was opened).
    pub fn since_checkpoint(&self) -> std::time::Duration {
        self.last_checkpoint.elapsed()
    }

    /// Appends one line (with `\n`) for `object` (a JSON object with at
    /// least one member) to `out`.
    pub fn push(&mut self, out: &mut Vec<u8>, object: &[u8]) {
        let start = out.len();
        let fields = object.strip_prefix(b"{").unwrap_or(object);
        let fields = fields.strip_suffix(b"}").unwrap_or(fields);
        out.extend_from_slice(b"{\"seq\":");
        out.extend_from_slice(self.next_seq.to_string().as_bytes());
        out.extend_from_slice(b",\"prev\":\"");
        push_hex(out, &self.prev);
        out.extend_from_slice(b"\",");
        out.extend_from_slice(fields);
        let hash: [u8; 32] = Sha256::new()
            .chain_update(&out[start..])
            .chain_update(b"}")
            .finalize()
            .into();
        out.extend_from_slice(b",\"hash\":\"");
        push_hex(out, &hash);
        out.extend_from_slice(b"\"}\n");
        self.next_seq += 1;
        self.prev = hash;
        self.unsigned += 1;
    }

    /// Appends the start line of a stream (`prev` says where it continues from).
    pub fn push_start(&mut self, out: &mut Vec<u8>, signer: &Signer) {
        let continues = if self.prev == GENESIS {
            "genesis".to_owned()
        } else {
            hex(&self.prev)
        };
        let record = serde_json::json!({
            "version": "1",
            "record": "start",
            "format": FORMAT,
            "continues": continues,
            "time": super::rfc3339(std::time::SystemTime::now()),
            "signer": signer.public().to_hex(),
        });
        self.push(out, record.to_string().as_bytes());
    }

    /// Appends a signed checkpoint covering every line before it.
    pub fn push_checkpoint(&mut self, out: &mut Vec<u8>, signer: &Signer) {
        let signature = signer.sign(self.next_seq, &self.prev);
        let record = format!(
            "{{\"version\":\"1\",\"record\":\"checkpoint\",\"time\":\"{}\",\"sig\":\"{}\"}}",
            super::rfc3339(std::time::SystemTime::now()),
            hex(&signature)
        );
        self.push(out, record.as_bytes());
        self.unsigned = 0;
        self.last_checkpoint = Instant::now();
    }

    /// Hands the chain over from `old` to `new` (a master key rotation): a
    /// checkpoint signed by `old` when lines are unsigned, then the signer
    /// record carrying `old`'s handover signature.
    pub fn push_handover(&mut self, out: &mut Vec<u8>, old: &Signer, new: &Signer) {
        if self.unsigned > 0 {
            self.push_checkpoint(out, old);
        }
        let record = SignerRecord::new(
            old.public(),
            new.public(),
            Some(old.handover(&new.public())),
        );
        self.push_signer(out, &record);
    }

    /// Appends a signer record (see [`SignerRecord`]).
    pub fn push_signer(&mut self, out: &mut Vec<u8>, record: &SignerRecord) {
        let mut object = serde_json::json!({
            "version": "1",
            "record": "signer",
            "time": super::rfc3339(std::time::SystemTime::now()),
            "signer": record.signer,
            "previous": record.previous,
        });
        if let (Some(handover), Some(map)) = (&record.handover, object.as_object_mut()) {
            map.insert("handover".into(), handover.clone().into());
        }
        self.push(out, object.to_string().as_bytes());
    }

    /// Appends a gap record: `dropped` events (trail event numbers
    /// `first..=last`) did not fit a non-required sink's queue.
    pub fn push_gap(&mut self, out: &mut Vec<u8>, gap: &Gap) {
        let record = format!(
            "{{\"version\":\"1\",\"record\":\"gap\",\"time\":\"{}\",\"dropped\":{},\"first_event\":{},\"last_event\":{}}}",
            super::rfc3339(std::time::SystemTime::now()),
            gap.dropped,
            gap.first_event,
            gap.last_event
        );
        self.push(out, record.as_bytes());
    }

    /// Appends a truncation record: the operator accepted a file that ends
    /// before its anchored head.
    pub fn push_truncation(&mut self, out: &mut Vec<u8>, anchored: &Anchor) {
        let record = serde_json::json!({
            "version": "1",
            "record": "truncation",
            "time": super::rfc3339(std::time::SystemTime::now()),
            "anchored_seq": anchored.seq,
            "anchored_hash": anchored.hash,
        });
        self.push(out, record.to_string().as_bytes());
    }
}

impl SignerRecord {
    /// A change from `previous` to `signer`.
    pub fn new(previous: PublicKey, signer: PublicKey, handover: Option<String>) -> Self {
        SignerRecord {
            signer: signer.to_hex(),
            previous: previous.to_hex(),
            handover,
        }
    }
}

/// The signer a line declares (start and signer lines), if any: a cheap
/// test first, since only those lines carry a `signer` member.
pub(crate) fn declared_signer(text: &str) -> Option<String> {
    if !text.contains("\"signer\":\"") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Declared {
        record: Option<String>,
        signer: Option<String>,
    }
    let declared: Declared = serde_json::from_str(text).ok()?;
    matches!(declared.record.as_deref(), Some("start" | "signer"))
        .then_some(declared.signer)
        .flatten()
}

/// Events a non-required sink dropped, by trail event number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// How many.
    pub dropped: u64,
    /// The first dropped event's trail number.
    pub first_event: u64,
    /// The last dropped event's trail number.
    pub last_event: u64,
}

impl Gap {
    /// Adds one dropped event.
    pub fn add(gap: &mut Option<Gap>, event: u64) {
        match gap {
            Some(g) => {
                g.dropped += 1;
                g.first_event = g.first_event.min(event);
                g.last_event = g.last_event.max(event);
            }
            None => {
                *gap = Some(Gap {
                    dropped: 1,
                    first_event: event,
                    last_event: event,
                })
            }
        }
    }
}

/// One parsed line.
#[derive(Debug)]
pub(crate) struct Line {
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    pub record: Option<String>,
    sig: Option<String>,
    signer: Option<String>,
    handover: Option<String>,
    /// The line's text without its hash member, closed with `}`.
    body: String,
}

pub(crate) fn parse(line: &str) -> Result<Line, String> {
    #[derive(serde::Deserialize)]
    struct Head {
        seq: u64,
        prev: String,
        hash: String,
        record: Option<String>,
        sig: Option<String>,
        signer: Option<String>,
        handover: Option<String>,
    }
    let head: Head = serde_json::from_str(line).map_err(|_| "not a JSON audit line".to_owned())?;
    let prev = unhex(&head.prev).ok_or("prev is not a 64-digit hex hash")?;
    let hash = unhex(&head.hash).ok_or("hash is not a 64-digit hex hash")?;
    let split = line.len().saturating_sub(HASH_SUFFIX_LEN);
    let (Some(head_text), Some(tail)) = (line.get(..split), line.get(split..)) else {
        return Err("the hash is not the line's last member".into());
    };
    if !tail.starts_with(",\"hash\":\"") || !tail.ends_with("\"}") {
        return Err("the hash is not the line's last member".into());
    }
    Ok(Line {
        seq: head.seq,
        prev,
        hash,
        record: head.record,
        sig: head.sig,
        signer: head.signer,
        handover: head.handover,
        body: format!("{head_text}}}"),
    })
}

impl Line {
    /// True when `hash` is the SHA-256 of the line (format 2).
    pub(crate) fn sha256_ok(&self) -> bool {
        let digest: [u8; 32] = Sha256::digest(self.body.as_bytes()).into();
        digest == self.hash
    }

    fn hmac_ok(&self, key: &ChainKey) -> bool {
        key.mac(self.body.as_bytes()) == self.hash
    }
}

/// True when `line` is a format-1 line whose HMAC holds under `key`.
pub(crate) fn legacy_mac_ok(key: &ChainKey, line: &str) -> bool {
    parse(line).is_ok_and(|l| l.hmac_ok(key))
}

/// What a verifier may use.
#[derive(Clone, Default)]
pub struct VerifyKeys {
    /// The format-1 HMAC key (from the master key); format-1 lines need it.
    pub legacy: Option<ChainKey>,
    /// The trusted checkpoint public keys (every key of the keyring, or
    /// those given); without any, signatures are not checked.
    pub public: Vec<PublicKey>,
}

impl VerifyKeys {
    /// The keys of every master key of the keyring (newest first).
    pub fn from_master(master: &MasterKey) -> Self {
        VerifyKeys {
            legacy: Some(ChainKey::derive(master)),
            public: master.ring().map(|k| Signer::derive(k).public()).collect(),
        }
    }
}

/// Where a chain broke.
#[derive(Debug, Clone)]
pub struct Broken {
    /// The file (or stream) name.
    pub file: PathBuf,
    /// Line number within it (1-based; 0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The result of verifying one or more files of one chain.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Event lines checked and intact.
    pub events: u64,
    /// All lines checked and intact (events and records).
    pub lines: u64,
    /// The first and last sequence numbers.
    pub seq_range: Option<(u64, u64)>,
    /// The hash the first file continues from, when it is not the genesis.
    pub continues_from: Option<[u8; 32]>,
    /// The first problem.
    pub broken: Option<Broken>,
    /// The seq of the last checkpoint whose signature verified.
    pub signed_through: Option<u64>,
    /// Lines after the last verified checkpoint (not authenticated).
    pub unsigned_tail: u64,
    /// Format-1 (HMAC) lines.
    pub legacy_lines: u64,
    /// Gap records: events a non-required sink dropped.
    pub gaps: Vec<Gap>,
    /// Truncations an operator accepted (anchored seq of each).
    pub accepted_truncations: Vec<u64>,
    /// Set when the chain ends before the anchored head.
    pub truncated: Option<String>,
    /// The last line: (seq, hash).
    pub last: Option<(u64, [u8; 32])>,
}

impl VerifyReport {
    /// True when nothing is broken and nothing was cut (the tests' check;
    /// `audit verify` reports each part).
    #[cfg(test)]
    pub fn is_intact(&self) -> bool {
        self.broken.is_none() && self.truncated.is_none()
    }
}

struct Verifier<'k> {
    keys: &'k VerifyKeys,
    /// Trusted keys: those given, and those handed over from a trusted one.
    trusted: Vec<PublicKey>,
    /// The signer the stream declared last (start or signer line).
    declared: Option<PublicKey>,
    /// A checkpoint that verified under a signer not trusted, not yet
    /// covered by a trusted one: (file, line).
    untrusted: Option<(PathBuf, usize)>,
    anchor: Option<(u64, [u8; 32])>,
    report: VerifyReport,
    /// True once a format-2 start line was seen (later lines are format 2).
    format2: bool,
    file: PathBuf,
}

impl Verifier<'_> {
    fn fail(&mut self, line: usize, reason: impl Into<String>) {
        self.report.broken = Some(Broken {
            file: self.file.clone(),
            line,
            reason: reason.into(),
        });
    }

    /// Checks one line; false stops verification.
    fn line(
        &mut self,
        number: usize,
        first_of_file: bool,
        first_of_chain: bool,
        text: &str,
    ) -> bool {
        let line = match parse(text) {
            Ok(line) => line,
            Err(reason) => {
                self.fail(number, reason);
                return false;
            }
        };
        let is_start = line.record.as_deref() == Some("start");
        // Which format: a start line switches to format 2 for good.
        let format2 = self.format2 || is_start;
        if format2 {
            if !line.sha256_ok() {
                self.fail(
                    number,
                    "hash does not match: the line was modified after it was written",
                );
                return false;
            }
        } else if self.keys.legacy.as_ref().is_some_and(|k| line.hmac_ok(k)) {
            self.report.legacy_lines += 1;
        } else if line.sha256_ok() {
            self.fail(
                number,
                "head cut: the stream does not begin with a start record (lines were removed \
                 from its beginning, or it is not a whole file)",
            );
            return false;
        } else if self.keys.legacy.is_none() {
            self.fail(
                number,
                "a format-1 (HMAC-chained) line: verifying it needs the master key",
            );
            return false;
        } else {
            self.fail(
                number,
                "hash does not match: the line was modified, or written under another key",
            );
            return false;
        }
        self.format2 = format2;
        if first_of_file && !first_of_chain && self.format2 && !is_start {
            self.fail(
                number,
                "head cut: the file does not begin with a start record (lines were removed from \
                 its beginning)",
            );
            return false;
        }
        match self.report.last {
            None => {
                if line.prev != GENESIS {
                    self.report.continues_from = Some(line.prev);
                }
            }
            Some((last_seq, last_hash)) => {
                if line.seq != last_seq + 1 {
                    let what = if first_of_file {
                        "this file does not continue the previous one"
                    } else {
                        "events removed or reordered"
                    };
                    self.fail(
                        number,
                        format!(
                            "missing link: seq {} follows seq {last_seq} ({what})",
                            line.seq
                        ),
                    );
                    return false;
                }
                if line.prev != last_hash {
                    let what = if first_of_file {
                        "prev does not match the last hash of the previous file"
                    } else {
                        "prev does not match the previous line's hash"
                    };
                    self.fail(number, what);
                    return false;
                }
            }
        }
        match line.record.as_deref() {
            None => self.report.events += 1,
            Some("checkpoint") if !self.keys.public.is_empty() => {
                let sig = line.sig.as_deref().unwrap_or_default();
                let signer = match self.declared {
                    Some(declared) => declared
                        .verify(line.seq, &line.prev, sig)
                        .then_some(declared),
                    None => self
                        .trusted
                        .iter()
                        .find(|k| k.verify(line.seq, &line.prev, sig))
                        .copied(),
                };
                let Some(signer) = signer else {
                    self.fail(
                        number,
                        "checkpoint signature does not verify: forged, or signed by another key",
                    );
                    return false;
                };
                if self.trusted.contains(&signer) {
                    self.report.signed_through = Some(line.seq);
                    self.report.unsigned_tail = 0;
                    self.untrusted = None;
                } else if self.untrusted.is_none() {
                    self.untrusted = Some((self.file.clone(), number));
                }
            }
            Some("start" | "signer") if !self.keys.public.is_empty() => {
                let Some(signer) = line.signer.as_deref().and_then(PublicKey::parse) else {
                    self.fail(number, "the line declares no valid signer public key");
                    return false;
                };
                if let Some(handover) = line.handover.as_deref() {
                    let Some(previous) = self.declared else {
                        self.fail(number, "a signer handover with no previous signer declared");
                        return false;
                    };
                    if !previous.verify_handover(&signer, handover) {
                        self.fail(
                            number,
                            "the signer handover is not signed by the previous signer (forged)",
                        );
                        return false;
                    }
                    if self.trusted.contains(&previous) && !self.trusted.contains(&signer) {
                        self.trusted.push(signer);
                    }
                }
                self.declared = Some(signer);
            }
            Some("gap") => {
                #[derive(serde::Deserialize)]
                struct GapLine {
                    dropped: u64,
                    first_event: u64,
                    last_event: u64,
                }
                if let Ok(g) = serde_json::from_str::<GapLine>(text) {
                    self.report.gaps.push(Gap {
                        dropped: g.dropped,
                        first_event: g.first_event,
                        last_event: g.last_event,
                    });
                }
            }
            Some("truncation") => {
                #[derive(serde::Deserialize)]
                struct Cut {
                    anchored_seq: u64,
                }
                if let Ok(cut) = serde_json::from_str::<Cut>(text) {
                    self.report.accepted_truncations.push(cut.anchored_seq);
                }
            }
            Some(_) => {}
        }
        if line.record.as_deref() != Some("checkpoint") {
            self.report.unsigned_tail += 1;
        }
        if let Some((seq, hash)) = self.anchor
            && line.seq == seq
            && line.hash != hash
        {
            self.fail(
                number,
                format!(
                    "seq {seq} differs from the head anchored in the state file: the stream was \
                     rewritten"
                ),
            );
            return false;
        }
        self.report.lines += 1;
        self.report.seq_range = Some((
            self.report.seq_range.map_or(line.seq, |(first, _)| first),
            line.seq,
        ));
        self.report.last = Some((line.seq, line.hash));
        true
    }
}

/// Verifies the files of one chain, in order (oldest first), against the
/// anchored head when one is given.
pub fn verify_files(
    keys: &VerifyKeys,
    files: &[PathBuf],
    anchor: Option<&Anchor>,
) -> std::io::Result<VerifyReport> {
    let mut verifier = Verifier {
        keys,
        trusted: keys.public.clone(),
        declared: None,
        untrusted: None,
        anchor: anchor.and_then(|a| Some((a.seq, unhex(&a.hash)?))),
        report: VerifyReport::default(),
        format2: false,
        file: PathBuf::new(),
    };
    for (index, path) in files.iter().enumerate() {
        verifier.file = path.clone();
        let file = std::fs::File::open(path)?;
        let mut seen = false;
        for (line_index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let first_of_file = !seen;
            seen = true;
            if !verifier.line(
                line_index + 1,
                first_of_file,
                index == 0 && first_of_file,
                &line,
            ) {
                return Ok(verifier.report);
            }
        }
        if !seen {
            verifier.fail(
                0,
                "empty: a file the broker writes always begins with a start record",
            );
            return Ok(verifier.report);
        }
    }
    if let Some((file, line)) = verifier.untrusted.take() {
        verifier.file = file;
        verifier.fail(
            line,
            "checkpoint signature does not verify under any key given, nor under one handed over \
             from a given key (signed by another broker's key; if it is yours, pass its public \
             key with --pubkey, or the keyring that holds it)",
        );
        return Ok(verifier.report);
    }
    if let Some((seq, _)) = verifier.anchor {
        let last = verifier.report.last.map(|(s, _)| s);
        if last.is_none_or(|last| last < seq) {
            let ends = last.map_or("before its first line".to_owned(), |l| {
                format!("at seq {l}")
            });
            verifier.report.truncated = Some(format!(
                "truncated: the chain ends {ends}, but the state file anchors seq {seq} (lines \
                 were cut from its end)"
            ));
        }
    }
    Ok(verifier.report)
}

/// Verifies one file (the tests' shorthand for [`verify_files`]).
#[cfg(test)]
pub fn verify_file(keys: &VerifyKeys, path: &std::path::Path) -> std::io::Result<VerifyReport> {
    verify_files(keys, &[path.to_path_buf()], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_lines(signer: &Signer, n: u64, checkpoint_every: u64) -> Vec<String> {
        let mut chain = Chain::new(0, GENESIS);
        let mut out = Vec::new();
        chain.push_start(&mut out, signer);
        for i in 0..n {
            chain.push(
                &mut out,
                format!("{{\"rpc\":\"GetBearer\",\"n\":{i}}}").as_bytes(),
            );
            if (i + 1) % checkpoint_every == 0 {
                chain.push_checkpoint(&mut out, signer);
            }
        }
        String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn verify_lines(keys: &VerifyKeys, lines: &[String]) -> VerifyReport {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        verify_file(keys, &path).expect("verify")
    }

    /// Re-links `lines` from `from` on with fresh SHA-256 hashes, as a forger
    /// without the signing key would.
    fn relink(lines: &mut [String], from: usize) {
        let mut prev = parse(&lines[from - 1]).expect("line").hash;
        for line in lines.iter_mut().skip(from) {
            let mut value: serde_json::Value = serde_json::from_str(line).expect("json");
            let object = value.as_object_mut().expect("object");
            let seq = object["seq"].as_u64().expect("seq");
            for member in ["seq", "prev", "hash"] {
                object.remove(member);
            }
            let mut chain = Chain::new(seq, prev);
            let mut out = Vec::new();
            chain.push(&mut out, value.to_string().as_bytes());
            *line = String::from_utf8(out).expect("utf8").trim_end().to_owned();
            prev = parse(line).expect("line").hash;
        }
    }

    #[test]
    fn intact_edited_removed_reordered_and_head_cut() {
        let master = MasterKey::generate();
        let signer = Signer::derive(&master);
        let keys = VerifyKeys {
            legacy: None,
            public: vec![signer.public()],
        };
        let lines = chain_lines(&signer, 6, 3);
        let ok = verify_lines(&keys, &lines);
        assert!(ok.is_intact(), "{ok:?}");
        assert_eq!((ok.events, ok.lines, ok.unsigned_tail), (6, 9, 0));
        assert_eq!(ok.signed_through, Some(8));
        assert!(ok.continues_from.is_none());

        let mut edited = lines.clone();
        edited[2] = edited[2].replace("GetBearer", "MintAccessToken");
        let report = verify_lines(&keys, &edited);
        assert_eq!(report.broken.expect("broken").line, 3);

        let mut removed = lines.clone();
        removed.remove(3);
        let broken = verify_lines(&keys, &removed).broken.expect("broken");
        assert_eq!(broken.line, 4);
        assert!(broken.reason.contains("missing link"), "{}", broken.reason);

        let mut reordered = lines.clone();
        reordered.swap(2, 3);
        let broken = verify_lines(&keys, &reordered).broken.expect("broken");
        assert_eq!(broken.line, 3);
        assert!(broken.reason.contains("missing link"), "{}", broken.reason);

        let broken = verify_lines(&keys, &lines[5..]).broken.expect("broken");
        assert!(broken.reason.contains("head cut"), "{}", broken.reason);

        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").expect("write");
        let broken = verify_file(&keys, &empty)
            .expect("verify")
            .broken
            .expect("broken");
        assert!(broken.reason.contains("empty"), "{}", broken.reason);
    }

    #[test]
    fn a_relinked_forgery_fails_at_the_next_checkpoint_and_the_tail_is_unsigned() {
        let signer = Signer::derive(&MasterKey::generate());
        let keys = VerifyKeys {
            legacy: None,
            public: vec![signer.public()],
        };
        let mut lines = chain_lines(&signer, 6, 3);
        lines[2] = lines[2].replace("GetBearer", "MintAccessToken");
        relink(&mut lines, 2);
        // Every link holds (plain SHA-256), but the checkpoint at line 5 does not.
        let links_only = verify_lines(&VerifyKeys::default(), &lines);
        assert!(links_only.is_intact(), "{links_only:?}");
        let broken = verify_lines(&keys, &lines).broken.expect("broken");
        assert_eq!(broken.line, 5);
        assert!(broken.reason.contains("signature"), "{}", broken.reason);

        // A tail past the last checkpoint verifies as links, reported unsigned.
        let lines = chain_lines(&signer, 5, 3);
        let report = verify_lines(&keys, &lines);
        assert!(report.is_intact());
        assert_eq!((report.signed_through, report.unsigned_tail), (Some(4), 2));
        // Another broker's key signs nothing here.
        let other = VerifyKeys {
            legacy: None,
            public: vec![Signer::derive(&MasterKey::generate()).public()],
        };
        assert!(verify_lines(&other, &lines).broken.is_some());
    }

    #[test]
    fn rotated_files_verify_in_order_and_the_anchor_finds_truncation() {
        let signer = Signer::derive(&MasterKey::generate());
        let keys = VerifyKeys {
            legacy: None,
            public: vec![signer.public()],
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut chain = Chain::new(0, GENESIS);
        let mut first = Vec::new();
        chain.push_start(&mut first, &signer);
        chain.push(&mut first, b"{\"rpc\":\"A\"}");
        chain.push_checkpoint(&mut first, &signer);
        let mut second = Vec::new();
        chain.push_start(&mut second, &signer);
        let gap = Gap {
            dropped: 3,
            first_event: 7,
            last_event: 9,
        };
        chain.push_gap(&mut second, &gap);
        chain.push(&mut second, b"{\"rpc\":\"B\"}");
        chain.push(&mut second, b"{\"rpc\":\"C\"}");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, &first).expect("write");
        std::fs::write(&b, &second).expect("write");
        let head = chain.head().expect("head");
        let both = verify_files(&keys, &[a.clone(), b.clone()], Some(&head)).expect("verify");
        assert!(both.is_intact(), "{both:?}");
        assert_eq!(both.seq_range, Some((0, 6)));
        assert_eq!(both.gaps, vec![gap]);
        let alone = verify_files(&keys, std::slice::from_ref(&b), None).expect("verify");
        assert!(alone.is_intact() && alone.continues_from.is_some());
        let swapped = verify_files(&keys, &[b.clone(), a.clone()], None).expect("verify");
        assert!(swapped.broken.is_some());

        // Tail cut: the last line removed; the anchor still says seq 6.
        let text = String::from_utf8(second).expect("utf8");
        let cut: Vec<&str> = text.lines().collect();
        std::fs::write(&b, cut[..cut.len() - 1].join("\n") + "\n").expect("write");
        let report = verify_files(&keys, &[a, b], Some(&head)).expect("verify");
        assert!(report.broken.is_none());
        assert!(
            report
                .truncated
                .as_deref()
                .is_some_and(|t| t.contains("anchors seq 6")),
            "{report:?}"
        );
    }

    #[test]
    fn a_signer_handover_continues_the_chain_for_either_key() {
        let (old_master, new_master) = (MasterKey::generate(), MasterKey::generate());
        let (old, new) = (Signer::derive(&old_master), Signer::derive(&new_master));
        let build = |handover: bool, forger: Option<&Signer>| {
            let mut chain = Chain::new(0, GENESIS);
            let mut out = Vec::new();
            chain.push_start(&mut out, &old);
            chain.push(&mut out, b"{\"rpc\":\"A\"}");
            chain.push_checkpoint(&mut out, &old);
            chain.push(&mut out, b"{\"rpc\":\"B\"}");
            match (handover, forger) {
                (true, None) => chain.push_handover(&mut out, &old, &new),
                // A forger without the old key: the handover signed by another.
                (true, Some(forger)) => chain.push_signer(
                    &mut out,
                    &SignerRecord::new(
                        old.public(),
                        new.public(),
                        Some(forger.handover(&new.public())),
                    ),
                ),
                (false, _) => chain.push_signer(
                    &mut out,
                    &SignerRecord::new(old.public(), new.public(), None),
                ),
            }
            chain.push(&mut out, b"{\"rpc\":\"C\"}");
            chain.push_checkpoint(&mut out, &new);
            String::from_utf8(out)
                .expect("utf8")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let keys = |public: Vec<PublicKey>| VerifyKeys {
            legacy: None,
            public,
        };
        let lines = build(true, None);
        let last = parse(lines.last().expect("line")).expect("line").seq;
        for trusted in [
            vec![old.public()],
            vec![new.public()],
            VerifyKeys::from_master(&new_master.clone().with_older(vec![old_master.clone()]))
                .public,
        ] {
            let report = verify_lines(&keys(trusted), &lines);
            assert!(report.is_intact(), "{report:?}");
            assert_eq!((report.signed_through, report.events), (Some(last), 3));
        }
        let stranger = Signer::derive(&MasterKey::generate()).public();
        let broken = verify_lines(&keys(vec![stranger]), &lines)
            .broken
            .expect("broken");
        assert!(
            broken.reason.contains("under any key given"),
            "{}",
            broken.reason
        );
        // A handover signed by anyone but the previous signer is refused.
        let forger = Signer::derive(&MasterKey::generate());
        let broken = verify_lines(&keys(vec![old.public()]), &build(true, Some(&forger)))
            .broken
            .expect("broken");
        assert!(broken.reason.contains("handover"), "{}", broken.reason);
        // Without a handover, the old key alone does not vouch for the new one.
        let bare = build(false, None);
        let broken = verify_lines(&keys(vec![old.public()]), &bare)
            .broken
            .expect("broken");
        assert!(
            broken.reason.contains("under any key given"),
            "{}",
            broken.reason
        );
        assert!(verify_lines(&keys(vec![old.public(), new.public()]), &bare).is_intact());
        assert_eq!(declared_signer(&lines[0]), Some(old.public().to_hex()));
        assert_eq!(declared_signer(&lines[1]), None);
    }

    #[test]
    fn format_one_files_verify_with_the_master_key_and_upgrade_in_place() {
        let master = MasterKey::generate();
        let legacy = ChainKey::derive(&master);
        let mut prev = GENESIS;
        let mut lines = Vec::new();
        for seq in 0..3 {
            let (line, hash) = legacy.link(seq, &prev, "{\"rpc\":\"GetBearer\"}");
            prev = hash;
            lines.push(line);
        }
        let keys = VerifyKeys::from_master(&master);
        let report = verify_lines(&keys, &lines);
        assert!(report.is_intact() && report.legacy_lines == 3, "{report:?}");
        // A broker that opens it continues with a start line.
        let signer = Signer::derive(&master);
        let mut chain = Chain::new(3, prev);
        let mut out = Vec::new();
        chain.push_start(&mut out, &signer);
        chain.push(&mut out, b"{\"rpc\":\"ListCredentials\"}");
        chain.push_checkpoint(&mut out, &signer);
        lines.extend(
            String::from_utf8(out)
                .expect("utf8")
                .lines()
                .map(str::to_owned),
        );
        let report = verify_lines(&keys, &lines);
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.events, report.legacy_lines), (4, 3));
        // With the public key only, format-1 lines cannot be checked.
        let public_only = VerifyKeys {
            legacy: None,
            public: keys.public.clone(),
        };
        let broken = verify_lines(&public_only, &lines).broken.expect("broken");
        assert!(broken.reason.contains("master key"), "{}", broken.reason);
        // Under another master key, the HMAC does not hold.
        let other = VerifyKeys::from_master(&MasterKey::generate());
        assert!(verify_lines(&other, &lines).broken.is_some());
    }
}
