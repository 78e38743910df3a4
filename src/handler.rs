//! The handler: the only module that knows Lambda's types. It runs the stages in order
//! (decode, classify and map, encode) and hands each bulk chunk to a [`Sink`].

use std::future::Future;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};

use crate::alerts::{AlertError, Alerts};
use crate::bulk::{BulkChunk, BulkEncoder};
use crate::config::Config;
use crate::document::DocKind;
use crate::enrich::Enrichment;
use crate::envelope::{self, Envelope, EnvelopeError, MessageType};

/// The event CloudWatch Logs sends to a subscribed Lambda function.
///
/// `aws_lambda_events::cloudwatch_logs::LogsEvent` decodes `data` inside its own
/// `Deserialize` with no decompressed-size cap, so we take the base64 text as it is and
/// decode it through [`envelope::decode_payload`].
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CloudWatchLogsEvent {
    /// The subscription payload.
    pub awslogs: AwsLogs,
}

/// `awslogs` of a [`CloudWatchLogsEvent`].
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AwsLogs {
    /// `base64(gzip(envelope JSON))`.
    pub data: String,
}

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
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The payload is not a usable envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The sink could not deliver a chunk.
    #[error("delivery failed: {0}")]
    Sink(Box<dyn std::error::Error + Send + Sync>),
    /// The alert could not be published.
    #[error(transparent)]
    Alert(#[from] AlertError),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        Self {
            error_type: match e {
                HandlerError::Envelope(_) => "EnvelopeError",
                HandlerError::Sink(_) => "DeliveryError",
                HandlerError::Alert(_) => "AlertError",
            }
            .to_owned(),
            error_message: e.to_string(),
        }
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
    /// Detection rule matches.
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
        self.chunks += other.chunks;
        self.built_bytes += other.built_bytes;
        self.payload_bytes += other.payload_bytes;
        self.delivery += other.delivery;
        self.failed += other.failed;
        self.signals += other.signals;
    }
}

/// Buffers kept between invocations of a warm container.
#[derive(Debug, Default)]
struct Buffers {
    payload: Vec<u8>,
    chunk: BulkChunk,
}

/// The indexer: configuration, enrichment and alerts, built once at cold start, and
/// reusable buffers.
#[derive(Debug)]
pub struct Indexer {
    config: Config,
    enrichment: Enrichment,
    alerts: Option<Alerts>,
    buffers: Mutex<Option<Buffers>>,
}

impl Indexer {
    /// An indexer for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            enrichment: Enrichment::default(),
            alerts: None,
            buffers: Mutex::new(None),
        }
    }

    /// Adds GeoIP enrichment and detections to CloudTrail documents.
    pub fn with_enrichment(mut self, enrichment: Enrichment) -> Self {
        self.enrichment = enrichment;
        self
    }

    /// Publishes an alert per invocation for rule matches.
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Lambda entry point: process the event before `context.deadline`, log exactly one
    /// summary line, return the summary.
    pub async fn handle<S: Sink>(
        &self,
        event: LambdaEvent<CloudWatchLogsEvent>,
        sink: &mut S,
    ) -> Result<Summary, HandlerError> {
        let deadline = deadline_instant(event.context.deadline());
        let request_id = event.context.request_id;
        let (summary, result) = self.process(&event.payload, sink, deadline).await;
        let s = &summary;
        let d = &s.delivery;
        let error = result.as_ref().err().map(ToString::to_string);
        tracing::info!(
            request_id,
            message_type = s.message_type,
            events_in = s.events_in,
            indexed = d.indexed,
            already_present = d.duplicates,
            retried = d.retried,
            dead_lettered = d.dead_lettered,
            failed = s.failed,
            cloudtrail = s.cloudtrail,
            other_json = s.other_json,
            text = s.text,
            invalid = s.invalid,
            requests = d.requests,
            splits = d.splits,
            repaired = d.repaired,
            signals = s.signals,
            bytes_sent = d.bulk_bytes,
            bytes_compressed = d.wire_bytes,
            millis = s.millis,
            error,
            "invocation summary"
        );
        // Metrics go to stdout as one raw JSON line, which CloudWatch reads as EMF.
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
        let emf = crate::metrics::emf(&summary, &function, chrono::Utc::now().timestamp_millis());
        println!("{emf}");
        result.map(|()| summary)
    }

    /// Decodes `event`, encodes its log events and sends every chunk to `sink`, stopping
    /// in time for `deadline`. Returns what was done, even when it fails part way.
    ///
    /// The CLI calls this directly; the Lambda handler calls it through [`Self::handle`].
    pub async fn process<S: Sink>(
        &self,
        event: &CloudWatchLogsEvent,
        sink: &mut S,
        deadline: Option<Instant>,
    ) -> (Summary, Result<(), HandlerError>) {
        let started = Instant::now();
        // Take the buffers out so no lock is held across an await; a concurrent caller
        // (the CLI's tests, say) simply allocates its own.
        let mut buffers = self.take_buffers();
        let mut summary = Summary::default();
        let result = self.run(event, sink, deadline, &mut buffers, &mut summary).await;
        self.put_buffers(buffers);
        summary.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if result.is_err() {
            let d = &summary.delivery;
            let settled = d.indexed + d.duplicates + d.dead_lettered;
            summary.failed = summary.events_in.saturating_sub(settled);
        }
        (summary, result)
    }

    async fn run<S: Sink>(
        &self,
        event: &CloudWatchLogsEvent,
        sink: &mut S,
        deadline: Option<Instant>,
        buffers: &mut Buffers,
        summary: &mut Summary,
    ) -> Result<(), HandlerError> {
        envelope::decode_payload(&event.awslogs.data, self.config.max_payload_bytes, &mut buffers.payload)?;
        let envelope = envelope::parse_envelope(&buffers.payload)?;
        summary.message_type = envelope.message_type.to_string();
        summary.events_in = envelope.log_events.len();
        summary.payload_bytes = buffers.payload.len();
        if envelope.kind()? == MessageType::Control {
            summary.events_in = 0;
            return Ok(());
        }
        let batch = Batch {
            envelope: &envelope,
            deadline,
        };
        let mut encoder = BulkEncoder::new(&self.config, &envelope).with_enrichment(&self.enrichment);
        let chunk = &mut buffers.chunk;
        while encoder.next_chunk(chunk) {
            summary.chunks += 1;
            summary.built_bytes += chunk.body().len();
            for item in chunk.items() {
                match item.kind {
                    DocKind::CloudTrail => summary.cloudtrail += 1,
                    DocKind::OtherJson => summary.other_json += 1,
                    DocKind::Text => summary.text += 1,
                    DocKind::Invalid => summary.invalid += 1,
                }
            }
            sink.send(chunk, &batch, &mut summary.delivery)
                .await
                .map_err(|e| HandlerError::Sink(Box::new(e)))?;
        }
        let matches = &encoder.signals().matches;
        summary.signals = matches.len();
        // After delivery: the documents an alert links to are in their indices. A failed
        // publish fails the invocation, so that the retry (409s, then a new publish) keeps
        // the alert rather than losing it.
        if let Some(alerts) = &self.alerts
            && !matches.is_empty()
        {
            summary.alert_message_id = alerts.publish(matches, &envelope.log_group).await?;
        }
        Ok(())
    }

    fn take_buffers(&self) -> Buffers {
        self.buffers.lock().ok().and_then(|mut b| b.take()).unwrap_or_default()
    }

    fn put_buffers(&self, buffers: Buffers) {
        if let Ok(mut slot) = self.buffers.lock() {
            *slot = Some(buffers);
        }
    }
}

/// `context.deadline` as an `Instant`, for timeouts measured on the monotonic clock.
///
/// A deadline already past when the invocation starts cannot come from Lambda (which sends
/// the absolute time the invocation ends); some local emulators send a relative number
/// instead. It is ignored, with a warning, leaving the attempt budget as the only bound,
/// rather than failing every invocation unsent.
fn deadline_instant(deadline: SystemTime) -> Option<Instant> {
    match deadline.duration_since(SystemTime::now()) {
        Ok(left) if !left.is_zero() => Some(Instant::now() + left),
        _ => {
            tracing::warn!(?deadline, "the invocation's deadline is already past: ignoring it");
            None
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::encode;

    fn event(json: &str) -> CloudWatchLogsEvent {
        CloudWatchLogsEvent {
            awslogs: AwsLogs {
                data: encode(json.as_bytes()),
            },
        }
    }

    fn run(indexer: &Indexer, ev: &CloudWatchLogsEvent) -> Result<(Summary, Vec<u8>), HandlerError> {
        let mut sink = WriterSink(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (summary, result) = rt.block_on(indexer.process(ev, &mut sink, None));
        result?;
        Ok((summary, sink.0))
    }

    #[test]
    fn a_deadline_already_past_is_ignored() {
        use std::time::Duration;
        assert!(deadline_instant(SystemTime::UNIX_EPOCH + Duration::from_millis(600_000)).is_none());
        let later = deadline_instant(SystemTime::now() + Duration::from_secs(60)).unwrap();
        assert!(later > Instant::now() + Duration::from_secs(55));
    }

    #[test]
    fn control_message_produces_nothing() {
        let ev = event(
            r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination."}]}"#,
        );
        let (summary, out) = run(&Indexer::new(Config::default()), &ev).unwrap();
        assert!(out.is_empty());
        assert_eq!(summary.message_type, "CONTROL_MESSAGE");
        assert_eq!(summary.chunks, 0);
    }

    #[test]
    fn data_message_produces_one_item_per_event() {
        let ev = event(
            r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"a","timestamp":1,"message":"{\"eventVersion\":\"1\",\"eventID\":\"x\"}"},{"id":"b","timestamp":2,"message":"text"},{"id":"c","timestamp":3,"message":"{\"broken"}]}"#,
        );
        let indexer = Indexer::new(Config::default());
        let (summary, out) = run(&indexer, &ev).unwrap();
        assert_eq!(
            (summary.events_in, summary.cloudtrail, summary.text, summary.invalid),
            (3, 1, 1, 1)
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 6);
        assert_eq!(summary.built_bytes, out.len());
        // A warm container gives the same answer from reused buffers.
        assert_eq!(run(&indexer, &ev).unwrap().1, out);
    }

    #[test]
    fn broken_payload_is_an_error() {
        let ev = CloudWatchLogsEvent {
            awslogs: AwsLogs { data: "%%%".into() },
        };
        assert!(matches!(
            run(&Indexer::new(Config::default()), &ev),
            Err(HandlerError::Envelope(_))
        ));
    }
}
