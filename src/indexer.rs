//! The indexer: runs the stages for one payload (`awslogs.data`, a Kinesis record's data) or
//! one CloudTrail S3 object, decode, classify, enrich, encode, and hands each bulk chunk to a
//! [`Sink`]. Knows nothing of Lambda; `handler` adapts it to Lambda's events.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::Config;
use crate::index::{BulkChunk, BulkEncoder, DocKind};
use crate::ingest::{self, CloudWatchLogsEvent, Envelope, EnvelopeError, KeyKind, MessageType, S3Error, TrailStore};
use crate::pipeline::{Batch, Sink, Summary};
use crate::signals::{AlertError, Alerts, Enrichment};

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
    #[error("the event is none of: CloudWatch Logs, Kinesis, SQS, SNS, S3 notification, S3 Batch Operations")]
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

    /// The S3 client for CloudTrail files, if one was wired.
    pub fn trail_store(&self) -> Option<&TrailStore> {
        self.trails.as_ref()
    }

    /// The GeoIP databases and rules in force.
    pub fn enrichment(&self) -> &Enrichment {
        &self.enrichment
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
        let account = match ingest::classify_key(key) {
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
        let source = ingest::trail::Source {
            bucket,
            key,
            account: Some(account),
        };
        let envelope = ingest::trail::parse(&buffers.payload, source).map_err(S3Error::from)?;
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
        ingest::decode_payload(data, self.config.max_payload_bytes, &mut buffers.payload)?;
        let envelope = ingest::parse_envelope(&buffers.payload)?;
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
        let full_text = self
            .config
            .full_text_subtrees
            .enabled(sink.subtrees_indexed(deadline).await);
        let mut encoder = BulkEncoder::new(&self.config, envelope)
            .with_enrichment(&self.enrichment)
            .with_full_text(full_text);
        while encoder.next_chunk(chunk) {
            summary.chunks += 1;
            summary.built_bytes += chunk.body().len();
            for item in chunk.items() {
                match item.kind {
                    DocKind::CloudTrail => summary.cloudtrail += 1,
                    DocKind::OtherJson => summary.other_json += 1,
                    DocKind::Text => summary.text += 1,
                    DocKind::Invalid => summary.invalid += 1,
                    DocKind::VpcFlow => summary.vpcflow += 1,
                    DocKind::GuardDuty => summary.guardduty += 1,
                    DocKind::Resolver => summary.resolver += 1,
                    DocKind::Waf => summary.waf += 1,
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
