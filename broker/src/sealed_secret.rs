//! Secrets kept sealed in memory until the moment of use.
//!
//! Every credential the broker serves is held in memory for the life of the
//! process, so a process with 100,000 credentials would otherwise keep
//! 100,000 secrets in clear on its heap, where a core dump, a swapped page or
//! a memory-disclosure bug could read them. A [`SealedSecret`] holds its value
//! encrypted (ChaCha20-Poly1305, random 96-bit nonces: a process seals far
//! fewer than the 2^32 secrets that allows) under a *memory key*: 32 random bytes drawn
//! once per process, never stored, and locked in RAM where the system allows
//! it. Only that one key needs locked memory, however many credentials are
//! loaded.
//!
//! **Invariant:** the plaintext exists only inside [`SealedSecret::open`]'s
//! zeroizing buffer, for as long as the caller holds it: the moment of use
//! (signing an Access Token, asking Twilio for a bearer token, checking a
//! webhook signature, writing a sealed record). Nothing else in the broker
//! holds a credential's secret.
//!
//! This is defence in depth against reading the broker's memory, not against
//! an attacker who can run code inside it: such an attacker can call `open`.

use std::fmt;
use std::sync::OnceLock;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::{Zeroize as _, Zeroizing};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The per-process key that seals secrets in memory.
struct MemoryKey {
    bytes: Box<Zeroizing<[u8; KEY_LEN]>>,
    _locked: Option<twilio_broker_system::Locked>,
}

fn memory_key() -> &'static MemoryKey {
    static KEY: OnceLock<MemoryKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = Box::new(Zeroizing::new([0u8; KEY_LEN]));
        rand::fill(&mut bytes[..]);
        let locked = match twilio_broker_system::lock_in_ram(bytes.as_slice()) {
            Ok(locked) => Some(locked),
            Err(err) => {
                tracing::debug!(%err, "cannot lock the memory key in RAM (RLIMIT_MEMLOCK?)");
                None
            }
        };
        MemoryKey {
            bytes,
            _locked: locked,
        }
    })
}

fn cipher() -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(memory_key().bytes.as_slice()))
}

/// A secret value (Auth Token, API key secret, OAuth client secret), sealed
/// under the process's memory key. Prints as `[sealed]`; clones share
/// nothing in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Nonce followed by ciphertext and tag.
    sealed: Box<[u8]>,
}

impl SealedSecret {
    /// Seals `plaintext`. The caller keeps (and should zeroize) its own copy;
    /// prefer [`SealedSecret::from`] with an owned `String`, which is zeroized.
    pub fn new(plaintext: &str) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        // Nonce, then the plaintext encrypted in place, then the tag: the
        // buffer holds the plaintext only until `encrypt_in_place` returns.
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        body.extend_from_slice(plaintext.as_bytes());
        // Encryption fails only for inputs beyond 256 GiB; secrets are capped
        // at `credential::MAX_SECRET_LEN`.
        if cipher()
            .encrypt_in_place(Nonce::from_slice(&nonce), b"", &mut *body)
            .is_ok()
        {
            sealed.extend_from_slice(&body);
        }
        SealedSecret {
            sealed: sealed.into_boxed_slice(),
        }
    }

    /// The plaintext, in a buffer zeroized when dropped. Hold it only for
    /// the moment of use.
    pub fn open(&self) -> Zeroizing<String> {
        let (nonce, body) = self.sealed.split_at(NONCE_LEN.min(self.sealed.len()));
        let mut buffer = Zeroizing::new(body.to_vec());
        if nonce.len() != NONCE_LEN
            || cipher()
                .decrypt_in_place(Nonce::from_slice(nonce), b"", &mut *buffer)
                .is_err()
        {
            // Sealed by this process and never exposed for writing: this
            // cannot fail unless memory was corrupted. An empty secret fails
            // at Twilio, never silently succeeds.
            tracing::error!("a secret sealed in memory did not open (memory corruption?)");
            return Zeroizing::new(String::new());
        }
        let bytes = std::mem::take(&mut *buffer);
        match String::from_utf8(bytes) {
            Ok(text) => Zeroizing::new(text),
            Err(err) => {
                // Only valid UTF-8 (a `&str`) is ever sealed.
                let mut bytes = err.into_bytes();
                bytes.zeroize();
                Zeroizing::new(String::new())
            }
        }
    }

    /// Runs `use_it` on the plaintext, then zeroizes it.
    pub fn with_plaintext<R>(&self, use_it: impl FnOnce(&str) -> R) -> R {
        let plaintext = self.open();
        use_it(&plaintext)
    }

    /// A peer's text (Twilio's error message) made safe to show: this
    /// secret replaced by `[REDACTED]`, control characters blanked, at most
    /// 200 characters.
    pub fn scrub(&self, text: &str) -> String {
        let secret = self.open();
        let text = if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret.as_str(), "[REDACTED]")
        };
        let mut out: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        if text.chars().count() > 200 {
            out.push('…');
        }
        out
    }

    /// The length of the plaintext in bytes.
    pub fn len(&self) -> usize {
        self.sealed.len().saturating_sub(NONCE_LEN + TAG_LEN)
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for SealedSecret {
    /// Seals `plaintext` and zeroizes the `String`.
    fn from(plaintext: String) -> Self {
        let plaintext = Zeroizing::new(plaintext);
        SealedSecret::new(&plaintext)
    }
}

impl From<&str> for SealedSecret {
    fn from(plaintext: &str) -> Self {
        SealedSecret::new(plaintext)
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[sealed]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn canary() -> String {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_sealed_form_never_holds_the_plaintext_and_opens_to_it() {
        let secret = canary();
        let sealed = SealedSecret::new(&secret);
        assert!(!contains(&sealed.sealed, secret.as_bytes()));
        assert_eq!(sealed.len(), secret.len());
        assert_eq!(&*sealed.open(), &secret);
        assert_eq!(sealed.with_plaintext(str::len), secret.len());
        // Clones open to the same value; two seals of one value differ.
        assert_eq!(&*sealed.clone().open(), &secret);
        assert_ne!(SealedSecret::new(&secret).sealed, sealed.sealed);
    }

    #[test]
    fn scrub_removes_the_secret_and_control_characters_and_caps_the_length() {
        let secret = canary();
        let sealed = SealedSecret::new(&secret);
        let scrubbed = sealed.scrub(&format!("bad client {secret}\nnext line"));
        assert_eq!(scrubbed, "bad client [REDACTED] next line");
        let long = sealed.scrub(&"x".repeat(500));
        assert_eq!(long.chars().count(), 201);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = canary();
        let sealed = SealedSecret::from(secret.clone());
        let printed = format!("{sealed:?} {:#?}", Some(&sealed));
        assert!(!printed.contains(&secret));
        assert!(printed.contains("[sealed]"));
    }

    #[test]
    fn a_damaged_seal_opens_to_nothing_rather_than_to_garbage() {
        let mut sealed = SealedSecret::new(&canary());
        sealed.sealed[NONCE_LEN] ^= 1;
        assert!(sealed.open().is_empty());
        let empty = SealedSecret::new("");
        assert!(empty.is_empty());
        assert_eq!(&*empty.open(), "");
    }
}
