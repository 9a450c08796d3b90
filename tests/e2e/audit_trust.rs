//! The audit trail cannot be quietly rewritten (issue 13): tail cut (with
//! and without a restart), head cut, edited and reordered lines, verifying
//! with only the public key, a forged plugin stream, intent before
//! mutation with a sink that fails, and a format-1 file from the previous
//! release.

use std::path::{Path, PathBuf};

use tonic::Code;
use twilio_broker::Chain;
use twilio_broker_api::v1 as pb;

use crate::audit::{verify, wait_for_checkpoint};
use crate::harness::{Broker, Fixtures, Options, reason, run_cli};

fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("broker.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn args(config: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--config".to_owned(), config.display().to_string()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

fn cli(args: &[&str], key: Option<&str>) -> (bool, String, String) {
    let env: Vec<(&str, &str)> = key
        .map(|k| vec![("TWILIO_BROKER_MASTER_KEY", k)])
        .unwrap_or_default();
    let out = run_cli(args, "", &env);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Re-links every line from `from` on with fresh SHA-256 hashes, as anyone
/// without the signing key could.
fn relink(lines: &mut [String], from: usize) {
    let head: serde_json::Value = serde_json::from_str(&lines[from - 1]).unwrap();
    let mut prev = twilio_broker::unhex(head["hash"].as_str().unwrap()).unwrap();
    for line in lines.iter_mut().skip(from) {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
        let object = value.as_object_mut().unwrap();
        let seq = object["seq"].as_u64().unwrap();
        for member in ["seq", "prev", "hash"] {
            object.remove(member);
        }
        let mut chain = Chain::new(seq, prev);
        let mut out = Vec::new();
        chain.push(&mut out, value.to_string().as_bytes());
        *line = String::from_utf8(out).unwrap().trim_end().to_owned();
        let linked: serde_json::Value = serde_json::from_str(line).unwrap();
        prev = twilio_broker::unhex(linked["hash"].as_str().unwrap()).unwrap();
    }
}

async fn some_calls(broker: &Broker, n: usize) {
    let mut admin = broker.admin().await;
    for _ in 0..n {
        admin
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_is_refused_at_restart_unless_accepted_and_verify_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let cfg = config(
        dir.path(),
        &format!("[audit]\nfile = {:?}\n", audit.display().to_string()),
    );
    let mut broker = Broker::start(Options {
        args: args(&cfg, &[]),
        ..Options::default()
    });
    some_calls(&broker, 12).await;
    assert!(broker.terminate().success());
    let key = broker.master_key.clone().unwrap();
    let state = broker.data_dir.with_extension("state");
    assert!(state.exists(), "no state file at {}", state.display());
    let state_arg = state.to_str().unwrap();
    let audit_arg = audit.to_str().unwrap();

    let (ok, out, err) = cli(
        &["audit", "verify", "--state-file", state_arg, audit_arg],
        Some(&key),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("anchored") && out.contains("OK, 12 events"),
        "{out}"
    );

    // Cut the last events: the links that remain are intact, the anchor is not.
    let lines = read_lines(&audit);
    let original = lines.clone();
    write_lines(&audit, &lines[..lines.len() - 5]);
    let (ok, _, err) = cli(
        &["audit", "verify", "--state-file", state_arg, audit_arg],
        Some(&key),
    );
    assert!(!ok);
    assert!(
        err.contains("TRUNCATED") && err.contains("cut from its end"),
        "{err}"
    );

    // A restart refuses to chain onto the cut file...
    let mut again = broker.same_data();
    again.args = args(&cfg, &[]);
    let refused = match Broker::try_start(again.clone()) {
        Ok(_) => panic!("the broker started on a truncated audit file"),
        Err(failure) => failure.log,
    };
    assert!(
        refused.contains("cut from its end") && refused.contains("--accept-audit-truncation"),
        "{refused}"
    );
    assert_eq!(
        read_lines(&audit).len(),
        original.len() - 5,
        "the file changed"
    );

    // ...unless the operator accepts it, which the chain then says.
    again.args = args(&cfg, &["--accept-audit-truncation"]);
    let mut accepted = Broker::start(again);
    some_calls(&accepted, 2).await;
    assert!(accepted.terminate().success());
    let (ok, out, err) = cli(
        &["audit", "verify", "--state-file", state_arg, audit_arg],
        Some(&key),
    );
    assert!(ok, "{err}");
    assert!(out.contains("TRUNCATION ACCEPTED"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_cut_edited_reordered_and_forged_files_fail_and_the_public_key_suffices() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let cfg = config(
        dir.path(),
        &format!(
            "[audit]\nfile = {:?}\ncheckpoint_events = 4\n",
            audit.display().to_string()
        ),
    );
    let broker = Broker::start(Options {
        args: args(&cfg, &[]),
        ..Options::default()
    });
    some_calls(&broker, 10).await;
    wait_for_checkpoint(&audit).await;
    let key = broker.master_key.clone().unwrap();
    let (ok, pubkey, err) = cli(&["audit", "pubkey"], Some(&key));
    assert!(ok, "{err}");
    let pubkey = pubkey.trim().to_owned();
    assert_eq!(pubkey.len(), 64, "{pubkey}");
    assert!(!pubkey.contains(&key));

    let lines = read_lines(&audit);
    let copy = dir.path().join("copy.jsonl");
    let copy_arg = copy.to_str().unwrap();
    let by_pubkey = |what: &str| {
        let (ok, out, err) = cli(&["audit", "verify", "--pubkey", &pubkey, copy_arg], None);
        (ok, format!("{what}: {out}{err}"))
    };

    // Intact, with the public key only (no master key in the environment).
    write_lines(&copy, &lines);
    let (ok, out) = by_pubkey("intact");
    assert!(
        ok && out.contains("OK, 10 events") && out.contains("covered by a checkpoint"),
        "{out}"
    );
    assert!(!out.contains("UNSIGNED"), "{out}");

    // Head cut.
    write_lines(&copy, &lines[3..]);
    let (ok, out) = by_pubkey("head cut");
    assert!(!ok && out.contains("head cut"), "{out}");

    // An edited line.
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("ListCredentials", "GetCredential");
    write_lines(&copy, &edited);
    let (ok, out) = by_pubkey("edited");
    assert!(!ok && out.contains("BROKEN at line 3"), "{out}");

    // Reordered lines.
    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    write_lines(&copy, &reordered);
    let (ok, out) = by_pubkey("reordered");
    assert!(!ok && out.contains("missing link"), "{out}");

    // Edited and re-linked: every hash holds, the next checkpoint does not.
    relink(&mut edited, 2);
    write_lines(&copy, &edited);
    let (ok, out) = by_pubkey("relinked");
    assert!(!ok && out.contains("signature does not verify"), "{out}");

    // A forged event appended after the last checkpoint: linked, reported unsigned.
    let mut appended = lines.clone();
    appended.push(appended[2].clone());
    let last = appended.len() - 1;
    let last_seq = serde_json::from_str::<serde_json::Value>(&lines[last - 1]).unwrap()["seq"]
        .as_u64()
        .unwrap();
    appended[last] = appended[last].replacen(
        &format!(
            "\"seq\":{}",
            serde_json::from_str::<serde_json::Value>(&lines[2]).unwrap()["seq"]
        ),
        &format!("\"seq\":{}", last_seq + 1),
        1,
    );
    relink(&mut appended, last);
    write_lines(&copy, &appended);
    let (ok, out) = by_pubkey("appended");
    assert!(ok && out.contains("UNSIGNED TAIL: 1 lines"), "{out}");

    // Another broker's public key verifies no checkpoint here.
    let other = crate::harness::random_master_key();
    let (_, other_pub, _) = cli(&["audit", "pubkey"], Some(&other));
    write_lines(&copy, &lines);
    let (ok, _, err) = cli(
        &["audit", "verify", "--pubkey", other_pub.trim(), copy_arg],
        None,
    );
    assert!(!ok && err.contains("signature"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_that_cannot_be_audited_changes_nothing() {
    let f = Fixtures::new();
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), "");
    let mut first = Broker::start(Options {
        args: args(&good, &[]),
        ..Options::default()
    });
    first
        .admin()
        .await
        .put_credential(f.auth_token("kept"))
        .await
        .unwrap();
    assert!(first.terminate().success());

    // The audit file cannot be written: neither a put nor a delete happens.
    let full_dir = tempfile::tempdir().unwrap();
    let full = config(full_dir.path(), "[audit]\nfile = \"/dev/full\"\n");
    let mut failing = first.same_data();
    failing.args = args(&full, &[]);
    let mut broker = Broker::start(failing);
    let mut admin = broker.admin().await;
    let put = admin.put_credential(f.auth_token("new")).await.unwrap_err();
    assert_eq!(put.code(), Code::Unavailable);
    assert_eq!(reason(&put).as_deref(), Some("NOT_AUDITED"), "{put:?}");
    let delete = admin
        .delete_credential(pb::DeleteCredentialRequest {
            name: "kept".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::Unavailable);
    assert!(broker.terminate().success());

    let mut check = first.same_data();
    check.args = args(&good, &[]);
    let after = Broker::start(check);
    let names: Vec<String> = after
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credentials
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        vec!["kept".to_owned()],
        "the store changed unaudited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_one_file_still_verifies_and_is_continued_in_the_new_format() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/audit-v1");
    let key = std::fs::read_to_string(fixtures.join("master-key.TEST-ONLY")).unwrap();
    let key = key.trim();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    std::fs::copy(fixtures.join("audit.jsonl"), &audit).unwrap();
    let audit_arg = audit.to_str().unwrap();
    let (ok, out, err) = cli(&["audit", "verify", audit_arg], Some(key));
    assert!(
        ok && out.contains("OK, 6 events") && out.contains("format 1"),
        "{out}{err}"
    );
    let (_, pubkey, _) = cli(&["audit", "pubkey"], Some(key));
    let (ok, _, err) = cli(
        &["audit", "verify", "--pubkey", pubkey.trim(), audit_arg],
        None,
    );
    assert!(!ok && err.contains("needs the master key"), "{err}");

    let cfg = config(
        dir.path(),
        &format!("[audit]\nfile = {:?}\n", audit.display().to_string()),
    );
    let mut broker = Broker::start(Options {
        args: args(&cfg, &[]),
        master_key: Some(key.to_owned()),
        ..Options::default()
    });
    some_calls(&broker, 3).await;
    assert!(broker.terminate().success());
    let lines = read_lines(&audit);
    assert!(lines[6].contains("\"record\":\"start\""), "{}", lines[6]);
    let (ok, out, err) = cli(&["audit", "verify", audit_arg], Some(key));
    assert!(
        ok && out.contains("OK, 9 events") && out.contains("format 1"),
        "{out}{err}"
    );
    let tampered = dir.path().join("tampered.jsonl");
    let mut edited = lines.clone();
    edited[1] = edited[1].replace("NOT_FOUND", "OK");
    write_lines(&tampered, &edited);
    assert!(!verify(&tampered, key).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_stream_is_chained_and_a_forged_copy_fails() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("plugin-audit.jsonl");
    let jsonl = crate::plugins::libs::cargo_plugin("twilio_broker_audit_jsonl");
    let cfg = config(
        dir.path(),
        &format!(
            "[[plugins]]\nkind = \"audit\"\npath = {:?}\nconfig = {{ path = {:?} }}\n",
            jsonl.display().to_string(),
            events.display().to_string()
        ),
    );
    let mut broker = Broker::start(Options {
        args: args(&cfg, &[]),
        ..Options::default()
    });
    some_calls(&broker, 5).await;
    assert!(broker.terminate().success());
    let key = broker.master_key.clone().unwrap();
    let (_, pubkey, _) = cli(&["audit", "pubkey"], Some(&key));
    let pubkey = pubkey.trim().to_owned();
    let events_arg = events.to_str().unwrap();
    let (ok, out, err) = cli(&["audit", "verify", "--pubkey", &pubkey, events_arg], None);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("OK, 5 events") && out.contains("covered by a checkpoint"),
        "{out}"
    );
    assert!(!out.contains("UNSIGNED"), "{out}");

    let lines = read_lines(&events);
    let forged = dir.path().join("forged.jsonl");
    let forged_arg = forged.to_str().unwrap();
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("\"decision\":\"allow\"", "\"decision\":\"deny\"");
    relink(&mut edited, 2);
    write_lines(&forged, &edited);
    let (ok, _, err) = cli(&["audit", "verify", "--pubkey", &pubkey, forged_arg], None);
    assert!(!ok && err.contains("signature does not verify"), "{err}");
    let mut dropped = lines.clone();
    dropped.remove(3);
    write_lines(&forged, &dropped);
    let (ok, _, err) = cli(&["audit", "verify", "--pubkey", &pubkey, forged_arg], None);
    assert!(!ok && err.contains("missing link"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_always_rotation_and_restart_keep_one_anchored_chain() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let cfg = config(
        dir.path(),
        &format!(
            "[audit]\nfile = {:?}\nsync = \"always\"\n",
            audit.display().to_string()
        ),
    );
    let mut broker = Broker::start(Options {
        args: args(&cfg, &[]),
        ..Options::default()
    });
    some_calls(&broker, 3).await;
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit, &rotated).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    for _ in 0..100 {
        if audit.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    some_calls(&broker, 2).await;
    assert!(broker.terminate().success());

    // The anchor now lies in the new file; a restart continues it.
    let mut again = broker.same_data();
    again.args = args(&cfg, &[]);
    let mut restarted = Broker::start(again);
    some_calls(&restarted, 1).await;
    assert!(restarted.terminate().success());

    let key = broker.master_key.clone().unwrap();
    let state = broker.data_dir.with_extension("state");
    let (ok, out, err) = cli(
        &[
            "audit",
            "verify",
            "--state-file",
            state.to_str().unwrap(),
            rotated.to_str().unwrap(),
            audit.to_str().unwrap(),
        ],
        Some(&key),
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("OK, 6 events") && out.contains("from the genesis"),
        "{out}"
    );
    assert!(out.contains("is present and matches"), "{out}");
    assert!(!out.contains("UNSIGNED"), "{out}");
    // The rotated file alone ends before the anchor.
    let (ok, _, err) = cli(
        &[
            "audit",
            "verify",
            "--state-file",
            state.to_str().unwrap(),
            rotated.to_str().unwrap(),
        ],
        Some(&key),
    );
    assert!(!ok && err.contains("TRUNCATED"), "{err}");
}
