//! A bearer token as the cache keeps it (the secret text, its expiry and
//! refresh point) and what GetBearer hands out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret as _, SecretString};

use super::expiry;
use super::upstream::{Failure, TokenReply};
use crate::credential::Credential;

/// A cached bearer token.
pub struct Token {
    access_token: SecretString,
    /// When Twilio stops accepting it.
    pub expires_at: SystemTime,
    /// When a background refresh starts (about half its lifetime).
    pub refresh_at: SystemTime,
    /// How long it lived when received.
    pub lifetime: Duration,
    /// Within this of `expires_at` it is no longer handed out.
    pub margin: Duration,
}

impl Token {
    /// A token from a reply received at `now`; `unit` in [0, 1) jitters the
    /// refresh point.
    pub fn from_reply(reply: TokenReply, now: SystemTime, unit: f64) -> Result<Self, Failure> {
        let expires_at =
            expiry::expires_at(reply.access_token.expose_secret(), reply.expires_in, now).map_err(
                |err| {
                    Failure::Unavailable(match err {
                        expiry::ExpiryError::Unknown => {
                            "issued a token with neither an exp claim nor expires_in".into()
                        }
                        expiry::ExpiryError::AlreadyExpired => {
                            "issued a token that has already expired (check this host's clock)"
                                .into()
                        }
                    })
                },
            )?;
        let lifetime = expires_at.duration_since(now).unwrap_or_default();
        Ok(Token {
            access_token: reply.access_token,
            expires_at,
            refresh_at: now + expiry::refresh_after(lifetime, unit),
            lifetime,
            margin: expiry::serving_margin(lifetime),
        })
    }

    /// The token text. Treat it as a secret.
    pub fn expose(&self) -> &str {
        self.access_token.expose_secret()
    }

    /// True when it is still good for at least `min_ttl` (and the margin).
    pub fn lasts(&self, now: SystemTime, min_ttl: Duration) -> bool {
        self.expires_at
            .duration_since(now)
            .is_ok_and(|left| left > self.margin && left >= min_ttl)
    }
}

/// What GetBearer hands out: the token and the credential it came from.
pub struct Bearer {
    /// The token.
    pub token: Arc<Token>,
    /// The credential (for the Account SID).
    pub credential: Arc<Credential>,
}
