//! The stand-in's access tokens: real HS256 JWTs with an `exp`, signed with a
//! per-instance random key, so clients can decode them like Twilio's and
//! later endpoints can verify the bearer they are shown.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The claims of a stand-in access token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// Unique token id.
    pub jti: String,
    /// The OAuth client id (`OQ...`) the token was issued to.
    pub iss: String,
    /// The Account SID the token works for.
    pub sub: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds).
    pub exp: u64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Not three base64url parts with a JSON payload.
    Malformed,
    /// The signature does not match this stand-in's key.
    BadSignature,
    /// `exp` has passed.
    Expired,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs `claims` as a compact HS256 JWS.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Checks a token's signature and expiry; returns its claims.
pub fn verify(key: &[u8], token: &str) -> Result<Claims, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| VerifyError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| VerifyError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| VerifyError::Malformed)?;
    if claims.exp <= unix_now() {
        return Err(VerifyError::Expired);
    }
    Ok(claims)
}

/// Claims for a token issued now to `client_id` for `account_sid`, living
/// `ttl_seconds` counted from the next whole second (so a token never lives
/// less than asked, whatever the sub-second issue time).
pub fn claims_for(client_id: &str, account_sid: &str, ttl_seconds: u64) -> Claims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let iat = now.as_secs();
    let next_second = if now.subsec_nanos() > 0 { iat + 1 } else { iat };
    let mut id = [0u8; 12];
    rand::fill(&mut id);
    Claims {
        jti: format!("standin-{}", URL_SAFE_NO_PAD.encode(id)),
        iss: client_id.to_owned(),
        sub: account_sid.to_owned(),
        iat,
        exp: next_second + ttl_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampering_is_caught() {
        let key = b"0123456789abcdef0123456789abcdef";
        let claims = claims_for("OQ1", "AC1", 60);
        let token = sign(key, &claims);
        assert_eq!(verify(key, &token), Ok(claims));
        assert_eq!(
            verify(b"another key", &token),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(verify(key, "a.b"), Err(VerifyError::Malformed));
        let expired = sign(
            key,
            &Claims {
                exp: 1,
                ..claims_for("OQ1", "AC1", 60)
            },
        );
        assert_eq!(verify(key, &expired), Err(VerifyError::Expired));
    }
}
