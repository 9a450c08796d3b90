//! `twilio-broker doctor` as a pipeline runs it: the real binary with a
//! cleared environment plus chosen variables, on files in temp dirs (one of
//! them a real git repository). Exit 0 when clean, 3 on a risk, 1 when it
//! cannot run; never a secret in its output, text or JSON.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{BIN, random_secret, random_sid};

/// Runs doctor in `dir` with only PATH (for git) and `env` set.
fn doctor(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("doctor")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run doctor")
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(status.status.success(), "git {args:?}: {status:?}");
}

/// The output, text and JSON, with checks that no secret leaks: not whole,
/// and not any 8 characters of it in a row.
fn outputs(dir: &Path, args: &[&str], env: &[(&str, &str)], secrets: &[&str]) -> (i32, String) {
    let text = doctor(dir, args, env);
    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let json = doctor(dir, &json_args, env);
    let code = text.status.code().unwrap_or(-1);
    assert_eq!(json.status.code(), Some(code), "text and --json disagree");
    let mut all = String::from_utf8_lossy(&text.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&text.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|err| panic!("--json is not JSON ({err}): {json:?}"));
    all.push_str(&parsed.to_string());
    for secret in secrets {
        for window in secret.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(
                !all.contains(window),
                "doctor printed part of a secret:\n{all}"
            );
        }
    }
    (code, all)
}

#[test]
fn an_auth_token_in_a_production_environment_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let token = random_secret("");
    let env = [
        ("NODE_ENV", "production"),
        ("TWILIO_ACCOUNT_SID", &random_sid("AC")),
        ("TWILIO_AUTH_TOKEN", &token),
    ];
    let (code, out) = outputs(dir.path(), &[], &env, &[&token]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("RISK auth-token-in-production  environment  TWILIO_AUTH_TOKEN="));
    assert!(out.contains("NODE_ENV=production"), "{out}");
    assert!(
        out.contains("Standard API key"),
        "says what to use instead: {out}"
    );

    // The same token on a developer's machine is a note, not a failure.
    let env = [("NODE_ENV", "development"), ("TWILIO_AUTH_TOKEN", &token)];
    let (code, out) = outputs(dir.path(), &[], &env, &[&token]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOTE auth-token-outside-production"), "{out}");
}

#[test]
fn files_are_judged_by_their_own_markers_and_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let token = random_secret("");
    let account = random_sid("AC");
    std::fs::write(
        dir.path().join(".env.production"),
        format!("TWILIO_ACCOUNT_SID={account}\nAUTH={token}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sids.env"),
        format!("TWILIO_ACCOUNT_SID={}\n", random_sid("SK")),
    )
    .unwrap();
    let (code, out) = outputs(
        dir.path(),
        &["--no-env", ".env.production", "sids.env"],
        &[],
        &[&token],
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("RISK auth-token-in-production  .env.production:2  AUTH="),
        "{out}"
    );
    assert!(out.contains("beside Account SID"), "{out}");
    assert!(out.contains("RISK sid-wrong-prefix  sids.env:1"), "{out}");
}

#[test]
fn secrets_under_git_are_risks_and_ignored_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    let secret = random_secret("");
    let body = format!(
        "TWILIO_API_KEY={}\nTWILIO_API_SECRET={secret}\n",
        random_sid("SK")
    );
    for file in ["tracked.env", "loose.env", "ignored.env"] {
        std::fs::write(repo.join(file), &body).unwrap();
    }
    std::fs::write(repo.join(".gitignore"), "ignored.env\n").unwrap();
    git(repo, &["add", "tracked.env", ".gitignore"]);

    let (code, out) = outputs(repo, &["--no-env", "tracked.env"], &[], &[&secret]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("RISK secret-in-version-control  tracked.env:2  TWILIO_API_SECRET="),
        "{out}"
    );
    let (code, out) = outputs(repo, &["--no-env", "loose.env"], &[], &[&secret]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("RISK secret-file-not-ignored  loose.env:2"),
        "{out}"
    );
    let (code, out) = outputs(repo, &["--no-env", "ignored.env"], &[], &[&secret]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no risky Twilio credentials found"), "{out}");
}

#[test]
fn a_clean_setup_passes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = random_secret("");
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "APP_ENV=production\nTWILIO_ACCOUNT_SID={}\nTWILIO_API_KEY={}\nTWILIO_API_SECRET={secret}\n",
            random_sid("AC"),
            random_sid("SK")
        ),
    )
    .unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../twilio-broker.example.toml");
    let example = example.to_str().unwrap();
    let (code, out) = outputs(
        dir.path(),
        &[".env", example],
        &[("RAILS_ENV", "production")],
        &[&secret],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 risk(s)"), "{out}");
}

#[test]
fn doctor_that_cannot_run_says_why_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = doctor(dir.path(), &["missing.env"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read missing.env"));
    let out = doctor(dir.path(), &["--no-env"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
