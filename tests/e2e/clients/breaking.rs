//! `buf breaking` against the contract as last released: `proto/baseline.binpb`
//! (a buf image of `proto/`, recorded at release with
//! `cd proto && buf build --exclude-source-info -o baseline.binpb`). Every
//! client's stubs are generated from `proto/`, so a renamed or renumbered
//! field, a removed RPC or a changed `go_package` breaks them all.

use std::path::Path;
use std::process::Command;

use super::packages::root;
use crate::oracles;

/// `buf breaking` in `dir` against the baseline; (success, output).
fn breaking(buf: &Path, dir: &Path) -> (bool, String) {
    let baseline = root().join("proto/baseline.binpb");
    let out = Command::new(buf)
        .args(["breaking", "--against"])
        .arg(&baseline)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_contract_has_no_breaking_change_since_the_baseline() {
    let Some(buf) = oracles::tool("buf") else {
        return;
    };
    let (ok, text) = breaking(&buf, &root().join("proto"));
    assert!(
        ok,
        "proto/ breaks the released contract (proto/baseline.binpb):\n{text}"
    );
}

/// The check has teeth: a renumbered field and a renamed one, in a copy of
/// `proto/`, each fail it.
#[test]
fn a_renumbered_or_renamed_field_fails_buf_breaking() {
    let Some(buf) = oracles::tool("buf") else {
        return;
    };
    for (from, to) in [
        ("uint32 min_ttl_seconds = 2;", "uint32 min_ttl_seconds = 7;"),
        (
            "uint32 min_ttl_seconds = 2;",
            "uint32 minimum_ttl_seconds = 2;",
        ),
    ] {
        let copy = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .arg("-r")
            .arg(root().join("proto/."))
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(status.success());
        let file = copy.path().join("twilio/broker/v1/broker.proto");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "broker.proto no longer has {from:?}");
        std::fs::write(&file, text.replace(from, to)).unwrap();
        let (ok, out) = breaking(&buf, copy.path());
        assert!(!ok, "{to:?} passed buf breaking:\n{out}");
        assert!(out.contains("min_ttl_seconds"), "{out}");
    }
}

/// The language options name the generated code: Java classes in package
/// `twiliobroker.v1` (one file per message), C# in namespace
/// `TwilioBroker.V1` (protoc's built-in generators; Go is built and run in
/// `go.rs`).
#[test]
fn java_and_csharp_code_lands_where_the_options_say() {
    if oracles::tool("protoc").is_none() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let (java, csharp) = (out.path().join("java"), out.path().join("cs"));
    std::fs::create_dir_all(&java).unwrap();
    std::fs::create_dir_all(&csharp).unwrap();
    let status = Command::new("protoc")
        .args(["-I", ".", "-I", "/usr/include"])
        .arg(format!("--java_out={}", java.display()))
        .arg(format!("--csharp_out={}", csharp.display()))
        .args([
            "twilio/broker/v1/admin.proto",
            "twilio/broker/v1/broker.proto",
            "twilio/broker/v1/credential.proto",
        ])
        .current_dir(root().join("proto"))
        .status()
        .unwrap();
    assert!(status.success());
    for class in ["GetBearerRequest", "PutCredentialRequest", "KeyType"] {
        let file = java.join(format!("twiliobroker/v1/{class}.java"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(text.contains("package twiliobroker.v1;"), "{class}");
    }
    for file in ["Admin.cs", "Broker.cs", "Credential.cs"] {
        let text = std::fs::read_to_string(csharp.join(file)).unwrap();
        assert!(text.contains("namespace TwilioBroker.V1 {"), "{file}");
    }
}
