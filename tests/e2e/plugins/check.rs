//! `twilio-broker plugin check`: reports kind and ABI version, runs the
//! conformance suite of the plugin's kind, and fails on a non-conforming or
//! refused library. Every shipped plugin passes it.

use std::path::Path;

use serde_json::json;

use super::libs::{c_memory, c_plugin, cargo_plugin};
use super::services::{PgSchema, delete_stream, nats_available, postgres_url, unique};
use crate::harness::run_cli;

struct Checked {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn check(path: &Path, config: serde_json::Value) -> Checked {
    let config = config.to_string();
    let path = path.display().to_string();
    let out = run_cli(&["plugin", "check", &path, "--config", &config], "", &[]);
    Checked {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_conforms(checked: &Checked, kind: &str, name: &str) {
    let abi = if name.starts_with("c-memory") && !name.ends_with("v2") {
        1
    } else {
        2
    };
    assert!(checked.ok, "{}\n{}", checked.stdout, checked.stderr);
    for needle in [
        &format!("kind:         {kind}"),
        &format!("name:         {name}"),
        &format!("ABI version:  {abi} (this broker loads 1 to 2)"),
        "init:         ok",
        &format!("{kind} suite: "),
        " 0 failed",
    ] {
        assert!(
            checked.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            checked.stdout
        );
    }
}

#[test]
fn the_jsonl_sink_and_the_c_store_conform() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let jsonl = check(
        &cargo_plugin("twilio_broker_audit_jsonl"),
        json!({ "path": log }),
    );
    assert_conforms(&jsonl, "audit", "jsonl");
    let written = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        written.lines().count(),
        103,
        "every suite event is one line"
    );

    let c = check(&c_memory(), json!({}));
    assert_conforms(&c, "storage", "c-memory");
    assert!(
        c.stdout.contains("13 passed, 0 failed, 1 skipped"),
        "{}",
        c.stdout
    );
}

#[test]
fn a_non_conforming_or_refused_plugin_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.json");
    std::fs::write(&faults, json!({ "compare_and_swap": "error" }).to_string()).unwrap();
    let failing = check(
        &cargo_plugin("twilio_broker_test_faulty_storage"),
        json!({ "faults_file": faults }),
    );
    assert!(!failing.ok);
    assert!(
        failing
            .stdout
            .contains("FAIL  compare-and-swap at version 0 creates only an absent key"),
        "{}",
        failing.stdout
    );
    assert!(
        failing
            .stdout
            .contains("hint: expected version 0 means `insert only if absent`"),
        "every FAIL has its hint:\n{}",
        failing.stdout
    );
    assert!(
        failing.stderr.contains("does not conform"),
        "{}",
        failing.stderr
    );

    let wrong = check(&c_plugin("wrong_abi", &[], "tb_c_wrong_abi"), json!({}));
    assert!(!wrong.ok);
    assert!(
        wrong
            .stderr
            .contains("speaks plugin ABI version 999, but this broker loads versions 1 to 2"),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong
            .stderr
            .contains("hint: rebuild the plugin against the SDK"),
        "{}",
        wrong.stderr
    );

    let jsonl = cargo_plugin("twilio_broker_audit_jsonl")
        .display()
        .to_string();
    let out = run_cli(&["plugin", "check", &jsonl, "--kind", "storage"], "", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is of kind \"audit\", not \"storage\" as --kind says")
            && stderr.contains("hint: "),
        "{stderr}"
    );
    let out = run_cli(
        &[
            "plugin", "check", &jsonl, "--kind", "audit", "--config", "{}",
        ],
        "",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("config.path (the log file) is required")
            && stderr.contains("hint: init refused the configuration"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_conforms() {
    let Some(schema) = PgSchema::new().await else {
        return;
    };
    let config = json!({ "url": postgres_url(), "schema": schema.name });
    let path = cargo_plugin("twilio_broker_storage_postgres");
    let checked = tokio::task::spawn_blocking(move || check(&path, config))
        .await
        .unwrap();
    assert_conforms(&checked, "storage", "postgres");
    assert!(
        checked.stdout.contains("0 skipped"),
        "notifications work:\n{}",
        checked.stdout
    );
}

#[test]
fn the_nats_sink_conforms() {
    if !nats_available() {
        return;
    }
    let stream = unique("TB_E2E_");
    let subject = format!("{}.audit", unique("tb-e2e."));
    let checked = check(
        &cargo_plugin("twilio_broker_audit_nats"),
        json!({ "url": format!("nats://{}", super::services::nats_addr()), "subject": subject, "stream": stream }),
    );
    delete_stream(&stream);
    assert_conforms(&checked, "audit", "nats");
}
