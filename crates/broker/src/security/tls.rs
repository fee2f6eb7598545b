//! TLS for SSL and SASL_SSL listeners (rustls with the ring provider, TLS 1.2 and
//! 1.3): the server certificate from PEM files and, with a client CA, verified
//! client certificates whose subject becomes the principal (`User:CN=…,O=…`, the
//! RFC 4514 string Kafka's default SSL principal builder uses).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;
use x509_cert::der::Decode;

use super::config::{ClientAuth, TlsConfig};
use crate::error::StartError;

/// The acceptor every TLS listener shares.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, StartError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |what: String| StartError::Config(format!("tls: {what}"));
    let certs = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("cert_file {}: {e}", config.cert_file.display())))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "cert_file {} holds no certificate",
            config.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| bad(format!("key_file {}: {e}", config.key_file.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let builder = match &config.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| bad(format!("client_ca_file {}: {e}", ca_file.display())))?
            {
                let cert =
                    cert.map_err(|e| bad(format!("client_ca_file {}: {e}", ca_file.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("client_ca_file {}: {e}", ca_file.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match config.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Requested => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| bad(e.to_string()))?)
        }
    };
    let server = builder
        .with_single_cert(certs, key)
        .map_err(|e| bad(format!("certificate and key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The principal of a verified client certificate chain: `User:` and the leaf's
/// subject as an RFC 4514 string, or `None` without a (parsable) certificate.
pub(crate) fn certificate_principal(chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = chain?.first()?;
    let certificate = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    // x509-cert prints names as RFC 4514 (and Java's X500Principal) does: the last
    // RDN of the sequence first.
    Some(format!("User:{}", certificate.tbs_certificate.subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_principal_is_the_subject_in_rfc4514_order() {
        // rcgen writes the common name as the first RDN, so RFC 4514 puts it last.
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "strom");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "writer");
        let cert = params.self_signed(&key).expect("cert");
        let chain = [cert.der().clone()];
        assert_eq!(
            certificate_principal(Some(&chain)).as_deref(),
            Some("User:O=strom,CN=writer")
        );
        assert_eq!(certificate_principal(None), None);
        assert_eq!(
            certificate_principal(Some(&[CertificateDer::from(vec![1, 2, 3])])),
            None
        );
    }
}
