//! The two Twilio-side steps of rotating an API key (issue 18), as pure
//! calls on [`TwilioApi`]: [`successor_key`] creates the new key of the same
//! type (a Restricted key with the same `Policy`), [`retire_key`] deletes the
//! old one once nothing minted with it is alive. Storing the successor,
//! waiting out the overlap, crash recovery and scheduling belong to the
//! caller (`rotation/`).
//!
//! Invariant: the successor is created before anything is deleted, so two
//! keys are live in between; [`retire_key`] treats "already gone" (404) as
//! done, so a retried retirement after a crash succeeds.

use crate::credential::{KeyType, Secret};

use super::client::{Manager, TwilioApi};
use super::error::ApiError;

fn api_key(secret: &Secret) -> Result<(&str, &str, KeyType), ApiError> {
    match secret {
        Secret::ApiKey {
            account_sid,
            key_sid,
            key_type,
            ..
        } => Ok((account_sid, key_sid, *key_type)),
        other => Err(ApiError::NotAllowed(format!(
            "only api_key credentials are rotated through Twilio's key APIs, not {}",
            other.kind().as_str()
        ))),
    }
}

fn same_account(manager: Manager<'_>, account_sid: &str) -> Result<(), ApiError> {
    if manager.account_sid() == account_sid {
        Ok(())
    } else {
        Err(ApiError::NotAllowed(format!(
            "the manager belongs to account {}, the key to {account_sid}: a manager can only \
             create and delete keys of its own account",
            manager.account_sid()
        )))
    }
}

/// Creates the key that replaces `current` (an `api_key` credential's
/// secret): same account and type, and for a Restricted key the same
/// `Policy`, read from Twilio. Main keys cannot be created through Twilio's
/// API (only in the Console), so they are refused.
pub async fn successor_key(
    api: &TwilioApi,
    manager: Manager<'_>,
    current: &Secret,
    friendly_name: &str,
) -> Result<Secret, ApiError> {
    let (account_sid, key_sid, key_type) = api_key(current)?;
    same_account(manager, account_sid)?;
    let created = match key_type {
        KeyType::Main => {
            return Err(ApiError::NotAllowed(
                "Main keys cannot be created through Twilio's API, only in the Console: create \
                 the new Main key there and store it with credential add"
                    .into(),
            ));
        }
        KeyType::Standard => api.create_standard_key(manager, friendly_name).await?,
        KeyType::Restricted => {
            let policy = api.key_policy(manager, key_sid).await?.ok_or_else(|| {
                ApiError::Unreachable(format!(
                    "returned no Policy for the restricted key {key_sid}, so its successor \
                     cannot get the same permissions"
                ))
            })?;
            api.create_restricted_key(manager, friendly_name, &policy)
                .await?
        }
    };
    Ok(Secret::ApiKey {
        account_sid: account_sid.to_owned(),
        key_sid: created.sid,
        secret: created.secret,
        key_type,
        lifecycle: Default::default(),
    })
}

/// Deletes the key `old` names at Twilio (v2010 for a Standard key, IAM v1
/// otherwise). A key that is already gone counts as deleted.
pub async fn retire_key(
    api: &TwilioApi,
    manager: Manager<'_>,
    old: &Secret,
) -> Result<(), ApiError> {
    let (account_sid, key_sid, key_type) = api_key(old)?;
    same_account(manager, account_sid)?;
    let deleted = match key_type {
        KeyType::Standard => api.delete_standard_key(manager, key_sid).await,
        KeyType::Main | KeyType::Restricted => api.delete_key(manager, key_sid).await,
    };
    match deleted {
        Err(ApiError::Rejected { status: 404, .. }) | Ok(()) => Ok(()),
        Err(err) => Err(err),
    }
}
