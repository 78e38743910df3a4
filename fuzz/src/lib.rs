//! Harness code shared by the fuzz targets: how each target drives the library, and the
//! oracles that turn a wrong bulk body into a crash.
//!
//! The targets in `fuzz_targets/` are one-line wrappers over [`envelope`] and [`transform`],
//! so the same code runs under libFuzzer, on a saved reproducer, or from a plain test.

use std::collections::HashSet;
use std::fmt;
use std::io::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::config::{Config, MIN_BULK_MAX_BYTES, RawMessage};
use cwl_indexer::index::{DocKind, Origin, write_item};
use cwl_indexer::ingest::AwsLogs;
use cwl_indexer::ingest::{self as envelope, LogEvent, MessageType};
use cwl_indexer::ingest::{self as record, Message};
use cwl_indexer::pipeline::WriterSink;
use cwl_indexer::{Indexer, Summary};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The decompressed-size cap the envelope target runs with: the smallest the configuration
/// accepts, so a bomb costs at most 1 MiB per execution.
pub const CAP: usize = 1 << 20;

/// The log event id the transform target gives every message (a real CloudWatch id).
pub const EVENT_ID: &str = "36010536146196727355785148015460470112373318713735266304";
/// The log event timestamp the transform target gives every message (2024-03-01T23:59:59Z).
pub const EVENT_MS: i64 = 1_709_337_599_000;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("current-thread runtime")
    })
}

/// One indexer per process, as a warm Lambda container has: its buffers are reused across
/// executions, so state leaking from one payload into the next would show up here too.
fn indexer() -> &'static Indexer {
    static INDEXER: OnceLock<Indexer> = OnceLock::new();
    INDEXER.get_or_init(|| {
        Indexer::new(Config {
            max_payload_bytes: CAP,
            // The smallest chunk size allowed, so fuzz-sized payloads are cut into several chunks.
            bulk_max_bytes: MIN_BULK_MAX_BYTES,
            ..Config::default()
        })
    })
}

/// Gzip + standard base64, as CloudWatch Logs encodes `awslogs.data`.
pub fn encode_data(json: &[u8]) -> String {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(json).expect("write to Vec");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("finish gzip"))
}

/// Runs the whole handler on `data` with a writer sink; returns the summary, whether it
/// succeeded, and the bulk NDJSON it produced.
fn run_handler(data: String) -> (Summary, bool, Vec<u8>) {
    let event = CloudWatchLogsEvent {
        awslogs: AwsLogs { data },
    };
    let mut sink = WriterSink(Vec::new());
    let (summary, result) = runtime().block_on(indexer().process(&event, &mut sink, None));
    (summary, result.is_ok(), sink.0)
}

/// Target `envelope`. Three paths over the same bytes:
///
/// 1. the bytes as `awslogs.data` text: `decode_payload` then `parse_envelope`, and the whole
///    handler when the envelope parsed;
/// 2. the bytes as an already decompressed envelope: `parse_envelope`;
/// 3. structure-aware: the bytes gzipped and base64-encoded here, then the whole handler, so
///    the fuzzer works on the envelope JSON and still reaches the transform and the chunker.
///
/// Every path must return, never panic; a handler that accepts a data message must produce
/// exactly one valid bulk item per log event (see [`check_bulk_body`]).
pub fn envelope(data: &[u8]) {
    // 1. As awslogs.data. The handler takes a String, so only UTF-8 text can reach it.
    if let Ok(text) = std::str::from_utf8(data) {
        let mut buf = Vec::new();
        if envelope::decode_payload(text, CAP, &mut buf).is_ok() {
            assert!(
                buf.len() <= CAP,
                "decode_payload returned {} bytes over the cap {CAP}",
                buf.len()
            );
            if envelope::parse_envelope(&buf).is_ok() {
                handler_and_check(text.to_owned(), &buf);
            }
        }
    }

    // 2. As the decompressed envelope.
    let parsed_ok = envelope::parse_envelope(data).is_ok();

    // 3. Structure-aware: compress it ourselves and run the handler. Without an envelope
    // the handler can only fail at the same place, so skip the gzip in that case... except
    // now and then, to keep the handler's own error path exercised.
    if parsed_ok || data.len() < 64 {
        handler_and_check(encode_data(data), data);
    }
}

/// Runs the handler on `data` (whose decompressed envelope is `json`) and checks the body.
fn handler_and_check(data: String, json: &[u8]) {
    let (summary, ok, body) = run_handler(data);
    let parsed = envelope::parse_envelope(json);
    match (&parsed, ok) {
        (Ok(env), true) => match env.kind().expect("parse_envelope checked the kind") {
            MessageType::Control => {
                assert!(body.is_empty(), "a control message produced a bulk body");
                assert_eq!(summary.events_in, 0);
            }
            MessageType::Data => {
                assert_eq!(summary.events_in, env.log_events.len(), "events_in");
                assert_eq!(summary.built_bytes, body.len(), "built_bytes is not the body's length");
                let kinds = summary.cloudtrail
                    + summary.other_json
                    + summary.text
                    + summary.invalid
                    + summary.vpcflow
                    + summary.guardduty
                    + summary.resolver
                    + summary.waf;
                assert_eq!(kinds, env.log_events.len(), "one document per log event");
                check_bulk_body(&body, env.log_events.len());
            }
        },
        // A writer sink over a Vec cannot fail, so a valid envelope must succeed...
        (Ok(_), false) => panic!("the handler failed on an envelope parse_envelope accepts"),
        // ...and an invalid one must fail (json is the exact decompressed payload here).
        (Err(e), true) => panic!("the handler accepted a payload parse_envelope refuses: {e}"),
        (Err(_), false) => assert!(body.is_empty(), "a failed decode still produced a body"),
    }
}

/// Checks a whole bulk body: `2 * items` lines, each pair a valid bulk item.
pub fn check_bulk_body(body: &[u8], items: usize) {
    let lines = bulk_lines(body, 2 * items);
    assert_eq!(lines.len(), 2 * items, "{} lines for {items} log events", lines.len());
    for pair in lines.chunks(2) {
        check_item(pair[0], pair[1]);
    }
}

/// Known bugs the harness is told to tolerate, so that a long run is not stopped by the same
/// crash over and over: `CWL_FUZZ_TOLERATE=newline,event-id` (comma-separated), or [`tolerate`] for
/// the calling thread. Without either, every check is strict.
fn tolerates(bug: &str) -> bool {
    static ENV: OnceLock<Vec<String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        std::env::var("CWL_FUZZ_TOLERATE")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect()
    });
    env.iter().any(|b| b == bug) || TOLERATED.with_borrow(|t| t.iter().any(|b| b == bug))
}

thread_local! {
    static TOLERATED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Tolerates the known bugs `bugs` (see [`tolerates`]) on this thread from now on.
pub fn tolerate(bugs: &[String]) {
    TOLERATED.with_borrow_mut(|t| *t = bugs.to_vec());
}

/// Splits NDJSON into lines, asserting the body ends with a newline, as `_bulk` requires.
///
/// Known bug `newline`: a record's raw subtree copied byte for byte keeps the raw newlines
/// (JSON whitespace) the message had, splitting its document line in two. Tolerated, when
/// the split lines do not come to `expected`, the body is cut into JSON values instead, and
/// only if a raw newline sits inside one of them.
fn bulk_lines(body: &[u8], expected: usize) -> Vec<&[u8]> {
    if body.is_empty() {
        return Vec::new();
    }
    assert_eq!(body.last(), Some(&b'\n'), "the bulk body does not end with a newline");
    let lines: Vec<&[u8]> = body[..body.len() - 1].split(|&b| b == b'\n').collect();
    if lines.len() == expected || !tolerates("newline") {
        return lines;
    }
    let mut values = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<IgnoredAny>();
    let mut start = 0;
    while let Some(Ok(_)) = stream.next() {
        let end = stream.byte_offset();
        let value = body[start..end].trim_ascii();
        values.push(value);
        start = end;
    }
    let raw_newline_inside = values.iter().any(|v| v.contains(&b'\n'));
    if raw_newline_inside && values.len() == expected {
        values
    } else {
        lines
    }
}

/// Target `transform`: one log event's message, through `record::classify` and
/// `document::write_item`, with `RAW_MESSAGE` both `auto` and `always`.
///
/// The oracle: the item is exactly two lines; the action line is `{"create":{"_index":..,
/// "_id":..}}` with a well-formed daily index and a usable `_id`; the document line is a
/// JSON object that OpenSearch would parse (valid JSON, no lone surrogate, no duplicate key
/// among the fields the encoder writes) carrying the `@` fields; the document kind agrees
/// with `classify`, and `@message` is the message byte for byte wherever it is written.
pub fn transform(data: &[u8]) {
    let message = String::from_utf8_lossy(data);
    let expected = match record::classify(&message) {
        Message::CloudTrail(_) => DocKind::CloudTrail,
        Message::OtherJson => DocKind::OtherJson,
        Message::Text => DocKind::Text,
        Message::Invalid(_) => DocKind::Invalid,
    };
    let origin = Origin {
        owner: "111122223333",
        log_group: "aws-cloudtrail-logs-111122223333",
        log_stream: "111122223333_CloudTrail_us-east-1",
        flow_format: None,
    };
    let event = LogEvent {
        id: EVENT_ID.into(),
        timestamp: EVENT_MS,
        message: message.as_ref().into(),
    };
    for raw_message in [RawMessage::Auto, RawMessage::Always] {
        let config = Config {
            raw_message,
            ..Config::default()
        };
        let mut out = Vec::new();
        let kind = write_item(&mut out, &config, &origin, &event);
        let lines = bulk_lines(&out, 2);
        if matches!(
            kind,
            DocKind::VpcFlow | DocKind::GuardDuty | DocKind::Resolver | DocKind::Waf
        ) {
            // Another log type (a flow line in the default format, a finding, a Resolver or
            // WAF record) goes to its own family index with its own fields; this oracle covers
            // the CloudTrail path.
            assert!(
                matches!(expected, DocKind::OtherJson | DocKind::Invalid | DocKind::Text),
                "a family document from a message classify calls {expected:?}"
            );
            assert_eq!(lines.len(), 2, "one family item must be exactly two lines");
            continue;
        }
        assert_eq!(kind, expected, "write_item and classify disagree on the kind");
        assert_eq!(
            lines.len(),
            2,
            "one item must be exactly two lines, got {}",
            lines.len()
        );
        let doc = check_item(lines[0], lines[1]);
        assert_eq!(doc.id.as_deref(), Some(EVENT_ID), "@id");
        let keeps_message = kind != DocKind::CloudTrail || raw_message == RawMessage::Always;
        if keeps_message {
            assert_eq!(
                doc.message.as_deref(),
                Some(message.as_ref()),
                "@message is not the message"
            );
        } else {
            assert!(
                doc.message.is_none(),
                "@message on a CloudTrail document with RAW_MESSAGE=auto"
            );
        }
        assert_eq!(doc.parse_error, kind == DocKind::Invalid, "@parse_error iff invalid");
        if kind != DocKind::CloudTrail {
            // Only the @ fields: nothing from a message that is not CloudTrail is spread.
            assert!(
                doc.keys.iter().all(|k| k.starts_with('@')),
                "fields spread from a non-CloudTrail message: {:?}",
                doc.keys
            );
        }
    }
}

/// What [`check_item`] read from a document line.
#[derive(Debug, Default)]
pub struct Doc {
    /// The top-level keys, in order.
    pub keys: Vec<String>,
    /// `@id`.
    pub id: Option<String>,
    /// `@message`.
    pub message: Option<String>,
    /// Whether `@parse_error` is present.
    pub parse_error: bool,
}

/// Checks one bulk item (action line, document line) and returns what the document holds.
pub fn check_item(action: &[u8], document: &[u8]) -> Doc {
    // Valid JSON, as the brief's oracle says, for both lines.
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(action) {
        panic!("action line is not JSON ({e}): {}", String::from_utf8_lossy(action));
    }
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(document) {
        panic!("document line is not JSON ({e}): {}", shorten(document));
    }
    check_action(action);
    check_document(document)
}

fn check_action(action: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(action).expect("checked above");
    let obj = v.as_object().expect("action line is not an object");
    assert_eq!(obj.len(), 1, "action line has other keys than create: {v}");
    let create = obj
        .get("create")
        .and_then(|c| c.as_object())
        .expect("no create object in the action line");
    let mut keys: Vec<&str> = create.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["_id", "_index"], "create must hold exactly _index and _id: {v}");
    let index = create["_index"].as_str().expect("_index is not a string");
    let id = create["_id"].as_str().expect("_id is not a string");
    // A log type family's daily index is `cwl-<family>-YYYY.MM.DD`: check its date the same way.
    let family = ["vpcflow-", "guardduty-", "resolver-", "waf-"]
        .iter()
        .find_map(|f| index.strip_prefix("cwl-").and_then(|rest| rest.strip_prefix(f)))
        .map(|date| format!("cwl-{date}"));
    let index = family.as_deref().unwrap_or(index);
    let b = index.as_bytes();
    let daily = b.len() == 14
        && index.starts_with("cwl-")
        && b[8] == b'.'
        && b[11] == b'.'
        && [4..8, 9..11, 12..14]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit));
    assert!(daily, "_index is not cwl-YYYY.MM.DD: {index:?}");
    // Known bug `event-id`: the log event id is used as `_id` unchecked (empty, or over
    // OpenSearch's 512 bytes), when the envelope is not CloudWatch's own.
    if !tolerates("event-id") {
        assert!(!id.is_empty(), "empty _id");
        assert!(id.len() <= 512, "_id over 512 bytes: {} bytes", id.len());
    }
    // Duplicate keys in the action line would be refused too.
    check_unique_keys(action, 2);
}

fn check_document(document: &[u8]) -> Doc {
    // The top level, values kept raw: numbers are not decoded, since a huge number such as
    // `1e400` is valid JSON that OpenSearch takes as text in keyword and flat_object fields
    // (serde_json::Value would refuse it).
    let obj: std::collections::BTreeMap<String, Box<RawValue>> = match serde_json::from_slice(document) {
        Ok(v) => v,
        Err(e) => panic!("document line is not a JSON object ({e}): {}", shorten(document)),
    };
    // OpenSearch decodes every string; a lone surrogate escape (`\ud800`), which the
    // IgnoredAny pass lets through, would be refused.
    if let Some(at) = lone_surrogate(document) {
        panic!("lone surrogate escape at byte {at}: {}", shorten(document));
    }
    // The encoder writes the top level and the @unindexed, @json and source objects itself;
    // a duplicate key there makes OpenSearch refuse the document ("Duplicate field"). The
    // record's own subtrees are copied byte for byte and not checked here.
    check_unique_keys(document, 1);
    for own in ["@unindexed", "@json", "source"] {
        if let Some(raw) = obj.get(own) {
            check_unique_keys(raw.get().as_bytes(), 1);
        }
    }
    let str_field = |k: &str| {
        obj.get(k).map(|v| {
            serde_json::from_str::<String>(v.get()).unwrap_or_else(|e| panic!("{k} is not a string ({e}): {}", v.get()))
        })
    };
    for k in ["@id", "@timestamp", "@owner", "@log_group", "@log_stream"] {
        assert!(str_field(k).is_some(), "document without {k}");
    }
    let ts = str_field("@timestamp").expect("checked");
    let t = ts.as_bytes();
    let iso = t.len() == 24 && t[4] == b'-' && t[10] == b'T' && t[19] == b'.' && t[23] == b'Z';
    assert!(iso, "@timestamp is not YYYY-MM-DDTHH:MM:SS.mmmZ: {ts:?}");
    Doc {
        keys: obj.keys().cloned().collect(),
        id: str_field("@id"),
        message: str_field("@message"),
        parse_error: obj.contains_key("@parse_error"),
    }
}

/// The offset of the first `\uXXXX` escape in `json`'s strings that is half a surrogate pair
/// without its other half. `json` is valid JSON (checked before).
pub fn lone_surrogate(json: &[u8]) -> Option<usize> {
    let hex = |i: usize| -> Option<u16> {
        let h = json.get(i..i + 4)?;
        u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let (mut i, mut in_string) = (0, false);
    let mut pending_high: Option<usize> = None;
    while i < json.len() {
        let b = json[i];
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                if let Some(at) = pending_high {
                    return Some(at);
                }
                in_string = false;
                i += 1;
            }
            b'\\' if json.get(i + 1) == Some(&b'u') => {
                let unit = hex(i + 2)?;
                match (pending_high.take(), unit) {
                    (None, 0xD800..=0xDBFF) => pending_high = Some(i),
                    (None, 0xDC00..=0xDFFF) => return Some(i),
                    (Some(_), 0xDC00..=0xDFFF) => {}
                    (Some(at), _) => return Some(at),
                    (None, _) => {}
                }
                i += 6;
            }
            _ => {
                if let Some(at) = pending_high {
                    return Some(at);
                }
                i += if b == b'\\' { 2 } else { 1 };
            }
        }
    }
    pending_high
}

/// Asserts that objects nested at most `depth` levels deep in `json` have no duplicate key
/// (deeper values are the record's own, copied byte for byte).
pub fn check_unique_keys(json: &[u8], depth: usize) {
    let mut de = serde_json::Deserializer::from_slice(json);
    // Depth beyond serde_json's own recursion limit is reported as an error, not a panic.
    if let Err(e) = (UniqueKeys {
        depth,
        path: String::new(),
    })
    .deserialize(&mut de)
    {
        panic!("{e}: {}", shorten(json));
    }
}

struct UniqueKeys {
    depth: usize,
    path: String,
}

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth == 0 {
            d.deserialize_ignored_any(IgnoredAny).map(|_| ())
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // An array does not count as an object level.
        while seq
            .next_element_seed(UniqueKeys {
                depth: self.depth,
                path: format!("{}[]", self.path),
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{key}", self.path);
            map.next_value_seed(UniqueKeys {
                depth: self.depth - 1,
                path: path.clone(),
            })?;
            if !seen.insert(key) {
                return Err(de::Error::custom(format!("duplicate key {path:?}")));
            }
        }
        Ok(())
    }
}

/// The first and last bytes of a long line, for panic messages.
fn shorten(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.chars().count() <= 600 {
        return s.into_owned();
    }
    let head: String = s.chars().take(300).collect();
    let tail: String = s
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head} [...] {tail}")
}
