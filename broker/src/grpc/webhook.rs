//! ValidateWebhook at the edge: which credential's secret keys the HMAC, and
//! the proto request to the domain one.
//!
//! `auth_token` and `test` credentials hold the key (the Auth Token, and an
//! `auth_token` credential's secondary Auth Token while it has one: either
//! validates, and `matched` says which; or a
//! webhook SharedKey secret stored as an `auth_token` credential for
//! HMAC-SHA256 mode, as twilio-python's `RequestValidator(secret)` uses one
//! secret for either algorithm). Other kinds are FAILED_PRECONDITION.
//!
//! Order of checks: INVALID_ARGUMENT (the request alone), then NOT_FOUND,
//! then FAILED_PRECONDITION; a wrong signature is `valid: false`, not an error.

use twilio_broker_api::v1 as pb;

use super::Services;
use crate::credential::Secret;
use crate::error::{Error, Result};
use crate::webhook::{self, WebhookRequest};

/// Serves one ValidateWebhook call.
pub fn validate_webhook(
    state: &Services,
    mut request: pb::ValidateWebhookRequest,
) -> Result<pb::ValidateWebhookResponse> {
    if request.credential.is_empty() {
        return Err(Error::invalid(
            "credential",
            "is required: the name of a stored auth_token or test credential",
        ));
    }
    let name = std::mem::take(&mut request.credential);
    let prepared = webhook::prepare(WebhookRequest {
        url: request.url,
        params: request
            .params
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect(),
        body: request.body,
        signature: request.signature,
        signature_settings: request.signature_settings,
    })?;
    let credential = state.vault.lookup(&name)?;
    let (key, secondary) = match &credential.secret {
        Secret::AuthToken {
            auth_token,
            secondary_auth_token,
            ..
        } => (auth_token, secondary_auth_token.as_ref()),
        Secret::Test { auth_token, .. } => (auth_token, None),
        other => {
            return Err(Error::WrongCredentialKind {
                credential: credential.name.clone(),
                kind: other.kind().as_str(),
                rpc: "ValidateWebhook",
                needed: "an auth_token or test credential",
                advice: "Twilio signs webhooks with the account's Auth Token (or a webhook \
                         SharedKey secret): store it as an auth_token (or test) credential and \
                         validate with that",
            });
        }
    };
    let (verdict, matched) = prepared.verify_either(key, secondary);
    let matched = match matched {
        None => pb::WebhookSecret::Unspecified,
        Some(webhook::Matched::Primary) => pb::WebhookSecret::Primary,
        Some(webhook::Matched::Secondary) => pb::WebhookSecret::Secondary,
    };
    Ok(pb::ValidateWebhookResponse {
        valid: verdict.valid,
        reason: verdict.reason,
        matched: matched.into(),
    })
}
