//! TLS for `ftps://`: which server certificates the client trusts (the system store, a private
//! CA with `--ca`, or any certificate with `--insecure`) and the one rustls configuration that
//! the control connection and every data connection share.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use suppaftp::rustls;
use suppaftp::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use suppaftp::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use suppaftp::rustls::pki_types::pem::PemObject;
use suppaftp::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use suppaftp::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What `--ca` and `--insecure` asked for.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trust this PEM file's certificates instead of the system store.
    pub ca: Option<PathBuf>,
    /// Accept any certificate (self-signed test servers). The handshake is still checked, so
    /// the connection is encrypted, but not authenticated.
    pub insecure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--ca {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("--ca {}: no certificate in the file", path.display())]
    CaEmpty { path: PathBuf },
    #[error("--ca {}: {source}", path.display())]
    CaRejected {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "no trusted certificates found in the system store; pass --ca FILE (or --insecure to test)"
    )]
    NoSystemRoots,
    #[error("TLS setup: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider, named rather than taken from the process default: the dependency tree
/// enables both of rustls' providers (ring for suppaftp, aws-lc-rs for the server side), and
/// with two compiled in, rustls cannot pick a default on its own.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client TLS configuration for `options`. The same `Arc` is used for every connection of
/// a session so that data connections can resume the control connection's TLS session, which
/// servers such as vsftpd (`require_ssl_reuse`) insist on.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                schemes: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let roots = match &options.ca {
            Some(path) => private_roots(path)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: the URL's host (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned())
        .map_err(|error| TlsError::Config(rustls::Error::General(error.to_string())))
}

fn private_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|source| TlsError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    for certificate in certificates {
        let certificate = certificate.map_err(|source| TlsError::CaFile {
            path: path.to_owned(),
            source,
        })?;
        roots
            .add(certificate)
            .map_err(|source| TlsError::CaRejected {
                path: path.to_owned(),
                source,
            })?;
    }
    if roots.is_empty() {
        return Err(TlsError::CaEmpty {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    // Unreadable entries in the store are skipped, as browsers do; only an empty result fails.
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

/// `--insecure`: any certificate is accepted, but the handshake signatures are still verified
/// against it, so the session keys are really shared with whoever holds that certificate.
#[derive(Debug)]
struct AcceptAnyCertificate {
    schemes: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_CA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/client/testdata/private-ca.pem"
    );

    #[test]
    fn a_private_ca_file_becomes_the_only_trust_anchor() {
        let roots = private_roots(Path::new(PRIVATE_CA)).expect("CA file loads");
        assert_eq!(roots.len(), 1);
        let options = TlsOptions {
            ca: Some(PRIVATE_CA.into()),
            insecure: false,
        };
        client_config(&options).expect("config builds with the private CA");
    }

    #[test]
    fn a_missing_ca_file_is_named_in_the_error() {
        let error = private_roots(Path::new("/nonexistent/ca.pem")).expect_err("missing file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let error = private_roots(&path).expect_err("no certificates");
        assert!(matches!(error, TlsError::CaEmpty { .. }), "{error}");
    }

    #[test]
    fn insecure_mode_accepts_a_certificate_nobody_vouches_for() {
        let options = TlsOptions {
            ca: None,
            insecure: true,
        };
        client_config(&options).expect("insecure config builds");
        let pem = std::fs::read(PRIVATE_CA).expect("read fixture");
        let certificate = CertificateDer::from_pem_slice(&pem).expect("parse fixture");
        let verifier = AcceptAnyCertificate {
            schemes: provider().signature_verification_algorithms,
        };
        let name = server_name("ftp.example.org").expect("name");
        verifier
            .verify_server_cert(&certificate, &[], &name, &[], UnixTime::now())
            .expect("any certificate is accepted");
        assert!(!verifier.supported_verify_schemes().is_empty());
    }

    #[test]
    fn hosts_and_ip_addresses_are_valid_server_names() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("nas.local"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host").is_err());
    }
}
