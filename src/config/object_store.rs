//! The object-storage settings: `root = "s3://BUCKET[/PREFIX]"` and the `s3_*` keys.

use std::path::PathBuf;

/// AWS's own default for a bucket nobody named a region for; any S3-compatible service
/// accepts it (MinIO, SeaweedFS, Garage, moto).
const DEFAULT_REGION: &str = "us-east-1";
/// 16 MiB parts: a 1 GiB upload is 64 parts (S3 allows 10,000, so up to 156 GiB at this size).
const DEFAULT_PART_SIZE_MIB: u64 = 16;
/// Parts of one upload in flight at once: memory per upload is part size × this.
const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;
/// S3's smallest part (every part of a multipart upload but the last).
pub const MIN_PART_SIZE_MIB: u64 = 5;
/// S3's largest part.
pub const MAX_PART_SIZE_MIB: u64 = 5 * 1024;

/// Where homes live when `root` names a bucket: home `H` is the key prefix `PREFIX/H/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRoot {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl BucketRoot {
    /// Parses `s3://BUCKET[/PREFIX]`; None when `text` is not an `s3://` address at all.
    pub(super) fn parse(text: &str) -> Option<Result<BucketRoot, String>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some(check_bucket_name(bucket).map(|()| BucketRoot {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        }))
    }
}

impl std::fmt::Display for BucketRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

/// S3's bucket naming rules (3-63 characters: lower-case letters, digits, dots and hyphens,
/// starting and ending with a letter or digit).
fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let valid_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let valid_ends = bucket
        .bytes()
        .next()
        .zip(bucket.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && valid_chars && valid_ends {
        Ok(())
    } else {
        Err(format!(
            "expected s3://BUCKET[/PREFIX] with a valid bucket name (3-63 lower-case letters, \
             digits, dots or hyphens), got bucket {bucket:?}"
        ))
    }
}

/// How Ferry talks to the S3-compatible service (the `s3_*` keys); used when `root` is a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Service URL (`s3_endpoint`); None: AWS for the region.
    pub endpoint: Option<String>,
    /// `s3_region`.
    pub region: String,
    /// Bucket in the path (`http://host/bucket/key`) instead of the host name (`s3_path_style`);
    /// None: on when an endpoint is set (what MinIO, SeaweedFS, Garage and Ceph expect).
    pub path_style: Option<bool>,
    /// Bytes per multipart part (`s3_part_size`, in MiB).
    pub part_size: usize,
    /// Parts of one upload sent at once (`s3_upload_concurrency`).
    pub upload_concurrency: usize,
    /// An AWS shared credentials file (`s3_credentials_file`), for Docker and Kubernetes
    /// secrets; None: the standard chain (`AWS_ACCESS_KEY_ID`..., profiles, roles).
    pub credentials_file: Option<PathBuf>,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            region: DEFAULT_REGION.to_owned(),
            path_style: None,
            part_size: (DEFAULT_PART_SIZE_MIB * 1024 * 1024) as usize,
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            credentials_file: None,
        }
    }
}

impl S3Settings {
    /// Whether requests put the bucket in the path.
    pub fn uses_path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }
}

/// Checks `s3_endpoint`: an http or https URL.
pub(super) fn parse_endpoint(text: String) -> Result<String, String> {
    match url::Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(text),
        Ok(_) => Err(format!("expected an http:// or https:// URL, got {text:?}")),
        Err(error) => Err(format!("expected a URL, got {text:?} ({error})")),
    }
}

/// Checks `s3_region`: a non-empty name without spaces.
pub(super) fn parse_region(text: String) -> Result<String, String> {
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return Err(format!(
            "expected a region name such as us-east-1, got {text:?}"
        ));
    }
    Ok(text)
}

/// Checks `s3_part_size` (MiB) against S3's part limits; returns bytes.
pub(super) fn part_size_bytes(mib: u64) -> Result<usize, String> {
    if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&mib) {
        return Err(format!(
            "must be between {MIN_PART_SIZE_MIB} and {MAX_PART_SIZE_MIB} MiB (S3's part limits), got {mib}"
        ));
    }
    Ok((mib * 1024 * 1024) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_roots_parse_with_and_without_prefix() {
        let root = BucketRoot::parse("s3://my-bucket/some/prefix/")
            .unwrap()
            .unwrap();
        assert_eq!(root.bucket, "my-bucket");
        assert_eq!(root.prefix, "some/prefix");
        assert_eq!(root.to_string(), "s3://my-bucket/some/prefix");
        let root = BucketRoot::parse("s3://my.bucket").unwrap().unwrap();
        assert_eq!(
            (root.bucket.as_str(), root.prefix.as_str()),
            ("my.bucket", "")
        );
        assert!(BucketRoot::parse("/srv/ftp").is_none());
        for bad in ["s3://", "s3://AB", "s3://-bucket", "s3://under_score/x"] {
            let problem = BucketRoot::parse(bad).unwrap().unwrap_err();
            assert!(problem.contains("s3://BUCKET[/PREFIX]"), "{bad}: {problem}");
        }
    }

    #[test]
    fn path_style_defaults_on_with_an_endpoint() {
        let mut settings = S3Settings::default();
        assert!(!settings.uses_path_style());
        settings.endpoint = Some("http://127.0.0.1:9000".into());
        assert!(settings.uses_path_style());
        settings.path_style = Some(false);
        assert!(!settings.uses_path_style());
    }

    #[test]
    fn part_sizes_outside_s3_limits_are_refused() {
        assert_eq!(part_size_bytes(5), Ok(5 * 1024 * 1024));
        assert!(
            part_size_bytes(4)
                .unwrap_err()
                .contains("between 5 and 5120")
        );
        assert!(parse_endpoint("ftp://x".into()).is_err());
        assert!(parse_endpoint("http://127.0.0.1:9000".into()).is_ok());
    }
}
