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
        prop_assert_eq!(summary.cloudtrail + summary.other_json + summary.text + summary.invalid, messages.len());
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
}
