//! `ferry cert self-signed`: a private key and a self-signed certificate for tests and quick starts.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File names written into `--out`, as `config/ferry-ftps.toml` expects them.
pub const CERT_FILE_NAME: &str = "cert.pem";
pub const KEY_FILE_NAME: &str = "key.pem";

/// A year, as long as a test certificate should live; browsers cap public ones at 398 days.
const DEFAULT_VALIDITY_DAYS: u32 = 365;

/// Backdating absorbs clock skew between the machine that made the certificate and its users.
const BACKDATE_DAYS: i64 = 1;

/// The private key is readable by its owner only.
#[cfg(unix)]
const KEY_FILE_MODE: u32 = 0o600;

/// `ferry cert ...`
#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Generate a private key and a self-signed certificate (for testing, not for production)
    SelfSigned(SelfSignedArgs),
}

#[derive(Debug, clap::Args)]
pub struct SelfSignedArgs {
    /// Directory to write cert.pem and key.pem into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// DNS name or IP address clients connect to; repeat for more than one
    #[arg(long = "host", value_name = "NAME", required = true)]
    pub hosts: Vec<String>,
    /// Days the certificate is valid
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VALIDITY_DAYS)]
    pub days: u32,
    /// Overwrite existing cert.pem and key.pem
    #[arg(long)]
    pub force: bool,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{} already exists (use --force to replace it)", .0.display())]
    Exists(PathBuf),
    #[error("could not write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("could not generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("--days must be at least 1")]
    NoValidity,
}

/// The PEM texts of a new key and of its self-signed certificate.
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates an ECDSA P-256 key and a certificate for `hosts` (DNS names or IP addresses),
/// valid from yesterday for `days` days.
pub fn generate_self_signed(hosts: &[String], days: u32) -> Result<SelfSigned, CertError> {
    if days == 0 {
        return Err(CertError::NoValidity);
    }
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    if let Some(first) = hosts.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    let today = chrono::Utc::now().date_naive();
    let (year, month, day) = ymd(today - chrono::Duration::days(BACKDATE_DAYS));
    params.not_before = rcgen::date_time_ymd(year, month, day);
    let (year, month, day) = ymd(today + chrono::Duration::days(i64::from(days)));
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A date as rcgen takes it (its date type is the `time` crate's, which Ferry does not use).
fn ymd(date: chrono::NaiveDate) -> (i32, u8, u8) {
    use chrono::Datelike;
    // Month (1-12) and day (1-31) always fit a u8.
    (date.year(), date.month() as u8, date.day() as u8)
}

/// Runs `ferry cert ...`, reporting what was written on `out`.
pub fn run(command: CertCommand, out: &mut dyn Write) -> Result<(), CertError> {
    match command {
        CertCommand::SelfSigned(args) => self_signed(&args, out),
    }
}

fn self_signed(args: &SelfSignedArgs, out: &mut dyn Write) -> Result<(), CertError> {
    let cert_path = args.out.join(CERT_FILE_NAME);
    let key_path = args.out.join(KEY_FILE_NAME);
    if !args.force {
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(CertError::Exists(path.clone()));
            }
        }
    }
    let generated = generate_self_signed(&args.hosts, args.days)?;
    fs::create_dir_all(&args.out).map_err(|source| CertError::Write {
        path: args.out.clone(),
        source,
    })?;
    write_file(&key_path, generated.key_pem.as_bytes(), true)?;
    write_file(&cert_path, generated.cert_pem.as_bytes(), false)?;
    let _ = writeln!(
        out,
        "wrote {} and {} (self-signed for {}, valid {} days); clients must be told to trust it or to skip verification",
        cert_path.display(),
        key_path.display(),
        args.hosts.join(", "),
        args.days
    );
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(KEY_FILE_MODE);
    }
    #[cfg(not(unix))]
    let _ = private;
    let error = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(error)?;
    // An existing key file keeps its mode on open; tighten it as a new one would be.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(KEY_FILE_MODE))
            .map_err(error)?;
    }
    file.write_all(contents).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TlsMode, TlsSettings, build_server_config};

    fn args(out: &Path, force: bool) -> SelfSignedArgs {
        SelfSignedArgs {
            out: out.to_owned(),
            hosts: vec!["ftp.example.com".into(), "192.0.2.7".into()],
            days: 30,
            force,
        }
    }

    #[test]
    fn self_signed_pair_builds_a_tls_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("tls");
        let mut report = Vec::new();
        run(CertCommand::SelfSigned(args(&out, false)), &mut report).expect("generate");
        assert!(String::from_utf8_lossy(&report).contains("ftp.example.com, 192.0.2.7"));
        let settings = TlsSettings {
            mode: TlsMode::Required,
            cert_file: Some(out.join(CERT_FILE_NAME)),
            key_file: Some(out.join(KEY_FILE_NAME)),
            ..TlsSettings::default()
        };
        build_server_config(&settings).expect("the pair is usable");
    }

    #[test]
    fn existing_files_are_kept_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path();
        run(CertCommand::SelfSigned(args(out, false)), &mut Vec::new()).expect("first");
        let key = fs::read(out.join(KEY_FILE_NAME)).expect("key");
        let error = run(CertCommand::SelfSigned(args(out, false)), &mut Vec::new())
            .expect_err("second without --force");
        assert!(matches!(error, CertError::Exists(_)), "{error}");
        assert_eq!(fs::read(out.join(KEY_FILE_NAME)).expect("key"), key);
        run(CertCommand::SelfSigned(args(out, true)), &mut Vec::new()).expect("forced");
        assert_ne!(fs::read(out.join(KEY_FILE_NAME)).expect("key"), key);
    }

    #[test]
    fn zero_days_is_refused() {
        assert!(matches!(
            generate_self_signed(&["localhost".into()], 0),
            Err(CertError::NoValidity)
        ));
    }
}
