//! Auth Token rotation against the twilio-standin (in process) over a sled
//! vault: the acknowledgement, the promotion with webhooks validating
//! throughout, and a crash after each step finished or rolled back by the
//! next start.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use twilio_standin::{Config, Standin};

use super::{RotateOptions, RotationSettings, Rotator};
use crate::credential::{Credential, SealedSecret, Secret, TokenRotation};
use crate::error::Error;
use crate::master_key::MasterKey;
use crate::store::{SledStore, Vault};
use crate::twilio_api::{Endpoints, Manager, TwilioConfig};
use crate::webhook::{Algorithm, WebhookRequest, prepare, signature, string_to_sign};

const NAME: &str = "acme-token";

struct World {
    standin: Arc<Standin>,
    dir: tempfile::TempDir,
    key: MasterKey,
    vault: Arc<Vault>,
    rotator: Arc<Rotator>,
    account: String,
    /// The account's Auth Token when the world was made.
    token: String,
}

fn endpoints(base: &str) -> Endpoints {
    TwilioConfig {
        api_base: Some(base.into()),
        iam_base: Some(base.into()),
        accounts_base: Some(base.into()),
    }
    .resolve(|_| None)
    .unwrap()
}

fn settings() -> RotationSettings {
    RotationSettings {
        propagation_delay: Duration::from_millis(50),
        token_overlap: Duration::from_millis(400),
        ..RotationSettings::default()
    }
}

fn acknowledged() -> RotateOptions {
    RotateOptions {
        api_keys_break_acknowledged: true,
        ..RotateOptions::default()
    }
}

async fn world() -> World {
    let standin = Arc::new(twilio_standin::start(Config::default()).await.unwrap());
    let account = format!("AC{}", twilio_standin::accounts::random_auth_token());
    let token = twilio_standin::accounts::random_auth_token();
    standin.add_account(&account, &token);
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let vault = Arc::new(
        Vault::open(Arc::new(SledStore::open(dir.path()).unwrap()), key.clone())
            .await
            .unwrap(),
    );
    let rotator =
        Arc::new(Rotator::new(Arc::clone(&vault), endpoints(&standin.url()), settings()).unwrap());
    rotator
        .put(Credential {
            name: NAME.into(),
            labels: BTreeMap::new(),
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            secret: Secret::AuthToken {
                account_sid: account.clone(),
                auth_token: SealedSecret::from(token.clone()),
                secondary_auth_token: None,
                rotation: None,
            },
        })
        .await
        .unwrap();
    World {
        standin,
        dir,
        key,
        vault,
        rotator,
        account,
        token,
    }
}

impl World {
    /// The stored (primary, secondary, step).
    fn stored(&self) -> (String, Option<String>, Option<TokenRotation>) {
        stored(&self.vault)
    }

    /// The stand-in's (primary, secondary) for the account.
    fn at_twilio(&self) -> (String, Option<String>) {
        let account = self.standin.account(&self.account).unwrap();
        (account.auth_token, account.secondary_auth_token)
    }

    /// Creates a secondary at the stand-in, as step 2 would.
    async fn create_secondary(&self) -> String {
        let primary = self.vault.get(NAME).unwrap();
        let manager = Manager::from_secret(&primary.secret).unwrap();
        let created = self
            .rotator
            .api
            .create_secondary_auth_token(manager)
            .await
            .unwrap();
        created.open().to_string()
    }

    /// Stores the credential as a crash would have left it.
    async fn leave(&self, secondary: Option<&str>, step: TokenRotation) {
        let mut left = (*self.vault.get(NAME).unwrap()).clone();
        if let Secret::AuthToken {
            secondary_auth_token,
            rotation,
            ..
        } = &mut left.secret
        {
            *secondary_auth_token = secondary.map(SealedSecret::from);
            *rotation = Some(step);
        }
        self.vault.put(left).await.unwrap();
    }

    /// "Crash" and start again over the same store: a new vault and rotator,
    /// which resumes what the record says.
    async fn restart(self) -> World {
        let World {
            standin,
            dir,
            key,
            vault,
            rotator,
            account,
            token,
        } = self;
        drop(rotator);
        drop(vault);
        let vault = Arc::new(
            Vault::open(Arc::new(SledStore::open(dir.path()).unwrap()), key.clone())
                .await
                .unwrap(),
        );
        let rotator = Arc::new(
            Rotator::new(Arc::clone(&vault), endpoints(&standin.url()), settings()).unwrap(),
        );
        assert_eq!(rotator.resume().await, 1, "one rotation to resume");
        World {
            standin,
            dir,
            key,
            vault,
            rotator,
            account,
            token,
        }
    }
}

fn stored(vault: &Vault) -> (String, Option<String>, Option<TokenRotation>) {
    let found = vault.get(NAME).unwrap();
    let Secret::AuthToken {
        auth_token,
        secondary_auth_token,
        rotation,
        ..
    } = &found.secret
    else {
        panic!("not an auth_token")
    };
    (
        auth_token.open().to_string(),
        secondary_auth_token.as_ref().map(|s| s.open().to_string()),
        rotation.clone(),
    )
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Whether the vault's credential validates a webhook signed with `token`
/// (what ValidateWebhook does).
fn validates(vault: &Vault, token: &str) -> bool {
    let url = "https://example.com/hook?x=1";
    let mut params = vec![("Digits".to_owned(), "1234".to_owned())];
    let signed = string_to_sign(url, &mut params);
    let suffix = &signed[url.len()..];
    let request = WebhookRequest {
        url: url.into(),
        params,
        signature: signature(&SealedSecret::from(token), Algorithm::HmacSha1, url, suffix),
        ..WebhookRequest::default()
    };
    let prepared = prepare(request).unwrap();
    let found = vault.get(NAME).unwrap();
    let Secret::AuthToken {
        auth_token,
        secondary_auth_token,
        ..
    } = &found.secret
    else {
        panic!("not an auth_token")
    };
    prepared
        .verify_either(auth_token, secondary_auth_token.as_ref())
        .0
        .valid
}

#[tokio::test]
async fn an_auth_token_is_not_rotated_without_the_acknowledgement() {
    let w = world().await;
    let err = w
        .rotator
        .rotate_with(NAME, RotateOptions::default())
        .await
        .unwrap_err();
    let Error::NotRotatable { detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(detail.contains("--yes-i-know-api-keys-break"), "{detail}");
    assert!(detail.contains("every API key"), "{detail}");
    assert!(
        !err.to_string().contains(&w.token),
        "no secret in the error"
    );
    assert_eq!(w.stored(), (w.token.clone(), None, None), "nothing changed");
    assert_eq!(w.at_twilio(), (w.token.clone(), None), "nothing at Twilio");
    // The API-key shorthand cannot bypass it either.
    let err = w.rotator.rotate(NAME, None).await.unwrap_err();
    assert!(matches!(err, Error::NotRotatable { .. }), "{err:?}");
}

#[tokio::test]
async fn an_auth_token_is_promoted_while_webhooks_validate_and_the_old_one_is_forgotten() {
    let w = world().await;
    let mut completions = w.rotator.completions();
    // Twilio signs each webhook with whatever is its primary at that moment.
    let stop = Arc::new(AtomicBool::new(false));
    let (checked, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let checker = {
        let (standin, vault, account) = (
            Arc::clone(&w.standin),
            Arc::clone(&w.vault),
            w.account.clone(),
        );
        let (stop, checked, failed) =
            (Arc::clone(&stop), Arc::clone(&checked), Arc::clone(&failed));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let signing = standin.account(&account).unwrap().auth_token;
                if !validates(&vault, &signing) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                checked.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let rotated = w.rotator.rotate_with(NAME, acknowledged()).await.unwrap();
    assert!(rotated.previous_key_sid.is_empty());
    let (primary, secondary, step) = w.stored();
    assert_ne!(primary, w.token, "a new primary");
    assert_eq!(
        w.at_twilio(),
        (primary.clone(), None),
        "promoted at Twilio: the stored primary is Twilio's, no secondary left"
    );
    assert_eq!(secondary.as_deref(), Some(w.token.as_str()), "old kept");
    assert!(matches!(step, Some(TokenRotation::Draining { .. })));
    assert!(
        !w.standin.authenticates(&w.account, &w.token),
        "the old token no longer works at Twilio"
    );
    assert!(w.standin.authenticates(&w.account, &primary));
    assert!(
        validates(&w.vault, &w.token),
        "old signatures still validate"
    );
    until("the old token is forgotten", || {
        w.stored() == (primary.clone(), None, None)
    })
    .await;
    assert!(!validates(&w.vault, &w.token), "the old token is gone");
    assert!(validates(&w.vault, &primary));
    stop.store(true, Ordering::Relaxed);
    checker.await.unwrap();
    assert!(checked.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no webhook failed");
    let done = completions.recv().await.unwrap();
    assert_eq!((done.credential.as_str(), done.ok), (NAME, true));
    assert!(!done.message.contains(&primary) && !done.message.contains(&w.token));
    // A second rotation works from the new token.
    w.rotator.rotate_with(NAME, acknowledged()).await.unwrap();
    assert_ne!(w.stored().0, primary);
}

#[tokio::test]
async fn a_crash_after_the_marker_rolls_back_and_deletes_the_secondary() {
    let w = world().await;
    w.leave(None, TokenRotation::Creating).await;
    // Twilio created the secondary before the crash.
    w.create_secondary().await;
    assert!(w.at_twilio().1.is_some());
    let w = w.restart().await;
    until("rolled back", || w.stored().2.is_none()).await;
    assert_eq!(w.stored(), (w.token.clone(), None, None));
    until("the secondary is deleted at Twilio", || {
        w.at_twilio().1.is_none()
    })
    .await;
    assert!(w.standin.authenticates(&w.account, &w.token));
    // Nothing was created at all: rolling back is just as quiet.
    w.leave(None, TokenRotation::Creating).await;
    let w = w.restart().await;
    until("rolled back", || w.stored().2.is_none()).await;
    assert_eq!(w.at_twilio(), (w.token.clone(), None));
}

#[tokio::test]
async fn a_crash_with_the_secondary_stored_is_promoted_at_the_next_start() {
    let w = world().await;
    let secondary = w.create_secondary().await;
    w.leave(
        Some(&secondary),
        TokenRotation::Promoting {
            promote_after: SystemTime::now() - Duration::from_secs(1),
            overlap: Duration::from_millis(200),
        },
    )
    .await;
    let w = w.restart().await;
    until("promoted and finished", || {
        w.stored() == (secondary.clone(), None, None)
    })
    .await;
    assert_eq!(w.at_twilio(), (secondary.clone(), None));
    assert!(!w.standin.authenticates(&w.account, &w.token));
}

#[tokio::test]
async fn a_crash_between_the_promotion_and_the_switch_is_recognised() {
    let w = world().await;
    let secondary = w.create_secondary().await;
    w.leave(
        Some(&secondary),
        TokenRotation::Promoting {
            promote_after: SystemTime::now() - Duration::from_secs(1),
            overlap: Duration::from_secs(3600),
        },
    )
    .await;
    // Twilio promoted it; the broker crashed before writing the switch.
    let as_secondary = Secret::AuthToken {
        account_sid: w.account.clone(),
        auth_token: SealedSecret::from(secondary.as_str()),
        secondary_auth_token: None,
        rotation: None,
    };
    w.rotator
        .api
        .promote_secondary_auth_token(Manager::from_secret(&as_secondary).unwrap())
        .await
        .unwrap();
    let w = w.restart().await;
    until("switched", || {
        matches!(w.stored().2, Some(TokenRotation::Draining { .. }))
    })
    .await;
    let (primary, old, _) = w.stored();
    assert_eq!(primary, secondary, "Twilio's primary is stored");
    assert_eq!(old.as_deref(), Some(w.token.as_str()), "kept for webhooks");
    assert!(validates(&w.vault, &w.token) && validates(&w.vault, &secondary));
}

#[tokio::test]
async fn a_crash_after_the_switch_forgets_the_old_token_at_the_next_start() {
    let w = world().await;
    let secondary = w.create_secondary().await;
    let old = w.token.clone();
    // The switch was written (new primary, old secondary), overdue.
    let mut switched = (*w.vault.get(NAME).unwrap()).clone();
    if let Secret::AuthToken {
        auth_token,
        secondary_auth_token,
        rotation,
        ..
    } = &mut switched.secret
    {
        *auth_token = SealedSecret::from(secondary.as_str());
        *secondary_auth_token = Some(SealedSecret::from(old.as_str()));
        *rotation = Some(TokenRotation::Draining {
            drop_after: SystemTime::now() - Duration::from_secs(1),
        });
    }
    w.vault.put(switched).await.unwrap();
    let w = w.restart().await;
    until("the old token is forgotten", || {
        w.stored() == (secondary.clone(), None, None)
    })
    .await;
}

#[tokio::test]
async fn a_secondary_deleted_outside_the_broker_rolls_the_promotion_back() {
    let w = world().await;
    let secondary = w.create_secondary().await;
    w.leave(
        Some(&secondary),
        TokenRotation::Promoting {
            promote_after: SystemTime::now() - Duration::from_secs(1),
            overlap: Duration::from_secs(1),
        },
    )
    .await;
    // Someone deleted the secondary in the Console.
    let primary = w.vault.get(NAME).unwrap();
    w.rotator
        .api
        .delete_secondary_auth_token(Manager::from_secret(&primary.secret).unwrap())
        .await
        .unwrap();
    let w = w.restart().await;
    until("rolled back", || {
        w.stored() == (w.token.clone(), None, None)
    })
    .await;
    assert!(w.standin.authenticates(&w.account, &w.token));
}

#[tokio::test]
async fn a_rate_limited_creation_stops_unchanged_and_can_be_retried() {
    let w = world().await;
    w.standin.set_rate_limit(1, 4);
    let err = w
        .rotator
        .rotate_with(NAME, acknowledged())
        .await
        .unwrap_err();
    let Error::RotationUnavailable { retry_after, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(4)));
    assert_eq!(w.stored(), (w.token.clone(), None, None), "unchanged");
    assert_eq!(w.at_twilio(), (w.token.clone(), None));
    w.rotator.rotate_with(NAME, acknowledged()).await.unwrap();
    assert_ne!(w.stored().0, w.token);
}

#[tokio::test]
async fn storing_the_same_token_again_keeps_its_rotation_and_another_one_ends_it() {
    let w = world().await;
    let secondary = w.create_secondary().await;
    w.leave(
        Some(&secondary),
        TokenRotation::Promoting {
            promote_after: SystemTime::now() + Duration::from_secs(3600),
            overlap: Duration::from_secs(1),
        },
    )
    .await;
    let again = |token: &str| Credential {
        name: NAME.into(),
        labels: BTreeMap::from([("environment".to_owned(), "production".to_owned())]),
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
        secret: Secret::AuthToken {
            account_sid: w.account.clone(),
            auth_token: SealedSecret::from(token),
            secondary_auth_token: None,
            rotation: None,
        },
    };
    w.rotator.put(again(&w.token)).await.unwrap();
    let (_, kept, step) = w.stored();
    assert_eq!(kept.as_deref(), Some(secondary.as_str()), "secondary kept");
    assert!(matches!(step, Some(TokenRotation::Promoting { .. })));
    // Another token replaces the credential and its rotation.
    let other = twilio_standin::accounts::random_auth_token();
    w.rotator.put(again(&other)).await.unwrap();
    assert_eq!(w.stored(), (other, None, None));
}
