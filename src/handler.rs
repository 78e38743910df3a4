//! The handler: the only module that knows Lambda's types. It runs the stages in order
//! (decode, classify and map, encode) and hands each bulk chunk to a [`Sink`].

use std::future::Future;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::alerts::{AlertError, Alerts};
use crate::bulk::{BulkChunk, BulkEncoder};
use crate::config::Config;
use crate::document::DocKind;
use crate::enrich::Enrichment;
use crate::envelope::{self, Envelope, EnvelopeError, MessageType};
use crate::s3::{S3Error, TrailStore};
use crate::trailfile::{self, KeyKind};

pub mod events;

pub use events::{BatchResponse, ItemFailure};
use events::{EventRecord, Incoming};

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
    /// An S3 object could not be read or is not a CloudTrail file.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The event (or an SQS body, an SNS message) is not JSON of an accepted shape.
    #[error("the event is not an accepted shape: {0}")]
    Event(serde_json::Error),
    /// The event is JSON, but none of the accepted sources.
    #[error("the event is none of: CloudWatch Logs, Kinesis, SQS, SNS, S3 notification")]
    UnknownEvent,
    /// An S3 notification arrived, but the function has no S3 client.
    #[error("an S3 notification needs an S3 client: AWS_REGION and the function's credentials")]
    NoTrailStore,
}

/// What reading one S3 object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// Read and indexed: this many compressed bytes.
    Read {
        /// The object's size as read.
        compressed: u64,
    },
    /// Not read: a digest file, or not a CloudTrail log file.
    Skipped(&'static str),
}

/// What the function answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// CloudWatch Logs and direct S3 or SNS events: what was done.
    Summary(Summary),
    /// Kinesis and SQS batches: the records to retry.
    Batch(BatchResponse),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        Self {
            error_type: match e {
                HandlerError::Envelope(_) => "EnvelopeError",
                HandlerError::Sink(_) => "DeliveryError",
                HandlerError::Alert(_) => "AlertError",
                HandlerError::S3(_) => "S3Error",
                HandlerError::Event(_) | HandlerError::UnknownEvent => "EventError",
                HandlerError::NoTrailStore => "ConfigError",
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
    trails: Option<TrailStore>,
    buffers: Mutex<Option<Buffers>>,
}

impl Indexer {
    /// An indexer for `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            enrichment: Enrichment::default(),
            alerts: None,
            trails: None,
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

    /// Reads CloudTrail files from S3 (notifications, back-fill).
    pub fn with_trail_store(mut self, trails: TrailStore) -> Self {
        self.trails = Some(trails);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Lambda entry point for a CloudWatch Logs event: process it before
    /// `context.deadline`, log exactly one summary line, return the summary.
    pub async fn handle<S: Sink>(
        &self,
        event: LambdaEvent<CloudWatchLogsEvent>,
        sink: &mut S,
    ) -> Result<Summary, HandlerError> {
        let deadline = deadline_instant(event.context.deadline());
        let (summary, result) = self.process(&event.payload, sink, deadline).await;
        let error = result.as_ref().err().map(ToString::to_string);
        log_invocation(&event.context.request_id, "awslogs", &summary, 0, error);
        result.map(|()| summary)
    }

    /// Lambda entry point for any accepted event, told apart by its shape: a CloudWatch
    /// Logs subscription, Kinesis records (CloudWatch Logs through a stream), S3
    /// notifications direct, through SNS, or through SQS (with or without SNS).
    ///
    /// Kinesis and SQS batches answer [`BatchResponse`]: only the records whose events
    /// could not all be indexed or dead-lettered are retried. A direct S3 or SNS event
    /// fails as a whole when any object fails (its redelivery finds the rest already
    /// indexed).
    pub async fn handle_event<S: Sink>(
        &self,
        event: LambdaEvent<Box<RawValue>>,
        sink: &mut S,
    ) -> Result<Response, HandlerError> {
        let deadline = deadline_instant(event.context.deadline());
        let request_id = event.context.request_id;
        let incoming: Incoming<'_> = serde_json::from_str(event.payload.get()).map_err(HandlerError::Event)?;
        if let Some(awslogs) = &incoming.awslogs {
            let (summary, result) = self.process_data(&awslogs.data, sink, deadline).await;
            let error = result.as_ref().err().map(ToString::to_string);
            log_invocation(&request_id, "awslogs", &summary, 0, error);
            return result.map(|()| Response::Summary(summary));
        }
        let first = incoming.records.first();
        let (input, response, summary) = if first.is_some_and(|r| r.kinesis.is_some()) {
            let (summary, failures) = self.process_kinesis(&incoming.records, sink, deadline).await;
            ("kinesis", Ok(Response::Batch(failures)), summary)
        } else if first.is_some_and(|r| r.body.is_some()) {
            let (summary, failures) = self.process_sqs(&incoming.records, sink, deadline).await;
            ("sqs", Ok(Response::Batch(failures)), summary)
        } else if first.is_some_and(|r| r.s3.is_some() || r.sns.is_some()) {
            let mut summary = Summary::default();
            let result = self
                .process_notification(&incoming, sink, deadline, &mut summary)
                .await
                .map(|()| Response::Summary(summary.clone()));
            ("s3", result, summary)
        } else if incoming.event.as_deref() == Some("s3:TestEvent") {
            tracing::info!("s3:TestEvent: skipped");
            ("s3", Ok(Response::Summary(Summary::default())), Summary::default())
        } else {
            return Err(HandlerError::UnknownEvent);
        };
        let failures = match &response {
            Ok(Response::Batch(b)) => b.batch_item_failures.len(),
            _ => 0,
        };
        let error = response.as_ref().err().map(ToString::to_string);
        log_invocation(&request_id, input, &summary, failures, error);
        response
    }

    /// Each Kinesis record on its own: a CloudWatch Logs envelope, gzip; a record that
    /// cannot be decoded, or whose events are not all indexed or dead-lettered, is
    /// reported by its sequence number.
    async fn process_kinesis<S: Sink>(
        &self,
        records: &[EventRecord<'_>],
        sink: &mut S,
        deadline: Option<Instant>,
    ) -> (Summary, BatchResponse) {
        let mut total = Summary::default();
        let mut failures = BatchResponse::default();
        for record in records {
            let Some(kinesis) = &record.kinesis else {
                continue;
            };
            let (summary, result) = self.process_data(&kinesis.data, sink, deadline).await;
            total.absorb(&summary);
            if let Err(e) = result {
                tracing::error!(sequence_number = %kinesis.sequence_number, error = %e, "kinesis record failed: reported for retry");
                failures.batch_item_failures.push(ItemFailure {
                    item_identifier: kinesis.sequence_number.to_string(),
                });
            }
        }
        (total, failures)
    }

    /// Each SQS message on its own: an S3 notification, or an SNS envelope around one; a
    /// message that is not one (so it will never succeed) or whose objects fail is reported
    /// by its message id, and the queue's redrive policy keeps it in the dead-letter queue.
    async fn process_sqs<S: Sink>(
        &self,
        records: &[EventRecord<'_>],
        sink: &mut S,
        deadline: Option<Instant>,
    ) -> (Summary, BatchResponse) {
        let mut total = Summary::default();
        let mut failures = BatchResponse::default();
        for record in records {
            let id = record.message_id.as_deref().unwrap_or_default();
            let result = match serde_json::from_str::<Incoming<'_>>(record.body.as_deref().unwrap_or_default()) {
                Ok(body) => self.process_notification(&body, sink, deadline, &mut total).await,
                Err(e) => Err(HandlerError::Event(e)),
            };
            if let Err(e) = result {
                tracing::error!(message_id = id, error = %e, "sqs message failed: left in the queue");
                failures.batch_item_failures.push(ItemFailure {
                    item_identifier: id.to_owned(),
                });
            }
        }
        (total, failures)
    }

    /// An S3 notification (or an SNS message or envelope carrying one, or the test event):
    /// reads and indexes each created object. Every object is tried; the first error is
    /// returned.
    fn process_notification<'s, S: Sink>(
        &'s self,
        incoming: &'s Incoming<'_>,
        sink: &'s mut S,
        deadline: Option<Instant>,
        total: &'s mut Summary,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + 's>> {
        // Boxed: an SNS message nests a notification, so this recurses (once).
        Box::pin(async move {
            if incoming.event.as_deref() == Some("s3:TestEvent") {
                tracing::info!("s3:TestEvent: skipped");
                return Ok(());
            }
            if let Some(message) = &incoming.message {
                let inner: Incoming<'_> = serde_json::from_str(message).map_err(HandlerError::Event)?;
                return self.process_notification(&inner, sink, deadline, total).await;
            }
            if incoming.records.is_empty() {
                return Err(HandlerError::UnknownEvent);
            }
            let mut first_error = None;
            for record in &incoming.records {
                let result = if let Some(sns) = &record.sns {
                    match serde_json::from_str::<Incoming<'_>>(&sns.message) {
                        Ok(inner) => self.process_notification(&inner, sink, deadline, total).await,
                        Err(e) => Err(HandlerError::Event(e)),
                    }
                } else if let Some(s3) = &record.s3 {
                    let key = events::decode_key(&s3.object.key);
                    let name = record.event_name.as_deref().unwrap_or_default();
                    if name.starts_with("ObjectCreated") {
                        let (summary, result) = self.process_object(&s3.bucket.name, &key, sink, deadline).await;
                        total.absorb(&summary);
                        result.map(|_| ())
                    } else {
                        tracing::info!(bucket = %s3.bucket.name, key, event_name = name, "not an ObjectCreated notification: skipped");
                        Ok(())
                    }
                } else {
                    Err(HandlerError::UnknownEvent)
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "notification record failed");
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    /// Reads `s3://bucket/key` (a CloudTrail file) and indexes its records, with the same
    /// documents and `_id`s the CloudWatch Logs path gives them. Digest files and keys that
    /// are not CloudTrail log files are skipped with a log line.
    ///
    /// The back-fill command calls this directly, concurrently (each call takes its own
    /// buffers when another holds the cached ones).
    pub async fn process_object<S: Sink>(
        &self,
        bucket: &str,
        key: &str,
        sink: &mut S,
        deadline: Option<Instant>,
    ) -> (Summary, Result<ObjectOutcome, HandlerError>) {
        let started = Instant::now();
        let mut buffers = self.take_buffers();
        let mut summary = Summary::default();
        let result = self
            .read_object(bucket, key, sink, deadline, &mut buffers, &mut summary)
            .await;
        self.put_buffers(buffers);
        let result = self.finish(&mut summary, started, result);
        (summary, result)
    }

    async fn read_object<S: Sink>(
        &self,
        bucket: &str,
        key: &str,
        sink: &mut S,
        deadline: Option<Instant>,
        buffers: &mut Buffers,
        summary: &mut Summary,
    ) -> Result<ObjectOutcome, HandlerError> {
        let account = match trailfile::classify_key(key) {
            KeyKind::Trail(t) => t.account,
            KeyKind::Digest => {
                tracing::info!(bucket, key, "CloudTrail digest file: skipped");
                return Ok(ObjectOutcome::Skipped("digest"));
            }
            KeyKind::Other => {
                tracing::info!(bucket, key, "not a CloudTrail log file: skipped");
                return Ok(ObjectOutcome::Skipped("not a CloudTrail log file"));
            }
        };
        let store = self.trails.as_ref().ok_or(HandlerError::NoTrailStore)?;
        let compressed = store
            .read_gunzipped(bucket, key, self.config.max_trail_file_bytes, &mut buffers.payload)
            .await?;
        let source = trailfile::Source {
            bucket,
            key,
            account: Some(account),
        };
        let envelope = trailfile::parse(&buffers.payload, source).map_err(S3Error::from)?;
        summary.message_type = "S3_OBJECT".into();
        summary.events_in = envelope.log_events.len();
        summary.payload_bytes = buffers.payload.len();
        self.deliver(&envelope, sink, deadline, &mut buffers.chunk, summary)
            .await?;
        Ok(ObjectOutcome::Read { compressed })
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
        self.process_data(&event.awslogs.data, sink, deadline).await
    }

    /// [`Self::process`] for `base64(gzip(envelope))`, wherever it came from (`awslogs.data`,
    /// a Kinesis record's `data`).
    pub async fn process_data<S: Sink>(
        &self,
        data: &str,
        sink: &mut S,
        deadline: Option<Instant>,
    ) -> (Summary, Result<(), HandlerError>) {
        let started = Instant::now();
        // Take the buffers out so no lock is held across an await; a concurrent caller
        // (the CLI's tests, say) simply allocates its own.
        let mut buffers = self.take_buffers();
        let mut summary = Summary::default();
        let result = self.run(data, sink, deadline, &mut buffers, &mut summary).await;
        self.put_buffers(buffers);
        let result = self.finish(&mut summary, started, result);
        (summary, result)
    }

    /// Sets the time spent and, on failure, how many events were left unsettled.
    fn finish<T>(
        &self,
        summary: &mut Summary,
        started: Instant,
        result: Result<T, HandlerError>,
    ) -> Result<T, HandlerError> {
        summary.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if result.is_err() {
            let d = &summary.delivery;
            let settled = d.indexed + d.duplicates + d.dead_lettered;
            summary.failed = summary.events_in.saturating_sub(settled);
        }
        result
    }

    async fn run<S: Sink>(
        &self,
        data: &str,
        sink: &mut S,
        deadline: Option<Instant>,
        buffers: &mut Buffers,
        summary: &mut Summary,
    ) -> Result<(), HandlerError> {
        envelope::decode_payload(data, self.config.max_payload_bytes, &mut buffers.payload)?;
        let envelope = envelope::parse_envelope(&buffers.payload)?;
        summary.message_type = envelope.message_type.to_string();
        summary.events_in = envelope.log_events.len();
        summary.payload_bytes = buffers.payload.len();
        if envelope.kind()? == MessageType::Control {
            summary.events_in = 0;
            return Ok(());
        }
        self.deliver(&envelope, sink, deadline, &mut buffers.chunk, summary)
            .await
    }

    /// Encodes an envelope's events (from CloudWatch Logs or a CloudTrail file), sends every
    /// chunk to `sink`, then publishes the alert for its rule matches.
    async fn deliver<S: Sink>(
        &self,
        envelope: &Envelope<'_>,
        sink: &mut S,
        deadline: Option<Instant>,
        chunk: &mut BulkChunk,
        summary: &mut Summary,
    ) -> Result<(), HandlerError> {
        let batch = Batch { envelope, deadline };
        let mut encoder = BulkEncoder::new(&self.config, envelope).with_enrichment(&self.enrichment);
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

/// Logs one summary line for an invocation and writes its EMF metrics line.
fn log_invocation(request_id: &str, input: &str, s: &Summary, item_failures: usize, error: Option<String>) {
    let d = &s.delivery;
    tracing::info!(
        request_id,
        input,
        message_type = s.message_type,
        events_in = s.events_in,
        indexed = d.indexed,
        already_present = d.duplicates,
        retried = d.retried,
        dead_lettered = d.dead_lettered,
        failed = s.failed,
        item_failures,
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
    let emf = crate::metrics::emf(s, &function, chrono::Utc::now().timestamp_millis());
    println!("{emf}");
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

    fn invoke(indexer: &Indexer, json: &str) -> (Result<Response, HandlerError>, Vec<u8>) {
        let mut sink = WriterSink(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let payload = RawValue::from_string(json.to_owned()).unwrap();
        let event = LambdaEvent::new(payload, lambda_runtime::Context::default());
        let result = rt.block_on(indexer.handle_event(event, &mut sink));
        (result, sink.0)
    }

    const DATA: &str = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"a","timestamp":1,"message":"{\"eventVersion\":\"1\",\"eventID\":\"x\"}"}]}"#;

    #[test]
    fn kinesis_records_fail_one_by_one() {
        let good = encode(DATA.as_bytes());
        let json = format!(
            r#"{{"Records":[{{"kinesis":{{"data":"{good}","sequenceNumber":"1"}}}},{{"kinesis":{{"data":"bm90IGd6aXA=","sequenceNumber":"2"}}}},{{"kinesis":{{"data":"{good}","sequenceNumber":"3"}}}}]}}"#
        );
        let (result, out) = invoke(&Indexer::new(Config::default()), &json);
        let Ok(Response::Batch(batch)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            batch.batch_item_failures,
            vec![ItemFailure {
                item_identifier: "2".into()
            }]
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 4);
    }

    #[test]
    fn awslogs_through_the_dispatcher_answers_the_summary() {
        let json = format!(r#"{{"awslogs":{{"data":"{}"}}}}"#, encode(DATA.as_bytes()));
        let (result, out) = invoke(&Indexer::new(Config::default()), &json);
        let Ok(Response::Summary(s)) = result else {
            panic!("{result:?}")
        };
        assert_eq!((s.events_in, s.cloudtrail), (1, 1));
        assert!(!out.is_empty());
    }

    #[test]
    fn sqs_messages_skip_test_events_and_digests_and_report_garbage() {
        let digest = r#"{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/06/d.json.gz\"}}}]}"#;
        let json = format!(
            r#"{{"Records":[{{"messageId":"t","body":"{{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\"}}"}},{{"messageId":"d","body":"{digest}"}},{{"messageId":"g","body":"garbage"}},{{"messageId":"n","body":"{{\"Type\":\"Notification\",\"Message\":\"{{}}\"}}"}}]}}"#
        );
        let (result, out) = invoke(&Indexer::new(Config::default()), &json);
        let Ok(Response::Batch(batch)) = result else {
            panic!("{result:?}")
        };
        let ids: Vec<&str> = batch
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["g", "n"]);
        assert!(out.is_empty());
    }

    #[test]
    fn a_trail_file_without_an_s3_client_fails_and_unknown_events_are_refused() {
        let json = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/06/f.json.gz"}}}]}"#;
        let (result, _) = invoke(&Indexer::new(Config::default()), json);
        assert!(matches!(result, Err(HandlerError::NoTrailStore)), "{result:?}");
        let (result, _) = invoke(&Indexer::new(Config::default()), r#"{"hello":"world"}"#);
        assert!(matches!(result, Err(HandlerError::UnknownEvent)), "{result:?}");
        let (result, _) = invoke(&Indexer::new(Config::default()), r#"{"Records":[{"s3":{}}]}"#);
        assert!(matches!(result, Err(HandlerError::Event(_))), "{result:?}");
    }
}
