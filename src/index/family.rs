//! What the per-family document writers (VPC flow logs, GuardDuty findings, Resolver, WAF)
//! share: the bulk action line of a daily `<prefix>-<family>-YYYY.MM.DD` index, timestamps, JSON
//! objects written straight into the body buffer, the `@unindexed` collector, and index
//! templates built from a field table so that the writer and the mapping cannot disagree.

use std::fmt::Display;
use std::io::Write as _;
use std::net::IpAddr;

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{Map, Value, json};

use super::json::write_json_str;
use crate::ingest::lenient::Lenient;
use crate::ingest::parse_event_time;

/// The templates' `version`, bumped with their layout.
pub const FAMILY_TEMPLATE_VERSION: u64 = 1;

/// Above the `<prefix>-*` document template (100), whose pattern also matches every family's
/// indices: only the highest-priority composable template applies to a new index. Below the
/// dead-letter template (200), whose pattern no family index matches anyway.
pub const FAMILY_TEMPLATE_PRIORITY: u64 = 150;

/// The log event a document is made from, with its envelope: what `document::Origin` and
/// `envelope::LogEvent` hold.
#[derive(Debug, Clone, Copy)]
pub struct EventMeta<'a> {
    /// The CloudWatch Logs event id, written as `@id`.
    pub id: &'a str,
    /// The `_id` to use when the record has no identity of its own: the log event id, or its
    /// stable hash when that cannot be an `_id` (`document::event_id`).
    pub doc_id: &'a str,
    /// The log event timestamp, in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// `@owner`.
    pub owner: &'a str,
    /// `@log_group`.
    pub log_group: &'a str,
    /// `@log_stream`.
    pub log_stream: &'a str,
    /// Whether the action carries the `_id` (`create`), or not (`index`, for a Serverless
    /// time-series collection: `BULK_ACTION` of the configuration).
    pub with_id: bool,
}

impl EventMeta<'_> {
    /// The record's own time, or (none, or unreadable) the log event's: what dates a document
    /// and names its daily index.
    pub fn time_or_logged(&self, record_time: Option<DateTime<Utc>>) -> DateTime<Utc> {
        record_time.unwrap_or_else(|| time_from_millis(self.timestamp_ms))
    }
}

/// What the GeoIP databases say about an address, for `source.geo`/`source.as` (and
/// `destination.*` in flows), from a [`crate::signals::Geo`] of a public address
/// (`index::document` looks private ones up not at all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoFacts {
    /// ISO 3166-1 alpha-2.
    pub country_iso_code: Option<String>,
    /// English name.
    pub country_name: Option<String>,
    /// `(lat, lon)`.
    pub location: Option<(f64, f64)>,
    /// Autonomous system number.
    pub as_number: Option<u32>,
    /// Autonomous system organisation.
    pub as_organization: Option<String>,
}

impl From<crate::signals::Geo> for GeoFacts {
    fn from(g: crate::signals::Geo) -> Self {
        Self {
            country_iso_code: g.country_iso_code,
            country_name: g.country_name,
            location: g.location,
            as_number: g.as_number,
            as_organization: g.as_organization,
        }
    }
}

/// Looks an address up; `None` for addresses not to enrich (private ones) or when no database
/// is loaded.
pub type GeoLookup<'g> = &'g dyn Fn(IpAddr) -> Option<GeoFacts>;

/// A log event timestamp as a time; out-of-range values become the epoch, deterministically,
/// so a redelivery lands on the same index (as `document` does).
pub fn time_from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms)
        .filter(|t| (1000..=9999).contains(&t.year()))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Epoch seconds as a time, when its year has four digits (so every index name does).
pub fn time_from_seconds(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0).filter(|t| (1000..=9999).contains(&t.year()))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form `@timestamp` has in every document.
pub fn write_timestamp(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    // Infallible: writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis().min(999)
    );
}

/// `<prefix>-<family>-YYYY.MM.DD` of `time` in UTC.
pub fn write_index_name(out: &mut Vec<u8>, prefix: &str, family: &str, time: &DateTime<Utc>) {
    out.extend_from_slice(prefix.as_bytes());
    out.push(b'-');
    out.extend_from_slice(family.as_bytes());
    let _ = write!(out, "-{:04}.{:02}.{:02}", time.year(), time.month(), time.day());
}

/// The daily index name, as a String (for summaries and tests, not the hot path).
pub fn index_name(prefix: &str, family: &str, time: &DateTime<Utc>) -> String {
    let mut out = Vec::new();
    write_index_name(&mut out, prefix, family, time);
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends the action line: `create` with the `_id`, so that a redelivered record finds its
/// `_id` taken and is answered 409 instead of being rewritten; or, where `meta` says the
/// cluster refuses custom `_id`s (a Serverless time-series collection), `index` without one.
pub fn write_action(
    out: &mut Vec<u8>,
    meta: &EventMeta<'_>,
    prefix: &str,
    family: &str,
    time: &DateTime<Utc>,
    id: &str,
) {
    if !meta.with_id {
        out.extend_from_slice(br#"{"index":{"_index":""#);
        write_index_name(out, prefix, family, time);
        out.extend_from_slice(b"\"}}\n");
        return;
    }
    out.extend_from_slice(br#"{"create":{"_index":""#);
    write_index_name(out, prefix, family, time);
    out.extend_from_slice(br#"","_id":"#);
    write_json_str(out, id);
    out.extend_from_slice(b"}}\n");
}

/// The fields every family document opens with: `@id`, `@timestamp`, `@owner`, `@log_group`,
/// `@log_stream`, and `@message` when given.
pub fn write_origin(doc: &mut Obj<'_>, meta: &EventMeta<'_>, time: &DateTime<Utc>, message: Option<&str>) {
    doc.str("@id", meta.id);
    doc.time("@timestamp", time);
    doc.str("@owner", meta.owner);
    doc.str("@log_group", meta.log_group);
    doc.str("@log_stream", meta.log_stream);
    doc.opt_str("@message", message);
}

/// Opens one family item: the action line ([`write_action`], `create` under `id`), then the
/// document with the fields every family document opens with ([`write_origin`]). The writer
/// adds its own fields to the document returned; dropping it ends the line.
pub fn open_item<'o>(
    out: &'o mut Vec<u8>,
    prefix: &str,
    family: &str,
    meta: &EventMeta<'_>,
    id: &str,
    time: &DateTime<Utc>,
    message: Option<&str>,
) -> Obj<'o> {
    write_action(out, meta, prefix, family, time, id);
    let mut doc = Obj::document(out);
    write_origin(&mut doc, meta, time, message);
    doc
}

/// Opens the document's `event` object with ECS `event.kind` and the family's
/// `event.dataset`, and `event.category` when given; the writer adds the rest.
pub fn event<'d>(doc: &'d mut Obj<'_>, kind: &str, dataset: &str, category: Option<&str>) -> Obj<'d> {
    let mut event = doc.child("event");
    event.str("kind", kind);
    event.str("dataset", dataset);
    if let Some(category) = category {
        event.strs("category", [category]);
    }
    event
}

/// Writes `ip` as `obj`'s `ip`, with the facts `geo` has for it (`geo`, `as`).
pub fn ip_with_geo(obj: &mut Obj<'_>, ip: &IpAddr, geo: Option<GeoLookup<'_>>) {
    obj.ip("ip", ip);
    if let Some(facts) = geo.and_then(|lookup| lookup(*ip)) {
        obj.geo_facts(&facts);
    }
}

/// An address read leniently, as [`ip_with_geo`] writes it; a value of another shape goes to
/// `@unindexed` under `path`.
pub fn lenient_ip_with_geo<'f>(
    obj: &mut Obj<'_>,
    kept: &mut Unindexed<'f>,
    path: &'static str,
    l: &'f Lenient<'_, IpAddr>,
    geo: Option<GeoLookup<'_>>,
) {
    match l {
        Lenient::Value(ip) => ip_with_geo(obj, ip, geo),
        Lenient::Invalid(raw) => kept.json(path, raw),
        Lenient::Absent => {}
    }
}

/// A JSON object written straight into the buffer. A nested object is opened eagerly and
/// taken back when nothing was written into it, so absent groups (`destination` of a NODATA
/// record) leave no `{}` behind. Dropping it closes it; dropping the document also ends its
/// NDJSON line.
pub struct Obj<'o> {
    out: &'o mut Vec<u8>,
    /// Where this object's `,"key":{` starts, to take it back when it stays empty.
    start: usize,
    /// Where its members start: nothing written yet while `out.len() == body`.
    body: usize,
    /// The document itself, closed even when empty.
    root: bool,
}

impl<'o> Obj<'o> {
    /// Opens the document object: the document line of a bulk item, ended with `\n` when dropped.
    pub fn document(out: &'o mut Vec<u8>) -> Self {
        let start = out.len();
        out.push(b'{');
        let body = out.len();
        Self {
            out,
            start,
            body,
            root: true,
        }
    }

    /// Writes `"key":` after a comma when needed. Keys are this crate's own field names
    /// (ASCII letters, digits, `@._-`), which need no escaping.
    pub fn key(&mut self, key: &str) {
        debug_assert!(
            key.bytes().all(|b| b.is_ascii_alphanumeric() || b"@._-".contains(&b)),
            "{key}"
        );
        if self.out.len() > self.body {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string member.
    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_json_str(self.out, value);
    }

    /// A string member, when there is a value.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    /// A number member: an integer, or a finite float.
    pub fn num(&mut self, key: &str, value: impl Display) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    /// A boolean member.
    pub fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// A date member, in the form of `@timestamp`.
    pub fn time(&mut self, key: &str, t: &DateTime<Utc>) {
        self.key(key);
        self.out.push(b'"');
        write_timestamp(self.out, t);
        self.out.push(b'"');
    }

    /// An address member, in its canonical text form (which needs no escaping).
    pub fn ip(&mut self, key: &str, ip: &IpAddr) {
        self.key(key);
        let _ = write!(self.out, "\"{ip}\"");
    }

    /// An array of addresses, left out when empty.
    pub fn ips(&mut self, key: &str, ips: &[IpAddr]) {
        if ips.is_empty() {
            return;
        }
        self.key(key);
        self.out.push(b'[');
        for (i, ip) in ips.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let _ = write!(self.out, "\"{ip}\"");
        }
        self.out.push(b']');
    }

    /// An array of strings, left out when empty.
    pub fn strs<'s>(&mut self, key: &str, items: impl IntoIterator<Item = &'s str>) {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return;
        }
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_json_str(self.out, item);
        }
        self.out.push(b']');
    }

    /// A raw JSON value, copied. Newlines and carriage returns can only be whitespace between
    /// tokens (JSON strings cannot hold them unescaped), and would split the NDJSON line: they
    /// become spaces.
    pub fn raw(&mut self, key: &str, raw: &str) {
        self.key(key);
        let start = self.out.len();
        self.out.extend_from_slice(raw.as_bytes());
        for b in &mut self.out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }

    /// `{"lat":..,"lon":..}`, for a `geo_point`.
    pub fn geo_point(&mut self, key: &str, (lat, lon): (f64, f64)) {
        self.key(key);
        let _ = write!(self.out, r#"{{"lat":{lat},"lon":{lon}}}"#);
    }

    /// Opens a nested object member; it is closed when dropped, and leaves nothing when nothing
    /// was written into it.
    pub fn child(&mut self, key: &str) -> Obj<'_> {
        let start = self.out.len();
        self.key(key);
        self.out.push(b'{');
        let body = self.out.len();
        Obj {
            out: &mut *self.out,
            start,
            body,
            root: false,
        }
    }

    /// `geo` and `as` members from GeoIP facts, as the CloudTrail documents have them.
    pub fn geo_facts(&mut self, facts: &GeoFacts) {
        {
            let mut geo = self.child("geo");
            geo.opt_str("country_iso_code", facts.country_iso_code.as_deref());
            geo.opt_str("country_name", facts.country_name.as_deref());
            if let Some(point) = facts.location.filter(|(lat, lon)| valid_lat_lon(*lat, *lon)) {
                geo.geo_point("location", point);
            }
        }
        if let Some(number) = facts.as_number {
            let mut asn = self.child("as");
            asn.num("number", number);
            if let Some(org) = &facts.as_organization {
                asn.child("organization").str("name", org);
            }
        }
    }
}

impl Drop for Obj<'_> {
    fn drop(&mut self) {
        if self.root {
            self.out.extend_from_slice(b"}\n");
        } else if self.out.len() == self.body {
            self.out.truncate(self.start);
        } else {
            self.out.push(b'}');
        }
    }
}

/// A latitude and longitude a `geo_point` accepts.
pub fn valid_lat_lon(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// A value kept under `@unindexed` instead of its typed field, because it has the wrong shape
/// for the field's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept<'a> {
    /// Text, written as a JSON string (a flow log field).
    Text(&'a str),
    /// A JSON value, copied as it was (a finding's field).
    Json(&'a str),
}

/// The values of one document that go under `@unindexed`, keyed by the dotted path of the field
/// they could not go into. `@unindexed` is mapped `enabled: false`: stored, never indexed, so it
/// accepts anything.
#[derive(Debug, Default)]
pub struct Unindexed<'a> {
    items: Vec<(&'static str, Kept<'a>)>,
}

impl<'a> Unindexed<'a> {
    /// Keeps a text value for `path`.
    pub fn text(&mut self, path: &'static str, value: &'a str) {
        self.items.push((path, Kept::Text(value)));
    }

    /// Keeps a JSON value for `path`.
    pub fn json(&mut self, path: &'static str, raw: &'a str) {
        self.items.push((path, Kept::Json(raw)));
    }

    /// True when nothing is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes `"@unindexed":{...}` into `doc`, or nothing when nothing is kept. A path kept twice
    /// (an array of bad addresses) keeps its first value: a JSON object has one value per key.
    pub fn write(&self, doc: &mut Obj<'_>) {
        let mut obj = doc.child("@unindexed");
        for (i, (path, value)) in self.items.iter().enumerate() {
            if self.items[..i].iter().any(|(p, _)| p == path) {
                continue;
            }
            match value {
                Kept::Text(s) => obj.str(path, s),
                Kept::Json(raw) if copyable(raw) => obj.raw(path, raw),
                // Kept as its text: stored all the same, and nothing OpenSearch can refuse.
                Kept::Json(raw) => obj.str(path, raw),
            }
        }
    }
}

/// The deepest nesting a JSON value copied under `@unindexed` may have, as for CloudTrail
/// records (`record::MAX_NESTING`): OpenSearch's own parser stops at 1,000 levels.
pub const MAX_RAW_NESTING: usize = 100;

/// True when a raw JSON value can be copied as it is: nesting within [`MAX_RAW_NESTING`] and
/// no `\uD...` escape. serde_json skips raw values without a depth limit and without decoding
/// their strings, so a lone surrogate or a 100,000-deep array would otherwise reach OpenSearch,
/// which refuses the whole document. (`\uD000`-`\uD7FF` are refused too: harmless, rare.)
fn copyable(raw: &str) -> bool {
    let b = raw.as_bytes();
    let (mut i, mut depth, mut in_string) = (0, 0usize, false);
    while i < b.len() {
        match (in_string, b[i]) {
            (true, b'\\') => {
                if b.get(i + 1) == Some(&b'u') && matches!(b.get(i + 2), Some(b'd' | b'D')) {
                    return false;
                }
                i += 1;
            }
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'{' | b'[') => {
                depth += 1;
                if depth > MAX_RAW_NESTING {
                    return false;
                }
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    true
}

/// A keyword (or text) field read leniently: its value, or its JSON text under `@unindexed`.
pub fn kw<'f>(
    obj: &mut Obj<'_>,
    kept: &mut Unindexed<'f>,
    key: &str,
    path: &'static str,
    l: &'f Lenient<'_, Cow<'_, str>>,
) {
    match l {
        Lenient::Value(v) => obj.str(key, v),
        Lenient::Invalid(raw) => kept.json(path, raw),
        Lenient::Absent => {}
    }
}

/// A date field read leniently: a string [`parse_event_time`] reads, else `@unindexed`.
pub fn date<'f>(
    obj: &mut Obj<'_>,
    kept: &mut Unindexed<'f>,
    key: &str,
    path: &'static str,
    l: &'f Lenient<'_, Cow<'_, str>>,
) {
    match l {
        Lenient::Value(v) => match parse_event_time(v) {
            Some(t) => obj.time(key, &t),
            None => kept.text(path, v),
        },
        Lenient::Invalid(raw) => kept.json(path, raw),
        Lenient::Absent => {}
    }
}

/// A `long` field read leniently.
pub fn long<'f>(obj: &mut Obj<'_>, kept: &mut Unindexed<'f>, key: &str, path: &'static str, l: &'f Lenient<'_, i64>) {
    match l {
        Lenient::Value(v) => obj.num(key, v),
        Lenient::Invalid(raw) => kept.json(path, raw),
        Lenient::Absent => {}
    }
}

/// How a family field is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `keyword`: JSON strings.
    Keyword,
    /// `text` with a `keyword` sub-field: JSON strings.
    Text,
    /// `date`: JSON strings in the form of `@timestamp`.
    Date,
    /// `long`: JSON integers.
    Long,
    /// `float`: JSON numbers.
    Float,
    /// `ip`: IPv4 or IPv6 addresses as JSON strings.
    Ip,
    /// `boolean`: `true` or `false`.
    Boolean,
    /// `geo_point`: `{"lat": .., "lon": ..}`.
    GeoPoint,
}

fn keyword() -> Value {
    json!({"type": "keyword", "ignore_above": 1024})
}

/// The mapping of one field type. The writer only ever sends values of the right shape (the
/// others go to `@unindexed`); `ignore_malformed` is the second line of defence, so that a
/// writer bug costs one field, never a refused document.
pub fn mapping(t: FieldType) -> Value {
    match t {
        FieldType::Keyword => keyword(),
        FieldType::Text => json!({"type": "text", "norms": false, "fields": {"keyword": keyword()}}),
        FieldType::Date => json!({
            "type": "date",
            "format": "strict_date_optional_time||epoch_millis",
            "ignore_malformed": true
        }),
        FieldType::Long => json!({"type": "long", "ignore_malformed": true}),
        FieldType::Float => json!({"type": "float", "ignore_malformed": true}),
        FieldType::Ip => json!({"type": "ip", "ignore_malformed": true}),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::GeoPoint => json!({"type": "geo_point", "ignore_malformed": true}),
    }
}

/// The fields every document has, mapped as in the `<prefix>-*` template so that searches
/// across families treat them alike.
pub fn common_properties() -> Map<String, Value> {
    let text = json!({"type": "text", "norms": false});
    [
        ("@timestamp", json!({"type": "date"})),
        ("@id", keyword()),
        ("@owner", keyword()),
        ("@log_group", keyword()),
        ("@log_stream", keyword()),
        ("@message", text.clone()),
        ("@parse_error", text),
        ("@unindexed", json!({"type": "object", "enabled": false})),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Nests a table of dotted paths into `properties`: `source.ip` becomes
/// `{"source": {"properties": {"ip": ...}}}`. Objects have `dynamic: false` from the root.
pub fn properties(fields: &[(&str, FieldType)]) -> Map<String, Value> {
    fn insert(node: &mut Map<String, Value>, path: &[&str], value: Value) {
        match path {
            [] => {}
            [leaf] => {
                node.insert((*leaf).to_owned(), value);
            }
            [part, rest @ ..] => {
                let entry = node
                    .entry((*part).to_owned())
                    .or_insert_with(|| json!({"type": "object", "properties": {}}));
                if !entry.get("properties").is_some_and(Value::is_object) {
                    // A leaf where an object is needed: the table test forbids it; the object wins.
                    *entry = json!({"type": "object", "properties": {}});
                }
                if let Some(Value::Object(children)) = entry.get_mut("properties") {
                    insert(children, rest, value);
                }
            }
        }
    }
    let mut root = Map::new();
    for (path, t) in fields {
        let parts: Vec<&str> = path.split('.').collect();
        insert(&mut root, &parts, mapping(*t));
    }
    root
}

/// The template name for a family: `cwl-indexer-<prefix>-<family>`.
pub fn template_name(prefix: &str, family: &str) -> String {
    format!("cwl-indexer-{prefix}-{family}")
}

/// The composable index template for `<prefix>-<family>-*`: the common fields and the family's
/// table, `dynamic: false` (a field the table does not name is kept in `_source` but never
/// mapped, so it cannot conflict), with `replicas` and an ILM policy (Elasticsearch) if given.
pub fn family_template(
    prefix: &str,
    family: &str,
    fields: &[(&str, FieldType)],
    replicas: Option<u32>,
    lifecycle: Option<&str>,
) -> Value {
    let mut props = common_properties();
    props.extend(properties(fields));
    let mut template = json!({
        "index_patterns": [format!("{prefix}-{family}-*")],
        "priority": FAMILY_TEMPLATE_PRIORITY,
        "version": FAMILY_TEMPLATE_VERSION,
        "_meta": {"managed_by": "cwl-indexer", "family": family},
        "template": {
            "settings": {"index.codec": "best_compression"},
            "mappings": {"dynamic": false, "properties": props}
        }
    });
    let settings = &mut template["template"]["settings"];
    if let Some(n) = replicas {
        settings["index.number_of_replicas"] = json!(n);
    }
    if let Some(policy) = lifecycle {
        settings["index.lifecycle.name"] = json!(policy);
    }
    template
}

/// Test helpers shared by the families' tests.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// The text of `fixtures/<path>`; a missing fixture panics naming it.
    pub fn fixture(path: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The one item `write` appends, split ([`split_item`]) and its document checked against
    /// the family's `fields` and `free` prefixes ([`check_document`]): (action, document).
    pub fn checked_item(
        write: impl FnOnce(&mut Vec<u8>),
        fields: &[(&str, FieldType)],
        free: &[&str],
    ) -> (Value, Value) {
        let mut out = Vec::new();
        write(&mut out);
        let (action, doc) = split_item(&out);
        check_document(&doc, fields, free).unwrap_or_else(|e| panic!("{e}: {doc}"));
        (action, doc)
    }

    /// Splits one bulk item into its action and document, checking it is exactly two lines, each
    /// ended with `\n` as NDJSON requires (the next item starts right after).
    pub fn split_item(out: &[u8]) -> (Value, Value) {
        let text = std::str::from_utf8(out).expect("UTF-8");
        assert!(text.ends_with('\n'), "the document line is ended: {text}");
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "{text}");
        (
            serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0])),
            serde_json::from_str(lines[1]).unwrap_or_else(|e| panic!("{e}: {}", lines[1])),
        )
    }

    /// Checks that every leaf of `doc` is a field of the table (or a common field, or under
    /// one of `free` prefixes) with a value its mapping accepts.
    pub fn check_document(doc: &Value, fields: &[(&str, FieldType)], free: &[&str]) -> Result<(), String> {
        fn walk(path: &str, v: &Value, leaves: &mut Vec<(String, Value)>) {
            match v {
                Value::Object(m) if !(m.len() == 2 && m.contains_key("lat") && m.contains_key("lon")) => {
                    for (k, child) in m {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        walk(&p, child, leaves);
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| walk(path, i, leaves)),
                _ => leaves.push((path.to_owned(), v.clone())),
            }
        }
        let mut leaves = Vec::new();
        let Value::Object(top) = doc else {
            return Err("not an object".into());
        };
        for (k, v) in top {
            if k == "@unindexed" {
                continue;
            }
            walk(k, v, &mut leaves);
        }
        let common = [
            "@timestamp",
            "@id",
            "@owner",
            "@log_group",
            "@log_stream",
            "@message",
            "@parse_error",
        ];
        for (path, value) in leaves {
            if common.contains(&path.as_str()) {
                if !value.is_string() {
                    return Err(format!("{path}: {value}"));
                }
                continue;
            }
            if free.iter().any(|f| path.starts_with(f)) {
                if !value.is_string() {
                    return Err(format!("{path}: {value} under a free prefix must be a string"));
                }
                continue;
            }
            let Some((_, t)) = fields.iter().find(|(p, _)| *p == path) else {
                return Err(format!("{path} is not in the field table"));
            };
            let ok = match t {
                FieldType::Keyword | FieldType::Text => value.is_string(),
                FieldType::Date => value.as_str().is_some_and(|s| parse_event_time(s).is_some()),
                FieldType::Long => value.is_i64() || value.is_u64(),
                FieldType::Float => value.is_number(),
                FieldType::Ip => value.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
                FieldType::Boolean => value.is_boolean(),
                FieldType::GeoPoint => value["lat"]
                    .as_f64()
                    .zip(value["lon"].as_f64())
                    .is_some_and(|(a, o)| valid_lat_lon(a, o)),
            };
            if !ok {
                return Err(format!("{path}: {value} does not fit {t:?}"));
            }
        }
        Ok(())
    }

    /// The table has no duplicate path and no path that is also an object of another.
    pub fn check_table(fields: &[(&str, FieldType)]) {
        for (i, (a, _)) in fields.iter().enumerate() {
            for (b, _) in &fields[i + 1..] {
                assert_ne!(a, b, "duplicate {a}");
                assert!(
                    !b.starts_with(&format!("{a}.")) && !a.starts_with(&format!("{b}.")),
                    "{a} and {b}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn empty_objects_leave_nothing_and_commas_stay_right() {
        let mut out = Vec::new();
        {
            let mut doc = Obj::document(&mut out);
            doc.str("a", "x\"y");
            {
                let mut empty = doc.child("empty");
                let _inner = empty.child("inner");
            }
            {
                let mut s = doc.child("source");
                s.num("port", 22);
                s.child("geo").opt_str("country_name", None);
                s.ip("ip", &"2001:db8::1".parse().unwrap());
            }
            doc.child("last");
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":\"x\\\"y\",\"source\":{\"port\":22,\"ip\":\"2001:db8::1\"}}\n"
        );
        let mut out = Vec::new();
        Obj::document(&mut out).child("only");
        assert_eq!(out, b"{}\n");
    }

    #[test]
    fn raw_values_stay_on_one_line_and_unindexed_keeps_first_values() {
        let mut out = Vec::new();
        let mut kept = Unindexed::default();
        kept.json("a.b", "{\n \"x\": [1,\r\n 2]}");
        kept.text("c", "not a port");
        kept.text("c", "second");
        assert!(!kept.is_empty());
        {
            let mut doc = Obj::document(&mut out);
            kept.write(&mut doc);
        }
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        assert_eq!(doc, json!({"@unindexed": {"a.b": {"x": [1, 2]}, "c": "not a port"}}));
    }

    #[test]
    fn raw_values_opensearch_would_refuse_are_kept_as_text() {
        assert!(copyable(r#"{"a":["\\ud800 is text here", "\u00e9"]}"#));
        assert!(!copyable(r#"["\ud800"]"#));
        assert!(!copyable(r#""\uDC00""#));
        let deep = format!("{}{}", "[".repeat(MAX_RAW_NESTING + 1), "]".repeat(MAX_RAW_NESTING + 1));
        assert!(!copyable(&deep));
        assert!(copyable(&deep[1..deep.len() - 1]));
        let mut kept = Unindexed::default();
        kept.json("a", r#"["\ud800"]"#);
        kept.json("b", &deep);
        let mut out = Vec::new();
        kept.write(&mut Obj::document(&mut out));
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["@unindexed"]["a"], r#"["\ud800"]"#);
        assert_eq!(doc["@unindexed"]["b"].as_str(), Some(deep.as_str()));
    }

    #[test]
    fn times_and_index_names() {
        assert_eq!(
            index_name("cwl", "vpcflow", &time_from_millis(1_418_530_010_000)),
            "cwl-vpcflow-2014.12.14"
        );
        assert_eq!(time_from_millis(i64::MAX), DateTime::UNIX_EPOCH);
        assert_eq!(time_from_seconds(253_402_300_800), None, "year 10000");
        assert!(time_from_seconds(253_402_300_799).is_some());
        for (s, expected) in [
            ("2017-10-31T23:16:23.824Z", Some("2017-10-31T23:16:23.824Z")),
            ("2017-10-31T23:16:23Z", Some("2017-10-31T23:16:23.000Z")),
            ("2025-02-25 20:40:06.721", Some("2025-02-25T20:40:06.721Z")),
            ("2025-02-25 20:40:06.000000000", Some("2025-02-25T20:40:06.000Z")),
            ("2018-05-11T16:56:39.976+02:00", Some("2018-05-11T14:56:39.976Z")),
            ("yesterday", None),
            ("", None),
        ] {
            let got = parse_event_time(s).map(|t| {
                let mut out = Vec::new();
                write_timestamp(&mut out, &t);
                String::from_utf8(out).unwrap()
            });
            assert_eq!(got.as_deref(), expected, "{s}");
        }
    }

    #[test]
    fn the_action_line_is_a_create_with_an_escaped_id() {
        let mut out = Vec::new();
        let meta = EventMeta {
            id: "e",
            doc_id: "e",
            timestamp_ms: 0,
            owner: "o",
            log_group: "g",
            log_stream: "s",
            with_id: true,
        };
        write_action(&mut out, &meta, "cwl", "guardduty", &time_from_millis(0), "a\"b");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"create\":{\"_index\":\"cwl-guardduty-1970.01.01\",\"_id\":\"a\\\"b\"}}\n"
        );
    }

    #[test]
    fn tables_nest_into_properties() {
        let fields = [
            ("source.ip", FieldType::Ip),
            ("source.geo.location", FieldType::GeoPoint),
            ("event.start", FieldType::Date),
        ];
        check_table(&fields);
        let t = family_template("cwl", "vpcflow", &fields, Some(1), Some("p"));
        assert_eq!(t["index_patterns"], json!(["cwl-vpcflow-*"]));
        assert_eq!(t["priority"], 150);
        let props = &t["template"]["mappings"]["properties"];
        assert_eq!(props["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(
            props["source"]["properties"]["geo"]["properties"]["location"]["type"],
            "geo_point"
        );
        assert_eq!(props["@unindexed"]["enabled"], false);
        assert_eq!(t["template"]["mappings"]["dynamic"], false);
        assert_eq!(t["template"]["settings"]["index.number_of_replicas"], 1);
        assert_eq!(t["template"]["settings"]["index.lifecycle.name"], "p");
        assert_eq!(template_name("cwl", "vpcflow"), "cwl-indexer-cwl-vpcflow");
    }
}
