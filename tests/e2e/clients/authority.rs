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
