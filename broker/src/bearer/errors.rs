//! GetBearer's errors in words an operator can act on. Built from names,
//! SIDs, status codes and Twilio's (scrubbed) error text: never a secret or
//! a token.

use std::time::Duration;

use super::upstream::Failure;
use crate::credential::{Credential, Secret};
use crate::error::Error;

/// The credential is not an OAuth client: say what GetBearer needs and what
/// the stored kind is for instead.
pub fn wrong_kind(credential: &Credential) -> Error {
    let name = &credential.name;
    let instead = match &credential.secret {
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
    Error::FailedPrecondition(format!(
        "credential {name:?} is a{} {} credential, but GetBearer needs an oauth_client \
         credential (an OAuth app's client id OQ... and client secret; store one with \
         `twilio-broker credential add NAME --oauth-client --account-sid AC... --client-id OQ... \
         --secret-stdin`). {instead}",
        if credential.secret.kind().as_str().starts_with('a') {
            "n"
        } else {
            ""
        },
        credential.secret.kind().as_str(),
    ))
}

/// A caller asked for a token that must outlive what Twilio issues.
pub fn min_ttl_unmet(name: &str, min_ttl: Duration, lifetime: Duration) -> Error {
    Error::invalid(
        "min_ttl_seconds",
        format!(
            "is {} s, but Twilio issues tokens for credential {name:?} that live {} s (less a \
             safety margin); ask for less",
            min_ttl.as_secs(),
            lifetime.as_secs()
        ),
    )
}

/// A failed token request, as the caller sees it. `retry_in` is how long
/// the broker waits before asking Twilio again.
pub fn from_failure(
    credential: &Credential,
    failure: &Failure,
    retry_in: Option<Duration>,
) -> Error {
    let name = &credential.name;
    let client_id = match &credential.secret {
        Secret::OAuthClient { client_id, .. } => client_id.as_str(),
        _ => "",
    };
    let retry = match retry_in {
        Some(wait) if !wait.is_zero() => format!("about {} s", wait.as_secs().max(1)),
        _ => "a moment".to_owned(),
    };
    match failure {
        Failure::Rejected {
            status,
            code,
            message,
            more_info,
        } => {
            let mut twilio = format!("HTTP {status}");
            if let Some(code) = code {
                twilio.push_str(&format!(", Twilio error {code}"));
            }
            if !message.is_empty() {
                twilio.push_str(&format!(": {message}"));
            }
            if let Some(link) = more_info {
                twilio.push_str(&format!(" ({link})"));
            }
            Error::FailedPrecondition(format!(
                "Twilio rejected the OAuth client of credential {name:?} (client id {client_id}): \
                 {twilio}. Check that the OAuth app still exists and its client secret is \
                 current, then store the right secret with `twilio-broker credential add`; the \
                 broker asks Twilio again in {retry} or as soon as the credential is replaced"
            ))
        }
        Failure::Unavailable(reason) => Error::Unavailable(format!(
            "no bearer token for credential {name:?}: Twilio's token endpoint {reason}; the \
             broker retries in {retry}"
        )),
    }
}
