//! Issue 18 (rotation), through the real daemon: an `auth_token` credential
//! with a secondary Auth Token validates webhooks signed with either and
//! says which matched; stored through the Admin API and through
//! `credential add --secondary-stdin`; replaced without it, the secondary's
//! signatures stop validating. Tokens are random per run and never appear in
//! the daemon's log.

use base64::Engine as _;
use hmac::Mac as _;
use tonic::Code;
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, random_secret};

/// Twilio's signature (WIRE.md 3.1): HMAC-SHA1 of the URL and the sorted
/// parameters, standard base64.
fn sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut text = url.to_owned();
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn put(name: &str, account_sid: &str, primary: &str, secondary: &str) -> pb::PutCredentialRequest {
    pb::PutCredentialRequest {
        manager: String::new(),
        name: name.into(),
        labels: Default::default(),
        credential: Some(pb::put_credential_request::Credential::AuthToken(
            pb::AuthTokenCredential {
                account_sid: account_sid.into(),
                auth_token: primary.into(),
                secondary_auth_token: secondary.into(),
            },
        )),
    }
}

const URL: &str = "https://hooks.example.com/sms?tenant=7";
const PARAMS: [(&str, &str); 3] = [
    ("Body", "rotate me"),
    ("From", "+15005550006"),
    ("To", "+15005550001"),
];

fn request(credential: &str, token: &str) -> pb::ValidateWebhookRequest {
    pb::ValidateWebhookRequest {
        credential: credential.into(),
        url: URL.into(),
        params: PARAMS
            .iter()
            .map(|(name, value)| pb::FormParam {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        signature: sign(token, URL, &PARAMS),
        ..Default::default()
    }
}

/// Whether the Admin API reports a secondary Auth Token for `hooks`.
async fn has_secondary(admin: &pb::admin_client::AdminClient<tonic::transport::Channel>) -> bool {
    admin
        .clone()
        .get_credential(pb::GetCredentialRequest {
            name: "hooks".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap()
        .has_secondary_auth_token
}

/// (valid, matched) for a request signed with `token`.
async fn verdict(
    client: &mut pb::broker_client::BrokerClient<tonic::transport::Channel>,
    credential: &str,
    token: &str,
) -> (bool, pb::WebhookSecret) {
    let answer = client
        .validate_webhook(request(credential, token))
        .await
        .unwrap()
        .into_inner();
    (answer.valid, answer.matched())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_signed_with_either_auth_token_validate_while_both_are_stored() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let (primary, secondary, stranger) = (random_secret(""), random_secret(""), random_secret(""));
    let mut admin = broker.admin().await;
    let mut client = broker.broker().await;

    admin
        .put_credential(put("hooks", &f.account_sid, &primary, &secondary))
        .await
        .unwrap();
    use pb::WebhookSecret::{Primary, Secondary, Unspecified};
    assert_eq!(
        verdict(&mut client, "hooks", &primary).await,
        (true, Primary)
    );
    assert_eq!(
        verdict(&mut client, "hooks", &secondary).await,
        (true, Secondary)
    );
    assert_eq!(
        verdict(&mut client, "hooks", &stranger).await,
        (false, Unspecified)
    );
    assert!(has_secondary(&admin).await);
    let show = broker.cli(&["credential", "show", "hooks", "--json"], "");
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["secondary_auth_token"], "stored", "{shown}");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(!shown.contains(&primary) && !shown.contains(&secondary));

    // The same token twice is a mistake, named by field.
    let same = admin
        .put_credential(put("twice", &f.account_sid, &primary, &primary))
        .await
        .unwrap_err();
    assert_eq!(same.code(), Code::InvalidArgument);
    assert!(
        same.message().contains("auth_token.secondary_auth_token"),
        "{}",
        same.message()
    );
    assert!(!same.message().contains(&primary));

    // After the promotion: the new primary alone. The old token no longer validates.
    admin
        .put_credential(put("hooks", &f.account_sid, &secondary, ""))
        .await
        .unwrap();
    assert_eq!(
        verdict(&mut client, "hooks", &secondary).await,
        (true, Primary)
    );
    assert_eq!(
        verdict(&mut client, "hooks", &primary).await,
        (false, Unspecified)
    );
    assert!(!has_secondary(&admin).await);

    // The CLI: primary from a file, secondary from stdin.
    let dir = tempfile::tempdir().unwrap();
    let primary_file = dir.path().join("primary");
    std::fs::write(&primary_file, format!("{primary}\n")).unwrap();
    let out = broker.cli(
        &[
            "credential",
            "add",
            "cli-hooks",
            "--auth-token",
            "--account-sid",
            &f.account_sid,
            "--secret-file",
            primary_file.to_str().unwrap(),
            "--secondary-stdin",
        ],
        &format!("{secondary}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        verdict(&mut client, "cli-hooks", &primary).await,
        (true, Primary)
    );
    assert_eq!(
        verdict(&mut client, "cli-hooks", &secondary).await,
        (true, Secondary)
    );

    // A secondary goes with --auth-token only.
    let out = broker.cli(
        &[
            "credential",
            "add",
            "not-a-token",
            "--test",
            "--account-sid",
            &f.account_sid,
            "--secret-file",
            primary_file.to_str().unwrap(),
            "--secondary-stdin",
        ],
        &secondary,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auth-token only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log = broker.log_text();
    for token in [&primary, &secondary] {
        assert!(!log.contains(token.as_str()), "a token reached the log");
    }

    // The secondary survives a restart (it is in the sealed record).
    let options = broker.same_data();
    let mut broker = broker;
    broker.terminate();
    drop(broker);
    let broker = Broker::start(options);
    let mut client = broker.broker().await;
    assert_eq!(
        verdict(&mut client, "cli-hooks", &secondary).await,
        (true, Secondary)
    );
    assert_eq!(
        verdict(&mut client, "cli-hooks", &stranger).await,
        (false, Unspecified)
    );
}

/// The Auth Token rotation as webhook receivers live through it, with
/// callers validating throughout: `[P]`, then `[P, S]` (Twilio created the
/// secondary), then `[S, P]` (Twilio promoted it: it signs with S, requests
/// signed with P are still in flight), then `[S]`. While both are stored,
/// every request signed with either validates: zero failed calls across the
/// two replacements, and no call ever fails with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_webhook_fails_while_the_stored_tokens_are_swapped_under_load() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let (p, s) = (random_secret(""), random_secret(""));
    let mut admin = broker.admin().await;
    admin
        .put_credential(put("live", &f.account_sid, &p, &s))
        .await
        .unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for token in [p.clone(), s.clone()] {
        let mut client = broker.broker().await;
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            let (mut calls, mut failures) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || calls < 50 {
                match client.validate_webhook(request("live", &token)).await {
                    Ok(answer) if answer.get_ref().valid => {}
                    Ok(answer) => failures.push(answer.into_inner().reason),
                    Err(status) => failures.push(format!("{status:?}")),
                }
                calls += 1;
            }
            (calls, failures)
        }));
    }
    // [P, S] -> [S, P] -> [P, S] ... : both stay stored across every swap.
    for round in 0..20 {
        let (first, second) = if round % 2 == 0 { (&s, &p) } else { (&p, &s) };
        admin
            .put_credential(put("live", &f.account_sid, first, second))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for caller in callers {
        let (calls, failures) = caller.await.unwrap();
        assert!(calls >= 50);
        assert!(
            failures.is_empty(),
            "{} of {calls} calls failed: {:?}",
            failures.len(),
            &failures[..1]
        );
    }

    // [S]: the old primary is retired; its signatures stop validating.
    admin
        .put_credential(put("live", &f.account_sid, &s, ""))
        .await
        .unwrap();
    let mut client = broker.broker().await;
    use pb::WebhookSecret::{Primary, Unspecified};
    assert_eq!(verdict(&mut client, "live", &s).await, (true, Primary));
    assert_eq!(verdict(&mut client, "live", &p).await, (false, Unspecified));
}
