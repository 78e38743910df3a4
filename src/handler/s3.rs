//! An S3 notification record: a created object is read and indexed as a CloudTrail file
//! (digests and other keys are skipped by the indexer); other event names are skipped.

use std::time::Instant;

use super::events::{self, EventRecord, S3Entity};
use crate::indexer::{HandlerError, Indexer};
use crate::pipeline::{Sink, Summary};

/// Reads the object `entity` names if `record` says it was created, adding what was done
/// to `total`.
pub(crate) async fn record<S: Sink>(
    indexer: &Indexer,
    record: &EventRecord<'_>,
    entity: &S3Entity<'_>,
    sink: &mut S,
    deadline: Option<Instant>,
    total: &mut Summary,
) -> Result<(), HandlerError> {
    let key = events::decode_key(&entity.object.key);
    let name = record.event_name.as_deref().unwrap_or_default();
    if !name.starts_with("ObjectCreated") {
        tracing::info!(bucket = %entity.bucket.name, key, event_name = name, "not an ObjectCreated notification: skipped");
        return Ok(());
    }
    let (summary, result) = indexer.process_object(&entity.bucket.name, &key, sink, deadline).await;
    total.absorb(&summary);
    result.map(|_| ())
}
