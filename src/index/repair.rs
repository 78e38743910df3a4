//! Re-encoding a record the cluster refused for duplicate keys deep inside it ("Duplicate
//! field"): the message goes through `serde_json::Value`, which keeps the last value of each
//! key at every depth, as `JSON.parse` does, and is written again as a normal document.

use serde_json::Value;

use super::bulk::BulkChunk;
use super::document::{self, DocKind, Origin};
use crate::config::Config;
use crate::ingest::{Envelope, LogEvent};

/// Appends the repaired document of `envelope`'s event number `event` to `chunk`. Returns
/// false, writing nothing, when it cannot be repaired (no such event, not JSON, or a number
/// beyond `f64`).
pub fn push_repaired(
    chunk: &mut BulkChunk,
    config: &Config,
    envelope: &Envelope<'_>,
    event: usize,
    kind: DocKind,
) -> bool {
    let Some(repaired) = envelope.log_events.get(event).and_then(deduplicated) else {
        return false;
    };
    let origin = Origin::of(config, envelope);
    chunk.push_item(event, kind, |out| {
        document::write_item(out, config, &origin, &repaired);
    });
    true
}

/// The event with its message re-serialised through `serde_json::Value`, which keeps the
/// last of duplicate keys at every depth. `None` if it cannot be (a number beyond `f64`).
fn deduplicated(event: &LogEvent<'_>) -> Option<LogEvent<'static>> {
    let value: Value = serde_json::from_str(&event.message).ok()?;
    Some(LogEvent {
        id: event.id.clone().into_owned().into(),
        timestamp: event.timestamp,
        message: value.to_string().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_keep_the_last_value_and_garbage_is_not_repaired() {
        let envelope = crate::ingest::parse_envelope(
            br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"a","timestamp":1,"message":"{\"eventVersion\":\"1\",\"eventID\":\"x\",\"requestParameters\":{\"k\":1,\"k\":2}}"},{"id":"b","timestamp":2,"message":"{\"broken"}]}"#,
        )
        .unwrap();
        let mut chunk = BulkChunk::default();
        assert!(push_repaired(
            &mut chunk,
            &Config::default(),
            &envelope,
            0,
            DocKind::CloudTrail
        ));
        let body = std::str::from_utf8(chunk.body()).unwrap();
        assert!(body.contains(r#""requestParameters":{"k":2}"#), "{body}");
        assert!(!push_repaired(
            &mut chunk,
            &Config::default(),
            &envelope,
            1,
            DocKind::CloudTrail
        ));
        assert!(!push_repaired(
            &mut chunk,
            &Config::default(),
            &envelope,
            9,
            DocKind::CloudTrail
        ));
        assert_eq!(chunk.items().len(), 1);
    }
}
