//! `replay` and `decode`: Lambda event files (the files `sam local invoke -e` takes) run
//! through the same dispatch as the function, for every source it accepts: CloudWatch Logs,
//! Kinesis, SQS, SNS and S3 notifications. The bulk NDJSON goes to stdout with `--dry-run`
//! (or a per-index summary), or to the cluster; Kinesis and SQS batches also print on stderr
//! the `batchItemFailures` the function would answer.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use cwl_indexer::handler::{Dispatched, HandlerError, Response, Source, events::Incoming};
use cwl_indexer::index::BulkChunk;
use cwl_indexer::pipeline::{Batch, Delivery, WriterSink};
use cwl_indexer::{CloudWatchLogsEvent, Config, Indexer, Sink, Summary, ingest};

/// How `replay` reports what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Print every bulk body (`--dry-run`).
    Ndjson,
    /// Print documents and bytes per index (`--dry-run --summary`).
    Summary,
    /// Send to the cluster and print the totals.
    Cluster,
}

/// An event file's text, read once.
pub struct EventFile {
    path: PathBuf,
    text: String,
}

impl EventFile {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            text,
        })
    }

    /// True when the event reads S3 objects (an S3, SNS or SQS notification), so the CLI
    /// needs an S3 client: `S3_ENDPOINT_URL` or AWS credentials.
    pub fn reads_s3(&self) -> bool {
        serde_json::from_str::<Incoming<'_>>(&self.text)
            .ok()
            .and_then(|incoming| Source::of(&incoming).map(|s| !matches!(s, Source::AwsLogs(_) | Source::Kinesis(_))))
            .unwrap_or(false)
    }
}

/// Runs every file through `indexer` into `sink`, printing what `output` asks for.
pub async fn replay<S: Sink>(indexer: &Indexer, files: &[EventFile], sink: &mut S, output: Output) -> Result<Summary> {
    let mut total = Summary::default();
    let mut failed_items = 0;
    for file in files {
        let done = indexer
            .dispatch(&file.text, sink, None)
            .await
            .map_err(|e| unaccepted(&file.path, e))?;
        log_summary(&file.path, &done.summary);
        total.absorb(&done.summary);
        failed_items += report_batch(&file.path, &done)?;
        done.result.with_context(|| format!("{}", file.path.display()))?;
    }
    if output == Output::Cluster {
        let d = &total.delivery;
        println!(
            "{} files, {} log events: {} indexed, {} already present, {} dead-lettered; {} requests, {} bytes sent ({} on the wire), {} item retries",
            files.len(),
            total.events_in,
            d.indexed,
            d.duplicates,
            d.dead_lettered,
            d.requests,
            d.bulk_bytes,
            d.wire_bytes,
            d.retried
        );
    }
    if failed_items > 0 {
        bail!(
            "{failed_items} batch items failed: the function would answer them as batchItemFailures (on stderr above)"
        );
    }
    Ok(total)
}

/// The error for an event that is no accepted shape, naming the file.
fn unaccepted(path: &Path, e: HandlerError) -> anyhow::Error {
    anyhow!(
        "{}: not a CloudWatch Logs Lambda event, nor a Kinesis, SQS, SNS or S3 notification event: {e}",
        path.display()
    )
}

/// Prints the `batchItemFailures` of a Kinesis or SQS batch on stderr, as the function
/// would answer them; returns how many there are.
fn report_batch(path: &Path, done: &Dispatched) -> Result<usize> {
    let Ok(Response::Batch(batch)) = &done.result else {
        return Ok(0);
    };
    eprintln!("{}: {}", path.display(), serde_json::to_string(batch)?);
    Ok(batch.batch_item_failures.len())
}

/// `--dry-run`: the exact bulk NDJSON on stdout.
pub async fn ndjson(indexer: &Indexer, files: &[EventFile]) -> Result<()> {
    let mut sink = WriterSink(BufWriter::new(std::io::stdout().lock()));
    let result = replay(indexer, files, &mut sink, Output::Ndjson).await;
    sink.0.flush()?;
    result.map(|_| ())
}

/// Counts documents and bytes per index, reading each item's action line back.
#[derive(Default)]
struct CountingSink {
    per_index: BTreeMap<String, (usize, usize)>,
}

impl Sink for CountingSink {
    type Error = serde_json::Error;

    async fn send(
        &mut self,
        chunk: &BulkChunk,
        _batch: &Batch<'_>,
        _delivery: &mut Delivery,
    ) -> Result<(), Self::Error> {
        for item in chunk.items() {
            let entry = self.per_index.entry(chunk.target(item)?.index).or_default();
            entry.0 += 1;
            entry.1 += item.range.len();
        }
        Ok(())
    }
}

/// `--dry-run --summary`: documents and bytes per index.
pub async fn summary(indexer: &Indexer, files: &[EventFile]) -> Result<()> {
    let mut sink = CountingSink::default();
    let total = replay(indexer, files, &mut sink, Output::Summary).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<32} {:>10} {:>12}", "index", "documents", "bulk bytes")?;
    for (index, (docs, bytes)) in &sink.per_index {
        writeln!(out, "{index:<32} {docs:>10} {bytes:>12}")?;
    }
    writeln!(
        out,
        "{} files, {} log events: {} CloudTrail, {} VPC flow, {} GuardDuty, {} Resolver, {} WAF, {} other JSON, {} text, {} unparseable; {} bulk bodies, {} bytes",
        files.len(),
        total.events_in,
        total.cloudtrail,
        total.vpcflow,
        total.guardduty,
        total.resolver,
        total.waf,
        total.other_json,
        total.text,
        total.invalid,
        total.chunks,
        total.built_bytes
    )?;
    Ok(())
}

fn log_summary(path: &Path, s: &Summary) {
    tracing::info!(
        file = %path.display(),
        message_type = s.message_type,
        events_in = s.events_in,
        indexed = s.delivery.indexed,
        already_present = s.delivery.duplicates,
        dead_lettered = s.delivery.dead_lettered,
        failed = s.failed,
        chunks = s.chunks,
        built_bytes = s.built_bytes,
        millis = s.millis,
        "replayed"
    );
}

/// Reads a CloudWatch Logs Lambda event file (`decode` takes only those).
fn read_event(path: &Path) -> Result<CloudWatchLogsEvent> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a CloudWatch Logs Lambda event", path.display()))
}

/// `decode`: the decoded CloudWatch Logs envelope of an event file, pretty-printed.
pub fn decode(config: &Config, path: &Path) -> Result<()> {
    let event = read_event(path)?;
    let mut payload = Vec::new();
    ingest::decode_payload(&event.awslogs.data, config.max_payload_bytes, &mut payload)
        .with_context(|| format!("{}", path.display()))?;
    ingest::parse_envelope(&payload).with_context(|| format!("{}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&payload)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    Ok(())
}
