//! The `twilio-standin` binary as other languages' tests run it: the ready
//! line on stdout, the token endpoint, the control API.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_serves_tokens_and_obeys_the_control_api() {
    let dir = std::env::temp_dir().join(format!("standin-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clients = dir.join("clients.json");
    std::fs::write(
        &clients,
        r#"[{"client_id":"OQ1","client_secret":"file-s3cr3t","account_sid":"AC1"}]"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_twilio-standin"))
        .args(["--token-ttl-seconds", "120", "--clients"])
        .arg(&clients)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("twilio-standin listening on ")
        .unwrap();
    let addr = url.strip_prefix("http://").unwrap();
    let form = "application/x-www-form-urlencoded";

    let (status, body) = http(
        addr,
        "POST",
        "/v2/token",
        form,
        "grant_type=client_credentials&client_id=OQ1&client_secret=file-s3cr3t",
    );
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["expires_in"], 120);
    assert!(reply["id_token"].is_null() && reply["refresh_token"].is_null());
    let token = reply["access_token"].as_str().unwrap();
    let (status, claims) = http(
        addr,
        "POST",
        "/_standin/verify",
        "application/json",
        &serde_json::json!({ "token": token }).to_string(),
    );
    assert_eq!(status, 200);
    assert!(claims.contains("\"sub\":\"AC1\""), "{claims}");

    let (status, body) = http(
        addr,
        "POST",
        "/v1/token",
        form,
        "grant_type=client_credentials&client_id=OQ1&client_secret=wrong",
    );
    assert_eq!(status, 401);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], 20003);
    assert_eq!(error["status"], 401);
    assert_eq!(
        error["more_info"],
        "https://www.twilio.com/docs/errors/20003"
    );

    let (status, _) = http(
        addr,
        "PUT",
        "/_standin/knobs",
        "application/json",
        r#"{"fail_status":503}"#,
    );
    assert_eq!(status, 204);
    let (status, _) = http(
        addr,
        "POST",
        "/v2/token",
        form,
        "grant_type=client_credentials&client_id=OQ1&client_secret=file-s3cr3t",
    );
    assert_eq!(status, 503);

    let (_, stats) = http(addr, "GET", "/_standin/stats", "application/json", "");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["token_requests"], 3);
    assert_eq!(stats["tokens_issued"], 1);
    assert_eq!(stats["rejected"], 1);
    let (_, last) = http(
        addr,
        "GET",
        "/_standin/last-request",
        "application/json",
        "",
    );
    assert!(!last.contains("s3cr3t"), "{last}");
    let _ = std::fs::remove_dir_all(&dir);
}
