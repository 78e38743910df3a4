//! The shapes of the Lambda events the function accepts, borrowed from the invocation's
//! bytes: one struct whose optional fields tell the sources apart (CloudWatch Logs, Kinesis,
//! S3 notifications direct or through SQS or SNS, and the S3 test event).

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
