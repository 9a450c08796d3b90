//! Locating (and building) plugin libraries for the tests.
//!
//! Rust plugins: one `cargo build -p ...` per test run, with the target
//! directory and profile of the broker binary under test (taken from
//! `CARGO_BIN_EXE_twilio-broker`), so the libraries land next to it.
//! C plugins: compiled with `cc` into `<target>/<profile>/c-plugins/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::harness::BIN;

/// Every plugin package the tests load.
const PACKAGES: [&str; 5] = [
    "twilio-broker-audit-jsonl",
    "twilio-broker-audit-nats",
    "twilio-broker-storage-postgres",
    "twilio-broker-test-faulty-audit",
    "twilio-broker-test-faulty-storage",
];

/// The target directory and profile of the broker binary under test.
pub fn profile_dir() -> PathBuf {
    Path::new(BIN).parent().unwrap().to_owned()
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The library of a Rust plugin package, e.g. `cargo_plugin("twilio_broker_audit_jsonl")`.
pub fn cargo_plugin(lib_name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let profile = profile_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.arg("build").current_dir(workspace());
        for package in PACKAGES {
            command.args(["-p", package]);
        }
        if profile.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        command.env("CARGO_TARGET_DIR", profile.parent().unwrap());
        let output = command
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    });
    if let Err(stderr) = built {
        panic!("building the plugin packages failed:\n{stderr}");
    }
    let path = profile_dir().join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A C test plugin from `plugins/sdk/tests/c/<source>.c`, compiled with
/// `defines` (e.g. `TB_TEST_GARBAGE`) into a library called `name`.
pub fn c_plugin(source: &str, defines: &[&str], name: &str) -> PathBuf {
    c_plugin_with(source, defines, name, "include")
}

/// As [`c_plugin`], compiled against the header in `plugins/sdk/<include>`
/// (`include`, or a fixture: `tests/c/v1`, `tests/c/v2.0`).
pub fn c_plugin_with(source: &str, defines: &[&str], name: &str, include: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let sdk = workspace().join("plugins/sdk");
    let dir = profile_dir().join("c-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("lib{name}{}", std::env::consts::DLL_SUFFIX));
    let partial = dir.join(format!("lib{name}.{}.partial", std::process::id()));
    let mut command = Command::new("cc");
    command
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread",
        ])
        .arg("-I")
        .arg(sdk.join(include));
    for define in defines {
        command.arg(format!("-D{define}"));
    }
    let output = command
        .arg("-o")
        .arg(&partial)
        .arg(sdk.join(format!("tests/c/{source}.c")))
        .output()
        .expect("run cc (a C compiler is required for these tests)");
    assert!(
        output.status.success(),
        "cc failed on {source}.c:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &path).unwrap();
    built.insert(name.to_owned(), path.clone());
    path
}

/// The C in-memory storage plugin: an ABI version 1 library, compiled
/// against the version 1 header as it shipped.
pub fn c_memory() -> PathBuf {
    c_plugin_with("memory_storage", &[], "tb_c_memory", "tests/c/v1")
}

/// The same plugin as an ABI version 2 library built against the first
/// version 2 header (a `TbPluginV2` without the fields appended since).
pub fn c_memory_v2_older() -> PathBuf {
    c_plugin_with(
        "memory_storage",
        &["TB_TEST_V2"],
        "tb_c_memory_v2_older",
        "tests/c/v2.0",
    )
}

/// The same plugin as an ABI version 2 library built against today's header.
pub fn c_memory_v2() -> PathBuf {
    c_plugin("memory_storage", &["TB_TEST_V2"], "tb_c_memory_v2")
}

/// The same plugin as an ABI version 2 library built against a newer
/// header: its table has a field appended after those the broker knows.
pub fn c_memory_v2_newer() -> PathBuf {
    c_plugin(
        "memory_storage",
        &["TB_TEST_V2", "TB_TEST_V2_NEWER"],
        "tb_c_memory_v2_newer",
    )
}

/// A version 2 table whose `struct_size` is too small to be one.
pub fn c_memory_v2_too_small() -> PathBuf {
    c_plugin(
        "memory_storage",
        &["TB_TEST_V2", "TB_TEST_V2_TOO_SMALL"],
        "tb_c_memory_v2_too_small",
    )
}

/// The C storage plugin that answers garbage for keys containing "garbage"
/// (version 1).
pub fn c_garbage() -> PathBuf {
    c_plugin_with(
        "memory_storage",
        &["TB_TEST_GARBAGE"],
        "tb_c_garbage",
        "tests/c/v1",
    )
}
