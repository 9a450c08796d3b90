//! Cross-checks: Twilio's own helper libraries (twilio-python 9.13 from the
//! venv `TWILIO_BROKER_TEST_PYTHON` names, twilio-node 6.2 from the
//! node_modules `TWILIO_BROKER_TEST_NODE_MODULES` names, both as
//! `scripts/test` sets them) create and delete keys and create and promote a
//! secondary Auth Token against the stand-in, so its wire format is the one
//! Twilio's libraries send and parse. Skips loudly without them; fails under
//! `CI=true`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use twilio_standin::{Config, KeyType};

fn missing(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{what} is not installed; CI must run scripts/setup-test-deps"
    );
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} is not installed. Run scripts/test (or \
         scripts/setup-test-deps) to run this check. !!!!!!!!\n"
    );
}

fn python() -> Option<PathBuf> {
    match std::env::var_os("TWILIO_BROKER_TEST_PYTHON").map(PathBuf::from) {
        Some(path) if path.exists() => Some(path),
        _ => {
            missing("twilio-python (TWILIO_BROKER_TEST_PYTHON)");
            None
        }
    }
}

fn node_modules() -> Option<PathBuf> {
    match std::env::var_os("TWILIO_BROKER_TEST_NODE_MODULES").map(PathBuf::from) {
        Some(path) if path.join("twilio").exists() => Some(path),
        _ => {
            missing("twilio-node (TWILIO_BROKER_TEST_NODE_MODULES)");
            None
        }
    }
}

/// Seeds an account, runs the driver with its spec on stdin, checks what it
/// saw and what the stand-in holds afterwards.
async fn cross_check(mut command: Command) {
    let standin = twilio_standin::start(Config::default()).await.unwrap();
    let hex = twilio_standin::accounts::random_auth_token;
    let account = format!("AC{}", hex());
    let token = hex();
    standin.add_account(&account, &token);
    let main = standin.add_key(&account, KeyType::Main).unwrap();
    let standard = standin.add_key(&account, KeyType::Standard).unwrap();
    let spec = serde_json::json!({
        "base": standin.url(),
        "account_sid": account,
        "auth_token": token,
        "main_sid": main.sid,
        "main_secret": main.secret,
        "standard_sid": standard.sid,
        "standard_secret": standard.secret,
    });
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(spec.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the driver failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let created = &out["v2010_created"];
    let sid = created["sid"].as_str().unwrap();
    assert!(sid.starts_with("SK"), "{out}");
    assert_eq!(created["secret"].as_str().unwrap().len(), 32);
    assert!(
        created["friendly_name"]
            .as_str()
            .unwrap()
            .starts_with("from ")
    );
    assert_eq!(created["has_date"], true, "date_created did not parse");
    assert_eq!(out["v2010_fetched"]["sid"], sid);
    assert_eq!(out["v2010_fetched"]["has_date"], true);
    assert!(
        out["v2010_listed"]
            .as_array()
            .unwrap()
            .contains(&sid.into())
    );
    assert_eq!(out["v2010_deleted"], true);

    assert_eq!(
        out["iam_created"]["policy"],
        serde_json::json!({"allow": ["/twilio/messaging/messages/create"]})
    );
    assert_eq!(out["iam_created"]["has_date"], true);
    assert_eq!(out["iam_deleted"], true);

    let secondary = out["secondary"]["token"].as_str().unwrap();
    assert_eq!(out["secondary"]["account_sid"], account.as_str());
    assert_eq!(out["secondary"]["has_date"], true);
    assert_eq!(out["promoted"]["auth_token"], secondary);
    assert_eq!(out["promoted"]["has_date"], true);
    assert_eq!(
        out["old_primary"],
        serde_json::json!({"status": 401, "code": 20003})
    );
    assert_eq!(out["secondary_deleted"], true);
    assert_eq!(
        out["standard"],
        serde_json::json!({"status": 403, "code": 20003})
    );
    assert_eq!(
        out["rate_limited"],
        serde_json::json!({"status": 429, "code": 20429})
    );
    assert_eq!(
        out["hosts"],
        serde_json::json!(["accounts.twilio.com", "api.twilio.com", "iam.twilio.com"])
    );

    // The stand-in's own state agrees: only the seeded keys remain, the
    // promoted token is the primary, the old one and the deleted secondary
    // are gone.
    let state = standin.account(&account).unwrap();
    assert_eq!(state.keys.len(), 2);
    assert_eq!(state.auth_token, secondary);
    assert_eq!(state.secondary_auth_token, None);
    assert!(!standin.authenticates(&account, &token));
    let second = out["second_secondary"].as_str().unwrap();
    assert!(!standin.authenticates(&account, second));
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_python_manages_keys_and_auth_tokens_at_the_standin() {
    let Some(python) = python() else { return };
    let mut command = Command::new(python);
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys_python.py"));
    cross_check(command).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_node_manages_keys_and_auth_tokens_at_the_standin() {
    let Some(modules) = node_modules() else {
        return;
    };
    let mut command = Command::new("node");
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys_node.js"))
        .env("NODE_PATH", modules);
    cross_check(command).await;
}
