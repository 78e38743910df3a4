//! Stage 3: one log event becomes one bulk item: the `create` action line (daily index,
//! deterministic `_id`) and the document line, written straight into the body buffer.

use std::io::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, Utc};

use super::family::{EventMeta, GeoFacts, GeoLookup, time_from_millis as millis_to_time, write_timestamp};
use super::guardduty_doc::{self, FindingOutcome, FindingSummary};
use super::json::{write_escaped, write_json_str};
use super::promoted::write_promoted;
use super::{resolver_doc, vpcflow_doc, waf_doc};
use crate::config::{BulkAction, Config, FlowFormat, RawMessage, Severity};
use crate::ingest::event_id::{MAX_ID_BYTES, id_parts, parse_event_time};
use crate::ingest::guardduty::SeverityLabel;
use crate::ingest::{self, Envelope, Field, LogEvent, LogType, Message, Placement, Record};
use crate::signals::{self, Enrichment, Findings, Geo, SignalMatch, Signals};

/// What kind of document an item holds, for counters and the dead-letter path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKind {
    /// A CloudTrail record, fields at the top level.
    CloudTrail,
    /// JSON that is not CloudTrail, kept as `@message`.
    OtherJson,
    /// Plain text, kept as `@message`.
    Text,
    /// A record that failed to parse, kept as `@message` with `@parse_error`.
    Invalid,
    /// A VPC flow log record in `<prefix>-vpcflow-*` (one that did not split into its
    /// format's fields too, with `@parse_error`).
    VpcFlow,
    /// A GuardDuty finding version in `<prefix>-guardduty-*`.
    GuardDuty,
    /// A Route 53 Resolver query in `<prefix>-resolver-*`.
    Resolver,
    /// An AWS WAF request in `<prefix>-waf-*`.
    Waf,
}

impl DocKind {
    /// A stable lower-case name for logs and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudTrail => "cloudtrail",
            Self::OtherJson => "other_json",
            Self::Text => "text",
            Self::Invalid => "invalid",
            Self::VpcFlow => "vpcflow",
            Self::GuardDuty => "guardduty",
            Self::Resolver => "resolver",
            Self::Waf => "waf",
        }
    }
}

/// The envelope fields every document of a batch carries.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `@owner`.
    pub owner: &'a str,
    /// `@log_group`.
    pub log_group: &'a str,
    /// `@log_stream`.
    pub log_stream: &'a str,
    /// The log group's flow log format, when the configuration makes it a flow-log group
    /// (`Config::flow_logs.format_for`, looked up once per envelope).
    pub flow_format: Option<&'a FlowFormat>,
}

impl<'a> Origin<'a> {
    /// The origin of an envelope's events, its flow log format looked up once.
    pub fn of(config: &'a Config, envelope: &'a Envelope<'a>) -> Self {
        Self {
            owner: &envelope.owner,
            log_group: &envelope.log_group,
            log_stream: &envelope.log_stream,
            flow_format: config.flow_logs.format_for(&envelope.log_group),
        }
    }
}

/// The start of a `create` action line, and of an `index` one (no `_id`).
const CREATE: &[u8] = br#"{"create":{"_index":""#;
const INDEX: &[u8] = br#"{"index":{"_index":""#;

/// Appends the action line and the document line for `event` to `out`, without enrichment,
/// with `@json` copies as `config.full_text_subtrees` says for a cluster not known.
pub fn write_item(out: &mut Vec<u8>, config: &Config, origin: &Origin<'_>, event: &LogEvent<'_>) -> DocKind {
    write_document(
        out,
        config,
        origin,
        event,
        config.full_text_subtrees.enabled(None),
        None,
        None,
    )
}

/// Appends the action line and the document line for `event` to `out`, in the index of its
/// log type. With `full_text`, a CloudTrail record's free-form fields get `@json` text copies.
/// With `enrichment`, a CloudTrail record also gets `source.geo`/`source.as` and `signal`, and
/// the other families GeoIP facts for their public addresses; rule matches and GuardDuty
/// findings are kept in the invocation's [`Signals`] for its alert.
pub fn write_document(
    out: &mut Vec<u8>,
    config: &Config,
    origin: &Origin<'_>,
    event: &LogEvent<'_>,
    full_text: bool,
    enrichment: Option<&Enrichment>,
    signals: Option<&mut Signals>,
) -> DocKind {
    let message = &event.message;
    let keep_message = config.raw_message == RawMessage::Always;
    let doc_id = event_id(event);
    let meta = EventMeta {
        id: &event.id,
        doc_id: &doc_id,
        timestamp_ms: event.timestamp,
        owner: origin.owner,
        log_group: origin.log_group,
        log_stream: origin.log_stream,
        with_id: config.bulk_action == BulkAction::CreateWithId,
    };
    let geo_db = enrichment.map(|e| &e.geo).filter(|g| !g.is_empty());
    let lookup = |ip: IpAddr| {
        geo_db
            .filter(|_| signals::geo::is_public(&ip))
            .map(|db| GeoFacts::from(db.lookup(ip)))
    };
    let geo: Option<GeoLookup<'_>> = geo_db.map(|_| &lookup as GeoLookup<'_>);
    let prefix = &config.index_prefix;
    match ingest::classify_event(&config.flow_logs, origin.flow_format, message) {
        LogType::CloudTrail(r) => write_classic(
            out,
            config,
            origin,
            event,
            Message::CloudTrail(r),
            full_text,
            enrichment.zip(signals),
        ),
        LogType::OtherJson => write_classic(out, config, origin, event, Message::OtherJson, false, None),
        LogType::Text => write_classic(out, config, origin, event, Message::Text, false, None),
        LogType::Invalid(e) => write_classic(out, config, origin, event, Message::Invalid(e), false, None),
        LogType::VpcFlow(parsed) => {
            vpcflow_doc::write_flow_item(out, prefix, &meta, message, &parsed, keep_message, geo);
            DocKind::VpcFlow
        }
        LogType::GuardDuty(parsed) => {
            if let (FindingOutcome::Finding(f), Some(signals)) = (
                guardduty_doc::write_finding_item(out, prefix, &meta, message, &parsed, geo),
                signals,
            ) && let Some(m) = finding_match(&f)
            {
                signals.matches.push(m);
            }
            DocKind::GuardDuty
        }
        LogType::Resolver(q) => {
            resolver_doc::write_resolver_item(out, prefix, &meta, message, &q, keep_message, geo);
            DocKind::Resolver
        }
        LogType::Waf(w) => {
            waf_doc::write_waf_item(out, prefix, &meta, message, &w, keep_message, geo);
            DocKind::Waf
        }
    }
}

/// Where GuardDuty documents its finding types: the source an alert for a finding names.
const GUARDDUTY_FINDING_TYPES: &str =
    "https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_finding-types-active.html";

/// The alert entry of a GuardDuty finding: its severity label as the alert severity, so
/// `ALERT_MIN_SEVERITY` applies to findings as to rule matches. A finding without a usable
/// severity does not alert. Sample findings alert too ("Generate sample findings" is how an
/// operator tests the path), titled as samples.
fn finding_match(f: &FindingSummary) -> Option<SignalMatch> {
    let severity = match f.label? {
        SeverityLabel::Low => Severity::Low,
        SeverityLabel::Medium => Severity::Medium,
        SeverityLabel::High => Severity::High,
        SeverityLabel::Critical => Severity::Critical,
    };
    let title = f.title.clone().unwrap_or_else(|| f.finding_type.clone());
    let rule = format!("{}{}", signals::GUARDDUTY_RULE_PREFIX, f.finding_type);
    Some(SignalMatch {
        name: rule.clone(),
        rule,
        title: if f.sample { format!("[sample] {title}") } else { title },
        severity,
        // GuardDuty's own finding types carry no ATT&CK tags in the finding; the type's page
        // in GuardDuty's guide is where to read what it means.
        techniques: Vec::new(),
        source: GUARDDUTY_FINDING_TYPES.to_owned(),
        author: None,
        principal: f.resource_ids.first().cloned(),
        source_ip: f.actor_ip.map(|ip| ip.to_string()),
        country: None,
        event_name: Some(f.finding_type.clone()),
        event_time: f.updated_at.clone(),
        index: f.index.clone(),
        id: f.doc_id.clone(),
    })
}

/// The CloudTrail path and the messages kept as `@message`, in `<prefix>-YYYY.MM.DD`.
fn write_classic(
    out: &mut Vec<u8>,
    config: &Config,
    origin: &Origin<'_>,
    event: &LogEvent<'_>,
    message: Message<'_>,
    full_text: bool,
    enrich: Option<(&Enrichment, &mut Signals)>,
) -> DocKind {
    let (kind, record) = match &message {
        Message::CloudTrail(r) => (DocKind::CloudTrail, Some(r)),
        Message::OtherJson => (DocKind::OtherJson, None),
        Message::Text => (DocKind::Text, None),
        Message::Invalid(_) => (DocKind::Invalid, None),
    };
    let time = record
        .and_then(|r| r.event_time.as_deref())
        .and_then(parse_event_time)
        .unwrap_or_else(|| millis_to_time(event.timestamp));

    // Action line. `create`, not `index`: a redelivered event finds its `_id` taken and
    // is answered 409 instead of being rewritten. Serverless time-series collections refuse
    // custom `_id`s: there, `index` without one (`BulkAction::IndexWithoutId`).
    let with_id = config.bulk_action == BulkAction::CreateWithId;
    out.extend_from_slice(if with_id { CREATE } else { INDEX });
    let index_start = out.len();
    write_index_name(out, &config.index_prefix, &time);
    let index_end = out.len();
    if with_id {
        out.extend_from_slice(br#"","_id":""#);
        match record.and_then(cloudtrail_id) {
            Some((account, id)) => {
                if let Some(account) = account {
                    write_escaped(out, account);
                    out.push(b':');
                }
                write_escaped(out, id);
            }
            None => write_escaped(out, &event_id(event)),
        }
    }
    out.extend_from_slice(b"\"}}\n");

    // Document line.
    out.extend_from_slice(br#"{"@id":"#);
    write_json_str(out, &event.id);
    out.extend_from_slice(br#","@timestamp":""#);
    write_timestamp(out, &time);
    out.extend_from_slice(br#"","@owner":"#);
    write_json_str(out, origin.owner);
    out.extend_from_slice(br#","@log_group":"#);
    write_json_str(out, origin.log_group);
    out.extend_from_slice(br#","@log_stream":"#);
    write_json_str(out, origin.log_stream);
    if kind != DocKind::CloudTrail || config.raw_message == RawMessage::Always {
        out.extend_from_slice(br#","@message":"#);
        write_json_str(out, &event.message);
    }
    if let Message::Invalid(e) = &message {
        out.extend_from_slice(br#","@parse_error":"#);
        write_json_str(out, &e.to_string());
    }
    if let Some(record) = record {
        write_fields(out, record, full_text);
        write_promoted(out, &ingest::promote(record));
        let (findings, signals) = match enrich {
            Some((enrichment, signals)) => (enrichment.examine(record, signals), Some(signals)),
            None => {
                let source = signals::source_address(record).map(|(ip, public)| (Geo::unknown(ip), public));
                (
                    Findings {
                        source,
                        rules: Vec::new(),
                    },
                    None,
                )
            }
        };
        if let Some((geo, _)) = &findings.source {
            write_source(out, geo);
        }
        if let Some(severity) = signals::enrich::severity(&findings.rules) {
            write_signal(out, &findings.rules, severity);
            if let Some(signals) = signals {
                let index = String::from_utf8_lossy(&out[index_start..index_end]).into_owned();
                let id = match cloudtrail_id(record) {
                    Some((Some(account), id)) => format!("{account}:{id}"),
                    Some((None, id)) => id.to_owned(),
                    None => event_id(event).into_owned(),
                };
                for rule in &findings.rules {
                    signals.matches.push(SignalMatch {
                        rule: rule.id.clone(),
                        name: rule.name.clone(),
                        title: rule.title.clone(),
                        severity: rule.level,
                        techniques: rule.techniques.clone(),
                        source: rule.source.clone(),
                        author: (rule.origin == signals::Origin::SigmaHq).then(|| rule.author.clone()),
                        principal: text_at(record, &["userIdentity", "arn"])
                            .or_else(|| text_at(record, &["userIdentity", "type"])),
                        source_ip: text_at(record, &["sourceIPAddress"]),
                        country: findings.source.as_ref().and_then(|(g, _)| g.country_iso_code.clone()),
                        event_name: text_at(record, &["eventName"]),
                        event_time: text_at(record, &["eventTime"]),
                        index: index.clone(),
                        id: id.clone(),
                    });
                }
            }
        }
    }
    out.extend_from_slice(b"}\n");
    kind
}

/// `,"signal":{"rules":[ids],"names":[..],"titles":[..],"severity":".."}` and, when the rules
/// carry ATT&CK tags, `,"threat":{"framework":"MITRE ATT&CK","tactic":{"name":[..]},"technique":{"id":[..]}}`.
fn write_signal(out: &mut Vec<u8>, rules: &[std::sync::Arc<signals::RuleInfo>], severity: signals::Severity) {
    let list = |out: &mut Vec<u8>, items: &mut dyn Iterator<Item = &str>| {
        out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, item);
        }
        out.push(b']');
    };
    out.extend_from_slice(br#","signal":{"rules":"#);
    list(out, &mut rules.iter().map(|r| r.id.as_str()));
    out.extend_from_slice(br#","names":"#);
    list(out, &mut rules.iter().map(|r| r.name.as_str()));
    out.extend_from_slice(br#","titles":"#);
    list(out, &mut rules.iter().map(|r| r.title.as_str()));
    out.extend_from_slice(br#","severity":""#);
    out.extend_from_slice(severity.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    let mut tactics: Vec<&str> = Vec::new();
    let mut techniques: Vec<&str> = Vec::new();
    for r in rules {
        for (seen, new) in [(&mut tactics, &r.tactics), (&mut techniques, &r.techniques)] {
            for item in new {
                if !seen.contains(&item.as_str()) {
                    seen.push(item);
                }
            }
        }
    }
    if !tactics.is_empty() || !techniques.is_empty() {
        out.extend_from_slice(br#","threat":{"framework":"MITRE ATT&CK","tactic":{"name":"#);
        list(out, &mut tactics.into_iter());
        out.extend_from_slice(br#"},"technique":{"id":"#);
        list(out, &mut techniques.into_iter());
        out.extend_from_slice(b"}}");
    }
}

/// `,"source":{"ip":..,"geo":{..},"as":{..}}`, with only what is known.
fn write_source(out: &mut Vec<u8>, geo: &Geo) {
    let _ = write!(out, r#","source":{{"ip":"{}""#, geo.ip);
    if geo.country_iso_code.is_some() || geo.location.is_some() {
        out.extend_from_slice(br#","geo":{"#);
        let mut sep = "";
        if let Some(code) = &geo.country_iso_code {
            out.extend_from_slice(br#""country_iso_code":"#);
            write_json_str(out, code);
            sep = ",";
        }
        if let Some(name) = &geo.country_name {
            out.extend_from_slice(sep.as_bytes());
            out.extend_from_slice(br#""country_name":"#);
            write_json_str(out, name);
            sep = ",";
        }
        if let Some((lat, lon)) = geo.location.filter(|(lat, lon)| lat.is_finite() && lon.is_finite()) {
            out.extend_from_slice(sep.as_bytes());
            let _ = write!(out, r#""location":{{"lat":{lat},"lon":{lon}}}"#);
        }
        out.push(b'}');
    }
    if let Some(number) = geo.as_number {
        let _ = write!(out, r#","as":{{"number":{number}"#);
        if let Some(org) = &geo.as_organization {
            out.extend_from_slice(br#","organization":{"name":"#);
            write_json_str(out, org);
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// The string at a path of a record, for alerts (not the hot path).
fn text_at(record: &Record<'_>, path: &[&str]) -> Option<String> {
    let (top, rest) = path.split_first()?;
    let mut value: serde_json::Value =
        serde_json::from_str(record.fields.iter().find(|f| f.key == *top)?.value.get()).ok()?;
    for key in rest {
        value = value.get(*key)?.clone();
    }
    value.as_str().map(str::to_owned)
}

/// Writes a record's fields where their placement says, then the `@unindexed` object and,
/// with `full_text`, the `@json` one.
fn write_fields(out: &mut Vec<u8>, record: &Record<'_>, full_text: bool) {
    let write_key = |out: &mut Vec<u8>, f: &Field<'_>| {
        out.push(b',');
        write_json_str(out, &f.key);
        out.push(b':');
    };
    for f in &record.fields {
        match f.placement {
            Placement::Keep => {
                write_key(out, f);
                write_raw(out, f.value.get());
            }
            Placement::Wrap => {
                write_key(out, f);
                out.extend_from_slice(br#"{"@value":"#);
                write_raw(out, f.value.get());
                out.push(b'}');
            }
            Placement::Unindex => {}
        }
    }
    write_object(
        out,
        "@unindexed",
        record.fields.iter().filter(|f| f.placement == Placement::Unindex),
        |out, f| {
            write_raw(out, f.value.get());
        },
    );
    if !full_text {
        return;
    }
    write_object(out, "@json", record.fields.iter().filter(|f| f.text_copy), |out, f| {
        write_json_str(out, f.value.get());
    });
}

/// Writes `,"name":{"key":<value>,...}` for the fields given, or nothing when there are none.
fn write_object<'f, 'a: 'f>(
    out: &mut Vec<u8>,
    name: &str,
    fields: impl Iterator<Item = &'f Field<'a>>,
    mut value: impl FnMut(&mut Vec<u8>, &Field<'a>),
) {
    let mut open = false;
    for f in fields {
        if open {
            out.push(b',');
        } else {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":{");
            open = true;
        }
        write_json_str(out, &f.key);
        out.push(b':');
        value(out, f);
    }
    if open {
        out.push(b'}');
    }
}

/// Copies a raw JSON value. A raw newline or carriage return can only be whitespace between
/// tokens (JSON strings cannot hold them unescaped), and a pretty-printed record would
/// otherwise split the NDJSON document line: they become spaces.
fn write_raw(out: &mut Vec<u8>, raw: &str) {
    let bytes = raw.as_bytes();
    let start = out.len();
    out.extend_from_slice(bytes);
    if memchr::memchr2(b'\n', b'\r', bytes).is_some() {
        for b in &mut out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }
}

/// The `_id` of a message that is not an identifiable CloudTrail record: its log event id,
/// unless that cannot be an `_id` (empty, or over OpenSearch's 512 bytes); then a SHA-256 of
/// the id, timestamp and message, which a redelivery reproduces.
fn event_id<'e>(event: &'e LogEvent<'_>) -> std::borrow::Cow<'e, str> {
    if !event.id.is_empty() && event.id.len() <= MAX_ID_BYTES {
        return std::borrow::Cow::Borrowed(&event.id);
    }
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(event.id.as_bytes());
    hash.update(b"\0");
    hash.update(event.timestamp.to_le_bytes());
    hash.update(b"\0");
    hash.update(event.message.as_bytes());
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    std::borrow::Cow::Owned(format!("sha256:{hex}"))
}

/// The `(recipientAccountId, eventID)` a CloudTrail record's `_id` is made of: the same
/// event gets the same `_id` whichever trail, batch or back-fill delivers it.
fn cloudtrail_id<'r>(record: &'r Record<'_>) -> Option<(Option<&'r str>, &'r str)> {
    id_parts(record.recipient_account_id.as_deref(), record.event_id.as_deref())
}

/// `<prefix>-YYYY.MM.DD` of `time` in UTC.
pub fn write_index_name(out: &mut Vec<u8>, prefix: &str, time: &DateTime<Utc>) {
    out.extend_from_slice(prefix.as_bytes());
    // Infallible: writing to a Vec cannot fail.
    let _ = write!(out, "-{:04}.{:02}.{:02}", time.year(), time.month(), time.day());
}

/// The daily index name of `time`, as a String (for tests and tools, not the hot path).
pub fn index_name(prefix: &str, time: &DateTime<Utc>) -> String {
    let mut out = Vec::new();
    write_index_name(&mut out, prefix, time);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ADDED_FIELDS;
    use serde_json::{Value, json};
    use std::borrow::Cow;

    const ORIGIN: Origin<'static> = Origin {
        owner: "111122223333",
        log_group: "CloudTrail/logs",
        log_stream: "111122223333_CloudTrail_eu-west-1",
        flow_format: None,
    };

    fn event(message: &str, timestamp: i64) -> LogEvent<'_> {
        LogEvent {
            id: Cow::Borrowed("36000000000000000000000000000000000000000000000000000001"),
            timestamp,
            message: Cow::Borrowed(message),
        }
    }

    /// Writes one item and returns (action, document) parsed back.
    fn item(config: &Config, message: &str, timestamp: i64) -> (DocKind, Value, Value) {
        let mut out = Vec::new();
        let kind = write_item(&mut out, config, &ORIGIN, &event(message, timestamp));
        let text = std::str::from_utf8(&out).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "{text}");
        (
            kind,
            serde_json::from_str(lines[0]).unwrap(),
            serde_json::from_str(lines[1]).unwrap(),
        )
    }

    const LOGIN: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"Root"},"eventTime":"2024-03-01T23:59:59Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Failure"},"eventID":"3fcfb182-98f8-4744-bd45-10a395ab61cb","recipientAccountId":"111122223333"}"#;

    #[test]
    fn cloudtrail_record_becomes_a_document_with_top_level_fields() {
        // Delivered five minutes after midnight: lands in the day it happened.
        let (kind, action, doc) = item(&Config::default(), LOGIN, 1_709_337_900_000);
        assert_eq!(kind, DocKind::CloudTrail);
        assert_eq!(
            action,
            json!({"create": {"_index": "cwl-2024.03.01", "_id": "111122223333:3fcfb182-98f8-4744-bd45-10a395ab61cb"}})
        );
        assert_eq!(doc["@timestamp"], "2024-03-01T23:59:59.000Z");
        assert_eq!(doc["@id"], "36000000000000000000000000000000000000000000000000000001");
        assert_eq!(doc["@owner"], "111122223333");
        assert_eq!(doc["@log_group"], "CloudTrail/logs");
        assert_eq!(doc["@log_stream"], "111122223333_CloudTrail_eu-west-1");
        assert_eq!(doc["eventName"], "ConsoleLogin");
        assert_eq!(doc["responseElements"]["ConsoleLogin"], "Failure");
        assert_eq!(doc["userIdentity"]["type"], "Root");
        assert!(doc.get("@message").is_none(), "auto keeps no raw copy of CloudTrail");
        let mut expected: Value = serde_json::from_str(LOGIN).unwrap();
        let mut got = doc.clone();
        got.as_object_mut().unwrap().remove("@json");
        for f in ADDED_FIELDS {
            got.as_object_mut().unwrap().remove(f);
        }
        expected.as_object_mut().unwrap().sort_keys();
        got.as_object_mut().unwrap().sort_keys();
        assert_eq!(got, expected);
    }

    #[test]
    fn time_series_collections_get_index_actions_without_id() {
        let config = Config {
            bulk_action: BulkAction::IndexWithoutId,
            ..Config::default()
        };
        let mut out = Vec::new();
        write_item(&mut out, &config, &ORIGIN, &event(LOGIN, 0));
        let text = std::str::from_utf8(&out).unwrap();
        let (action, doc) = text.split_once('\n').unwrap();
        assert_eq!(action, r#"{"index":{"_index":"cwl-2024.03.01"}}"#);
        // The document line is the one a search collection gets, byte for byte.
        let mut with_id = Vec::new();
        write_item(&mut with_id, &Config::default(), &ORIGIN, &event(LOGIN, 0));
        let (_, same) = std::str::from_utf8(&with_id).unwrap().split_once('\n').unwrap();
        assert_eq!(doc, same);
    }

    #[test]
    fn raw_message_always_keeps_the_message() {
        let config = Config {
            raw_message: RawMessage::Always,
            ..Config::default()
        };
        let (_, _, doc) = item(&config, LOGIN, 0);
        assert_eq!(doc["@message"], LOGIN);
    }

    #[test]
    fn index_prefix_is_configurable() {
        let config = Config {
            index_prefix: "audit".into(),
            ..Config::default()
        };
        let (_, action, _) = item(&config, LOGIN, 0);
        assert_eq!(action["create"]["_index"], "audit-2024.03.01");
    }

    #[test]
    fn unparseable_event_time_falls_back_to_the_log_event_timestamp() {
        let msg = r#"{"eventVersion":"1.0","eventTime":"2014-03-06T21: 22: 54Z","eventID":"x"}"#;
        let (_, action, doc) = item(&Config::default(), msg, 1_394_140_974_123);
        assert_eq!(doc["@timestamp"], "2014-03-06T21:22:54.123Z");
        assert_eq!(action["create"]["_index"], "cwl-2014.03.06");
        assert_eq!(action["create"]["_id"], "x", "no recipientAccountId: the eventID alone");
        assert_eq!(
            doc["eventTime"], "2014-03-06T21: 22: 54Z",
            "the field itself is untouched"
        );
    }

    #[test]
    fn records_without_event_id_use_the_log_event_id() {
        let msg = r#"{"eventVersion":"1.07","eventTime":"2020-01-01T00:00:00Z","recipientAccountId":"1","eventType":"AwsCloudTrailInsight"}"#;
        let (_, action, _) = item(&Config::default(), msg, 0);
        assert_eq!(
            action["create"]["_id"],
            "36000000000000000000000000000000000000000000000000000001"
        );
    }

    #[test]
    fn overlong_ids_use_the_log_event_id() {
        let msg = format!(
            r#"{{"eventVersion":"1","eventID":"{}","recipientAccountId":"1"}}"#,
            "e".repeat(600)
        );
        let (_, action, _) = item(&Config::default(), &msg, 0);
        assert_eq!(
            action["create"]["_id"],
            "36000000000000000000000000000000000000000000000000000001"
        );
    }

    #[test]
    fn plain_text_and_other_json_keep_the_raw_message_only() {
        for (msg, kind) in [
            ("START RequestId: 8f5a Version: $LATEST", DocKind::Text),
            (r#"{"level":"info","eventName":7}"#, DocKind::OtherJson),
        ] {
            let (got, action, doc) = item(&Config::default(), msg, 1_620_000_000_000);
            assert_eq!(got, kind);
            assert_eq!(doc["@message"], msg);
            assert_eq!(doc.as_object().unwrap().len(), 6, "{doc}");
            assert_eq!(action["create"]["_index"], "cwl-2021.05.03");
        }
    }

    #[test]
    fn each_log_type_lands_in_its_own_family_index() {
        let flow = "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1620000000 1620000060 ACCEPT OK";
        let (kind, action, doc) = item(&Config::default(), flow, 1_700_000_000_000);
        assert_eq!(kind, DocKind::VpcFlow);
        assert_eq!(action["create"]["_index"], "cwl-vpcflow-2021.05.03", "the day of start");
        assert_eq!(
            action["create"]["_id"], "36000000000000000000000000000000000000000000000000000001",
            "the log event id"
        );
        assert_eq!(doc["destination"]["port"], 49152);
        // In a flow-log group, a record of the wrong field count is kept with the reason.
        let format = FlowFormat::default_v2();
        let origin = Origin {
            flow_format: Some(&format),
            ..ORIGIN
        };
        let mut out = Vec::new();
        let kind = write_item(
            &mut out,
            &Config::default(),
            &origin,
            &event("2 1 eni-1 short", 1_700_000_000_000),
        );
        assert_eq!(kind, DocKind::VpcFlow);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["create"]["_index"], "cwl-vpcflow-2023.11.14");
        assert_eq!(lines[1]["@message"], "2 1 eni-1 short");
        assert!(
            lines[1]["@parse_error"].as_str().unwrap().contains("14"),
            "{}",
            lines[1]
        );

        let finding = r#"{"version":"0","id":"e1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","time":"2024-05-06T07:08:09Z","region":"eu-west-1","detail":{"schemaVersion":"2.0","accountId":"111122223333","region":"eu-west-1","id":"f1","type":"Recon:EC2/PortProbeUnprotectedPort","severity":8,"createdAt":"2024-05-01T00:00:00.000Z","updatedAt":"2024-05-06T07:00:00.000Z","title":"Unprotected port probed","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-1"}},"service":{"count":3}}}"#;
        let mut signals = Signals::default();
        let mut out = Vec::new();
        let kind = write_document(
            &mut out,
            &Config::default(),
            &ORIGIN,
            &event(finding, 0),
            false,
            None,
            Some(&mut signals),
        );
        assert_eq!(kind, DocKind::GuardDuty);
        let action: Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(
            action,
            json!({"create": {"_index": "cwl-guardduty-2024.05.06", "_id": "f1:2024-05-06T07:00:00.000Z"}})
        );
        assert_eq!(signals.matches.len(), 1, "a high finding is an alert candidate");
        let m = &signals.matches[0];
        assert_eq!(m.severity, Severity::High);
        assert_eq!(m.rule, "guardduty:Recon:EC2/PortProbeUnprotectedPort");
        assert_eq!(
            (m.index.as_str(), m.id.as_str()),
            ("cwl-guardduty-2024.05.06", "f1:2024-05-06T07:00:00.000Z")
        );
    }

    #[test]
    fn invalid_records_keep_the_raw_message_and_say_why() {
        let msg = r#"{"eventVersion":"1.08","eventName":"x\ud800"}"#;
        let (kind, _, doc) = item(&Config::default(), msg, 0);
        assert_eq!(kind, DocKind::Invalid);
        assert_eq!(doc["@message"], msg);
        assert!(doc["@parse_error"].as_str().unwrap().contains("escape"), "{doc}");
    }

    #[test]
    fn colliding_and_awkward_keys_move_under_unindexed() {
        let msg = r#"{"eventVersion":"1","@timestamp":"yesterday","@message":1,"_id":"x","a.b":[1]}"#;
        let (_, _, doc) = item(&Config::default(), msg, 0);
        assert_eq!(doc["@timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(
            doc["@unindexed"],
            json!({"@timestamp": "yesterday", "@message": 1, "_id": "x", "a.b": [1]})
        );
        assert!(doc.get("@json").is_none(), "awkward names get no text copy");
    }

    #[test]
    fn free_form_fields_get_a_text_copy_and_non_objects_are_wrapped() {
        let msg = r#"{"eventVersion":"1","requestParameters":{"policy" : "{\"a\":1}"},"responseElements":"done","userAgent":{"odd":1},"sourceIPAddress":"81.2.69.142, 10.0.0.1"}"#;
        let (_, _, doc) = item(&Config::default(), msg, 0);
        assert_eq!(doc["requestParameters"], json!({"policy": "{\"a\":1}"}));
        assert_eq!(doc["responseElements"], json!({"@value": "done"}));
        assert_eq!(doc["@unindexed"], json!({"userAgent": {"odd": 1}}));
        assert!(doc.get("userAgent").is_none());
        assert_eq!(
            doc["@json"],
            json!({
                "requestParameters": r#"{"policy" : "{\"a\":1}"}"#,
                "responseElements": r#""done""#,
                "userAgent": r#"{"odd":1}"#,
            })
        );
        assert_eq!(doc["sourceIPAddress"], "81.2.69.142, 10.0.0.1");
        assert_eq!(doc["source"], json!({"ip": "81.2.69.142"}));
    }

    #[test]
    fn source_ip_only_for_addresses() {
        for (value, ip) in [
            ("AWS Internal", None),
            ("s3.amazonaws.com", None),
            ("", None),
            ("010.0.0.1", None),
            ("2001:db8::1", Some("2001:db8::1")),
            (" 192.0.2.1 , 10.0.0.1", Some("192.0.2.1")),
            ("10.0.0.1, 81.2.69.142", Some("81.2.69.142")),
        ] {
            let msg = json!({"eventVersion": "1", "sourceIPAddress": value}).to_string();
            let (_, _, doc) = item(&Config::default(), &msg, 0);
            assert_eq!(doc["source"]["ip"].as_str(), ip, "{value}");
        }
        let (_, _, doc) = item(&Config::default(), r#"{"eventVersion":"1","sourceIPAddress":12}"#, 0);
        assert!(doc.get("source").is_none());
    }

    #[test]
    fn enrichment_adds_geo_and_signals() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/geo");
        let enrichment = Enrichment {
            geo: crate::signals::geo::GeoDb::open(
                Some(&dir.join("city-subset.mmdb")),
                Some(&dir.join("asn-subset.mmdb")),
            )
            .unwrap(),
            rules: crate::signals::RuleSet::load(&Default::default()).unwrap(),
        };
        let mut signals = Signals::default();
        let msg = r#"{"eventVersion":"1.08","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root"},"eventTime":"2024-03-01T10:00:00Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"1.1.1.1","responseElements":{"ConsoleLogin":"Failure"},"eventID":"e1","recipientAccountId":"111122223333"}"#;
        let mut out = Vec::new();
        write_document(
            &mut out,
            &Config::default(),
            &ORIGIN,
            &event(msg, 0),
            true,
            Some(&enrichment),
            Some(&mut signals),
        );
        let doc: Value = serde_json::from_slice(out.split(|b| *b == b'\n').nth(1).unwrap()).unwrap();
        assert_eq!(doc["source"]["ip"], "1.1.1.1");
        assert_eq!(doc["source"]["geo"]["country_iso_code"], "AU");
        assert_eq!(doc["source"]["geo"]["country_name"], "Australia");
        assert!(doc["source"]["geo"]["location"]["lat"].is_number());
        assert_eq!(
            doc["source"]["as"],
            json!({"number": 13335, "organization": {"name": "Cloudflare, Inc."}})
        );
        assert_eq!(doc["signal"]["severity"], "high");
        let names: Vec<&str> = doc["signal"]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"root-activity") && names.contains(&"console-login-failure"),
            "{names:?}"
        );
        assert_eq!(doc["signal"]["rules"].as_array().unwrap().len(), names.len());
        assert_eq!(doc["signal"]["titles"].as_array().unwrap().len(), names.len());
        assert_eq!(doc["threat"]["framework"], "MITRE ATT&CK");
        assert!(
            doc["threat"]["technique"]["id"]
                .as_array()
                .unwrap()
                .contains(&json!("T1078.004")),
            "{}",
            doc["threat"]
        );
        assert!(!doc["threat"]["tactic"]["name"].as_array().unwrap().is_empty());
        assert_eq!(signals.matches.len(), names.len());
        let m = signals
            .matches
            .iter()
            .find(|m| m.rule == "de45f90e-5fc0-4f77-b605-5b7883f4a1a1")
            .unwrap();
        assert_eq!((m.index.as_str(), m.id.as_str()), ("cwl-2024.03.01", "111122223333:e1"));
        assert_eq!(m.principal.as_deref(), Some("arn:aws:iam::111122223333:root"));
        assert_eq!(m.country.as_deref(), Some("AU"));
    }

    #[test]
    fn pretty_printed_records_stay_on_one_line() {
        let msg = "{\"eventVersion\": \"1\",\n \"requestParameters\": {\r\n  \"a\": [1,\n 2]},\n \"x\": \"s\"}";
        let (_, _, doc) = item(&Config::default(), msg, 0);
        assert_eq!(doc["requestParameters"], json!({"a": [1, 2]}));
    }

    #[test]
    fn unusable_log_event_ids_become_a_stable_hash() {
        let mut out = Vec::new();
        let long = "9".repeat(600);
        for id in ["", long.as_str()] {
            let ev = LogEvent {
                id: Cow::Borrowed(id),
                timestamp: 5,
                message: Cow::Borrowed("text"),
            };
            out.clear();
            write_item(&mut out, &Config::default(), &ORIGIN, &ev);
            let action: Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
            let got = action["create"]["_id"].as_str().unwrap().to_owned();
            assert!(got.starts_with("sha256:") && got.len() == 71, "{got}");
            let mut again = Vec::new();
            write_item(&mut again, &Config::default(), &ORIGIN, &ev);
            assert_eq!(out, again, "deterministic");
        }
    }

    #[test]
    fn out_of_range_log_timestamps_land_on_the_epoch() {
        assert_eq!(millis_to_time(i64::MAX), DateTime::UNIX_EPOCH);
        assert_eq!(millis_to_time(-62_000_000_000_000), DateTime::UNIX_EPOCH);
        assert_eq!(index_name("cwl", &millis_to_time(1_700_000_000_000)), "cwl-2023.11.14");
    }
}
