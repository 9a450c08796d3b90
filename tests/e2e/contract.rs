//! The public contract as operators meet it: `buf lint` on `proto/`, and
//! grpcurl (list, describe, call) against the live daemon through reflection.

use std::process::Command;

use crate::harness::{Broker, Fixtures, Options};
use crate::oracles;

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn proto_passes_buf_lint() {
    let Some(buf) = oracles::tool("buf") else {
        return;
    };
    let out = Command::new(buf)
        .arg("lint")
        .current_dir(repo_root().join("proto"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "buf lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `grpcurl -plaintext FLAGS ADDR ARGS`.
fn grpcurl(broker: &Broker, flags: &[&str], args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write as _;
    let grpcurl = oracles::tool("grpcurl").unwrap();
    let mut command = Command::new(grpcurl);
    command
        .arg("-plaintext")
        .args(flags)
        .arg(&broker.addr)
        .args(args);
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn grpcurl_lists_describes_and_calls() {
    if oracles::tool("grpcurl").is_none() {
        return;
    }
    let broker = Broker::start(Options::default());
    let f = Fixtures::new();

    let (ok, listed) = grpcurl(&broker, &[], &["list"], None);
    assert!(ok, "{listed}");
    for service in [
        "twilio.broker.v1.Broker",
        "twilio.broker.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(listed.contains(service), "{service} not in:\n{listed}");
    }

    let (ok, described) = grpcurl(
        &broker,
        &[],
        &["describe", "twilio.broker.v1.ApiKeyCredential"],
        None,
    );
    assert!(ok, "{described}");
    assert!(
        described.contains("key_type") && described.contains("shown by Twilio only once"),
        "{described}"
    );

    let put = serde_json::json!({
        "name": "ops-key",
        "labels": {"environment": "production"},
        "apiKey": {
            "accountSid": f.account_sid,
            "keySid": f.key_sid,
            "secret": f.api_secret,
            "keyType": "KEY_TYPE_STANDARD"
        }
    });
    let (ok, stored) = grpcurl(
        &broker,
        &["-d", "@"],
        &["twilio.broker.v1.Admin/PutCredential"],
        Some(&put.to_string()),
    );
    assert!(ok, "{stored}");
    assert!(
        stored.contains("CREDENTIAL_KIND_API_KEY") && !stored.contains(&f.api_secret),
        "{stored}"
    );

    let (ok, listed) = grpcurl(
        &broker,
        &[],
        &["twilio.broker.v1.Admin/ListCredentials"],
        None,
    );
    assert!(ok && listed.contains("ops-key"), "{listed}");

    let (ok, health) = grpcurl(&broker, &[], &["grpc.health.v1.Health/Check"], None);
    assert!(ok && health.contains("SERVING"), "{health}");

    let (ok, missing) = grpcurl(
        &broker,
        &["-d", r#"{"name":"nope"}"#],
        &["twilio.broker.v1.Admin/GetCredential"],
        None,
    );
    assert!(!ok && missing.contains("NotFound"), "{missing}");
}

#[test]
fn generated_client_stubs_are_up_to_date() {
    let Some(python) = oracles::python() else {
        return;
    };
    let out = Command::new(repo_root().join("scripts/gen-stubs"))
        .arg("--check")
        .env("TWILIO_BROKER_TEST_PYTHON", python)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
