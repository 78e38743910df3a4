//! VPC flow records and GuardDuty findings against the real node: through CloudWatch Logs and
//! a mixed Kinesis batch they land once each, in their own daily indices under their own
//! templates, with typed fields; redelivery adds nothing; the aggregations the dashboards
//! chart give the fixtures' oracle (`fixtures/{vpcflow,guardduty}/expected.json`).

mod common;

use std::collections::BTreeMap;

use common::node::{self, Pipeline};
use cwl_indexer::config::{FlowLogConfig, SignalsConfig};
use cwl_indexer::signals::Enrichment;
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

/// A pipeline under `prefix` with GeoIP as the function loads it (the fixtures' test
/// databases), for the maps.
fn geo_pipeline(prefix: &str) -> Pipeline {
    let mut pipeline = Pipeline::new(config(prefix), None);
    let geo = common::fixtures().join("geo");
    let signals = SignalsConfig {
        geoip_db: Some(geo.join("city-subset.mmdb")),
        geoip_asn_db: Some(geo.join("asn-subset.mmdb")),
        ..SignalsConfig::default()
    };
    pipeline.indexer = pipeline.indexer.with_enrichment(Enrichment::load(&signals).unwrap());
    pipeline
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
    let pipeline = geo_pipeline(&prefix);
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

    dashboards_aggregate_to_the_oracle(&prefix, &flow, &findings).await;

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

/// The family dashboards' saved objects, as committed.
const LOGTYPE_OBJECTS: &str = include_str!("../dashboards/logtypes.ndjson");

/// The request Dashboards sends for a visualization, from its visState and saved query: the
/// buckets nested in order under the metric. A date histogram's `auto` interval is a day here
/// (the oracle's unit; Dashboards picks one from the time range shown).
fn request_of(vis: &Value) -> (String, Value, Vec<Value>) {
    let state: Value = serde_json::from_str(vis["attributes"]["visState"].as_str().unwrap()).unwrap();
    let source: Value = serde_json::from_str(
        vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let aggs = state["aggs"].as_array().unwrap().clone();
    let metric = &aggs[0];
    let metric_agg = match metric["type"].as_str().unwrap() {
        "count" => None,
        "sum" => Some(json!({"sum": {"field": metric["params"]["field"]}})),
        other => panic!("metric {other}"),
    };
    let buckets: Vec<Value> = aggs[1..].to_vec();
    let mut inner: Option<Value> = metric_agg.clone().map(|m| json!({"1": m}));
    for b in buckets.iter().rev() {
        let p = &b["params"];
        let mut agg = match b["type"].as_str().unwrap() {
            "date_histogram" => json!({"date_histogram": {"field": p["field"], "calendar_interval": "1d",
                                       "format": "yyyy-MM-dd", "min_doc_count": p["min_doc_count"]}}),
            "terms" => {
                let order = if metric_agg.is_some() {
                    json!({"1": "desc"})
                } else {
                    json!({"_count": "desc"})
                };
                json!({"terms": {"field": p["field"], "size": p["size"], "order": order}})
            }
            "geohash_grid" => json!({"geohash_grid": {"field": p["field"], "precision": p["precision"]}}),
            other => panic!("bucket {other}"),
        };
        if let Some(sub) = inner.take() {
            agg["aggs"] = sub;
        }
        let mut level = json!({});
        level[b["id"].as_str().unwrap()] = agg;
        if let Some(m) = &metric_agg {
            // Every level carries the metric, as Dashboards' tabify reads it.
            level_metric(&mut level, b["id"].as_str().unwrap(), m);
        }
        inner = Some(level);
    }
    let query = source["query"]["query"].as_str().unwrap_or("").to_owned();
    (query, inner.unwrap_or_else(|| json!({})), buckets)
}

fn level_metric(level: &mut Value, id: &str, metric: &Value) {
    let aggs = level[id]
        .as_object_mut()
        .unwrap()
        .entry("aggs")
        .or_insert_with(|| json!({}));
    aggs["1"] = metric.clone();
}

/// Flattens a nested answer into `{"key1 key2": value}`, value the metric or the count.
fn flatten(node: &Value, ids: &[String], prefix: &str, sum: bool, out: &mut BTreeMap<String, u64>) {
    let Some((id, rest)) = ids.split_first() else { return };
    for b in node[id]["buckets"].as_array().unwrap() {
        let key = b
            .get("key_as_string")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| match &b["key"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix} {key}")
        };
        if rest.is_empty() {
            let value = if sum {
                b["1"]["value"].as_f64().unwrap() as u64
            } else {
                b["doc_count"].as_u64().unwrap()
            };
            out.insert(key, value);
        } else {
            flatten(b, rest, &key, sum, out);
        }
    }
}

/// The objects of `dashboards/logtypes.ndjson`, and its index patterns' titles by id.
fn logtype_objects() -> (Vec<Value>, BTreeMap<String, String>) {
    let objects: Vec<Value> = LOGTYPE_OBJECTS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let titles = objects
        .iter()
        .filter(|o| o["type"] == "index-pattern")
        .map(|o| {
            let title = o["attributes"]["title"].as_str().unwrap();
            (o["id"].as_str().unwrap().to_owned(), title.to_owned())
        })
        .collect();
    (objects, titles)
}

/// The visualization's request, rebuilt from its saved state, run on its index pattern under
/// `prefix`: the pattern and the flattened buckets (`{"key1 key2": count or sum}`).
async fn aggregate<T: AsRef<str>>(
    prefix: &str,
    titles: &BTreeMap<&str, T>,
    vis: &Value,
) -> (String, BTreeMap<String, u64>) {
    let pattern =
        titles[vis["references"][0]["id"].as_str().unwrap()]
            .as_ref()
            .replacen("cwl-", &format!("{prefix}-"), 1);
    let (query, aggs, buckets) = request_of(vis);
    let sum = aggs.to_string().contains("\"sum\"");
    let query = if query.is_empty() {
        json!({"match_all": {}})
    } else {
        json!({"query_string": {"query": query}})
    };
    let answer = node::search(&pattern, json!({"size": 0, "query": query, "aggs": aggs})).await;
    let ids: Vec<String> = buckets.iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect();
    let mut got = BTreeMap::new();
    flatten(&answer["aggregations"], &ids, "", sum, &mut got);
    (pattern, got)
}

/// Every flow and finding visualization of `dashboards/logtypes.ndjson`, its request rebuilt
/// from its saved state, against the node: the buckets the fixtures' oracle computes.
async fn dashboards_aggregate_to_the_oracle(prefix: &str, flow: &Value, findings: &Value) {
    let objects: Vec<Value> = LOGTYPE_OBJECTS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let titles: BTreeMap<&str, &str> = objects
        .iter()
        .filter(|o| o["type"] == "index-pattern")
        .map(|o| (o["id"].as_str().unwrap(), o["attributes"]["title"].as_str().unwrap()))
        .collect();
    assert_eq!(titles.len(), 4);
    let mut checked = Vec::new();
    for vis in objects.iter().filter(|o| o["type"] == "visualization") {
        let id = vis["id"].as_str().unwrap();
        if id.starts_with("cwl-indexer-resolver-") || id.starts_with("cwl-indexer-waf-") {
            // Checked by `resolver_and_waf_dashboards_aggregate_to_the_oracle`.
            continue;
        }
        let (pattern, got) = aggregate(prefix, &titles, vis).await;
        let want = |key: &str, v: &Value| oracle_map(&v[key]);
        match id {
            "cwl-indexer-vpcflow-bytes-over-time" => assert_eq!(got, want("bytes_by_day", flow), "{id}"),
            "cwl-indexer-vpcflow-rejected-by-port" => {
                assert_eq!(got, want("rejected_by_destination_port", flow), "{id}")
            }
            "cwl-indexer-vpcflow-by-direction" => assert_eq!(got, want("bytes_by_direction", flow), "{id}"),
            "cwl-indexer-vpcflow-top-talkers" => {
                // The 10 largest senders: each bucket's bytes as the oracle has them, and the
                // same 10 amounts as the oracle's top 10 (ties may order differently).
                let oracle = want("bytes_by_source_ip", flow);
                for (ip, bytes) in &got {
                    assert_eq!(oracle.get(ip), Some(bytes), "{id}: {ip}");
                }
                let mut top: Vec<u64> = oracle.values().copied().collect();
                top.sort_unstable_by(|a, b| b.cmp(a));
                let mut mine: Vec<u64> = got.values().copied().collect();
                mine.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(mine, top[..10.min(top.len())].to_vec(), "{id}");
            }
            "cwl-indexer-guardduty-severity-over-time" => {
                assert_eq!(got, want("findings_by_day_and_severity_label", findings), "{id}")
            }
            "cwl-indexer-guardduty-top-types" => assert_eq!(got, want("findings_by_type", findings), "{id}"),
            "cwl-indexer-guardduty-resources" => assert_eq!(got, want("findings_by_resource_id", findings), "{id}"),
            "cwl-indexer-vpcflow-remote-map" | "cwl-indexer-guardduty-actors-map" => {
                // Every located document is in a cell: the cells add up to the documents with
                // a location (the fixtures' test databases locate only some addresses).
                let located = node::count(&pattern, "_exists_:source.geo.location").await;
                assert_eq!(got.values().sum::<u64>(), located, "{id}");
            }
            other => panic!("{other}: no oracle"),
        }
        checked.push(id.to_owned());
    }
    assert_eq!(checked.len(), 9, "{checked:?}");
}

#[test]
fn the_committed_family_dashboards_are_the_generators_output() {
    let out = std::process::Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-dashboards.py"))
        .arg("--stdout-logtypes")
        .output()
        .expect("python3 runs scripts/make-dashboards.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8(out.stdout).unwrap() == LOGTYPE_OBJECTS,
        "dashboards/logtypes.ndjson differs from the generator's output: run `python3 scripts/make-dashboards.py`"
    );
    // Each family's index pattern is named once, as its title, so `setup` retargets it.
    for family in ["vpcflow", "guardduty", "resolver", "waf"] {
        assert_eq!(
            LOGTYPE_OBJECTS.matches(&format!("cwl-{family}-*")).count(),
            1,
            "{family}"
        );
    }
}

/// The fixture's records, decoded here without the crate: the messages, parsed.
fn records(fixture: &str) -> Vec<Value> {
    use base64::Engine as _;
    use std::io::Read as _;
    let event: Value = serde_json::from_str(&read(fixture)).unwrap();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(event["awslogs"]["data"].as_str().unwrap())
        .unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
    let envelope: Value = serde_json::from_slice(&text).unwrap();
    envelope["logEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn resolver_queries_and_waf_requests_land_once_in_their_own_indices() {
    let prefix = node::unique_prefix("rwaf");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(config(&prefix), None);
    let events: Vec<CloudWatchLogsEvent> = ["resolver/queries.json", "waf/requests.json"]
        .iter()
        .map(|f| serde_json::from_str(&read(f)).unwrap())
        .collect();
    let (indexed, present, events_in) = deliver(&pipeline, &events).await;
    assert_eq!((indexed, present), (events_in, 0));
    node::refresh(&prefix).await;

    // Resolver: one document per query, in the day of query_timestamp, typed.
    let queries = records("resolver/queries.json");
    assert_eq!(
        node::count(&format!("{prefix}-resolver-*"), "*").await,
        queries.len() as u64
    );
    for q in &queries {
        let day = &q["query_timestamp"].as_str().unwrap()[..10].replace('-', ".");
        let query = format!(
            "dns.question.name:\"{}\" AND source.ip:\"{}\" AND dns.response_code:{}",
            q["query_name"].as_str().unwrap(),
            q["srcaddr"].as_str().unwrap(),
            q["rcode"].as_str().unwrap()
        );
        assert_eq!(
            node::count(&format!("{prefix}-resolver-{day}"), &query).await,
            1,
            "{query}"
        );
    }
    // WAF: one document per request, in the day of its timestamp; action, client and URI.
    let requests = records("waf/requests.json");
    assert_eq!(
        node::count(&format!("{prefix}-waf-*"), "*").await,
        requests.len() as u64
    );
    let mut by_action: BTreeMap<String, u64> = BTreeMap::new();
    for r in &requests {
        *by_action
            .entry(r["action"].as_str().unwrap().to_ascii_lowercase())
            .or_default() += 1;
    }
    let answer = node::search(
        &format!("{prefix}-waf-*"),
        json!({"size": 0, "aggs": {"a": {"terms": {"field": "event.action"}}}}),
    )
    .await;
    assert_eq!(buckets(&answer, "a", None), by_action);
    for r in &requests {
        let http = &r["httpRequest"];
        let query = format!(
            "source.ip:\"{}\" AND url.path:\"{}\" AND aws.waf.action:{}",
            http["clientIp"].as_str().unwrap(),
            http["uri"].as_str().unwrap(),
            r["action"].as_str().unwrap()
        );
        assert!(node::count(&format!("{prefix}-waf-*"), &query).await >= 1, "{query}");
    }
    // Each under its own mapping, and nothing in the CloudTrail indices.
    for family in ["resolver", "waf"] {
        let mapping = node::call(reqwest::Method::GET, &format!("{prefix}-{family}-*/_mapping"), None).await;
        for (index, m) in mapping.as_object().unwrap() {
            assert_eq!(
                m["mappings"]["properties"]["source"]["properties"]["ip"]["type"], "ip",
                "{index}"
            );
            assert!(m["mappings"]["properties"].get("eventName").is_none(), "{index}");
        }
    }
    assert_eq!(node::count(&format!("{prefix}-1*,{prefix}-2*"), "*").await, 0);
    // Redelivery: nothing new.
    let (indexed, present, events_in) = deliver(&pipeline, &events).await;
    assert_eq!((indexed, present), (0, events_in));
}

/// Every Resolver and WAF visualization of `dashboards/logtypes.ndjson` against the node, after
/// the fixtures are indexed (with the test GeoIP databases): the buckets of
/// `fixtures/{resolver,waf}/expected.json`, computed from the raw records.
#[tokio::test]
async fn resolver_and_waf_dashboards_aggregate_to_the_oracle() {
    let prefix = node::unique_prefix("rwafdash");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = geo_pipeline(&prefix);
    let events: Vec<CloudWatchLogsEvent> = ["resolver/queries.json", "waf/requests.json"]
        .iter()
        .map(|f| serde_json::from_str(&read(f)).unwrap())
        .collect();
    deliver(&pipeline, &events).await;
    node::refresh(&prefix).await;
    let (resolver, waf) = (expected("resolver"), expected("waf"));
    assert_eq!(
        json!(node::count(&format!("{prefix}-resolver-*"), "*").await),
        resolver["documents"]
    );
    assert_eq!(
        json!(node::count(&format!("{prefix}-waf-*"), "*").await),
        waf["documents"]
    );

    let (objects, titles) = logtype_objects();
    let titles: BTreeMap<&str, &String> = titles.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut checked = Vec::new();
    for vis in objects.iter().filter(|o| o["type"] == "visualization") {
        let id = vis["id"].as_str().unwrap();
        if !(id.starts_with("cwl-indexer-resolver-") || id.starts_with("cwl-indexer-waf-")) {
            continue;
        }
        let (pattern, got) = aggregate(&prefix, &titles, vis).await;
        let want = |key: &str, v: &Value| oracle_map(&v[key]);
        match id {
            "cwl-indexer-resolver-queries-over-time" => assert_eq!(got, want("queries_by_day", &resolver), "{id}"),
            "cwl-indexer-resolver-top-names" => assert_eq!(got, want("queries_by_name", &resolver), "{id}"),
            "cwl-indexer-resolver-response-codes" => {
                assert_eq!(got, want("queries_by_response_code", &resolver), "{id}")
            }
            "cwl-indexer-resolver-top-sources" => assert_eq!(got, want("queries_by_source_ip", &resolver), "{id}"),
            "cwl-indexer-resolver-firewall-actions" => {
                assert_eq!(got, want("queries_by_firewall_action", &resolver), "{id}")
            }
            "cwl-indexer-waf-actions-over-time" => assert_eq!(got, want("requests_by_day_and_action", &waf), "{id}"),
            "cwl-indexer-waf-terminating-rules" => {
                assert_eq!(got, want("requests_by_terminating_rule", &waf), "{id}")
            }
            "cwl-indexer-waf-top-clients" => assert_eq!(got, want("requests_by_client_ip", &waf), "{id}"),
            "cwl-indexer-waf-countries" => assert_eq!(got, want("requests_by_country", &waf), "{id}"),
            "cwl-indexer-waf-top-uris" => assert_eq!(got, want("requests_by_uri", &waf), "{id}"),
            "cwl-indexer-waf-clients-map" => {
                // The cells add up to the requests whose client the test databases locate.
                let located = node::count(&pattern, "_exists_:source.geo.location").await;
                assert!(located > 0, "{id}: the test databases locate some clients");
                assert_eq!(got.values().sum::<u64>(), located, "{id}");
            }
            other => panic!("{other}: no oracle"),
        }
        checked.push(id.to_owned());
    }
    assert_eq!(checked.len(), 11, "{checked:?}");
}
