//! Webhook delivery: the event's JSON POSTed to the hook's URL, signed when it has a secret.
//!
//! hyper's HTTP/1 client (through hyper-util's pooled client) with rustls: the system's roots,
//! or the hook's `ca_file`. A 2xx status is a delivery; any other status, a connection error
//! or the timeout is a failed attempt, retried by `delivery`.

use super::event::{Event, hex};
use crate::config::HookSecret;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>` when the hook has a secret.
pub const SIGNATURE_HEADER: &str = "X-Ferry-Signature";
/// The header carrying the event's id (the same on every attempt): receivers deduplicate on it.
pub const EVENT_ID_HEADER: &str = "X-Ferry-Event-Id";
/// The header carrying the event's name (`upload`...).
pub const EVENT_HEADER: &str = "X-Ferry-Event";
/// Most bytes of a response body read (and logged when the status is not 2xx).
const RESPONSE_EXCERPT: usize = 512;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One webhook: its URL, secret and client (connections are kept and reused).
pub struct Webhook {
    url: hyper::Uri,
    secret: Option<HookSecret>,
    client: HttpsClient,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish()
    }
}

impl Webhook {
    pub fn new(
        url: &url::Url,
        secret: Option<HookSecret>,
        ca_file: Option<&Path>,
    ) -> Result<Webhook, String> {
        let uri: hyper::Uri = url
            .as_str()
            .parse()
            .map_err(|error| format!("{url}: {error}"))?;
        let tls = tls_config(ca_file, url.scheme() == "https")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Webhook {
            url: uri,
            secret,
            client,
        })
    }

    /// One attempt: POSTs `body` (the event's JSON). Ok on a 2xx status; the error says what
    /// happened otherwise. The caller bounds it with the hook's timeout.
    pub async fn post(&self, event: &Event, body: &[u8]) -> Result<(), String> {
        let mut request = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("ferry/", env!("CARGO_PKG_VERSION")),
            )
            .header(EVENT_ID_HEADER, &event.id)
            .header(EVENT_HEADER, &event.event);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret.expose(), body));
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|error| error.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| describe_client_error(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let excerpt = match response.into_body().collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                String::from_utf8_lossy(&bytes[..bytes.len().min(RESPONSE_EXCERPT)]).into_owned()
            }
            Err(_) => String::new(),
        };
        Err(format!("HTTP {status}: {}", excerpt.trim()))
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// hyper-util's errors say "client error (Connect)"; the cause says why.
fn describe_client_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// rustls with the provider FTPS uses, trusting `ca_file` when given, else the system's roots
/// (needed only for an https:// URL).
fn tls_config(ca_file: Option<&Path>, https: bool) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| format!("ca_file {}: {error}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!(
                    "ca_file {} holds no usable certificate",
                    path.display()
                ));
            }
        }
        None if https => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(
                    "no trusted root certificates found on this system; name a CA with ca_file"
                        .to_owned(),
                );
            }
        }
        None => {}
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
