//! A Kinesis batch (CloudWatch Logs through a central account's stream): each record is a
//! CloudWatch Logs payload; a record that cannot be decoded, or whose events are not all
//! indexed or dead-lettered, is reported by its sequence number.

use super::events::{BatchResponse, EventRecord};
use super::source::{Run, each_record};
use crate::pipeline::Sink;

/// Indexes each record, adding what was done to the run's total; answers the records to retry.
pub(crate) async fn process<S: Sink>(run: &mut Run<'_, S>, records: &[EventRecord<'_>]) -> BatchResponse {
    each_record("kinesis", records, async |record: &EventRecord<'_>| {
        let kinesis = record.kinesis.as_ref()?;
        let (summary, result) = run.indexer.process_data(&kinesis.data, run.sink, run.deadline).await;
        run.total.absorb(&summary);
        Some((kinesis.sequence_number.to_string(), result))
    })
    .await
}
