//! The C header must say exactly what the Rust ABI says: it is regenerated
//! with cbindgen and compared with the committed file, and a C compiler
//! checks the struct layouts against Rust's.

use std::path::{Path, PathBuf};
use std::process::Command;

use twilio_broker_plugin_sdk::abi;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> Vec<u8> {
    let dir = sdk_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/abi/mod.rs"))
        .generate()
        .expect("cbindgen parses the ABI module");
    let mut out = Vec::new();
    bindings.write(&mut out);
    out
}

#[test]
fn header_matches_the_rust_abi() {
    let path = sdk_dir().join("include/twilio_broker_plugin.h");
    let fresh = generated();
    if std::env::var_os("TWILIO_BROKER_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: the Rust ABI changed. Regenerate it with\n  \
         TWILIO_BROKER_UPDATE_HEADER=1 cargo test -p twilio-broker-plugin-sdk --test header\n\
         and, if the change is incompatible, bump TB_ABI_VERSION.",
        path.display()
    );
}

/// A C compiler, or a loud skip (a failure under CI).
fn cc() -> Option<&'static str> {
    let found = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("cc");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "no C compiler (cc) on PATH; CI must have one");
    eprintln!("\n!!!!!!!! SKIPPED: no C compiler (cc) on PATH !!!!!!!!\n");
    None
}

fn compile_c(source: &str, dir: &Path) {
    compile_c_with(source, dir, &sdk_dir().join("include"), &[]);
}

/// Compiles `source` against the header in `include`, with `-D` `defines`.
fn compile_c_with(source: &str, dir: &Path, include: &Path, defines: &[&str]) {
    let Some(cc) = cc() else { return };
    let file = dir.join("check.c");
    std::fs::write(&file, source).expect("write C file");
    let out = Command::new(cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(include)
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg(&file)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "C compile failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_sees_the_same_layout_as_rust() {
    use std::mem::{offset_of, size_of};
    let checks = [
        ("sizeof(TbSlice)", size_of::<abi::TbSlice>()),
        ("sizeof(TbBuf)", size_of::<abi::TbBuf>()),
        ("sizeof(TbAuditV1)", size_of::<abi::TbAuditV1>()),
        ("sizeof(TbStorageV1)", size_of::<abi::TbStorageV1>()),
        ("sizeof(TbPluginV1)", size_of::<abi::TbPluginV1>()),
        (
            "offsetof(TbPluginV1, name)",
            offset_of!(abi::TbPluginV1, name),
        ),
        (
            "offsetof(TbPluginV1, init)",
            offset_of!(abi::TbPluginV1, init),
        ),
        (
            "offsetof(TbPluginV1, free_buf)",
            offset_of!(abi::TbPluginV1, free_buf),
        ),
        (
            "offsetof(TbPluginV1, audit)",
            offset_of!(abi::TbPluginV1, audit),
        ),
        (
            "offsetof(TbPluginV1, storage)",
            offset_of!(abi::TbPluginV1, storage),
        ),
        (
            "offsetof(TbStorageV1, wait_for_change)",
            offset_of!(abi::TbStorageV1, wait_for_change),
        ),
        (
            "offsetof(TbStorageV1, close)",
            offset_of!(abi::TbStorageV1, close),
        ),
        (
            "offsetof(TbAuditV1, close)",
            offset_of!(abi::TbAuditV1, close),
        ),
        ("sizeof(TbAuditV2)", size_of::<abi::TbAuditV2>()),
        ("sizeof(TbStorageV2)", size_of::<abi::TbStorageV2>()),
        ("sizeof(TbPluginV2)", size_of::<abi::TbPluginV2>()),
        (
            "offsetof(TbPluginV2, kind)",
            offset_of!(abi::TbPluginV2, kind),
        ),
        (
            "offsetof(TbPluginV2, name)",
            offset_of!(abi::TbPluginV2, name),
        ),
        (
            "offsetof(TbPluginV2, init)",
            offset_of!(abi::TbPluginV2, init),
        ),
        (
            "offsetof(TbPluginV2, storage)",
            offset_of!(abi::TbPluginV2, storage),
        ),
        (
            "offsetof(TbPluginV2, version)",
            offset_of!(abi::TbPluginV2, version),
        ),
        (
            "offsetof(TbStorageV2, get)",
            offset_of!(abi::TbStorageV2, get),
        ),
        (
            "offsetof(TbStorageV2, close)",
            offset_of!(abi::TbStorageV2, close),
        ),
        (
            "offsetof(TbStorageV2, changes_since)",
            offset_of!(abi::TbStorageV2, changes_since),
        ),
        (
            "offsetof(TbAuditV2, close)",
            offset_of!(abi::TbAuditV2, close),
        ),
        ("TB_ABI_VERSION", abi::TB_ABI_VERSION as usize),
        ("TB_ABI_VERSION_OLDEST", abi::TB_ABI_VERSION_OLDEST as usize),
        ("TB_KIND_STORAGE", abi::TB_KIND_STORAGE as usize),
        ("TB_STATUS_PANICKED", abi::TB_STATUS_PANICKED as usize),
    ];
    let mut source = String::from("#include <stddef.h>\n#include \"twilio_broker_plugin.h\"\n");
    for (expr, value) in checks {
        source.push_str(&format!("_Static_assert({expr} == {value}, \"{expr}\");\n"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    compile_c(&source, dir.path());
}

#[test]
fn the_c_test_plugins_compile_against_the_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(sdk_dir().join("tests/c")).expect("tests/c") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "c") {
            let source = std::fs::read_to_string(&path).expect("read C source");
            compile_c(&source, dir.path());
        }
    }
}

/// The version 1 and "first version 2" fixture headers stay compatible with
/// today's: the version 1 structs are unchanged, and the older version 2
/// structs are a prefix of today's (only optional fields were appended).
#[test]
fn the_fixture_headers_are_prefixes_of_todays() {
    use std::mem::{offset_of, size_of};
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = format!(
        "#include <stddef.h>\n#include \"twilio_broker_plugin.h\"\n\
         _Static_assert(TB_ABI_VERSION == 1, \"v1\");\n\
         _Static_assert(sizeof(TbPluginV1) == {}, \"TbPluginV1\");\n\
         _Static_assert(sizeof(TbStorageV1) == {}, \"TbStorageV1\");\n\
         _Static_assert(sizeof(TbAuditV1) == {}, \"TbAuditV1\");\n",
        size_of::<abi::TbPluginV1>(),
        size_of::<abi::TbStorageV1>(),
        size_of::<abi::TbAuditV1>(),
    );
    compile_c_with(&v1, dir.path(), &sdk_dir().join("tests/c/v1"), &[]);
    let v2_0 = format!(
        "#include <stddef.h>\n#include \"twilio_broker_plugin.h\"\n\
         _Static_assert(TB_ABI_VERSION == 2, \"v2\");\n\
         _Static_assert(sizeof(TbPluginV2) == {}, \"TbPluginV2 ends at storage\");\n\
         _Static_assert(offsetof(TbPluginV2, storage) == {}, \"storage\");\n\
         _Static_assert(sizeof(TbStorageV2) == {}, \"TbStorageV2 ends at close\");\n\
         _Static_assert(sizeof(TbAuditV2) == {}, \"TbAuditV2\");\n",
        offset_of!(abi::TbPluginV2, version),
        offset_of!(abi::TbPluginV2, storage),
        offset_of!(abi::TbStorageV2, changes_since),
        size_of::<abi::TbAuditV2>(),
    );
    compile_c_with(&v2_0, dir.path(), &sdk_dir().join("tests/c/v2.0"), &[]);
    let memory = std::fs::read_to_string(sdk_dir().join("tests/c/memory_storage.c"))
        .expect("memory_storage.c");
    compile_c_with(&memory, dir.path(), &sdk_dir().join("tests/c/v1"), &[]);
    compile_c_with(
        &memory,
        dir.path(),
        &sdk_dir().join("tests/c/v2.0"),
        &["TB_TEST_V2"],
    );
    for defines in [
        &["TB_TEST_V2"][..],
        &["TB_TEST_V2", "TB_TEST_V2_NEWER"],
        &["TB_TEST_V2", "TB_TEST_V2_TOO_SMALL"],
        &["TB_TEST_GARBAGE"],
    ] {
        compile_c_with(&memory, dir.path(), &sdk_dir().join("include"), defines);
    }
}
