//! Stage 4: bulk encoding. Log events are written as NDJSON into one reusable body buffer,
//! cut into chunks under `BULK_MAX_BYTES`, with each item's byte range recorded so that a
//! partial retry re-slices the body instead of re-encoding.

use std::ops::Range;

use serde::Deserialize;

use super::document::{self, DocKind, Origin};
use crate::config::Config;
use crate::ingest::{Envelope, LogEvent};
use crate::signals::{Enrichment, Signals};

/// One bulk item inside a [`BulkChunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Position of the log event in the envelope's `logEvents`.
    pub event: usize,
    /// Both lines (action and document, newlines included) within the chunk's body.
    pub range: Range<usize>,
    /// Where the document line starts; the action line is `range.start..source_start`.
    pub source_start: usize,
    /// What the document holds.
    pub kind: DocKind,
    /// Times this item was already sent: kept across retries and 413 splits, so an item's
    /// attempt budget is its own, however its body is cut.
    pub attempts: u32,
}

/// A `_bulk` request body and its items, reused from one chunk to the next.
#[derive(Debug, Default)]
pub struct BulkChunk {
    body: Vec<u8>,
    items: Vec<Item>,
}

/// The `_index` and `_id` of an item, read back from its action line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Target {
    /// The daily index.
    #[serde(rename = "_index")]
    pub index: String,
    /// The document id; `None` for an `index` action without one (time-series collections).
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
}

/// `{"create": {...}}`, or `{"index": {...}}` without `_id`.
#[derive(Deserialize)]
struct ActionLine {
    #[serde(alias = "index")]
    create: Target,
}

impl BulkChunk {
    /// An empty chunk with room for `capacity` body bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            body: Vec::with_capacity(capacity),
            items: Vec::new(),
        }
    }

    /// The NDJSON body to send, exactly.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The items, in body order (the order of the bulk response's `items`).
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// True when the chunk holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the chunk, keeping its allocations.
    pub fn clear(&mut self) {
        self.body.clear();
        self.items.clear();
    }

    /// The action and document lines of `item`.
    pub fn item_bytes(&self, item: &Item) -> &[u8] {
        &self.body[item.range.clone()]
    }

    /// The document line of `item`, without its newline.
    pub fn source(&self, item: &Item) -> &[u8] {
        &self.body[item.source_start..item.range.end - 1]
    }

    /// The `_index` and `_id` of `item`, parsed from its action line.
    pub fn target(&self, item: &Item) -> Result<Target, serde_json::Error> {
        serde_json::from_slice::<ActionLine>(&self.body[item.range.start..item.source_start]).map(|a| a.create)
    }

    /// Appends one item written by `write` (both lines, newlines included), recording its
    /// byte range. Used for bodies that do not come from an envelope, like dead letters.
    pub fn push_item(&mut self, event: usize, kind: DocKind, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.body.len();
        write(&mut self.body);
        let source_start = start + memchr_newline(&self.body[start..]) + 1;
        self.items.push(Item {
            event,
            range: start..self.body.len(),
            source_start,
            kind,
            attempts: 0,
        });
    }

    /// Sets every item's attempt count (after `n` sends of the body they came from).
    pub fn set_attempts(&mut self, n: u32) {
        for item in &mut self.items {
            item.attempts = n;
        }
    }

    /// Replaces this chunk's content with the chosen items of `from`, copying their bytes
    /// as they are: the retry path re-slices, it never re-encodes.
    pub fn copy_items<'i>(&mut self, from: &BulkChunk, items: impl IntoIterator<Item = &'i Item>) {
        self.clear();
        for item in items {
            let start = self.body.len();
            self.body.extend_from_slice(from.item_bytes(item));
            self.items.push(Item {
                event: item.event,
                range: start..self.body.len(),
                source_start: start + (item.source_start - item.range.start),
                kind: item.kind,
                attempts: item.attempts,
            });
        }
    }
}

/// Encodes an envelope's log events into successive chunks of at most `bulk_max_bytes`.
///
/// A single item larger than the cap travels alone in its own chunk rather than being
/// dropped (CloudWatch caps events at 256 KiB, below the smallest accepted cap).
#[derive(Debug)]
pub struct BulkEncoder<'a> {
    config: &'a Config,
    origin: Origin<'a>,
    events: &'a [LogEvent<'a>],
    next: usize,
    enrichment: Option<&'a Enrichment>,
    signals: Signals,
    full_text: bool,
}

impl<'a> BulkEncoder<'a> {
    /// An encoder over the events of `envelope`.
    pub fn new(config: &'a Config, envelope: &'a Envelope<'a>) -> Self {
        Self {
            config,
            origin: Origin::of(config, envelope),
            events: &envelope.log_events,
            next: 0,
            enrichment: None,
            signals: Signals::default(),
            full_text: config.full_text_subtrees.enabled(None),
        }
    }

    /// Whether CloudTrail documents carry the `@json` text copies (the resolved
    /// `FULL_TEXT_SUBTREES`; without this call, as if the cluster were not known).
    pub fn with_full_text(mut self, full_text: bool) -> Self {
        self.full_text = full_text;
        self
    }

    /// Adds enrichment and detections to every CloudTrail document.
    pub fn with_enrichment(mut self, enrichment: &'a Enrichment) -> Self {
        self.enrichment = Some(enrichment).filter(|e| !e.is_empty());
        self
    }

    /// The rule matches of the events encoded so far.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Log events not yet encoded.
    pub fn remaining(&self) -> usize {
        self.events.len() - self.next
    }

    /// Fills `chunk` (cleared first) with the next items. Returns false when every event
    /// has been encoded and the chunk is empty.
    pub fn next_chunk(&mut self, chunk: &mut BulkChunk) -> bool {
        chunk.clear();
        let max = self.config.bulk_max_bytes;
        while let Some(event) = self.events.get(self.next) {
            let start = chunk.body.len();
            let kind = document::write_document(
                &mut chunk.body,
                self.config,
                &self.origin,
                event,
                self.full_text,
                self.enrichment,
                Some(&mut self.signals),
            );
            if chunk.body.len() > max && !chunk.items.is_empty() {
                // Does not fit: leave it for the next chunk. One wasted encode per chunk.
                chunk.body.truncate(start);
                break;
            }
            let source_start = start + memchr_newline(&chunk.body[start..]) + 1;
            chunk.items.push(Item {
                event: self.next,
                range: start..chunk.body.len(),
                source_start,
                kind,
                attempts: 0,
            });
            self.next += 1;
        }
        !chunk.items.is_empty()
    }
}

/// The action line never contains a raw newline (JSON escapes them), so the first one
/// ends it.
fn memchr_newline(bytes: &[u8]) -> usize {
    bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::borrow::Cow;

    fn envelope(messages: &[String]) -> Envelope<'static> {
        Envelope {
            message_type: Cow::Borrowed("DATA_MESSAGE"),
            owner: Cow::Borrowed("111122223333"),
            log_group: Cow::Borrowed("g"),
            log_stream: Cow::Borrowed("s"),
            subscription_filters: vec![],
            policy_level: None,
            log_events: messages
                .iter()
                .enumerate()
                .map(|(i, m)| LogEvent {
                    id: Cow::Owned(i.to_string()),
                    timestamp: 1_700_000_000_000,
                    message: Cow::Owned(m.clone()),
                })
                .collect(),
        }
    }

    fn messages(n: usize, pad: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    r#"{{"eventVersion":"1.08","eventID":"id-{i}","recipientAccountId":"1","eventTime":"2024-05-06T07:08:09Z","pad":"{}"}}"#,
                    "x".repeat(pad)
                )
            })
            .collect()
    }

    fn chunks(config: &Config, env: &Envelope<'_>) -> Vec<(Vec<u8>, Vec<Item>)> {
        let mut enc = BulkEncoder::new(config, env);
        let mut chunk = BulkChunk::default();
        let mut out = Vec::new();
        while enc.next_chunk(&mut chunk) {
            out.push((chunk.body().to_vec(), chunk.items().to_vec()));
        }
        assert_eq!(enc.remaining(), 0);
        out
    }

    #[test]
    fn chunks_stay_under_the_cap_and_keep_every_event_in_order() {
        let config = Config {
            bulk_max_bytes: 64 * 1024,
            ..Config::default()
        };
        let env = envelope(&messages(300, 900));
        let all = chunks(&config, &env);
        assert!(all.len() > 3, "{} chunks", all.len());
        let mut next = 0;
        for (body, items) in &all {
            assert!(body.len() <= config.bulk_max_bytes);
            assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), items.len() * 2);
            for item in items {
                assert_eq!(item.event, next);
                next += 1;
            }
        }
        assert_eq!(next, 300);
    }

    #[test]
    fn an_oversized_item_travels_alone() {
        let config = Config {
            bulk_max_bytes: 64 * 1024,
            ..Config::default()
        };
        let mut msgs = messages(3, 10);
        msgs[1] = messages(1, 100 * 1024).remove(0);
        let all = chunks(&config, &envelope(&msgs));
        let sizes: Vec<usize> = all.iter().map(|(_, items)| items.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert!(all[1].0.len() > config.bulk_max_bytes);
    }

    #[test]
    fn item_ranges_slice_action_and_source() {
        let env = envelope(&messages(3, 1));
        let config = Config::default();
        let mut chunk = BulkChunk::default();
        BulkEncoder::new(&config, &env).next_chunk(&mut chunk);
        for (i, item) in chunk.items().iter().enumerate() {
            let target = chunk.target(item).unwrap();
            assert_eq!(target.index, "cwl-2024.05.06");
            assert_eq!(target.id, Some(format!("1:id-{i}")));
            let doc: Value = serde_json::from_slice(chunk.source(item)).unwrap();
            assert_eq!(doc["eventID"], format!("id-{i}"));
        }
    }

    #[test]
    fn copy_items_re_slices_without_re_encoding() {
        let env = envelope(&messages(5, 3));
        let config = Config::default();
        let mut chunk = BulkChunk::default();
        BulkEncoder::new(&config, &env).next_chunk(&mut chunk);
        let mut retry = BulkChunk::default();
        let picked: Vec<&Item> = chunk.items().iter().filter(|i| i.event % 2 == 1).collect();
        retry.copy_items(&chunk, picked.iter().copied());
        assert_eq!(retry.items().len(), 2);
        let expected: Vec<u8> = picked.iter().flat_map(|i| chunk.item_bytes(i).to_vec()).collect();
        assert_eq!(retry.body(), expected.as_slice());
        assert_eq!(retry.target(&retry.items()[1]).unwrap().id.as_deref(), Some("1:id-3"));
        assert_eq!(retry.source(&retry.items()[0]), chunk.source(picked[0]));
    }

    #[test]
    fn index_actions_read_back_without_id() {
        let env = envelope(&messages(2, 1));
        let config = Config {
            bulk_action: crate::config::BulkAction::IndexWithoutId,
            ..Config::default()
        };
        let mut chunk = BulkChunk::default();
        BulkEncoder::new(&config, &env).next_chunk(&mut chunk);
        for item in chunk.items() {
            let target = chunk.target(item).unwrap();
            assert_eq!((target.index.as_str(), target.id), ("cwl-2024.05.06", None));
        }
    }

    #[test]
    fn full_text_copies_follow_the_resolved_setting_and_promotion_does_not() {
        let msg = r#"{"eventVersion":"1.08","eventID":"e","requestParameters":{"bucketName":"b","policy":"{\"a\":1}"},"errorCode":"AccessDenied","event":{"action":"mine"}}"#;
        let env = envelope(&[msg.to_owned()]);
        let config = Config::default();
        for (full_text, expect_copy) in [(false, false), (true, true)] {
            let mut chunk = BulkChunk::default();
            BulkEncoder::new(&config, &env)
                .with_full_text(full_text)
                .next_chunk(&mut chunk);
            let doc: Value = serde_json::from_slice(chunk.source(&chunk.items()[0])).unwrap();
            assert_eq!(doc.get("@json").is_some(), expect_copy, "{doc}");
            assert_eq!(doc["aws"]["cloudtrail"]["requestParameters"]["bucketName"], "b");
            assert_eq!(
                doc["event"],
                serde_json::json!({"outcome": "failure"}),
                "ours, not the record's"
            );
            assert_eq!(doc["@unindexed"]["event"]["action"], "mine");
        }
        // Not told the cluster: FULL_TEXT_SUBTREES=auto keeps the copies (never less searchable).
        let mut chunk = BulkChunk::default();
        BulkEncoder::new(&config, &env).next_chunk(&mut chunk);
        let doc: Value = serde_json::from_slice(chunk.source(&chunk.items()[0])).unwrap();
        assert!(doc.get("@json").is_some());
    }

    #[test]
    fn empty_envelope_gives_no_chunk() {
        assert!(chunks(&Config::default(), &envelope(&[])).is_empty());
    }
}
