//! The dead-letter document: an item the cluster refused for good, written to
//! `<prefix>-deadletter-<the original index's date>` under its original `_id` (none, with an
//! `index` action, on a time-series collection), with the raw message, why it failed and
//! where it came from, so `redrive` can re-submit it.

use std::io::Write as _;

use super::json::write_json_str;
use super::template;
use crate::ingest::{Envelope, LogEvent};

/// What failed for good, and why.
#[derive(Debug)]
pub struct Failure<'a> {
    /// The index the document was meant for.
    pub index: &'a str,
    /// The document's `_id`, kept so a redelivered failure is one dead letter, not two;
    /// `None` where documents have none (time-series collections): no `_id` either then.
    pub id: Option<&'a str>,
    /// HTTP status of the item (or 413 for the request).
    pub status: u16,
    /// OpenSearch's error type.
    pub error_type: &'a str,
    /// OpenSearch's reason.
    pub reason: &'a str,
    /// Attempts made.
    pub attempts: u32,
}

/// The dead-letter index of a document meant for `index` (`<prefix>-YYYY.MM.DD`).
pub fn dead_letter_index(prefix: &str, index: &str) -> String {
    let date = index
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('-'))
        .unwrap_or("unknown");
    format!("{}-{date}", template::deadletter_prefix(prefix))
}

/// Writes the action (`create` with the original `_id`, or `index` without one when the
/// original had none) and the dead-letter document for `failure` of `event` (from
/// `envelope`), at time `now` (RFC 3339), into `out`.
pub fn write_dead_letter(
    out: &mut Vec<u8>,
    prefix: &str,
    now: &str,
    envelope: &Envelope<'_>,
    event: Option<&LogEvent<'_>>,
    failure: &Failure<'_>,
) {
    let action: &[u8] = match failure.id {
        Some(_) => br#"{"create":{"_index":"#,
        None => br#"{"index":{"_index":"#,
    };
    out.extend_from_slice(action);
    write_json_str(out, &dead_letter_index(prefix, failure.index));
    if let Some(id) = failure.id {
        out.extend_from_slice(br#","_id":"#);
        write_json_str(out, id);
    }
    out.extend_from_slice(b"}}\n{\"@timestamp\":");
    write_json_str(out, now);
    out.extend_from_slice(br#","message":"#);
    write_json_str(out, event.map_or("", |e| &e.message));
    // Writing to a Vec cannot fail.
    let _ = write!(out, r#","error":{{"status":{},"type":"#, failure.status);
    write_json_str(out, failure.error_type);
    out.extend_from_slice(br#","reason":"#);
    write_json_str(out, failure.reason);
    out.extend_from_slice(br#"},"original":{"index":"#);
    write_json_str(out, failure.index);
    if let Some(id) = failure.id {
        out.extend_from_slice(br#","id":"#);
        write_json_str(out, id);
    }
    out.extend_from_slice(br#"},"@id":"#);
    write_json_str(out, event.map_or("", |e| &e.id));
    out.extend_from_slice(br#","@owner":"#);
    write_json_str(out, &envelope.owner);
    out.extend_from_slice(br#","@log_group":"#);
    write_json_str(out, &envelope.log_group);
    out.extend_from_slice(br#","@log_stream":"#);
    write_json_str(out, &envelope.log_stream);
    let timestamp = event.map_or(0, |e| e.timestamp);
    let _ = writeln!(out, r#","timestamp":{timestamp},"attempts":{}}}"#, failure.attempts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_dead_letter_keeps_the_original_id_message_and_origin() {
        let envelope = Envelope {
            message_type: "DATA_MESSAGE".into(),
            owner: "111122223333".into(),
            log_group: "g".into(),
            log_stream: "s".into(),
            subscription_filters: Vec::new(),
            policy_level: None,
            log_events: Vec::new(),
        };
        let event = LogEvent {
            id: "e1".into(),
            timestamp: 7,
            message: "{\"a\":\"\\u0000\"}".into(),
        };
        let failure = Failure {
            index: "cwl-2024.05.06",
            id: Some("111122223333:x"),
            status: 400,
            error_type: "mapper_parsing_exception",
            reason: "bad \"value\"",
            attempts: 1,
        };
        let write = |failure: &Failure<'_>| {
            let mut out = Vec::new();
            write_dead_letter(
                &mut out,
                "cwl",
                "2024-05-06T00:00:00.000Z",
                &envelope,
                Some(&event),
                failure,
            );
            String::from_utf8(out).unwrap()
        };
        let text = write(&failure);
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["create"]["_index"], "cwl-deadletter-2024.05.06");
        assert_eq!(lines[0]["create"]["_id"], "111122223333:x");
        assert_eq!(lines[1]["message"], event.message.as_ref());
        assert_eq!(lines[1]["error"]["reason"], "bad \"value\"");
        assert_eq!(lines[1]["original"]["index"], "cwl-2024.05.06");
        assert_eq!(lines[1]["@log_group"], "g");
        assert_eq!(lines[1]["timestamp"], 7);
        assert_eq!(dead_letter_index("cwl", "other"), "cwl-deadletter-unknown");
        // A log type family's dead letters keep the family in their index name.
        assert_eq!(
            dead_letter_index("cwl", "cwl-vpcflow-2024.05.06"),
            "cwl-deadletter-vpcflow-2024.05.06"
        );

        // A time-series collection's document has no `_id`, and neither has its dead letter.
        let text = write(&Failure { id: None, ..failure });
        let (action, doc) = text.split_once('\n').unwrap();
        assert_eq!(action, r#"{"index":{"_index":"cwl-deadletter-2024.05.06"}}"#);
        let doc: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(doc["original"], serde_json::json!({"index": "cwl-2024.05.06"}));
        assert_eq!(
            doc["@timestamp"], "2024-05-06T00:00:00.000Z",
            "time-series collections need it"
        );
    }
}
