//! The cache's timing and concurrency rules, on tokio's paused clock with a
//! fake token endpoint: herds, expiry, refresh ahead, outages, rejections,
//! replaced and deleted credentials, `min_ttl`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use secrecy::SecretString;

use super::clock::{Clock, TokioClock};
use super::upstream::{Failure, TokenReply, Upstream};
use super::{Bearers, Settings};
use crate::credential::{Credential, KeyType, Secret};
use crate::error::Error;
use crate::master_key::MasterKey;
use crate::store::{SledStore, Vault};

const TTL: u64 = 3600;
const NAME: &str = "oauth";

#[derive(Clone)]
enum Behaviour {
    Issue { ttl: u64, expires_in: Option<u64> },
    Fail(Failure),
    Hang,
}

struct Fake {
    clock: TokioClock,
    calls: AtomicU64,
    secrets: Mutex<Vec<String>>,
    behaviour: Mutex<Behaviour>,
    delay: Mutex<Duration>,
}

impl Fake {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
    fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }
}

fn jwt(exp: u64, n: u64) -> String {
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig{n}",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#.into()),
        b64(format!(r#"{{"exp":{exp},"n":{n}}}"#))
    )
}

#[async_trait::async_trait]
impl Upstream for Fake {
    async fn fetch(
        &self,
        _id: &str,
        secret: &crate::credential::SealedSecret,
    ) -> Result<TokenReply, Failure> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.secrets.lock().unwrap().push(secret.open().to_string());
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let behaviour = self.behaviour.lock().unwrap().clone();
        match behaviour {
            Behaviour::Issue { ttl, expires_in } => {
                let now = self.clock.now().duration_since(UNIX_EPOCH).unwrap();
                Ok(TokenReply {
                    access_token: SecretString::from(jwt(now.as_secs() + ttl, n)),
                    expires_in,
                })
            }
            Behaviour::Fail(failure) => Err(failure),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

fn oauth(secret: &str) -> Credential {
    Credential {
        name: NAME.into(),
        labels: BTreeMap::new(),
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
        secret: Secret::OAuthClient {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            client_id: "OQ0123456789abcdef0123456789abcdef".into(),
            client_secret: crate::credential::SealedSecret::from(secret),
        },
    }
}

struct World {
    bearers: Bearers,
    fake: Arc<Fake>,
    vault: Arc<Vault>,
    settings: Settings,
}

async fn world() -> World {
    let store = Arc::new(SledStore::temporary().unwrap());
    let vault = Arc::new(Vault::open(store, MasterKey::generate()).await.unwrap());
    vault.put(oauth("s3cr3t-one")).await.unwrap();
    let clock = TokioClock::starting_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let fake = Arc::new(Fake {
        clock,
        calls: AtomicU64::new(0),
        secrets: Mutex::new(Vec::new()),
        behaviour: Mutex::new(Behaviour::Issue {
            ttl: TTL,
            expires_in: Some(TTL),
        }),
        delay: Mutex::new(Duration::from_millis(50)),
    });
    let settings = Settings::default();
    let bearers = Bearers::new(
        Arc::clone(&vault),
        Arc::clone(&fake) as Arc<dyn Upstream>,
        Arc::new(clock),
        settings.clone(),
    );
    World {
        bearers,
        fake,
        vault,
        settings,
    }
}

impl World {
    async fn token(&self, min_ttl: u64) -> String {
        let bearer = self
            .bearers
            .get(NAME, Duration::from_secs(min_ttl))
            .await
            .unwrap();
        bearer.token.expose().to_owned()
    }
    async fn error(&self, min_ttl: u64) -> Error {
        let err = self
            .bearers
            .get(NAME, Duration::from_secs(min_ttl))
            .await
            .err()
            .expect("an error");
        let text = err.to_string();
        assert!(!text.contains("s3cr3t"), "secret in error: {text}");
        assert!(!text.contains("eyJ"), "token in error: {text}");
        err
    }
}

/// Lets spawned flights run to completion (paused time auto-advances).
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn advance(seconds: f64) {
    tokio::time::advance(Duration::from_secs_f64(seconds)).await;
}

fn unavailable() -> Failure {
    Failure::Unavailable("answered HTTP 503".into())
}

#[tokio::test(start_paused = true)]
async fn a_herd_of_cold_or_expired_calls_makes_one_request() {
    let w = Arc::new(world().await);
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.token(0).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap());
    }
    assert_eq!(w.fake.calls(), 1);
    tokens.dedup();
    assert_eq!(tokens.len(), 1);

    // The same at expiry: 1,000 callers, one more request.
    advance(TTL as f64 + 1.0).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.token(0).await })
        })
        .collect();
    for task in tasks {
        assert_ne!(task.await.unwrap(), tokens[0]);
    }
    assert_eq!(w.fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_does_not_cancel_the_request() {
    let w = Arc::new(world().await);
    let first = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { w.token(0).await })
    };
    tokio::task::yield_now().await;
    first.abort();
    settle().await;
    assert_eq!(w.fake.calls(), 1);
    w.token(0).await;
    assert_eq!(w.fake.calls(), 1, "the abandoned flight's token was cached");
}

#[tokio::test(start_paused = true)]
async fn tokens_are_refreshed_ahead_without_blocking_callers() {
    let w = world().await;
    let a = w.token(0).await;
    advance(TTL as f64 * 0.44).await;
    assert_eq!(w.token(0).await, a);
    assert_eq!(w.fake.calls(), 1, "no refresh before 45 % of the lifetime");

    w.fake.set_delay(Duration::from_secs(5));
    advance(TTL as f64 * 0.12).await; // 56 %: past any jittered refresh point
    let started = tokio::time::Instant::now();
    assert_eq!(w.token(0).await, a, "the valid token is served at once");
    assert_eq!(started.elapsed(), Duration::ZERO);
    for _ in 0..100 {
        assert_eq!(w.token(0).await, a);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(w.fake.calls(), 2, "one background refresh");
    let b = w.token(0).await;
    assert_ne!(a, b);
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_replaced() {
    let w = world().await;
    w.fake.set(Behaviour::Issue {
        ttl: 60,
        expires_in: None,
    });
    let a = w.token(0).await;
    advance(61.0).await;
    let b = w.token(0).await;
    assert_ne!(a, b);
    assert_eq!(w.fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn expiry_comes_from_the_exp_claim_not_expires_in() {
    let w = world().await;
    w.fake.set(Behaviour::Issue {
        ttl: 600,
        expires_in: Some(86_400),
    });
    let bearer = w.bearers.get(NAME, Duration::ZERO).await.unwrap();
    let lifetime = bearer
        .token
        .expires_at
        .duration_since(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .unwrap();
    assert!(lifetime <= Duration::from_secs(601), "{lifetime:?}");
}

#[tokio::test(start_paused = true)]
async fn an_outage_with_a_valid_token_serves_it_and_backs_off() {
    let w = world().await;
    let a = w.token(0).await;
    w.fake.set(Behaviour::Fail(unavailable()));
    advance(TTL as f64 * 0.56).await;
    assert_eq!(w.token(0).await, a);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.fake.calls(), 2, "the refresh was tried");
    for _ in 0..50 {
        assert_eq!(w.token(0).await, a);
    }
    assert_eq!(w.fake.calls(), 2, "no retry inside the backoff");
    // Backoff grows: 0.5-1 s, then 1-2 s, 2-4 s...
    let mut calls = 2;
    for _ in 0..4 {
        advance(w.settings.backoff_max.as_secs_f64()).await;
        assert_eq!(w.token(0).await, a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        calls += 1;
        assert_eq!(w.fake.calls(), calls);
    }
    w.fake.set(Behaviour::Issue {
        ttl: TTL,
        expires_in: None,
    });
    advance(w.settings.backoff_max.as_secs_f64()).await;
    w.token(0).await;
    settle().await;
    assert_ne!(w.token(0).await, a, "healed: a fresh token");
}

#[tokio::test(start_paused = true)]
async fn an_outage_without_a_token_is_unavailable_at_once() {
    let w = world().await;
    w.fake.set(Behaviour::Fail(unavailable()));
    let err = w.error(0).await;
    assert!(matches!(err, Error::TwilioUnreachable { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert!(err.to_string().contains(NAME), "{err}");
    let started = tokio::time::Instant::now();
    assert!(matches!(w.error(0).await, Error::TwilioUnreachable { .. }));
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "answered from the backoff"
    );
    assert_eq!(w.fake.calls(), 1);
    advance(1.1).await;
    w.error(0).await;
    assert_eq!(w.fake.calls(), 2, "retried after the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_hung_endpoint_times_out() {
    let w = world().await;
    w.fake.set(Behaviour::Hang);
    let started = tokio::time::Instant::now();
    let err = w.error(0).await;
    assert!(err.to_string().contains("did not answer within"), "{err}");
    let waited = started.elapsed();
    assert!(waited >= w.settings.timeout, "{waited:?}");
    assert!(
        waited <= w.settings.timeout + Duration::from_secs(1),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_client_is_remembered_not_retried() {
    let w = world().await;
    w.fake.set(Behaviour::Fail(Failure::Rejected {
        status: 401,
        code: Some(20003),
        message: "Authenticate".into(),
        more_info: Some("https://www.twilio.com/docs/errors/20003".into()),
    }));
    for _ in 0..20 {
        let err = w.error(0).await;
        let text = err.to_string();
        assert!(
            matches!(&err, Error::TwilioRejected { twilio, .. } if twilio.code == Some(20003)),
            "{text}"
        );
        assert!(text.contains("20003") && text.contains(NAME), "{text}");
    }
    assert_eq!(w.fake.calls(), 1);
    advance(w.settings.rejection_memory.as_secs_f64() + 1.0).await;
    w.error(0).await;
    assert_eq!(w.fake.calls(), 2);
    // Replacing the credential retries at once, with the new secret.
    w.fake.set(Behaviour::Issue {
        ttl: TTL,
        expires_in: None,
    });
    w.vault.put(oauth("s3cr3t-two")).await.unwrap();
    w.token(0).await;
    assert_eq!(w.fake.calls(), 3);
    assert_eq!(w.fake.secrets.lock().unwrap().last().unwrap(), "s3cr3t-two");
}

#[tokio::test(start_paused = true)]
async fn a_replaced_credential_never_serves_its_old_token() {
    let w = world().await;
    let a = w.token(0).await;
    w.vault.put(oauth("s3cr3t-two")).await.unwrap();
    let b = w.token(0).await;
    assert_ne!(a, b);
    assert_eq!(
        *w.fake.secrets.lock().unwrap(),
        ["s3cr3t-one", "s3cr3t-two"]
    );
    assert_eq!(w.bearers.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_credential_drops_its_token() {
    let w = world().await;
    let a = w.token(0).await;
    w.vault.delete(NAME).await.unwrap();
    w.bearers.sweep();
    assert!(w.bearers.is_empty(), "sweep dropped the entry");
    assert!(matches!(w.error(0).await, Error::CredentialNotFound { .. }));
    w.vault.put(oauth("s3cr3t-one")).await.unwrap();
    assert_ne!(w.token(0).await, a, "a new credential gets a new token");
    assert_eq!(w.fake.calls(), 2);
    w.vault.delete(NAME).await.unwrap();
    w.error(0).await;
    assert!(
        w.bearers.is_empty(),
        "a lookup of a deleted name drops the entry"
    );
}

#[tokio::test(start_paused = true)]
async fn min_ttl_forces_a_fresh_token_and_refuses_the_impossible() {
    let w = world().await;
    let a = w.token(0).await;
    advance(100.0).await;
    assert_eq!(w.token(3000).await, a, "3500 s left is enough");
    let b = w.token(3550).await;
    assert_ne!(a, b);
    assert_eq!(w.fake.calls(), 2);
    assert_eq!(
        w.token(3590).await,
        b,
        "a brand-new token lasts its lifetime"
    );
    advance(10.0).await;
    for min_ttl in [3599, 7200] {
        let err = w.error(min_ttl).await;
        assert!(matches!(err, Error::MinTtlUnreachable { .. }), "{err}");
    }
    assert_eq!(w.fake.calls(), 2, "impossible asks cost no request");
}

#[tokio::test(start_paused = true)]
async fn other_kinds_and_unknown_names_are_refused() {
    let w = world().await;
    let api_key = Credential {
        name: "key".into(),
        secret: Secret::ApiKey {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            key_sid: "SK0123456789abcdef0123456789abcdef".into(),
            secret: crate::credential::SealedSecret::from("s3cr3t-key"),
            key_type: KeyType::Standard,
            lifecycle: Default::default(),
        },
        ..oauth("x")
    };
    let auth_token = Credential {
        name: "tok".into(),
        secret: Secret::AuthToken {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: crate::credential::SealedSecret::from("s3cr3t-token"),
            secondary_auth_token: None,
            rotation: None,
        },
        ..oauth("x")
    };
    w.vault.put(api_key).await.unwrap();
    w.vault.put(auth_token).await.unwrap();
    for (name, hint) in [("key", "MintAccessToken"), ("tok", "ValidateWebhook")] {
        let err = w.bearers.get(name, Duration::ZERO).await.err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, Error::WrongCredentialKind { .. }), "{text}");
        assert!(
            text.contains("oauth_client") && text.contains(hint),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    let err = w.bearers.get("nope", Duration::ZERO).await.err().unwrap();
    assert!(matches!(err, Error::CredentialNotFound { .. }));
    assert_eq!(w.fake.calls(), 0);
}

/// The console's view of an entry: times and the last outcome, never the token.
#[tokio::test(start_paused = true)]
async fn entry_states_say_what_happened_without_the_token() {
    use super::{EntryState, LastOutcome};
    let w = world().await;
    assert_eq!(w.bearers.entry_state(NAME), None, "never requested");
    let token = w.token(0).await;
    let state = w.bearers.entry_state(NAME).expect("an entry");
    assert_eq!(state.last, LastOutcome::Ok);
    assert!(!state.refreshing);
    let (received, expires) = (state.received_at.unwrap(), state.expires_at.unwrap());
    let lifetime = expires.duration_since(received).unwrap();
    assert!(
        lifetime <= Duration::from_secs(TTL) && lifetime > Duration::from_secs(TTL - 1),
        "{lifetime:?}: the token's lifetime, from its request"
    );
    assert!(
        !format!("{state:?}").contains(&token),
        "no token in the state"
    );

    w.fake.set(Behaviour::Fail(Failure::Rejected {
        status: 401,
        code: Some(20003),
        message: "Authenticate".into(),
        more_info: None,
    }));
    w.vault.put(oauth("s3cr3t-two")).await.unwrap();
    w.error(0).await;
    let rejected = w.bearers.entry_state(NAME).expect("an entry");
    assert_eq!(
        rejected.last,
        LastOutcome::Rejected {
            status: 401,
            code: Some(20003)
        }
    );
    assert_eq!(rejected.expires_at, None, "the new version has no token");

    w.fake.set(Behaviour::Fail(unavailable()));
    w.vault.put(oauth("s3cr3t-three")).await.unwrap();
    w.error(0).await;
    match w.bearers.entry_state(NAME) {
        Some(EntryState {
            last: LastOutcome::Unavailable { retry_at: Some(at) },
            ..
        }) => assert!(at > w.fake.clock.now(), "a retry time ahead"),
        other => panic!("not unavailable: {other:?}"),
    }
}
