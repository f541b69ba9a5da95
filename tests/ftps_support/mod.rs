//! FTPS test support: certificates on disk, TLS client configs, and a raw control client that
//! speaks TLS after AUTH TLS, for the cases suppaftp does not expose.
#![allow(dead_code)]

use crate::common::{PASSWORD, TestServer, TestUser, connect_epsv, read_reply};
use ferry::config::Config;
use ferry::tls::TlsMode;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The name the server certificate is made for, and clients check.
pub const SERVER_NAME: &str = "localhost";

/// How long any reply may take; every wait in these tests is bounded by it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A certificate and its key, as PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pem {
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).expect("certificate PEM")
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key.as_bytes()).expect("key PEM")
    }
}

/// A server certificate (self-signed, for localhost and 127.0.0.1).
pub fn server_certificate() -> Pem {
    let generated = ferry::tls::cert::generate_self_signed(
        &[SERVER_NAME.to_owned(), "127.0.0.1".to_owned()],
        1,
    )
    .expect("generate server certificate");
    Pem {
        cert: generated.cert_pem,
        key: generated.key_pem,
    }
}

/// A CA and a client certificate it signed.
pub struct ClientPki {
    pub ca: Pem,
    pub client: Pem,
}

pub fn client_pki(name: &str) -> ClientPki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let ca_pem = ca.pem();
    let ca_key_pem = ca.key().serialize_pem();

    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().expect("client key");
    let client = client_params
        .signed_by(&client_key, &ca)
        .expect("client certificate");
    ClientPki {
        ca: Pem {
            cert: ca_pem,
            key: ca_key_pem,
        },
        client: Pem {
            cert: client.pem(),
            key: client_key.serialize_pem(),
        },
    }
}

/// The server's certificate files in a temporary directory.
pub struct TlsFiles {
    pub dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server: Pem,
}

impl TlsFiles {
    pub fn new() -> TlsFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = server_certificate();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &server.cert).expect("write cert");
        std::fs::write(&key, &server.key).expect("write key");
        TlsFiles {
            dir,
            cert,
            key,
            server,
        }
    }

    /// Writes `pem` to a file in the directory and returns its path.
    pub fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    }

    /// Replaces the certificate and key the way deployment tools do: write aside, rename over.
    pub fn replace(&self, new: &Pem) {
        for (target, contents) in [(&self.key, &new.key), (&self.cert, &new.cert)] {
            let aside = target.with_extension("new");
            std::fs::write(&aside, contents).expect("write new file");
            std::fs::rename(&aside, target).expect("rename over");
        }
    }

    /// `tls = required` (control and data) with these files.
    pub fn required(&self, config: &mut Config) {
        config.tls.mode = TlsMode::Required;
        config.tls.cert_file = Some(self.cert.clone());
        config.tls.key_file = Some(self.key.clone());
    }
}

/// Starts a server with `tls = required` and these files; `configure` may change the rest.
pub async fn start_ftps(
    files: &TlsFiles,
    configure: impl FnOnce(&mut Config),
    users: &[TestUser],
) -> TestServer {
    TestServer::start_with(
        |config| {
            files.required(config);
            configure(config);
        },
        users,
    )
    .await
}

/// A client config that trusts exactly `trusted` (no system roots), speaking `versions`.
pub fn client_config(
    trusted: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Pem>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.clone()).expect("trust certificate");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots);
    let config = match identity {
        Some(pem) => builder
            .with_client_auth_cert(vec![pem.cert_der()], pem.key_der())
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// TLS 1.2 and 1.3, trusting `files`' server certificate.
pub fn trusting(files: &TlsFiles) -> Arc<ClientConfig> {
    client_config(&[files.server.cert_der()], rustls::ALL_VERSIONS, None)
}

/// suppaftp over FTPS (AUTH TLS, PBSZ 0, PROT P), logged in as `user`, binary, EPSV.
pub async fn ftps_login(
    server: &TestServer,
    config: Arc<ClientConfig>,
    user: &str,
) -> AsyncRustlsFtpStream {
    let mut ftp = ftps_connect(server.addr, config)
        .await
        .expect("AUTH TLS handshake");
    ftp.login(user, PASSWORD).await.expect("login over TLS");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .expect("TYPE I");
    ftp
}

/// suppaftp connected and secured (AUTH TLS, PBSZ 0, PROT P), not logged in.
pub async fn ftps_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> suppaftp::FtpResult<AsyncRustlsFtpStream> {
    let mut ftp = AsyncRustlsFtpStream::connect(addr).await?;
    ftp.set_mode(suppaftp::Mode::ExtendedPassive);
    let connector = AsyncRustlsConnector::from(TlsConnector::from(config));
    ftp.into_secure(connector, SERVER_NAME).await
}

/// Whether securing a session and logging in as `user` fails with `config`.
pub async fn ftps_login_fails(addr: SocketAddr, config: Arc<ClientConfig>, user: &str) -> bool {
    let attempt = async {
        let mut ftp = ftps_connect(addr, config).await?;
        ftp.login(user, PASSWORD).await
    };
    attempt.await.is_err()
}

/// A control connection upgraded with AUTH TLS, spoken to line by line.
pub struct TlsRawSession {
    stream: BufReader<TlsStream<TcpStream>>,
    config: Arc<ClientConfig>,
    server: SocketAddr,
}

impl TlsRawSession {
    /// Connects, reads the greeting, sends AUTH TLS and completes the handshake.
    pub async fn connect(
        server: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> std::io::Result<TlsRawSession> {
        let mut plain = BufReader::new(TcpStream::connect(server).await?);
        let greeting = read_reply(&mut plain).await;
        assert_eq!(greeting.0, 220, "{}", greeting.1);
        plain.get_mut().write_all(b"AUTH TLS\r\n").await?;
        let auth = read_reply(&mut plain).await;
        assert_eq!(auth.0, 234, "{}", auth.1);
        let tls = tls_connect(&config, plain.into_inner()).await?;
        Ok(TlsRawSession {
            stream: BufReader::new(tls),
            config,
            server,
        })
    }

    /// Connects to an implicit-FTPS listener: the TLS handshake first, then the greeting.
    pub async fn connect_implicit(
        server: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> std::io::Result<TlsRawSession> {
        Self::connect_implicit_over(TcpStream::connect(server).await?, config, server).await
    }

    /// As [`TlsRawSession::connect_implicit`], over a connection already made to `server` (one
    /// that has sent a PROXY header, say).
    pub async fn connect_implicit_over(
        stream: TcpStream,
        config: Arc<ClientConfig>,
        server: SocketAddr,
    ) -> std::io::Result<TlsRawSession> {
        let tls = tls_connect(&config, stream).await?;
        let mut session = TlsRawSession {
            stream: BufReader::new(tls),
            config,
            server,
        };
        let greeting = session.reply().await;
        assert_eq!(greeting.0, 220, "{}", greeting.1);
        Ok(session)
    }

    /// Connected, secured, logged in as `user`, PBSZ 0, PROT P, TYPE I.
    pub async fn login(server: SocketAddr, config: Arc<ClientConfig>, user: &str) -> TlsRawSession {
        let mut session = Self::connect(server, config).await.expect("AUTH TLS");
        session.expect(format!("USER {user}"), 331).await;
        session.expect(format!("PASS {PASSWORD}"), 230).await;
        session.expect("PBSZ 0", 200).await;
        session.expect("PROT P", 200).await;
        session.expect("TYPE I", 200).await;
        session
    }

    /// The TLS version of the control connection.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.get_ref().get_ref().1.protocol_version()
    }

    /// The certificate the server presented.
    pub fn server_certificate(&self) -> Option<CertificateDer<'static>> {
        let certificates = self.stream.get_ref().get_ref().1.peer_certificates()?;
        certificates.first().map(|cert| cert.clone().into_owned())
    }

    pub async fn send(&mut self, line: impl AsRef<str>) {
        self.stream
            .get_mut()
            .write_all(format!("{}\r\n", line.as_ref()).as_bytes())
            .await
            .expect("send command");
        self.stream.get_mut().flush().await.expect("flush command");
    }

    pub async fn reply(&mut self) -> (u32, String) {
        read_reply(&mut self.stream).await
    }

    pub async fn expect(&mut self, line: impl AsRef<str>, code: u32) -> String {
        self.send(line.as_ref()).await;
        let (got, text) = self.reply().await;
        assert_eq!(got, code, "reply to {:?}: {text}", line.as_ref());
        text
    }

    /// Reads what the server sends until it closes the connection. Ok when it ended TLS with
    /// close_notify; an `UnexpectedEof` error when it dropped the connection without it.
    pub async fn read_until_closed(&mut self) -> std::io::Result<String> {
        let mut rest = Vec::new();
        tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_to_end(&mut rest))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(String::from_utf8_lossy(&rest).into_owned())
    }

    /// EPSV, then a plain TCP connection to the announced port.
    pub async fn epsv(&mut self) -> TcpStream {
        let text = self.expect("EPSV", 229).await;
        connect_epsv(self.server, &text).await
    }

    /// NLST over a fresh, properly secured data connection; returns the names.
    pub async fn nlst(&mut self) -> String {
        let data = self.epsv().await;
        self.expect("NLST", 150).await;
        let mut data = self.secure_data(data).await.expect("data TLS handshake");
        let mut names = String::new();
        data.read_to_string(&mut names).await.expect("read NLST");
        assert_eq!(self.reply().await.0, 226);
        names
    }

    /// Secures a data connection with this session's client config.
    pub async fn secure_data(&self, data: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        tls_connect(&self.config, data).await
    }
}

async fn tls_connect(
    config: &Arc<ClientConfig>,
    stream: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(SERVER_NAME).expect("server name");
    tokio::time::timeout(
        REPLY_TIMEOUT,
        TlsConnector::from(config.clone()).connect(name, stream),
    )
    .await
    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Writes `contents` to a new file in `dir`.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
}
