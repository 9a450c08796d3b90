//! Recommend through the real daemon: the framework's answers over gRPC, the
//! review of stored credentials against their labels, INVALID_ARGUMENT and
//! NOT_FOUND at the edge, the CLI (local and remote give the same answer),
//! and grpcurl with enum names as a user would type them.

use tonic::Code;
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, run_cli};
use crate::oracles;

fn request(env: pb::Environment, side: pb::Side) -> pb::RecommendRequest {
    pb::RecommendRequest {
        environment: env.into(),
        side: side.into(),
        ..Default::default()
    }
}

fn labelled(mut put: pb::PutCredentialRequest, env: &str) -> pb::PutCredentialRequest {
    put.labels.insert("environment".into(), env.into());
    put
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| id(i).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_reviews_over_grpc() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    for put in [
        labelled(f.auth_token("prod-token"), "production"),
        labelled(f.test("prod-test"), "production"),
        labelled(f.api_key("prod-main", pb::KeyType::Main), "production"),
        labelled(
            f.api_key("prod-restricted", pb::KeyType::Restricted),
            "production",
        ),
        labelled(
            f.api_key("prod-standard", pb::KeyType::Standard),
            "production",
        ),
        f.oauth_client("unlabelled-oauth"),
    ] {
        admin.put_credential(put).await.unwrap();
    }
    let mut client = broker.broker().await;
    let mut responses = Vec::new();

    // Production server managing accounts: a Main key, with 20003 named.
    let mut ask = request(pb::Environment::Production, pb::Side::Server);
    ask.needs_account_management = true;
    let r = client.recommend(ask).await.unwrap().into_inner();
    assert_eq!(
        (r.method(), r.key_type()),
        (pb::Method::ApiKey, pb::KeyType::Main)
    );
    let limit = r
        .limits
        .iter()
        .find(|l| l.id == "standard-key-no-accounts-keys")
        .expect("20003 limit");
    assert_eq!((limit.twilio_error_code, limit.http_status), (20003, 401));
    assert_eq!(r.rules[0], "account-management-main-key");
    assert!(!r.reasons.is_empty() && !r.next_steps.is_empty());
    responses.push(format!("{r:?}"));

    // A browser client wanting least privilege, reviewing a restricted key.
    let mut ask = request(pb::Environment::Production, pb::Side::Client);
    ask.least_privilege = true;
    ask.client_sdk = pb::ClientSdk::Video.into();
    ask.credential = "prod-restricted".into();
    let r = client.recommend(ask).await.unwrap().into_inner();
    assert_eq!(
        (r.method(), r.key_type()),
        (pb::Method::AccessToken, pb::KeyType::Standard)
    );
    assert!(ids(&r.limits, |l| &l.id).contains(&"restricted-key-cannot-mint".to_owned()));
    assert!(r.next_steps.iter().any(|s| s.contains("MintAccessToken")));
    assert_eq!(
        ids(&r.review, |f| &f.id),
        ["restricted-key-used-for-minting"]
    );
    responses.push(format!("{r:?}"));

    // Charge-free tests of a resource test credentials lack: not test credentials.
    let mut ask = request(pb::Environment::Test, pb::Side::Server);
    ask.charge_free = true;
    ask.resources = vec!["Messages".into(), "Recordings".into()];
    let r = client.recommend(ask).await.unwrap().into_inner();
    assert_ne!(r.method(), pb::Method::TestCredentials);
    assert!(r.warnings.iter().any(|w| w.contains("Recordings")));
    let limit = r
        .limits
        .iter()
        .find(|l| l.id == "test-credentials-few-resources")
        .expect("403 limit");
    assert_eq!(limit.http_status, 403);

    // The review of each stored credential for a plain production server.
    for (name, want) in [
        ("prod-token", vec!["auth-token-in-production"]),
        ("prod-test", vec!["test-credential-in-production"]),
        ("prod-main", vec!["main-key-where-narrower-would-do"]),
        ("prod-standard", vec![]),
        (
            "unlabelled-oauth",
            vec!["does-not-match-recommendation", "no-environment-label"],
        ),
    ] {
        let mut ask = request(pb::Environment::Production, pb::Side::Server);
        ask.credential = name.into();
        let r = client.recommend(ask).await.unwrap().into_inner();
        assert_eq!(ids(&r.review, |f| &f.id), want, "{name}");
        assert!(
            r.review.iter().all(|f| f.text.contains(name)),
            "{name}: {:?}",
            r.review
        );
        responses.push(format!("{r:?}"));
    }

    let mut ask = request(pb::Environment::Production, pb::Side::Server);
    ask.credential = "no-such-credential".into();
    let status = client.recommend(ask).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("no-such-credential"));

    for secret in f.secrets() {
        for response in &responses {
            assert!(!response.contains(secret), "a response carried a secret");
        }
        assert!(
            !broker.log_text().contains(secret),
            "the log carried a secret"
        );
    }
}

/// Malformed requests: INVALID_ARGUMENT naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_name_the_field() {
    let broker = Broker::start(Options::default());
    let mut client = broker.broker().await;
    let with = |edit: &dyn Fn(&mut pb::RecommendRequest)| {
        let mut r = request(pb::Environment::Production, pb::Side::Server);
        edit(&mut r);
        r
    };
    let cases: Vec<(pb::RecommendRequest, &str)> = vec![
        (with(&|r| r.environment = 0), "environment"),
        (with(&|r| r.environment = 42), "environment"),
        (with(&|r| r.side = 0), "side"),
        (with(&|r| r.side = 7), "side"),
        (with(&|r| r.client_sdk = 99), "client_sdk"),
        (
            with(&|r| r.client_sdk = pb::ClientSdk::Voice.into()),
            "client_sdk",
        ),
        (
            with(&|r| r.resources = vec!["Messages".into(), "not a resource".into()]),
            "resources[1]",
        ),
        (
            with(&|r| r.resources = vec!["Calls".into(); 101]),
            "resources",
        ),
        (with(&|r| r.credential = "../etc".into()), "credential"),
    ];
    for (request, field) in cases {
        let status = client.recommend(request).await.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(&format!("{field} ")),
            "{field}: {}",
            status.message()
        );
    }
    // An unknown but well-formed resource is a warning, not an error.
    let r = client
        .recommend(with(&|r| r.resources = vec!["Mesages".into()]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.rules.contains(&"unknown-resources".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_answers_locally_and_through_the_broker_alike() {
    let args = [
        "recommend",
        "--env",
        "production",
        "--side",
        "client",
        "--client-sdk",
        "video",
        "--least-privilege",
    ];
    let local = run_cli(&args, "", &[]);
    assert!(local.status.success(), "{local:?}");
    let text = String::from_utf8_lossy(&local.stdout);
    assert!(text.starts_with("Use: Access Token"), "{text}");
    assert!(text.contains("[restricted-key-cannot-mint]"), "{text}");
    assert!(text.contains("MintAccessToken"), "{text}");

    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    admin
        .put_credential(labelled(f.auth_token("prod-token"), "production"))
        .await
        .unwrap();
    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let local = run_cli(&json_args, "", &[("TWILIO_BROKER_ADDR", "")]);
    let remote = broker.cli(&json_args, "");
    assert!(
        local.status.success() && remote.status.success(),
        "{remote:?}"
    );
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    let remote: serde_json::Value = serde_json::from_slice(&remote.stdout).unwrap();
    assert_eq!(local, remote, "local and remote answers differ");
    assert_eq!(remote["method"], "METHOD_ACCESS_TOKEN");
    assert_eq!(remote["key_type"], "KEY_TYPE_STANDARD");

    let reviewed = broker.cli(
        &[
            "recommend",
            "--env",
            "production",
            "--side",
            "server",
            "--resource",
            "Messages,Calls",
            "--credential",
            "prod-token",
        ],
        "",
    );
    let text = String::from_utf8_lossy(&reviewed.stdout);
    assert!(reviewed.status.success(), "{reviewed:?}");
    assert!(text.contains("[auth-token-in-production]"), "{text}");
    assert!(!text.contains(&f.auth_token), "the CLI printed a secret");

    let missing = broker.cli(
        &[
            "recommend",
            "--env",
            "test",
            "--side",
            "server",
            "--credential",
            "nope",
        ],
        "",
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_speaks_enum_names() {
    let Some(grpcurl) = oracles::tool("grpcurl") else {
        return;
    };
    let broker = Broker::start(Options::default());
    let out = std::process::Command::new(grpcurl)
        .args([
            "-plaintext",
            "-d",
            r#"{"environment":"ENVIRONMENT_PRODUCTION","side":"SIDE_SERVER","needs_account_management":true}"#,
            &broker.addr,
            "twilio.broker.v1.Broker/Recommend",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["method"], "METHOD_API_KEY");
    assert_eq!(answer["keyType"], "KEY_TYPE_MAIN");
}

/// A request naming only a stored credential reviews it for the environment
/// of its label, on the server side, with its age; a charge-free question
/// needs no side. The CLI does the same with `--credential` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_credential_alone_is_reviewed_with_its_age() {
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    admin
        .put_credential(labelled(f.auth_token("prod-token"), "production"))
        .await
        .unwrap();
    admin
        .put_credential(f.auth_token("unlabelled"))
        .await
        .unwrap();
    let mut client = broker.broker().await;
    let only = |name: &str| pb::RecommendRequest {
        credential: name.into(),
        ..Default::default()
    };
    let answer = client
        .recommend(only("prod-token"))
        .await
        .unwrap()
        .into_inner();
    let found = ids(&answer.review, |f| &f.id);
    assert!(
        found.contains(&"auth-token-in-production".to_owned()),
        "{found:?}"
    );
    assert!(
        !found.contains(&"secret-older-than-max-age".to_owned()),
        "a fresh secret is not old: {found:?}"
    );
    assert!(
        answer.credential_age_seconds < 60,
        "{}",
        answer.credential_age_seconds
    );
    // Without a label to take the environment from: the field, and why.
    let status = client.recommend(only("unlabelled")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("environment ") && status.message().contains("unlabelled"),
        "{}",
        status.message()
    );
    // Charge-free tests: no side needed.
    let charge_free = client
        .recommend(pb::RecommendRequest {
            environment: pb::Environment::Test.into(),
            charge_free: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(charge_free.method(), pb::Method::TestCredentials);
    // The CLI with --credential alone.
    let out = run_cli(
        &["recommend", "--credential", "prod-token"],
        "",
        &[("TWILIO_BROKER_ADDR", &broker.addr)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("auth-token-in-production"), "{text}");
    assert!(text.contains("its secret was stored"), "{text}");
    for secret in f.secrets() {
        assert!(!text.contains(secret));
    }
}
