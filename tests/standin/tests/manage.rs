//! The stand-in's key and Auth Token management APIs (WIRE.md sections 4
//! and 6): who may call what, the shapes of the answers, that a deleted key
//! or a promoted-away token stops authenticating at once, and the injected
//! rate limit.

#![allow(clippy::unwrap_used, missing_docs)]

use twilio_standin::{AccessTokenError, Config, KeyType, Standin};

struct Call {
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

async fn call(
    method: reqwest::Method,
    url: String,
    auth: (impl AsRef<str>, impl AsRef<str>),
    form: &[(&str, &str)],
) -> Call {
    let response = reqwest::Client::new()
        .request(method, url)
        .basic_auth(auth.0.as_ref(), Some(auth.1.as_ref()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    Call {
        status,
        retry_after,
        body,
    }
}

fn random_hex() -> String {
    twilio_standin::accounts::random_auth_token()
}

async fn setup() -> (Standin, String, String) {
    let standin = twilio_standin::start(Config::default()).await.unwrap();
    let account = format!("AC{}", random_hex());
    let token = random_hex();
    standin.add_account(&account, &token);
    (standin, account, token)
}

fn assert_twilio_error(call: &Call, status: u16, code: u64) {
    assert_eq!(call.status, status, "{}", call.body);
    assert_eq!(call.body["code"], code, "{}", call.body);
    assert_eq!(call.body["status"], status);
    assert_eq!(
        call.body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}")
    );
}

#[tokio::test]
async fn v2010_keys_are_created_listed_fetched_and_deleted_by_a_main_key_or_the_auth_token() {
    let (standin, account, token) = setup().await;
    let main = standin.add_key(&account, KeyType::Main).unwrap();
    let keys = format!("{}/2010-04-01/Accounts/{account}/Keys.json", standin.url());

    for (who, user, pass) in [
        ("auth token", account.as_str(), token.as_str()),
        ("main key", main.sid.as_str(), main.secret.as_str()),
    ] {
        let created = call(
            reqwest::Method::POST,
            keys.clone(),
            (user, pass),
            &[("FriendlyName", "rotated")],
        )
        .await;
        assert_eq!(created.status, 201, "{who}: {}", created.body);
        let sid = created.body["sid"].as_str().unwrap().to_owned();
        let secret = created.body["secret"].as_str().unwrap().to_owned();
        assert!(sid.starts_with("SK") && sid.len() == 34, "{sid}");
        assert_eq!(secret.len(), 32);
        assert_eq!(created.body["friendly_name"], "rotated");
        assert!(
            created.body["date_created"]
                .as_str()
                .unwrap()
                .ends_with("+0000")
        );
        assert!(standin.authenticates(&sid, &secret));
        assert_eq!(
            standin.account(&account).unwrap().keys[&sid].key_type,
            KeyType::Standard
        );

        let listed = call(reqwest::Method::GET, keys.clone(), (user, pass), &[]).await;
        assert_eq!(listed.status, 200);
        let sids: Vec<&str> = listed.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["sid"].as_str().unwrap())
            .collect();
        assert!(sids.contains(&sid.as_str()) && sids.contains(&main.sid.as_str()));
        assert!(listed.body["keys"][0].get("secret").is_none());

        let one = format!(
            "{}/2010-04-01/Accounts/{account}/Keys/{sid}.json",
            standin.url()
        );
        let fetched = call(reqwest::Method::GET, one.clone(), (user, pass), &[]).await;
        assert_eq!(fetched.body["sid"], sid.as_str());
        assert!(fetched.body.get("secret").is_none());

        // The new Standard key may not manage keys itself.
        let by_standard = call(reqwest::Method::DELETE, one.clone(), (&sid, &secret), &[]).await;
        assert_twilio_error(&by_standard, 403, 20003);

        // The new key works for REST calls (Basic) until it is deleted.
        let messages = format!(
            "{}/2010-04-01/Accounts/{account}/Messages.json",
            standin.url()
        );
        let sms = [
            ("To", "+15005550006"),
            ("From", "+15005550006"),
            ("Body", "hi"),
        ];
        let sent = call(
            reqwest::Method::POST,
            messages.clone(),
            (&sid, &secret),
            &sms,
        )
        .await;
        assert_eq!(sent.status, 201, "{}", sent.body);

        let deleted = call(reqwest::Method::DELETE, one.clone(), (user, pass), &[]).await;
        assert_eq!(deleted.status, 204, "{who}");
        assert!(
            !standin.authenticates(&sid, &secret),
            "a deleted key still works"
        );
        let refused = call(reqwest::Method::POST, messages, (&sid, &secret), &sms).await;
        assert_twilio_error(&refused, 401, 20003);
        let again = call(reqwest::Method::DELETE, one, (user, pass), &[]).await;
        assert_twilio_error(&again, 404, 20404);
    }

    // Wrong secret, unknown user, another account's credential: 401 / 20003.
    let other = format!("AC{}", random_hex());
    let other_token = random_hex();
    standin.add_account(&other, &other_token);
    for (user, pass) in [
        (account.as_str(), "wrong"),
        (main.sid.as_str(), token.as_str()),
        (other.as_str(), other_token.as_str()),
    ] {
        let refused = call(reqwest::Method::POST, keys.clone(), (user, pass), &[]).await;
        assert_twilio_error(&refused, 401, 20003);
        assert_eq!(refused.body["message"], "Authenticate");
    }
}

#[tokio::test]
async fn iam_keys_keep_their_policy_and_restricted_keys_need_one() {
    let (standin, account, token) = setup().await;
    let keys = format!("{}/v1/Keys", standin.url());
    let policy = r#"{"allow":["/twilio/messaging/messages/create"]}"#;
    let created = call(
        reqwest::Method::POST,
        keys.clone(),
        (&account, &token),
        &[
            ("AccountSid", account.as_str()),
            ("FriendlyName", "narrow"),
            ("KeyType", "restricted"),
            ("Policy", policy),
        ],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.body["policy"],
        serde_json::from_str::<serde_json::Value>(policy).unwrap()
    );
    let sid = created.body["sid"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        standin.account(&account).unwrap().keys[&sid].key_type,
        KeyType::Restricted
    );

    let fetched = call(
        reqwest::Method::GET,
        format!("{keys}/{sid}"),
        (&account, &token),
        &[],
    )
    .await;
    assert_eq!(
        fetched.body["policy"]["allow"][0],
        "/twilio/messaging/messages/create"
    );

    for (form, why) in [
        (
            vec![("AccountSid", account.as_str()), ("KeyType", "restricted")],
            "no policy",
        ),
        (
            vec![("AccountSid", account.as_str()), ("KeyType", "main")],
            "main key",
        ),
        (
            vec![("AccountSid", account.as_str()), ("Policy", "not json")],
            "bad policy",
        ),
        (vec![("FriendlyName", "x")], "no account"),
    ] {
        let refused = call(
            reqwest::Method::POST,
            keys.clone(),
            (&account, &token),
            &form,
        )
        .await;
        assert_twilio_error(&refused, 400, 20001);
        assert!(
            !refused.body["message"].as_str().unwrap().is_empty(),
            "{why}"
        );
    }

    let standard = call(
        reqwest::Method::POST,
        keys.clone(),
        (&account, &token),
        &[("AccountSid", account.as_str())],
    )
    .await;
    assert_eq!(standard.status, 201);
    let standard_sid = standard.body["sid"].as_str().unwrap();
    assert_eq!(
        standin.account(&account).unwrap().keys[standard_sid].key_type,
        KeyType::Standard
    );

    let deleted = call(
        reqwest::Method::DELETE,
        format!("{keys}/{sid}"),
        (&account, &token),
        &[],
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert!(!standin.authenticates(&sid, &secret));
}

#[tokio::test]
async fn a_promoted_secondary_replaces_the_primary_which_stops_working() {
    let (standin, account, token) = setup().await;
    let standard = standin.add_key(&account, KeyType::Standard).unwrap();
    let secondary_url = format!("{}/v1/AuthTokens/Secondary", standin.url());
    let promote_url = format!("{}/v1/AuthTokens/Promote", standin.url());

    let refused = call(
        reqwest::Method::POST,
        secondary_url.clone(),
        (&standard.sid, &standard.secret),
        &[],
    )
    .await;
    assert_twilio_error(&refused, 403, 20003);
    let none = call(
        reqwest::Method::POST,
        promote_url.clone(),
        (&account, &token),
        &[],
    )
    .await;
    assert_twilio_error(&none, 404, 20404);

    let created = call(
        reqwest::Method::POST,
        secondary_url.clone(),
        (&account, &token),
        &[],
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["account_sid"], account.as_str());
    assert!(
        created.body["date_created"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let secondary = created.body["secondary_auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(secondary.len(), 32);
    assert!(standin.authenticates(&account, &token));
    assert!(standin.authenticates(&account, &secondary));

    let deleted = call(
        reqwest::Method::DELETE,
        secondary_url.clone(),
        (&account, &token),
        &[],
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert!(!standin.authenticates(&account, &secondary));

    let created = call(
        reqwest::Method::POST,
        secondary_url,
        (&account, &token),
        &[],
    )
    .await;
    let secondary = created.body["secondary_auth_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let promoted = call(
        reqwest::Method::POST,
        promote_url,
        (&account, &secondary),
        &[],
    )
    .await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["auth_token"], secondary.as_str());
    assert!(
        !standin.authenticates(&account, &token),
        "the old primary still works"
    );
    assert!(standin.authenticates(&account, &secondary));
    assert_eq!(
        standin.account(&account).unwrap().secondary_auth_token,
        None
    );
}

#[tokio::test]
async fn injected_rate_limits_answer_429_with_20429_then_heal() {
    let (standin, account, token) = setup().await;
    let keys = format!("{}/2010-04-01/Accounts/{account}/Keys.json", standin.url());
    standin.set_rate_limit(2, 7);
    for _ in 0..2 {
        let limited = call(reqwest::Method::POST, keys.clone(), (&account, &token), &[]).await;
        assert_twilio_error(&limited, 429, 20429);
        assert_eq!(limited.retry_after.as_deref(), Some("7"));
    }
    let created = call(reqwest::Method::POST, keys, (&account, &token), &[]).await;
    assert_eq!(created.status, 201);
    assert_eq!(standin.stats().manage_requests, 3);
}

#[tokio::test]
async fn access_tokens_verify_only_while_their_key_lives() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let (standin, account, _) = setup().await;
    let key = standin.add_key(&account, KeyType::Standard).unwrap();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let header = b64(br#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#);
    let claims = b64(
        serde_json::json!({"jti": "x", "iss": key.sid, "sub": account, "exp": exp, "grants": {}})
            .to_string()
            .as_bytes(),
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let token = format!("{header}.{claims}.{}", b64(&mac.finalize().into_bytes()));
    assert_eq!(
        standin.verify_access_token(&token).unwrap()["iss"],
        key.sid.as_str()
    );
    let forged = format!("{header}.{claims}.{}", b64(b"nope"));
    assert_eq!(
        standin.verify_access_token(&forged),
        Err(AccessTokenError::BadSignature)
    );

    let main = standin.add_key(&account, KeyType::Main).unwrap();
    let deleted = call(
        reqwest::Method::DELETE,
        format!(
            "{}/2010-04-01/Accounts/{account}/Keys/{}.json",
            standin.url(),
            key.sid
        ),
        (&main.sid, &main.secret),
        &[],
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        standin.verify_access_token(&token),
        Err(AccessTokenError::UnknownKey)
    );
}
