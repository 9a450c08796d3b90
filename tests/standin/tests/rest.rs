//! The stand-in's REST endpoint (`Messages.json`): who gets a 201 and who
//! gets Twilio's 401 / 20003, what the Message resource looks like, and the
//! counters the client tests read.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use twilio_standin::{Client, Config, VerifyError};

/// One HTTP/1.1 POST with an optional Authorization; returns (status, JSON).
fn post(
    addr: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

fn token(addr: &str, client_id: &str, secret: &str) -> String {
    let body =
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
    let (status, reply) = post(addr, "/v2/token", None, &body);
    assert_eq!(status, 200, "{reply}");
    reply["access_token"].as_str().unwrap().to_owned()
}

/// (case, path, Authorization, form, status, Twilio error code)
type Case<'a> = (&'a str, &'a str, Option<String>, &'a str, u16, Option<u64>);

#[test]
fn messages_need_a_valid_bearer_for_the_account() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let standin = runtime
        .block_on(twilio_standin::start(Config {
            clients: vec![
                Client {
                    client_id: "OQ1".into(),
                    client_secret: "s1".into(),
                    account_sid: "AC1".into(),
                },
                Client {
                    client_id: "OQ2".into(),
                    client_secret: "s2".into(),
                    account_sid: "AC2".into(),
                },
            ],
            ..Config::default()
        }))
        .unwrap();
    let addr = standin.addr().to_string();
    let good = token(&addr, "OQ1", "s1");
    let other_account = token(&addr, "OQ2", "s2");
    standin.set_token_ttl_seconds(0);
    let expired = token(&addr, "OQ1", "s1");
    let start = Instant::now();
    while standin.verify(&expired) != Err(VerifyError::Expired) {
        assert!(start.elapsed() < Duration::from_secs(5), "never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Same claims, another signature.
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    assert_eq!(standin.verify(&forged), Err(VerifyError::BadSignature));

    let path = "/2010-04-01/Accounts/AC1/Messages.json";
    let form = "To=%2B15005550006&From=%2B15005550001&Body=hello+broker";
    let bearer = |t: &str| format!("Bearer {t}");
    let cases: Vec<Case> = vec![
        ("valid bearer", path, Some(bearer(&good)), form, 201, None),
        ("no header", path, None, form, 401, Some(20003)),
        (
            "basic auth",
            path,
            Some("Basic QUMxOnRva2Vu".into()),
            form,
            401,
            Some(20003),
        ),
        (
            "empty bearer",
            path,
            Some("Bearer ".into()),
            form,
            401,
            Some(20003),
        ),
        (
            "forged signature",
            path,
            Some(bearer(&forged)),
            form,
            401,
            Some(20003),
        ),
        (
            "expired",
            path,
            Some(bearer(&expired)),
            form,
            401,
            Some(20003),
        ),
        (
            "another account's token",
            path,
            Some(bearer(&other_account)),
            form,
            401,
            Some(20003),
        ),
        (
            "no To",
            path,
            Some(bearer(&good)),
            "From=%2B1&Body=x",
            400,
            Some(21604),
        ),
        (
            "no From",
            path,
            Some(bearer(&good)),
            "To=%2B1&Body=x",
            400,
            Some(21603),
        ),
        (
            "no Body",
            path,
            Some(bearer(&good)),
            "To=%2B1&From=%2B2",
            400,
            Some(21602),
        ),
    ];
    for (case, path, authorization, form, status, code) in &cases {
        let (got, reply) = post(&addr, path, authorization.as_deref(), form);
        assert_eq!(got, *status, "{case}: {reply}");
        match code {
            Some(code) => {
                assert_eq!(reply["code"], *code, "{case}: {reply}");
                assert_eq!(reply["status"], *status, "{case}");
                assert_eq!(
                    reply["more_info"],
                    format!("https://www.twilio.com/docs/errors/{code}")
                );
            }
            None => {
                let sid = reply["sid"].as_str().unwrap();
                assert!(sid.starts_with("SM") && sid.len() == 34, "{case}: {sid}");
                assert_eq!(reply["status"], "queued");
                assert_eq!(reply["account_sid"], "AC1");
                assert_eq!(reply["to"], "+15005550006");
                assert_eq!(reply["from"], "+15005550001");
                assert_eq!(reply["body"], "hello broker");
                assert_eq!(reply["direction"], "outbound-api");
                assert!(reply["date_created"].as_str().unwrap().ends_with("+0000"));
                assert_eq!(
                    reply["uri"],
                    format!("/2010-04-01/Accounts/AC1/Messages/{sid}.json")
                );
            }
        }
    }

    let stats = standin.stats();
    assert_eq!(stats.rest_requests, cases.len() as u64);
    assert_eq!(stats.messages_created, 1);
    assert_eq!(stats.rest_rejected, cases.len() as u64 - 1);
    let messages = standin.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].token_id, standin.verify(&good).unwrap().jti);
    // The token endpoint's counters are untouched by REST traffic.
    assert_eq!(stats.token_requests, 3);
    assert_eq!(stats.tokens_issued, 3);
    drop(standin);
}
