//! The Lambda adapter, the only module that knows Lambda's types: it reads the event's
//! bytes into borrowed shapes (`events`), tells the source apart once ([`Source`], in
//! `source`), runs it through one file per source, and logs one summary line and one EMF
//! metrics line per invocation.
//!
//! - `awslogs`, `kinesis`, `sqs`, `sns`, `s3`, `test_event`, `batch_operations`: one file
//!   per [`Source`].
//! - `events`: the event shapes, borrowed from the invocation's bytes.

mod awslogs;
mod batch_operations;
pub mod events;
mod kinesis;
mod s3;
mod sns;
mod source;
mod sqs;
mod test_event;

use std::time::{Instant, SystemTime};

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::value::RawValue;

pub use crate::indexer::HandlerError;
use crate::indexer::Indexer;
use crate::ingest::CloudWatchLogsEvent;
use crate::pipeline::{Sink, Summary};
use events::Incoming;
pub use events::{BatchOperationsResponse, BatchResponse, ItemFailure, ResultCode, TaskResult};
pub use source::Source;

/// What the function answers.
// One per invocation, serialised straight away: a box would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// CloudWatch Logs and direct S3 or SNS events: what was done.
    Summary(Summary),
    /// Kinesis and SQS batches: the records to retry.
    Batch(BatchResponse),
    /// S3 Batch Operations: one result per task.
    BatchOperations(BatchOperationsResponse),
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

/// What [`Indexer::dispatch`] did with one event.
#[derive(Debug)]
pub struct Dispatched {
    /// The source the event was (`awslogs`, `kinesis`, `sqs`, `s3`, `batch-operations`), as logged.
    pub input: &'static str,
    /// What was done, even when the event failed part way.
    pub summary: Summary,
    /// The answer (the summary, or the batch items to retry), or why the event failed.
    pub result: Result<Response, HandlerError>,
}

impl Dispatched {
    /// The number of batch items reported for retry, or Batch Operations tasks not done.
    pub fn item_failures(&self) -> usize {
        match &self.result {
            Ok(Response::Batch(b)) => b.batch_item_failures.len(),
            Ok(Response::BatchOperations(b)) => b
                .results
                .iter()
                .filter(|r| r.result_code != ResultCode::Succeeded)
                .count(),
            _ => 0,
        }
    }
}

/// The Lambda adapter's entry points on the [`Indexer`].
impl Indexer {
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
    /// notifications direct, through SNS, or through SQS (with or without SNS), S3 Batch
    /// Operations tasks. Processes it
    /// before `context.deadline` and logs exactly one summary line.
    pub async fn handle_event<S: Sink>(
        &self,
        event: LambdaEvent<Box<RawValue>>,
        sink: &mut S,
    ) -> Result<Response, HandlerError> {
        let deadline = deadline_instant(event.context.deadline());
        // Boxed, once per invocation: the future nesting every stage is otherwise deeper than
        // the compiler's layout query limit in the `bootstrap` binary.
        let done = Box::pin(self.dispatch(event.payload.get(), sink, deadline)).await?;
        let error = done.result.as_ref().err().map(ToString::to_string);
        log_invocation(
            &event.context.request_id,
            done.input,
            &done.summary,
            done.item_failures(),
            error,
        );
        done.result
    }

    /// Runs one event, given as its JSON text, through the same dispatch the function uses
    /// (the CLI's `replay` calls this). Fails only when the event is no accepted shape;
    /// otherwise says what was done, even when that failed part way.
    pub async fn dispatch<S: Sink>(
        &self,
        payload: &str,
        sink: &mut S,
        deadline: Option<Instant>,
    ) -> Result<Dispatched, HandlerError> {
        let incoming: Incoming<'_> = serde_json::from_str(payload).map_err(HandlerError::Event)?;
        let source = Source::of(&incoming).ok_or(HandlerError::UnknownEvent)?;
        let mut summary = Summary::default();
        let result = self.run_source(source, sink, deadline, &mut summary).await;
        Ok(Dispatched {
            input: source.name(),
            summary,
            result,
        })
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
        vpcflow = s.vpcflow,
        guardduty = s.guardduty,
        resolver = s.resolver,
        waf = s.waf,
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
    let emf = crate::ops::emf(s, &function, chrono::Utc::now().timestamp_millis());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::ingest::envelope::tests::encode;
    use crate::ingest::{AwsLogs, CloudWatchLogsEvent};
    use crate::pipeline::WriterSink;

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
