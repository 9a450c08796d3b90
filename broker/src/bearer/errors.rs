//! GetBearer's errors in words an operator can act on. Built from names,
//! SIDs, status codes and Twilio's (scrubbed) error text: never a secret or
//! a token.

use std::time::Duration;

use super::upstream::Failure;
use crate::credential::{Credential, Secret};
use crate::error::{Error, TwilioAnswer};

/// The credential is not an OAuth client: say what GetBearer needs and what
/// the stored kind is for instead.
pub fn wrong_kind(credential: &Credential) -> Error {
    let advice = match &credential.secret {
        Secret::ApiKey { .. } => {
            "An API key is used as it is (HTTP Basic auth with the key SID and secret, which the \
             broker does not hand out) or to sign Access Tokens with MintAccessToken"
        }
        Secret::AuthToken { .. } => {
            "An Auth Token is for local tests and for ValidateWebhook; production services should \
             use an OAuth client (GetBearer) or an API key"
        }
        Secret::Test { .. } => {
            "Test credentials are for charge-free tests with HTTP Basic auth against Twilio's \
             magic numbers; Twilio issues no bearer tokens for them"
        }
        Secret::OAuthClient { .. } => "",
    };
    Error::WrongCredentialKind {
        credential: credential.name.clone(),
        kind: credential.secret.kind().as_str(),
        rpc: "GetBearer",
        needed: "an oauth_client credential (an OAuth app's client id OQ... and client secret; \
                 store one with `twilio-broker credential add NAME --oauth-client --account-sid \
                 AC... --client-id OQ... --secret-stdin`)",
        advice,
    }
}

/// A caller asked for a token that must outlive what Twilio issues.
pub fn min_ttl_unmet(name: &str, min_ttl: Duration, lifetime: Duration) -> Error {
    Error::MinTtlUnreachable {
        credential: name.to_owned(),
        min_ttl,
        lifetime,
    }
}

/// A failed token request, as the caller sees it. `retry_in` is how long
/// the broker waits before asking Twilio again.
pub fn from_failure(
    credential: &Credential,
    failure: &Failure,
    retry_in: Option<Duration>,
) -> Error {
    let name = credential.name.clone();
    let retry_after = retry_in.filter(|wait| !wait.is_zero());
    match failure {
        Failure::Rejected {
            status,
            code,
            message,
            more_info,
        } => Error::TwilioRejected {
            credential: name,
            client_id: match &credential.secret {
                Secret::OAuthClient { client_id, .. } => client_id.clone(),
                _ => String::new(),
            },
            twilio: Box::new(TwilioAnswer {
                http_status: *status,
                code: *code,
                message: message.clone(),
                more_info: more_info.clone(),
            }),
            retry_after,
        },
        Failure::Unavailable(reason) => Error::TwilioUnreachable {
            credential: name,
            detail: reason.clone(),
            retry_after,
        },
    }
}
