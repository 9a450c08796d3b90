//! Fuzz bodies (issue 9): one function per target, each taking arbitrary
//! bytes and panicking only on a broken invariant. `fuzz/` runs them under
//! cargo-fuzz (libFuzzer); the tests below run them on seeded random and
//! mutated inputs in the normal test run, so they always compile and run.
//! Not part of the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use twilio_broker_api::v1 as pb;

use crate::master_key::MasterKey;
use crate::mint::{Minter, SigningKey};
use crate::store::{record, seal};
use crate::webhook::{self, WebhookRequest};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// The secret value a PutCredentialRequest carries, if any.
fn secret_of(request: &mut pb::PutCredentialRequest) -> Option<&mut String> {
    use pb::put_credential_request::Credential as Pb;
    match request.credential.as_mut()? {
        Pb::ApiKey(k) => Some(&mut k.secret),
        Pb::AuthToken(a) => Some(&mut a.auth_token),
        Pb::OauthClient(o) => Some(&mut o.client_secret),
        Pb::Test(t) => Some(&mut t.auth_token),
    }
}

/// PutCredential conversion over any prost-decodable bytes: never panics,
/// errors never quote a secret, and an accepted credential survives the
/// record encoding.
pub fn put_credential(data: &[u8]) {
    let Ok(request) = pb::PutCredentialRequest::decode(data) else {
        return;
    };
    let mut other = request.clone();
    let secret = secret_of(&mut other).map(|value| {
        // The same request with another secret of the same length: an error
        // that quotes the secret differs between the two.
        let original = value.clone();
        *value = "\u{1}".repeat(original.len());
        original
    });
    let name = request.name.clone();
    match crate::grpc::convert::credential_from_put(request, now()) {
        Ok(credential) => {
            let encoded = record::encode(&credential);
            let decoded = record::decode(&encoded).expect("an accepted credential round-trips");
            assert_eq!(decoded.name, name);
            assert_eq!(decoded.secret.kind(), credential.secret.kind());
        }
        Err(err) => {
            let message = err.to_string();
            if let Some(secret) = secret.filter(|s| !s.is_empty() && message.contains(s.as_str())) {
                let twin = crate::grpc::convert::credential_from_put(other, now())
                    .err()
                    .map(|e| e.to_string());
                assert_eq!(
                    twin.as_deref(),
                    Some(message.as_str()),
                    "the error quotes the secret {secret:?}"
                );
            }
        }
    }
}

/// MintAccessToken claim building over any prost-decodable bytes: never
/// panics; a minted token is three base64url parts whose payload is JSON
/// with the request's identity and an `exp` after `nbf`.
pub fn mint_claims(data: &[u8]) {
    use base64::Engine as _;
    let Ok(request) = pb::MintAccessTokenRequest::decode(data) else {
        return;
    };
    let Ok((_, request)) = crate::grpc::mint::token_request(request) else {
        return;
    };
    let Ok(checked) = request.check() else {
        return;
    };
    let secret = crate::credential::SealedSecret::from("fuzz-secret-0123456789abcdef0123");
    let key = SigningKey {
        account_sid: "AC00000000000000000000000000000000",
        key_sid: "SK00000000000000000000000000000000",
        secret: &secret,
    };
    let Ok(minted) = Minter::sdk_compatible().mint_at(key, checked, 1_700_000_000) else {
        return;
    };
    let parts: Vec<&str> = minted.token.split('.').collect();
    assert_eq!(parts.len(), 3, "{}", minted.token);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("payload is base64url");
    let claims: serde_json::Value = serde_json::from_slice(&payload).expect("payload is JSON");
    assert_eq!(claims["grants"]["identity"], request.identity.as_str());
    assert_eq!(claims["exp"].as_i64(), Some(minted.expires_at));
    assert!(
        claims["nbf"]
            .as_i64()
            .is_none_or(|nbf| nbf < minted.expires_at)
    );
}

/// ValidateWebhook over any prost-decodable bytes: never panics, and a
/// random signature never validates.
pub fn webhook(data: &[u8]) {
    let Ok(request) = pb::ValidateWebhookRequest::decode(data) else {
        return;
    };
    let key = crate::credential::SealedSecret::from("fuzz-auth-token-0123456789abcdef");
    let verdict = webhook::validate(
        &key,
        WebhookRequest {
            url: request.url,
            params: request
                .params
                .into_iter()
                .map(|p| (p.name, p.value))
                .collect(),
            body: request.body,
            signature: request.signature,
            signature_settings: request.signature_settings,
        },
    );
    if let Ok(verdict) = verdict {
        assert!(!verdict.valid, "a fuzzed signature validated");
    }
}

const PLAINTEXT: &[u8] = b"{\"v\":1}";

/// Record unsealing and decoding: arbitrary bytes never open (only a
/// genuine record does); a sealed
/// record modified as the input says never opens; decoding arbitrary
/// plaintext never panics.
pub fn unseal(data: &[u8]) {
    let key = MasterKey::from_bytes([42u8; 32]);
    // libFuzzer can copy a genuine record it saw sealed below (through its
    // comparison tracing); only such a record may open.
    if let Ok(plain) = seal::open(&key, "creds/x", data) {
        assert_eq!(plain.as_slice(), PLAINTEXT, "a forged record opened");
    }
    let _ = record::decode(data);
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let sealed = seal::seal(&key, "creds/x", PLAINTEXT);
    let mut modified = sealed.clone();
    match first % 3 {
        0 => {
            for pair in rest.chunks(2) {
                let at = usize::from(pair[0]) % modified.len();
                modified[at] ^= pair.get(1).copied().unwrap_or(1).max(1);
            }
        }
        1 => modified.truncate(usize::from(rest.first().copied().unwrap_or(0)) % sealed.len()),
        _ => modified.extend_from_slice(rest),
    }
    if modified != sealed {
        assert!(seal::open(&key, "creds/x", &modified).is_err());
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    /// Seeds the mutator with valid messages so prost gets past the first byte.
    fn seeds() -> Vec<Vec<u8>> {
        let put = pb::PutCredentialRequest {
            manager: String::new(),
            name: "prod-key".into(),
            labels: [("team".to_owned(), "web".to_owned())].into(),
            credential: Some(pb::put_credential_request::Credential::ApiKey(
                pb::ApiKeyCredential {
                    account_sid: "AC0123456789abcdef0123456789abcdef".into(),
                    key_sid: "SK0123456789abcdef0123456789abcdef".into(),
                    secret: "0123456789abcdef0123456789abcdef".into(),
                    key_type: 1,
                },
            )),
        };
        let mint = pb::MintAccessTokenRequest {
            credential: "prod-key".into(),
            identity: "alice".into(),
            ttl_seconds: 600,
            video: Some(pb::VideoGrant {
                room: "standup".into(),
            }),
            playback_json: "{\"grant\":\"x\"}".into(),
            ..Default::default()
        };
        let hook = pb::ValidateWebhookRequest {
            credential: "auth".into(),
            url: "https://example.com:443/hook?bodySHA256=abc".into(),
            params: vec![pb::FormParam {
                name: "CallSid".into(),
                value: "CA1".into(),
            }],
            body: "{}".into(),
            signature: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            signature_settings: "HMAC_SHA256".into(),
        };
        vec![
            put.encode_to_vec(),
            mint.encode_to_vec(),
            hook.encode_to_vec(),
        ]
    }

    /// Random bytes, and seeds with random bytes flipped, cut or inserted.
    fn inputs(seed: u64, count: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let seeds = seeds();
        (0..count).map(move |i| {
            if i % 2 == 0 {
                let len = rng.random_range(0..256);
                (0..len).map(|_| rng.random()).collect()
            } else {
                let mut input = seeds[rng.random_range(0..seeds.len())].clone();
                for _ in 0..rng.random_range(1..6) {
                    let at = rng.random_range(0..=input.len());
                    match rng.random_range(0..3) {
                        0 if at < input.len() => input[at] = rng.random(),
                        1 => input.truncate(at),
                        _ => input.insert(at, rng.random()),
                    }
                }
                input
            }
        })
    }

    const COUNT: usize = 20_000;

    #[test]
    fn put_credential_survives_random_input() {
        inputs(1, COUNT).for_each(|i| put_credential(&i));
    }

    #[test]
    fn mint_claims_survive_random_input() {
        inputs(2, COUNT).for_each(|i| mint_claims(&i));
    }

    #[test]
    fn webhook_survives_random_input() {
        inputs(3, COUNT).for_each(|i| webhook(&i));
    }

    #[test]
    fn unseal_survives_random_input() {
        inputs(4, COUNT).for_each(|i| unseal(&i));
    }
}
