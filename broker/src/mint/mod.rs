//! Twilio Access Tokens (JWT, HS256) for the client SDKs, minted with a
//! stored Main or Standard API key, byte for byte as twilio-python 9.13 would
//! (WIRE.md section 1), with Twilio's rules enforced before signing.
//!
//! Flow: [`TokenRequest::check`] (request-only rules, INVALID_ARGUMENT) gives a
//! [`Checked`] request; [`Minter::mint`] then checks the credential
//! (FAILED_PRECONDITION for anything but a Main/Standard API key), fixes the
//! times and the `jti`, and signs. No locks: the only shared state is one
//! atomic counter.
//!
//! **`jti` format.** The SDKs write `<key SID>-<unix seconds>`, so two tokens
//! minted in the same second share a `jti`. [`Minter::new`] appends a unique
//! suffix: `<key SID>-<unix seconds>-<16 lower-case hex digits>`, the digits
//! being a per-process counter started at a random 64-bit value (unique within
//! a process; across replicas a clash needs two random starts within the
//! number of tokens minted, about 2^-64 per token). [`Minter::sdk_compatible`]
//! writes the SDKs' form exactly; the tests use it to reproduce the vectors.

pub mod grants;
pub mod json;
mod token;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use grants::{ChatGrant, Grants, SyncGrant, TaskRouterGrant, VideoGrant, VoiceGrant};
pub use token::Claims;

use crate::credential::{Credential, KeyType, SealedSecret, Secret};
use crate::error::{Error, Result};

/// Lifetime used when the request gives 0, as in every SDK.
pub const DEFAULT_TTL_SECONDS: u32 = 3600;
/// Longest lifetime Twilio accepts (errors 20104 / 20157 above it).
pub const MAX_TTL_SECONDS: u32 = 86_400;
/// Longest accepted region name.
const MAX_REGION_LEN: usize = 32;
/// Longest accepted `identity`, in bytes.
pub const MAX_IDENTITY_LEN: usize = 256;

/// What the caller asks for; times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenRequest {
    /// `grants.identity`; required.
    pub identity: String,
    /// Lifetime in seconds from now: 0 means 3600, at most 86400.
    pub ttl_seconds: u32,
    /// `nbf`; `None` means now.
    pub not_before: Option<i64>,
    /// The `twr` header (e.g. `au1`); empty for none.
    pub region: String,
    /// At least one grant.
    pub grants: Grants,
}

/// A request that passed [`TokenRequest::check`].
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a>(&'a TokenRequest);

impl Checked<'_> {
    /// The token's `(nbf, exp)` if minted at Unix second `now`, or
    /// INVALID_ARGUMENT on `not_before` when the token would never be valid.
    /// Needs only the clock: the edge calls it before the credential lookup
    /// (through [`Checked::check_window`]), and [`Minter::mint_at`] again.
    pub fn window(&self, now: i64) -> Result<(i64, i64)> {
        let ttl = match self.0.ttl_seconds {
            0 => DEFAULT_TTL_SECONDS,
            ttl => ttl,
        };
        let exp = now + i64::from(ttl);
        let nbf = self.0.not_before.unwrap_or(now);
        if nbf >= exp {
            return Err(Error::invalid(
                "not_before",
                format!(
                    "is {} s after now but the token expires {ttl} s after now (ttl_seconds); \
                     it would never be valid. Raise ttl_seconds or move not_before earlier",
                    nbf - now
                ),
            ));
        }
        Ok((nbf, exp))
    }

    /// [`Checked::window`] at time `now`: the "never valid" rule, checked
    /// before any credential is looked up.
    pub fn check_window(&self, now: SystemTime) -> Result<()> {
        self.window(unix_seconds(now)?).map(drop)
    }
}

/// `now` in Unix seconds.
fn unix_seconds(now: SystemTime) -> Result<i64> {
    now.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the system clock is before 1970")))
}

impl TokenRequest {
    /// Twilio's rules that need no credential and no clock.
    pub fn check(&self) -> Result<Checked<'_>> {
        if self.identity.is_empty() {
            return Err(Error::invalid(
                "identity",
                "is required: the user or device the token is for (the client SDKs refuse tokens without one)",
            ));
        }
        if self.identity.len() > MAX_IDENTITY_LEN {
            return Err(Error::invalid(
                "identity",
                format!(
                    "is {} bytes long; the limit is {MAX_IDENTITY_LEN}",
                    self.identity.len()
                ),
            ));
        }
        if self.ttl_seconds > MAX_TTL_SECONDS {
            return Err(Error::invalid(
                "ttl_seconds",
                format!(
                    "is {}; Twilio accepts Access Tokens living at most {MAX_TTL_SECONDS} seconds (24 h). \
                     Ask for 1 to {MAX_TTL_SECONDS}, or 0 for the default {DEFAULT_TTL_SECONDS}",
                    self.ttl_seconds
                ),
            ));
        }
        if !self.region.is_empty() {
            let ok = self.region.len() <= MAX_REGION_LEN
                && self
                    .region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(Error::invalid(
                    "region",
                    "must be a Twilio region id such as au1, ie1 or us1 (lower-case letters, digits and -)",
                ));
            }
        }
        if self.grants.is_empty() {
            return Err(Error::invalid(
                "grants",
                "at least one grant is required: voice, video, chat, sync, task_router or playback",
            ));
        }
        self.grants.check()?;
        Ok(Checked(self))
    }
}

/// A signed token and what the caller needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct MintedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
    /// Its `jti`.
    pub jti: String,
}

/// The parts of an API key credential that sign tokens.
#[derive(Debug, Clone, Copy)]
pub struct SigningKey<'a> {
    /// `sub`.
    pub account_sid: &'a str,
    /// `iss`, and the `jti` prefix.
    pub key_sid: &'a str,
    /// The HMAC key.
    pub secret: &'a SealedSecret,
}

/// The signing key of a credential, or why it cannot sign Access Tokens.
pub fn signing_key(credential: &Credential) -> Result<SigningKey<'_>> {
    match &credential.secret {
        Secret::ApiKey {
            key_type: KeyType::Restricted,
            ..
        } => Err(Error::RestrictedKey {
            credential: credential.name.clone(),
        }),
        Secret::ApiKey {
            account_sid,
            key_sid,
            secret,
            key_type: KeyType::Main | KeyType::Standard,
            ..
        } => Ok(SigningKey {
            account_sid,
            key_sid,
            secret,
        }),
        other => Err(Error::WrongCredentialKind {
            credential: credential.name.clone(),
            kind: other.kind().as_str(),
            rpc: "MintAccessToken",
            needed: "a Main or Standard api_key credential",
            advice: "Access Tokens are signed with an API key (Twilio rejects tokens signed \
                     with an Auth Token, error 20003): store a Main or Standard api_key \
                     credential and mint with it",
        }),
    }
}

/// How the `jti` is made.
#[derive(Debug)]
enum Jti {
    /// `<SK>-<seconds>-<counter as 16 hex digits>`.
    Unique(AtomicU64),
    /// `<SK>-<seconds>`, as the SDKs write it.
    SdkSeconds,
}

/// Mints tokens. One per daemon; shared without locks.
#[derive(Debug)]
pub struct Minter {
    jti: Jti,
}

impl Default for Minter {
    fn default() -> Self {
        Self::new()
    }
}

impl Minter {
    /// The production minter: `jti` unique even within one second.
    pub fn new() -> Self {
        Minter {
            jti: Jti::Unique(AtomicU64::new(rand::random())),
        }
    }

    /// A minter whose `jti` is exactly the SDKs' `<key SID>-<seconds>`:
    /// with a fixed `now`, its tokens equal twilio-python's byte for byte.
    pub fn sdk_compatible() -> Self {
        Minter {
            jti: Jti::SdkSeconds,
        }
    }

    /// Signs a checked request with `credential` at time `now`.
    pub fn mint(
        &self,
        credential: &Credential,
        request: Checked<'_>,
        now: SystemTime,
    ) -> Result<MintedToken> {
        let key = signing_key(credential)?;
        self.mint_at(key, request, unix_seconds(now)?)
    }

    /// Signs a checked request with `key` at Unix second `now`.
    pub fn mint_at(
        &self,
        key: SigningKey<'_>,
        request: Checked<'_>,
        now: i64,
    ) -> Result<MintedToken> {
        let (nbf, exp) = request.window(now)?;
        let request = request.0;
        let mut jti = String::with_capacity(key.key_sid.len() + 32);
        jti.push_str(key.key_sid);
        // Writing to a String cannot fail.
        let _ = write!(jti, "-{now}");
        if let Jti::Unique(counter) = &self.jti {
            let _ = write!(jti, "-{:016x}", counter.fetch_add(1, Ordering::Relaxed));
        }
        let claims = Claims {
            account_sid: key.account_sid,
            key_sid: key.key_sid,
            jti: &jti,
            identity: Some(&request.identity),
            grants: &request.grants,
            exp,
            nbf: Some(nbf),
            region: (!request.region.is_empty()).then_some(request.region.as_str()),
        };
        let token = claims.sign(key.secret)?;
        Ok(MintedToken {
            token,
            expires_at: exp,
            jti,
        })
    }
}

#[cfg(test)]
mod tests;
