//! [`HttpUpstream`] against the twilio-standin token endpoint: the exact
//! request on the wire, the token, rejections, outages and time-outs.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secrecy::ExposeSecret as _;
use twilio_standin::{Client, Config};

use super::settings::OAuthConfig;
use super::upstream::{Failure, HttpUpstream, Upstream};

const CLIENT_ID: &str = "OQ0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

async fn standin() -> twilio_standin::Standin {
    twilio_standin::start(Config {
        clients: vec![Client {
            client_id: CLIENT_ID.into(),
            client_secret: "right-s3cr3t".into(),
            account_sid: ACCOUNT.into(),
        }],
        ..Config::default()
    })
    .await
    .unwrap()
}

fn upstream(url: &str, timeout: f64) -> HttpUpstream {
    let settings = OAuthConfig {
        token_url: Some(url.into()),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
    .resolve(None)
    .unwrap();
    HttpUpstream::new(&settings).unwrap()
}

fn secret(s: &str) -> crate::credential::SealedSecret {
    crate::credential::SealedSecret::from(s)
}

#[tokio::test]
async fn the_request_is_the_one_twilio_sdks_send() {
    let standin = standin().await;
    let reply = upstream(&standin.token_url(), 5.0)
        .fetch(CLIENT_ID, &secret("right-s3cr3t"))
        .await
        .unwrap();
    let claims = standin.verify(reply.access_token.expose_secret()).unwrap();
    assert_eq!(
        (claims.iss.as_str(), claims.sub.as_str()),
        (CLIENT_ID, ACCOUNT)
    );
    assert_eq!(reply.expires_in, Some(3600));
    let seen = standin.last_request().unwrap();
    assert_eq!(seen.path, "/v2/token");
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.accept.as_deref(), Some("application/json"));
    assert!(
        !seen.has_authorization,
        "client_secret_post: no Authorization"
    );
    assert_eq!(
        seen.field_names,
        ["grant_type", "client_id", "client_secret"]
    );
    assert_eq!(seen.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(seen.client_id.as_deref(), Some(CLIENT_ID));
}

#[tokio::test]
async fn a_wrong_secret_is_a_rejection_with_twilios_code() {
    let standin = standin().await;
    let failure = upstream(&standin.token_url(), 5.0)
        .fetch(CLIENT_ID, &secret("wrong-s3cr3t"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        failure,
        Failure::Rejected {
            status: 401,
            code: Some(20003),
            message: "Authenticate".into(),
            more_info: Some("https://www.twilio.com/docs/errors/20003".into()),
        }
    );
}

#[tokio::test]
async fn outages_are_unavailable() {
    let standin = standin().await;
    let client = upstream(&standin.token_url(), 0.5);
    standin.set_failure(Some(503));
    let failure = client.fetch(CLIENT_ID, &secret("right-s3cr3t")).await;
    assert!(
        matches!(&failure, Err(Failure::Unavailable(t)) if t.contains("HTTP 503")),
        "{failure:?}"
    );
    standin.set_failure(None);
    standin.set_delay(Duration::from_secs(3));
    let failure = client.fetch(CLIENT_ID, &secret("right-s3cr3t")).await;
    assert!(
        matches!(&failure, Err(Failure::Unavailable(t)) if t.contains("did not answer within 0.5 s")),
        "{failure:?}"
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let failure = upstream(&format!("http://{closed}/v2/token"), 2.0)
        .fetch(CLIENT_ID, &secret("right-s3cr3t"))
        .await;
    assert!(
        matches!(&failure, Err(Failure::Unavailable(t)) if t.contains("cannot be reached")),
        "{failure:?}"
    );
}
