//! An SQS batch: each message is an S3 notification, or an SNS envelope around one. A
//! message that is neither (so it will never succeed) or whose objects fail is reported by
//! its message id, and the queue's redrive policy keeps it in the dead-letter queue.

use super::events::{BatchResponse, EventRecord};
use super::source::{Run, each_record, notification_text};
use crate::pipeline::Sink;

/// Runs each message's notification, adding what was done to the run's total; answers the
/// messages to leave in the queue.
pub(crate) async fn process<S: Sink>(run: &mut Run<'_, S>, records: &[EventRecord<'_>]) -> BatchResponse {
    each_record("sqs", records, async |record: &EventRecord<'_>| {
        let id = record.message_id.as_deref().unwrap_or_default().to_owned();
        let result = notification_text(run, record.body.as_deref().unwrap_or_default()).await;
        Some((id, result))
    })
    .await
}
