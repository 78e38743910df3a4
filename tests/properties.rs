//! Property tests: random bytes, random JSON and random envelopes never panic, and every
//! data message still yields exactly one valid bulk item per log event; the same for random
//! Lambda events of every accepted shape and for random CloudTrail S3 files.

mod common;

use base64::Engine as _;
use cwl_indexer::index::{BulkChunk, BulkEncoder};
use cwl_indexer::ingest::AwsLogs;
use cwl_indexer::ingest::trail::{self as trailfile, Source};
use cwl_indexer::pipeline::WriterSink;
use cwl_indexer::{CloudWatchLogsEvent, Indexer};
use cwl_indexer::{Config, ingest as record};
use proptest::prelude::*;
use serde_json::{Value, json};

fn small_config() -> Config {
    Config {
        bulk_max_bytes: 64 * 1024,
        max_payload_bytes: 4 * 1024 * 1024,
        ..Config::default()
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Messages: CloudTrail-like objects with random extra fields, random JSON, random text,
/// and CloudTrail text with a random byte range cut out.
fn message() -> impl Strategy<Value = String> {
    let cloudtrail = || {
        (json_value(), ".{0,30}", ".{0,30}", ".{0,40}").prop_map(|(extra, time, id, acct)| {
            json!({"eventVersion": "1.08", "eventTime": time, "eventID": id, "recipientAccountId": acct,
               "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "requestParameters": extra})
            .to_string()
        })
    };
    let cut = (cloudtrail(), any::<prop::sample::Index>(), 0..20usize).prop_map(|(s, at, len)| {
        let start = at.index(s.len().max(1));
        let end = (start + len).min(s.len());
        let mut b = s.into_bytes();
        b.drain(start..end);
        String::from_utf8_lossy(&b).into_owned()
    });
    prop_oneof![cloudtrail(), json_value().prop_map(|v| v.to_string()), ".{0,200}", cut,]
}

/// A Lambda event of one of the accepted shapes around random content.
fn lambda_event_shape() -> impl Strategy<Value = Value> {
    (json_value(), json_value(), ".{0,60}").prop_flat_map(|(a, b, text)| {
        prop_oneof![
            Just(json!({"awslogs": {"data": text.clone()}})),
            Just(json!({"Records": [{"kinesis": {"data": text.clone(), "sequenceNumber": "1"}}, {"kinesis": a.clone()}]})),
            Just(json!({"Records": [{"messageId": "m", "body": text.clone()}, {"messageId": "n", "body": a.to_string()}]})),
            Just(json!({"Records": [{"messageId": "m", "body": json!({"Type": "Notification", "Message": b.to_string()}).to_string()}]})),
            Just(json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": text.clone()}}}]})),
            Just(json!({"Records": [{"Sns": {"Message": a.to_string()}}]})),
            Just(json!({"Records": [a.clone(), b.clone()]})),
            Just(a.clone()),
        ]
    })
}

/// A CloudTrail-like record with string ids and random content.
fn trail_record() -> impl Strategy<Value = Value> {
    (json_value(), ".{0,20}", ".{0,20}", ".{0,30}").prop_map(|(extra, id, acct, time)| {
        json!({"eventVersion": "1.08", "eventID": id, "recipientAccountId": acct, "eventTime": time,
               "eventName": "GetObject", "requestParameters": extra})
    })
}

/// Documents of every kind in a summary.
fn documents(s: &cwl_indexer::Summary) -> usize {
    s.cloudtrail + s.other_json + s.text + s.invalid + s.vpcflow + s.guardduty + s.resolver + s.waf
}

/// An envelope of `messages` from `log_group`, event ids `id-<n>`.
fn group_envelope(log_group: &str, messages: &[String]) -> CloudWatchLogsEvent {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("id-{i}"), "timestamp": 1_700_000_000_000i64 + i as i64, "message": m}))
        .collect();
    let envelope = json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": log_group,
                          "logStream": "s", "subscriptionFilters": ["f"], "logEvents": events});
    common::lambda_event(envelope.to_string().as_bytes())
}

/// One flow log value: a plausible one, `-`, or a random token (never a space).
fn flow_token(plausible: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    prop_oneof![4 => plausible, 1 => Just("-".to_owned()), 1 => "[^ ]{1,12}"]
}

/// Flow log lines: default-format records of random (mostly plausible) values, random
/// space-separated tokens (wrong field counts), and random text.
fn flow_line() -> impl Strategy<Value = String> {
    let num = |max: u64| (0..=max).prop_map(|n| n.to_string()).boxed();
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
    ]
    .boxed();
    let default = (
        flow_token(num(9)),
        flow_token(Just("123456789010".to_owned()).boxed()),
        flow_token("eni-[0-9a-f]{8}".boxed()),
        flow_token(ip.clone()),
        flow_token(ip),
        (flow_token(num(70000)), flow_token(num(70000)), flow_token(num(300))),
        (flow_token(num(u64::MAX)), flow_token(num(u64::MAX))),
        (flow_token(num(300_000_000_000)), flow_token(num(300_000_000_000))),
        flow_token(prop_oneof![Just("ACCEPT".to_owned()), Just("REJECT".to_owned())].boxed()),
        flow_token(
            prop_oneof![
                Just("OK".to_owned()),
                Just("NODATA".to_owned()),
                Just("SKIPDATA".to_owned())
            ]
            .boxed(),
        ),
    )
        .prop_map(
            |(v, a, eni, src, dst, (sp, dp, proto), (pk, by), (st, en), act, status)| {
                [v, a, eni, src, dst, sp, dp, proto, pk, by, st, en, act, status].join(" ")
            },
        );
    prop_oneof![
        4 => default,
        2 => prop::collection::vec("[^ ]{1,10}", 1..30).prop_map(|t| t.join(" ")),
        1 => ".{0,120}",
    ]
}

/// GuardDuty finding events with random (often wrongly shaped) members, bare findings, and
/// finding events cut short.
fn finding_message() -> impl Strategy<Value = String> {
    let text = || prop_oneof![".{0,30}".prop_map(Value::String), json_value()];
    let finding = (
        text(),
        text(),
        json_value(),
        text(),
        json_value(),
        json_value(),
        any::<bool>(),
    )
        .prop_map(|(id, kind, severity, updated, resource, service, wrapped)| {
            let f = json!({"schemaVersion": "2.0", "id": id, "type": kind, "severity": severity,
                           "updatedAt": updated, "createdAt": updated, "resource": resource, "service": service});
            if wrapped {
                json!({"version": "0", "id": "e", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
                       "account": "111122223333", "region": "eu-west-1", "detail": f})
            } else {
                f
            }
        })
        .boxed();
    prop_oneof![
        4 => finding.clone().prop_map(|f| f.to_string()),
        1 => (finding, any::<prop::sample::Index>()).prop_map(|(f, at)| {
            let f = json!({"detail-type": "GuardDuty Finding", "detail": f}).to_string();
            let mut end = at.index(f.len());
            while !f.is_char_boundary(end) {
                end -= 1;
            }
            f[..end].to_owned()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn random_base64_text_never_panics(data in ".{0,400}") {
        let event = CloudWatchLogsEvent { awslogs: AwsLogs { data } };
        let _ = common::run(small_config(), &event);
    }

    #[test]
    fn random_gzip_payloads_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        // Valid base64 of random bytes: exercises the gzip header and inflate paths.
        let event = CloudWatchLogsEvent {
            awslogs: AwsLogs { data: base64::engine::general_purpose::STANDARD.encode(&bytes) },
        };
        prop_assert!(common::run(small_config(), &event).is_err());
    }

    #[test]
    fn random_json_as_envelope_never_panics(v in json_value()) {
        let _ = common::run(small_config(), &common::lambda_event(v.to_string().as_bytes()));
    }

    #[test]
    fn random_envelope_shapes_never_panic(
        message_type in prop_oneof![Just(json!("DATA_MESSAGE")), Just(json!("CONTROL_MESSAGE")), json_value()],
        owner in json_value(),
        events in prop::collection::vec((json_value(), json_value(), json_value()), 0..5),
    ) {
        let events: Vec<Value> = events.into_iter()
            .map(|(id, ts, m)| json!({"id": id, "timestamp": ts, "message": m}))
            .collect();
        let envelope = json!({"messageType": message_type, "owner": owner, "logGroup": "g",
                              "logStream": "s", "subscriptionFilters": [], "logEvents": events});
        let _ = common::run(small_config(), &common::lambda_event(envelope.to_string().as_bytes()));
    }

    #[test]
    fn every_message_becomes_exactly_one_valid_item(
        messages in prop::collection::vec(message(), 1..30),
        timestamps in prop::collection::vec(any::<i64>(), 30),
    ) {
        let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
        let envelope = common::data_envelope(&refs, |i| timestamps[i]);
        let (summary, ndjson) = common::run(small_config(), &common::lambda_event(&envelope)).unwrap();
        let pairs = common::pairs_lenient(&ndjson);
        prop_assert_eq!(pairs.len(), messages.len());
        prop_assert_eq!(documents(&summary), messages.len());
        for (i, (action, doc)) in pairs.iter().enumerate() {
            let index = action["create"]["_index"].as_str().unwrap();
            prop_assert!(index.len() == "cwl-YYYY.MM.DD".len() && index.starts_with("cwl-"), "{}", index);
            prop_assert!(!action["create"]["_id"].as_str().unwrap().is_empty());
            let Some(doc) = doc else { continue };
            prop_assert_eq!(&doc["@id"], &json!(format!("id-{i}")));
            // Whatever is not expanded keeps its raw text.
            if !matches!(record::classify(&messages[i]), record::Message::CloudTrail(_)) {
                prop_assert_eq!(doc["@message"].as_str(), Some(messages[i].as_str()));
            }
        }
    }

    #[test]
    fn classify_never_panics(s in ".{0,500}") {
        let _ = record::classify(&s);
    }

    #[test]
    fn random_events_of_every_shape_never_panic(event in lambda_event_shape()) {
        let indexer = Indexer::new(small_config());
        let mut sink = WriterSink(Vec::new());
        let payload = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
        let event = lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(indexer.handle_event(event, &mut sink));
    }

    #[test]
    fn random_trail_files_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..500), key in ".{0,80}") {
        let _ = trailfile::classify_key(&key);
        let source = Source { bucket: "b", key: &key, account: None };
        let _ = trailfile::parse(&bytes, source);
        let _ = trailfile::gunzip(&key, &bytes, 1 << 16, &mut Vec::new());
    }

    #[test]
    fn every_trail_record_becomes_one_item_whose_id_is_its_at_id(records in prop::collection::vec(trail_record(), 0..20)) {
        let json = json!({"Records": records}).to_string();
        let source = Source { bucket: "b", key: "k", account: None };
        let envelope = trailfile::parse(json.as_bytes(), source).unwrap();
        prop_assert_eq!(envelope.log_events.len(), records.len());
        let config = small_config();
        let mut encoder = BulkEncoder::new(&config, &envelope);
        let mut chunk = BulkChunk::default();
        let mut ndjson = Vec::new();
        while encoder.next_chunk(&mut chunk) {
            ndjson.extend_from_slice(chunk.body());
        }
        let pairs = common::pairs_lenient(&ndjson);
        prop_assert_eq!(pairs.len(), records.len());
        for (action, doc) in &pairs {
            let Some(doc) = doc else { continue };
            // The S3 path's @id is the _id the CloudWatch Logs path gives the same record.
            prop_assert_eq!(&doc["@id"], &action["create"]["_id"]);
        }
    }

    #[test]
    fn random_flow_records_in_a_flow_log_group_are_never_lost(lines in prop::collection::vec(flow_line(), 1..30)) {
        let (summary, ndjson) = common::run(small_config(), &group_envelope("/aws/vpc/flowlogs", &lines)).unwrap();
        let pairs = common::pairs(&ndjson);
        prop_assert_eq!(pairs.len(), lines.len());
        prop_assert_eq!(documents(&summary), lines.len());
        for (i, ((action, doc), line)) in pairs.iter().zip(&lines).enumerate() {
            if line.trim_start().starts_with(['{', '[']) {
                continue;
            }
            let index = action["create"]["_index"].as_str().unwrap();
            prop_assert!(index.starts_with("cwl-vpcflow-") && index.len() == "cwl-vpcflow-YYYY.MM.DD".len(), "{}", index);
            prop_assert_eq!(&action["create"]["_id"], &json!(format!("id-{i}")));
            prop_assert_eq!(&doc["event"]["dataset"], &json!("aws.vpcflow"));
            // Parsed, or kept whole with the reason.
            if doc.get("@parse_error").is_some() {
                prop_assert_eq!(doc["@message"].as_str(), Some(line.as_str()));
            }
        }
    }

    #[test]
    fn random_findings_are_never_lost(messages in prop::collection::vec(finding_message(), 1..20)) {
        let (summary, ndjson) = common::run(small_config(), &group_envelope("/aws/events/guardduty", &messages)).unwrap();
        let pairs = common::pairs(&ndjson);
        prop_assert_eq!(pairs.len(), messages.len());
        prop_assert_eq!(documents(&summary), messages.len());
        for ((action, doc), message) in pairs.iter().zip(&messages) {
            let index = action["create"]["_index"].as_str().unwrap();
            // Whole or cut short, a message that says it is a finding is one (a message cut inside
            // `"GuardDuty Finding"` no longer says so, and is kept as an unparseable record).
            if message.contains(r#""GuardDuty Finding""#) {
                prop_assert!(index.starts_with("cwl-guardduty-"), "{} {}", index, message);
                // The whole finding is always kept.
                prop_assert_eq!(doc["@message"].as_str(), Some(message.as_str()));
            }
            if index.starts_with("cwl-guardduty-")
                && let Some(id) = doc["finding"]["id"].as_str()
                && let Some(updated) = serde_json::from_str::<Value>(message).ok().and_then(|m| {
                    let f = if m.get("detail").is_some() { m["detail"].clone() } else { m };
                    f["updatedAt"].as_str().map(str::to_owned)
                })
                && !id.is_empty()
                && id.len() + updated.len() < 500
            {
                prop_assert_eq!(action["create"]["_id"].as_str().unwrap(), format!("{id}:{updated}"));
            }
        }
    }
}
