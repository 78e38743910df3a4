//! Every one of the 1,557 shared CloudTrail records through the transform: exactly one
//! document each, in the right daily index, with the right `_id`, fields equal to the input
//! once the documented moves (`{"@value": …}` wrapping, `@unindexed`) are undone.

mod common;

use chrono::{DateTime, NaiveDateTime, Utc};
use cwl_indexer::Config;
use cwl_indexer::schema::{self, ADDED_FIELDS, Shape};
use serde_json::{Value, json};

/// The expected `@timestamp`, computed here independently of the library: RFC 3339, or
/// the offset-less forms seen in the corpus, else the log event's timestamp.
fn expected_time(record: &Value, log_ts: i64) -> DateTime<Utc> {
    let parsed = record["eventTime"].as_str().and_then(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                    .ok()
                    .map(|n| n.and_utc())
            })
    });
    parsed.unwrap_or_else(|| DateTime::from_timestamp_millis(log_ts).unwrap())
}

fn expected_id(record: &Value, log_id: &str) -> String {
    let nonempty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    match (nonempty(&record["recipientAccountId"]), nonempty(&record["eventID"])) {
        (Some(account), Some(id)) => format!("{account}:{id}"),
        (None, Some(id)) => id,
        (_, None) => log_id.to_owned(),
    }
}

#[test]
fn every_shared_record_round_trips() {
    let corpus = std::fs::read_to_string(common::fixtures().join("cloudtrail-records.ndjson")).unwrap();
    let lines: Vec<&str> = corpus.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1557);

    // CloudWatch batches of 400 events; a fixed, distinct log timestamp per event.
    let log_ts = |i: usize| 1_600_000_000_000 + i as i64 * 1000;
    let mut docs = Vec::new();
    for (n, batch) in lines.chunks(400).enumerate() {
        let envelope = common::data_envelope(batch, |i| log_ts(n * 400 + i));
        let (summary, ndjson) = common::run(Config::default(), &common::lambda_event(&envelope)).unwrap();
        assert_eq!(summary.events_in, batch.len());
        assert_eq!(
            summary.cloudtrail,
            batch.len(),
            "every shared record is recognised as CloudTrail"
        );
        let pairs = common::pairs(&ndjson);
        assert_eq!(pairs.len(), batch.len(), "exactly one document per log event");
        docs.extend(pairs.into_iter().enumerate().map(|(i, p)| (n * 400 + i, p)));
    }

    let mut fallbacks = 0;
    let mut stats = std::collections::BTreeMap::<String, usize>::new();
    for (i, (action, doc)) in docs {
        let record: Value = serde_json::from_str(lines[i]).unwrap();
        let log_id = format!("id-{}", i % 400);
        assert_eq!(doc["@id"], log_id.as_str(), "line {}", i + 1);

        let create = &action["create"];
        assert_eq!(action.as_object().unwrap().len(), 1, "create only, no _type: {action}");
        assert!(create.get("_type").is_none());
        let time = expected_time(&record, log_ts(i));
        if record["eventTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_none()
        {
            fallbacks += 1;
        }
        assert_eq!(
            create["_index"],
            time.format("cwl-%Y.%m.%d").to_string(),
            "line {}",
            i + 1
        );
        assert_eq!(
            doc["@timestamp"],
            time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "line {}",
            i + 1
        );
        assert_eq!(create["_id"], expected_id(&record, &log_id), "line {}", i + 1);

        assert_eq!(doc["@owner"], "111122223333");
        assert_eq!(doc["@log_group"], "aws-cloudtrail-logs");
        assert_eq!(doc["@log_stream"], "111122223333_CloudTrail_us-east-1");
        assert!(doc.get("@message").is_none(), "line {}: no raw copy by default", i + 1);

        // Undo the two documented moves (see README "What gets indexed"), then the document
        // must hold exactly the record's fields.
        let mut fields = doc.as_object().unwrap().clone();
        let unindexed = fields.remove("@unindexed").unwrap_or(json!({}));
        let text = fields.remove("@json").unwrap_or(json!({}));
        if let Some(source) = fields.remove("source") {
            let ip: std::net::IpAddr = source["ip"].as_str().unwrap().parse().unwrap();
            assert!(record["sourceIPAddress"].as_str().unwrap().starts_with(&ip.to_string()));
        }
        for f in ADDED_FIELDS {
            fields.remove(f);
        }
        for (key, value) in fields.iter_mut() {
            let inner = value
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.get("@value"))
                .cloned();
            if let Some(inner) = inner {
                assert!(
                    schema::top_level(key) == Shape::Flat,
                    "line {}: only free-form fields wrap: {key}",
                    i + 1
                );
                *stats.entry(format!("wrapped {key}")).or_insert(0) += 1;
                *value = inner;
            }
        }
        for (key, value) in unindexed.as_object().unwrap() {
            *stats.entry(format!("unindexed {key}")).or_insert(0) += 1;
            assert!(
                fields.insert(key.clone(), value.clone()).is_none(),
                "line {}: {key} twice",
                i + 1
            );
        }
        // Every text copy is the JSON of the field it copies.
        for (key, copy) in text.as_object().unwrap() {
            let parsed: Value = serde_json::from_str(copy.as_str().unwrap()).unwrap();
            assert_eq!(Some(&parsed), record.get(key), "line {}: @json.{key}", i + 1);
        }
        assert_eq!(
            Value::Object(fields),
            record,
            "line {}: fields equal to the input's",
            i + 1
        );
    }
    eprintln!("moves applied to the corpus: {stats:#?}");
    // The corpus holds a few stringified free-form fields and Panther's p_* annotations.
    assert_eq!(stats.get("wrapped requestParameters"), Some(&1));
    assert_eq!(stats.get("wrapped p_log_type"), Some(&97));
    assert!(stats.keys().all(|k| !k.starts_with("unindexed event")), "{stats:?}");
    // The corpus exercises the fallbacks: odd and missing eventTimes exist.
    assert!(fallbacks > 20, "{fallbacks}");
}

#[test]
fn raw_message_always_keeps_each_record_verbatim() {
    let corpus = std::fs::read_to_string(common::fixtures().join("cloudtrail-records.ndjson")).unwrap();
    let lines: Vec<&str> = corpus.lines().take(200).collect();
    let config = Config {
        raw_message: cwl_indexer::config::RawMessage::Always,
        ..Config::default()
    };
    let (_, ndjson) = common::run(config, &common::lambda_event(&common::data_envelope(&lines, |_| 0))).unwrap();
    for ((_, doc), line) in common::pairs(&ndjson).iter().zip(&lines) {
        assert_eq!(doc["@message"], *line);
    }
}
