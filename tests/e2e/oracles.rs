//! Where the outside peers live (installed by `scripts/setup-test-deps`):
//! Twilio's helper libraries, grpcurl, buf.
//!
//! On a laptop without them a test skips with a loud message; under
//! `CI=true` a missing peer fails the test instead.

use std::path::PathBuf;

/// True under CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn missing(what: &str) -> Option<PathBuf> {
    assert!(
        !in_ci(),
        "{what} is not installed; CI must run scripts/setup-test-deps (scripts/test does)"
    );
    eprintln!(
        "\n!!!!!!!! SKIPPED: {what} is not installed. Run scripts/test (or scripts/setup-test-deps) \
         to run this check. !!!!!!!!\n"
    );
    None
}

/// The Python interpreter of the venv holding twilio-python and grpcio.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("TWILIO_BROKER_TEST_PYTHON").map(PathBuf::from) {
        Some(path) if path.exists() => Some(path),
        _ => missing("twilio-python (TWILIO_BROKER_TEST_PYTHON)"),
    }
}

/// The node_modules folder holding twilio-node and grpc-js.
pub fn node_modules() -> Option<PathBuf> {
    match std::env::var_os("TWILIO_BROKER_TEST_NODE_MODULES").map(PathBuf::from) {
        Some(path) if path.join("twilio").exists() => Some(path),
        _ => missing("twilio-node (TWILIO_BROKER_TEST_NODE_MODULES)"),
    }
}

/// A tool on PATH (grpcurl, buf), if installed.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    missing(name)
}
