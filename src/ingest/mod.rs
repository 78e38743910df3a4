//! Stages 1 and 2, ingest: what arrives becomes a borrowed [`Envelope`] of log events, from a
//! CloudWatch Logs payload (`base64(gzip(json))`, through a size cap) or a CloudTrail S3 file
//! (streamed through the same cap), and each event's message is classified.
//!
//! - `envelope`: the subscription payload and the envelope inside it.
//! - `trailfile`, `s3`: CloudTrail's own S3 files, read from a [`TrailStore`].
//! - `record`: one message classified as a CloudTrail record, other JSON, text or invalid.
//! - `promote`: a record's promoted values (typed copies of subtree paths) and computed fields.
//! - `event_id`: what identifies a CloudTrail event on every path (`_id`, `eventTime`).
//! - `logtype`: the one classification of a message into a [`LogType`]; one file per family:
//!   `vpcflow` (flow records against their group's format), `guardduty` (findings),
//!   `resolver` (Route 53 Resolver queries), `waf` (WAF requests), on the readers of `lenient`.

pub(crate) mod envelope;
pub(crate) mod event_id;
pub(crate) mod guardduty;
pub(crate) mod lenient;
pub(crate) mod logtype;
pub(crate) mod promote;
pub(crate) mod record;
pub(crate) mod resolver;
pub(crate) mod s3;
pub(crate) mod trailfile;
pub(crate) mod vpcflow;
pub(crate) mod waf;

pub use envelope::{
    AwsLogs, CloudWatchLogsEvent, Envelope, EnvelopeError, LogEvent, MessageType, decode_payload, gunzip_capped,
    parse_envelope,
};
pub use event_id::{MAX_ID_BYTES, cloudtrail_doc_id, parse_event_time};
pub use logtype::{LogType, classify_event};
pub use promote::{Promoted, PromotedValue, promote};
pub use record::{Field, MAX_NESTING, Message, Placement, Record, RecordError, classify};
pub use s3::{GetFailure, Object, S3Error, TrailStore, parse_s3_url};
pub use trailfile::{Gunzip, KeyKind, TrailFileError, TrailKey, classify_key, gunzip};

/// CloudTrail's S3 files: their keys, and their body presented as an [`Envelope`].
pub mod trail {
    pub use super::trailfile::{Source, classify_key, gunzip, parse};
}
