//! S3 Batch Operations jobs for the back-fill: the CSV manifest of trail files (keys
//! percent-encoded, named by its MD5, which is its ETag) and the `CreateJob` request that has
//! S3 invoke the function once per file and write a completion report.

use aws_sdk_s3control::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec, JobOperation,
    JobReport, JobReportFormat, JobReportScope, LambdaInvokeOperation,
};
use md5::{Digest as _, Md5};
use url::Url;

/// Where manifests are written in the manifest bucket (the stack's role may read only these).
pub const MANIFEST_PREFIX: &str = "cwl-indexer/manifests/";
/// Where completion reports are written (the stack's role may write only these).
pub const REPORT_PREFIX: &str = "cwl-indexer/reports";

/// Why a job could not be created.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A request member is missing or malformed (a bug, or an empty argument).
    #[error("CreateJob request for {manifest}: {reason}")]
    Build {
        /// The manifest's `s3://` URL.
        manifest: String,
        /// The SDK's complaint.
        reason: String,
    },
    /// S3 Control refused or could not be reached.
    #[error("CreateJob for {manifest} failed: {reason}")]
    CreateJob {
        /// The manifest's `s3://` URL.
        manifest: String,
        /// The SDK's error, with its context.
        reason: String,
    },
}

/// `key` as a manifest holds it: every byte percent-encoded but the unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) and `/`, so that a comma, a space or a `+` cannot be misread.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The CSV manifest (`S3BatchOperations_CSV_20180820`, fields `Bucket, Key`): one line per
/// key, in the order given.
pub fn manifest_csv<'k>(bucket: &str, keys: impl IntoIterator<Item = &'k str>) -> String {
    keys.into_iter()
        .map(|k| format!("{bucket},{}\n", encode_key(k)))
        .collect()
}

/// The manifest's key: named by the MD5 of its bytes, the ETag S3 gives a single-part object
/// with SSE-S3, so the same files make the same manifest, token and (at most) one job.
pub fn manifest_key(csv: &str) -> String {
    let digest = Md5::digest(csv.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{MANIFEST_PREFIX}{hex}.csv")
}

/// The account of an ARN (`arn:aws:iam::111122223333:role/x` gives `111122223333`).
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// A job to create: the function a job invokes, the role it assumes, the manifest written.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The account the job belongs to (the role's).
    pub account_id: String,
    /// The role Batch Operations assumes (the stack's `BatchOperationsRoleArn`).
    pub role_arn: String,
    /// The function invoked per file (the stack's function, unqualified).
    pub function_arn: String,
    /// The manifest's bucket; the report goes to the same bucket, under [`REPORT_PREFIX`].
    pub bucket: String,
    /// The manifest's key.
    pub key: String,
    /// The manifest's ETag (PutObject's answer, unquoted); also the idempotency token.
    pub etag: String,
    /// The job's priority among the account's jobs (higher first).
    pub priority: i32,
}

/// The S3 Control API, for `CreateJob`.
#[derive(Debug, Clone)]
pub struct BatchJobs {
    client: aws_sdk_s3control::Client,
}

/// Sends every request to one URL as given: S3 Control's own rules would put the account in
/// front of the host (`111122223333.127.0.0.1`), which an S3-compatible or test server lacks.
#[derive(Debug)]
struct FixedEndpoint(String);

impl ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(&'a self, _params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(Endpoint::builder().url(self.0.clone()).build()))
    }
}

impl BatchJobs {
    /// A client from a loaded AWS configuration (the CLI's). `endpoint` sends every request
    /// to that URL, without the account prefix (tests, S3-compatible servers).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, endpoint: Option<&Url>) -> Self {
        let mut config = aws_sdk_s3control::config::Builder::from(sdk);
        if let Some(url) = endpoint {
            config = config.endpoint_resolver(FixedEndpoint(url.as_str().trim_end_matches('/').to_owned()));
        }
        Self {
            client: aws_sdk_s3control::Client::from_conf(config.build()),
        }
    }

    /// Creates the job (`LambdaInvoke`, schema 2.0, no confirmation, a report of every task);
    /// answers its id. Submitting the same manifest again answers the same job.
    pub async fn create(&self, spec: &JobSpec) -> Result<String, JobError> {
        let manifest = format!("s3://{}/{}", spec.bucket, spec.key);
        let build = |e: aws_sdk_s3control::error::BuildError| JobError::Build {
            manifest: manifest.clone(),
            reason: e.to_string(),
        };
        let operation = JobOperation::builder()
            .lambda_invoke(
                LambdaInvokeOperation::builder()
                    .function_arn(&spec.function_arn)
                    .invocation_schema_version("2.0")
                    .build(),
            )
            .build();
        let location = JobManifestLocation::builder()
            .object_arn(format!("arn:aws:s3:::{}/{}", spec.bucket, spec.key))
            .e_tag(&spec.etag)
            .build()
            .map_err(build)?;
        let spec_ = JobManifestSpec::builder()
            .format(JobManifestFormat::S3BatchOperationsCsv20180820)
            .fields(JobManifestFieldName::Bucket)
            .fields(JobManifestFieldName::Key)
            .build()
            .map_err(build)?;
        let report = JobReport::builder()
            .bucket(format!("arn:aws:s3:::{}", spec.bucket))
            .prefix(REPORT_PREFIX)
            .format(JobReportFormat::ReportCsv20180820)
            .enabled(true)
            .report_scope(JobReportScope::AllTasks)
            .build();
        let answer = self
            .client
            .create_job()
            .account_id(&spec.account_id)
            .confirmation_required(false)
            .operation(operation)
            .manifest(JobManifest::builder().spec(spec_).location(location).build())
            .report(report)
            .priority(spec.priority)
            .role_arn(&spec.role_arn)
            .client_request_token(&spec.etag)
            .description("cwl-indexer backfill")
            .send()
            .await
            .map_err(|e| JobError::CreateJob {
                manifest: manifest.clone(),
                reason: aws_sdk_s3control::error::DisplayErrorContext(e).to_string(),
            })?;
        answer.job_id().map(str::to_owned).ok_or_else(|| JobError::CreateJob {
            manifest,
            reason: "the answer has no JobId".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_but_for_unreserved_characters_and_slashes() {
        assert_eq!(
            encode_key("AWSLogs/1/a b+c,d=é.json.gz"),
            "AWSLogs/1/a%20b%2Bc%2Cd%3D%C3%A9.json.gz"
        );
        assert_eq!(encode_key("A-z_0.9~/x"), "A-z_0.9~/x");
    }

    #[test]
    fn the_manifest_is_named_by_its_md5() {
        let csv = manifest_csv("b", ["k/1.json.gz", "k/2 x.json.gz"]);
        assert_eq!(csv, "b,k/1.json.gz\nb,k/2%20x.json.gz\n");
        // md5("") is d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(
            manifest_key(""),
            "cwl-indexer/manifests/d41d8cd98f00b204e9800998ecf8427e.csv"
        );
        assert_eq!(account_of_arn("arn:aws:iam::111122223333:role/r"), Some("111122223333"));
        assert_eq!(account_of_arn("arn:aws:iam::role/r"), None);
    }
}
