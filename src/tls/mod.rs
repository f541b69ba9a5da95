//! FTPS (RFC 4217): the TLS settings and the rustls server config built from them; the live,
//! reloadable state is in [`live`]; `ferry cert` in [`cert`].
//!
//! It uses only `reload` (to follow the certificate files). The server hands each session's
//! libunftp builder to [`Ftps::configure`]; `config` holds the settings and checks them here.

pub mod cert;
mod live;

pub use live::{Ftps, TLS_FILES_POLL_INTERVAL};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// TLS sessions remembered for resumption by session ID (TLS 1.2), as libunftp does: FTPS
/// clients resume the control connection's session on every data connection.
const TLS_SESSION_CACHE_SIZE: usize = 1024;

/// TLS on the control channel (`tls`), and on the data channel (`tls_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// No TLS: `AUTH TLS` is refused.
    #[default]
    Off,
    /// Clients may upgrade with `AUTH TLS` (control) or `PROT P` (data).
    Optional,
    /// Logins (control) or transfers (data) without TLS are refused with 534.
    Required,
}

impl FromStr for TlsMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let choices = [
            ("off", TlsMode::Off),
            ("optional", TlsMode::Optional),
            ("required", TlsMode::Required),
        ];
        choose(text, &choices, "a TLS mode")
    }
}

/// Whom `required` applies to (`tls_required_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequiredFor {
    #[default]
    All,
    /// Accounts only: anonymous sessions (user name `anonymous`) may stay in plaintext.
    Accounts,
}

impl FromStr for TlsRequiredFor {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let choices = [
            ("all", TlsRequiredFor::All),
            ("accounts", TlsRequiredFor::Accounts),
        ];
        choose(text, &choices, "whom TLS is required for")
    }
}

/// The oldest TLS version accepted (`tls_min_version`). TLS 1.3 is always offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl FromStr for TlsVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let choices = [("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)];
        choose(text, &choices, "a TLS version")
    }
}

/// Client certificates (`tls_client_auth`), checked against `tls_client_ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    Off,
    /// Asked for; a client without one still gets in, one with an untrusted one does not.
    Request,
    /// The TLS handshake fails without a certificate signed by the trusted CA.
    Require,
}

impl FromStr for ClientAuth {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let choices = [
            ("off", ClientAuth::Off),
            ("request", ClientAuth::Request),
            ("require", ClientAuth::Require),
        ];
        choose(text, &choices, "a client-certificate mode")
    }
}

/// The value named by `text` (ignoring case and surrounding space); the error, to follow
/// "<origin>: key `<key>`: ", names what was expected and lists the choices.
fn choose<T: Copy>(text: &str, choices: &[(&str, T)], what: &str) -> Result<T, String> {
    let word = text.trim().to_ascii_lowercase();
    match choices.iter().find(|(name, _)| *name == word) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(format!("{text:?} is not {what} ({})", names.join(", ")))
        }
    }
}

/// The FTPS part of the configuration (the `tls*` keys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `tls`: the control channel.
    pub mode: TlsMode,
    /// `tls_data`: the data channel; None follows `tls`.
    pub data_mode: Option<TlsMode>,
    /// `tls_required_for`: all sessions, or accounts only.
    pub required_for: TlsRequiredFor,
    /// `tls_cert`: certificate chain, PEM, leaf first.
    pub cert_file: Option<PathBuf>,
    /// `tls_key`: the private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// `tls_min_version`.
    pub min_version: TlsVersion,
    /// `tls_client_auth`.
    pub client_auth: ClientAuth,
    /// `tls_client_ca`: the CA certificates client certificates must chain to, PEM.
    pub client_ca_file: Option<PathBuf>,
    /// `tls_implicit_bind`: where a second listener serves implicit FTPS (TLS from the first
    /// byte); None for none.
    pub implicit_bind: Option<SocketAddr>,
}

impl TlsSettings {
    /// The data channel's mode: `tls_data` if set, else the same as `tls`.
    pub fn effective_data_mode(&self) -> TlsMode {
        self.data_mode.unwrap_or(self.mode)
    }

    /// Checks that the keys fit together and that the files load. The error names the key at
    /// fault (`tls_cert`, ...) and the problem.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.mode == TlsMode::Off {
            if self.data_mode.is_some_and(|mode| mode != TlsMode::Off) {
                return Err(("tls_data", "needs tls = optional or required".into()));
            }
            if self.implicit_bind.is_some() {
                return Err((
                    "tls_implicit_bind",
                    "needs tls = optional or required (and its certificate)".into(),
                ));
            }
            return Ok(());
        }
        if self.data_mode == Some(TlsMode::Off) {
            return Err((
                "tls_data",
                "cannot be off while tls is on (use optional)".into(),
            ));
        }
        build_server_config(self)
            .map(drop)
            .map_err(|error| (error.key(), error.to_string()))
    }

    /// The files a reload watches.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// Why a TLS config could not be built. Each error names the key whose file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("needs `{missing}` to be set")]
    Missing {
        needed_by: &'static str,
        missing: &'static str,
    },
    #[error("could not read {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        key: &'static str,
        path: PathBuf,
        source: pem::Error,
    },
    #[error("{} holds no {what}", path.display())]
    Empty {
        key: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{} holds a certificate rustls cannot use as a trust anchor: {source}", path.display())]
    BadCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("the client certificate verifier could not be built: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("the certificate and key do not make a usable pair: {0}")]
    KeyPair(rustls::Error),
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// The configuration key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Missing { needed_by: key, .. }
            | TlsError::Read { key, .. }
            | TlsError::Pem { key, .. }
            | TlsError::Empty { key, .. } => key,
            TlsError::BadCa { .. } | TlsError::Verifier(_) => "tls_client_ca",
            TlsError::KeyPair(_) => "tls_key",
            TlsError::Rustls(_) => "tls",
        }
    }
}

/// `file`, the value of key `missing`, which key `needed_by` needs.
fn required_file<'a>(
    file: &'a Option<PathBuf>,
    missing: &'static str,
    needed_by: &'static str,
) -> Result<&'a Path, TlsError> {
    file.as_deref()
        .ok_or(TlsError::Missing { needed_by, missing })
}

fn read_file(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn load_certificates(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        key,
        path: path.to_owned(),
        source,
    };
    let certificates = CertificateDer::pem_slice_iter(&read_file(path, key)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            key,
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certificates)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const KEY: &str = "tls_key";
    match PrivateKeyDer::from_pem_slice(&read_file(path, KEY)?) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::Empty {
            key: KEY,
            path: path.to_owned(),
            what: "private key",
        }),
        Err(source) => Err(TlsError::Pem {
            key: KEY,
            path: path.to_owned(),
            source,
        }),
    }
}

/// Builds the rustls server config the settings describe, reading every file once.
pub fn build_server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let certificates = load_certificates(
        required_file(&settings.cert_file, "tls_cert", "tls")?,
        "tls_cert",
    )?;
    let key = load_private_key(required_file(&settings.key_file, "tls_key", "tls")?)?;
    // The same provider libunftp is built with, so there is one crypto library in the binary.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let builder = match settings.client_auth {
        ClientAuth::Off => builder.with_no_client_auth(),
        auth @ (ClientAuth::Request | ClientAuth::Require) => {
            let ca_file =
                required_file(&settings.client_ca_file, "tls_client_ca", "tls_client_auth")?;
            let mut roots = RootCertStore::empty();
            for certificate in load_certificates(ca_file, "tls_client_ca")? {
                roots.add(certificate).map_err(|source| TlsError::BadCa {
                    path: ca_file.to_owned(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match auth {
                ClientAuth::Request => verifier.allow_unauthenticated().build()?,
                _ => verifier.build()?,
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certificates, key)
        .map_err(TlsError::KeyPair)?;
    // Resumption both ways libunftp enables it: session IDs (TLS 1.2) and tickets.
    config.session_storage = ServerSessionMemoryCache::new(TLS_SESSION_CACHE_SIZE);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::live::requirement;
    use super::*;
    use libunftp::options::FtpsRequired;

    #[test]
    fn modes_parse_from_the_documented_words() {
        assert_eq!("Required".parse(), Ok(TlsMode::Required));
        assert_eq!(" optional ".parse(), Ok(TlsMode::Optional));
        assert_eq!("off".parse(), Ok(TlsMode::Off));
        assert!("on".parse::<TlsMode>().is_err());
        assert_eq!("accounts".parse(), Ok(TlsRequiredFor::Accounts));
        assert_eq!("1.3".parse(), Ok(TlsVersion::V1_3));
        assert!("1.1".parse::<TlsVersion>().is_err());
        assert_eq!("require".parse(), Ok(ClientAuth::Require));
        assert!("yes".parse::<ClientAuth>().is_err());
    }

    #[test]
    fn data_mode_follows_the_control_mode_unless_set() {
        let mut settings = TlsSettings {
            mode: TlsMode::Required,
            ..TlsSettings::default()
        };
        assert_eq!(settings.effective_data_mode(), TlsMode::Required);
        settings.data_mode = Some(TlsMode::Optional);
        assert_eq!(settings.effective_data_mode(), TlsMode::Optional);
    }

    #[test]
    fn required_maps_to_libunftp_requirements() {
        assert_eq!(
            requirement(TlsMode::Required, TlsRequiredFor::All),
            FtpsRequired::All
        );
        assert_eq!(
            requirement(TlsMode::Required, TlsRequiredFor::Accounts),
            FtpsRequired::Accounts
        );
        assert_eq!(
            requirement(TlsMode::Optional, TlsRequiredFor::All),
            FtpsRequired::None
        );
    }

    #[test]
    fn tls_off_needs_no_files_and_rejects_data_required() {
        assert_eq!(TlsSettings::default().check(), Ok(()));
        let settings = TlsSettings {
            data_mode: Some(TlsMode::Required),
            ..TlsSettings::default()
        };
        assert_eq!(settings.check().map_err(|(key, _)| key), Err("tls_data"));
    }
}
