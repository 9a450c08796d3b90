//! One audit event.

use std::time::SystemTime;

/// Whether the policy let the call through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The policy allowed the call (it may still have failed).
    Allow,
    /// The policy (or a rate limit) refused the call.
    Deny,
}

/// What happened in one RPC. Holds names, ids and times only: never a
/// secret, never a token.
///
/// Serialized with `"version": "1"` first, the version of its JSON shape
/// (`plugins/sdk/schema/audit-event.schema.json`; bumped on any change).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "version", rename = "1")]
pub struct AuditEvent {
    /// When the call arrived (RFC 3339, UTC).
    pub time: String,
    /// A fresh id per call; also in the broker's log for internal errors.
    pub request_id: String,
    /// The RPC's method name.
    pub rpc: &'static str,
    /// The caller's identity (`uid:1000`, a SPIFFE id, `anonymous`).
    pub caller: String,
    /// `unix`, `tls` or `plaintext`; `local` for an offline command (`restore`).
    pub transport: &'static str,
    /// The peer address or socket.
    pub peer: String,
    /// Allowed or denied by policy.
    pub decision: Decision,
    /// The gRPC status code name (`OK`, `PERMISSION_DENIED`, ...), or
    /// `PENDING` in an intent event.
    pub status: &'static str,
    /// The status message for failures (written by the broker; no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The credential the call named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Grant kinds of a mint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<&'static str>,
    /// The identity a token was minted for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The lifetime asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
    /// The minted token's `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// When the token handed out expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Time spent serving the call, in microseconds.
    pub duration_us: u64,
    /// `intent` for the event a mutation (PutCredential, DeleteCredential,
    /// RotateCredential)
    /// records before it touches the store (its status is then `PENDING`);
    /// absent for the event recorded once the call is answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
}

/// The longest request-derived string an event carries, in bytes.
pub const MAX_AUDITED_LEN: usize = 256;

/// A request-derived string as the audit records it: at most
/// [`MAX_AUDITED_LEN`] bytes, and a longer one says it was cut and how long
/// it was (`…[cut: 4194304 bytes]`), so a flood of huge names cannot
/// amplify into the audit trail.
pub fn cap(text: &str) -> String {
    if text.len() <= MAX_AUDITED_LEN {
        return text.to_owned();
    }
    let mut end = MAX_AUDITED_LEN - 32;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut: {} bytes]", &text[..end], text.len())
}

/// RFC 3339 text of a time.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}
