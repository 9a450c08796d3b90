//! The `:authority` guard for the local h2 patch (`vendor/h2/PATCH.md`).
//!
//! gRPC clients on a Unix socket (grpcio 1.57+, grpc-java, grpcurl without
//! `-authority`) send the socket path as `:authority`. Stock `h2` resets such
//! a stream with PROTOCOL_ERROR; the patched copy serves it. These tests send
//! hand-written HTTP/2 frames with exactly such an `:authority`, over the
//! Unix socket and over TCP (one tonic server serves every listener, and the
//! server gives the authority no meaning), and fail if the patch is lost.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::{Broker, Options};

/// HTTP/2 frame types used here.
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// An HPACK integer with an `n`-bit prefix (RFC 7541 section 5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literal fields without indexing, new names, no Huffman.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// How the server answered stream 1.
#[derive(Debug, PartialEq)]
enum Answer {
    /// Response headers, the DATA bytes, then trailers ending the stream.
    Served(Vec<u8>),
    /// RST_STREAM with this error code (PROTOCOL_ERROR is 1).
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
}

/// Sends `grpc.health.v1.Health/Check` (empty request) with `authority` as
/// `:authority` on stream 1 and reads frames until the stream ends.
fn health_check<S: Read + Write>(mut conn: S, authority: &str) -> Answer {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let block = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/grpc.health.v1.Health/Check"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    out.extend(frame(HEADERS, END_HEADERS, 1, &block));
    // The gRPC length prefix of an empty HealthCheckRequest.
    out.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    conn.write_all(&out).unwrap();

    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head)
            .unwrap_or_else(|e| panic!("the server closed the connection: {e}"));
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload).unwrap();
        match (kind, stream) {
            (SETTINGS, 0) if flags & ACK == 0 => {
                conn.write_all(&frame(SETTINGS, ACK, 0, &[])).unwrap()
            }
            (GOAWAY, 0) => {
                return Answer::GoAway(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            (RST_STREAM, 1) => {
                return Answer::Reset(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]));
            }
            (DATA, 1) => {
                data.extend_from_slice(&payload);
                if flags & END_STREAM != 0 {
                    return Answer::Served(data);
                }
            }
            (HEADERS, 1) if flags & END_STREAM != 0 => return Answer::Served(data),
            _ => {}
        }
    }
}

/// The framed HealthCheckResponse `{status: SERVING}`.
const SERVING: [u8; 7] = [0, 0, 0, 0, 2, 0x08, 0x01];

#[test]
fn a_socket_path_as_authority_is_served_over_unix_socket_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
        ],
        ..Options::default()
    });
    let path = socket.display().to_string();
    // What grpcio and grpcurl send, a grpc-java style one, and the names
    // the project's own clients and grpc-js send.
    let authorities = [
        path.as_str(),
        &format!("unix:{path}"),
        "/run/twilio-broker/broker.sock",
        "localhost",
    ];
    for authority in authorities {
        let unix = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        unix.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        assert_eq!(
            health_check(unix, authority),
            Answer::Served(SERVING.to_vec()),
            "Unix socket, :authority {authority:?}: is vendor/h2 (PATCH.md) still patched in?"
        );
        let tcp = std::net::TcpStream::connect(&broker.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(
            health_check(tcp, authority),
            Answer::Served(SERVING.to_vec()),
            "TCP, :authority {authority:?}: is vendor/h2 (PATCH.md) still patched in?"
        );
    }
}

/// The patch only relaxes `:authority`: other malformed requests are still
/// reset, so the frames above are well formed and a reset would be seen.
#[test]
fn other_malformed_headers_are_still_reset() {
    let broker = Broker::start(Options::default());
    let mut conn = std::net::TcpStream::connect(&broker.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    // No :scheme: malformed (RFC 9113 section 8.3.1).
    let block = header_block(&[
        (":method", "POST"),
        (":path", "/grpc.health.v1.Health/Check"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
    ]);
    out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    conn.write_all(&out).unwrap();
    let mut head = [0u8; 9];
    loop {
        conn.read_exact(&mut head).unwrap();
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload).unwrap();
        if head[3] == SETTINGS && head[4] & ACK == 0 {
            conn.write_all(&frame(SETTINGS, ACK, 0, &[])).unwrap();
        }
        if head[3] == RST_STREAM {
            assert_eq!(payload, [0, 0, 0, 1], "PROTOCOL_ERROR");
            break;
        }
        assert_ne!(head[3], HEADERS, "a request without :scheme was served");
    }
    // The daemon keeps serving on a new connection.
    let conn = std::net::TcpStream::connect(&broker.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(
        health_check(conn, "localhost"),
        Answer::Served(SERVING.to_vec())
    );
}

/// The project's own clients (Rust crate, CLI, Python and Node packages)
/// send `localhost` as `:authority` on a Unix socket, so they also work
/// against servers stricter than the broker (a stock tonic/hyper server,
/// a proxy). A tonic server on a socket records what each one sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projects_own_clients_send_localhost_on_a_unix_socket() {
    use std::sync::{Arc, Mutex};
    use tonic::codegen::http;

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("recorder.sock");
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let (_health, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tower::ServiceBuilder::new().map_request(
                move |request: http::Request<tonic::body::Body>| {
                    let authority = request.uri().authority().map(|a| a.to_string());
                    record.lock().unwrap().push(authority);
                    request
                },
            ))
            .add_service(health_service)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let target = format!("unix:{}", socket.display());
    let take = || std::mem::take(&mut *seen.lock().unwrap());

    // Rust client (any RPC: the recorder answers UNIMPLEMENTED).
    let client = twilio_broker_client::Client::connect(&target)
        .await
        .unwrap();
    assert!(client.list_credentials().await.is_err());
    assert_eq!(take(), [Some("localhost".to_owned())], "Rust client");

    // The CLI.
    let out = crate::harness::run_cli(
        &["credential", "list"],
        "",
        &[("TWILIO_BROKER_ADDR", &target)],
    );
    assert!(!out.status.success());
    let got = take();
    assert!(
        !got.is_empty() && got.iter().all(|a| a.as_deref() == Some("localhost")),
        "CLI: {got:?}"
    );

    // Python and Node packages (from the source tree).
    if let Some(python) = crate::oracles::python() {
        let out = std::process::Command::new(python)
            .args([
                "-c",
                "import sys; from twilio_broker import BrokerClient, BrokerError\n\
                 try:\n    BrokerClient(sys.argv[1]).list_credentials()\nexcept BrokerError as e:\n    print(e.code)",
                &target,
            ])
            .env("PYTHONPATH", super::client_dir().join("python"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "UNIMPLEMENTED",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(take(), [Some("localhost".to_owned())], "Python client");

        // A stock grpcio channel sends the socket path, which the patched h2
        // serves with no authority at all.
        let out = std::process::Command::new(crate::oracles::python().unwrap())
            .args([
                "-c",
                "import sys, grpc\n\
                 from twilio_broker.v1 import admin_pb2, admin_pb2_grpc\n\
                 stub = admin_pb2_grpc.AdminStub(grpc.insecure_channel(sys.argv[1]))\n\
                 try:\n    stub.ListCredentials(admin_pb2.ListCredentialsRequest(), timeout=10)\n\
                 except grpc.RpcError as e:\n    print(e.code().name)",
                &target,
            ])
            .env("PYTHONPATH", super::client_dir().join("python"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "UNIMPLEMENTED",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(take(), [None], "stock grpcio: the socket path, dropped");
    }
    if let Some(modules) = crate::oracles::node_modules() {
        let out = std::process::Command::new("node")
            .args([
                "-e",
                "const { BrokerClient } = require(process.argv[1]);\n\
                 const c = new BrokerClient(process.argv[2]);\n\
                 c.listCredentials().catch((e) => { console.log(e.code); c.close(); });",
            ])
            .arg(super::client_dir().join("node"))
            .arg(&target)
            .env("NODE_PATH", modules)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "UNIMPLEMENTED",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(take(), [Some("localhost".to_owned())], "Node client");
    }
}
