//! Against the real node: every fixture and all 1,557 shared records are indexed exactly
//! once, nothing is dead-lettered, replays change nothing, and the queries and aggregations
//! users rely on find exactly what the input holds.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::node::{self, Pipeline};
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::index::Flavor;
use cwl_indexer::pipeline::WriterSink;
use cwl_indexer::{Config, Indexer};
use serde_json::{Value, json};

/// Every fixture file as a Lambda event, in name order.
fn fixtures() -> Vec<(String, CloudWatchLogsEvent)> {
    let mut files: Vec<_> = std::fs::read_dir(common::fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let event = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), event)
        })
        .collect()
}

/// The (index, _id, document) of every item the transform builds for `events`, in order.
async fn items(prefix: &str, events: &[CloudWatchLogsEvent]) -> Vec<(String, String, Value)> {
    let indexer = Indexer::new(Config {
        index_prefix: prefix.to_owned(),
        ..Config::default()
    });
    let mut all = Vec::new();
    for event in events {
        let mut sink = WriterSink(Vec::new());
        let (_, result) = indexer.process(event, &mut sink, None).await;
        result.unwrap();
        for (action, doc) in common::pairs(&sink.0) {
            let create = &action["create"];
            all.push((
                create["_index"].as_str().unwrap().to_owned(),
                create["_id"].as_str().unwrap().to_owned(),
                doc,
            ));
        }
    }
    all
}

/// What the cluster must hold: the first document per (index, _id), since `create` keeps the
/// first and answers 409 to the others.
fn first_per_id(items: &[(String, String, Value)]) -> BTreeMap<(String, String), Value> {
    let mut first = BTreeMap::new();
    for (index, id, doc) in items {
        first.entry((index.clone(), id.clone())).or_insert_with(|| doc.clone());
    }
    first
}

async fn index_all(pipeline: &Pipeline, events: &[CloudWatchLogsEvent]) -> (usize, usize, usize) {
    let (mut indexed, mut present, mut events_in) = (0, 0, 0);
    for event in events {
        let (summary, result) = pipeline.invoke(event, None).await;
        result.unwrap_or_else(|e| panic!("{e}: {summary:?}"));
        let d = summary.delivery;
        assert_eq!(d.dead_lettered, 0, "{summary:?}");
        assert_eq!(d.indexed + d.duplicates, summary.events_in, "{summary:?}");
        assert!(
            d.bulk_bytes == 0 || d.wire_bytes < d.bulk_bytes,
            "gzip shrinks the body: {summary:?}"
        );
        indexed += d.indexed;
        present += d.duplicates;
        events_in += summary.events_in;
    }
    (indexed, present, events_in)
}

#[tokio::test]
async fn fixtures_and_corpus_are_indexed_exactly_once() {
    let prefix = node::unique_prefix("exact");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let mut events: Vec<CloudWatchLogsEvent> = fixtures().into_iter().map(|(_, e)| e).collect();
    events.extend(common::corpus().0);

    let expected = first_per_id(&items(&prefix, &events).await);
    let (indexed, present, events_in) = index_all(&pipeline, &events).await;
    // A retried request (a timeout while a slow node creates many daily indices, say) finds
    // what its first attempt indexed as "already present": the counts below are the proof.
    assert!(
        indexed <= expected.len(),
        "never more creations than distinct (index, _id)"
    );
    assert_eq!(indexed + present, events_in);

    node::refresh(&prefix).await;
    let mut per_index: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, _) in expected.keys() {
        *per_index.entry(index).or_default() += 1;
    }
    let answer = node::search(
        &format!("{prefix}-*"),
        json!({"size": 0, "aggs": {"i": {"terms": {"field": "_index", "size": 10000}}}}),
    )
    .await;
    let actual: BTreeMap<&str, u64> = answer["aggregations"]["i"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_str().unwrap(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        actual, per_index,
        "exact document counts per daily index, and no dead-letter index"
    );
    assert_eq!(node::count(&format!("{prefix}-deadletter-*"), "*").await, 0);

    // The templates are in place, and the daily indices use them.
    let template = node::call(
        reqwest::Method::GET,
        &format!("_index_template/{}", cwl_indexer::index::template_name(&prefix)),
        None,
    )
    .await;
    let flavor = node::flavor().await;
    assert_eq!(
        template["index_templates"][0]["index_template"]["_meta"]["flavor"],
        flavor.as_str()
    );
    let mapping = node::call(reqwest::Method::GET, &format!("{prefix}-2021.12.02/_mapping"), None).await;
    let props = &mapping[format!("{prefix}-2021.12.02")]["mappings"]["properties"];
    match flavor {
        Flavor::FlatObject => assert_eq!(props["requestParameters"]["type"], "flat_object"),
        Flavor::Flattened => assert_eq!(props["requestParameters"]["type"], "flattened"),
        Flavor::Disabled => assert_eq!(props["requestParameters"]["enabled"], false),
    }
    assert_eq!(props["eventTime"]["type"], "date");

    // Replaying everything again changes nothing: every item is already present.
    let (indexed, present, events_in) = index_all(&pipeline, &events).await;
    assert_eq!((indexed, present), (0, events_in));
    node::refresh(&prefix).await;
    assert_eq!(node::count(&format!("{prefix}-*"), "*").await, expected.len() as u64);
}

#[tokio::test]
async fn queries_and_aggregations_find_exactly_what_the_input_holds() {
    let prefix = node::unique_prefix("queries");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let (events, _) = common::corpus();
    let docs = first_per_id(&items(&prefix, &events).await);
    index_all(&pipeline, &events).await;
    node::refresh(&prefix).await;
    let pattern = format!("{prefix}-*");

    // The expected answers, from the input documents, independently of the cluster.
    let ids = |pred: &dyn Fn(&Value) -> bool| -> BTreeSet<(String, String)> {
        docs.iter().filter(|(_, d)| pred(d)).map(|(k, _)| k.clone()).collect()
    };
    let hits = |answer: Value| -> BTreeSet<(String, String)> {
        answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["_index"].as_str().unwrap().to_owned(),
                    h["_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let query = |q: &str| json!({"size": 10000, "_source": false, "query": {"query_string": {"query": q}}});

    let failed_logins =
        ids(&|d| d["eventName"] == "ConsoleLogin" && d["responseElements"]["ConsoleLogin"] == "Failure");
    assert!(failed_logins.len() >= 5, "{}", failed_logins.len());
    // Dotted queries into free-form subtrees need flat_object or flattened; on older clusters
    // the same events are found through the subtree's text copy.
    let failed_query = match node::flavor().await {
        Flavor::Disabled => "eventName:ConsoleLogin AND @json.responseElements:Failure",
        _ => "eventName:ConsoleLogin AND responseElements.ConsoleLogin:Failure",
    };
    let found = hits(node::search(&pattern, query(failed_query)).await);
    assert_eq!(found, failed_logins, "failed console logins");

    let root = ids(&|d| d["userIdentity"]["type"] == "Root");
    assert!(root.len() >= 10, "{}", root.len());
    assert_eq!(
        hits(node::search(&pattern, query("userIdentity.type:Root")).await),
        root,
        "root activity"
    );

    // A date range on @timestamp.
    let in_range = ids(&|d| {
        let t = d["@timestamp"].as_str().unwrap();
        ("2020-01-01".."2021-01-01").contains(&t)
    });
    assert!(!in_range.is_empty());
    let range = json!({"size": 10000, "_source": false, "query": {"range": {"@timestamp": {"gte": "2020-01-01T00:00:00Z", "lt": "2021-01-01T00:00:00Z"}}}});
    assert_eq!(hits(node::search(&pattern, range).await), in_range, "@timestamp range");

    // Terms aggregations on eventName and errorCode.
    for field in ["eventName", "errorCode"] {
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for doc in docs.values() {
            if let Some(v) = doc[field].as_str() {
                *expected.entry(v.to_owned()).or_default() += 1;
            }
        }
        let answer = node::search(
            &pattern,
            json!({"size": 0, "aggs": {"t": {"terms": {"field": field, "size": 10000}}}}),
        )
        .await;
        let actual: BTreeMap<String, u64> = answer["aggregations"]["t"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["key"].as_str().unwrap().to_owned(), b["doc_count"].as_u64().unwrap()))
            .collect();
        assert!(expected.len() > 5, "{field}");
        assert_eq!(actual, expected, "terms aggregation on {field}");
    }
}

#[tokio::test]
async fn a_control_message_indexes_nothing() {
    let prefix = node::unique_prefix("control");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let (_, control) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "control-message.json")
        .unwrap();
    let (summary, result) = pipeline.invoke(&control, None).await;
    result.unwrap();
    assert_eq!(summary.message_type, "CONTROL_MESSAGE");
    assert_eq!(summary.delivery.requests, 0, "no request at all");
    node::refresh(&prefix).await;
    assert_eq!(node::count(&format!("{prefix}-*"), "*").await, 0);
}

#[tokio::test]
async fn uncompressed_bodies_work_too_and_odd_records_index() {
    let prefix = node::unique_prefix("plain");
    let _cleanup = node::Cleanup(prefix.clone());
    let mut config = node::config(&prefix, &node::url());
    config.sink.as_mut().unwrap().gzip = false;
    let pipeline = Pipeline::new(config, None);
    for name in ["unparseable.json", "plain-text.json", "runinstances-large.json"] {
        let (_, event) = fixtures().into_iter().find(|(n, _)| n == name).unwrap();
        let (summary, result) = pipeline.invoke(&event, None).await;
        result.unwrap();
        let d = summary.delivery;
        assert_eq!(d.wire_bytes, d.bulk_bytes, "{name}: sent as is");
        assert_eq!(d.dead_lettered, 0, "{name}: {summary:?}");
        assert_eq!(d.indexed + d.duplicates, summary.events_in, "{name}: {summary:?}");
    }
    node::refresh(&prefix).await;
    // The daily CloudTrail indices; plain-text.json's group (`/aws/vpc/flow-logs`) is a flow-log
    // group by the default FLOW_LOG_GROUPS, so its two flow records and its three other text
    // lines (kept with @parse_error) are in the flow indices.
    let pattern = cwl_indexer::deliver::cluster::cloudtrail_pattern(&prefix);
    assert_eq!(
        node::count(&pattern, "_exists_:@parse_error").await,
        4,
        "the four unparseable records"
    );
    assert_eq!(
        node::count(&format!("{prefix}-vpcflow-*"), "_exists_:@parse_error").await,
        3
    );
    assert_eq!(node::count(&format!("{prefix}-vpcflow-*"), "source.ip:*").await, 2);
    assert_eq!(
        node::count(&pattern, "eventName:LastWins").await,
        1,
        "duplicate keys: the last wins"
    );
    // The two padded RunInstances records share their eventID: one document.
    assert_eq!(node::count(&pattern, "eventName:RunInstances").await, 1);
    let flavor = node::flavor().await;
    if flavor == Flavor::Disabled {
        // Text copies (FULL_TEXT_SUBTREES=auto keeps them here) make the unindexed subtrees
        // searchable as text without storing them twice.
        let hit = node::search(
            &pattern,
            json!({"query": {"match": {"@json.requestParameters": "m3.medium"}}}),
        )
        .await;
        assert!(hit["hits"]["total"]["value"].as_u64().unwrap() >= 1, "{hit}");
        assert!(
            hit["hits"]["hits"][0]["_source"].get("@json").is_none(),
            "not stored in _source"
        );
    } else {
        // FULL_TEXT_SUBTREES=auto leaves the copies out: the subtree itself and the promoted
        // field find the value.
        let with_copies = node::search(
            &pattern,
            json!({"query": {"query_string": {"query": "_exists_:@json"}}}),
        )
        .await;
        assert_eq!(with_copies["hits"]["total"]["value"], 0, "{with_copies}");
        assert!(node::count(&pattern, "requestParameters.instanceType:m3.medium").await >= 1);
        assert!(node::count(&pattern, "aws.cloudtrail.requestParameters.instanceType:m3.medium").await >= 1);
    }
}
