//! cwl-indexer: CloudTrail records delivered by a CloudWatch Logs subscription, indexed
//! into OpenSearch daily indices without losing or duplicating an event.
//!
//! # Layout
//!
//! One module per stage of the data's journey, in order:
//!
//! - [`envelope`]: `awslogs.data` → base64 → gunzip through a size cap → borrowed envelope.
//! - [`record`]: one log event's message → CloudTrail record (borrowed top-level fields),
//!   other JSON, plain text, or a record that failed to parse.
//! - [`document`]: one log event → `create` action (daily index, deterministic `_id`) and
//!   document line, written straight into the body buffer.
//! - [`bulk`]: the NDJSON body, cut into chunks under `BULK_MAX_BYTES`, each item's byte
//!   range recorded for re-slicing on retry.
//! - [`sink`]: HTTP to OpenSearch with [`auth`] (SigV4, basic, none) and gzip; retries paced
//!   by [`retry`], 413 splits, dead letters, and the [`setup`] ([`template`]s, retention)
//!   run once.
//! - [`response`]: what a `_bulk` answer means, item by item: pure functions.
//! - [`trailfile`] and [`s3`]: the other way in, CloudTrail's own S3 files, streamed
//!   through a size cap and presented as an envelope (bucket and key as log group and stream).
//! - [`handler`]: runs the stages for one Lambda event and hands chunks to a sink; the only
//!   module that knows Lambda's types (CloudWatch Logs, Kinesis, S3 notifications direct,
//!   through SNS or SQS), and answers batch item failures for Kinesis and SQS.
//!
//! Plus [`config`], parsed once at cold start, [`schema`], the field table shared by the
//! encoder and the template, [`metrics`], one EMF line per invocation, and [`redrive`],
//! which re-submits dead letters through the handler. The binaries (`bootstrap` for Lambda, `cwl-indexer` for the
//! command line) are thin shells over [`handler::Indexer`].

pub mod alerts;
pub mod auth;
pub mod bulk;
pub mod config;
pub mod countries;
pub mod document;
pub mod enrich;
pub mod envelope;
pub mod geo;
pub mod handler;
pub mod metrics;
pub mod record;
pub mod redrive;
pub mod response;
pub mod retry;
pub mod rules;
pub mod s3;
pub mod schema;
pub mod setup;
pub mod sink;
pub mod template;
pub mod trailfile;

pub use config::Config;
pub use handler::{CloudWatchLogsEvent, Indexer, Sink, Summary};
