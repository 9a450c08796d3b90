//! Rotating an `api_key` credential without downtime (issue 18): the
//! orchestration around the Twilio-side steps in `twilio_api::rotation`.
//!
//! One rotation is three writes and two Twilio calls:
//! 1. the record says `Creating` (with the new key's friendly name);
//! 2. Twilio creates the successor through the credential's manager;
//! 3. one write makes the successor current and keeps the previous key as
//!    `Retiring` with the time it may be deleted; the broker mints with the
//!    new key from here on (the vault serves the new version at once);
//! 4. after the overlap, Twilio deletes the previous key (already gone counts
//!    as deleted);
//! 5. one write forgets it.
//!
//! **Invariants (crash safety):** a step's marker is durable before the
//! Twilio call whose effect it describes, so a start-up ([`Rotator::resume`])
//! always knows what may exist at Twilio: `Creating` is rolled back (the
//! current key never changed; a key Twilio may have created is reported by
//! its friendly name), `Retiring` is finished (the previous key deleted once
//! overdue). A successor that was created but cannot be stored is deleted
//! again (or reported when that fails too). Nothing is stored that Twilio
//! did not create. Every lifecycle write of this process goes through
//! [`Rotator::writes`], so a rotation and a PutCredential never overwrite
//! each other's record.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::credential::{Credential, KeyType, Lifecycle, Rotation, Secret};
use crate::error::{Error, Result};
use crate::store::Vault;
use crate::twilio_api::{ApiError, Endpoints, Manager, TwilioApi, retire_key, successor_key};
pub use ages::{Age, Ages};
pub use settings::{MAX_WAIT, RotationConfig, RotationSettings};

/// Twilio's longest Access Token lifetime: the overlap when the broker has
/// no record of what it minted with a key.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// First delay before a failed deletion of a previous key is tried again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between tries of a failed deletion.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// What a finished switch reports.
#[derive(Debug)]
pub struct Rotated {
    /// The credential as now served (the new key).
    pub credential: Arc<Credential>,
    /// The previous key's SID.
    pub previous_key_sid: String,
    /// When the previous key is deleted at Twilio.
    pub delete_after: SystemTime,
}

/// How a RotateCredential call asks for its rotation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RotateOptions {
    /// How long the previous secret stays usable after the switch (default:
    /// an API key's longest minted lifetime; an Auth Token's
    /// `[rotation] token_overlap`).
    pub overlap: Option<Duration>,
    /// Auth Tokens: the wait between storing the new secondary and promoting
    /// it (default `[rotation] propagation_delay`).
    pub propagation_delay: Option<Duration>,
    /// Auth Tokens: the caller acknowledged that rotating an account's Auth
    /// Token invalidates every API key of the account
    /// (`--yes-i-know-api-keys-break`). Without it an Auth Token is refused.
    pub api_keys_break_acknowledged: bool,
}

/// What a rotation that finished off-request did, for the audit trail
/// (`server.rs` records each as a RotateCredential event of the broker
/// itself). Names and times only, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The credential.
    pub credential: String,
    /// What happened, in words (e.g. "the previous key SK... is deleted at
    /// Twilio and forgotten").
    pub message: String,
    /// Whether it succeeded; a failure is retried and reported again.
    pub ok: bool,
}

/// Drives rotations and the deletions that follow them.
pub struct Rotator {
    vault: Arc<Vault>,
    api: TwilioApi,
    /// `[rotation]`: Auth Token timing.
    settings: RotationSettings,
    /// Serialises this process's writes of credentials whose lifecycle may
    /// change (rotation steps, PutCredential), so none is lost to another.
    writes: tokio::sync::Mutex<()>,
    /// Wakes the scheduler when a credential is stored (its schedule may
    /// have changed).
    stored: Arc<tokio::sync::Notify>,
    /// Where off-request completions go (the audit trail's forwarder).
    completions: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Completion>>>,
}

impl Rotator {
    /// A rotator over `vault`, calling Twilio at `endpoints`.
    pub fn new(
        vault: Arc<Vault>,
        endpoints: Endpoints,
        settings: RotationSettings,
    ) -> anyhow::Result<Self> {
        Ok(Rotator {
            vault,
            api: TwilioApi::new(endpoints)?,
            settings,
            writes: tokio::sync::Mutex::new(()),
            completions: std::sync::Mutex::new(None),
            stored: Arc::default(),
        })
    }

    /// Sends every off-request completion (the background end of a
    /// rotation) to the returned receiver from now on.
    pub fn completions(&self) -> tokio::sync::mpsc::UnboundedReceiver<Completion> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut slot) = self.completions.lock() {
            *slot = Some(tx);
        }
        rx
    }

    /// Starts the scheduler ([`schedule::run`]): rotates each scheduled
    /// credential when due, on its own, and reports each outcome as a
    /// completion. Ends when the rotator is dropped.
    pub fn spawn_scheduler(self: &Arc<Self>) {
        let listing = Arc::downgrade(self);
        let rotating = Arc::downgrade(self);
        tokio::spawn(schedule::run(
            crate::bearer::SystemClock,
            self.settings,
            Arc::clone(&self.stored),
            move || listing.upgrade().map(|r| r.vault.list()),
            move |name| {
                let rotating = rotating.clone();
                async move {
                    let Some(rotator) = rotating.upgrade() else {
                        return Ok(());
                    };
                    match rotator.rotate_with(&name, RotateOptions::default()).await {
                        Ok(rotated) => {
                            rotator.completed(
                                &name,
                                format!(
                                    "scheduled rotation: the new key is current; the previous \
                                     key {} is deleted at Twilio after the overlap",
                                    rotated.previous_key_sid
                                ),
                                true,
                            );
                            Ok(())
                        }
                        Err(err) => {
                            rotator.completed(
                                &name,
                                format!("scheduled rotation failed, retried with back-off: {err}"),
                                false,
                            );
                            Err(err)
                        }
                    }
                }
            },
        ));
    }

    /// Reports an off-request completion (logged by the caller already).
    fn completed(&self, credential: &str, message: String, ok: bool) {
        if let Ok(slot) = self.completions.lock()
            && let Some(tx) = slot.as_ref()
        {
            let _ = tx.send(Completion {
                credential: credential.to_owned(),
                message,
                ok,
            });
        }
    }

    /// Stores `credential` (PutCredential): checks its manager, and keeps a
    /// pending deletion and the minted-lifetime record of the key it
    /// replaces, so replacing a credential never orphans a key at Twilio.
    pub async fn put(&self, mut credential: Credential) -> Result<Arc<Credential>> {
        check_manager(&self.vault, &credential)?;
        let _writes = self.writes.lock().await;
        if let (
            Some(existing),
            Secret::ApiKey {
                key_sid, lifecycle, ..
            },
        ) = (self.vault.get(&credential.name), &mut credential.secret)
            && let Secret::ApiKey {
                key_sid: old_sid,
                lifecycle: old,
                ..
            } = &existing.secret
        {
            if old_sid == key_sid {
                lifecycle.recorded_max_ttl_seconds = old.max_ttl_seconds();
            }
            if lifecycle.rotation.is_none()
                && let Some(Rotation::Retiring { .. }) = &old.rotation
            {
                lifecycle.rotation.clone_from(&old.rotation);
            }
        }
        // An Auth Token stored again unchanged (e.g. new labels) keeps its
        // rotation in progress and the secondary that goes with it.
        if let (
            Some(existing),
            Secret::AuthToken {
                auth_token,
                secondary_auth_token: secondary @ None,
                rotation: rotation @ None,
                ..
            },
        ) = (self.vault.get(&credential.name), &mut credential.secret)
            && let Secret::AuthToken {
                auth_token: old_token,
                secondary_auth_token: old_secondary,
                rotation: Some(step),
                ..
            } = &existing.secret
            && *old_token.open() == *auth_token.open()
        {
            secondary.clone_from(old_secondary);
            *rotation = Some(step.clone());
        }
        let stored = self.vault.put(credential).await?;
        self.stored.notify_one();
        Ok(stored)
    }

    /// Rotates the credential `name` with default options and `overlap`;
    /// see [`Rotator::rotate_with`]. The tests' shorthand.
    #[cfg(test)]
    pub async fn rotate(
        self: &Arc<Self>,
        name: &str,
        overlap: Option<Duration>,
    ) -> Result<Rotated> {
        self.rotate_with(
            name,
            RotateOptions {
                overlap,
                ..RotateOptions::default()
            },
        )
        .await
    }

    /// Rotates the credential `name`: an `api_key` through its manager, an
    /// `auth_token` through Twilio's secondary-token API (only with
    /// `api_keys_break_acknowledged`). Returns once the new secret is in
    /// use; the previous one is retired by a task this call spawns.
    pub async fn rotate_with(
        self: &Arc<Self>,
        name: &str,
        options: RotateOptions,
    ) -> Result<Rotated> {
        if let Some(found) = self.vault.get(name)
            && let Secret::AuthToken { .. } = &found.secret
        {
            return self.rotate_auth_token(name, options).await;
        }
        let overlap = options.overlap;
        let writes = self.writes.lock().await;
        let current = self.vault.lookup(name)?;
        let (manager_name, max_ttl) = match &current.secret {
            Secret::ApiKey {
                key_type: KeyType::Main,
                ..
            } => {
                return Err(not_rotatable(
                    name,
                    "Main keys cannot be created through Twilio's API, only in the Console: \
                     create the new Main key there and store it with `credential add`",
                ));
            }
            Secret::ApiKey { lifecycle, .. } => {
                if let Some(Rotation::Retiring { delete_after, .. }) = &lifecycle.rotation {
                    return Err(not_rotatable(
                        name,
                        &format!(
                            "its previous key is still alive until {}; rotate again after \
                             Twilio has deleted it",
                            humantime::format_rfc3339_seconds(*delete_after)
                        ),
                    ));
                }
                let Some(manager) = lifecycle.manager.clone() else {
                    return Err(not_rotatable(
                        name,
                        "it has no manager: store it again with `credential add NAME --api-key \
                         ... --manager MANAGER` naming a Main key or the Auth Token of its account",
                    ));
                };
                (manager, lifecycle.max_ttl_seconds())
            }
            other => {
                return Err(not_rotatable(
                    name,
                    &format!(
                        "only api_key credentials are rotated through Twilio's key APIs, not {}",
                        other.kind().as_str()
                    ),
                ));
            }
        };
        let manager_credential = manager_of(&self.vault, &current, &manager_name)?;
        let manager = Manager::from_secret(&manager_credential.secret).map_err(|err| {
            Error::ManagerUnusable {
                credential: name.to_owned(),
                manager: manager_name.clone(),
                detail: err.to_string(),
            }
        })?;
        let overlap = overlap.unwrap_or(if max_ttl == 0 {
            MAX_TOKEN_TTL
        } else {
            Duration::from_secs(max_ttl)
        });

        // Step 1: the marker, durable before Twilio can create anything.
        let friendly_name = format!(
            "twilio-broker {name} {}",
            humantime::format_rfc3339_seconds(SystemTime::now())
        );
        let marked = with_lifecycle(&current, |l| {
            l.rotation = Some(Rotation::Creating {
                friendly_name: friendly_name.clone(),
            });
            l.recorded_max_ttl_seconds = max_ttl;
        });
        self.vault.put(marked).await?;

        // Step 2: the successor, at Twilio.
        let created = match successor_key(&self.api, manager, &current.secret, &friendly_name).await
        {
            Ok(created) => created,
            Err(err) => {
                // Nothing was created: the marker goes, the current key stays.
                let cleared = with_lifecycle(&current, |l| {
                    l.rotation = None;
                    l.recorded_max_ttl_seconds = max_ttl;
                });
                if let Err(unstored) = self.vault.put(cleared).await {
                    tracing::warn!(credential = %name, error = %unstored, "could not clear the rotation marker; the next start clears it");
                }
                tracing::warn!(credential = %name, error = %err, "rotation stopped: Twilio did not create the new key; the current key is unchanged");
                return Err(stopped(
                    name,
                    "creating the new key (the current key is unchanged)",
                    err,
                ));
            }
        };

        // Step 3: the switch, one write: new key current, previous retiring.
        let delete_after = SystemTime::now() + overlap;
        let previous_key_sid = match &current.secret {
            Secret::ApiKey { key_sid, .. } => key_sid.clone(),
            _ => String::new(),
        };
        let mut previous = current.secret.clone();
        if let Secret::ApiKey { lifecycle, .. } = &mut previous {
            *lifecycle = Lifecycle::default();
        }
        let mut switched = Credential {
            name: current.name.clone(),
            labels: current.labels.clone(),
            created_at: current.created_at,
            updated_at: SystemTime::now(),
            secret: created,
        };
        if let Secret::ApiKey { lifecycle, .. } = &mut switched.secret {
            *lifecycle = Lifecycle {
                manager: Some(manager_name.clone()),
                // A floor for the next rotation's default overlap.
                recorded_max_ttl_seconds: max_ttl,
                minted: Default::default(),
                rotation: Some(Rotation::Retiring {
                    previous: Box::new(previous),
                    delete_after,
                }),
            };
        }
        let new_secret = switched.secret.clone();
        let stored = match self.vault.put(switched).await {
            Ok(stored) => stored,
            Err(err) => {
                // Created but not stored: delete it again, or say so.
                match retire_key(&self.api, manager, &new_secret).await {
                    Ok(()) => {
                        tracing::warn!(credential = %name, error = %err, "rotation stopped: the new key could not be stored and was deleted again at Twilio; the current key is unchanged")
                    }
                    Err(twilio) => {
                        tracing::error!(credential = %name, key_sid = %sid_of(&new_secret), error = %err, twilio = %twilio, "rotation stopped: the new key could not be stored, nor deleted again at Twilio; delete it in the Console")
                    }
                }
                return Err(err);
            }
        };
        drop(writes);
        tracing::info!(credential = %name, previous_key_sid = %previous_key_sid, new_key_sid = %sid_of(&new_secret), overlap_seconds = overlap.as_secs(), "rotated: the new key is current; the previous one is deleted after the overlap");
        self.spawn_retirement(name.to_owned(), previous_key_sid.clone(), delete_after);
        Ok(Rotated {
            credential: stored,
            previous_key_sid,
            delete_after,
        })
    }

    /// At start-up: rolls back rotations that stopped before the switch and
    /// schedules the deletion of every previous key still alive (at once
    /// when overdue). Returns how many rotations it found.
    pub async fn resume(self: &Arc<Self>) -> usize {
        let mut found = 0;
        for credential in self.vault.list() {
            if let Secret::AuthToken {
                rotation: Some(step),
                ..
            } = &credential.secret
            {
                found += 1;
                tracing::info!(credential = %credential.name, step = ?step, "resuming an Auth Token rotation");
                self.spawn_token_driver(credential.name.clone());
                continue;
            }
            let Secret::ApiKey { lifecycle, .. } = &credential.secret else {
                continue;
            };
            match &lifecycle.rotation {
                None => {}
                Some(Rotation::Creating { friendly_name }) => {
                    found += 1;
                    tracing::warn!(credential = %credential.name, friendly_name = %friendly_name, "a rotation stopped before its new key was stored: it is rolled back and the current key is unchanged; if Twilio created a key with this friendly name, delete it in the Console");
                    let _writes = self.writes.lock().await;
                    let cleared = with_lifecycle(&credential, |l| l.rotation = None);
                    if let Err(err) = self.vault.put(cleared).await {
                        tracing::warn!(credential = %credential.name, error = %err, "could not clear the rotation marker");
                    }
                }
                Some(Rotation::Retiring {
                    previous,
                    delete_after,
                }) => {
                    found += 1;
                    tracing::info!(credential = %credential.name, previous_key_sid = %sid_of(previous), "resuming a rotation: the previous key is deleted at Twilio when its overlap ends");
                    self.spawn_retirement(
                        credential.name.clone(),
                        sid_of(previous).to_owned(),
                        *delete_after,
                    );
                }
            }
        }
        found
    }

    /// Deletes the previous key `previous_key_sid` of `name` at Twilio after
    /// `delete_after`, then forgets it; retried with back-off on failure.
    fn spawn_retirement(
        self: &Arc<Self>,
        name: String,
        previous_key_sid: String,
        delete_after: SystemTime,
    ) {
        // A weak handle: a rotator that is dropped (the daemon stopping)
        // ends its waiting tasks; the record lets the next start finish.
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let wait = delete_after
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(wait).await;
            let mut delay = RETRY_FIRST;
            loop {
                let Some(rotator) = this.upgrade() else {
                    return;
                };
                let tried = rotator.retire(&name, &previous_key_sid).await;
                drop(rotator);
                match tried {
                    Ok(()) => return,
                    Err(retry_after) => {
                        let wait = retry_after.unwrap_or(delay).max(delay);
                        tokio::time::sleep(wait).await;
                        delay = (delay * 2).min(RETRY_MAX);
                    }
                }
            }
        });
    }

    /// One try at deleting the previous key and forgetting it. `Err` says
    /// to try again (after Twilio's delay, when it gave one).
    async fn retire(
        &self,
        name: &str,
        previous_key_sid: &str,
    ) -> std::result::Result<(), Option<Duration>> {
        let Some(current) = self.vault.get(name) else {
            tracing::warn!(credential = %name, previous_key_sid, "the credential was deleted before its previous key was; delete that key in the Console");
            return Ok(());
        };
        let Secret::ApiKey { lifecycle, .. } = &current.secret else {
            return Ok(());
        };
        let Some(Rotation::Retiring { previous, .. }) = &lifecycle.rotation else {
            return Ok(());
        };
        if sid_of(previous) != previous_key_sid {
            return Ok(());
        }
        let manager_name = lifecycle.manager.clone().unwrap_or_default();
        let manager_credential = match manager_of(&self.vault, &current, &manager_name) {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(credential = %name, previous_key_sid, error = %err, "cannot delete the previous key: its manager is unusable; retrying");
                return Err(None);
            }
        };
        let manager = match Manager::from_secret(&manager_credential.secret) {
            Ok(manager) => manager,
            Err(err) => {
                tracing::error!(credential = %name, previous_key_sid, error = %err, "cannot delete the previous key: its manager is unusable; retrying");
                return Err(None);
            }
        };
        if let Err(err) = retire_key(&self.api, manager, previous).await {
            let retry_after = match &err {
                ApiError::RateLimited { retry_after, .. } => *retry_after,
                _ => None,
            };
            if err.is_transient() {
                tracing::warn!(credential = %name, previous_key_sid, error = %err, "Twilio did not delete the previous key; retrying");
            } else {
                tracing::error!(credential = %name, previous_key_sid, error = %err, "Twilio refused to delete the previous key; retrying with back-off: check the manager");
            }
            self.completed(
                name,
                format!(
                    "the previous key {previous_key_sid} was not deleted at Twilio ({err}); \
                     retried with back-off"
                ),
                false,
            );
            return Err(retry_after);
        }
        let _writes = self.writes.lock().await;
        // Re-read under the lock: forget the key only if nothing changed it.
        let Some(now) = self.vault.get(name) else {
            return Ok(());
        };
        if !Arc::ptr_eq(&now, &current) {
            let still = matches!(&now.secret, Secret::ApiKey { lifecycle: Lifecycle { rotation: Some(Rotation::Retiring { previous, .. }), .. }, .. } if sid_of(previous) == previous_key_sid);
            if !still {
                return Ok(());
            }
        }
        let forgotten = with_lifecycle(&now, |l| l.rotation = None);
        match self.vault.put(forgotten).await {
            Ok(_) => {
                tracing::info!(credential = %name, previous_key_sid, "rotation finished: the previous key is deleted at Twilio and forgotten");
                self.completed(
                    name,
                    format!(
                        "rotation finished: the previous key {previous_key_sid} is deleted at \
                         Twilio and forgotten"
                    ),
                    true,
                );
                Ok(())
            }
            Err(err) => {
                tracing::warn!(credential = %name, previous_key_sid, error = %err, "the previous key is deleted at Twilio but could not be forgotten yet; retrying");
                Err(None)
            }
        }
    }
}

/// Checks an `api_key` credential's manager before it is stored: a stored
/// Main key or Auth Token of the same account.
pub fn check_manager(vault: &Vault, credential: &Credential) -> Result<()> {
    let Secret::ApiKey { lifecycle, .. } = &credential.secret else {
        return Ok(());
    };
    let Some(manager) = &lifecycle.manager else {
        return Ok(());
    };
    let found = manager_of(vault, credential, manager)?;
    Manager::from_secret(&found.secret).map_err(|err| Error::ManagerUnusable {
        credential: credential.name.clone(),
        manager: manager.clone(),
        detail: err.to_string(),
    })?;
    Ok(())
}

/// The stored manager `manager` of `credential`, checked to be of its account.
fn manager_of(vault: &Vault, credential: &Credential, manager: &str) -> Result<Arc<Credential>> {
    let unusable = |detail: String| Error::ManagerUnusable {
        credential: credential.name.clone(),
        manager: manager.to_owned(),
        detail,
    };
    if manager == credential.name {
        return Err(unusable("a credential cannot manage itself".into()));
    }
    let found = vault
        .get(manager)
        .ok_or_else(|| unusable("no credential of that name is stored".into()))?;
    if found.secret.account_sid() != credential.secret.account_sid() {
        return Err(unusable(format!(
            "it belongs to account {}, the credential to {}",
            found.secret.account_sid(),
            credential.secret.account_sid()
        )));
    }
    Ok(found)
}

/// A copy of `credential` with its lifecycle changed by `change`; the
/// minted maximum so far is recorded.
fn with_lifecycle(credential: &Credential, change: impl FnOnce(&mut Lifecycle)) -> Credential {
    let mut copy = credential.clone();
    if let Secret::ApiKey { lifecycle, .. } = &mut copy.secret {
        lifecycle.recorded_max_ttl_seconds = lifecycle.max_ttl_seconds();
        change(lifecycle);
    }
    copy
}

fn sid_of(secret: &Secret) -> &str {
    match secret {
        Secret::ApiKey { key_sid, .. } => key_sid,
        _ => "",
    }
}

fn not_rotatable(name: &str, detail: &str) -> Error {
    Error::NotRotatable {
        credential: name.to_owned(),
        detail: detail.to_owned(),
    }
}

/// A Twilio failure during `step`, by meaning.
fn stopped(name: &str, step: &str, err: ApiError) -> Error {
    match err {
        ApiError::Rejected {
            status,
            code,
            message,
            ..
        } => Error::RotationRefused {
            credential: name.to_owned(),
            step: step.to_owned(),
            http_status: status,
            twilio_code: code,
            detail: format!("{message}; check that the manager is current and may manage keys"),
        },
        ApiError::RateLimited { retry_after, .. } => Error::RotationUnavailable {
            credential: name.to_owned(),
            step: step.to_owned(),
            detail: "rate-limited the call (HTTP 429, error 20429)".into(),
            retry_after,
        },
        ApiError::Unreachable(detail) => Error::RotationUnavailable {
            credential: name.to_owned(),
            step: step.to_owned(),
            detail,
            retry_after: None,
        },
        ApiError::NotAllowed(detail) => not_rotatable(name, &detail),
    }
}

mod ages;
pub mod schedule;
mod settings;
#[cfg(test)]
mod tests;
mod token;
#[cfg(test)]
mod token_tests;
