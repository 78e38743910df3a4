//! Operations around the pipeline: one EMF metrics line per invocation (`metrics`), the
//! re-drive of dead letters once their cause is fixed (`redrive`), and the S3 Batch Operations
//! job of a back-fill (`batch_job`).

pub(crate) mod batch_job;
pub(crate) mod metrics;
pub(crate) mod redrive;

pub use batch_job::{
    BatchJobs, JobError, JobSpec, REPORT_PREFIX, account_of_arn, encode_key, manifest_csv, manifest_key,
};
pub use metrics::{NAMESPACE, emf};
pub use redrive::{RedriveError, RedriveReport, redrive};
