//! The one place an event's kind is decided and matched: [`Source`] tells the accepted
//! events apart by their shape, and [`Indexer::run_source`] sends each to its own file.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use super::events::{AwsLogsRef, BatchEvent, BatchResponse, EventRecord, Incoming, ItemFailure};
use super::{Response, awslogs, batch_operations, kinesis, s3, sns, sqs, test_event};
use crate::indexer::{HandlerError, Indexer};
use crate::pipeline::{Sink, Summary};

/// Every kind of event the function takes, told apart by its shape.
#[derive(Debug, Clone, Copy)]
pub enum Source<'e, 'a> {
    /// A CloudWatch Logs subscription: `{"awslogs":{"data":...}}`.
    AwsLogs(&'e AwsLogsRef<'a>),
    /// Kinesis records, each a CloudWatch Logs payload (a central account's destination).
    Kinesis(&'e [EventRecord<'a>]),
    /// SQS messages, each an S3 notification or an SNS envelope around one.
    Sqs(&'e [EventRecord<'a>]),
    /// SNS records, each carrying an S3 notification.
    Sns(&'e [EventRecord<'a>]),
    /// S3 notification records.
    S3(&'e [EventRecord<'a>]),
    /// An SNS notification as an SQS body (raw delivery off): its `Message`.
    SnsEnvelope(&'e str),
    /// `s3:TestEvent`, sent when a notification is configured: skipped.
    TestEvent,
    /// An S3 Batch Operations invocation: tasks, each naming one CloudTrail file.
    BatchOperations(BatchEvent<'e, 'a>),
}

impl<'e, 'a> Source<'e, 'a> {
    /// The source `incoming` is, or `None` when it is none of them.
    pub fn of(incoming: &'e Incoming<'a>) -> Option<Self> {
        if let Some(awslogs) = &incoming.awslogs {
            return Some(Self::AwsLogs(awslogs));
        }
        if let Some(schema) = &incoming.invocation_schema_version {
            return Some(Self::BatchOperations(BatchEvent {
                schema,
                invocation_id: incoming.invocation_id.as_deref().unwrap_or_default(),
                job_id: incoming.job.as_ref().and_then(|j| j.id.as_deref()).unwrap_or_default(),
                tasks: &incoming.tasks,
            }));
        }
        let records = incoming.records.as_slice();
        if let Some(first) = records.first() {
            // The first record decides; a batch from one event source mapping is uniform.
            if first.kinesis.is_some() {
                return Some(Self::Kinesis(records));
            }
            if first.body.is_some() {
                return Some(Self::Sqs(records));
            }
            if first.sns.is_some() {
                return Some(Self::Sns(records));
            }
            if first.s3.is_some() {
                return Some(Self::S3(records));
            }
        }
        if incoming.event.as_deref() == Some("s3:TestEvent") {
            return Some(Self::TestEvent);
        }
        if let Some(message) = &incoming.message {
            return Some(Self::SnsEnvelope(message));
        }
        None
    }

    /// The name logged as the invocation's `input`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AwsLogs(_) => "awslogs",
            Self::Kinesis(_) => "kinesis",
            Self::Sqs(_) => "sqs",
            Self::Sns(_) | Self::S3(_) | Self::SnsEnvelope(_) | Self::TestEvent => "s3",
            Self::BatchOperations(_) => "batch-operations",
        }
    }
}

/// One event being run: the indexer, where its chunks go, the invocation's deadline, and
/// what has been done so far. Every source's file takes it.
pub(crate) struct Run<'r, S> {
    /// The stages.
    pub indexer: &'r Indexer,
    /// Where bulk chunks go.
    pub sink: &'r mut S,
    /// When the invocation must have returned.
    pub deadline: Option<Instant>,
    /// What was done, added to by every payload and object.
    pub total: &'r mut Summary,
}

impl Indexer {
    /// Runs one event of a known source, adding what it did to `summary`.
    ///
    /// Kinesis and SQS batches answer [`BatchResponse`]: only the records whose events could
    /// not all be indexed or dead-lettered are retried. A direct S3 or SNS event fails as a
    /// whole when any object fails (its redelivery finds the rest already indexed).
    pub(crate) async fn run_source<S: Sink>(
        &self,
        source: Source<'_, '_>,
        sink: &mut S,
        deadline: Option<Instant>,
        summary: &mut Summary,
    ) -> Result<Response, HandlerError> {
        let mut run = Run {
            indexer: self,
            sink,
            deadline,
            total: summary,
        };
        match source {
            Source::AwsLogs(awslogs) => awslogs::process(&mut run, &awslogs.data).await?,
            Source::Kinesis(records) => return Ok(Response::Batch(kinesis::process(&mut run, records).await)),
            Source::Sqs(records) => return Ok(Response::Batch(sqs::process(&mut run, records).await)),
            Source::BatchOperations(event) => {
                return Ok(Response::BatchOperations(
                    batch_operations::process(&mut run, event).await,
                ));
            }
            // An SNS envelope arrives only inside an SQS body, never as the event itself.
            Source::SnsEnvelope(_) => return Err(HandlerError::UnknownEvent),
            Source::Sns(_) | Source::S3(_) | Source::TestEvent => notification(source, &mut run).await?,
        }
        Ok(Response::Summary(run.total.clone()))
    }
}

/// A notification (S3 or SNS records, an SNS envelope, the test event): reads and indexes
/// each created object. Every record is tried; the first error is returned.
pub(crate) fn notification<'s, S: Sink>(
    source: Source<'s, 's>,
    run: &'s mut Run<'_, S>,
) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + 's>> {
    // Boxed: an SNS message nests a notification, so this recurses (once).
    Box::pin(async move {
        let records = match source {
            Source::TestEvent => return test_event::skip(),
            Source::SnsEnvelope(message) => return sns::envelope(run, message).await,
            Source::Sns(records) | Source::S3(records) => records,
            Source::AwsLogs(_) | Source::Kinesis(_) | Source::Sqs(_) | Source::BatchOperations(_) => {
                return Err(HandlerError::UnknownEvent);
            }
        };
        let mut first_error = None;
        for record in records {
            let result = if let Some(data) = &record.sns {
                sns::envelope(run, &data.message).await
            } else if let Some(entity) = &record.s3 {
                s3::record(run, record, entity).await
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

/// A notification carried as text (an SQS body, an SNS `Message`), parsed and run.
pub(crate) async fn notification_text<S: Sink>(run: &mut Run<'_, S>, text: &str) -> Result<(), HandlerError> {
    let inner: Incoming<'_> = serde_json::from_str(text).map_err(HandlerError::Event)?;
    let source = Source::of(&inner).ok_or(HandlerError::UnknownEvent)?;
    notification(source, run).await
}

/// Each record of a Kinesis or SQS batch on its own: `process` answers the record's id (the
/// failure's `itemIdentifier`) and its result; a failed record is reported, so that Lambda
/// retries (Kinesis) or leaves in the queue (SQS) only it.
pub(crate) async fn each_record<'r, R>(
    source: &'static str,
    records: &'r [R],
    mut process: impl AsyncFnMut(&'r R) -> Option<(String, Result<(), HandlerError>)>,
) -> BatchResponse {
    let mut failures = BatchResponse::default();
    for record in records {
        let Some((id, result)) = process(record).await else {
            continue;
        };
        if let Err(e) = result {
            tracing::error!(source, item = %id, error = %e, "batch record failed: reported for retry");
            failures.batch_item_failures.push(ItemFailure { item_identifier: id });
        }
    }
    failures
}
