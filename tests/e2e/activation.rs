//! Issue 17: systemd socket activation. A socket bound by someone else and
//! passed as descriptor 3 with `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`
//! (what systemd does) is served by the listener naming its address; a
//! passed socket no listener names stops start-up with a clear message.
//!
//! A small Python launcher plays systemd: it binds and listens, moves the
//! socket to descriptor 3, sets the variables with its own pid and `exec`s
//! the broker (same pid).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::{BIN, free_port};

const LAUNCHER: &str = r#"
import os, socket, sys
where = sys.argv[1]
if where.startswith("unix:"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(where[len("unix:"):])
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(where)))
s.listen(128)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDNAMES"] = "grpc"
os.execv(sys.argv[2], sys.argv[2:])
"#;

/// Starts the broker under the launcher; returns the child and its log
/// lines up to "listening on" (or to exit). `passed` is a port or
/// `unix:PATH`.
fn launch(passed: &str, listen: &str) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new("python3")
        .args([
            "-c", LAUNCHER, passed, BIN, "serve", "--dev", "--listen", listen,
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 launches the broker");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_socket_is_served_by_the_listener_naming_it() {
    let port = free_port();
    let (mut child, lines) = launch(&port.to_string(), &format!("127.0.0.1:{port}"));
    let log = lines.join("\n");
    assert!(
        log.contains("serving a socket passed by systemd (LISTEN_FDS)"),
        "{log}"
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("the passed socket accepts");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("served over the passed socket")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_passed_socket_no_listener_names_stops_start_up() {
    let (passed, configured) = (free_port(), free_port());
    let (mut child, lines) = launch(&passed.to_string(), &format!("127.0.0.1:{configured}"));
    let status = child.wait().unwrap();
    let log = lines.join("\n");
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "socket activation passed TCP socket 127.0.0.1:{passed}"
        )) && log.contains("which no listener names"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_unix_socket_is_served_with_kernel_identities() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sock");
    let spec = format!("unix:{}", path.display());
    let (mut child, lines) = launch(&spec, &spec);
    let log = lines.join("\n");
    assert!(
        log.contains("serving a socket passed by systemd (LISTEN_FDS)"),
        "{log}"
    );
    let channel = crate::callers::uds_channel(&path).await;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("served over the passed Unix socket")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    let _ = child.kill();
    let _ = child.wait();
}
