//! Stage 5, deliver: bulk chunks go to the cluster. The [`Client`] sends bytes (HTTPS, gzip,
//! SigV4 or basic auth); the sink ([`OpenSearch`]) decides what to retry, on pure verdicts of
//! the answers, splits on 413 and writes what fails for good to the dead-letter index; setup
//! installs templates and retention once. It never encodes a document itself.
//!
//! - `client`: HTTP, gzip, [`Auth`] (`auth`).
//! - `sink`: the delivery rules; `dead_letter`: the dead-letter path.
//! - `response`: what a `_bulk` answer means, item by item; `retry`: backoff and deadlines.
//! - `setup`: templates, ISM/ILM retention, Dashboards saved objects; on OpenSearch
//!   Serverless only the templates, every other step reported as skipped.

pub(crate) mod auth;
pub(crate) mod client;
pub(crate) mod dead_letter;
pub(crate) mod response;
pub(crate) mod retry;
pub(crate) mod setup;
pub(crate) mod sink;

pub use crate::config::RetryPolicy;
pub use auth::{Auth, AuthError, credentials_from_env};
pub use client::{Client, RequestError, gzip};
pub use response::{BulkVerdict, ItemOutcome, classify as classify_response, describe_error};
pub use sink::{OpenSearch, SinkError};

/// Cluster setup: templates, retention and saved objects, for the CLI and the tests.
pub mod cluster {
    pub use super::setup::{
        Change, Cluster, LOGTYPE_OBJECTS, Report, Retention, SAVED_OBJECTS, SERVERLESS_RETENTION, SetupError, Skip,
        cloudtrail_pattern, family_ism_policy, family_policy_id, ilm_policy, ilm_policy_days, import_body,
        import_dashboards, ism_policy, policy_id, run, saved_objects,
    };
}
