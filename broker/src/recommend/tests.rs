//! The decision framework's tests: one exhaustive walk over every combination
//! of needs (and every kind of stored credential) that checks the invariants
//! and that every rule, limit and review check is reachable; then scenarios
//! that pin the framework's paths one by one.

use std::collections::{BTreeSet, HashSet};
use std::time::SystemTime;

use super::limits::LIMITS;
use super::notes::NOTES;
use super::review::{CHECKS, LABEL_CHECKS, MISMATCH};
use super::rules::{CHOICES, DEFAULT_CHOICE};
use super::*;
use crate::credential::{Credential, KeyType, Secret};

const RESOURCE_SETS: &[&[&str]] = &[
    &[],
    &["Messages"],
    &["Calls", "Lookups/PhoneNumbers"],
    &["Messages", "Recordings"],
    &["Keys"],
    &["Mesages"],
];

/// Every combination of needs the request can express (resources sampled).
fn every_needs() -> Vec<Needs> {
    let mut out = Vec::new();
    for environment in Environment::ALL {
        for side in [Side::Server, Side::Client] {
            let sdks: Vec<Option<ClientSdk>> = match side {
                Side::Server => vec![None],
                Side::Client => std::iter::once(None)
                    .chain(ClientSdk::ALL.map(Some))
                    .collect(),
            };
            for sdk in sdks {
                for bits in 0..16u8 {
                    for resources in RESOURCE_SETS {
                        out.push(Needs {
                            environment,
                            side,
                            time_limited: bits & 1 != 0,
                            charge_free: bits & 2 != 0,
                            needs_account_management: bits & 4 != 0,
                            least_privilege: bits & 8 != 0,
                            resources: resources.iter().map(|r| r.to_string()).collect(),
                            client_sdk: sdk,
                        });
                    }
                }
            }
        }
    }
    out
}

const PLANTED: &str = "planted-secret-5f0c8e2a9b7d4e61";

fn stored(secret: Secret, label: Option<&str>) -> Credential {
    Credential {
        name: "reviewed".into(),
        labels: label
            .map(|l| [("environment".to_owned(), l.to_owned())].into())
            .unwrap_or_default(),
        created_at: SystemTime::UNIX_EPOCH,
        updated_at: SystemTime::UNIX_EPOCH,
        secret,
    }
}

/// One credential of every kind and key type.
fn every_secret() -> Vec<Secret> {
    let ac = "AC0123456789abcdef0123456789abcdef".to_owned();
    let token = || crate::credential::SealedSecret::from(PLANTED);
    let mut out = vec![
        Secret::AuthToken {
            account_sid: ac.clone(),
            auth_token: token(),
            secondary_auth_token: None,
            rotation: None,
        },
        Secret::Test {
            account_sid: ac.clone(),
            auth_token: token(),
        },
        Secret::OAuthClient {
            account_sid: ac.clone(),
            client_id: "OQ0123456789abcdef0123456789abcdef".into(),
            client_secret: token(),
        },
    ];
    for key_type in [KeyType::Main, KeyType::Standard, KeyType::Restricted] {
        out.push(Secret::ApiKey {
            account_sid: ac.clone(),
            key_sid: "SK0123456789abcdef0123456789abcdef".into(),
            secret: token(),
            key_type,
            lifecycle: Default::default(),
        });
    }
    out
}

fn all_text(r: &Recommendation) -> Vec<&str> {
    r.reasons
        .iter()
        .chain(&r.warnings)
        .chain(&r.next_steps)
        .map(String::as_str)
        .collect()
}

/// The one walk: every combination, every invariant, every id reachable.
#[test]
fn every_rule_limit_and_check_is_reachable_and_every_answer_is_sound() {
    let mut fired: HashSet<&str> = HashSet::new();
    let mut limits_seen: HashSet<&str> = HashSet::new();
    let secrets = every_secret();
    for needs in every_needs() {
        let r = recommend(&needs).expect("every combination is valid");
        let facts = rules::Facts::new(&needs);
        let what = format!("{needs:?} -> {:?}/{:?}", r.method, r.key_type);

        // A client never holds a secret; it gets tokens signed by a key that can sign.
        if needs.side == Side::Client {
            assert_eq!(r.method, Method::AccessToken, "{what}");
            assert_eq!(r.key_type, Some(KeyType::Standard), "{what}");
        }
        // Test credentials only where they work.
        if r.method == Method::TestCredentials {
            assert!(needs.charge_free, "{what}");
            assert_ne!(needs.environment, Environment::Production, "{what}");
            assert!(facts.test_blockers.is_empty(), "{what}");
            assert!(!facts.account_management, "{what}");
        }
        // Production never gets the Auth Token or test credentials.
        if needs.environment == Environment::Production {
            assert!(
                !matches!(r.method, Method::AuthToken | Method::TestCredentials),
                "{what}"
            );
        }
        // Account management on a server means a Main key, except a plain prototype's Auth Token.
        if needs.side == Side::Server && facts.account_management {
            let ok = r.key_type == Some(KeyType::Main)
                || (facts.plain_prototype && r.method == Method::AuthToken);
            assert!(ok, "{what}");
        }
        // The Auth Token only for a plain server prototype, always with the warning.
        if r.method == Method::AuthToken {
            assert!(
                facts.plain_prototype && needs.side == Side::Server,
                "{what}"
            );
            assert!(
                r.rules.contains(&"auth-token-switch-before-deploy"),
                "{what}"
            );
        }
        // Key types go with API keys and Access Tokens only; never restricted for minting.
        assert_eq!(
            r.key_type.is_some(),
            matches!(r.method, Method::ApiKey | Method::AccessToken),
            "{what}"
        );
        // Every answer explains itself and says what to do; nothing is left unrendered.
        assert!(!r.reasons.is_empty() && !r.next_steps.is_empty(), "{what}");
        for text in all_text(&r) {
            assert!(
                !text.contains('%'),
                "unrendered slot in {text:?} for {what}"
            );
        }
        let ids: BTreeSet<_> = r.limits.iter().map(|l| l.id).collect();
        assert_eq!(ids.len(), r.limits.len(), "duplicate limit for {what}");

        fired.extend(r.rules.iter().copied());
        limits_seen.extend(ids);

        for secret in &secrets {
            for label in [
                None,
                Some("production"),
                Some("test"),
                Some("dev"),
                Some("staging"),
            ] {
                let credential = stored(secret.clone(), label);
                let findings = review::review(&credential, &needs);
                let ids: BTreeSet<_> = findings.iter().map(|f| f.id).collect();
                assert_eq!(ids.len(), findings.len(), "{what}");
                for f in &findings {
                    assert!(!f.text.contains(PLANTED), "secret in finding {}", f.id);
                    assert!(!f.text.contains('%'), "unrendered slot in {:?}", f.text);
                    fired.insert(f.id);
                }
            }
        }
    }

    // The age check, on every kind: an old secret fires it, a fresh one not.
    for secret in &secrets {
        let credential = stored(secret.clone(), Some("production"));
        let max = std::time::Duration::from_secs(90 * 86_400);
        let old = review::age_findings(&credential, max * 2, max);
        assert_eq!(old.len(), 1);
        assert!(!old[0].text.contains(PLANTED) && !old[0].text.contains('%'));
        fired.insert(old[0].id);
        assert!(review::age_findings(&credential, max, max).is_empty());
    }

    let mut every_id: Vec<&str> = CHOICES.iter().map(|c| c.id).collect();
    every_id.push(review::AGE_CHECK.id);
    every_id.push(DEFAULT_CHOICE.id);
    every_id.extend(NOTES.iter().map(|n| n.id));
    every_id.extend(CHECKS.iter().chain(LABEL_CHECKS).map(|c| c.id));
    every_id.push(MISMATCH.id);
    let unique: HashSet<_> = every_id.iter().collect();
    assert_eq!(unique.len(), every_id.len(), "rule ids must be unique");
    for id in &every_id {
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{id} is not kebab-case"
        );
        assert!(fired.contains(id), "rule {id} is never reached");
    }
    for limit in LIMITS {
        assert!(
            limits_seen.contains(limit.id),
            "limit {} is never reached",
            limit.id
        );
        assert!(limit.text.ends_with('.'), "{}", limit.id);
        assert_eq!(
            limit.twilio_error_code == 20003,
            limit.http_status == 401,
            "{}",
            limit.id
        );
    }
}

fn needs(env: Environment, side: Side, edit: impl FnOnce(&mut Needs)) -> Needs {
    let mut n = Needs::new(env, side);
    edit(&mut n);
    n
}

/// A scenario: its name, the needs, the method and key type it must get, ids
/// (of rules or limits) that must appear, and ids that must not.
type Scenario = (
    &'static str,
    Needs,
    (Method, Option<KeyType>),
    &'static [&'static str],
    &'static [&'static str],
);

fn check((name, needs, want, must, must_not): Scenario) {
    let r = recommend(&needs).expect(name);
    assert_eq!((r.method, r.key_type), want, "{name}");
    let ids: Vec<&str> = r
        .rules
        .iter()
        .copied()
        .chain(r.limits.iter().map(|l| l.id))
        .collect();
    for id in must {
        assert!(ids.contains(id), "{name}: {id} missing from {ids:?}");
    }
    for id in must_not {
        assert!(!ids.contains(id), "{name}: {id} should not apply");
    }
}

#[test]
fn scenarios_pin_every_path_of_the_framework() {
    use Environment::{Production as Prod, Prototype as Proto, Test};
    use KeyType::{Main, Restricted, Standard};
    use Method::*;
    use Side::{Client, Server};
    let res = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    #[rustfmt::skip]
    let scenarios: Vec<Scenario> = vec![
        ("prototype server: Auth Token, switch before deploying",
         needs(Proto, Server, |_| {}), (AuthToken, None),
         &["prototype-auth-token", "auth-token-switch-before-deploy", "steps-auth-token", "auth-token-rotation-breaks-keys"],
         &["key-secret-shown-once"]),
        ("prototype server managing keys: the Auth Token reaches /Keys",
         needs(Proto, Server, |n| n.needs_account_management = true), (AuthToken, None),
         &[], &["standard-key-no-accounts-keys"]),
        ("prototype server wanting expiry: OAuth2 beats the shortcut",
         needs(Proto, Server, |n| n.time_limited = true), (OAuth2, None),
         &["explicit-needs-over-prototype", "oauth2-one-hour-tokens"], &[]),
        ("prototype server, least privilege: Restricted key",
         needs(Proto, Server, |n| { n.least_privilege = true; n.resources = res(&["Messages"]); }),
         (ApiKey, Some(Restricted)),
         &["explicit-needs-over-prototype", "restricted-key-iam-v1-only"], &[]),
        ("production server: Standard key",
         needs(Prod, Server, |_| {}), (ApiKey, Some(Standard)),
         &["server-standard-key", "steps-standard-key", "steps-webhooks", "steps-doctor-gate",
           "standard-key-no-accounts-keys", "key-secret-shown-once"],
         &["auth-token-rotation-breaks-keys"]),
        ("production server managing accounts: Main key",
         needs(Prod, Server, |n| n.needs_account_management = true), (ApiKey, Some(Main)),
         &["account-management-main-key", "main-key-is-full-access", "steps-main-key",
           "main-key-console-only", "standard-key-no-accounts-keys"], &[]),
        ("resources naming Keys imply account management",
         needs(Prod, Server, |n| n.resources = res(&["keys"])), (ApiKey, Some(Main)),
         &["resources-imply-account-management"], &[]),
        ("production server, least privilege: Restricted via IAM v1",
         needs(Prod, Server, |n| { n.least_privilege = true; n.resources = res(&["Messages"]); }),
         (ApiKey, Some(Restricted)),
         &["least-privilege-restricted-key", "steps-restricted-key", "restricted-key-iam-v1-only",
           "restricted-key-policy-limits", "restricted-key-cannot-mint"],
         &["standard-key-no-accounts-keys", "least-privilege-without-resources"]),
        ("least privilege without resources asks for them",
         needs(Prod, Server, |n| n.least_privilege = true), (ApiKey, Some(Restricted)),
         &["least-privilege-without-resources"], &[]),
        ("least privilege plus account management: Main, with the conflict said",
         needs(Prod, Server, |n| { n.least_privilege = true; n.needs_account_management = true; }),
         (ApiKey, Some(Main)),
         &["account-management-not-least-privilege"], &["restricted-key-iam-v1-only"]),
        ("production server, time-limited: OAuth2",
         needs(Prod, Server, |n| n.time_limited = true), (OAuth2, None),
         &["server-time-limited-oauth2", "steps-oauth2", "oauth2-needs-recent-sdk",
           "oauth2-client-credentials-only", "oauth2-one-hour-tokens"],
         &["key-secret-shown-once"]),
        ("time-limited and least privilege: OAuth2 with a tight app policy",
         needs(Prod, Server, |n| { n.time_limited = true; n.least_privilege = true; n.resources = res(&["Calls"]); }),
         (OAuth2, None), &["oauth2-app-policy"], &[]),
        ("time-limited account management: Main, no expiring credential exists",
         needs(Prod, Server, |n| { n.time_limited = true; n.needs_account_management = true; }),
         (ApiKey, Some(Main)),
         &["account-management-not-time-limited", "main-key-console-only"], &["oauth2-one-hour-tokens"]),
        ("browser client wanting least privilege still needs a signing key",
         needs(Prod, Client, |n| { n.least_privilege = true; n.client_sdk = Some(ClientSdk::Video); }),
         (AccessToken, Some(Standard)),
         &["client-side-access-token", "client-least-privilege-via-grants", "steps-access-token",
           "restricted-key-cannot-mint", "access-token-not-revocable", "key-secret-shown-once"],
         &["restricted-key-iam-v1-only", "client-sdk-unspecified"]),
        ("prototype client: still an Access Token",
         needs(Proto, Client, |n| n.client_sdk = Some(ClientSdk::Voice)), (AccessToken, Some(Standard)),
         &["client-prototype-too"], &["auth-token-rotation-breaks-keys"]),
        ("client wanting expiry, REST resources and account management",
         needs(Test, Client, |n| { n.time_limited = true; n.needs_account_management = true; n.resources = res(&["Messages"]); }),
         (AccessToken, Some(Standard)),
         &["client-tokens-expire", "client-rest-resources", "client-account-management", "client-sdk-unspecified"],
         &[]),
        ("charge-free client: there is no such thing",
         needs(Test, Client, |n| { n.charge_free = true; n.client_sdk = Some(ClientSdk::Sync); }),
         (AccessToken, Some(Standard)),
         &["charge-free-client-sdks", "test-credentials-few-resources"], &[]),
        ("charge-free tests of supported resources: test credentials",
         needs(Test, Server, |n| { n.charge_free = true; n.resources = res(&["Messages", "Calls", "IncomingPhoneNumbers", "Lookups"]); }),
         (TestCredentials, None),
         &["charge-free-test-credentials", "steps-test-credentials", "test-credentials-no-callbacks",
           "test-credentials-few-resources"],
         &["key-secret-shown-once", "test-credentials-no-resources"]),
        ("charge-free tests naming nothing: test credentials, with the list",
         needs(Proto, Server, |n| n.charge_free = true), (TestCredentials, None),
         &["test-credentials-no-resources"], &[]),
        ("charge-free tests of an unsupported resource: never test credentials",
         needs(Test, Server, |n| { n.charge_free = true; n.resources = res(&["Messages", "Recordings"]); }),
         (ApiKey, Some(Standard)),
         &["charge-free-unsupported-resources", "test-env-like-production", "test-credentials-few-resources"],
         &[]),
        ("charge-free prototype of an unsupported resource: Auth Token, charged",
         needs(Proto, Server, |n| { n.charge_free = true; n.resources = res(&["Verify"]); }),
         (AuthToken, None), &["charge-free-unsupported-resources"], &[]),
        ("charge-free account management: /Accounts is not a test resource",
         needs(Test, Server, |n| { n.charge_free = true; n.needs_account_management = true; }),
         (ApiKey, Some(Main)), &["charge-free-unsupported-resources"], &[]),
        ("a misspelt resource is warned about, not trusted",
         needs(Test, Server, |n| { n.charge_free = true; n.resources = res(&["Mesages"]); }),
         (ApiKey, Some(Standard)), &["unknown-resources", "charge-free-unsupported-resources"], &[]),
        ("charge-free in production is called out",
         needs(Prod, Server, |n| { n.charge_free = true; n.resources = res(&["Messages"]); }),
         (ApiKey, Some(Standard)), &["charge-free-not-in-production"], &[]),
    ];
    for scenario in scenarios {
        check(scenario);
    }
}

#[test]
fn texts_name_the_request() {
    let mut n = Needs::new(Environment::Test, Side::Server);
    n.charge_free = true;
    n.resources = vec!["Messages".into(), "/Recordings.json".into()];
    let r = recommend(&n).expect("valid");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("cannot serve Recordings")),
        "{:?}",
        r.warnings
    );

    let mut n = Needs::new(Environment::Production, Side::Client);
    n.client_sdk = Some(ClientSdk::Video);
    let r = recommend(&n).expect("valid");
    assert!(
        r.next_steps
            .iter()
            .any(|s| s.contains("Video grant") && s.contains("MintAccessToken"))
    );
    assert!(
        r.next_steps
            .iter()
            .any(|s| s.contains("--label environment=production"))
    );
}

#[test]
fn contradictions_and_malformed_input_name_the_field() {
    let mut n = Needs::new(Environment::Production, Side::Server);
    n.client_sdk = Some(ClientSdk::Voice);
    let err = recommend(&n).expect_err("sdk on a server").to_string();
    assert!(err.starts_with("client_sdk "), "{err}");
    let mut n = Needs::new(Environment::Production, Side::Server);
    n.resources = vec!["Messages".into(), "bad name".into()];
    let err = recommend(&n).expect_err("bad resource").to_string();
    assert!(err.starts_with("resources[1] "), "{err}");
}

#[test]
fn review_scenarios() {
    let secrets = every_secret();
    let [auth, test, oauth, main, standard, restricted] = &secrets[..] else {
        panic!("six kinds")
    };
    let prod_server = Needs::new(Environment::Production, Side::Server);
    let mut prod_client = Needs::new(Environment::Production, Side::Client);
    prod_client.client_sdk = Some(ClientSdk::Voice);
    let mut manage = prod_server.clone();
    manage.needs_account_management = true;
    let cases: Vec<(&Secret, Option<&str>, &Needs, &[&str])> = vec![
        (
            auth,
            Some("production"),
            &prod_server,
            &["auth-token-in-production"],
        ),
        (
            auth,
            Some("prod"),
            &prod_client,
            &["auth-token-in-production"],
        ),
        (
            auth,
            None,
            &prod_server,
            &["auth-token-in-production", "no-environment-label"],
        ),
        (
            test,
            Some("production"),
            &prod_server,
            &["test-credential-in-production"],
        ),
        (
            main,
            Some("production"),
            &prod_server,
            &["main-key-where-narrower-would-do"],
        ),
        (
            main,
            Some("production"),
            &prod_client,
            &["main-key-where-narrower-would-do"],
        ),
        (main, Some("production"), &manage, &[]),
        (
            standard,
            Some("production"),
            &manage,
            &["standard-key-for-account-management"],
        ),
        (
            restricted,
            Some("production"),
            &prod_client,
            &["restricted-key-used-for-minting"],
        ),
        (standard, Some("production"), &prod_server, &[]),
        (standard, Some("production"), &prod_client, &[]),
        (
            oauth,
            Some("production"),
            &prod_client,
            &["does-not-match-recommendation"],
        ),
        (
            standard,
            Some("test"),
            &prod_server,
            &["environment-label-mismatch"],
        ),
        (standard, Some("staging"), &prod_server, &[]),
    ];
    for (secret, label, needs, want) in cases {
        let credential = stored(secret.clone(), label);
        let got: Vec<_> = review(&credential, needs)
            .expect("valid")
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(
            got,
            want,
            "{:?} labelled {label:?} for {needs:?}",
            secret.kind()
        );
    }
}

#[test]
fn the_age_of_a_secret_counts_from_its_last_put_or_rotation() {
    let secrets = every_secret();
    let mut credential = stored(secrets[0].clone(), Some("production"));
    let now = SystemTime::now();
    credential.updated_at = now - std::time::Duration::from_secs(100 * 86_400);
    let age = review::secret_age(&credential, now);
    assert_eq!(age.as_secs(), 100 * 86_400);
    let found = review::age_findings(
        &credential,
        age,
        std::time::Duration::from_secs(90 * 86_400),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "secret-older-than-max-age");
    assert!(found[0].text.contains("100 days"), "{}", found[0].text);
    assert!(found[0].text.contains("90 days"), "{}", found[0].text);
    assert!(found[0].text.contains("\"reviewed\""), "{}", found[0].text);
    // A clock that went back is no age, and no finding.
    credential.updated_at = now + std::time::Duration::from_secs(60);
    assert_eq!(review::secret_age(&credential, now).as_secs(), 0);
}
