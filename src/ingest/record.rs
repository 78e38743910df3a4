//! Stage 2: one log event's message, classified as a CloudTrail record (parsed once into
//! borrowed top-level fields, each checked against the schema), other JSON, plain text, or a
//! record that failed to parse.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::schema::{self, MAX_FLAT_STRING, Shape};

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

/// Where a top-level field goes in the document, decided against [`schema`] so that the
/// index template can never reject it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Under its own name, unchanged.
    Keep,
    /// Under its own name as `{"@value": <value>}`: a free-form field whose value is not an
    /// object (a string, an array of scalars), which `flat_object` would refuse.
    Wrap,
    /// Under `@unindexed.<name>`, stored but never indexed: a value of the wrong shape for its
    /// mapping, a string too long to index, or a name OpenSearch refuses.
    Unindex,
}

/// One top-level field of a CloudTrail record.
#[derive(Debug)]
pub struct Field<'a> {
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// The value, exactly as in the message.
    pub value: &'a RawValue,
    /// Where the document puts it.
    pub placement: Placement,
    /// Whether the document also carries its JSON text as `@json.<key>` for full-text search
    /// (free-form and unindexed values with a usable name).
    pub text_copy: bool,
}

/// A CloudTrail record's top-level fields, borrowing from the message.
///
/// Values are [`RawValue`]s: the subtrees (`requestParameters`, `responseElements`, ...)
/// pass through to the document byte for byte, never becoming a `Value` tree.
#[derive(Debug)]
pub struct Record<'a> {
    /// Top-level fields in message order, duplicates already removed (the last one wins,
    /// as in `JSON.parse`).
    pub fields: Vec<Field<'a>>,
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
    let pairs = match serde_json::from_str::<TopLevel<'_>>(message) {
        Ok(TopLevel(pairs)) => pairs,
        Err(e) => return Message::Invalid(e.into()),
    };
    let mut record = Record {
        fields: Vec::with_capacity(pairs.len()),
        event_time: None,
        event_id: None,
        recipient_account_id: None,
    };
    let (mut has_version, mut has_source, mut has_name, mut suspicious) = (false, false, false, false);
    for (key, value) in pairs {
        match key.as_ref() {
            "eventVersion" => has_version = true,
            "eventSource" => has_source = true,
            "eventName" => has_name = true,
            "eventTime" => record.event_time = as_str(value),
            "eventID" => record.event_id = as_str(value),
            "recipientAccountId" => record.recipient_account_id = as_str(value),
            _ => {}
        }
        let Some(scan) = scan(value.get()) else {
            return Message::Invalid(RecordError::TooDeep(key.into_owned()));
        };
        suspicious |= scan.suspicious_escape;
        let (placement, text_copy) = if schema::is_awkward_name(&key) {
            (Placement::Unindex, false)
        } else {
            let shape = schema::top_level(&key);
            let placement = place(shape, value, &scan);
            (placement, shape == Shape::Flat || placement == Placement::Unindex)
        };
        record.fields.push(Field {
            key,
            value,
            placement,
            text_copy,
        });
    }
    if suspicious {
        // serde_json skips nested values without decoding their strings, so a lone surrogate
        // escape (`\ud800`) would pass through to OpenSearch and be refused there. Only a
        // message with a `\uD…` escape pays for this decoding parse.
        if let Err(e) = serde_json::from_str::<serde_json::Value>(message) {
            return Message::Invalid(e.into());
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

/// Decides where a top-level value goes so that its mapping accepts it.
fn place(shape: Shape, value: &RawValue, scan: &Scan) -> Placement {
    match shape {
        Shape::Keyword | Shape::Text | Shape::Date => {
            if is_scalar_or_scalar_array(value) {
                Placement::Keep
            } else {
                Placement::Unindex
            }
        }
        Shape::Flat if scan.longest_string > MAX_FLAT_STRING => Placement::Unindex,
        Shape::Flat => match first_byte(value) {
            b'{' | b'n' => Placement::Keep,
            b'[' if array_of_objects(value) => Placement::Keep,
            _ => Placement::Wrap,
        },
        Shape::Object(children) => {
            if fits_object(children, value) {
                Placement::Keep
            } else {
                Placement::Unindex
            }
        }
    }
}

fn first_byte(value: &RawValue) -> u8 {
    value.get().as_bytes().first().copied().unwrap_or(b' ')
}

/// A scalar, or an array (of arrays) of scalars: what a `keyword`, `text` or `date` field takes.
fn is_scalar_or_scalar_array(value: &RawValue) -> bool {
    match first_byte(value) {
        b'{' => false,
        b'[' => serde_json::from_str::<Vec<&RawValue>>(value.get())
            .map(|items| items.iter().all(|v| is_scalar_or_scalar_array(v)))
            .unwrap_or(false),
        _ => true,
    }
}

/// `[]`, or an array whose elements are all objects or null: what `flat_object` takes.
fn array_of_objects(value: &RawValue) -> bool {
    serde_json::from_str::<Vec<&RawValue>>(value.get())
        .map(|items| items.iter().all(|v| matches!(first_byte(v), b'{' | b'n')))
        .unwrap_or(false)
}

/// An object (or array of objects, or null) whose mapped children all fit their shapes.
fn fits_object(children: &[(&str, Shape)], value: &RawValue) -> bool {
    match first_byte(value) {
        b'n' => true,
        b'[' => serde_json::from_str::<Vec<&RawValue>>(value.get())
            .map(|items| items.iter().all(|v| first_byte(v) != b'[' && fits_object(children, v)))
            .unwrap_or(false),
        b'{' => {
            let Ok(TopLevel(pairs)) = serde_json::from_str::<TopLevel<'_>>(value.get()) else {
                return false;
            };
            pairs.iter().all(|(key, v)| match schema::child(children, key) {
                None => true,
                Some(Shape::Keyword | Shape::Text | Shape::Date) => is_scalar_or_scalar_array(v),
                Some(Shape::Flat) => matches!(first_byte(v), b'{' | b'n') || array_of_objects(v),
                Some(Shape::Object(grandchildren)) => fits_object(grandchildren, v),
            })
        }
        _ => false,
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
    #[error("nesting deeper than {MAX_NESTING} levels in field {0:?}")]
    TooDeep(String),
}

/// What one pass over a raw value found.
#[derive(Debug, Default)]
struct Scan {
    /// The longest string token, in raw (escaped) bytes: never less than its decoded size.
    longest_string: usize,
    /// A `\uD…` escape was seen: the value may hold a lone surrogate.
    suspicious_escape: bool,
}

/// One pass over a top-level value's bytes. serde_json skips nested [`RawValue`]s without a
/// depth limit and without decoding their strings, so this finds what it lets through:
/// nesting deeper than [`MAX_NESTING`] (the record's own object counts as one level), and
/// escapes that may be lone surrogates. It also measures the longest string, which decides
/// whether a free-form subtree can be indexed. Strings are skipped with `memchr`.
fn scan(raw: &str) -> Option<Scan> {
    let b = raw.as_bytes();
    let (mut i, mut depth) = (0, 1usize);
    let mut scan = Scan::default();
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i;
                i += 1;
                while let Some(off) = memchr::memchr2(b'"', b'\\', &b[i..]) {
                    i += off;
                    if b[i] == b'"' {
                        break;
                    }
                    scan.suspicious_escape |= b.get(i + 1) == Some(&b'u') && matches!(b.get(i + 2), Some(b'd' | b'D'));
                    i += 2;
                }
                scan.longest_string = scan.longest_string.max(i.saturating_sub(start + 1));
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return None;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Some(scan)
}

/// A string that borrows from the input when it has no escapes. serde's own
/// `Deserialize for Cow<str>` always allocates.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

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
        assert_eq!(r.fields[4].value.get(), r#"{"a" : [1, 2]}"#);
        assert!(matches!(r.fields[0].key, Cow::Borrowed(_)));
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
        assert_eq!(r.fields[1].value.get(), r#""B""#);
    }

    fn placements(message: &str) -> Vec<(String, Placement, bool)> {
        record(message)
            .fields
            .into_iter()
            .map(|f| (f.key.into_owned(), f.placement, f.text_copy))
            .collect()
    }

    #[test]
    fn fields_are_placed_where_their_mapping_accepts_them() {
        use Placement::*;
        let long = "x".repeat(MAX_FLAT_STRING + 1);
        let msg = format!(
            r#"{{"eventVersion":"1.08","eventName":["a",["b"]],"userAgent":{{"x":1}},"requestParameters":{{"a":1}},
            "responseElements":"{{\"stringified\":true}}","additionalEventData":[{{"a":1}},null],
            "serviceEventDetails":[1,2],"insightDetails":{{"big":"{long}"}},"userIdentity":{{"type":"Root","sessionContext":{{"attributes":{{"mfaAuthenticated":"true"}}}},"extra":{{"any":[1]}}}},
            "tlsDetails":{{"tlsVersion":{{"oops":1}}}},"resources":[{{"ARN":"a"}},{{"ARN":"b","other":{{}}}}],
            "p_log_type":"AWS.CloudTrail","p_enrichment":{{"a":1}},"_id":"x","@timestamp":"t","a.b":1,"":2,"source":{{}}}}"#
        );
        assert_eq!(
            placements(&msg),
            vec![
                ("eventVersion".into(), Keep, false),
                ("eventName".into(), Keep, false),
                ("userAgent".into(), Unindex, true),
                ("requestParameters".into(), Keep, true),
                ("responseElements".into(), Wrap, true),
                ("additionalEventData".into(), Keep, true),
                ("serviceEventDetails".into(), Wrap, true),
                ("insightDetails".into(), Unindex, true),
                ("userIdentity".into(), Keep, false),
                ("tlsDetails".into(), Unindex, true),
                ("resources".into(), Keep, false),
                ("p_log_type".into(), Wrap, true),
                ("p_enrichment".into(), Keep, true),
                ("_id".into(), Unindex, false),
                ("@timestamp".into(), Unindex, false),
                ("a.b".into(), Unindex, false),
                ("".into(), Unindex, false),
                ("source".into(), Unindex, false),
            ]
        );
    }

    #[test]
    fn wrong_shapes_inside_known_objects_unindex_the_whole_object() {
        let p = placements(r#"{"eventVersion":"1","userIdentity":{"sessionContext":{"sessionIssuer":"str"}}}"#);
        assert_eq!(p[1].1, Placement::Unindex);
        let p = placements(r#"{"eventVersion":"1","userIdentity":"AWS Internal","resources":[[{"ARN":"a"}]]}"#);
        assert_eq!((p[1].1, p[2].1), (Placement::Unindex, Placement::Unindex));
        let p = placements(r#"{"eventVersion":"1","userIdentity":null,"resources":null,"requestParameters":null}"#);
        assert!(p.iter().all(|f| f.1 == Placement::Keep), "{p:?}");
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
            (deep, "nesting deeper than 100 levels in field \"x\""),
        ] {
            match classify(&msg) {
                Message::Invalid(e) => assert!(e.to_string().contains(why), "{why}: {e}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }
}
