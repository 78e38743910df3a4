//! An SQS batch: each message is an S3 notification, or an SNS envelope around one. A
//! message that is neither (so it will never succeed) or whose objects fail is reported by
//! its message id, and the queue's redrive policy keeps it in the dead-letter queue.

use std::time::Instant;

use super::events::{BatchResponse, EventRecord};
use super::source::each_record;
use crate::indexer::Indexer;
use crate::pipeline::{Sink, Summary};

/// Runs each message's notification, adding what was done to `total`; answers the
/// messages to leave in the queue.
pub(crate) async fn process<S: Sink>(
    indexer: &Indexer,
    records: &[EventRecord<'_>],
    sink: &mut S,
    deadline: Option<Instant>,
    total: &mut Summary,
) -> BatchResponse {
    each_record("sqs", records, async |record: &EventRecord<'_>| {
        let id = record.message_id.as_deref().unwrap_or_default().to_owned();
        let body = record.body.as_deref().unwrap_or_default();
        let result = indexer.notification_text(body, sink, deadline, total).await;
        Some((id, result))
    })
    .await
}
