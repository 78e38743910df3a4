//! The dead-letter path: items that failed for good are collected as [`DeadLetter`]s, put
//! into one chunk of dead-letter documents (written by `index`), and their delivery is
//! settled into the chunk's counts. The sink sends that chunk like any other.

use chrono::Utc;

use crate::index::{BulkChunk, DocKind, Failure, Target, write_dead_letter};
use crate::pipeline::{Batch, Delivery};

/// An item that failed for good, on its way to the dead-letter index.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    /// The log event's position in the envelope.
    pub event: usize,
    /// What the document was.
    pub kind: DocKind,
    /// Its index and `_id`.
    pub target: Target,
    /// Item status (413 for a lone document too large for the cluster).
    pub status: u16,
    /// OpenSearch's error type.
    pub error_type: String,
    /// OpenSearch's reason.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

impl DeadLetter {
    /// True for a CloudTrail record refused for duplicate keys, which a re-encoding repairs.
    pub fn is_repairable(&self) -> bool {
        self.kind == DocKind::CloudTrail
            && self.error_type.ends_with("parsing_exception")
            && self.reason.contains("Duplicate field")
    }
}

/// The chunk of dead-letter documents for `dead`, under `prefix`.
pub(crate) fn chunk(dead: &[DeadLetter], batch: &Batch<'_>, prefix: &str) -> BulkChunk {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut chunk = BulkChunk::default();
    for d in dead {
        let failure = Failure {
            index: &d.target.index,
            id: d.target.id.as_deref(),
            status: d.status,
            error_type: &d.error_type,
            reason: &d.reason,
            attempts: d.attempts,
        };
        let event = batch.envelope.log_events.get(d.event);
        chunk.push_item(d.event, DocKind::Invalid, |out| {
            write_dead_letter(out, prefix, &now, batch.envelope, event, &failure);
        });
    }
    chunk
}

/// Adds what writing the dead letters did (`counts`) to `delivery`, logs each one, and
/// returns how many are not written.
pub(crate) fn settle(dead: &[DeadLetter], counts: &Delivery, delivery: &mut Delivery) -> usize {
    delivery.requests += counts.requests;
    delivery.bulk_bytes += counts.bulk_bytes;
    delivery.wire_bytes += counts.wire_bytes;
    delivery.retried += counts.retried;
    // A dead letter already present (409) was written by an earlier delivery.
    let written = counts.indexed + counts.duplicates;
    delivery.dead_lettered += written;
    for d in dead {
        tracing::warn!(
            index = d.target.index,
            id = d.target.id.as_deref().unwrap_or("(none: time-series collection)"),
            status = d.status,
            error_type = d.error_type,
            reason = d.reason,
            "dead-lettered"
        );
    }
    dead.len().saturating_sub(written)
}
