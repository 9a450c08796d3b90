//! [`Rotator`] against the twilio-standin (in process) over a sled vault:
//! the switch, the deletion after the overlap, crash recovery from each
//! marker, and Twilio refusing or rate-limiting.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use twilio_standin::{Config, KeyType as StandinKeyType, Standin};

use super::Rotator;
use crate::credential::{Credential, KeyType, Lifecycle, Rotation, SealedSecret, Secret};
use crate::error::Error;
use crate::master_key::MasterKey;
use crate::store::{SledStore, Vault};
use crate::twilio_api::{Endpoints, TwilioConfig};

fn hex() -> String {
    twilio_standin::accounts::random_auth_token()
}

struct World {
    standin: Standin,
    dir: tempfile::TempDir,
    key: MasterKey,
    vault: Arc<Vault>,
    rotator: Arc<Rotator>,
    account: String,
    /// The Standard key stored as `app` (sid, secret).
    app: (String, String),
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

fn credential(name: &str, secret: Secret) -> Credential {
    Credential {
        name: name.into(),
        labels: BTreeMap::new(),
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
        secret,
    }
}

fn api_key(
    account: &str,
    sid: &str,
    secret: &str,
    key_type: KeyType,
    manager: Option<&str>,
) -> Secret {
    Secret::ApiKey {
        account_sid: account.into(),
        key_sid: sid.into(),
        secret: SealedSecret::from(secret),
        key_type,
        lifecycle: Lifecycle {
            manager: manager.map(str::to_owned),
            ..Lifecycle::default()
        },
    }
}

async fn world(key_type: StandinKeyType) -> World {
    let standin = twilio_standin::start(Config::default()).await.unwrap();
    let account = format!("AC{}", hex());
    let auth_token = hex();
    standin.add_account(&account, &auth_token);
    let app = match key_type {
        StandinKeyType::Restricted => standin
            .add_restricted_key(
                &account,
                serde_json::json!({"allow": ["/twilio/messaging/messages/create"]}),
            )
            .unwrap(),
        other => standin.add_key(&account, other).unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let vault = Arc::new(
        Vault::open(Arc::new(SledStore::open(dir.path()).unwrap()), key.clone())
            .await
            .unwrap(),
    );
    let rotator = Arc::new(
        Rotator::new(
            Arc::clone(&vault),
            endpoints(&standin.url()),
            Default::default(),
        )
        .unwrap(),
    );
    rotator
        .put(credential(
            "acme-token",
            Secret::AuthToken {
                account_sid: account.clone(),
                auth_token: SealedSecret::from(auth_token),
                secondary_auth_token: None,
                rotation: None,
            },
        ))
        .await
        .unwrap();
    let ours = match key_type {
        StandinKeyType::Restricted => KeyType::Restricted,
        _ => KeyType::Standard,
    };
    rotator
        .put(credential(
            "app",
            api_key(&account, &app.sid, &app.secret, ours, Some("acme-token")),
        ))
        .await
        .unwrap();
    World {
        standin,
        dir,
        key,
        vault,
        rotator,
        account,
        app: (app.sid, app.secret),
    }
}

fn current(vault: &Vault, name: &str) -> (String, String, Option<Rotation>) {
    let found = vault.get(name).unwrap();
    let Secret::ApiKey {
        key_sid,
        secret,
        lifecycle,
        ..
    } = &found.secret
    else {
        panic!("not an api_key")
    };
    (
        key_sid.clone(),
        secret.open().to_string(),
        lifecycle.rotation.clone(),
    )
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn a_standard_key_is_switched_at_once_and_the_old_one_deleted_after_the_overlap() {
    let w = world(StandinKeyType::Standard).await;
    let rotated = w
        .rotator
        .rotate("app", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(rotated.previous_key_sid, w.app.0);
    let (sid, secret, rotation) = current(&w.vault, "app");
    assert_ne!(sid, w.app.0);
    assert!(w.standin.authenticates(&sid, &secret), "the new key works");
    assert!(matches!(rotation, Some(Rotation::Retiring { .. })));
    assert!(
        w.standin.authenticates(&w.app.0, &w.app.1),
        "the old key stays alive during the overlap"
    );
    let held = w.standin.account(&w.account).unwrap().keys[&sid].clone();
    assert_eq!(held.key_type, StandinKeyType::Standard);
    until("the old key is deleted", || {
        !w.standin.authenticates(&w.app.0, &w.app.1)
    })
    .await;
    until("the old key is forgotten", || {
        current(&w.vault, "app").2.is_none()
    })
    .await;
    assert_eq!(current(&w.vault, "app").0, sid);
}

#[tokio::test]
async fn a_restricted_key_keeps_its_policy() {
    let w = world(StandinKeyType::Restricted).await;
    let policy = w.standin.account(&w.account).unwrap().keys[&w.app.0]
        .policy
        .clone();
    assert!(
        policy.is_some(),
        "the stand-in gives restricted keys a policy"
    );
    w.rotator.rotate("app", Some(Duration::ZERO)).await.unwrap();
    let (sid, secret, _) = current(&w.vault, "app");
    let held = w.standin.account(&w.account).unwrap().keys[&sid].clone();
    assert_eq!(held.key_type, StandinKeyType::Restricted);
    assert_eq!(held.policy, policy);
    assert!(w.standin.authenticates(&sid, &secret));
    until("the old key is deleted", || {
        !w.standin.authenticates(&w.app.0, &w.app.1)
    })
    .await;
}

#[tokio::test]
async fn a_rate_limited_rotation_stops_unchanged_and_can_be_retried() {
    let w = world(StandinKeyType::Standard).await;
    w.standin.set_rate_limit(1, 7);
    let err = w
        .rotator
        .rotate("app", Some(Duration::ZERO))
        .await
        .unwrap_err();
    let Error::RotationUnavailable { retry_after, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));
    let (sid, _, rotation) = current(&w.vault, "app");
    assert_eq!(sid, w.app.0, "the current key is unchanged");
    assert!(rotation.is_none(), "the marker is cleared");
    assert_eq!(
        w.standin.account(&w.account).unwrap().keys.len(),
        1,
        "no key was created"
    );
    w.rotator.rotate("app", Some(Duration::ZERO)).await.unwrap();
    assert_ne!(current(&w.vault, "app").0, w.app.0);
}

#[tokio::test]
async fn a_refused_manager_stops_the_rotation_with_twilios_status() {
    let w = world(StandinKeyType::Standard).await;
    // The stored Auth Token no longer matches the account's.
    w.standin.add_account(&w.account, &hex());
    let err = w
        .rotator
        .rotate("app", Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RotationRefused {
                http_status: 401,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(current(&w.vault, "app").0, w.app.0);
    assert!(current(&w.vault, "app").2.is_none());
}

#[tokio::test]
async fn managers_are_checked_when_stored_and_main_keys_are_not_rotated() {
    let w = world(StandinKeyType::Standard).await;
    let put = |manager: &str| {
        credential(
            "other",
            api_key(
                &w.account,
                &w.app.0,
                &w.app.1,
                KeyType::Standard,
                Some(manager),
            ),
        )
    };
    for (manager, why) in [
        ("absent", "not stored"),
        ("app", "a Standard key"),
        ("other", "itself"),
    ] {
        let err = w.rotator.put(put(manager)).await.unwrap_err();
        assert!(
            matches!(err, Error::ManagerUnusable { .. }),
            "{why}: {err:?}"
        );
    }
    let foreign = format!("AC{}", hex());
    w.rotator
        .put(credential(
            "foreign-token",
            Secret::AuthToken {
                account_sid: foreign,
                auth_token: SealedSecret::from(hex()),
                secondary_auth_token: None,
                rotation: None,
            },
        ))
        .await
        .unwrap();
    let err = w.rotator.put(put("foreign-token")).await.unwrap_err();
    assert!(matches!(err, Error::ManagerUnusable { .. }), "{err:?}");

    let main = w.standin.add_key(&w.account, StandinKeyType::Main).unwrap();
    w.rotator
        .put(credential(
            "main",
            api_key(
                &w.account,
                &main.sid,
                &main.secret,
                KeyType::Main,
                Some("acme-token"),
            ),
        ))
        .await
        .unwrap();
    let err = w.rotator.rotate("main", None).await.unwrap_err();
    assert!(matches!(err, Error::NotRotatable { .. }), "{err:?}");
    // A Main key may manage a Standard key.
    w.rotator.put(put("main")).await.unwrap();
    w.rotator
        .rotate("other", Some(Duration::ZERO))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restart_finishes_an_overdue_deletion_and_rolls_back_a_creation() {
    let w = world(StandinKeyType::Standard).await;
    // A long overlap, then "crash": a new vault and rotator over the same
    // store, after the overlap was shortened in the record.
    w.rotator
        .rotate("app", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let switched = w.vault.get("app").unwrap();
    let mut overdue = (*switched).clone();
    if let Secret::ApiKey { lifecycle, .. } = &mut overdue.secret
        && let Some(Rotation::Retiring { delete_after, .. }) = &mut lifecycle.rotation
    {
        *delete_after = SystemTime::now() - Duration::from_secs(1);
    }
    w.vault.put(overdue).await.unwrap();
    // A second credential stopped while its key was being created.
    let spare = w
        .standin
        .add_key(&w.account, StandinKeyType::Standard)
        .unwrap();
    let mut creating = credential(
        "spare",
        api_key(
            &w.account,
            &spare.sid,
            &spare.secret,
            KeyType::Standard,
            Some("acme-token"),
        ),
    );
    if let Secret::ApiKey { lifecycle, .. } = &mut creating.secret {
        lifecycle.rotation = Some(Rotation::Creating {
            friendly_name: "twilio-broker spare".into(),
        });
    }
    w.vault.put(creating).await.unwrap();
    let World {
        standin,
        dir,
        key,
        vault,
        rotator,
        app,
        ..
    } = w;
    drop(rotator);
    drop(vault);
    let vault = Arc::new(
        Vault::open(Arc::new(SledStore::open(dir.path()).unwrap()), key)
            .await
            .unwrap(),
    );
    let rotator = Arc::new(
        Rotator::new(
            Arc::clone(&vault),
            endpoints(&standin.url()),
            Default::default(),
        )
        .unwrap(),
    );
    assert_eq!(rotator.resume().await, 2);
    until("the overdue old key is deleted", || {
        !standin.authenticates(&app.0, &app.1)
    })
    .await;
    until("the old key is forgotten", || {
        current(&vault, "app").2.is_none()
    })
    .await;
    let (sid, _, rotation) = current(&vault, "spare");
    assert_eq!(sid, spare.sid, "the rolled-back credential keeps its key");
    assert!(rotation.is_none());
    assert!(standin.authenticates(&spare.sid, &spare.secret));
}

#[tokio::test]
async fn the_longest_minted_lifetime_is_the_default_overlap_and_is_recorded() {
    let w = world(StandinKeyType::Standard).await;
    let stored = w.vault.get("app").unwrap();
    let Secret::ApiKey { lifecycle, .. } = &stored.secret else {
        panic!()
    };
    lifecycle.minted.note(600);
    lifecycle.minted.note(120);
    let before = SystemTime::now();
    let rotated = w.rotator.rotate("app", None).await.unwrap();
    let overlap = rotated.delete_after.duration_since(before).unwrap();
    assert!(
        (Duration::from_secs(599)..=Duration::from_secs(605)).contains(&overlap),
        "{overlap:?}"
    );
    let Secret::ApiKey { lifecycle, .. } = &w.vault.get("app").unwrap().secret else {
        panic!()
    };
    assert_eq!(lifecycle.recorded_max_ttl_seconds, 600);
    // Without any record, Twilio's maximum.
    assert_eq!(super::MAX_TOKEN_TTL, Duration::from_secs(86_400));
}
