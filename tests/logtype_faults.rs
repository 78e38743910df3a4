//! The dead-letter path of the log type families against the real node behind the
//! fault-injecting proxy: a flow record, a finding, a Resolver query or a WAF request the
//! cluster refuses ends in `<prefix>-deadletter-<family>-YYYY.MM.DD` once, redelivery
//! duplicates nothing, and `redrive` lands it in its family index once the cause is gone.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fault_proxy::{Fault, FaultProxy};
use common::node::{self, Pipeline};
use cwl_indexer::{CloudWatchLogsEvent, Summary};
use serde_json::json;

/// One fixture per family, each a CloudWatch Logs event of several records.
const FAMILIES: [(&str, &str); 4] = [
    ("vpcflow", "vpcflow/awsdocs-v2-default.json"),
    ("guardduty", "guardduty/findings-eventbridge.json"),
    ("resolver", "resolver/queries.json"),
    ("waf", "waf/requests.json"),
];

fn fixture(name: &str) -> CloudWatchLogsEvent {
    let path = common::fixtures().join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn ok((summary, result): (Summary, Result<(), cwl_indexer::handler::HandlerError>)) -> Summary {
    result.unwrap_or_else(|e| panic!("{e}: {summary:?}"));
    summary
}

/// Every document under `prefix` as (index, `_id`), and every dead letter as its index and
/// its original (index, id).
async fn landed(prefix: &str) -> (Vec<(String, String)>, Vec<(String, (String, String))>) {
    node::refresh(prefix).await;
    let hits = node::search(
        &format!("{prefix}-*"),
        json!({"size": 1000, "query": {"match_all": {}}}),
    )
    .await;
    let (mut docs, mut dead) = (Vec::new(), Vec::new());
    for h in hits["hits"]["hits"].as_array().unwrap() {
        let index = h["_index"].as_str().unwrap().to_owned();
        if index.contains("-deadletter-") {
            let o = &h["_source"]["original"];
            let original = (
                o["index"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
            );
            dead.push((index, original));
        } else {
            docs.push((index, h["_id"].as_str().unwrap().to_owned()));
        }
    }
    (docs, dead)
}

/// Each expected document exactly once, in its index or in the dead letters; returns the
/// dead letters.
async fn assert_exactly_once(prefix: &str, expected: &BTreeSet<(String, String)>) -> Vec<(String, (String, String))> {
    let (docs, dead) = landed(prefix).await;
    common::assert_each_once(
        docs.into_iter().chain(dead.iter().map(|(_, o)| o.clone())).collect(),
        expected,
    );
    dead
}

#[tokio::test]
async fn a_refused_family_document_is_dead_lettered_once_and_redriven_into_its_family_index() {
    for (family, file) in FAMILIES {
        let prefix = node::unique_prefix(&format!("dl{family}"));
        let _cleanup = node::Cleanup(prefix.clone());
        let proxy = FaultProxy::start(&node::url());
        let pipeline = Pipeline::new(node::config(&prefix, &proxy.url()), None);
        let event = fixture(file);
        let expected = common::expected_ids(&prefix, &event).await;
        assert!(expected.len() >= 2, "{family}: {expected:?}");
        assert!(
            expected
                .iter()
                .all(|(i, _)| i.starts_with(&format!("{prefix}-{family}-"))),
            "{family}: {expected:?}"
        );
        let reject = || Fault::RejectItems {
            positions: vec![1],
            status: 400,
            error_type: "mapper_parsing_exception",
        };

        proxy.plan(vec![reject()]);
        let summary = ok(pipeline.invoke(&event, None).await);
        assert_eq!(summary.delivery.dead_lettered, 1, "{family}: {summary:?}");
        let dead = assert_exactly_once(&prefix, &expected).await;
        assert_eq!(dead.len(), 1, "{family}");
        let (dead_index, (original, _)) = &dead[0];
        // The family's own dead-letter index, of the original's day.
        let day = original.rsplit('-').next().unwrap();
        assert_eq!(dead_index, &format!("{prefix}-deadletter-{family}-{day}"), "{family}");
        let letters = node::search(&format!("{prefix}-deadletter-*"), json!({"size": 1})).await;
        let letter = &letters["hits"]["hits"][0]["_source"];
        assert_eq!(letter["error"]["type"], "mapper_parsing_exception", "{family}");
        assert!(
            !letter["message"].as_str().unwrap().is_empty(),
            "{family}: the raw record is kept"
        );
        assert!(!letter["@log_group"].as_str().unwrap().is_empty(), "{family}");

        // Redelivered and refused again: still one dead letter, nothing indexed twice.
        proxy.plan(vec![reject()]);
        let summary = ok(pipeline.invoke(&event, None).await);
        assert_eq!(summary.delivery.indexed, 0, "{family}: {summary:?}");
        assert_eq!(summary.delivery.dead_lettered, 1, "{family}: {summary:?}");
        assert_eq!(assert_exactly_once(&prefix, &expected).await.len(), 1, "{family}");

        // The cause is gone: redrive rebuilds the document from the raw record and its log
        // group (a flow log group's format applies again) into its family index.
        let report = cwl_indexer::ops::redrive(&pipeline.opensearch, &pipeline.indexer, false, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(
            (report.found, report.cleared, report.kept),
            (1, 1, 0),
            "{family}: {report:?}"
        );
        assert!(assert_exactly_once(&prefix, &expected).await.is_empty(), "{family}");
        // The redriven document is typed like the others: its family template applied.
        let mapping = node::call(reqwest::Method::GET, &format!("{original}/_mapping"), None).await;
        let properties = &mapping[original.as_str()]["mappings"]["properties"];
        assert_eq!(properties["@timestamp"]["type"], "date", "{family}: {mapping}");
        assert!(
            properties.get("eventName").is_none(),
            "{family}: not the CloudTrail mapping"
        );
    }
}

#[tokio::test]
async fn a_write_blocked_family_index_sends_its_documents_to_the_dead_letters() {
    // A real refusal by the node, not an injected one: the family's daily indices exist, blocked.
    let prefix = node::unique_prefix("dlblock");
    let _cleanup = node::Cleanup(prefix.clone());
    let proxy = FaultProxy::start(&node::url());
    let pipeline = Pipeline::new(node::config(&prefix, &proxy.url()), None);
    let mut expected = BTreeSet::new();
    let events: Vec<CloudWatchLogsEvent> = ["vpcflow/awsdocs-v2-default.json", "guardduty/findings-eventbridge.json"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    for event in &events {
        expected.extend(common::expected_ids(&prefix, event).await);
    }
    // Setup first (templates), so the blocked indices are created with their family mapping.
    ok(pipeline.invoke(&fixture("insights.json"), None).await);
    let cloudtrail = landed(&prefix).await.0;
    let indices: BTreeSet<&str> = expected.iter().map(|(i, _)| i.as_str()).collect();
    for index in &indices {
        node::create_write_blocked(index).await;
    }
    let mut dead_lettered = 0;
    for event in &events {
        let summary = ok(pipeline.invoke(event, None).await);
        dead_lettered += summary.delivery.dead_lettered;
    }
    assert_eq!(dead_lettered, expected.len());
    node::refresh(&prefix).await;
    let letters = node::search(
        &format!("{prefix}-deadletter-*"),
        json!({"size": 0, "aggs": {"t": {"terms": {"field": "error.type"}}, "i": {"terms": {"field": "original.index", "size": 100}}}}),
    )
    .await;
    assert_eq!(
        letters["aggregations"]["t"]["buckets"][0]["key"], "cluster_block_exception",
        "{letters}"
    );
    let original: BTreeSet<String> = letters["aggregations"]["i"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(original, indices.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    // Redelivered while still blocked: the same dead letters, no second copy.
    for event in &events {
        ok(pipeline.invoke(event, None).await);
    }
    let (docs, dead) = landed(&prefix).await;
    assert_eq!(docs, cloudtrail, "nothing in the blocked family indices");
    let mut originals: Vec<(String, String)> = dead.into_iter().map(|(_, o)| o).collect();
    originals.sort();
    assert_eq!(originals, expected.into_iter().collect::<Vec<_>>());
}
