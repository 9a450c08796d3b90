//! Twilio webhook signature validation (`X-Twilio-Signature`), exactly as
//! Twilio's helper libraries do it (WIRE.md section 3):
//!
//! 1. the full URL as requested, then for a form POST each parameter's name
//!    and value appended, sorted by name then value, duplicates dropped;
//! 2. HMAC-SHA1 keyed with the Auth Token (or HMAC-SHA256 keyed with a
//!    webhook SharedKey secret when the `X-Twilio-Webhooks-Signature-Settings`
//!    header says `algorithm=HMAC_SHA256`), standard base64;
//! 3. good if it matches the URL without its port or with its default port
//!    ([`url`]); compared in constant time, both forms always computed;
//! 4. JSON webhooks carry `bodySHA256=<hex SHA-256 of the body>` in the URL:
//!    the URL alone is signed and the body's hash must match too.
//!
//! A wrong signature is a [`Verdict`] with a reason; only a request that
//! cannot be checked at all (no URL, no signature, a body without
//! `bodySHA256`...) is an error.

pub mod url;

use crate::credential::SealedSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::{Error, Result};
use url::SplitUrl;

/// The signature algorithms Twilio uses for webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// The classic Auth Token signature (28 base64 characters).
    HmacSha1,
    /// The SharedKey signature (44 base64 characters).
    HmacSha256,
}

impl Algorithm {
    /// Twilio's name for it, as in the settings header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "HMAC_SHA1",
            Algorithm::HmacSha256 => "HMAC_SHA256",
        }
    }

    fn signature_len(self) -> usize {
        match self {
            Algorithm::HmacSha1 => 28,
            Algorithm::HmacSha256 => 44,
        }
    }

    /// The algorithm named by an `X-Twilio-Webhooks-Signature-Settings`
    /// header (`key=...,algorithm=HMAC_SHA256`), parsed as twilio-python
    /// 9.13 does: the first non-empty `algorithm=` wins, case-insensitive;
    /// none (or an empty header) means HMAC_SHA1. `Err` holds an unknown name.
    pub fn from_settings(header: &str) -> Result<Self, UnknownAlgorithm> {
        let named = header.split(',').find_map(|part| {
            let (name, value) = part.split_once('=')?;
            (name.trim() == "algorithm" && !value.trim().is_empty()).then(|| value.trim())
        });
        match named {
            None => Ok(Algorithm::HmacSha1),
            Some(name) if name.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Algorithm::HmacSha1),
            Some(name) if name.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Algorithm::HmacSha256),
            Some(name) => Err(UnknownAlgorithm {
                name: name.chars().take(32).collect(),
            }),
        }
    }
}

/// A webhook request as received.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    /// The full URL Twilio requested, query string included.
    pub url: String,
    /// Decoded form parameters, repeated names as separate entries.
    pub params: Vec<(String, String)>,
    /// The raw body of a JSON webhook (URL with `bodySHA256`); else empty.
    pub body: String,
    /// The `X-Twilio-Signature` header.
    pub signature: String,
    /// The `X-Twilio-Webhooks-Signature-Settings` header, or empty.
    pub signature_settings: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True when the request is Twilio's.
    pub valid: bool,
    /// Why not, when it is not; empty when valid.
    pub reason: String,
}

/// Which of an `auth_token` credential's two tokens a valid signature was
/// made with (issue 18: while a secondary exists, Twilio may sign with either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// The primary Auth Token (or the only secret of the credential).
    Primary,
    /// The secondary Auth Token.
    Secondary,
}

impl Verdict {
    fn invalid(reason: impl Into<String>) -> Self {
        Verdict {
            valid: false,
            reason: reason.into(),
        }
    }
}

/// The string Twilio signs: `url` followed by `name+value` for every
/// parameter, sorted by name then value (code point order), duplicates once.
pub fn string_to_sign(url: &str, params: &mut [(String, String)]) -> String {
    params.sort_unstable();
    let mut out = String::with_capacity(
        url.len() + params.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>(),
    );
    out.push_str(url);
    let mut previous: Option<&(String, String)> = None;
    for param in params.iter() {
        if previous != Some(param) {
            out.push_str(&param.0);
            out.push_str(&param.1);
        }
        previous = Some(param);
    }
    out
}

/// The base64 signature of `url` + `suffix` (the sorted parameters).
pub fn signature(key: &SealedSecret, algorithm: Algorithm, url: &str, suffix: &str) -> String {
    let key = key.open();
    let key = key.as_bytes();
    let digest = match algorithm {
        Algorithm::HmacSha1 => mac::<Hmac<Sha1>>(key, url, suffix),
        Algorithm::HmacSha256 => mac::<Hmac<Sha256>>(key, url, suffix),
    };
    STANDARD.encode(digest)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], url: &str, suffix: &str) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    mac.update(suffix.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A request that is well formed enough to check: the URL forms, the
/// parameter string and the algorithm are fixed, no key needed yet.
#[derive(Debug, Clone)]
pub struct Prepared {
    without_port: String,
    with_port: String,
    suffix: String,
    body_hash: Option<(String, String)>,
    signature: String,
    algorithm: Result<Algorithm, UnknownAlgorithm>,
}

/// A signature-settings header names an algorithm the broker does not know.
/// Not an error of the request: the verdict is `valid: false` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the signature settings name algorithm {name:?}, which the broker does not know \
     (HMAC_SHA1 and HMAC_SHA256 are supported)"
)]
pub struct UnknownAlgorithm {
    /// The name as sent, cut to 32 characters.
    pub name: String,
}

/// Checks a request's shape (INVALID_ARGUMENT naming the field) and prepares
/// what the HMAC covers.
pub fn prepare(mut request: WebhookRequest) -> Result<Prepared> {
    let split = SplitUrl::parse(&request.url).map_err(|reason| Error::invalid("url", reason))?;
    if request.signature.is_empty() {
        return Err(Error::invalid(
            "signature",
            "is required: the X-Twilio-Signature header (a request without it did not come from Twilio)",
        ));
    }
    let body_sha256 = split.body_sha256();
    match body_sha256 {
        Some(_) if !request.params.is_empty() => {
            return Err(Error::invalid(
                "params",
                "must be empty when the URL carries bodySHA256: that webhook has a JSON body, \
                 pass it raw in body",
            ));
        }
        None if !request.body.is_empty() => {
            return Err(Error::invalid(
                "body",
                "is only checked for JSON webhooks, whose URL carries bodySHA256; for a form POST \
                 pass the decoded parameters in params",
            ));
        }
        _ => {}
    }
    Ok(Prepared {
        without_port: split.without_port(),
        with_port: split.with_port(),
        suffix: string_to_sign("", &mut request.params),
        body_hash: body_sha256.map(|expected| {
            (
                expected.to_owned(),
                hex(&Sha256::digest(request.body.as_bytes())),
            )
        }),
        algorithm: Algorithm::from_settings(&request.signature_settings),
        signature: request.signature,
    })
}

impl Prepared {
    /// The verdict with `key` (the Auth Token, or the SharedKey secret in
    /// HMAC-SHA256 mode). Both URL forms are always computed and compared in
    /// constant time.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn verify(&self, key: &SealedSecret) -> Verdict {
        self.check(key).0
    }

    /// The verdict with a credential's primary key and, while it has one,
    /// its secondary Auth Token: valid if either matches, saying which. Both
    /// are always computed when both exist. When neither is valid, the
    /// reason comes from the one whose signature matched (a body-hash
    /// failure), else from the primary.
    pub fn verify_either(
        &self,
        primary: &SealedSecret,
        secondary: Option<&SealedSecret>,
    ) -> (Verdict, Option<Matched>) {
        let (first, first_signed) = self.check(primary);
        let Some(secondary) = secondary else {
            let matched = first.valid.then_some(Matched::Primary);
            return (first, matched);
        };
        let (second, second_signed) = self.check(secondary);
        match (first.valid, second.valid) {
            (true, _) => (first, Some(Matched::Primary)),
            (false, true) => (second, Some(Matched::Secondary)),
            (false, false) if second_signed && !first_signed => (second, None),
            (false, false) => (first, None),
        }
    }

    /// The verdict with `key`, and whether the signature itself matched.
    fn check(&self, key: &SealedSecret) -> (Verdict, bool) {
        let algorithm = match &self.algorithm {
            Ok(algorithm) => *algorithm,
            Err(unknown) => return (Verdict::invalid(unknown.to_string()), false),
        };
        let given = self.signature.as_bytes();
        let without = signature(key, algorithm, &self.without_port, &self.suffix);
        let with = signature(key, algorithm, &self.with_port, &self.suffix);
        let signature_ok = given.ct_eq(without.as_bytes()) | given.ct_eq(with.as_bytes());
        if !bool::from(signature_ok) {
            let verdict = Verdict::invalid(mismatch_reason(
                algorithm,
                given.len(),
                self.body_hash.is_some(),
            ));
            return (verdict, false);
        }
        if let Some((expected, actual)) = &self.body_hash
            && !bool::from(actual.as_bytes().ct_eq(expected.as_bytes()))
        {
            let verdict = Verdict::invalid(
                "the signature matches the URL but the body's SHA-256 differs from its bodySHA256: \
                 the body was changed, or is not the raw body as received",
            );
            return (verdict, true);
        }
        let verdict = Verdict {
            valid: true,
            reason: String::new(),
        };
        (verdict, true)
    }
}

/// Checks a webhook request against `key`: [`prepare`] then
/// [`Prepared::verify`] (the shorthand of the tests and the fuzz bodies; the
/// daemon prepares once and verifies against the looked-up key).
#[cfg(any(test, feature = "fuzzing"))]
pub fn validate(key: &SealedSecret, request: WebhookRequest) -> Result<Verdict> {
    Ok(prepare(request)?.verify(key))
}

fn mismatch_reason(algorithm: Algorithm, given_len: usize, json: bool) -> String {
    let signed = if json {
        "the URL (with and without its port)"
    } else {
        "the URL (with and without its port) followed by the sorted form parameters"
    };
    let mut reason = format!(
        "the signature does not match: {} of {signed}, keyed with the credential's secret",
        algorithm.name()
    );
    let hint = match (algorithm, given_len) {
        (Algorithm::HmacSha1, 44) => Some(
            "; it has the length of an HMAC-SHA256 signature: pass the \
             X-Twilio-Webhooks-Signature-Settings header in signature_settings",
        ),
        (Algorithm::HmacSha256, 28) => Some(
            "; it has the length of an HMAC-SHA1 signature: was the settings header \
             sent by Twilio for this request?",
        ),
        (_, n) if n != algorithm.signature_len() => {
            Some("; it is not the length of a base64 HMAC, so it was cut or altered on the way")
        }
        _ => None,
    };
    if let Some(hint) = hint {
        reason.push_str(hint);
    }
    reason
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests;
