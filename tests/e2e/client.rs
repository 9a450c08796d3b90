//! The Rust client crate against the real daemon: connect over a Unix
//! socket and plaintext, typed admin calls, errors as matchable variants,
//! and the dependency rule (the client never depends on the daemon).

use twilio_broker_client::{AccessTokenRequest, Client, Error, VideoGrant, proto};

use crate::harness::{Broker, Fixtures, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_and_matchable_errors_over_unix_socket_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("b.sock");
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
        ],
        ..Options::default()
    });
    let f = Fixtures::new();
    for target in [format!("unix:{}", socket.display()), broker.addr.clone()] {
        let client = Client::connect(&target).await.unwrap();
        let stored = client
            .put_credential(f.api_key("k", proto::KeyType::Restricted))
            .await
            .unwrap();
        assert_eq!(stored.key_sid, f.key_sid);
        assert_eq!(client.list_credentials().await.unwrap().len(), 1);
        assert_eq!(client.get_credential("k").await.unwrap().name, "k");
        assert!(
            matches!(client.get_credential("nope").await, Err(Error::NotFound(m)) if m.contains("nope"))
        );
        let bad = client.get_credential("bad name").await;
        assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{bad:?}");
        let bad = bad.err().unwrap();
        assert_eq!(bad.reason(), Some("INVALID_FIELD"));
        assert_eq!(bad.metadata("field"), Some("name"));
        // A restricted key cannot mint: a matchable FailedPrecondition.
        let mint = client
            .mint_access_token(AccessTokenRequest::new("k", "alice").video(VideoGrant::room("r")))
            .await;
        assert!(
            matches!(mint, Err(Error::FailedPrecondition(_))),
            "{mint:?}"
        );
        assert_eq!(
            mint.as_ref().err().and_then(Error::reason),
            Some("RESTRICTED_KEY")
        );
        client.delete_credential("k").await.unwrap();
        assert!(client.list_credentials().await.unwrap().is_empty());
    }
    let unreachable = Client::connect("127.0.0.1:1").await;
    assert!(matches!(unreachable, Err(Error::Connect(_))));
}

#[test]
fn the_client_crate_never_depends_on_the_daemon() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "twilio-broker-client",
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.contains("twilio-broker-api"), "{tree}");
    assert!(
        !tree.lines().any(|l| l.starts_with("twilio-broker v")),
        "the client depends on the daemon:\n{tree}"
    );
}
