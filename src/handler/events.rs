//! The event shapes, borrowed from the invocation's bytes: one struct whose optional fields tell
//! the sources apart (CloudWatch Logs, Kinesis, SQS, SNS, S3 notifications and test event, S3
//! Batch Operations), and the answers that are not a summary (batch failures, task results).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Any accepted event, or a message body inside one (an SQS body, an SNS `Message`).
///
/// `aws_lambda_events` has a type per source, but each owns every string and dispatching
/// between them means trying one after another; these borrow and are read in one pass.
#[derive(Debug, Default, Deserialize)]
pub struct Incoming<'a> {
    /// CloudWatch Logs subscription: `{"awslogs":{"data":...}}`.
    #[serde(borrow)]
    pub awslogs: Option<AwsLogsRef<'a>>,
    /// Kinesis, SQS, SNS or S3 records.
    #[serde(rename = "Records", borrow, default)]
    pub records: Vec<EventRecord<'a>>,
    /// `s3:TestEvent` (S3 sends it when a notification is configured).
    #[serde(rename = "Event", borrow, default)]
    pub event: Option<Cow<'a, str>>,
    /// An SNS envelope inside an SQS body: the `Message` is the S3 notification.
    #[serde(rename = "Message", borrow, default)]
    pub message: Option<Cow<'a, str>>,
    /// S3 Batch Operations: the job's `InvocationSchemaVersion`, `"1.0"` or `"2.0"`.
    #[serde(rename = "invocationSchemaVersion", borrow, default)]
    pub invocation_schema_version: Option<Cow<'a, str>>,
    /// S3 Batch Operations: the invocation's id, copied into the response.
    #[serde(rename = "invocationId", borrow, default)]
    pub invocation_id: Option<Cow<'a, str>>,
    /// S3 Batch Operations: the job (its id; `userArguments` in 2.0, unused).
    #[serde(borrow, default)]
    pub job: Option<BatchJob<'a>>,
    /// S3 Batch Operations: the tasks, one object each (every example has one).
    #[serde(borrow, default)]
    pub tasks: Vec<BatchTask<'a>>,
}

/// `job` of an S3 Batch Operations event.
#[derive(Debug, Default, Deserialize)]
pub struct BatchJob<'a> {
    /// The job's id (a UUID).
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
}

/// One task of an S3 Batch Operations event. Every field is optional here, so that a task
/// missing one is answered (`PermanentFailure`) rather than failing the whole invocation.
#[derive(Debug, Default, Deserialize)]
pub struct BatchTask<'a> {
    /// The task's id, copied into its result.
    #[serde(rename = "taskId", borrow, default)]
    pub task_id: Cow<'a, str>,
    /// The object's key, URL-encoded.
    #[serde(rename = "s3Key", borrow, default)]
    pub s3_key: Option<Cow<'a, str>>,
    /// The manifest's version id, or `null`.
    #[serde(rename = "s3VersionId", borrow, default)]
    pub s3_version_id: Option<Cow<'a, str>>,
    /// Schema 1.0: `arn:aws:s3:::bucket`.
    #[serde(rename = "s3BucketArn", borrow, default)]
    pub s3_bucket_arn: Option<Cow<'a, str>>,
    /// Schema 2.0: the bucket's name (`s3Bucket` in AWS's examples and Powertools).
    #[serde(rename = "s3Bucket", borrow, default)]
    pub s3_bucket: Option<Cow<'a, str>>,
    /// Schema 2.0 as aws-lambda-java-libs spells it.
    #[serde(rename = "s3BucketName", borrow, default)]
    pub s3_bucket_name: Option<Cow<'a, str>>,
}

impl BatchTask<'_> {
    /// The bucket, from whichever field the schema uses: 2.0's name, or the text after the
    /// last `:` of 1.0's ARN (bucket names have no `:`).
    pub fn bucket(&self) -> Option<&str> {
        let name = self.s3_bucket.as_deref().or(self.s3_bucket_name.as_deref());
        let from_arn = || self.s3_bucket_arn.as_deref().and_then(|arn| arn.rsplit(':').next());
        name.or_else(from_arn).filter(|b| !b.is_empty())
    }
}

/// An S3 Batch Operations event, as the handler reads it.
#[derive(Debug, Clone, Copy)]
pub struct BatchEvent<'e, 'a> {
    /// `invocationSchemaVersion`, copied into the response.
    pub schema: &'e str,
    /// `invocationId`, copied into the response.
    pub invocation_id: &'e str,
    /// The job's id, for the logs.
    pub job_id: &'e str,
    /// The tasks.
    pub tasks: &'e [BatchTask<'a>],
}

/// The per-task answer to an S3 Batch Operations invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOperationsResponse {
    /// The request's, copied.
    #[serde(rename = "invocationSchemaVersion")]
    pub invocation_schema_version: String,
    /// The result of a task this answer leaves out (none, unless a bug): retried, since
    /// every retry is idempotent.
    #[serde(rename = "treatMissingKeysAs")]
    pub treat_missing_keys_as: ResultCode,
    /// The request's, copied.
    #[serde(rename = "invocationId")]
    pub invocation_id: String,
    /// One per task, in the request's order.
    pub results: Vec<TaskResult>,
}

/// One task's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task's, copied.
    #[serde(rename = "taskId")]
    pub task_id: String,
    /// What happened.
    #[serde(rename = "resultCode")]
    pub result_code: ResultCode,
    /// One line for the completion report: the counts, or the reason with the `s3://` URL.
    #[serde(rename = "resultString")]
    pub result_string: String,
}

/// S3 Batch Operations' result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    /// Done: the file's events are indexed, already present or dead-lettered.
    Succeeded,
    /// Retryable (throttling, timeouts, the deadline): Batch Operations redrives the task.
    TemporaryFailure,
    /// Will fail again (not a CloudTrail file, over the size cap, missing): reported.
    PermanentFailure,
}

/// `awslogs` of a CloudWatch Logs event, borrowed.
#[derive(Debug, Deserialize)]
pub struct AwsLogsRef<'a> {
    /// `base64(gzip(envelope JSON))`.
    #[serde(borrow)]
    pub data: Cow<'a, str>,
}

/// One record of a Kinesis, SQS, SNS or S3 event; exactly one of the source fields is set.
#[derive(Debug, Default, Deserialize)]
pub struct EventRecord<'a> {
    /// Kinesis: the record.
    #[serde(borrow)]
    pub kinesis: Option<KinesisData<'a>>,
    /// S3: the object.
    #[serde(borrow)]
    pub s3: Option<S3Entity<'a>>,
    /// S3: `ObjectCreated:Put`, `ObjectRemoved:Delete`, ...
    #[serde(rename = "eventName", borrow, default)]
    pub event_name: Option<Cow<'a, str>>,
    /// SQS: the message id (the `itemIdentifier` of a failure).
    #[serde(rename = "messageId", borrow, default)]
    pub message_id: Option<Cow<'a, str>>,
    /// SQS: the message body.
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    /// SNS: the notification.
    #[serde(rename = "Sns", borrow, default)]
    pub sns: Option<SnsData<'a>>,
}

/// `kinesis` of a Kinesis record.
#[derive(Debug, Deserialize)]
pub struct KinesisData<'a> {
    /// `base64(record bytes)`; CloudWatch Logs writes `gzip(envelope JSON)`.
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    /// The sequence number (the `itemIdentifier` of a failure).
    #[serde(rename = "sequenceNumber", borrow)]
    pub sequence_number: Cow<'a, str>,
}

/// `s3` of an S3 notification record.
#[derive(Debug, Deserialize)]
pub struct S3Entity<'a> {
    /// The bucket.
    #[serde(borrow)]
    pub bucket: S3Bucket<'a>,
    /// The object.
    #[serde(borrow)]
    pub object: S3Object<'a>,
}

/// `s3.bucket`.
#[derive(Debug, Deserialize)]
pub struct S3Bucket<'a> {
    /// The bucket's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `s3.object`.
#[derive(Debug, Deserialize)]
pub struct S3Object<'a> {
    /// The key, URL-encoded (`+` for spaces) as S3 sends it.
    #[serde(borrow)]
    pub key: Cow<'a, str>,
}

/// `Sns` of an SNS record.
#[derive(Debug, Deserialize)]
pub struct SnsData<'a> {
    /// The published message: here, an S3 notification.
    #[serde(rename = "Message", borrow)]
    pub message: Cow<'a, str>,
}

/// The response that reports partial failures of a Kinesis or SQS batch
/// (`ReportBatchItemFailures`): Lambda retries (Kinesis) or leaves in the queue (SQS)
/// only these records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The records that failed.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed record of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    /// The Kinesis sequence number or the SQS message id.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// An S3 notification's key as the object's key: S3 URL-encodes keys in notifications, with
/// `+` for a space.
pub fn decode_key(key: &str) -> String {
    url::form_urlencoded::parse(key.as_bytes())
        .next()
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_keys_are_decoded() {
        assert_eq!(decode_key("AWSLogs/1/a+b%2Bc%3Dd.json.gz"), "AWSLogs/1/a b+c=d.json.gz");
        assert_eq!(decode_key("plain/key.json.gz"), "plain/key.json.gz");
    }

    #[test]
    fn shapes_are_told_apart() {
        let kinesis: Incoming<'_> = serde_json::from_str(
            r#"{"Records":[{"kinesis":{"data":"aGk=","sequenceNumber":"49","partitionKey":"p"},"eventSource":"aws:kinesis"}]}"#,
        )
        .unwrap();
        assert_eq!(kinesis.records[0].kinesis.as_ref().unwrap().sequence_number, "49");
        let sqs: Incoming<'_> =
            serde_json::from_str(r#"{"Records":[{"messageId":"m1","body":"{\"Records\":[]}"}]}"#).unwrap();
        assert_eq!(sqs.records[0].body.as_deref(), Some(r#"{"Records":[]}"#));
        let test: Incoming<'_> = serde_json::from_str(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).unwrap();
        assert_eq!(test.event.as_deref(), Some("s3:TestEvent"));
        let failures = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "49".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&failures).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"49"}]}"#
        );
    }
}
