//! S3: listing a trail bucket and streaming CloudTrail files out of it, through the
//! size-capped gunzip of [`crate::ingest::trailfile`]. Used by the Lambda function (S3 notifications)
//! and by the `backfill` command.

use aws_credential_types::provider::SharedCredentialsProvider;
use url::Url;

use crate::ingest::trailfile::{Gunzip, TrailFileError};

/// Why an S3 call or an S3 object failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// `GetObject` failed (missing object, no permission, network).
    #[error("s3://{bucket}/{key}: GetObject failed: {reason}")]
    Get {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What kind of failure: whether trying again later can help.
        failure: GetFailure,
        /// The SDK's error, with its context.
        reason: String,
    },
    /// `PutObject` failed.
    #[error("s3://{bucket}/{key}: PutObject failed: {reason}")]
    Put {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The SDK's error, with its context.
        reason: String,
    },
    /// The body stopped part way.
    #[error("s3://{bucket}/{key}: reading the body failed: {reason}")]
    Body {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// `ListObjectsV2` failed.
    #[error("s3://{bucket}/{prefix}: ListObjectsV2 failed: {reason}")]
    List {
        /// The bucket.
        bucket: String,
        /// The prefix listed.
        prefix: String,
        /// The SDK's error, with its context.
        reason: String,
    },
    /// The object is not a usable CloudTrail file.
    #[error(transparent)]
    File(#[from] TrailFileError),
}

/// What kind of `GetObject` failure, from S3's answer: whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetFailure {
    /// `NoSuchKey` (or a 404): the object is not there.
    NoSuchKey,
    /// `NoSuchBucket`.
    NoSuchBucket,
    /// `AccessDenied` (or a 403): the role may not read it.
    AccessDenied,
    /// Another 4xx answer (an archived object, a bad request): the same request fails again.
    Refused,
    /// Throttling (`SlowDown`, 503), a 5xx, a timeout or a network error: worth another try.
    Transient,
}

impl GetFailure {
    /// Classifies an SDK error: S3's error code when it answered, else its HTTP status; no
    /// answer at all (connection, timeout) is transient.
    fn of<E: aws_sdk_s3::error::ProvideErrorMetadata>(
        e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self {
        use aws_sdk_s3::error::SdkError;
        let SdkError::ServiceError(service) = e else {
            return match e {
                // The request could not even be built (an empty bucket name, say).
                SdkError::ConstructionFailure(_) => Self::Refused,
                _ => Self::Transient,
            };
        };
        let status = e.raw_response().map(|r| r.status().as_u16());
        match (service.err().code(), status) {
            (Some("NoSuchKey"), _) | (None, Some(404)) => Self::NoSuchKey,
            (Some("NoSuchBucket"), _) => Self::NoSuchBucket,
            (Some("AccessDenied"), _) | (None, Some(403)) => Self::AccessDenied,
            (Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "Throttling"), _) => {
                Self::Transient
            }
            (_, Some(400..=499)) => Self::Refused,
            _ => Self::Transient,
        }
    }
}

impl S3Error {
    /// Whether reading the object again later can succeed: throttling, 5xx, network and
    /// body errors can; a missing object, a refusal or a file that is not CloudTrail cannot.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Get { failure, .. } => *failure == GetFailure::Transient,
            Self::Body { .. } | Self::List { .. } | Self::Put { .. } => true,
            Self::File(_) => false,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its size in bytes (compressed).
    pub size: u64,
}

/// A client for the trail bucket(s), built once without a network call.
#[derive(Debug, Clone)]
pub struct TrailStore {
    client: aws_sdk_s3::Client,
}

impl TrailStore {
    /// A client in `region` with `credentials` (the function's role). `endpoint` overrides
    /// S3's (an S3-compatible server, tests) and then addresses buckets path-style.
    pub fn new(region: String, credentials: SharedCredentialsProvider, endpoint: Option<&Url>) -> Self {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(region))
            .credentials_provider(credentials);
        Self::build(config, endpoint)
    }

    /// A client from a loaded AWS configuration (the CLI: profiles, SSO, environment).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, endpoint: Option<&Url>) -> Self {
        Self::build(aws_sdk_s3::config::Builder::from(sdk), endpoint)
    }

    fn build(mut config: aws_sdk_s3::config::Builder, endpoint: Option<&Url>) -> Self {
        if let Some(url) = endpoint {
            config = config
                .endpoint_url(url.as_str().trim_end_matches('/'))
                .force_path_style(true);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
        }
    }

    /// Streams `s3://bucket/key` through the gunzip into `out` (at most `cap` bytes).
    /// Returns the compressed size read.
    pub async fn read_gunzipped(&self, bucket: &str, key: &str, cap: usize, out: &mut Vec<u8>) -> Result<u64, S3Error> {
        let response = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| S3Error::Get {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                failure: GetFailure::of(&e),
                reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            })?;
        let mut body = response.body;
        let mut gunzip = Gunzip::new(key, out, cap);
        let mut read = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| S3Error::Body {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                reason: e.to_string(),
            })?;
            read += piece.len() as u64;
            gunzip.feed(&piece)?;
        }
        gunzip.finish()?;
        Ok(read)
    }

    /// Writes `body` to `s3://bucket/key` with the bucket's default encryption; answers the
    /// object's ETag without its quotes (the back-fill's Batch Operations manifest).
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>, content_type: &str) -> Result<String, S3Error> {
        let answer = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| S3Error::Put {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(answer.e_tag().unwrap_or_default().trim_matches('"').to_owned())
    }

    /// Every object under `prefix`, in key order (S3 lists keys in UTF-8 binary order).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>, S3Error> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| S3Error::List {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            })?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    objects.push(Object {
                        key: key.to_owned(),
                        size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    });
                }
            }
        }
        Ok(objects)
    }
}

/// Splits `s3://bucket/prefix` into its bucket and prefix.
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(parse_s3_url("s3://b/AWSLogs/1/"), Some(("b", "AWSLogs/1/")));
        assert_eq!(parse_s3_url("s3://b"), Some(("b", "")));
        assert_eq!(parse_s3_url("s3:///x"), None);
        assert_eq!(parse_s3_url("https://b/x"), None);
    }
}
