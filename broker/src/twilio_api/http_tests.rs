//! [`TwilioApi`] against the twilio-standin (in process): keys and Auth
//! Tokens created, promoted and deleted for real, what stops authenticating
//! afterwards, and each failure typed by meaning without a secret in it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use twilio_standin::{Config, KeyType as StandinKeyType, Standin};

use super::{ApiError, Endpoints, Manager, TwilioApi, TwilioConfig};
use crate::credential::{KeyType, SealedSecret, Secret};

fn hex() -> String {
    twilio_standin::accounts::random_auth_token()
}

struct World {
    standin: Standin,
    api: TwilioApi,
    account: String,
    /// The account's Auth Token, as a stored credential would hold it.
    token: Secret,
    /// A Main key of the account, likewise.
    main: Secret,
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

async fn world() -> World {
    let standin = twilio_standin::start(Config::default()).await.unwrap();
    let account = format!("AC{}", hex());
    let auth_token = hex();
    standin.add_account(&account, &auth_token);
    let main = standin.add_key(&account, StandinKeyType::Main).unwrap();
    let api = TwilioApi::new(endpoints(&standin.url())).unwrap();
    World {
        api,
        token: Secret::AuthToken {
            account_sid: account.clone(),
            auth_token: SealedSecret::from(auth_token),
            secondary_auth_token: None,
            rotation: None,
        },
        main: Secret::ApiKey {
            account_sid: account.clone(),
            key_sid: main.sid,
            secret: SealedSecret::from(main.secret),
            key_type: KeyType::Main,
            lifecycle: Default::default(),
        },
        account,
        standin,
    }
}

#[tokio::test]
async fn standard_keys_are_created_and_deleted_by_a_main_key_or_the_auth_token() {
    let w = world().await;
    for manager in [&w.token, &w.main] {
        let manager = Manager::from_secret(manager).unwrap();
        assert_eq!(manager.account_sid(), w.account);
        let key = w
            .api
            .create_standard_key(manager, "rotated by the broker")
            .await
            .unwrap();
        let secret = key.secret.open();
        assert!(w.standin.authenticates(&key.sid, &secret));
        let held = w.standin.account(&w.account).unwrap().keys[&key.sid].clone();
        assert_eq!(held.key_type, StandinKeyType::Standard);
        assert_eq!(held.friendly_name.as_deref(), Some("rotated by the broker"));

        w.api.delete_standard_key(manager, &key.sid).await.unwrap();
        assert!(
            !w.standin.authenticates(&key.sid, &secret),
            "deleted key still works"
        );
        let again = w.api.delete_standard_key(manager, &key.sid).await;
        assert!(
            matches!(
                again,
                Err(ApiError::Rejected {
                    status: 404,
                    code: Some(20404),
                    ..
                })
            ),
            "{again:?}"
        );
    }
}

#[tokio::test]
async fn a_restricted_key_is_succeeded_by_one_with_the_same_policy() {
    let w = world().await;
    let manager = Manager::from_secret(&w.main).unwrap();
    let policy = serde_json::json!({"allow": ["/twilio/messaging/messages/create", "/twilio/voice/calls/read"]});
    let old = w
        .api
        .create_restricted_key(manager, "old", &policy)
        .await
        .unwrap();
    let read = w.api.key_policy(manager, &old.sid).await.unwrap();
    assert_eq!(read.as_ref(), Some(&policy));
    let new = w
        .api
        .create_restricted_key(manager, "new", &read.unwrap())
        .await
        .unwrap();
    let account = w.standin.account(&w.account).unwrap();
    assert_eq!(account.keys[&new.sid].key_type, StandinKeyType::Restricted);
    assert_eq!(account.keys[&new.sid].policy.as_ref(), Some(&policy));

    w.api.delete_key(manager, &old.sid).await.unwrap();
    assert!(!w.standin.authenticates(&old.sid, &old.secret.open()));
    assert!(w.standin.authenticates(&new.sid, &new.secret.open()));

    let bad = w
        .api
        .create_restricted_key(manager, "x", &serde_json::json!({"deny": []}))
        .await;
    assert!(matches!(bad, Err(ApiError::NotAllowed(_))), "{bad:?}");
}

#[tokio::test]
async fn a_secondary_auth_token_is_created_promoted_and_the_old_primary_stops_working() {
    let w = world().await;
    let Secret::AuthToken {
        auth_token: old, ..
    } = &w.token
    else {
        unreachable!()
    };
    let manager = Manager::from_secret(&w.token).unwrap();
    let secondary = w.api.create_secondary_auth_token(manager).await.unwrap();
    assert!(w.standin.authenticates(&w.account, &secondary.open()));
    assert!(w.standin.authenticates(&w.account, &old.open()));

    w.api.delete_secondary_auth_token(manager).await.unwrap();
    assert!(!w.standin.authenticates(&w.account, &secondary.open()));

    let secondary = w.api.create_secondary_auth_token(manager).await.unwrap();
    let primary = w.api.promote_secondary_auth_token(manager).await.unwrap();
    assert_eq!(*primary.open(), *secondary.open());
    assert!(w.standin.authenticates(&w.account, &primary.open()));
    assert!(
        !w.standin.authenticates(&w.account, &old.open()),
        "old primary still works"
    );

    // The old primary can no longer manage anything: 401 / 20003.
    let refused = w
        .api
        .create_secondary_auth_token(manager)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ApiError::Rejected {
                status: 401,
                code: Some(20003),
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(!refused.is_transient());
}

#[tokio::test]
async fn failures_are_typed_and_never_carry_a_secret() {
    let w = world().await;
    let Secret::AuthToken { auth_token, .. } = &w.token else {
        unreachable!()
    };
    let mut secrets = vec![auth_token.open().to_string()];
    let mut errors = Vec::new();

    // Not a manager: refused before anything is sent.
    let standard = Secret::ApiKey {
        account_sid: w.account.clone(),
        key_sid: format!("SK{}", hex()),
        secret: SealedSecret::from(hex()),
        key_type: KeyType::Standard,
        lifecycle: Default::default(),
    };
    let err = Manager::from_secret(&standard).unwrap_err();
    assert!(
        matches!(&err, ApiError::NotAllowed(m) if m.contains("Main key")),
        "{err}"
    );
    assert_eq!(w.standin.stats().manage_requests, 0);
    errors.push(err);

    // A Standard key the stand-in knows, used as a manager anyway: 403.
    let live = w
        .standin
        .add_key(&w.account, StandinKeyType::Standard)
        .unwrap();
    secrets.push(live.secret.clone());
    let forced = Secret::ApiKey {
        account_sid: w.account.clone(),
        key_sid: live.sid.clone(),
        secret: SealedSecret::from(live.secret.clone()),
        key_type: KeyType::Main, // mislabelled on purpose: Twilio decides
        lifecycle: Default::default(),
    };
    let err = w
        .api
        .create_standard_key(Manager::from_secret(&forced).unwrap(), "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected {
                status: 403,
                code: Some(20003),
                ..
            }
        ),
        "{err:?}"
    );
    errors.push(err);

    // A wrong Auth Token: 401 / 20003, with Twilio's message and link.
    let wrong_token = hex();
    secrets.push(wrong_token.clone());
    let wrong = Secret::AuthToken {
        account_sid: w.account.clone(),
        auth_token: SealedSecret::from(wrong_token),
        secondary_auth_token: None,
        rotation: None,
    };
    let err = w
        .api
        .create_secondary_auth_token(Manager::from_secret(&wrong).unwrap())
        .await
        .unwrap_err();
    let ApiError::Rejected {
        status,
        code,
        message,
        more_info,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*status, *code, message.as_str()),
        (401, Some(20003), "Authenticate")
    );
    assert_eq!(
        more_info.as_deref(),
        Some("https://www.twilio.com/docs/errors/20003")
    );
    errors.push(err);

    // The rate limit: 429 / 20429 with Retry-After, transient.
    w.standin.set_rate_limit(1, 7);
    let manager = Manager::from_secret(&w.token).unwrap();
    let err = w.api.create_standard_key(manager, "x").await.unwrap_err();
    assert_eq!(
        err,
        ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            code: Some(20429)
        }
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("retry after 7 s"), "{err}");
    errors.push(err);
    let created = w.api.create_standard_key(manager, "x").await.unwrap();
    secrets.push(created.secret.open().to_string());

    // Nothing listening: unreachable, transient.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let api = TwilioApi::new(endpoints(&format!("http://{closed}"))).unwrap();
    let err = api.create_standard_key(manager, "x").await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Unreachable(m) if m.contains("cannot be reached")),
        "{err}"
    );
    assert!(err.is_transient());
    errors.push(err);

    // A malformed SID never reaches a URL.
    let err = w
        .api
        .delete_key(manager, "SK../../v1/AuthTokens")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotAllowed(_)), "{err:?}");

    errors.push(err);
    errors.push(
        w.api
            .delete_key(manager, &format!("SK{}", hex()))
            .await
            .unwrap_err(),
    );
    assert_eq!(errors.len(), 7);
    for err in errors {
        let text = format!("{err} {err:?}");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "secret in {text}");
        }
    }
}

fn api_key_of(secret: &Secret) -> (String, String) {
    let Secret::ApiKey {
        key_sid, secret, ..
    } = secret
    else {
        panic!("not an api_key")
    };
    (key_sid.clone(), secret.open().to_string())
}

#[tokio::test]
async fn a_key_is_rotated_new_before_old_and_keeps_its_type_and_policy() {
    let w = world().await;
    let manager = Manager::from_secret(&w.main).unwrap();

    // Standard: the successor lives beside the old key until it is retired.
    let old = w.api.create_standard_key(manager, "v1").await.unwrap();
    let old = Secret::ApiKey {
        account_sid: w.account.clone(),
        key_sid: old.sid,
        secret: old.secret,
        key_type: KeyType::Standard,
        lifecycle: Default::default(),
    };
    let new = super::successor_key(&w.api, manager, &old, "v2")
        .await
        .unwrap();
    let ((old_sid, old_secret), (new_sid, new_secret)) = (api_key_of(&old), api_key_of(&new));
    assert_ne!(old_sid, new_sid);
    assert!(w.standin.authenticates(&old_sid, &old_secret));
    assert!(w.standin.authenticates(&new_sid, &new_secret));
    assert_eq!(
        w.standin.account(&w.account).unwrap().keys[&new_sid].key_type,
        StandinKeyType::Standard
    );
    super::retire_key(&w.api, manager, &old).await.unwrap();
    assert!(!w.standin.authenticates(&old_sid, &old_secret));
    assert!(w.standin.authenticates(&new_sid, &new_secret));
    // Retiring again (a retry after a crash) is done, not an error.
    super::retire_key(&w.api, manager, &old).await.unwrap();

    // Restricted: the same Policy, read from Twilio.
    let policy = serde_json::json!({"allow": ["/twilio/messaging/messages/create"]});
    let narrow = w
        .api
        .create_restricted_key(manager, "narrow", &policy)
        .await
        .unwrap();
    let narrow = Secret::ApiKey {
        account_sid: w.account.clone(),
        key_sid: narrow.sid,
        secret: narrow.secret,
        key_type: KeyType::Restricted,
        lifecycle: Default::default(),
    };
    let next = super::successor_key(&w.api, manager, &narrow, "narrow v2")
        .await
        .unwrap();
    let (next_sid, _) = api_key_of(&next);
    let held = w.standin.account(&w.account).unwrap().keys[&next_sid].clone();
    assert_eq!(held.key_type, StandinKeyType::Restricted);
    assert_eq!(held.policy, Some(policy));
    super::retire_key(&w.api, manager, &narrow).await.unwrap();
    assert!(
        !w.standin
            .account(&w.account)
            .unwrap()
            .keys
            .contains_key(&api_key_of(&narrow).0)
    );

    // Refused before anything is sent: a Main key, another account's key.
    let before = w.standin.stats().manage_requests;
    let err = super::successor_key(&w.api, manager, &w.main, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::NotAllowed(m) if m.contains("Console")),
        "{err}"
    );
    let foreign = Secret::ApiKey {
        account_sid: format!("AC{}", hex()),
        key_sid: format!("SK{}", hex()),
        secret: SealedSecret::from(hex()),
        key_type: KeyType::Standard,
        lifecycle: Default::default(),
    };
    let err = super::successor_key(&w.api, manager, &foreign, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::NotAllowed(m) if m.contains("its own account")),
        "{err}"
    );
    assert_eq!(w.standin.stats().manage_requests, before);
}
