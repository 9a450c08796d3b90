//! rustls server configuration and the caller identity in a client certificate.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::{ClientAuth, TlsSettings};
use crate::caller::{CertName, Identity};

/// A TLS server config from PEM files; with `client_ca`, client certificates
/// are required unless the listener opts out with `client_auth = "optional"`.
/// Built whole or not at all (`reload.rs` relies on it).
pub fn server_config(settings: &TlsSettings) -> anyhow::Result<rustls::ServerConfig> {
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
            // A certificate that is presented must always verify. Without one,
            // the handshake fails unless the listener opted out, in which case
            // the caller is `anonymous-tls` (never `anonymous`).
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crl) = &settings.crl {
                let crls = rustls::pki_types::CertificateRevocationListDer::pem_file_iter(crl)
                    .with_context(|| format!("cannot read CRL file {}", crl.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("bad PEM in CRL file {}", crl.display()))?;
                if crls.is_empty() {
                    anyhow::bail!("CRL file {} holds no X509 CRL", crl.display());
                }
                verifier = verifier.with_crls(crls);
            }
            let verifier = match settings.client_auth.unwrap_or_default() {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            }
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
    Ok(config)
}

/// The identity of a TLS client: every name of its verified certificate
/// (see [`Identity::Certificate`] for the order), or `anonymous-tls` without
/// one. `Err` says why a certificate is refused.
pub fn client_identity(connection: &rustls::ServerConnection) -> Result<Identity, CertRefusal> {
    match connection.peer_certificates().and_then(|c| c.first()) {
        None => Ok(Identity::AnonymousTls),
        Some(cert) => identity_from_der(cert.as_ref()),
    }
}

/// Why a verified client certificate gives no identity (the caller is then
/// refused with `Error::CertificateRefused`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertRefusal {
    /// x509 parsing failed.
    #[error("its certificate could not be parsed")]
    Unparsable,
    /// A subject CN that is not a string.
    #[error("its subject CN is not a string")]
    CnNotString,
    /// No name to be known by.
    #[error("its certificate carries no URI SAN, DNS SAN or CN")]
    NoNames,
    /// A name that would pose as another namespace (see `CertName::refusal`).
    #[error("{0}")]
    Name(String),
}

fn identity_from_der(der: &[u8]) -> Result<Identity, CertRefusal> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertRefusal::Unparsable)?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                    names.push(CertName::Spiffe((*uri).to_owned()))
                }
                GeneralName::URI(uri) => names.push(CertName::Uri((*uri).to_owned())),
                GeneralName::DNSName(dns) => names.push(CertName::Dns((*dns).to_owned())),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        let cn = cn.as_str().map_err(|_| CertRefusal::CnNotString)?;
        names.push(CertName::Cn(cn.to_owned()));
    }
    // Stable order: SPIFFE, other URIs, DNS, CN (each in certificate order).
    names.sort_by_key(|n| match n {
        CertName::Spiffe(_) => 0,
        CertName::Uri(_) => 1,
        CertName::Dns(_) => 2,
        CertName::Cn(_) => 3,
    });
    if names.is_empty() {
        return Err(CertRefusal::NoNames);
    }
    if let Some(reason) = names.iter().find_map(CertName::refusal) {
        return Err(CertRefusal::Name(reason));
    }
    Ok(Identity::Certificate(names))
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
    fn every_name_is_typed_spiffe_first() {
        let spiffe = rcgen::SanType::URI("spiffe://acme.org/web".try_into().expect("uri"));
        let dns = rcgen::SanType::DnsName("web.acme.internal".try_into().expect("dns"));
        let both = cert(vec![dns.clone(), spiffe], "web-cn");
        assert_eq!(
            identity_from_der(&both).expect("accepted").names(),
            [
                "spiffe://acme.org/web",
                "dns:web.acme.internal",
                "cn:web-cn"
            ]
        );
        assert_eq!(
            identity_from_der(&cert(vec![dns], "web-cn"))
                .expect("accepted")
                .names(),
            ["dns:web.acme.internal", "cn:web-cn"]
        );
        assert_eq!(
            identity_from_der(&cert(vec![], "web-cn"))
                .expect("accepted")
                .names(),
            ["cn:web-cn"]
        );
    }

    #[test]
    fn certificates_posing_as_kernel_or_anonymous_identities_are_refused() {
        let uri = |u: &str| rcgen::SanType::URI(u.try_into().expect("uri"));
        let dns = |d: &str| rcgen::SanType::DnsName(d.try_into().expect("dns"));
        for (sans, cn) in [
            (vec![], "uid:0"),
            (vec![uri("uid:0")], "web"),
            (vec![dns("gid:0")], "web"),
            (vec![], "anonymous"),
            (vec![dns("web.acme")], "anonymous-tls"),
        ] {
            let refused = identity_from_der(&cert(sans.clone(), cn));
            assert!(refused.is_err(), "{sans:?} {cn}: {refused:?}");
        }
    }
}
