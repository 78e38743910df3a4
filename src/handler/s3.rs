//! An S3 notification record: a created object is read and indexed as a CloudTrail file
//! (digests and other keys are skipped by the indexer); other event names are skipped.

use super::events::{self, EventRecord, S3Entity};
use super::source::Run;
use crate::indexer::HandlerError;
use crate::pipeline::Sink;

/// Reads the object `entity` names if `record` says it was created, adding what was done to
/// the run's total.
pub(crate) async fn record<S: Sink>(
    run: &mut Run<'_, S>,
    record: &EventRecord<'_>,
    entity: &S3Entity<'_>,
) -> Result<(), HandlerError> {
    let key = events::decode_key(&entity.object.key);
    let name = record.event_name.as_deref().unwrap_or_default();
    if !name.starts_with("ObjectCreated") {
        tracing::info!(bucket = %entity.bucket.name, key, event_name = name, "not an ObjectCreated notification: skipped");
        return Ok(());
    }
    let (summary, result) = run
        .indexer
        .process_object(&entity.bucket.name, &key, run.sink, run.deadline)
        .await;
    run.total.absorb(&summary);
    result.map(|_| ())
}
