//! Every webhook vector in `tests/fixtures/twilio-vectors.json` (twilio-python
//! 9.13, cross-checked with twilio-node 6.2), the port cross-checks, and
//! what counts as malformed rather than invalid.

use serde_json::Value;

use super::*;

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/twilio-vectors.json"
));

fn vectors() -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).expect("vectors parse");
    all["webhook_signatures"].as_array().expect("list").clone()
}

/// A vector's params as repeated (name, value) pairs.
fn params(vector: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in vector["params"].as_object().expect("params") {
        match value {
            Value::Array(values) => {
                for v in values {
                    out.push((name.clone(), v.as_str().expect("str").to_owned()));
                }
            }
            v => out.push((name.clone(), v.as_str().expect("str").to_owned())),
        }
    }
    out
}

fn request(vector: &Value) -> (crate::credential::SealedSecret, WebhookRequest) {
    let key = crate::credential::SealedSecret::from(vector["auth_token"].as_str().expect("token"));
    let settings = if vector["algorithm"] == "HMAC_SHA256" {
        "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256".to_owned()
    } else {
        String::new()
    };
    let request = WebhookRequest {
        url: vector["url"].as_str().expect("url").to_owned(),
        params: params(vector),
        body: vector["body"].as_str().unwrap_or_default().to_owned(),
        signature: vector["expected_signature"]
            .as_str()
            .expect("sig")
            .to_owned(),
        signature_settings: settings,
    };
    (key, request)
}

#[test]
fn every_vector_validates_and_its_string_to_sign_matches() {
    let list = vectors();
    assert_eq!(list.len(), 7);
    for vector in &list {
        let name = vector["name"].as_str().expect("name");
        let (key, request) = request(vector);
        let mut params = request.params.clone();
        assert_eq!(
            string_to_sign(&request.url, &mut params),
            vector["string_to_sign"].as_str().expect("string"),
            "{name}"
        );
        let verdict = validate(&key, request.clone()).expect(name);
        assert_eq!(
            verdict,
            Verdict {
                valid: true,
                reason: String::new()
            },
            "{name}"
        );
        // One changed character anywhere makes it invalid, with a reason.
        let mut tampered = request.clone();
        tampered.signature.replace_range(
            0..1,
            if tampered.signature.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        let verdict = validate(&key, tampered).expect(name);
        assert!(
            !verdict.valid && verdict.reason.contains("does not match"),
            "{name}: {verdict:?}"
        );
        let wrong_key = crate::credential::SealedSecret::from("another-token");
        assert!(!validate(&wrong_key, request).expect(name).valid, "{name}");
    }
}

#[test]
fn signatures_made_with_and_without_the_port_validate_either_url() {
    let list = vectors();
    let find = |name: &str| {
        list.iter()
            .find(|v| v["name"] == name)
            .expect("vector present")
            .clone()
    };
    let (key, with_port) = request(&find("sig2_url_with_port_443"));
    let (_, without_port) = request(&find("sig6_port_removed_variant"));
    for (url_of, signature_of) in [(&with_port, &without_port), (&without_port, &with_port)] {
        let crossed = WebhookRequest {
            signature: signature_of.signature.clone(),
            ..url_of.clone()
        };
        assert!(validate(&key, crossed).expect("valid input").valid);
    }
}

#[test]
fn the_json_body_must_hash_to_body_sha256() {
    let list = vectors();
    let vector = list
        .iter()
        .find(|v| v["name"] == "sig3_json_body_bodySHA256")
        .expect("sig3");
    let (key, request) = request(vector);
    let changed = WebhookRequest {
        body: request.body.replace("value", "VALUE"),
        ..request.clone()
    };
    let verdict = validate(&key, changed).expect("checkable");
    assert!(
        !verdict.valid && verdict.reason.contains("bodySHA256"),
        "{verdict:?}"
    );
}

#[test]
fn sha256_mode_follows_the_settings_header() {
    let list = vectors();
    let vector = list
        .iter()
        .find(|v| v["name"] == "sig7_hmac_sha256_sharedkey")
        .expect("sig7");
    let (key, request) = request(vector);
    for (settings, valid) in [
        ("key=k,algorithm=HMAC_SHA256", true),
        (" algorithm = hmac_sha256 , key=k", true),
        ("key=k,algorithm=,algorithm=HMAC_SHA256", true),
        ("key=k,algorithm=HMAC_SHA1", false),
        ("", false),
        ("key=k", false),
    ] {
        let verdict = validate(
            &key,
            WebhookRequest {
                signature_settings: settings.into(),
                ..request.clone()
            },
        )
        .expect(settings);
        assert_eq!(verdict.valid, valid, "{settings:?}: {verdict:?}");
        if !valid {
            assert!(
                verdict.reason.contains("HMAC-SHA256")
                    || verdict.reason.contains("length of an HMAC"),
                "{verdict:?}"
            );
        }
    }
    let unknown = validate(
        &key,
        WebhookRequest {
            signature_settings: "key=k,algorithm=HMAC_SHA512".into(),
            ..request
        },
    )
    .expect("checkable");
    assert!(
        !unknown.valid && unknown.reason.contains("HMAC_SHA512"),
        "{unknown:?}"
    );
}

#[test]
fn malformed_requests_are_errors_naming_the_field() {
    let key = crate::credential::SealedSecret::from("token");
    let ok = WebhookRequest {
        url: "https://example.com/hook".into(),
        signature: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        ..WebhookRequest::default()
    };
    let cases = [
        (
            WebhookRequest {
                url: String::new(),
                ..ok.clone()
            },
            "url",
        ),
        (
            WebhookRequest {
                url: "example.com/hook".into(),
                ..ok.clone()
            },
            "url",
        ),
        (
            WebhookRequest {
                signature: String::new(),
                ..ok.clone()
            },
            "signature",
        ),
        (
            WebhookRequest {
                body: "{}".into(),
                ..ok.clone()
            },
            "body",
        ),
        (
            WebhookRequest {
                url: "https://example.com/hook?bodySHA256=abc".into(),
                params: vec![("a".into(), "b".into())],
                ..ok.clone()
            },
            "params",
        ),
    ];
    for (request, field) in cases {
        match validate(&key, request) {
            Err(Error::InvalidField { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
    assert!(!validate(&key, ok).expect("well formed").valid);
}

#[test]
fn repeated_params_are_deduplicated_and_sorted_by_value() {
    let mut params = vec![
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "z".to_owned()),
        ("b".to_owned(), "1".to_owned()),
        ("a".to_owned(), "z".to_owned()),
        ("a".to_owned(), "é".to_owned()),
    ];
    assert_eq!(string_to_sign("U", &mut params), "Uazaéb1b2");
}

/// A random 32-hex-digit token, fresh per run.
fn random_token() -> crate::credential::SealedSecret {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::credential::SealedSecret::from(text)
}

#[test]
fn either_token_validates_while_both_exist_and_the_answer_says_which() {
    let (primary, secondary, stranger) = (random_token(), random_token(), random_token());
    let url = "https://example.com/hook?x=1";
    let params = vec![("Body".to_owned(), "hi".to_owned())];
    let signed_with = |key: &crate::credential::SealedSecret| {
        let suffix = string_to_sign("", &mut params.clone());
        prepare(WebhookRequest {
            url: url.into(),
            params: params.clone(),
            body: String::new(),
            signature: signature(key, Algorithm::HmacSha1, url, &suffix),
            signature_settings: String::new(),
        })
        .expect("prepared")
    };
    let check = |prepared: &Prepared, second: Option<&crate::credential::SealedSecret>| {
        let (verdict, matched) = prepared.verify_either(&primary, second);
        (verdict.valid, matched)
    };
    let by_primary = signed_with(&primary);
    let by_secondary = signed_with(&secondary);
    let by_stranger = signed_with(&stranger);
    assert_eq!(
        check(&by_primary, Some(&secondary)),
        (true, Some(Matched::Primary))
    );
    assert_eq!(
        check(&by_secondary, Some(&secondary)),
        (true, Some(Matched::Secondary))
    );
    assert_eq!(check(&by_primary, None), (true, Some(Matched::Primary)));
    // Without the secondary stored, its signatures are refused again.
    assert_eq!(check(&by_secondary, None), (false, None));
    let (verdict, matched) = by_stranger.verify_either(&primary, Some(&secondary));
    assert!(!verdict.valid && matched.is_none());
    assert!(
        verdict.reason.contains("does not match"),
        "{}",
        verdict.reason
    );
    // verify() is the primary alone.
    assert!(!by_secondary.verify(&primary).valid);
}

#[test]
fn a_body_hash_failure_under_the_secondary_is_the_reason_given() {
    use sha2::Digest as _;
    let (primary, secondary) = (random_token(), random_token());
    let hash = hex(&Sha256::digest(br#"{"a":1}"#));
    let url = format!("https://example.com/hook?bodySHA256={hash}");
    let prepared = prepare(WebhookRequest {
        url: url.clone(),
        params: Vec::new(),
        body: r#"{"a":2}"#.into(),
        signature: signature(&secondary, Algorithm::HmacSha1, &url, ""),
        signature_settings: String::new(),
    })
    .expect("prepared");
    let (verdict, matched) = prepared.verify_either(&primary, Some(&secondary));
    assert!(!verdict.valid && matched.is_none());
    assert!(
        verdict.reason.contains("body's SHA-256"),
        "{}",
        verdict.reason
    );
}
