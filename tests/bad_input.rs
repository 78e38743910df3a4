//! Bad input, table-driven, through the handler into the real node: every case either
//! becomes documents that OpenSearch accepts (nothing dead-lettered) or fails the whole
//! payload with one clear line. Nothing panics; a gzip bomb is refused within the cap.

mod common;

use std::io::Write as _;

use base64::Engine as _;
use common::node::{self, Pipeline};
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::ingest::AwsLogs;
use flate2::{Compression, write::GzEncoder};
use serde_json::json;

enum Expect {
    /// This many documents indexed, none dead-lettered.
    Docs(usize),
    /// The payload is refused with an error containing this.
    Error(&'static str),
}

fn raw_event(data: String) -> CloudWatchLogsEvent {
    CloudWatchLogsEvent {
        awslogs: AwsLogs { data },
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn envelope_with(events: serde_json::Value) -> Vec<u8> {
    json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "g", "logStream": "s",
           "subscriptionFilters": ["f"], "logEvents": events})
    .to_string()
    .into_bytes()
}

fn messages(msgs: &[String]) -> CloudWatchLogsEvent {
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    common::lambda_event(&common::data_envelope(&refs, |i| 1_700_000_000_000 + i as i64))
}

fn record(extra: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventTime":"2024-02-03T04:05:06Z","recipientAccountId":"111122223333","eventID":"{}"{extra}}}"#,
        fastrand::u64(..)
    )
}

#[tokio::test]
async fn bad_input_becomes_documents_or_one_clear_error() {
    let prefix = node::unique_prefix("badinput");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let full = gz(&envelope_with(json!([{"id": "1", "timestamp": 1, "message": "m"}])));
    let big_string = "x".repeat(250 * 1024);
    let cases: Vec<(&str, CloudWatchLogsEvent, Expect)> = vec![
        ("invalid base64", raw_event("%%% not base64 %%%".into()), Expect::Error("not valid base64")),
        ("truncated gzip", raw_event(b64(&full[..full.len() / 2])), Expect::Error("truncated gzip")),
        ("not gzip", raw_event(b64(b"plain bytes")), Expect::Error("not gzip")),
        ("gzip bomb", raw_event(b64(&gz(&vec![b' '; 40 << 20]))), Expect::Error("exceeds MAX_PAYLOAD_BYTES")),
        ("JSON that is not an envelope", raw_event(b64(&gz(br#"{"hello":"world"}"#))), Expect::Error("missing field")),
        ("logEvents not an array", common::lambda_event(&envelope_with(json!({"id": "1"}))), Expect::Error("invalid type")),
        ("missing owner", common::lambda_event(br#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[]}"#), Expect::Error("missing field `owner`")),
        ("timestamp as a string", common::lambda_event(&envelope_with(json!([{"id": "1", "timestamp": "yesterday", "message": "m"}]))), Expect::Error("invalid type")),
        ("message as a number", common::lambda_event(&envelope_with(json!([{"id": "1", "timestamp": 1, "message": 42}]))), Expect::Error("invalid type")),
        ("invalid UTF-8 after decompression", raw_event(b64(&gz(b"{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"\xff\xfe\"}"))), Expect::Error("not a CloudWatch Logs envelope")),
        ("a lone surrogate in the envelope itself", common::lambda_event(br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1,"message":"\ud800"}]}"#), Expect::Error("hex escape")),
        ("extra and unknown fields", common::lambda_event(&{
            let mut e: serde_json::Value = serde_json::from_slice(&envelope_with(json!([{"id": "1", "timestamp": 1, "message": record(""), "extra": true}]))).unwrap();
            e["unexpected"] = json!({"a": 1});
            e.to_string().into_bytes()
        }), Expect::Docs(1)),
        ("an event of 256 KB", messages(&[record(&format!(r#","requestParameters":{{"blob":"{big_string}"}}"#))]), Expect::Docs(1)),
        ("nesting 10,000 deep", messages(&[record(&format!(r#","requestParameters":{}{}"#, "[".repeat(10_000), "]".repeat(10_000)))]), Expect::Docs(1)),
        ("lone surrogates in a record", messages(&[record(r#","userAgent":"\ud800""#), record(r#","x":"\udfff\ud800""#)]), Expect::Docs(2)),
        ("NaN, Infinity and huge numbers", messages(&[
            record(r#","n":NaN"#), record(r#","n":Infinity"#),
            record(r#","requestParameters":{"big":1e400,"long":123456789012345678901234567890}"#),
            record(r#","readOnly":1e400"#),
        ]), Expect::Docs(4)),
        ("duplicate keys, nested too", messages(&[record(r#","eventName":"Again","requestParameters":{"a":1,"a":{"b":1,"b":2}}"#)]), Expect::Docs(1)),
        ("empty messages", messages(&["".into(), " ".into(), "{}".into(), "[]".into(), "null".into()]), Expect::Docs(5)),
        ("wrong types for CloudTrail fields", messages(&[
            record(r#","userIdentity":"AWS Internal""#), record(r#","awsRegion":{"nested":true}"#),
            record(r#","requestParameters":"a string","responseElements":[1,2,3],"resources":{"ARN":"a"}"#),
            record(r#","tlsDetails":[1],"errorMessage":["a",{"b":1}],"userAgent":null"#),
        ]), Expect::Docs(4)),
        ("eventTime in every odd form of the samples", messages(&[
            r#"{"eventVersion":"1.0","eventTime":"2014-03-06T21: 22: 54Z","eventID":"t1"}"#.into(),
            r#"{"eventVersion":"1.0","eventTime":"2022-12-11 19:42:55","eventID":"t2"}"#.into(),
            r#"{"eventVersion":"1.0","eventTime":"2025-01-20 16:52:14.000000000","eventID":"t3"}"#.into(),
            r#"{"eventVersion":"1.0","eventTime":"...","eventID":"t4"}"#.into(),
            r#"{"eventVersion":"1.0","eventTime":null,"eventID":"t5"}"#.into(),
            r#"{"eventVersion":"1.0","eventTime":1700000000,"eventID":"t6"}"#.into(),
            r#"{"eventVersion":"1.0","eventTime":{"odd":1},"eventID":"t7"}"#.into(),
            r#"{"eventVersion":"1.0","eventID":"t8"}"#.into(),
        ]), Expect::Docs(8)),
        ("keys at our alias and computed paths, wrong shapes at promoted paths", messages(&[
            record(r#","event":{"action":"x","outcome":7},"aws":"flat","cloud":{"region":[1]},"user_agent":{"original":{}},"user":{"name":{"a":1}},"timestamp":"now""#),
            record(r#","requestParameters":{"bucketName":{"not":"a string"},"durationSeconds":"forever","enable":"maybe","ipPermissions":{"items":[{"fromPort":[22,"x",{"y":1}]}]}}"#),
            record(r#","responseElements":{"instancesSet":{"items":[{"privateIpAddress":"999.1.1.1"},{"privateIpAddress":["10.0.0.1",null]}]}},"userIdentity":{"arn":["a/b"],"userName":{"x":1}}"#),
            record(&format!(r#","requestParameters":{{"key":"{}"}}"#, "k".repeat(40_000))),
        ]), Expect::Docs(4)),
        ("invalid escapes and truncated records", messages(&[
            r#"{"eventVersion":"1.08","x":"\uZZZZ"}"#.into(), r#"{"eventVersion":"1.08","#.into(), r#"{"eventVersion":"1.08","x":"\q"}"#.into(),
        ]), Expect::Docs(3)),
    ];
    for (name, event, expect) in cases {
        let (summary, result) = pipeline.invoke(&event, None).await;
        match expect {
            Expect::Docs(n) => {
                result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let d = summary.delivery;
                assert_eq!(summary.events_in, n, "{name}");
                assert_eq!(d.indexed + d.duplicates, n, "{name}: {summary:?}");
                assert_eq!(
                    d.dead_lettered, 0,
                    "{name}: the cluster accepted every document: {summary:?}"
                );
            }
            Expect::Error(what) => {
                let err = result.expect_err(name).to_string();
                assert!(err.contains(what), "{name}: {err}");
                assert!(!err.contains('\n'), "{name}: one line: {err}");
                assert_eq!(summary.delivery.requests, 0, "{name}: nothing sent");
            }
        }
    }
}
