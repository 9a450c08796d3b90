//! Rotating an `auth_token` credential through Twilio's secondary-token
//! API (issue 18). The Auth Token is its own manager: Twilio authenticates
//! these calls with the account's Auth Token.
//!
//! One rotation, each step's marker durable before its Twilio call:
//! 1. the record says `Creating`;
//! 2. Twilio creates a secondary Auth Token (authenticated by the primary);
//! 3. one write stores it as the credential's secondary, `Promoting` after
//!    the propagation delay (webhooks validate with either token from here);
//! 4. after the delay, Twilio promotes it (authenticated by the secondary
//!    itself, so a repeated promotion after a crash is recognised: 404 with
//!    a token that authenticates means "already promoted"); the old primary
//!    stops working at Twilio at once;
//! 5. one write makes the new token the primary and keeps the old one as
//!    the secondary, `Draining`, for webhooks signed before the promotion;
//!    RotateCredential returns here;
//! 6. after the overlap, one write forgets the old token (audited as a
//!    completion of the broker itself).
//!
//! **Invariants:** a rotation is never started without the caller's
//! acknowledgement that Twilio invalidates every API key of the account;
//! a secondary that exists at Twilio is either stored or being deleted
//! (`Creating` found at start-up deletes it); at no point does the record
//! lack the token Twilio signs webhooks with, so ValidateWebhook accepts
//! both tokens throughout.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{RETRY_FIRST, RETRY_MAX, RotateOptions, Rotated, Rotator, not_rotatable, stopped};
use crate::credential::{Credential, SealedSecret, Secret, TokenRotation};
use crate::error::{Error, Result};
use crate::twilio_api::{ApiError, Manager};

/// What one attempt at the next step did.
enum Step {
    /// The step is done; look at the record again.
    Advanced,
    /// Nothing is left to do.
    Finished,
    /// Try again after this delay (at least), Twilio's when it gave one.
    Retry(Option<Duration>),
}

impl Rotator {
    /// Rotates the `auth_token` credential `name`; returns once the new
    /// token is the primary at Twilio and in the broker.
    pub(super) async fn rotate_auth_token(
        self: &Arc<Self>,
        name: &str,
        options: RotateOptions,
    ) -> Result<Rotated> {
        if !options.api_keys_break_acknowledged {
            return Err(not_rotatable(
                name,
                "rotating an Auth Token makes Twilio invalidate every API key of its account, \
                 including the keys the broker holds; if that is what you want, ask again with \
                 --yes-i-know-api-keys-break (acknowledge_api_keys_break in the request)",
            ));
        }
        let overlap = options.overlap.unwrap_or(self.settings.token_overlap);
        let delay = options
            .propagation_delay
            .unwrap_or(self.settings.propagation_delay);
        let writes = self.writes.lock().await;
        let current = self.vault.lookup(name)?;
        let Secret::AuthToken {
            secondary_auth_token,
            rotation,
            ..
        } = &current.secret
        else {
            return Err(not_rotatable(
                name,
                "it is no longer an auth_token credential",
            ));
        };
        if let Some(step) = rotation {
            return Err(not_rotatable(
                name,
                &format!(
                    "an Auth Token rotation is already under way ({}); it finishes on its own",
                    describe(step)
                ),
            ));
        }
        if secondary_auth_token.is_some() {
            return Err(not_rotatable(
                name,
                "it holds a secondary Auth Token already: finish that rotation first (promote or \
                 delete the secondary in the Console, then store the credential again without \
                 it)",
            ));
        }

        // Step 1: the marker, durable before Twilio can create anything.
        self.vault
            .put(with_token(&current, None, Some(TokenRotation::Creating)))
            .await?;

        // Step 2: the secondary, at Twilio, authenticated by the primary.
        let created = match Manager::from_secret(&current.secret) {
            Ok(manager) => self.api.create_secondary_auth_token(manager).await,
            Err(err) => Err(err),
        };
        let secondary = match created {
            Ok(secondary) => secondary,
            Err(err) => {
                // Nothing was created: the marker goes, the token stays.
                if let Err(unstored) = self.vault.put(with_token(&current, None, None)).await {
                    tracing::warn!(credential = %name, error = %unstored, "could not clear the rotation marker; the next start clears it");
                }
                tracing::warn!(credential = %name, error = %err, "Auth Token rotation stopped: Twilio did not create the secondary; the Auth Token is unchanged");
                return Err(stopped(
                    name,
                    "creating the secondary Auth Token (the Auth Token is unchanged)",
                    err,
                ));
            }
        };

        // Step 3: store it; webhooks validate with either token from here.
        let promote_after = SystemTime::now() + delay;
        let promoting = with_token(
            &current,
            Some(Some(secondary.clone())),
            Some(TokenRotation::Promoting {
                promote_after,
                overlap,
            }),
        );
        if let Err(err) = self.vault.put(promoting).await {
            // Created but not stored: delete it again (the marker says so
            // to the next start if this fails too).
            match self.delete_secondary(&current).await {
                Ok(()) => {
                    if let Err(unstored) = self.vault.put(with_token(&current, None, None)).await {
                        tracing::warn!(credential = %name, error = %unstored, "could not clear the rotation marker; the next start clears it");
                    }
                    tracing::warn!(credential = %name, error = %err, "Auth Token rotation stopped: the secondary could not be stored and was deleted again at Twilio; the Auth Token is unchanged");
                }
                Err(twilio) => {
                    tracing::error!(credential = %name, error = %err, twilio = %twilio, "Auth Token rotation stopped: the secondary could not be stored, nor deleted at Twilio; the next start deletes it");
                }
            }
            return Err(err);
        }
        drop(writes);
        tracing::info!(credential = %name, propagation_delay_seconds = delay.as_secs(), "secondary Auth Token stored; promoting it after the propagation delay");

        // Step 4 and 5: the promotion and the switch, in a task of their
        // own, so a caller that gives up (or a dropped connection) does not
        // leave the rotation waiting for the next start.
        let this = Arc::clone(self);
        let owned = name.to_owned();
        let finishing = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let promoted = this.promote(&owned).await;
            match &promoted {
                // Draining from here; or a known state (both tokens stored)
                // retried with back-off.
                Ok(Some(_)) | Err(Error::RotationUnavailable { .. }) => {
                    this.spawn_token_driver(owned);
                }
                _ => {}
            }
            promoted
        });
        let promoted = finishing.await.map_err(|join| {
            Error::Internal(anyhow::anyhow!(
                "the Auth Token promotion task failed: {join}"
            ))
        })?;
        match promoted {
            Ok(Some(stored)) => {
                let drop_after = match &stored.secret {
                    Secret::AuthToken {
                        rotation: Some(TokenRotation::Draining { drop_after }),
                        ..
                    } => *drop_after,
                    _ => SystemTime::now(),
                };
                Ok(Rotated {
                    credential: stored,
                    previous_key_sid: String::new(),
                    delete_after: drop_after,
                })
            }
            Ok(None) => Err(not_rotatable(
                name,
                "it was replaced or deleted during its Auth Token rotation (the secondary was \
                 not promoted by the broker); check it with `credential show` and at Twilio",
            )),
            Err(err) => Err(err),
        }
    }

    /// Step 4 and 5 for `name` if it is `Promoting`: the promotion at Twilio
    /// (or the recognition that it happened), then the switch. `Ok(None)`
    /// when the record is not (or no longer) promoting.
    async fn promote(&self, name: &str) -> Result<Option<Arc<Credential>>> {
        let _writes = self.writes.lock().await;
        let Some(current) = self.vault.get(name) else {
            return Ok(None);
        };
        let Secret::AuthToken {
            account_sid,
            auth_token,
            secondary_auth_token,
            rotation: Some(TokenRotation::Promoting { overlap, .. }),
        } = &current.secret
        else {
            return Ok(None);
        };
        let Some(secondary) = secondary_auth_token else {
            // Replaced without its secondary: nothing left to promote.
            self.vault.put(with_token(&current, None, None)).await?;
            tracing::warn!(credential = %name, "the Auth Token rotation lost its secondary (the credential was stored again); it is cleared");
            return Ok(None);
        };
        // Authenticated by the secondary: it works before the promotion and
        // after it (as the primary), so a repeat is recognised.
        let as_secondary = Secret::AuthToken {
            account_sid: account_sid.clone(),
            auth_token: secondary.clone(),
            secondary_auth_token: None,
            rotation: None,
        };
        let promoted = match Manager::from_secret(&as_secondary) {
            Ok(manager) => self.api.promote_secondary_auth_token(manager).await,
            Err(err) => Err(err),
        };
        let primary = match promoted {
            Ok(primary) => primary,
            // The secondary authenticates but none is left to promote: it
            // was promoted already (a crash between the call and the switch).
            Err(ApiError::Rejected { status: 404, .. }) => secondary.clone(),
            Err(ApiError::Rejected {
                status: 401 | 403, ..
            }) => {
                // The secondary no longer authenticates: deleted (or
                // replaced) outside the broker. Roll back to the primary.
                let rolled_back = with_token(&current, Some(None), None);
                self.vault.put(rolled_back).await?;
                tracing::error!(credential = %name, "Auth Token rotation rolled back: Twilio no longer accepts the secondary Auth Token (deleted or replaced outside the broker?); the Auth Token is unchanged");
                return Err(Error::RotationRefused {
                    credential: name.to_owned(),
                    step: "promoting the secondary Auth Token".into(),
                    http_status: 401,
                    twilio_code: Some(20003),
                    detail: "the secondary no longer authenticates (deleted or replaced outside \
                             the broker); the rotation is rolled back and the Auth Token is \
                             unchanged: rotate again"
                        .into(),
                });
            }
            Err(err) => {
                tracing::warn!(credential = %name, error = %err, "Twilio did not promote the secondary Auth Token; both tokens stay stored and valid for webhooks, and the promotion is retried");
                return Err(stopped(
                    name,
                    "promoting the secondary Auth Token (both tokens stay stored and valid for \
                     webhooks; the broker retries the promotion with back-off)",
                    err,
                ));
            }
        };
        if *primary.open() != *secondary.open() {
            tracing::warn!(credential = %name, "Twilio promoted a token other than the stored secondary; storing what Twilio says is the primary");
        }
        // Step 5: the switch: new primary, old one kept for webhooks.
        let drop_after = SystemTime::now() + *overlap;
        let mut switched = with_token(
            &current,
            Some(Some(auth_token.clone())),
            Some(TokenRotation::Draining { drop_after }),
        );
        switched.updated_at = SystemTime::now();
        if let Secret::AuthToken { auth_token, .. } = &mut switched.secret {
            *auth_token = primary;
        }
        let stored = self.vault.put(switched).await?;
        tracing::info!(credential = %name, overlap_seconds = overlap.as_secs(), "Auth Token rotated: the promoted token is the primary; the old one validates webhooks until the overlap ends");
        Ok(Some(stored))
    }

    /// Finishes the Auth Token rotation of `name` in the background: rolls
    /// back `Creating`, promotes when `Promoting` is due, forgets the old
    /// token when `Draining` is over; failures are retried with back-off.
    pub(super) fn spawn_token_driver(self: &Arc<Self>, name: String) {
        // A weak handle: a rotator that is dropped (the daemon stopping)
        // ends the task; the record lets the next start finish.
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut delay = RETRY_FIRST;
            loop {
                let Some(rotator) = this.upgrade() else {
                    return;
                };
                let wait = rotator.token_wait(&name);
                drop(rotator);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let Some(rotator) = this.upgrade() else {
                    return;
                };
                let step = rotator.token_step(&name).await;
                drop(rotator);
                match step {
                    Step::Finished => return,
                    Step::Advanced => delay = RETRY_FIRST,
                    Step::Retry(retry_after) => {
                        tokio::time::sleep(retry_after.unwrap_or(delay).max(delay)).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        });
    }

    /// How long until the next step of `name`'s Auth Token rotation is due.
    fn token_wait(&self, name: &str) -> Duration {
        let due = match self.vault.get(name).as_deref().map(|c| &c.secret) {
            Some(Secret::AuthToken {
                rotation: Some(TokenRotation::Promoting { promote_after, .. }),
                ..
            }) => *promote_after,
            Some(Secret::AuthToken {
                rotation: Some(TokenRotation::Draining { drop_after }),
                ..
            }) => *drop_after,
            _ => return Duration::ZERO,
        };
        due.duration_since(SystemTime::now()).unwrap_or_default()
    }

    /// One attempt at the due step of `name`'s Auth Token rotation.
    async fn token_step(&self, name: &str) -> Step {
        let Some(current) = self.vault.get(name) else {
            return Step::Finished;
        };
        let Secret::AuthToken {
            rotation: Some(step),
            ..
        } = &current.secret
        else {
            return Step::Finished;
        };
        match step {
            TokenRotation::Creating => self.roll_back_creation(name).await,
            TokenRotation::Promoting { .. } => match self.promote(name).await {
                Ok(Some(_)) => {
                    self.completed(
                        name,
                        "Auth Token rotation resumed: the secondary is promoted at Twilio and is \
                         the primary; the old token validates webhooks until the overlap ends"
                            .into(),
                        true,
                    );
                    Step::Advanced
                }
                Ok(None) => Step::Advanced,
                Err(Error::RotationUnavailable { retry_after, .. }) => Step::Retry(retry_after),
                Err(Error::RotationRefused { .. }) => {
                    self.completed(
                        name,
                        "Auth Token rotation rolled back: Twilio no longer accepts the secondary \
                         Auth Token; the Auth Token is unchanged"
                            .into(),
                        false,
                    );
                    Step::Advanced
                }
                Err(err) => {
                    tracing::warn!(credential = %name, error = %err, "the Auth Token rotation could not be recorded; retrying");
                    Step::Retry(None)
                }
            },
            TokenRotation::Draining { .. } => self.forget_old_token(name).await,
        }
    }

    /// A rotation that stopped while the secondary was being created: the
    /// secondary (if Twilio made one) is deleted, then the marker cleared.
    async fn roll_back_creation(&self, name: &str) -> Step {
        let _writes = self.writes.lock().await;
        let Some(current) = self.vault.get(name) else {
            return Step::Finished;
        };
        if !matches!(
            &current.secret,
            Secret::AuthToken {
                rotation: Some(TokenRotation::Creating),
                ..
            }
        ) {
            return Step::Advanced;
        }
        if let Err(err) = self.delete_secondary(&current).await {
            let retry_after = match &err {
                ApiError::RateLimited { retry_after, .. } => *retry_after,
                _ => None,
            };
            tracing::warn!(credential = %name, error = %err, "a stopped Auth Token rotation cannot be rolled back yet (deleting the secondary at Twilio failed); retrying");
            return Step::Retry(retry_after);
        }
        match self.vault.put(with_token(&current, Some(None), None)).await {
            Ok(_) => {
                tracing::warn!(credential = %name, "an Auth Token rotation that stopped while the secondary was created is rolled back: the secondary is deleted at Twilio and the Auth Token is unchanged");
                self.completed(
                    name,
                    "Auth Token rotation rolled back after a restart: the secondary is deleted \
                     at Twilio and the Auth Token is unchanged"
                        .into(),
                    true,
                );
                Step::Advanced
            }
            Err(err) => {
                tracing::warn!(credential = %name, error = %err, "could not clear the rotation marker; retrying");
                Step::Retry(None)
            }
        }
    }

    /// The end of the overlap: the old token is forgotten.
    async fn forget_old_token(&self, name: &str) -> Step {
        let _writes = self.writes.lock().await;
        let Some(current) = self.vault.get(name) else {
            return Step::Finished;
        };
        if !matches!(
            &current.secret,
            Secret::AuthToken {
                rotation: Some(TokenRotation::Draining { .. }),
                ..
            }
        ) {
            return Step::Advanced;
        }
        match self.vault.put(with_token(&current, Some(None), None)).await {
            Ok(_) => {
                tracing::info!(credential = %name, "Auth Token rotation finished: the old token is forgotten and no longer validates webhooks");
                self.completed(
                    name,
                    "Auth Token rotation finished: the old token is forgotten and no longer \
                     validates webhooks"
                        .into(),
                    true,
                );
                Step::Finished
            }
            Err(err) => {
                tracing::warn!(credential = %name, error = %err, "the old Auth Token could not be forgotten yet; retrying");
                Step::Retry(None)
            }
        }
    }

    /// Deletes the account's secondary Auth Token, authenticated by the
    /// primary of `credential`; none there counts as deleted.
    async fn delete_secondary(&self, credential: &Credential) -> std::result::Result<(), ApiError> {
        let manager = Manager::from_secret(&credential.secret)?;
        match self.api.delete_secondary_auth_token(manager).await {
            Ok(()) | Err(ApiError::Rejected { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// A copy of the `auth_token` credential with its rotation step set and,
/// when `secondary` is `Some`, its secondary replaced.
fn with_token(
    credential: &Credential,
    secondary: Option<Option<SealedSecret>>,
    step: Option<TokenRotation>,
) -> Credential {
    let mut copy = credential.clone();
    if let Secret::AuthToken {
        secondary_auth_token,
        rotation,
        ..
    } = &mut copy.secret
    {
        if let Some(secondary) = secondary {
            *secondary_auth_token = secondary;
        }
        *rotation = step;
    }
    copy
}

/// A rotation step in words, for messages.
pub(crate) fn describe(step: &TokenRotation) -> String {
    let at = |t: &SystemTime| humantime::format_rfc3339_seconds(*t).to_string();
    match step {
        TokenRotation::Creating => "creating the secondary Auth Token".into(),
        TokenRotation::Promoting { promote_after, .. } => {
            format!(
                "the secondary is stored and promoted at Twilio after {}",
                at(promote_after)
            )
        }
        TokenRotation::Draining { drop_after } => format!(
            "promoted; the old token validates webhooks until {}",
            at(drop_after)
        ),
    }
}
