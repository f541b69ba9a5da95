//! The connection to the bucket, shared by every session: the S3 client, where keys live,
//! request metrics, and what S3's answers mean for Ferry.

use super::super::paths::UPLOAD_TEMP_PREFIX;
use super::super::store::StoreError;
use crate::config::{BucketRoot, Config};
use crate::observe::metrics::ObjectStoreMetrics;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Attempts per request (the first and four retries, with exponential backoff and jitter):
/// throttling (503 SlowDown), 500s and dropped connections are retried by the SDK's standard
/// retry strategy.
const MAX_ATTEMPTS: u32 = 5;
/// An endpoint that does not accept a connection within this is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A response that sends nothing for this long is given up on (and retried).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the bucket could not be set up; each names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("s3_credentials_file `{}`: {problem}", .path.display())]
    CredentialsFile { path: PathBuf, problem: String },
    #[error("{key}: {problem}")]
    Unusable { key: &'static str, problem: String },
}

/// One failed S3 request, as S3 (or the network) answered it.
#[derive(Debug, Clone)]
pub struct S3Failure {
    /// The S3 API operation (GetObject, UploadPart...).
    pub operation: &'static str,
    /// HTTP status, when S3 answered at all.
    pub status: Option<u16>,
    /// S3's error code (NoSuchKey, SlowDown...), when it sent one.
    pub code: Option<String>,
    /// What S3 answered, or why it could not be reached; never a credential.
    pub message: String,
}

impl S3Failure {
    fn of<E>(operation: &'static str, error: &SdkError<E>) -> S3Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = error
            .raw_response()
            .map(|response| response.status().as_u16());
        let code = error.code().map(str::to_owned);
        let message = match (&code, error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => match status {
                Some(status) => format!("{code} (HTTP {status})"),
                None => code.clone(),
            },
            _ => match status {
                Some(status) => format!("HTTP {status}: {}", causes(error)),
                None => causes(error),
            },
        };
        S3Failure {
            operation,
            status,
            code,
            message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404) || matches!(self.code.as_deref(), Some("NoSuchKey" | "NotFound"))
    }

    /// A conditional write lost: the object exists (If-None-Match) or changed.
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self.status, Some(412))
            || matches!(
                self.code.as_deref(),
                Some("PreconditionFailed" | "ConditionalRequestConflict")
            )
    }

    pub fn is_invalid_range(&self) -> bool {
        self.status == Some(416) || self.code.as_deref() == Some("InvalidRange")
    }

    /// The bounded label of the request metrics.
    fn outcome(&self) -> &'static str {
        match self.status {
            _ if self.is_not_found() => "not_found",
            _ if self.is_precondition_failed() => "precondition_failed",
            Some(400..=499) => "client_error",
            Some(_) => "server_error",
            None => "unreachable",
        }
    }
}

/// An error and its causes on one line, as `a: b: c` (the SDK's own chain, without the debug
/// dump `DisplayErrorContext` adds).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl std::fmt::Display for S3Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.operation, self.message)
    }
}

/// What an S3 answer means for the FTP command (`super::super::errors` then picks the reply).
impl From<S3Failure> for StoreError {
    fn from(failure: S3Failure) -> Self {
        if failure.is_not_found() {
            StoreError::NotFound
        } else if failure.is_precondition_failed() {
            StoreError::AlreadyExists
        } else {
            StoreError::Backend(failure.to_string())
        }
    }
}

/// The bucket and how to reach it; one per server, shared by its sessions.
pub struct Bucket {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) name: String,
    /// The key prefix of the root: empty, or `PREFIX/`.
    root_prefix: String,
    pub(super) part_size: usize,
    pub(super) upload_concurrency: usize,
    pub(super) instance_id: String,
    metrics: ObjectStoreMetrics,
    pub(super) logger: slog::Logger,
    /// One lock per key being appended to or resumed, so that two such writes in this process
    /// never both start from the same old object (the second would drop the first's data).
    rewrites: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("root_prefix", &self.root_prefix)
            .finish_non_exhaustive()
    }
}

/// Distinguishes the readiness probes of concurrent checks.
static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Bucket {
    /// Builds the client for `root` from the `s3_*` keys. Sends no request: see
    /// [`Bucket::check_writable`].
    pub async fn connect(
        root: &BucketRoot,
        config: &Config,
        metrics: ObjectStoreMetrics,
        logger: slog::Logger,
    ) -> Result<Arc<Bucket>, BucketError> {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let settings = &config.s3;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .build(),
            );
        if let Some(path) = &settings.credentials_file {
            loader = loader.credentials_provider(credentials_from_file(path)?);
        }
        let shared = loader.load().await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.uses_path_style())
            // S3-compatible services (MinIO, SeaweedFS, Garage, moto) do not all accept the
            // checksum trailers newer SDKs add by default; TLS already protects the bytes.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
        if let Some(endpoint) = &settings.endpoint {
            s3 = s3.endpoint_url(endpoint);
        }
        let root_prefix = match root.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        Ok(Arc::new(Bucket {
            client: aws_sdk_s3::Client::from_conf(s3.build()),
            name: root.bucket.clone(),
            root_prefix,
            part_size: settings.part_size,
            upload_concurrency: settings.upload_concurrency,
            instance_id: config.instance_id.clone(),
            metrics,
            logger,
            rewrites: Mutex::new(HashMap::new()),
        }))
    }

    /// Runs one request, counting it in the metrics by operation and outcome.
    pub(super) async fn call<T, E>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<T, S3Failure>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let started = Instant::now();
        let result = request.await;
        let (outcome, result) = match result {
            Ok(value) => ("ok", Ok(value)),
            Err(error) => {
                let failure = S3Failure::of(operation, &error);
                (failure.outcome(), Err(failure))
            }
        };
        self.metrics.observe(operation, outcome, started.elapsed());
        result
    }

    /// The key prefix of a home given relative to the root (`bob`, `homes/a.b`, or empty for
    /// the root itself): `PREFIX/bob/`.
    pub(super) fn home_prefix(&self, home: &str) -> String {
        match home.trim_matches('/') {
            "" => self.root_prefix.clone(),
            home => format!("{}{home}/", self.root_prefix),
        }
    }

    /// Where unfinished multipart uploads are recorded: hidden from clients like every name
    /// with the upload-temporary prefix.
    pub(super) fn journal_prefix(&self) -> String {
        format!("{}{UPLOAD_TEMP_PREFIX}journal/", self.root_prefix)
    }

    /// Aborts the multipart upload `upload_id` of `key`; one that is already gone (completed,
    /// aborted, swept) counts as aborted.
    pub(super) async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Failure> {
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id);
        match self.call("AbortMultipartUpload", request.send()).await {
            Err(failure)
                if failure.code.as_deref() != Some("NoSuchUpload") && !failure.is_not_found() =>
            {
                Err(failure)
            }
            _ => Ok(()),
        }
    }

    /// `x-amz-copy-source` for `key` in this bucket.
    pub(super) fn copy_source(&self, key: &str) -> String {
        let key = percent_encoding::utf8_percent_encode(key, KEY_IN_COPY_SOURCE);
        format!("{}/{key}", self.name)
    }

    /// The lock of rewrites (appends, resumed uploads) of `key` in this process.
    pub(super) fn rewrite_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .rewrites
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = locks.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }

    /// Writes and deletes a probe object under the root: what `/ready` and `--check-config`
    /// ask. The error names the key to fix and quotes S3's answer.
    pub async fn check_writable(&self) -> Result<(), String> {
        let key = format!(
            "{}{UPLOAD_TEMP_PREFIX}ready-{}-{}-{}",
            self.root_prefix,
            self.instance_id,
            std::process::id(),
            PROBE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let put = self.client.put_object().bucket(&self.name).key(&key);
        self.call("PutObject", put.send())
            .await
            .map_err(|failure| self.explain(&failure))?;
        let delete = self.client.delete_object().bucket(&self.name).key(&key);
        self.call("DeleteObject", delete.send())
            .await
            .map_err(|failure| self.explain(&failure))?;
        Ok(())
    }

    /// Which key a failed probe points at.
    fn explain(&self, failure: &S3Failure) -> String {
        let key = match failure.code.as_deref() {
            Some("NoSuchBucket") => "root",
            Some(
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidToken",
            ) => "credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, s3_credentials_file)",
            Some(
                "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IllegalLocationConstraintException",
            ) => "s3_region",
            _ if failure.message.contains("credentials") => {
                "credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, s3_credentials_file)"
            }
            _ if failure.status.is_none() => "s3_endpoint",
            _ => "root",
        };
        let root = BucketRoot {
            bucket: self.name.clone(),
            prefix: self.root_prefix.trim_end_matches('/').to_owned(),
        };
        format!("{key}: {root} is not writable: {failure}")
    }
}

/// Credentials from an AWS shared credentials file (`[default]` profile): the form Docker and
/// Kubernetes secrets are usually mounted in.
fn credentials_from_file(
    path: &std::path::Path,
) -> Result<aws_config::profile::ProfileFileCredentialsProvider, BucketError> {
    use aws_runtime::env_config::file::{
        EnvConfigFileKind as ProfileFileKind, EnvConfigFiles as ProfileFiles,
    };
    let text = std::fs::read_to_string(path).map_err(|error| BucketError::CredentialsFile {
        path: path.to_owned(),
        problem: error.to_string(),
    })?;
    if !text.contains("aws_access_key_id") {
        return Err(BucketError::CredentialsFile {
            path: path.to_owned(),
            problem: "expected an AWS credentials file: [default] with aws_access_key_id and \
                      aws_secret_access_key"
                .into(),
        });
    }
    let files = ProfileFiles::builder()
        .with_file(ProfileFileKind::Credentials, path)
        .build();
    Ok(
        aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_files(files)
            .build(),
    )
}

/// What a key may hold in `x-amz-copy-source` unescaped: RFC 3986 unreserved characters and
/// the `/` between its parts.
const KEY_IN_COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
