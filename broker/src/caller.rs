//! Who is calling: the identity the transport proved, never one the caller claims.
//!
//! | transport            | identity                                              |
//! |----------------------|-------------------------------------------------------|
//! | Unix socket          | `uid:<uid>` and `gid:<gid>` from the kernel (SO_PEERCRED) |
//! | mutual TLS           | the client certificate's URI SAN (e.g. a SPIFFE id), else DNS SAN, else CN |
//! | TLS without client cert, plaintext loopback | none (anonymous)               |

use std::fmt;

/// How a caller reached the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A Unix domain socket.
    Unix,
    /// TCP with TLS (mutual or not).
    Tls,
    /// Plaintext TCP on loopback.
    Plaintext,
}

impl Transport {
    /// Lower-case name, as in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tls => "tls",
            Transport::Plaintext => "plaintext",
        }
    }
}

/// A proven caller identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A local process, by its kernel credentials.
    Unix {
        /// Effective user id.
        uid: u32,
        /// Effective group id.
        gid: u32,
    },
    /// A client certificate's subject: URI SAN, DNS SAN or CN.
    Certificate(String),
}

impl Identity {
    /// The names policy patterns are matched against.
    pub fn names(&self) -> Vec<String> {
        match self {
            Identity::Unix { uid, gid } => vec![format!("uid:{uid}"), format!("gid:{gid}")],
            Identity::Certificate(name) => vec![name.clone()],
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Unix { uid, gid } => write!(f, "uid:{uid} gid:{gid}"),
            Identity::Certificate(name) => f.write_str(name),
        }
    }
}

/// The caller of one request (built once per connection).
#[derive(Debug, Clone)]
pub struct Caller {
    /// How it connected.
    pub transport: Transport,
    /// What the transport proved, if anything.
    pub identity: Option<Identity>,
    /// Peer address, for logs and audit (`127.0.0.1:5555`, a socket path, ...).
    pub peer: String,
    /// The identity as one string, computed once: see [`Caller::principal`].
    principal: String,
}

impl Caller {
    /// A caller as the transport saw it.
    pub fn new(transport: Transport, identity: Option<Identity>, peer: String) -> Self {
        let principal = match &identity {
            Some(Identity::Unix { uid, .. }) => format!("uid:{uid}"),
            Some(Identity::Certificate(name)) => name.clone(),
            None => "anonymous".to_owned(),
        };
        Caller {
            transport,
            identity,
            peer,
            principal,
        }
    }

    /// The identity as one string for audit and rate-limit keys
    /// (`anonymous` when there is none).
    pub fn principal(&self) -> &str {
        &self.principal
    }
}
