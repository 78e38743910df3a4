//! cwl-indexer: CloudTrail records (and the rest of an account's logs) delivered by a
//! CloudWatch Logs subscription, a Kinesis stream or S3, indexed into OpenSearch daily
//! indices without losing or duplicating an event.
//!
//! # Layout
//!
//! One folder per stage, in the order data flows; a module uses only those above it
//! (`tests/architecture.rs` checks it):
//!
//! - [`config`] and [`schema`]: what every stage reads. The configuration, parsed once at
//!   cold start (with the [`config::Severity`] and [`config::RetryPolicy`] it holds), and the
//!   field table shared by the record classifier, the encoder and the template.
//! - [`ingest`]: stages 1 and 2. `awslogs.data` → base64 → gunzip through a size cap →
//!   borrowed envelope, or a CloudTrail S3 file streamed through the same cap; each message
//!   classified once into a [`ingest::LogType`]: a CloudTrail record, a VPC flow record, a
//!   GuardDuty finding, a Route 53 Resolver query, a WAF request, other JSON, text or invalid.
//! - [`signals`]: GeoIP, detection rules and SNS alerts, computed per record.
//! - [`index`]: stages 3 and 4. One `create` item per event (its daily index, or its log
//!   type's family index for the other log types; deterministic `_id`; `index` without `_id`
//!   on a Serverless time-series collection) written into one reusable body cut into chunks;
//!   the templates; dead-letter and repaired documents.
//! - [`pipeline`]: what the stages below share: the [`Sink`] trait, [`pipeline::Batch`],
//!   [`pipeline::Delivery`], [`Summary`].
//! - [`deliver`]: stage 5. The HTTP client (gzip, SigV4), the delivery rules (retries, 413
//!   splits, dead letters) on pure verdicts of each answer, and the cluster setup.
//! - [`indexer`]: the [`Indexer`], which runs the stages for one payload or S3 object.
//! - [`ops`]: EMF metrics and the re-drive of dead letters.
//! - [`handler`]: the Lambda adapter, the only module that knows Lambda's types; one
//!   [`handler::Source`] per kind of event, one file each.
//! - [`wiring`]: [`wire`] builds the indexer and its clients from a [`Config`]; both
//!   binaries (`bootstrap` for Lambda, `cwl-indexer` for the command line) call it.

pub mod config;
pub mod deliver;
pub mod handler;
pub mod index;
pub mod indexer;
pub mod ingest;
pub mod ops;
pub mod pipeline;
pub mod schema;
pub mod signals;
pub mod wiring;

pub use config::Config;
pub use indexer::Indexer;
pub use ingest::CloudWatchLogsEvent;
pub use pipeline::{Sink, Summary};
pub use wiring::{Aws, Wired, wire};
