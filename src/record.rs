//! Stage 2: one log event's message, classified as a CloudTrail record (parsed once into
//! borrowed top-level fields), other JSON, plain text, or a record that failed to parse.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// What a log event's message turned out to be.
#[derive(Debug)]
pub enum Message<'a> {
    /// A CloudTrail record, expanded into top-level document fields.
    CloudTrail(Record<'a>),
    /// Valid JSON that is not a CloudTrail record. Kept as the raw message only: arbitrary
    /// JSON spread at the top level is how mapping conflicts start.
    OtherJson,
    /// Not JSON (VPC flow logs, application text).
    Text,
    /// Looked like a JSON object but failed to parse: the error says where and why.
    Invalid(RecordError),
}

/// A CloudTrail record's top-level fields, borrowing from the message.
///
/// Values are [`RawValue`]s: the subtrees (`requestParameters`, `responseElements`, ...)
/// pass through to the document byte for byte, never becoming a `Value` tree.
#[derive(Debug)]
pub struct Record<'a> {
    /// Top-level fields in message order, duplicates already removed (the last one wins,
    /// as in `JSON.parse`).
    pub fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// `eventTime`, when it is a string.
    pub event_time: Option<Cow<'a, str>>,
    /// `eventID`, when it is a string.
    pub event_id: Option<Cow<'a, str>>,
    /// `recipientAccountId`, when it is a string.
    pub recipient_account_id: Option<Cow<'a, str>>,
}

/// Classifies and, for CloudTrail, parses one message.
pub fn classify(message: &str) -> Message<'_> {
    let trimmed = message.trim_start();
    if !trimmed.starts_with('{') {
        return if serde_json::from_str::<de::IgnoredAny>(message).is_ok() {
            Message::OtherJson
        } else {
            Message::Text
        };
    }
    let fields = match serde_json::from_str::<TopLevel<'_>>(message) {
        Ok(TopLevel(fields)) => fields,
        Err(e) => return Message::Invalid(e.into()),
    };
    if let Err(e) = check_nested(message) {
        return Message::Invalid(e);
    }
    let mut record = Record {
        fields,
        event_time: None,
        event_id: None,
        recipient_account_id: None,
    };
    let (mut has_version, mut has_source, mut has_name) = (false, false, false);
    for (key, raw) in &record.fields {
        match key.as_ref() {
            "eventVersion" => has_version = true,
            "eventSource" => has_source = true,
            "eventName" => has_name = true,
            "eventTime" => record.event_time = as_str(raw),
            "eventID" => record.event_id = as_str(raw),
            "recipientAccountId" => record.recipient_account_id = as_str(raw),
            _ => {}
        }
    }
    // Every CloudTrail record since version 1.0 has eventVersion; hand-written and
    // re-exported ones sometimes drop it but keep eventSource and eventName.
    if has_version || (has_source && has_name) {
        Message::CloudTrail(record)
    } else {
        Message::OtherJson
    }
}

/// A raw JSON value as a string, if it is one.
fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str::<CowStr<'_>>(text).ok().map(|s| s.0)
}

/// The deepest nesting of objects and arrays a record may have. Real CloudTrail records
/// nest about a dozen levels; OpenSearch's own parser stops at 1,000.
pub const MAX_NESTING: usize = 100;

/// Why a message that looked like a JSON object is not a usable record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// serde_json refused it (syntax, invalid escape, lone surrogate, ...).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Objects and arrays nest deeper than [`MAX_NESTING`].
    #[error("nesting deeper than {MAX_NESTING} levels at byte {0}")]
    TooDeep(usize),
}

/// serde_json skips over nested [`RawValue`]s without a depth limit and without decoding
/// their strings, so a lone surrogate escape (`\ud800`) or a 10,000-deep array would pass
/// through to OpenSearch and be rejected there. One pass over the bytes finds both: strings
/// are skipped with `memchr`, and only a message with a `\uD…` escape pays for a decoding
/// parse.
fn check_nested(message: &str) -> Result<(), RecordError> {
    let b = message.as_bytes();
    let (mut i, mut depth, mut suspicious) = (0, 0usize, false);
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Inside a string: jump from one quote or backslash to the next.
                i += 1;
                while let Some(off) = memchr::memchr2(b'"', b'\\', &b[i..]) {
                    i += off;
                    if b[i] == b'"' {
                        break;
                    }
                    suspicious |= b.get(i + 1) == Some(&b'u') && matches!(b.get(i + 2), Some(b'd' | b'D'));
                    i += 2;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(RecordError::TooDeep(i));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    if suspicious {
        serde_json::from_str::<serde_json::Value>(message)?;
    }
    Ok(())
}

/// A string that borrows from the input when it has no escapes. serde's own
/// `Deserialize for Cow<str>` always allocates.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A JSON object read as an ordered list of (key, raw value), with duplicate keys resolved.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(map.size_hint().unwrap_or(24));
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            // Duplicate keys would make OpenSearch reject the document outright; keep the
            // last, as JSON.parse and serde_json::Value do. Records have ~20 keys, so a
            // linear scan beats hashing.
            if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            } else {
                fields.push((key, value));
            }
        }
        Ok(TopLevel(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str) -> Record<'_> {
        match classify(message) {
            Message::CloudTrail(r) => r,
            other => panic!("not CloudTrail: {other:?}"),
        }
    }

    #[test]
    fn cloudtrail_fields_are_borrowed_raw() {
        let msg = r#"{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventID":"e-1","recipientAccountId":"111122223333","requestParameters":{"a" : [1, 2]}}"#;
        let r = record(msg);
        assert_eq!(r.event_time.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(r.event_id.as_deref(), Some("e-1"));
        assert_eq!(r.recipient_account_id.as_deref(), Some("111122223333"));
        assert_eq!(r.fields.len(), 5);
        // Subtrees pass through byte for byte, whitespace included.
        assert_eq!(r.fields[4].1.get(), r#"{"a" : [1, 2]}"#);
        assert!(matches!(r.fields[0].0, Cow::Borrowed(_)));
    }

    #[test]
    fn records_without_event_version_are_recognised_by_source_and_name() {
        record(r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#);
        assert!(matches!(classify(r#"{"eventName":"x"}"#), Message::OtherJson));
    }

    #[test]
    fn insights_records_are_cloudtrail() {
        let r = record(
            r#"{"eventVersion":"1.07","eventTime":"2020-01-01T00:00:00Z","eventType":"AwsCloudTrailInsight","insightDetails":{}}"#,
        );
        assert!(r.event_id.is_none());
    }

    #[test]
    fn non_string_special_fields_are_ignored() {
        let r = record(r#"{"eventVersion":"1","eventTime":12,"eventID":null,"recipientAccountId":["x"]}"#);
        assert!(r.event_time.is_none() && r.event_id.is_none() && r.recipient_account_id.is_none());
    }

    #[test]
    fn escaped_keys_and_values_are_unescaped() {
        let r = record(r#"{"eventVersion":"1","event\u0049D":"a\"b"}"#);
        assert_eq!(r.event_id.as_deref(), Some("a\"b"));
    }

    #[test]
    fn nesting_up_to_the_limit_passes() {
        let ok = format!(
            "{{\"eventVersion\":\"1\",\"x\":{}{}}}",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        record(&ok);
        let brackets_in_strings = format!("{{\"eventVersion\":\"1\",\"x\":\"{}\\\"\"}}", "[{".repeat(500));
        record(&brackets_in_strings);
    }

    #[test]
    fn valid_surrogate_pairs_and_escaped_backslashes_pass() {
        record(r#"{"eventVersion":"1","x":"\ud83e\udd80","y":"\\ud800"}"#);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let r = record(r#"{"eventVersion":"1","eventName":"A","eventName":"B"}"#);
        assert_eq!(r.fields.len(), 2);
        assert_eq!(r.fields[1].1.get(), r#""B""#);
    }

    #[test]
    fn other_messages_are_classified() {
        assert!(matches!(classify(r#"{"level":"info"}"#), Message::OtherJson));
        assert!(matches!(classify("[1,2]"), Message::OtherJson));
        assert!(matches!(
            classify("2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1 2 ACCEPT OK"),
            Message::Text
        ));
        assert!(matches!(classify(""), Message::Text));
    }

    #[test]
    fn broken_records_say_why() {
        let deep = format!(
            "{{\"eventVersion\":\"1\",\"x\":{}{}}}",
            "[".repeat(1000),
            "]".repeat(1000)
        );
        for (msg, why) in [
            (r#"{"eventVersion":"1.08","x":"\uZZZZ"}"#.to_string(), "escape"),
            (r#"{"eventVersion":"1.08","x":"\ud800"}"#.to_string(), "hex escape"),
            (
                r#"{"eventVersion":"1.08","x":{"y":["\udc00 low first"]}}"#.to_string(),
                "surrogate",
            ),
            (r#"{"eventVersion":"1.08","#.to_string(), "EOF"),
            (deep, "nesting deeper than 100"),
        ] {
            match classify(&msg) {
                Message::Invalid(e) => assert!(e.to_string().contains(why), "{why}: {e}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }
}
