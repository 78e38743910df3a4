//! Helpers shared by the integration tests: building Lambda events the way CloudWatch Logs
//! does, and running them through the library's handler.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod moto;
pub mod node;
pub mod recorder;
pub mod sigv4_proxy;

use std::io::Write;

use base64::Engine as _;
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::handler::HandlerError;
use cwl_indexer::ingest::AwsLogs;
use cwl_indexer::pipeline::WriterSink;
use cwl_indexer::{Config, Indexer, Summary};
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};

/// The repository's `fixtures/` directory.
pub fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `{"awslogs":{"data": base64(gzip(bytes))}}`.
pub fn lambda_event(envelope: &[u8]) -> CloudWatchLogsEvent {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(envelope).unwrap();
    CloudWatchLogsEvent {
        awslogs: AwsLogs {
            data: base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap()),
        },
    }
}

/// A DATA_MESSAGE envelope around `messages`, event ids `id-<n>`, timestamps from `ts`.
pub fn data_envelope(messages: &[&str], ts: impl Fn(usize) -> i64) -> Vec<u8> {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("id-{i}"), "timestamp": ts(i), "message": m}))
        .collect();
    serde_json::to_vec(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["f"],
        "logEvents": events,
    }))
    .unwrap()
}

/// The 1,557 shared records as Lambda events of 500 records (log timestamps from
/// 1,700,000,000,000 ms), and the records.
pub fn corpus() -> (Vec<CloudWatchLogsEvent>, Vec<Value>) {
    let text = std::fs::read_to_string(fixtures().join("cloudtrail-records.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1557);
    let events = lines
        .chunks(500)
        .map(|batch| lambda_event(&data_envelope(batch, |i| 1_700_000_000_000 + i as i64)))
        .collect();
    (events, lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect())
}

/// Runs `event` through a fresh indexer; returns the summary and the NDJSON produced.
pub fn run(config: Config, event: &CloudWatchLogsEvent) -> Result<(Summary, Vec<u8>), HandlerError> {
    let indexer = Indexer::new(config);
    let mut sink = WriterSink(Vec::new());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (summary, result) = rt.block_on(indexer.process(event, &mut sink, None));
    result?;
    Ok((summary, sink.0))
}

/// The distinct (index, `_id`) pairs the transform gives `event`'s log events under `prefix`
/// (fixtures that hold a record twice give it once): what must land, exactly once.
pub async fn expected_ids(prefix: &str, event: &CloudWatchLogsEvent) -> std::collections::BTreeSet<(String, String)> {
    let indexer = Indexer::new(Config {
        index_prefix: prefix.to_owned(),
        ..Config::default()
    });
    let mut sink = WriterSink(Vec::new());
    indexer.process(event, &mut sink, None).await.1.unwrap();
    pairs(&sink.0)
        .into_iter()
        .map(|(a, _)| {
            (
                a["create"]["_index"].as_str().unwrap().to_owned(),
                a["create"]["_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The delivery invariant: the (index, `_id`)s found (documents in their indices, and the
/// originals of the dead letters) are `expected`, each exactly once.
pub fn assert_each_once(found: Vec<(String, String)>, expected: &std::collections::BTreeSet<(String, String)>) {
    let mut seen = found;
    seen.sort();
    let unique: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(
        seen.len(),
        unique.len(),
        "no duplicates across indices and dead letters"
    );
    assert_eq!(&unique, expected, "nothing lost");
}

/// Splits NDJSON into (action, document) pairs, asserting every line is JSON.
pub fn pairs(ndjson: &[u8]) -> Vec<(Value, Value)> {
    let text = std::str::from_utf8(ndjson).expect("bulk body is UTF-8");
    assert!(text.is_empty() || text.ends_with('\n'), "bulk body ends with a newline");
    let lines: Vec<Value> = text
        .split_terminator('\n')
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.300}")))
        .collect();
    assert_eq!(lines.len() % 2, 0, "action and document lines come in pairs");
    lines.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect()
}

/// Like [`pairs`], for documents that may hold numbers beyond `f64` (valid JSON that
/// `serde_json::Value` cannot represent): every line must be JSON; the document is
/// `None` when it cannot become a `Value`.
pub fn pairs_lenient(ndjson: &[u8]) -> Vec<(Value, Option<Value>)> {
    let text = std::str::from_utf8(ndjson).expect("bulk body is UTF-8");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len() % 2, 0, "action and document lines come in pairs");
    lines
        .chunks(2)
        .map(|c| {
            serde_json::from_str::<serde::de::IgnoredAny>(c[1]).unwrap_or_else(|e| panic!("{e}: {:.300}", c[1]));
            (serde_json::from_str(c[0]).unwrap(), serde_json::from_str(c[1]).ok())
        })
        .collect()
}
