//! ListCredentials a page at a time (issue 20): stable order, tokens that
//! survive concurrent writes, tokens bound to their caller and filter, the
//! filter grammar, and clients (Rust, CLI) that follow every page.

use tonic::Code;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use crate::callers::uds_channel;
use crate::harness::{Broker, Fixtures, Options};

fn names(page: &pb::ListCredentialsResponse) -> Vec<String> {
    page.credentials.iter().map(|c| c.name.clone()).collect()
}

async fn page(
    admin: &mut AdminClient<tonic::transport::Channel>,
    size: i32,
    token: &str,
    filter: &str,
) -> Result<pb::ListCredentialsResponse, tonic::Status> {
    admin
        .list_credentials(pb::ListCredentialsRequest {
            page_size: size,
            page_token: token.into(),
            filter: filter.into(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_stable_filtered_and_bound_to_their_caller_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
        ],
        ..Options::default()
    });
    let fixtures = Fixtures::new();
    let mut admin = broker.admin().await;
    for i in 0..25 {
        let mut put = fixtures.api_key(&format!("key-{i:02}"), pb::KeyType::Standard);
        if i % 5 == 0 {
            put.labels.insert("environment".into(), "production".into());
        }
        admin.put_credential(put).await.unwrap();
    }
    admin
        .put_credential(fixtures.auth_token("webhooks"))
        .await
        .unwrap();

    // 10, 10, 5 (+ the auth token) in name order; a write between pages
    // shows up only if it sorts after the cursor.
    let first = page(&mut admin, 10, "", "kind = api_key").await.unwrap();
    assert_eq!(names(&first).len(), 10);
    assert_eq!(names(&first)[0], "key-00");
    assert!(!first.next_page_token.is_empty());
    admin
        .put_credential(fixtures.api_key("key-00a", pb::KeyType::Standard))
        .await
        .unwrap();
    admin
        .put_credential(fixtures.api_key("key-99", pb::KeyType::Standard))
        .await
        .unwrap();
    let second = page(&mut admin, 10, &first.next_page_token, "kind = api_key")
        .await
        .unwrap();
    assert_eq!(names(&second)[0], "key-10");
    let third = page(&mut admin, 10, &second.next_page_token, "kind = api_key")
        .await
        .unwrap();
    assert_eq!(
        names(&third),
        ["key-20", "key-21", "key-22", "key-23", "key-24", "key-99"]
    );
    assert!(third.next_page_token.is_empty());

    // Filters.
    let production = page(&mut admin, 0, "", "labels.environment = production")
        .await
        .unwrap();
    assert_eq!(
        names(&production),
        ["key-00", "key-05", "key-10", "key-15", "key-20"]
    );
    let tokens = page(&mut admin, 0, "", "kind = auth_token").await.unwrap();
    assert_eq!(names(&tokens), ["webhooks"]);

    // A token from another filter, or another caller, is refused.
    let other_filter = page(&mut admin, 10, &first.next_page_token, "")
        .await
        .unwrap_err();
    assert_eq!(other_filter.code(), Code::InvalidArgument);
    assert!(other_filter.message().contains("page_token"));
    let mut unix = AdminClient::new(uds_channel(&socket).await);
    let other_caller = page(&mut unix, 10, &first.next_page_token, "kind = api_key")
        .await
        .unwrap_err();
    assert_eq!(other_caller.code(), Code::InvalidArgument);

    // Grammar errors name the filter and say what to write.
    let bad = page(&mut admin, 0, "", "kind = fax").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("filter "), "{}", bad.message());
    let negative = page(&mut admin, -1, "", "").await.unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_follow_every_page() {
    let broker = Broker::start(Options::default());
    let fixtures = Fixtures::new();
    let mut admin = broker.admin().await;
    let count = 1005;
    for i in 0..count {
        admin
            .put_credential(fixtures.test(&format!("t-{i:04}")))
            .await
            .unwrap();
    }
    let first = page(&mut admin, 0, "", "").await.unwrap();
    assert_eq!(first.credentials.len(), 1000, "the default page size");
    assert!(!first.next_page_token.is_empty());

    let client = twilio_broker_client::Client::connect(&broker.url)
        .await
        .unwrap();
    assert_eq!(client.list_credentials().await.unwrap().len(), count);
    assert_eq!(
        client
            .list_credentials_matching("name = t-100*")
            .await
            .unwrap()
            .len(),
        5
    );

    let cli = broker.cli(&["credential", "list", "--json"], "");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(listed.len(), count);
    let filtered = broker.cli(
        &["credential", "list", "--json", "--filter", "name = t-000*"],
        "",
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&filtered.stdout).unwrap();
    assert_eq!(listed.len(), 10);
}
