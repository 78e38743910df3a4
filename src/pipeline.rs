//! What every stage shares: the [`Sink`] a bulk chunk is handed to, the [`Batch`] it is told
//! about, what delivering it did ([`Delivery`]) and what one invocation did ([`Summary`]).

use std::future::Future;
use std::time::Instant;

use serde::Serialize;

use crate::index::BulkChunk;
use crate::ingest::Envelope;

/// What a sink is told about the chunk it sends.
#[derive(Debug)]
pub struct Batch<'a> {
    /// The envelope the chunk's items come from (`Item::event` indexes its `log_events`).
    pub envelope: &'a Envelope<'a>,
    /// When the invocation must have returned (Lambda's `context.deadline`); `None` for the CLI.
    pub deadline: Option<Instant>,
}

/// What delivering one chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Documents indexed now.
    pub indexed: usize,
    /// Documents already present (409 on `create`): an earlier delivery indexed them.
    pub duplicates: usize,
    /// Item retries (an item retried twice counts twice).
    pub retried: usize,
    /// Items written to the dead-letter index (or found there already).
    pub dead_lettered: usize,
    /// HTTP requests made.
    pub requests: usize,
    /// 413 answers that split a body in two.
    pub splits: usize,
    /// Records refused for duplicate keys and re-sent with the last value of each key.
    pub repaired: usize,
    /// Bulk body bytes sent, before compression, retries included.
    pub bulk_bytes: usize,
    /// Bytes on the wire, after compression.
    pub wire_bytes: usize,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, o: Self) {
        self.indexed += o.indexed;
        self.duplicates += o.duplicates;
        self.retried += o.retried;
        self.dead_lettered += o.dead_lettered;
        self.requests += o.requests;
        self.splits += o.splits;
        self.repaired += o.repaired;
        self.bulk_bytes += o.bulk_bytes;
        self.wire_bytes += o.wire_bytes;
    }
}

/// Where bulk chunks go: OpenSearch, stdout for a dry run, or nowhere.
pub trait Sink {
    /// Why a chunk could not be delivered; fails the invocation so Lambda retries it.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Delivers one chunk, adding what it did to `delivery` as it goes (so the counts
    /// survive a failure part way). An error means some item is neither indexed nor
    /// dead-lettered.
    fn send(
        &mut self,
        chunk: &BulkChunk,
        batch: &Batch<'_>,
        delivery: &mut Delivery,
    ) -> impl Future<Output = Result<(), Self::Error>>;

    /// Whether the cluster indexes free-form subtrees itself (`flat_object`, `flattened`), so
    /// that `FULL_TEXT_SUBTREES=auto` leaves the `@json` copies out; asked before each
    /// envelope is encoded. `None` when not known (a dry run, a cluster not reached yet).
    fn subtrees_indexed(&mut self, deadline: Option<Instant>) -> impl Future<Output = Option<bool>> {
        let _ = deadline;
        std::future::ready(None)
    }
}

/// What one invocation did, logged as one line and returned as the Lambda response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    pub message_type: String,
    /// Log events in the envelope.
    pub events_in: usize,
    /// Documents built from CloudTrail records.
    pub cloudtrail: usize,
    /// Documents built from other JSON.
    pub other_json: usize,
    /// Documents built from plain text.
    pub text: usize,
    /// Documents built from records that failed to parse.
    pub invalid: usize,
    /// Documents built from VPC flow log records (`<prefix>-vpcflow-*`).
    pub vpcflow: usize,
    /// Documents built from GuardDuty findings (`<prefix>-guardduty-*`).
    pub guardduty: usize,
    /// Documents built from Route 53 Resolver queries (`<prefix>-resolver-*`).
    pub resolver: usize,
    /// Documents built from AWS WAF requests (`<prefix>-waf-*`).
    pub waf: usize,
    /// Bulk request bodies built.
    pub chunks: usize,
    /// Bytes of NDJSON built.
    pub built_bytes: usize,
    /// Decompressed envelope size.
    pub payload_bytes: usize,
    /// What the sink did with the chunks.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Log events neither indexed, already present nor dead-lettered (non-zero only when
    /// the invocation fails, so that Lambda retries it).
    pub failed: usize,
    /// Detection rule matches and GuardDuty findings (each a candidate for the alert).
    pub signals: usize,
    /// The SNS message id of the invocation's alert, if one was published.
    pub alert_message_id: Option<String>,
    /// Wall time spent, in milliseconds.
    pub millis: u64,
}

impl Summary {
    /// Adds `other`'s counts to this summary's (the CLI's totals over several files).
    pub fn absorb(&mut self, other: &Summary) {
        self.events_in += other.events_in;
        self.cloudtrail += other.cloudtrail;
        self.other_json += other.other_json;
        self.text += other.text;
        self.invalid += other.invalid;
        self.vpcflow += other.vpcflow;
        self.guardduty += other.guardduty;
        self.resolver += other.resolver;
        self.waf += other.waf;
        self.chunks += other.chunks;
        self.built_bytes += other.built_bytes;
        self.payload_bytes += other.payload_bytes;
        self.delivery += other.delivery;
        self.failed += other.failed;
        self.signals += other.signals;
    }
}

/// A sink that writes every chunk's body to `W`: `replay --dry-run` prints the exact
/// bulk NDJSON that would be sent.
#[derive(Debug)]
pub struct WriterSink<W>(pub W);

impl<W: std::io::Write> Sink for WriterSink<W> {
    type Error = std::io::Error;

    async fn send(
        &mut self,
        chunk: &BulkChunk,
        _batch: &Batch<'_>,
        _delivery: &mut Delivery,
    ) -> Result<(), Self::Error> {
        self.0.write_all(chunk.body())
    }
}
