//! Who is calling: the identity the transport proved, never one the caller claims.
//!
//! Every identity lives in its own namespace, so that no transport can
//! produce a name that another transport owns:
//!
//! | transport | identity | names policy patterns match |
//! |---|---|---|
//! | Unix socket | the kernel's SO_PEERCRED | `uid:<uid>`, `gid:<gid>` |
//! | mutual TLS | every name of the verified client certificate | `spiffe://…` (URI SAN with the `spiffe` scheme), `uri:<uri>` (other URI SANs), `dns:<name>` (DNS SANs), `cn:<cn>` (subject CN) |
//! | plaintext loopback | none | `anonymous` |
//! | TLS without a client certificate (no `client_ca`, or `client_auth = "optional"`) | none | `anonymous-tls` |
//!
//! **Invariants:** `uid:` and `gid:` names come only from SO_PEERCRED. A
//! certificate name always carries one of the certificate prefixes, and a
//! certificate whose raw name could be mistaken for another namespace (it
//! starts with `uid:`, `gid:`, `dns:`, …, or is `anonymous`) is refused
//! before any policy is consulted. `anonymous` is only ever a plaintext
//! loopback caller.

use std::fmt;
use std::net::IpAddr;

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

/// The principal of a plaintext loopback caller (no identity).
pub const ANONYMOUS: &str = "anonymous";
/// The principal of a TLS caller without a client certificate.
pub const ANONYMOUS_TLS: &str = "anonymous-tls";

/// Prefixes no certificate name may start with (before its own prefix is
/// added), so that a certificate can never pose as another namespace.
const RESERVED_PREFIXES: [&str; 8] = [
    "uid:", "gid:", "uri:", "dns:", "cn:", "spiffe:", "ip:", "email:",
];

/// One name of a verified client certificate, typed by where it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CertName {
    /// A URI SAN with the `spiffe` scheme, kept as is (`spiffe://acme.org/web`).
    Spiffe(String),
    /// Any other URI SAN, written `uri:<uri>`.
    Uri(String),
    /// A DNS SAN, written `dns:<name>`.
    Dns(String),
    /// The subject common name, written `cn:<cn>`.
    Cn(String),
}

impl CertName {
    /// The name as policy patterns see it, with its namespace.
    pub fn qualified(&self) -> String {
        match self {
            CertName::Spiffe(uri) => uri.clone(),
            CertName::Uri(uri) => format!("uri:{uri}"),
            CertName::Dns(name) => format!("dns:{name}"),
            CertName::Cn(cn) => format!("cn:{cn}"),
        }
    }

    /// The raw value, as written in the certificate.
    pub fn raw(&self) -> &str {
        match self {
            CertName::Spiffe(v) | CertName::Uri(v) | CertName::Dns(v) | CertName::Cn(v) => v,
        }
    }

    fn field(&self) -> &'static str {
        match self {
            CertName::Spiffe(_) | CertName::Uri(_) => "URI SAN",
            CertName::Dns(_) => "DNS SAN",
            CertName::Cn(_) => "subject CN",
        }
    }

    /// Why this name must not be trusted, if it must not: it could be
    /// mistaken for another namespace, for an anonymous principal, or it
    /// holds characters that have no place in a name.
    pub fn refusal(&self) -> Option<String> {
        let raw = self.raw();
        let field = self.field();
        if raw.is_empty() {
            return Some(format!("its {field} is empty"));
        }
        if raw.len() > MAX_CERT_NAME_LEN {
            return Some(format!(
                "its {field} is {} bytes long; the limit is {MAX_CERT_NAME_LEN}",
                raw.len()
            ));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Some(format!(
                "its {field} holds whitespace or control characters"
            ));
        }
        let lower = raw.to_ascii_lowercase();
        if lower == ANONYMOUS || lower == ANONYMOUS_TLS {
            return Some(format!(
                "its {field} {raw:?} would read as an anonymous caller"
            ));
        }
        if matches!(self, CertName::Spiffe(_)) {
            return None;
        }
        RESERVED_PREFIXES
            .iter()
            .find(|prefix| lower.starts_with(*prefix))
            .map(|prefix| {
                format!(
                    "its {field} {raw:?} starts with {prefix:?}, which names another identity namespace"
                )
            })
    }
}

/// The longest certificate name the broker accepts.
pub const MAX_CERT_NAME_LEN: usize = 512;

/// A proven caller identity, or the lack of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A local process, by its kernel credentials.
    Unix {
        /// Effective user id.
        uid: u32,
        /// Effective group id.
        gid: u32,
    },
    /// A verified client certificate: every name it carries, in the order
    /// SPIFFE URI SANs, other URI SANs, DNS SANs, CN. Never empty.
    Certificate(Vec<CertName>),
    /// Plaintext loopback: nothing proven.
    Anonymous,
    /// TLS without a client certificate: nothing proven, and possibly from
    /// the network, so never the same principal as [`Identity::Anonymous`].
    AnonymousTls,
}

impl Identity {
    /// The names policy patterns are matched against.
    pub fn names(&self) -> Vec<String> {
        match self {
            Identity::Unix { uid, gid } => vec![format!("uid:{uid}"), format!("gid:{gid}")],
            Identity::Certificate(names) => names.iter().map(CertName::qualified).collect(),
            Identity::Anonymous => vec![ANONYMOUS.to_owned()],
            Identity::AnonymousTls => vec![ANONYMOUS_TLS.to_owned()],
        }
    }

    /// True when the transport proved nothing about the caller.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Identity::Anonymous | Identity::AnonymousTls)
    }

    /// The one name used for audit and rate-limit keys: `uid:<uid>`, the
    /// certificate's first name in the order of [`Identity::Certificate`],
    /// or the anonymous principal.
    fn principal(&self) -> String {
        match self {
            Identity::Unix { uid, .. } => format!("uid:{uid}"),
            Identity::Certificate(names) => names
                .first()
                .map(CertName::qualified)
                .unwrap_or_else(|| ANONYMOUS_TLS.to_owned()),
            Identity::Anonymous => ANONYMOUS.to_owned(),
            Identity::AnonymousTls => ANONYMOUS_TLS.to_owned(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

/// Where a connection comes from, for limits that apply per source: the
/// uid on a Unix socket, the IP address on TCP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A local user.
    Uid(u32),
    /// A TCP peer address.
    Ip(IpAddr),
    /// Nothing known (a Unix peer without credentials, an in-process test server).
    Unknown,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Uid(uid) => write!(f, "uid:{uid}"),
            Source::Ip(ip) => write!(f, "{ip}"),
            Source::Unknown => f.write_str("unknown"),
        }
    }
}

/// The caller of one request (built once per connection).
#[derive(Debug, Clone)]
pub struct Caller {
    /// How it connected.
    pub transport: Transport,
    /// What the transport proved.
    pub identity: Identity,
    /// Peer address, for logs and audit (`127.0.0.1:5555`, a socket path, ...).
    pub peer: String,
    /// Where the connection comes from, for per-source limits.
    pub source: Source,
    /// Set when the transport refused the caller's credentials (a
    /// certificate name that poses as another namespace): why, in words.
    /// Every request is refused with `Error::CertificateRefused` carrying it.
    pub refused: Option<String>,
    /// The identity as one string, computed once: see [`Caller::principal`].
    principal: String,
    /// The names rules match, computed once per connection.
    names: Vec<String>,
}

impl Caller {
    /// A caller as the transport saw it.
    pub fn new(transport: Transport, identity: Identity, peer: String, source: Source) -> Self {
        Caller {
            transport,
            principal: identity.principal(),
            names: identity.names(),
            identity,
            peer,
            source,
            refused: None,
        }
    }

    /// A caller whose credentials the transport refused (see [`Caller::refused`]).
    pub fn refused(transport: Transport, peer: String, source: Source, reason: String) -> Self {
        let mut caller = Caller::new(transport, Identity::AnonymousTls, peer, source);
        caller.refused = Some(reason);
        caller
    }

    /// The identity as one string for audit and rate-limit keys.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Every name policy patterns are matched against.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_that_pose_as_other_namespaces_are_refused() {
        for (name, refused) in [
            (CertName::Cn("uid:0".into()), true),
            (CertName::Uri("uid:0".into()), true),
            (CertName::Dns("gid:0".into()), true),
            (CertName::Cn("anonymous".into()), true),
            (CertName::Cn("Anonymous-TLS".into()), true),
            (CertName::Cn("dns:web".into()), true),
            (CertName::Cn("web frontend".into()), true),
            (CertName::Cn(String::new()), true),
            (CertName::Cn("web-frontend".into()), false),
            (CertName::Dns("web.acme.internal".into()), false),
            (CertName::Spiffe("spiffe://acme.org/uid:0".into()), false),
            (CertName::Uri("https://acme.org/web".into()), false),
        ] {
            assert_eq!(name.refusal().is_some(), refused, "{name:?}");
        }
    }

    #[test]
    fn names_carry_their_namespace_and_the_principal_prefers_spiffe() {
        let identity = Identity::Certificate(vec![
            CertName::Spiffe("spiffe://acme.org/web".into()),
            CertName::Dns("web.acme".into()),
            CertName::Cn("web".into()),
        ]);
        let caller = Caller::new(Transport::Tls, identity, "p".into(), Source::Unknown);
        assert_eq!(caller.principal(), "spiffe://acme.org/web");
        assert_eq!(
            caller.names(),
            ["spiffe://acme.org/web", "dns:web.acme", "cn:web"]
        );
        let anonymous = Caller::new(
            Transport::Plaintext,
            Identity::Anonymous,
            "p".into(),
            Source::Unknown,
        );
        let anonymous_tls = Caller::new(
            Transport::Tls,
            Identity::AnonymousTls,
            "p".into(),
            Source::Unknown,
        );
        assert_ne!(anonymous.principal(), anonymous_tls.principal());
    }
}
