//! VPC flow records and GuardDuty findings against the real node: through CloudWatch Logs and
//! a mixed Kinesis batch they land once each, in their own daily indices under their own
//! templates, with typed fields; redelivery adds nothing; the aggregations the dashboards
//! chart give the fixtures' oracle (`fixtures/{vpcflow,guardduty}/expected.json`).

mod common;

use std::collections::BTreeMap;

use common::node::{self, Pipeline};
use cwl_indexer::config::FlowLogConfig;
use cwl_indexer::{CloudWatchLogsEvent, Config};
use serde_json::{Value, json};

fn read(path: &str) -> String {
    std::fs::read_to_string(common::fixtures().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn expected(family: &str) -> Value {
    serde_json::from_str(&read(&format!("{family}/expected.json"))).unwrap()
}

/// The node config under `prefix`, with the fixtures' `FLOW_LOG_FORMATS`.
fn config(prefix: &str) -> Config {
    let formats = read("vpcflow/FLOW_LOG_FORMATS.json");
    Config {
        flow_logs: FlowLogConfig::from_lookup(|name| (name == "FLOW_LOG_FORMATS").then(|| formats.clone())).unwrap(),
        ..node::config(prefix, &node::url())
    }
}

/// The CloudWatch Logs events of the fixtures the oracles are computed from (the Kinesis
/// batch aside), as `events.ndjson` names them.
fn cloudwatch_events(family: &str) -> Vec<CloudWatchLogsEvent> {
    let mut files: Vec<String> = read(&format!("{family}/events.ndjson"))
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["fixture"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .filter(|f| f.starts_with(&format!("{family}/")) && !f.ends_with("kinesis-mixed.json"))
        .collect();
    files.sort();
    files.dedup();
    files
        .iter()
        .map(|f| serde_json::from_str(&read(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect()
}

/// The mixed Kinesis batch, through the function's own dispatch.
async fn kinesis(pipeline: &Pipeline) -> cwl_indexer::handler::Dispatched {
    let json = read("vpcflow/kinesis-mixed.json");
    let mut sink = &pipeline.opensearch;
    let done = pipeline.indexer.dispatch(&json, &mut sink, None).await.unwrap();
    assert_eq!(done.input, "kinesis");
    assert!(done.result.is_ok(), "{:?}", done.result);
    assert_eq!(done.summary.delivery.dead_lettered, 0, "{:?}", done.summary);
    done
}

/// The distinct CloudTrail (index, `_id`)s of the Kinesis batch's first record (its 40 records
/// hold some events twice).
async fn cloudtrail_ids(prefix: &str) -> u64 {
    let batch: Value = serde_json::from_str(&read("vpcflow/kinesis-mixed.json")).unwrap();
    let data = batch["Records"][0]["kinesis"]["data"].clone();
    let event: CloudWatchLogsEvent = serde_json::from_value(json!({"awslogs": {"data": data}})).unwrap();
    let ids = common::expected_ids(prefix, &event).await;
    assert!(
        ids.iter().all(|(index, _)| index.starts_with(&format!("{prefix}-2"))),
        "{ids:?}"
    );
    ids.len() as u64
}

/// (indexed, already present, events in) over `events`.
async fn deliver(pipeline: &Pipeline, events: &[CloudWatchLogsEvent]) -> (usize, usize, usize) {
    let mut totals = (0, 0, 0);
    for event in events {
        let (summary, result) = pipeline.invoke(event, None).await;
        result.unwrap_or_else(|e| panic!("{e}: {summary:?}"));
        assert_eq!(summary.delivery.dead_lettered, 0, "{summary:?}");
        assert_eq!(summary.failed, 0, "{summary:?}");
        totals.0 += summary.delivery.indexed;
        totals.1 += summary.delivery.duplicates;
        totals.2 += summary.events_in;
    }
    totals
}

/// `{key: doc_count}` of a terms (or date histogram) aggregation, or `{key: sum}` with `sum`.
fn buckets(answer: &Value, name: &str, sum: Option<&str>) -> BTreeMap<String, u64> {
    answer["aggregations"][name]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|b| {
            let key = b
                .get("key_as_string")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| match &b["key"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            let value = match sum {
                Some(s) => b[s]["value"].as_f64().unwrap() as u64,
                None => b["doc_count"].as_u64().unwrap(),
            };
            (key, value)
        })
        .collect()
}

fn oracle_map(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn flows_and_findings_land_once_in_their_own_indices_with_typed_fields() {
    let prefix = node::unique_prefix("logtypes");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(config(&prefix), None);
    let mut events = cloudwatch_events("vpcflow");
    events.extend(cloudwatch_events("guardduty"));

    let (indexed, present, events_in) = deliver(&pipeline, &events).await;
    assert_eq!(indexed + present, events_in);
    // The Kinesis batch: 40 CloudTrail records, 7 flow records and 4 findings; its flow and
    // finding events repeat fixtures already delivered (other event ids for the flows).
    let done = kinesis(&pipeline).await;
    assert_eq!(done.item_failures(), 0, "{:?}", done.result);
    let s = &done.summary;
    assert_eq!((s.cloudtrail, s.vpcflow, s.guardduty), (40, 7, 4), "{s:?}");
    node::refresh(&prefix).await;

    let flow = expected("vpcflow");
    let wanted: BTreeMap<String, u64> = oracle_map(&flow["documents_by_index"])
        .into_iter()
        .map(|(k, v)| (k.replacen("cwl-", &format!("{prefix}-"), 1), v))
        .collect();
    let answer = node::search(
        &format!("{prefix}-vpcflow-*"),
        json!({"size": 0, "aggs": {"i": {"terms": {"field": "_index", "size": 100}}}}),
    )
    .await;
    assert_eq!(
        buckets(&answer, "i", None),
        wanted,
        "one document per flow record, in the day of start"
    );
    let findings = expected("guardduty");
    let gd = node::count(&format!("{prefix}-guardduty-*"), "*").await;
    assert_eq!(json!(gd), findings["documents"], "one document per finding version");

    // The CloudTrail records of the Kinesis batch are in the daily CloudTrail indices, and
    // nothing of another family is.
    let cloudtrail = cloudtrail_ids(&prefix).await;
    assert_eq!(node::count(&format!("{prefix}-1*,{prefix}-2*"), "*").await, cloudtrail);
    assert_eq!(
        node::count(&format!("{prefix}-2*"), "_exists_:finding.id OR _exists_:aws.vpcflow").await,
        0
    );

    // Typed fields, each family under its own mapping: no CloudTrail field in the flow index.
    let mapping = node::call(reqwest::Method::GET, &format!("{prefix}-vpcflow-*/_mapping"), None).await;
    for (index, m) in mapping.as_object().unwrap() {
        let props = &m["mappings"]["properties"];
        assert_eq!(props["source"]["properties"]["ip"]["type"], "ip", "{index}");
        assert_eq!(props["destination"]["properties"]["port"]["type"], "long", "{index}");
        assert_eq!(props["event"]["properties"]["start"]["type"], "date", "{index}");
        assert!(props.get("eventName").is_none(), "{index} has the CloudTrail mapping");
        assert_eq!(m["mappings"]["dynamic"], "false", "{index}");
    }
    let mapping = node::call(reqwest::Method::GET, &format!("{prefix}-guardduty-*/_mapping"), None).await;
    for (index, m) in mapping.as_object().unwrap() {
        let props = &m["mappings"]["properties"];
        assert_eq!(props["finding"]["properties"]["severity"]["type"], "float", "{index}");
        assert!(props.get("eventName").is_none(), "{index}");
    }
    // The AWS documentation's first default-format record (SSH, accepted), by CIDR and port:
    // two documents, as two fixtures carry it under two log event ids (the Kinesis batch's
    // copy has the first one's id, and is a duplicate).
    assert_eq!(
        node::count(
            &format!("{prefix}-vpcflow-*"),
            "source.ip:\"172.31.0.0/16\" AND destination.port:22 AND source.bytes:[4000 TO 5000]"
        )
        .await,
        2,
        "CIDR and numeric queries work on the typed fields"
    );
    let by_source = oracle_map(&flow["flows_by_source_ip"]);
    assert_eq!(
        node::count(&format!("{prefix}-vpcflow-*"), "source.ip:\"172.31.16.139\"").await,
        by_source["172.31.16.139"]
    );

    // What the dashboards chart.
    let answer = node::search(
        &format!("{prefix}-vpcflow-*"),
        json!({"size": 0, "aggs": {
            "day": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day", "format": "yyyy-MM-dd", "min_doc_count": 1},
                    "aggs": {"bytes": {"sum": {"field": "source.bytes"}}}},
            "action": {"terms": {"field": "event.action"}},
            "transport": {"terms": {"field": "network.transport"}},
            "direction": {"terms": {"field": "network.direction"}, "aggs": {"bytes": {"sum": {"field": "source.bytes"}}}},
            "rejected": {"filter": {"term": {"event.action": "reject"}},
                         "aggs": {"port": {"terms": {"field": "destination.port"}}}},
            "errors": {"filter": {"exists": {"field": "@parse_error"}}}
        }}),
    )
    .await;
    assert_eq!(
        buckets(&answer, "day", Some("bytes")),
        oracle_map(&flow["bytes_by_day"])
    );
    assert_eq!(buckets(&answer, "action", None), oracle_map(&flow["flows_by_action"]));
    assert_eq!(
        buckets(&answer, "transport", None),
        oracle_map(&flow["flows_by_transport"])
    );
    assert_eq!(
        buckets(&answer, "direction", Some("bytes")),
        oracle_map(&flow["bytes_by_direction"])
    );
    let rejected = json!({"aggregations": {"port": answer["aggregations"]["rejected"]["port"]}});
    assert_eq!(
        buckets(&rejected, "port", None),
        oracle_map(&flow["rejected_by_destination_port"])
    );
    assert_eq!(
        json!(answer["aggregations"]["errors"]["doc_count"]),
        flow["parse_errors"],
        "kept with @parse_error"
    );

    let answer = node::search(
        &format!("{prefix}-guardduty-*"),
        json!({"size": 0, "aggs": {
            "label": {"terms": {"field": "finding.severity_label"}},
            "type": {"terms": {"field": "finding.type", "size": 50}},
            "resource": {"terms": {"field": "finding.resource.id", "size": 50}}
        }}),
    )
    .await;
    assert_eq!(
        buckets(&answer, "label", None),
        oracle_map(&findings["findings_by_severity_label"])
    );
    assert_eq!(
        buckets(&answer, "type", None),
        oracle_map(&findings["findings_by_type"])
    );
    assert_eq!(
        buckets(&answer, "resource", None),
        oracle_map(&findings["findings_by_resource_id"])
    );

    // The latest version of each finding: a collapse on finding.id, newest update first.
    let latest = node::search(
        &format!("{prefix}-guardduty-*"),
        json!({"size": 100, "collapse": {"field": "finding.id"}, "sort": [{"finding.updated_at": "desc"}]}),
    )
    .await;
    let ids: Vec<&str> = latest["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["finding"]["id"].as_str().unwrap())
        .collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(ids.len(), distinct.len());

    // Redelivery, by CloudWatch Logs and by Kinesis: nothing new.
    let (indexed, present, events_in) = deliver(&pipeline, &events).await;
    assert_eq!((indexed, present), (0, events_in));
    let done = kinesis(&pipeline).await;
    assert_eq!(done.item_failures(), 0);
    assert_eq!(done.summary.delivery.indexed, 0, "{:?}", done.summary);
    node::refresh(&prefix).await;
    let total: u64 = wanted.values().sum();
    assert_eq!(node::count(&format!("{prefix}-vpcflow-*"), "*").await, total);
    assert_eq!(
        json!(node::count(&format!("{prefix}-guardduty-*"), "*").await),
        findings["documents"]
    );
    assert_eq!(node::count(&format!("{prefix}-1*,{prefix}-2*"), "*").await, cloudtrail);
}
