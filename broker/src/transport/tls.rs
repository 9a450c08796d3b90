//! rustls server configuration and the caller identity in a client certificate.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::TlsSettings;
use crate::caller::Identity;

/// A TLS acceptor from PEM files; with `client_ca`, client certificates are required.
pub fn acceptor(settings: &TlsSettings) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert)
        .with_context(|| format!("cannot read certificate {}", settings.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad PEM in {}", settings.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .with_context(|| format!("cannot read private key {}", settings.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match &settings.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("cannot read client CA {}", ca.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("bad PEM in {}", ca.display()))?)
                    .with_context(|| format!("bad CA certificate in {}", ca.display()))?;
            }
            // Clients without a certificate still connect, with no identity, so
            // that the policy answers UNAUTHENTICATED instead of a bare
            // handshake failure. A certificate that is presented must verify.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("cannot build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The identity in a verified client certificate: URI SAN (e.g. a SPIFFE id),
/// else the first DNS SAN, else the subject CN.
pub fn client_identity(connection: &rustls::ServerConnection) -> Option<Identity> {
    let cert = connection.peer_certificates()?.first()?;
    identity_from_der(cert.as_ref())
}

fn identity_from_der(der: &[u8]) -> Option<Identity> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names = &san.value.general_names;
        let uri = names.iter().find_map(|n| match n {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
        let dns = names.iter().find_map(|n| match n {
            GeneralName::DNSName(dns) => Some(*dns),
            _ => None,
        });
        if let Some(name) = uri.or(dns) {
            return Some(Identity::Certificate(name.to_owned()));
        }
    }
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(|cn| Identity::Certificate(cn.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: Vec<rcgen::SanType>, cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn uri_san_then_dns_san_then_cn() {
        let spiffe = rcgen::SanType::URI("spiffe://acme.org/web".try_into().expect("uri"));
        let dns = rcgen::SanType::DnsName("web.acme.internal".try_into().expect("dns"));
        let both = cert(vec![dns.clone(), spiffe], "web-cn");
        assert_eq!(
            identity_from_der(&both),
            Some(Identity::Certificate("spiffe://acme.org/web".into()))
        );
        assert_eq!(
            identity_from_der(&cert(vec![dns], "web-cn")),
            Some(Identity::Certificate("web.acme.internal".into()))
        );
        assert_eq!(
            identity_from_der(&cert(vec![], "web-cn")),
            Some(Identity::Certificate("web-cn".into()))
        );
    }
}
