//! Tidy checks in the spirit of rust-analyzer's: rules about the code base
//! that rustc cannot check, enforced by a test (`cargo test -p twilio-broker
//! --lib tidy`).
//!
//! - Only the gRPC edge sees generated or tonic/prost types: `grpc/`,
//!   `server.rs`, the CLI's client commands, `transport/` (it implements
//!   tonic's `Connected`) and `fuzzing.rs` (it feeds proto requests in).
//! - Only the vault seals (`store/vault.rs`, with `store/seal.rs` itself;
//!   `fuzzing.rs` seals test records to fuzz their opening, and
//!   `state_file.rs` seals the state file, which lives outside the store).
//! - No `unwrap_or_else(|_| unreachable!())`, which hides an `unwrap` from
//!   the `unwrap_used` lint: say why it cannot fail with `expect`.
//! - Every module of `lib.rs` has its row in ARCHITECTURE.md.
//! - No status code below the edge: `tonic::Status`/`tonic::Code` and
//!   status details only in `grpc/`, `server.rs`, `cli/` and `transport/`;
//!   `error.rs` has no variant named after a gRPC code.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(src())
        .expect("under src")
        .to_string_lossy()
        .into_owned()
}

/// Lines of code (comments dropped) of every source file but this one.
fn code() -> Vec<(String, Vec<String>)> {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    files
        .into_iter()
        .filter(|f| relative(f) != "tidy.rs")
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("utf-8 source");
            let lines = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default().to_owned())
                .collect();
            (relative(&f), lines)
        })
        .collect()
}

#[test]
fn generated_and_tonic_types_stay_at_the_edge() {
    let allowed = |file: &str| {
        file.starts_with("grpc/")
            || file.starts_with("cli/")
            || file.starts_with("transport/")
            || file == "server.rs"
            || file == "fuzzing.rs"
    };
    let mut found = Vec::new();
    for (file, lines) in code() {
        if allowed(&file) {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if ["tonic::", "twilio_broker_api", "prost::", "prost_types::"]
                .iter()
                .any(|p| line.contains(p))
            {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "edge types outside the edge:\n{}",
        found.join("\n")
    );
}

/// Status codes are chosen in one table (`grpc/status.rs`): no module
/// below the edge builds a `tonic::Status`, names a `tonic::Code` or
/// attaches status details, and no `Error` variant is named after a code.
#[test]
fn status_codes_are_chosen_only_at_the_edge() {
    let allowed = |file: &str| {
        file.starts_with("grpc/")
            || file.starts_with("cli/")
            || file.starts_with("transport/")
            || file == "server.rs"
    };
    let mut found = Vec::new();
    for (file, lines) in code() {
        if allowed(&file) {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if [
                "tonic::Status",
                "tonic::Code",
                "tonic_types",
                "Status::",
                "Code::",
            ]
            .iter()
            .any(|p| line.contains(p))
            {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    let error = std::fs::read_to_string(src().join("error.rs")).expect("error.rs");
    for code_name in [
        "InvalidArgument",
        "FailedPrecondition",
        "PermissionDenied",
        "ResourceExhausted",
        "Unauthenticated",
        "Unavailable(",
        "NotFound(",
    ] {
        if error.contains(&format!("    {code_name}")) {
            found.push(format!(
                "error.rs: a variant named after a status code: {code_name}"
            ));
        }
    }
    assert!(
        found.is_empty(),
        "status codes chosen outside grpc/status.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_vault_seals() {
    let mut found = Vec::new();
    for (file, lines) in code() {
        // fuzzing.rs seals records to fuzz their opening; the state file is
        // the one other sealed artefact (outside the store).
        if file == "store/vault.rs"
            || file.starts_with("store/seal")
            || file == "fuzzing.rs"
            || file == "state_file.rs"
        {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if line.contains("seal::seal(") || line.contains("seal::seal_") {
                found.push(format!("{file}:{}", n + 1));
            }
        }
    }
    assert!(found.is_empty(), "sealing outside the vault: {found:?}");
}

#[test]
fn no_hidden_unwraps() {
    let needle = ["unwrap_or_else(|_| unreachable", "!())"].concat();
    let found: Vec<String> = code()
        .into_iter()
        .flat_map(|(file, lines)| {
            lines
                .into_iter()
                .enumerate()
                .filter(|(_, l)| l.contains(&needle[..needle.len() - 3]))
                .map(move |(n, _)| format!("{file}:{}", n + 1))
        })
        .collect();
    assert!(
        found.is_empty(),
        "write `expect(\"why it cannot fail\")` instead: {found:?}"
    );
}

#[test]
fn every_module_is_on_the_code_map() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let missing: Vec<&str> = lib
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_start_matches("pub ")
                .strip_prefix("mod ")
                .and_then(|m| m.strip_suffix(';'))
        })
        .filter(|m| !map.contains(&format!("`{m}/`")) && !map.contains(&format!("`{m}.rs`")))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from ARCHITECTURE.md: {missing:?}"
    );
}
