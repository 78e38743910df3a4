//! S3 Batch Operations (`LambdaInvoke`, schema 1.0 and 2.0): each task names one CloudTrail
//! file, read through the size-capped stream and indexed. The answer is one result per task;
//! the invocation itself never fails, since Batch Operations retries only `TemporaryFailure`.

use std::time::{Duration, Instant};

use super::events::{self, BatchEvent, BatchOperationsResponse, BatchTask, ResultCode, TaskResult};
use super::source::Run;
use crate::config::defaults;
use crate::indexer::{HandlerError, ObjectOutcome};
use crate::ingest::{GetFailure, S3Error, TrailFileError};
use crate::pipeline::Sink;

/// The longest result string kept: one line of the completion report, never a page.
const MAX_RESULT: usize = 600;

/// Runs each task in turn, adding what was done to `total`. A task is cut off half the
/// deadline margin before `deadline` (the sink stops its own retries a whole margin before),
/// and tasks not started by then are answered `TemporaryFailure`: the function answers in
/// time rather than being timed out, which Batch Operations would count as a permanent failure.
pub(crate) async fn process<S: Sink>(run: &mut Run<'_, S>, event: BatchEvent<'_, '_>) -> BatchOperationsResponse {
    let margin = run
        .indexer
        .config()
        .sink
        .as_ref()
        .map_or(Duration::from_millis(defaults::DEADLINE_MARGIN_MS), |s| {
            s.retry.deadline_margin
        });
    let cutoff = run.deadline.map(|d| d.checked_sub(margin / 2).unwrap_or(d));
    let mut results = Vec::with_capacity(event.tasks.len());
    for task in event.tasks {
        let (code, text) = if cutoff.is_some_and(|c| Instant::now() >= c) {
            (
                ResultCode::TemporaryFailure,
                "not started: the invocation's deadline was near".to_owned(),
            )
        } else {
            run_task(run, task, cutoff).await
        };
        let text = one_line(&text);
        tracing::info!(job_id = event.job_id, task_id = %task.task_id, result_code = ?code, result = %text, "batch operations task");
        results.push(TaskResult {
            task_id: task.task_id.clone().into_owned(),
            result_code: code,
            result_string: text,
        });
    }
    BatchOperationsResponse {
        invocation_schema_version: event.schema.to_owned(),
        treat_missing_keys_as: ResultCode::TemporaryFailure,
        invocation_id: event.invocation_id.to_owned(),
        results,
    }
}

/// One task: its file read and indexed, with the result code and string it earns.
async fn run_task<S: Sink>(
    run: &mut Run<'_, S>,
    task: &BatchTask<'_>,
    cutoff: Option<Instant>,
) -> (ResultCode, String) {
    let Some(bucket) = task.bucket() else {
        return (ResultCode::PermanentFailure, "no bucket in task".into());
    };
    let Some(raw_key) = task.s3_key.as_deref().filter(|k| !k.is_empty()) else {
        return (
            ResultCode::PermanentFailure,
            format!("no key in task (bucket {bucket})"),
        );
    };
    // Keys arrive URL-encoded; form-decoding (`+` a space) as Powertools and AWS's example do.
    let key = events::decode_key(raw_key);
    let url = format!("s3://{bucket}/{key}");
    let work = run.indexer.process_object(bucket, &key, run.sink, run.deadline);
    let (summary, result) = match cutoff {
        Some(c) => match tokio::time::timeout_at(c.into(), work).await {
            Ok(done) => done,
            Err(_) => {
                return (
                    ResultCode::TemporaryFailure,
                    format!(
                        "the invocation's deadline came before the file was done (a retry duplicates nothing): {url}"
                    ),
                );
            }
        },
        None => work.await,
    };
    run.total.absorb(&summary);
    match result {
        Ok(ObjectOutcome::Read { .. }) => {
            let d = &summary.delivery;
            let mut text = format!(
                "{} events: {} indexed, {} already present, {} dead-lettered",
                summary.events_in, d.indexed, d.duplicates, d.dead_lettered
            );
            // CloudTrail never overwrites a log file: the current version is the one named.
            if let Some(version) = task.s3_version_id.as_deref().filter(|v| !v.is_empty()) {
                text.push_str(&format!(" (read the current version; the task named {version})"));
            }
            (ResultCode::Succeeded, text)
        }
        Ok(ObjectOutcome::Skipped(why)) => {
            let what = if why == "digest" {
                "not a CloudTrail log file (a digest file)"
            } else {
                "not a CloudTrail log file"
            };
            (ResultCode::PermanentFailure, format!("{what}: {url}"))
        }
        Err(e) => failure(&e, &url),
    }
}

/// The result of a task that failed: retryable or not, and why.
fn failure(e: &HandlerError, url: &str) -> (ResultCode, String) {
    use ResultCode::{PermanentFailure, TemporaryFailure};
    match e {
        HandlerError::S3(S3Error::File(file)) => {
            let why = match file {
                TrailFileError::TooLarge { cap, .. } => {
                    format!("over the size cap (decompressed beyond MAX_TRAIL_FILE_BYTES={cap})")
                }
                TrailFileError::Gzip { .. } => "not gzip data".to_owned(),
                TrailFileError::Truncated { .. } => "truncated gzip stream".to_owned(),
                TrailFileError::Json { source, .. } => {
                    format!("not a CloudTrail file ({{\"Records\":[...]}}): {source}")
                }
            };
            (PermanentFailure, format!("{why}: {url}"))
        }
        HandlerError::S3(S3Error::Get { failure, .. }) if *failure != GetFailure::Transient => {
            let why = match failure {
                GetFailure::NoSuchKey => "no such key".to_owned(),
                GetFailure::NoSuchBucket => "no such bucket".to_owned(),
                GetFailure::AccessDenied => "access denied to the function's role".to_owned(),
                GetFailure::Refused | GetFailure::Transient => e.to_string(),
            };
            (PermanentFailure, format!("{why}: {url}"))
        }
        HandlerError::S3(s3) if s3.is_transient() => (TemporaryFailure, s3.to_string()),
        // The cluster's back-pressure outlasting the retries, its 5xx or timeouts, the deadline:
        // the file is fine, a later try lands it (what landed now is already present then).
        HandlerError::Sink(_) => (TemporaryFailure, format!("{e}: {url}")),
        // Indexed, but the alert was not published: the retry publishes it.
        HandlerError::Alert(_) => (TemporaryFailure, format!("{e}: {url}")),
        HandlerError::NoTrailStore => (PermanentFailure, format!("{e}: {url}")),
        HandlerError::S3(_) | HandlerError::Envelope(_) | HandlerError::Event(_) | HandlerError::UnknownEvent => {
            (PermanentFailure, format!("{e}: {url}"))
        }
    }
}

/// `text` on one line, at most [`MAX_RESULT`] bytes.
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() <= MAX_RESULT {
        return line;
    }
    let mut end = MAX_RESULT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Response;
    use crate::pipeline::WriterSink;
    use crate::{Config, Indexer};
    use serde_json::Value;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/inputs/batch-operations/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Runs `json` through the dispatcher of an indexer with no S3 client and no cluster.
    fn answer(json: &str, deadline: Option<Instant>) -> (&'static str, BatchOperationsResponse) {
        let indexer = Indexer::new(Config::default());
        let mut sink = WriterSink(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let done = rt.block_on(indexer.dispatch(json, &mut sink, deadline)).unwrap();
        assert!(sink.0.is_empty(), "nothing was read, so nothing is sent");
        match done.result {
            Ok(Response::BatchOperations(r)) => (done.input, r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_task_is_answered_with_its_id_and_the_request_is_echoed() {
        let (input, response) = answer(&fixture("request-2.0-tasks.json"), None);
        assert_eq!(input, "batch-operations");
        let expected: Value = serde_json::from_str(&fixture("expected-response-2.0-tasks.json")).unwrap();
        let got = serde_json::to_value(&response).unwrap();
        assert_eq!(got["invocationSchemaVersion"], "2.0");
        assert_eq!(got["invocationId"], expected["invocationId"]);
        assert_eq!(got["treatMissingKeysAs"], "TemporaryFailure");
        let results = got["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        for (got, want) in results.iter().zip(expected["results"].as_array().unwrap()) {
            assert_eq!(got["taskId"], want["taskId"]);
        }
        // The digest and the other key are refused from their keys alone, as the fixture says,
        // with the key decoded (`%20` a space, `%2B` a plus).
        assert_eq!(results[1], expected["results"][1]);
        assert_eq!(results[2], expected["results"][2]);
        // Without an S3 client a CloudTrail file cannot be read by this function at all.
        assert_eq!(results[0]["resultCode"], "PermanentFailure", "{}", results[0]);
        assert!(
            results[0]["resultString"]
                .as_str()
                .unwrap()
                .contains("needs an S3 client")
        );
    }

    #[test]
    fn schema_1_0_names_the_bucket_by_arn() {
        let json = fixture("request-1.0.json").replace(
            "CloudTrail/us-east-1/2024/01/15/111122223333_CloudTrail_us-east-1_20240115T0000Z_fixture.json.gz",
            "CloudTrail-Digest/us-east-1/2024/01/15/d.json.gz",
        );
        let (_, response) = answer(&json, None);
        assert_eq!(response.invocation_schema_version, "1.0");
        assert_eq!(
            response.results[0].result_string,
            "not a CloudTrail log file (a digest file): s3://cwl-indexer-fixture-trail/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/15/d.json.gz"
        );
        // AWS's own 1.0 and Powertools' 2.0 examples parse and are answered, task by task.
        let (_, aws) = answer(&fixture("aws-docs-request-1.0.json"), None);
        assert_eq!(
            aws.results[0].result_string,
            "not a CloudTrail log file: s3://amzn-s3-demo-bucket/customerImage1.jpg"
        );
        let (_, powertools) = answer(&fixture("powertools-request-2.0.json"), None);
        assert!(
            powertools.results[0]
                .result_string
                .ends_with("s3://powertools-dataset/prefix/dataset/dataset.20231222.json.gz")
        );
    }

    #[test]
    fn a_task_without_bucket_or_key_is_a_permanent_failure_not_a_failed_invocation() {
        let json = r#"{"invocationSchemaVersion":"2.0","invocationId":"i","job":{"id":"j"},"tasks":[
            {"taskId":"a","s3Key":"AWSLogs/k.json.gz","s3VersionId":null},
            {"taskId":"b","s3Bucket":"b"},
            {"taskId":"c","s3Key":"x","s3BucketName":"java-spelling"}]}"#;
        let (_, response) = answer(json, None);
        let results: Vec<(&str, ResultCode, &str)> = response
            .results
            .iter()
            .map(|r| (r.task_id.as_str(), r.result_code, r.result_string.as_str()))
            .collect();
        assert_eq!(
            results,
            [
                ("a", ResultCode::PermanentFailure, "no bucket in task"),
                ("b", ResultCode::PermanentFailure, "no key in task (bucket b)"),
                (
                    "c",
                    ResultCode::PermanentFailure,
                    "not a CloudTrail log file: s3://java-spelling/x"
                ),
            ]
        );
        // No tasks at all: an empty answer, still not an error.
        let (_, empty) = answer(
            r#"{"invocationSchemaVersion":"1.0","invocationId":"i","tasks":[]}"#,
            None,
        );
        assert!(empty.results.is_empty());
    }

    #[test]
    fn the_keys_of_our_manifests_decode_to_themselves() {
        for key in [
            "AWSLogs/1/read me+notes, 100%.txt",
            "AWSLogs/1/a=b&c;d.json.gz",
            "plain/é.json.gz",
        ] {
            assert_eq!(events::decode_key(&crate::ops::encode_key(key)), key);
        }
    }

    #[test]
    fn tasks_left_when_the_deadline_is_near_are_temporary_failures() {
        let (_, response) = answer(&fixture("request-2.0-tasks.json"), Some(Instant::now()));
        assert_eq!(response.results.len(), 4);
        for r in &response.results {
            assert_eq!(r.result_code, ResultCode::TemporaryFailure, "{r:?}");
            assert_eq!(r.result_string, "not started: the invocation's deadline was near");
        }
    }

    #[test]
    fn failures_are_told_apart_by_whether_a_retry_can_help() {
        let url = "s3://b/k";
        let get = |failure| {
            HandlerError::S3(S3Error::Get {
                bucket: "b".into(),
                key: "k".into(),
                failure,
                reason: "service error: SlowDown\nplease reduce your request rate".into(),
            })
        };
        assert_eq!(
            failure(&get(GetFailure::NoSuchKey), url),
            (ResultCode::PermanentFailure, "no such key: s3://b/k".into())
        );
        assert_eq!(
            failure(&get(GetFailure::AccessDenied), url).0,
            ResultCode::PermanentFailure
        );
        let (code, text) = failure(&get(GetFailure::Transient), url);
        assert_eq!(code, ResultCode::TemporaryFailure);
        assert_eq!(
            one_line(&text),
            "s3://b/k: GetObject failed: service error: SlowDown please reduce your request rate"
        );
        let too_large = HandlerError::S3(S3Error::File(TrailFileError::TooLarge {
            key: "k".into(),
            cap: 1024,
        }));
        assert_eq!(
            failure(&too_large, url),
            (
                ResultCode::PermanentFailure,
                "over the size cap (decompressed beyond MAX_TRAIL_FILE_BYTES=1024): s3://b/k".into()
            )
        );
        let body = HandlerError::S3(S3Error::Body {
            bucket: "b".into(),
            key: "k".into(),
            reason: "reset".into(),
        });
        assert_eq!(failure(&body, url).0, ResultCode::TemporaryFailure);
        let throttled = HandlerError::Sink(
            "3 items still failing after 8 attempts: item HTTP 429 rejected_execution_exception".into(),
        );
        assert_eq!(failure(&throttled, url).0, ResultCode::TemporaryFailure);
        assert_eq!(one_line(&"x ".repeat(1000)).len(), MAX_RESULT + 3);
    }
}
