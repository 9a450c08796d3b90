//! `plugin new`: the projects it writes build and pass their own tests in a
//! directory outside this workspace (the SDK by path, as an author's own
//! repository would have it by git), pass `plugin check`, and load into a
//! running broker. The shipped C example builds and passes the check too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use twilio_broker_api::v1 as pb;

use super::libs::{profile_dir, workspace};
use crate::harness::{BIN, Broker, Fixtures, Options, run_cli};

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn release() -> bool {
    profile_dir().file_name().is_some_and(|n| n == "release")
}

/// A directory outside the workspace for generated projects.
fn outside() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        !dir.path().starts_with(workspace()),
        "{} must be outside the workspace",
        dir.path().display()
    );
    dir
}

/// `twilio-broker plugin new ...` into `dir`; the project's path.
fn plugin_new(dir: &Path, kind: &str, name: &str, extra: &[&str]) -> PathBuf {
    let dir_arg = dir.display().to_string();
    let mut args = vec!["plugin", "new", kind, name, "--dir", &dir_arg];
    args.extend_from_slice(extra);
    let out = run_cli(&args, "", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("next:"));
    dir.join(name)
}

/// Runs cargo in a generated project, with the workspace's target directory
/// (so the SDK's dependencies are not rebuilt) and offline.
fn cargo(project: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(args)
        .arg("--offline")
        .current_dir(project)
        .env("CARGO_TARGET_DIR", profile_dir().parent().unwrap());
    if release() {
        command.arg("--release");
    }
    command.output().expect("run cargo")
}

/// Tests and builds a generated Rust project; the library's path.
fn build_rust(project: &Path, krate: &str) -> PathBuf {
    let tested = cargo(project, &["test"]);
    assert!(tested.status.success(), "cargo test:\n{}", text(&tested));
    let tested = text(&tested);
    assert!(
        tested.contains("test passes_the_") && tested.contains("... ok"),
        "the conformance test ran:\n{tested}"
    );
    let built = cargo(project, &["build"]);
    assert!(built.status.success(), "cargo build:\n{}", text(&built));
    let lib = profile_dir().join(format!(
        "{}{krate}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

/// `plugin check` passes with the expected name and suite line.
fn assert_checks(args: &[&str], name: &str, suite_line: &str) {
    let out = run_cli(args, "", &[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for needle in [
        &format!("name:         {name}"),
        "ABI version:  2 (this broker loads 1 to 2)",
        "version:      0.1.0",
        suite_line,
    ] {
        assert!(all.contains(needle), "{needle:?} not in:\n{all}");
    }
}

/// A broker with `entry` (one `[[plugins]]` table) in its config.
fn broker_with(dir: &Path, entry: &str) -> Broker {
    let path = dir.join("broker.toml");
    std::fs::write(&path, entry).unwrap();
    Broker::start(Options {
        args: vec!["--config".into(), path.display().to_string()],
        ..Options::default()
    })
}

fn audit_entry(lib: &Path, events: &Path) -> String {
    format!(
        "[[plugins]]\nkind = \"audit\"\npath = {:?}\nrequired = true\nconfig = {{ path = {:?} }}\n",
        lib.display().to_string(),
        events.display().to_string()
    )
}

/// Makes a call and waits until the audit plugin has written its event.
async fn assert_audited(broker: &Broker, events: &Path) {
    broker
        .admin()
        .await
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap();
    for _ in 0..100 {
        let written = std::fs::read_to_string(events).unwrap_or_default();
        if let Some(line) = written.lines().find(|l| l.contains("ListCredentials")) {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["rpc"], "ListCredentials");
            assert_eq!(event["status"], "OK");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no ListCredentials event in {}", events.display());
}

fn sdk_path() -> String {
    workspace().join("plugins/sdk").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_audit_plugin_builds_checks_and_loads() {
    let dir = outside();
    let sdk = sdk_path();
    let project = plugin_new(dir.path(), "audit", "e2e-new-audit", &["--sdk", &sdk]);
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(!manifest.contains("workspace = true"), "{manifest}");
    let lib = build_rust(&project, "e2e_new_audit");
    let events = dir.path().join("check.jsonl");
    let config = format!("{{\"path\":{:?}}}", events.display().to_string());
    let (lib_arg, events_arg) = (lib.display().to_string(), events.display().to_string());
    assert_checks(
        &[
            "plugin",
            "check",
            &lib_arg,
            "--kind",
            "audit",
            "--config",
            &config,
            "--readback-jsonl",
            &events_arg,
        ],
        "e2e-new-audit",
        "audit suite: 6 passed, 0 failed, 0 skipped",
    );
    let served = dir.path().join("served.jsonl");
    let broker = broker_with(dir.path(), &audit_entry(&lib, &served));
    assert_audited(&broker, &served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_storage_plugin_builds_checks_and_loads() {
    let dir = outside();
    let sdk = sdk_path();
    let project = plugin_new(dir.path(), "storage", "e2e-new-store", &["--sdk", &sdk]);
    let lib = build_rust(&project, "e2e_new_store");
    let lib_arg = lib.display().to_string();
    assert_checks(
        &["plugin", "check", &lib_arg, "--kind", "storage"],
        "e2e-new-store",
        "storage suite: 12 passed, 0 failed, 2 skipped",
    );
    let entry = format!(
        "[[plugins]]\nkind = \"storage\"\npath = {:?}\n",
        lib.display().to_string()
    );
    let broker = broker_with(dir.path(), &entry);
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    admin.put_credential(f.auth_token("kept")).await.unwrap();
    let found = admin
        .get_credential(pb::GetCredentialRequest {
            name: "kept".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.credential.map(|c| c.name).as_deref(), Some("kept"));
}

/// Builds a C (or Go) project with make and runs `make check` (which runs
/// `plugin check` with read-back); the library's path.
fn build_c(project: &Path, lib_name: &str, extra: &[String]) -> PathBuf {
    build_c_with(
        project,
        lib_name,
        extra,
        "audit suite: 6 passed, 0 failed, 0 skipped",
    )
}

/// As [`build_c`], expecting `suite_line` from `make check`.
fn build_c_with(project: &Path, lib_name: &str, extra: &[String], suite_line: &str) -> PathBuf {
    let make = |target: &str| {
        let out = Command::new("make")
            .arg("-C")
            .arg(project)
            .arg(target)
            .arg(format!("TWILIO_BROKER={BIN}"))
            .args(extra)
            .output()
            .expect("run make (make and a C compiler are required for these tests)");
        assert!(out.status.success(), "make {target}:\n{}", text(&out));
        text(&out)
    };
    make("all");
    let checked = make("check");
    for needle in [
        "ABI version:  2 (this broker loads 1 to 2)",
        "version:      0.1.0",
        suite_line,
    ] {
        assert!(checked.contains(needle), "{needle:?} not in:\n{checked}");
    }
    project.join(lib_name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_c_audit_plugin_builds_checks_and_loads() {
    let dir = outside();
    let project = plugin_new(dir.path(), "audit", "e2e-new-c", &["--lang", "c"]);
    assert!(project.join("include/twilio_broker_plugin.h").exists());
    let lib = build_c(&project, "libe2e_new_c.so", &[]);
    let served = dir.path().join("served.jsonl");
    let broker = broker_with(dir.path(), &audit_entry(&lib, &served));
    assert_audited(&broker, &served).await;
    assert!(broker.log_text().contains("e2e-new-c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_c_storage_plugin_builds_checks_and_loads() {
    let dir = outside();
    let project = plugin_new(dir.path(), "storage", "e2e-new-c-store", &["--lang", "c"]);
    let lib = build_c_with(
        &project,
        "libe2e_new_c_store.so",
        &[],
        "storage suite: 13 passed, 0 failed, 1 skipped",
    );
    let entry = format!(
        "[[plugins]]\nkind = \"storage\"\npath = {:?}\nconfig = {{}}\n",
        lib.display().to_string()
    );
    let broker = broker_with(dir.path(), &entry);
    let f = Fixtures::new();
    let mut admin = broker.admin().await;
    admin.put_credential(f.auth_token("kept")).await.unwrap();
    let listed = admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.credentials.len(), 1);
    assert!(broker.log_text().contains("e2e-new-c-store"));
}

/// The shipped C examples, copied out of the tree and built against the
/// SDK's header, pass `make check`.
#[test]
fn the_c_examples_build_and_check() {
    let dir = outside();
    let include = format!(
        "TB_INCLUDE={}",
        workspace().join("plugins/sdk/include").display()
    );
    let examples = [
        (
            "c-audit",
            "audit.c",
            "libc_jsonl.so",
            "audit suite: 6 passed, 0 failed, 0 skipped",
        ),
        (
            "c-storage",
            "storage.c",
            "libc_memstore.so",
            "storage suite: 13 passed, 0 failed, 1 skipped",
        ),
    ];
    for (example, source, lib, suite_line) in examples {
        let from = workspace().join("plugins/examples").join(example);
        let copy = dir.path().join(example);
        std::fs::create_dir(&copy).unwrap();
        for file in [source, "Makefile", "README.md"] {
            std::fs::copy(from.join(file), copy.join(file)).unwrap();
        }
        build_c_with(&copy, lib, std::slice::from_ref(&include), suite_line);
    }
}

/// Go on PATH, or a loud skip (a failure under CI, where
/// `scripts/setup-test-deps` installs Debian's golang-go).
fn go_available() -> bool {
    let found = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "no Go toolchain on PATH; scripts/setup-test-deps installs it"
        );
        eprintln!("\n!!!!!!!! SKIPPED: no Go toolchain (apt-get install golang-go) !!!!!!!!\n");
    }
    found
}

/// The Go example (cgo, `-buildmode=c-shared`, GO111MODULE=off), copied out
/// of the tree: builds offline, passes `make check` (`plugin check` with
/// read-back), and records a served RPC's event in a running broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_audit_example_builds_checks_and_loads() {
    if !go_available() {
        return;
    }
    let dir = outside();
    let example = workspace().join("plugins/examples/go-audit");
    let copy = dir.path().join("go-audit");
    std::fs::create_dir(&copy).unwrap();
    for file in ["main.go", "table.c", "Makefile", "README.md"] {
        std::fs::copy(example.join(file), copy.join(file)).unwrap();
    }
    let include = format!(
        "TB_INCLUDE={}",
        workspace().join("plugins/sdk/include").display()
    );
    let lib = build_c(&copy, "libgo_jsonl.so", &[include]);
    let served = dir.path().join("served.jsonl");
    let broker = broker_with(dir.path(), &audit_entry(&lib, &served));
    assert_audited(&broker, &served).await;
    assert!(broker.log_text().contains("go-jsonl"));
}

#[test]
fn plugin_new_refuses_what_it_cannot_write() {
    let dir = outside();
    let d = dir.path().display().to_string();
    let sdk = sdk_path();
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "plugin", "new", "audit", "x", "--lang", "c", "--dir", &d, "--sdk", &sdk,
            ],
            "--sdk is for Rust projects",
        ),
        (
            &[
                "plugin", "new", "audit", "My_Sink", "--dir", &d, "--sdk", &sdk,
            ],
            "is not usable",
        ),
        (
            &["plugin", "new", "audit", "x", "--dir", &d],
            "--sdk is required",
        ),
        (
            &["plugin", "new", "audit", "x", "--dir", &d, "--sdk", &d],
            "not the SDK directory",
        ),
        (
            &[
                "plugin", "new", "audit", "taken", "--lang", "c", "--dir", &d,
            ],
            "already exists",
        ),
    ];
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    for (args, expected) in cases {
        let out = run_cli(args, "", &[]);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }
}
