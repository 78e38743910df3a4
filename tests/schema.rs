//! Against the real node, schema v2 (issue 15): terms aggregations on every promoted field
//! return the buckets an oracle computes from the 1,557 shared records; the ECS aliases answer
//! like the raw fields; `event.outcome` and `user.name` hold what the records say; and each of
//! Security Analytics' 43 CloudTrail fields resolves to a concrete field.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::node::{self, Pipeline};
use cwl_indexer::index::Flavor;
use cwl_indexer::pipeline::WriterSink;
use cwl_indexer::schema::{ECS_ALIASES, PROMOTED, PROMOTED_PREFIX, Promote, SECURITY_ANALYTICS_ALIASES};
use cwl_indexer::{CloudWatchLogsEvent, Config, Indexer};
use serde_json::{Value, json};

/// The records the cluster holds: the first record per (index, _id), since `create` keeps the
/// first (the corpus has Panther test records sharing placeholder ids).
async fn held(prefix: &str, events: &[CloudWatchLogsEvent], records: &[Value]) -> Vec<Value> {
    let indexer = Indexer::new(Config {
        index_prefix: prefix.to_owned(),
        ..Config::default()
    });
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut n = 0;
    for event in events {
        let mut sink = WriterSink(Vec::new());
        indexer.process(event, &mut sink, None).await.1.unwrap();
        for (action, _) in common::pairs(&sink.0) {
            let key = (action["create"]["_index"].clone(), action["create"]["_id"].clone());
            if seen.insert(format!("{}|{}", key.0, key.1)) {
                out.push(records[n].clone());
            }
            n += 1;
        }
    }
    assert_eq!(n, records.len());
    out
}

/// Every value at a dotted path, arrays transparent at every level.
fn values_at<'v>(value: &'v Value, parts: &[&str], out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| values_at(v, parts, out)),
        _ if parts.is_empty() => out.push(value),
        Value::Object(map) => {
            if let Some(v) = map.get(parts[0]) {
                values_at(v, &parts[1..], out);
            }
        }
        _ => {}
    }
}

/// The bucket key a value gives on a field of `kind`, if it fits (the oracle's own shape check,
/// written from the issue's rules, not from the encoder).
fn bucket(kind: Promote, v: &Value) -> Option<String> {
    match (kind, v) {
        (Promote::Keyword, Value::String(s)) => (s.chars().count() <= 1024).then(|| s.clone()),
        (Promote::Keyword, Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        (Promote::Long, Value::Number(n)) => n
            .as_i64()
            .filter(|i| i.unsigned_abs() < 10u64.pow(18))
            .map(|i| i.to_string()),
        (Promote::Long, Value::String(s)) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            ((1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i64>().unwrap().to_string())
        }
        (Promote::Boolean, Value::Bool(b)) => Some(b.to_string()),
        (Promote::Boolean, Value::String(s)) if s == "true" || s == "false" => Some(s.clone()),
        (Promote::Ip, Value::String(s)) => s.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string()),
        _ => None,
    }
}

/// Documents per bucket of `path` over `records`, by the oracle.
fn oracle(records: &[Value], path: &str, kind: Promote) -> BTreeMap<String, u64> {
    let parts: Vec<&str> = path.split('.').collect();
    let mut counts = BTreeMap::new();
    for record in records {
        let Some(root) = record.get(parts[0]).filter(|r| r.is_object()) else {
            continue;
        };
        let mut found = Vec::new();
        values_at(root, &parts[1..], &mut found);
        let keys: BTreeSet<String> = found.into_iter().filter_map(|v| bucket(kind, v)).collect();
        for key in keys {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    counts
}

/// The node's terms buckets on `field` (`key_as_string` where it has one).
async fn buckets(pattern: &str, field: &str) -> BTreeMap<String, u64> {
    let answer = node::search(
        pattern,
        json!({"size": 0, "aggs": {"b": {"terms": {"field": field, "size": 10000}}}}),
    )
    .await;
    answer["aggregations"]["b"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("{field}: {answer}"))
        .iter()
        .map(|b| {
            let key = b["key_as_string"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| b["key"].as_str().map_or_else(|| b["key"].to_string(), str::to_owned));
            (key, b["doc_count"].as_u64().unwrap())
        })
        .collect()
}

async fn index_corpus(prefix: &str) -> Vec<Value> {
    let (events, records) = common::corpus();
    let pipeline = Pipeline::new(node::config(prefix, &node::url()), None);
    for event in &events {
        let (summary, result) = pipeline.invoke(event, None).await;
        result.unwrap_or_else(|e| panic!("{e}: {summary:?}"));
        assert_eq!(summary.delivery.dead_lettered, 0, "{summary:?}");
    }
    node::refresh(prefix).await;
    held(prefix, &events, &records).await
}

#[tokio::test]
async fn promoted_fields_aliases_and_computed_fields_answer_from_the_records() {
    let prefix = node::unique_prefix("schema");
    let _cleanup = node::Cleanup(prefix.clone());
    let records = index_corpus(&prefix).await;
    let pattern = format!("{prefix}-*");
    assert_eq!(node::count(&pattern, "*").await, records.len() as u64);

    // Every promoted field: the node's buckets are the oracle's, bucket for bucket.
    let mut with_values = 0;
    for (path, kind) in PROMOTED {
        let expected = oracle(&records, path, *kind);
        let got = buckets(&pattern, &format!("{PROMOTED_PREFIX}{path}")).await;
        assert_eq!(got, expected, "{path}");
        with_values += usize::from(!expected.is_empty());
    }
    assert!(with_values >= 55, "the corpus exercises the table: {with_values}");
    let s3 = buckets(&pattern, "aws.cloudtrail.requestParameters.bucketName").await;
    assert!(s3.len() > 50, "{s3:?}");

    // The ECS aliases answer like the fields they name.
    for (alias, target) in ECS_ALIASES {
        // eventID keeps no doc values (unique ids are searched, never aggregated): checked by
        // the counts and the term query below instead.
        if *target != "eventID" {
            let (a, t) = (buckets(&pattern, alias).await, buckets(&pattern, target).await);
            assert_eq!(a, t, "{alias} -> {target}");
            assert!(!a.is_empty(), "{alias}");
        }
        assert_eq!(
            node::count(&pattern, &format!("_exists_:{}", alias.replace('.', "\\."))).await,
            node::count(&pattern, &format!("_exists_:{target}")).await,
            "{alias}"
        );
    }
    let q = |field: &str, value: &str| json!({"size": 0, "query": {"term": {field: value}}});
    let first = |path: &[&str]| {
        records
            .iter()
            .find_map(|r| path.iter().try_fold(r, |v, k| v.get(*k))?.as_str())
            .unwrap()
    };
    for (alias, target, value) in [
        ("event.action", "eventName", "ConsoleLogin"),
        ("cloud.region", "awsRegion", first(&["awsRegion"])),
        ("event.id", "eventID", first(&["eventID"])),
        (
            "aws.cloudtrail.user_identity.arn",
            "userIdentity.arn",
            first(&["userIdentity", "arn"]),
        ),
    ] {
        let a = node::search(&pattern, q(alias, value)).await["hits"]["total"]["value"].clone();
        let t = node::search(&pattern, q(target, value)).await["hits"]["total"]["value"].clone();
        assert_eq!(a, t, "{alias}:{value}");
        assert!(a.as_u64() > Some(0), "{alias}:{value}");
    }

    // event.outcome and user.name, by the rules the README gives.
    let mut outcome = BTreeMap::new();
    let mut names = BTreeMap::new();
    for r in &records {
        let failed = r["errorCode"].as_str().is_some_and(|c| !c.is_empty())
            || r["responseElements"]["ConsoleLogin"] == "Failure";
        *outcome
            .entry(if failed { "failure" } else { "success" }.to_owned())
            .or_insert(0) += 1;
        let ui = &r["userIdentity"];
        let name = ui["userName"].as_str().map(str::to_owned).or_else(|| {
            let last = ui["arn"].as_str()?.rsplit('/').next()?;
            (!last.is_empty() && !last.contains(':')).then(|| last.to_owned())
        });
        if let Some(name) = name.filter(|_| ui.is_object()) {
            *names.entry(name).or_insert(0) += 1;
        }
    }
    assert_eq!(buckets(&pattern, "event.outcome").await, outcome);
    assert!(outcome["failure"] > 300, "{outcome:?}");
    assert_eq!(buckets(&pattern, "user.name").await, names);
}

/// Follows `GET <index>/_mapping/field/<path>` to the field's mapping.
async fn field_mapping(index: &str, path: &str) -> Option<Value> {
    let answer = node::call(reqwest::Method::GET, &format!("{index}/_mapping/field/{path}"), None).await;
    let (_, fields) = answer.as_object()?.iter().next()?;
    let leaf = path.rsplit('.').next()?;
    fields["mappings"][path]["mapping"].get(leaf).cloned()
}

#[tokio::test]
async fn every_security_analytics_field_resolves_to_a_concrete_field() {
    let prefix = node::unique_prefix("sa");
    let _cleanup = node::Cleanup(prefix.clone());
    // One record makes the day's index from the template.
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let msg = r#"{"eventVersion":"1.08","eventTime":"2024-05-01T00:00:00Z","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventID":"sa-1","recipientAccountId":"1","requestParameters":{"roleArn":"arn:aws:iam::1:role/r"}}"#;
    let event = common::lambda_event(&common::data_envelope(&[msg], |_| 0));
    pipeline.invoke(&event, None).await.1.unwrap();
    let index = format!("{prefix}-2024.05.01");
    let flavor = node::flavor().await;

    let logtype: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("security-analytics/cloudtrail_logtype.json")).unwrap(),
    )
    .unwrap();
    let fields = logtype["mappings"].as_array().unwrap();
    assert_eq!(fields.len(), 43);
    let mut resolved = 0;
    let mut not_applicable = Vec::new();
    for field in fields {
        let (raw, ecs) = (field["raw_field"].as_str().unwrap(), field["ecs"].as_str().unwrap());
        let alias = SECURITY_ANALYTICS_ALIASES.iter().find(|(a, _)| *a == ecs).unwrap();
        let got = field_mapping(&index, ecs)
            .await
            .unwrap_or_else(|| panic!("{raw}: {ecs} is not in the mapping"));
        assert_eq!(got["type"], "alias", "{ecs}: {got}");
        let target = got["path"].as_str().unwrap();
        // The log type gives responseElements.ConsoleLogin publiclyAccessible's ecs name: one
        // alias, one target. That field is found under its promoted name instead.
        let concrete_path = if raw == "responseElements.ConsoleLogin" {
            not_applicable.push((raw, "shares its ecs name with responseElements.publiclyAccessible"));
            assert_eq!(target, "aws.cloudtrail.responseElements.publiclyAccessible");
            "aws.cloudtrail.responseElements.ConsoleLogin"
        } else {
            assert!(
                alias.1 == target || (flavor == Flavor::Disabled && target == "@json.responseElements"),
                "{ecs}: {target}"
            );
            target
        };
        let mapping = field_mapping(&index, concrete_path)
            .await
            .unwrap_or_else(|| panic!("{raw}: target {concrete_path} is not in the mapping"));
        let ty = mapping["type"].as_str().unwrap_or("object");
        assert!(
            ["keyword", "boolean", "date", "text", "long", "ip"].contains(&ty)
                || (concrete_path == "responseElements" && ["flat_object", "flattened"].contains(&ty)),
            "{raw}: {concrete_path} is {ty}, not a concrete field an alias can use"
        );
        resolved += 1;
    }
    assert_eq!(resolved, 43);
    assert_eq!(not_applicable.len(), 1, "{not_applicable:?}");
    // And through an alias, a rule's query finds the record.
    let hits = node::search(
        &index,
        json!({"query": {"term": {"aws.cloudtrail.request_parameters.roleArn": "arn:aws:iam::1:role/r"}}}),
    )
    .await;
    assert_eq!(hits["hits"]["total"]["value"], 1, "{hits}");
}

#[tokio::test]
async fn without_setup_the_encoder_still_learns_the_flavor() {
    let prefix = node::unique_prefix("nosetup");
    let _cleanup = node::Cleanup(prefix.clone());
    let mut config = node::config(&prefix, &node::url());
    config.sink.as_mut().unwrap().setup.install = false;
    let pipeline = Pipeline::new(config, None);
    let msg = r#"{"eventVersion":"1.08","eventTime":"2024-05-02T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"ns-1","recipientAccountId":"1","requestParameters":{"bucketName":"b"}}"#;
    let event = common::lambda_event(&common::data_envelope(&[msg], |_| 0));
    let (summary, result) = pipeline.invoke(&event, None).await;
    result.unwrap();
    assert_eq!(summary.delivery.indexed, 1, "{summary:?}");
    node::refresh(&prefix).await;
    // No template here, so `_source` would keep `@json` had it been written.
    let hits = node::search(&format!("{prefix}-*"), json!({"query": {"match_all": {}}})).await;
    let source = &hits["hits"]["hits"][0]["_source"];
    let indexes_subtrees = node::flavor().await != Flavor::Disabled;
    assert_eq!(source.get("@json").is_none(), indexes_subtrees, "{source}");
    assert_eq!(source["aws"]["cloudtrail"]["requestParameters"]["bucketName"], "b");
}
