//! Twilio's limits (the seed skill's "CANNOT" list, WIRE.md sections 4 and 5)
//! as a table: a stable id, one sentence, Twilio's error code and HTTP status
//! where breaking the limit has one, and when the limit applies to an answer.
//!
//! Ids are a public contract (pipelines match on them): add, never rename.

use super::Method;
use super::situation::Situation;
use crate::credential::KeyType;

/// One Twilio limit.
#[derive(Debug)]
pub struct Limit {
    /// Stable identifier, e.g. `standard-key-no-accounts-keys`.
    pub id: &'static str,
    /// The limit in one sentence, with what to do about it.
    pub text: &'static str,
    /// Twilio's error code when breaking the limit has one, else 0.
    pub twilio_error_code: u32,
    /// The HTTP status Twilio answers with when breaking it has one, else 0.
    pub http_status: u32,
    /// Whether the limit bears on this answer.
    pub applies: fn(&Situation) -> bool,
}

fn key(s: &Situation, key_type: KeyType) -> bool {
    s.key_type == Some(key_type)
}

/// Every limit, in the order answers list them.
pub const LIMITS: &[Limit] = &[
    Limit {
        id: "standard-key-no-accounts-keys",
        text: "Standard API keys cannot reach /Accounts or /Keys: Twilio answers 401 with \
               error 20003; only a Main key or the Auth Token can manage accounts and keys.",
        twilio_error_code: 20003,
        http_status: 401,
        applies: |s| {
            (key(s, KeyType::Standard) && s.method == Method::ApiKey)
                || (key(s, KeyType::Main) && s.facts.account_management)
        },
    },
    Limit {
        id: "main-key-console-only",
        text: "Main API keys can be created only in the Twilio Console; no API creates one.",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| key(s, KeyType::Main),
    },
    Limit {
        id: "restricted-key-iam-v1-only",
        text: "Restricted API keys can be created only in the Console or with the v1 IAM API \
               (POST https://iam.twilio.com/v1/Keys with KeyType=restricted); the v2010 Keys \
               API silently creates a Standard key instead.",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| key(s, KeyType::Restricted),
    },
    Limit {
        id: "restricted-key-policy-limits",
        text: "A Restricted key's policy holds at most 100 permissions, restricted keys exist \
               in the US1 region only, and a call outside the policy fails with 70051.",
        twilio_error_code: 70051,
        http_status: 0,
        applies: |s| key(s, KeyType::Restricted),
    },
    Limit {
        id: "restricted-key-cannot-mint",
        text: "Restricted API keys cannot sign Access Tokens: only Standard and Main keys can \
               (the broker's MintAccessToken refuses a restricted key).",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| s.method == Method::AccessToken || key(s, KeyType::Restricted),
    },
    Limit {
        id: "access-token-not-revocable",
        text: "Access Tokens cannot be revoked one by one: each stays valid until it expires \
               (at most 24 hours); only deleting the signing API key revokes them all.",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| s.method == Method::AccessToken,
    },
    Limit {
        id: "oauth2-client-credentials-only",
        text: "Twilio's OAuth2 supports only the client_credentials grant: no refresh tokens \
               and no authorization-code flow.",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| s.method == Method::OAuth2,
    },
    Limit {
        id: "oauth2-one-hour-tokens",
        text: "OAuth2 bearer tokens expire after 1 hour and an expired one gets 401 with error \
               20003; the application must fetch new ones (GetBearer refreshes ahead of expiry).",
        twilio_error_code: 20003,
        http_status: 401,
        applies: |s| s.method == Method::OAuth2,
    },
    Limit {
        id: "key-secret-shown-once",
        text: "An API key's secret is shown only once, when the key is created, and cannot be \
               retrieved afterwards: store it in the broker at once.",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| s.key_type.is_some(),
    },
    Limit {
        id: "auth-token-rotation-breaks-keys",
        text: "Rotating the Auth Token breaks every API key of the account, a one-way door: \
               use API keys from day one so a rotation never has to happen in a hurry.",
        twilio_error_code: 0,
        http_status: 0,
        applies: |s| s.method == Method::AuthToken,
    },
    Limit {
        id: "test-credentials-few-resources",
        text: "Test credentials work only with Messages, Calls, IncomingPhoneNumbers and \
               Lookups (PhoneNumbers); every other resource answers 403 Forbidden.",
        twilio_error_code: 0,
        http_status: 403,
        applies: |s| s.method == Method::TestCredentials || s.facts.needs.charge_free,
    },
];

/// The limits that bear on `situation`, in table order.
pub fn applying(situation: &Situation) -> Vec<&'static Limit> {
    LIMITS.iter().filter(|l| (l.applies)(situation)).collect()
}
