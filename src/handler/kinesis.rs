//! A Kinesis batch (CloudWatch Logs through a central account's stream): each record is a
//! CloudWatch Logs payload; a record that cannot be decoded, or whose events are not all
//! indexed or dead-lettered, is reported by its sequence number.

use std::time::Instant;

use super::events::{BatchResponse, EventRecord};
use super::source::each_record;
use crate::indexer::Indexer;
use crate::pipeline::{Sink, Summary};

/// Indexes each record, adding what was done to `total`; answers the records to retry.
pub(crate) async fn process<S: Sink>(
    indexer: &Indexer,
    records: &[EventRecord<'_>],
    sink: &mut S,
    deadline: Option<Instant>,
    total: &mut Summary,
) -> BatchResponse {
    each_record("kinesis", records, async |record: &EventRecord<'_>| {
        let kinesis = record.kinesis.as_ref()?;
        let (summary, result) = indexer.process_data(&kinesis.data, sink, deadline).await;
        total.absorb(&summary);
        Some((kinesis.sequence_number.to_string(), result))
    })
    .await
}
