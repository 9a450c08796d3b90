//! Go: the checked-in stubs (`client/go/brokerv1`, from Debian's
//! protoc-gen-go and protoc-gen-go-grpc) and the `getbearer` example, built
//! offline against Debian's Go packages (`GO111MODULE=off`,
//! `GOPATH=...:/usr/share/gocode`, `GOPROXY=off`), get a bearer over the
//! Unix socket and over TCP.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::OAUTH;
use super::packages::{root, run};
use crate::oracles;

/// The `getbearer` example, built once per test run; None (loud skip) when
/// the Go toolchain is missing off CI.
pub fn getbearer() -> Option<PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    BINARY.get_or_init(build).clone()
}

fn build() -> Option<PathBuf> {
    oracles::tool("go")?;
    let gocode = PathBuf::from("/usr/share/gocode/src/google.golang.org");
    for package in ["grpc", "protobuf"] {
        if !gocode.join(package).exists() {
            assert!(
                !oracles::in_ci(),
                "Debian's Go package {package} is missing: run scripts/setup-test-deps"
            );
            eprintln!("\n!!!!!!!! SKIPPED: Debian's Go packages are missing !!!!!!!!\n");
            return None;
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let work = super::packages::install_dir("go");
    let _ = std::fs::remove_dir_all(&work);
    // A GOPATH whose src/twilio-broker/client/go is this repository's client/go.
    let parent = work.join("gopath/src/twilio-broker/client");
    std::fs::create_dir_all(&parent).unwrap();
    std::os::unix::fs::symlink(
        root().join("client/go").canonicalize().unwrap(),
        parent.join("go"),
    )
    .unwrap();
    let binary = work.join("getbearer");
    run(Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg("twilio-broker/client/go/example/getbearer")
        .env(
            "GOPATH",
            format!("{}:/usr/share/gocode", work.join("gopath").display()),
        )
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", target.join("test-deps/go-cache"))
        .current_dir(parent.join("go")));
    Some(binary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_example_gets_a_bearer_over_unix_socket_and_tcp() {
    let Some(binary) = getbearer() else {
        return;
    };
    let unformatted = run(Command::new("gofmt")
        .arg("-l")
        .arg(root().join("client/go")));
    assert_eq!(unformatted.trim(), "", "gofmt -l client/go");

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let s = setup_with_socket(&socket).await;
    for addr in [format!("unix:{}", socket.display()), s.broker.addr.clone()] {
        let out = Command::new(&binary)
            .args(["-addr", &addr, "-credential", OAUTH])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{addr}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(reply["account_sid"], s.f.account_sid.as_str(), "{addr}");
        assert_eq!(reply["token_type"], "Bearer");
        assert!(reply["token_length"].as_u64().unwrap() > 20, "{reply}");
        let left = reply["expires_at"].as_i64().unwrap()
            - i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap();
        assert!((3000..=3660).contains(&left), "{left} s left: {reply}");
        // Never the token itself.
        assert!(!stdout.contains("eyJ"), "{stdout}");
    }
    // Both calls were served from the broker's cache: one upstream token.
    assert_eq!(s.standin.tokens_issued(), 1);

    // An unknown credential: exit 1 with the status in words.
    let out = Command::new(&binary)
        .args([
            "-addr",
            &format!("unix:{}", socket.display()),
            "-credential",
            "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NotFound") && stderr.contains("nope"),
        "{stderr}"
    );
    // The reason, read from the status details with status.Details().
    assert!(stderr.contains("(reason CREDENTIAL_NOT_FOUND)"), "{stderr}");
    s.assert_clean_logs();
}

/// `setup()`, with the broker also listening on `socket`.
async fn setup_with_socket(socket: &std::path::Path) -> super::Setup {
    let f = crate::harness::Fixtures::new();
    let standin = super::standin(&f).await;
    let broker = crate::harness::Broker::start(crate::harness::Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
        ],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        ..crate::harness::Options::default()
    });
    let mut admin = broker.admin().await;
    admin.put_credential(f.oauth_client(OAUTH)).await.unwrap();
    super::Setup { standin, broker, f }
}
