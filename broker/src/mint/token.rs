//! An Access Token's header and claims as twilio-python 9.13 serialises them,
//! signed HS256 with jsonwebtoken's crypto.
//!
//! jsonwebtoken's `encode` writes its own header order (`typ,alg,cty`) and has
//! no `twr`; twilio-python's (PyJWT, `sort_headers=True`) is `alg,cty,[twr,]typ`.
//! So the signing input is built here and only the HMAC comes from
//! `jsonwebtoken::crypto::sign`. Byte profile (WIRE.md 1.3, PY column):
//! header `{"alg":"HS256","cty":"twilio-fpa;v=1",["twr":R,]"typ":"JWT"}`,
//! payload `{"jti":..,"grants":{<grants>,"identity":..},"iss":..,"exp":..,"nbf":..,"sub":..}`,
//! ASCII-only JSON with `\uXXXX` escapes, no spaces.

use std::fmt::Write as _;

use crate::credential::SealedSecret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};

use super::grants::Grants;
use super::json;
use crate::error::{Error, Result};

/// Everything that goes into one token.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    /// `sub`: the Account SID.
    pub account_sid: &'a str,
    /// `iss`: the API key SID.
    pub key_sid: &'a str,
    /// `jti`.
    pub jti: &'a str,
    /// `grants.identity`, written last inside `grants`; omitted when `None`.
    pub identity: Option<&'a str>,
    /// The grants, in their fixed order.
    pub grants: &'a Grants,
    /// `exp`, Unix seconds.
    pub exp: i64,
    /// `nbf`, Unix seconds; omitted when `None` (as PY with `nbf=None`).
    pub nbf: Option<i64>,
    /// The `twr` header; omitted when `None`.
    pub region: Option<&'a str>,
}

impl Claims<'_> {
    /// Appends the header JSON.
    pub fn write_header(&self, out: &mut String) {
        out.push_str("{\"alg\":\"HS256\",\"cty\":\"twilio-fpa;v=1\",");
        if let Some(region) = self.region {
            out.push_str("\"twr\":");
            json::write_str(out, region);
            out.push(',');
        }
        out.push_str("\"typ\":\"JWT\"}");
    }

    /// Appends the payload JSON.
    pub fn write_payload(&self, out: &mut String) {
        out.push_str("{\"jti\":");
        json::write_str(out, self.jti);
        out.push_str(",\"grants\":{");
        let wrote = self.grants.write(out);
        if let Some(identity) = self.identity {
            if wrote {
                out.push(',');
            }
            out.push_str("\"identity\":");
            json::write_str(out, identity);
        }
        out.push_str("},\"iss\":");
        json::write_str(out, self.key_sid);
        // Writing to a String cannot fail.
        let _ = write!(out, ",\"exp\":{}", self.exp);
        if let Some(nbf) = self.nbf {
            let _ = write!(out, ",\"nbf\":{nbf}");
        }
        out.push_str(",\"sub\":");
        json::write_str(out, self.account_sid);
        out.push('}');
    }

    /// The signed compact JWS: `b64(header).b64(payload).b64(HS256)`.
    pub fn sign(&self, secret: &SealedSecret) -> Result<String> {
        let mut scratch = String::with_capacity(512);
        let mut token = String::with_capacity(768);
        self.write_header(&mut scratch);
        URL_SAFE_NO_PAD.encode_string(&scratch, &mut token);
        token.push('.');
        scratch.clear();
        self.write_payload(&mut scratch);
        URL_SAFE_NO_PAD.encode_string(&scratch, &mut token);
        let key = EncodingKey::from_secret(secret.open().as_bytes());
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &key, Algorithm::HS256)
            .map_err(|err| Error::Internal(anyhow::anyhow!("HS256 signing failed: {err}")))?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}
