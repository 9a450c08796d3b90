//! The clients as their users install them: `pip install ./client/python`
//! into fresh venvs at the lowest declared versions and at the latest, and
//! the tarball from `npm pack client/node` installed beside twilio-node 6.x.
//! The installs are built once per test run (shared by `users.rs`, which
//! runs them under their own test users) in `target/test-deps/pkg-*`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::{client_dir, run_driver, setup};
use crate::oracles;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// True when every folder from `/` down to `path` lets other users through.
fn reachable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    path.ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Where the package installs live: `target/test-deps/NAME`, or under
/// `/tmp` when the checkout is not reachable by the test users (`users.rs`
/// runs these installs as other uids).
pub fn install_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    if reachable_by_others(&target) {
        target.join("test-deps").join(name)
    } else {
        std::env::temp_dir()
            .join("twilio-broker-test-deps")
            .join(name)
    }
}

/// Runs a command; panics with its output unless it succeeds.
pub fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lowest versions `client/python/pyproject.toml` allows (and the
/// `twilio` extra's lowest).
pub const PY_LOWEST: &[(&str, &str)] = &[
    ("googleapis-common-protos", "1.76.0"),
    ("grpcio", "1.85.0"),
    ("protobuf", "7.35.1"),
    ("twilio", "9.4.1"),
];

/// Which resolution of the Python package's dependencies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Versions {
    Lowest,
    Latest,
}

/// The Debian interpreter: the pyenv one under /root is not reachable by
/// the test users.
fn system_python() -> Option<PathBuf> {
    let python = PathBuf::from("/usr/bin/python3");
    if python.exists() {
        Some(python)
    } else {
        assert!(!oracles::in_ci(), "/usr/bin/python3 is missing");
        eprintln!("\n!!!!!!!! SKIPPED: /usr/bin/python3 is missing !!!!!!!!\n");
        None
    }
}

/// A fresh venv with `client/python[twilio]` installed at `versions`; its
/// interpreter. Built once per test run. For `Lowest`, `twilio_broker` is
/// imported before the `twilio` extra is installed (it must work without it).
pub fn python_package(versions: Versions) -> Option<PathBuf> {
    static LOWEST: OnceLock<Option<PathBuf>> = OnceLock::new();
    static LATEST: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = match versions {
        Versions::Lowest => &LOWEST,
        Versions::Latest => &LATEST,
    };
    cell.get_or_init(|| build_python(versions)).clone()
}

fn build_python(versions: Versions) -> Option<PathBuf> {
    let system = system_python()?;
    let dir = install_dir(match versions {
        Versions::Lowest => "pkg-python-lowest",
        Versions::Latest => "pkg-python-latest",
    });
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new(&system).args(["-m", "venv"]).arg(&dir));
    let python = dir.join("bin/python");
    let pip = |args: &[&str]| {
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(args)
            .current_dir(&dir))
    };
    // Built from a copy: setuptools writes build/ and *.egg-info beside the source.
    let source = dir.join("src");
    run(Command::new("cp")
        .arg("-r")
        .arg(client_dir().join("python"))
        .arg(&source));
    let package = source.to_str().unwrap();
    match versions {
        Versions::Lowest => {
            let pins: Vec<String> = PY_LOWEST
                .iter()
                .map(|(name, version)| format!("{name}=={version}"))
                .collect();
            let constraints = dir.join("constraints.txt");
            std::fs::write(&constraints, pins.join("\n")).unwrap();
            pip(&["-c", constraints.to_str().unwrap(), package]);
            // Without the `twilio` extra the clients import; the providers say what is missing.
            run(Command::new(&python).current_dir(&dir).args([
                "-c",
                "import twilio_broker, twilio_broker.aio; from twilio_broker import BrokerClient, AsyncBrokerClient",
            ]));
            pip(&[
                "-c",
                constraints.to_str().unwrap(),
                &format!("{package}[twilio]"),
            ]);
        }
        Versions::Latest => {
            pip(&["--upgrade", &format!("{package}[twilio]")]);
        }
    }
    Some(python)
}

/// `pip show` versions of the packages `names` in a venv.
fn installed_versions(python: &Path, names: &[&str]) -> Vec<(String, String)> {
    let out = run(Command::new(python).args(["-m", "pip", "show"]).args(names));
    let mut versions = Vec::new();
    let mut name = String::new();
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("Name: ") {
            name = n.trim().to_lowercase();
        }
        if let Some(v) = line.strip_prefix("Version: ") {
            versions.push((name.clone(), v.trim().to_owned()));
        }
    }
    versions
}

/// Runs the Python driver with an installed package (no PYTHONPATH).
fn python_driver(python: &Path, spec: &Value) -> Value {
    run_driver(python, "clients_python.py", &[], spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_package_installs_and_works_at_lowest_and_latest_versions() {
    for versions in [Versions::Lowest, Versions::Latest] {
        let Some(python) = python_package(versions) else {
            return;
        };
        let got = installed_versions(
            &python,
            &["googleapis-common-protos", "grpcio", "protobuf", "twilio"],
        );
        assert_eq!(got.len(), 4, "{got:?}");
        if versions == Versions::Lowest {
            let want: Vec<(String, String)> = PY_LOWEST
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(got, want);
        }
        // Imported from site-packages (not the source tree), typed.
        let out = run(Command::new(&python).current_dir("/").args([
            "-c",
            "import os, twilio_broker, twilio_broker.v1.broker_pb2 as b; \
             from twilio_broker import BrokerCredentialProvider, AsyncBrokerCredentialProvider; \
             d = os.path.dirname(twilio_broker.__file__); \
             print(d); print(os.path.exists(os.path.join(d, 'py.typed'))); \
             print(os.path.exists(os.path.join(d, 'v1', 'broker_pb2.pyi')))",
        ]));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("site-packages"), "{out}");
        assert_eq!(
            &lines[1..],
            ["True", "True"],
            "py.typed and stubs installed"
        );

        // And it works: the whole Python driver (SMS through twilio-python
        // with the provider, every grpcio call) against a real broker.
        let s = setup().await;
        let out = python_driver(&python, &s.spec());
        assert_eq!(out["sms"]["broker_calls"], 1, "{versions:?}: {out}");
        assert_eq!(out["sms"]["schemes"], serde_json::json!(["Bearer"]));
        assert_eq!(out["grpcio"]["not_found"], "NOT_FOUND");
        assert_eq!(out["grpcio"]["not_found_reason"], "CREDENTIAL_NOT_FOUND");
        let sids: Vec<String> = out["sms"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["sid"].as_str().unwrap().to_owned())
            .collect();
        s.assert_messages_authorised_by_one_bearer(&sids);
    }
}

/// `npm pack client/node` installed with twilio-node 6.2 into a fresh
/// folder; that folder's `node_modules`. Built once per test run.
pub fn node_package() -> Option<PathBuf> {
    static NODE: OnceLock<Option<PathBuf>> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    NODE.get_or_init(build_node).clone()
}

fn build_node() -> Option<PathBuf> {
    // The pinned oracles are installed: npm works and its cache is warm.
    oracles::node_modules()?;
    let dir = install_dir("pkg-node");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let packed = run(Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(&dir)
        .arg(client_dir().join("node")));
    let tarball = dir.join(packed.trim().lines().last().unwrap().trim());
    assert!(tarball.exists(), "npm pack wrote {packed}");
    std::fs::write(dir.join("package.json"), r#"{"private": true}"#).unwrap();
    run(Command::new("npm")
        .args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
        ])
        .arg(&tarball)
        .arg("twilio@6.2.0")
        .current_dir(&dir));
    Some(dir.join("node_modules"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_tarball_installs_beside_twilio_node_and_works() {
    let Some(modules) = node_package() else {
        return;
    };
    // The tarball holds what the package needs, peers came with it.
    for file in [
        "twilio-broker/index.js",
        "twilio-broker/index.d.ts",
        "twilio-broker/proto/twilio/broker/v1/broker.proto",
        "@grpc/grpc-js/package.json",
        "@grpc/proto-loader/package.json",
        "twilio/package.json",
    ] {
        assert!(modules.join(file).exists(), "{file} not installed");
    }
    // TypeScript: the README's snippet compiles against twilio-node's own
    // types without a cast; a wrong provider does not.
    let tsc = oracles::node_modules().unwrap().join(".bin/tsc");
    let project = modules.parent().unwrap();
    let compile = |file: &str| {
        std::fs::copy(
            root().join("tests/oracles/ts").join(file),
            project.join(file),
        )
        .unwrap();
        Command::new(&tsc)
            .args([
                "--noEmit",
                "--strict",
                "--esModuleInterop",
                "--skipLibCheck",
                "--module",
                "commonjs",
                "--target",
                "es2022",
                file,
            ])
            .current_dir(project)
            .output()
            .unwrap()
    };
    let good = compile("provider.ts");
    assert!(
        good.status.success(),
        "provider.ts: {}",
        String::from_utf8_lossy(&good.stdout)
    );
    let wrong = compile("wrong.ts");
    let text = String::from_utf8_lossy(&wrong.stdout);
    assert!(
        !wrong.status.success()
            && text.contains("not assignable to parameter of type 'CredentialProvider'"),
        "wrong.ts: {text}"
    );

    let s = setup().await;
    let out = run_driver(
        "node".as_ref(),
        "clients_node.js",
        &[
            ("NODE_PATH", modules.clone()),
            ("TWILIO_BROKER_NODE_CLIENT", modules.join("twilio-broker")),
        ],
        &s.spec(),
    );
    assert_eq!(out["sms"]["broker_calls"], 1, "{out}");
    let sids: Vec<String> = out["sms"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sid"].as_str().unwrap().to_owned())
        .collect();
    s.assert_messages_authorised_by_one_bearer(&sids);
}
