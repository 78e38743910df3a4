//! The OpenSearch Dashboards saved objects in `dashboards/`: the committed NDJSON is the
//! generator's output, it has the structure the saved-objects import API requires, and,
//! against the real node filled with every fixture, each visualization's aggregation returns
//! exactly the buckets the input records hold and each saved search finds exactly the
//! matching events.
//!
//! No Dashboards server runs here, so the visualizations are not rendered: the test reads
//! each one's aggregations (type, field, size, interval) and query from its visState and
//! searchSourceJSON, sends the request Dashboards would send, and compares the answer with
//! two oracles: counts computed from the fixtures' records without the crate (decoded here
//! with base64 and flate2, classified and deduplicated as the README specifies), and a
//! plain count per bucket. A few hand-written records ([`EDGES`]) cover the edges of the
//! saved searches' queries that the fixtures leave untested.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;

use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use common::node::{self, Pipeline};
use cwl_indexer::handler::CloudWatchLogsEvent;
use cwl_indexer::template::Flavor;
use serde_json::{Value, json};

/// The saved objects, as committed.
const NDJSON: &str = include_str!("../dashboards/cloudtrail-audit.ndjson");

/// The index pattern the saved objects ship with (the default `INDEX_PREFIX`).
const DEFAULT_PATTERN: &str = "cwl-*";

const TYPES: [&str; 4] = ["index-pattern", "visualization", "search", "dashboard"];

/// Field types a Dashboards terms or date_histogram aggregation can run on.
const AGGREGATABLE: [&str; 13] = [
    "keyword",
    "date",
    "date_nanos",
    "ip",
    "boolean",
    "long",
    "integer",
    "short",
    "byte",
    "double",
    "float",
    "half_float",
    "scaled_float",
];

fn objects(ndjson: &str) -> Vec<Value> {
    ndjson
        .lines()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
        .collect()
}

/// A JSON-string attribute (visState, panelsJSON, ...), parsed.
fn json_attr(object: &Value, path: &[&str]) -> Value {
    let mut v = &object["attributes"];
    for p in path {
        v = &v[*p];
    }
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("{}: {} is not a JSON string", object["id"], path.join(".")));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {}: {e}", object["id"], path.join(".")))
}

fn search_source(object: &Value) -> Value {
    json_attr(object, &["kibanaSavedObjectMeta", "searchSourceJSON"])
}

/// The Lucene query of a visualization or saved search ("" for none).
fn query_of(object: &Value) -> String {
    let source = search_source(object);
    let query = &source["query"];
    assert_eq!(query["language"], "lucene", "{}: queries are Lucene", object["id"]);
    assert_eq!(
        source["filter"],
        json!([]),
        "{}: no filters, the query says it all",
        object["id"]
    );
    query["query"].as_str().unwrap().to_owned()
}

/// Points the saved objects at `<prefix>-*`, as `setup` does for another `INDEX_PREFIX`: the
/// pattern occurs once, as the index pattern's title, so this is one substitution.
fn retarget(ndjson: &str, prefix: &str) -> String {
    assert_eq!(
        ndjson.matches(DEFAULT_PATTERN).count(),
        1,
        "the index pattern is named once"
    );
    let needle = format!(r#""title":"{DEFAULT_PATTERN}""#);
    assert_eq!(ndjson.matches(&needle).count(), 1, "as a title");
    ndjson.replace(&needle, &format!(r#""title":"{prefix}-*""#))
}

fn by_id(objects: &[Value]) -> HashMap<&str, &Value> {
    objects.iter().map(|o| (o["id"].as_str().unwrap(), o)).collect()
}

/// The title of the index pattern `object` searches, through its references.
fn pattern_of<'a>(object: &Value, all: &HashMap<&str, &'a Value>) -> &'a str {
    let name = search_source(object)["indexRefName"].as_str().unwrap().to_owned();
    let reference = object["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap();
    all[reference["id"].as_str().unwrap()]["attributes"]["title"]
        .as_str()
        .unwrap()
}

#[test]
fn the_committed_ndjson_is_the_generators_output() {
    let out = std::process::Command::new("python3")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-dashboards.py"))
        .arg("--stdout")
        .output()
        .expect("python3 runs scripts/make-dashboards.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8(out.stdout).unwrap() == NDJSON,
        "dashboards/cloudtrail-audit.ndjson differs from the generator's output: run `python3 scripts/make-dashboards.py`"
    );
}

#[test]
fn the_saved_objects_have_the_structure_the_import_api_requires() {
    assert!(
        NDJSON.ends_with('\n') && !NDJSON.contains("\n\n"),
        "one object per line"
    );
    let all = objects(NDJSON);
    let mut ids = BTreeSet::new();
    for o in &all {
        let id = o["id"].as_str().filter(|s| !s.is_empty()).expect("a string id");
        assert!(ids.insert(id), "{id}: ids are unique");
        let kind = o["type"].as_str().unwrap();
        assert!(TYPES.contains(&kind), "{id}: type {kind}");
        let title = o["attributes"]["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{id}: a title");
        assert!(o["migrationVersion"][kind].is_string(), "{id}: migrationVersion.{kind}");
        assert!(
            o.as_object()
                .unwrap()
                .keys()
                .all(|k| ["id", "type", "attributes", "references", "migrationVersion"].contains(&k.as_str())),
            "{id}: only the fields an export has"
        );
    }
    let index = by_id(&all);

    for o in &all {
        let id = o["id"].as_str().unwrap();
        let kind = o["type"].as_str().unwrap();
        // Every reference points at an object of the file, of the type it says.
        let mut names = BTreeSet::new();
        for r in o["references"].as_array().expect("a references array") {
            let (name, rtype, rid) = (
                r["name"].as_str().unwrap(),
                r["type"].as_str().unwrap(),
                r["id"].as_str().unwrap(),
            );
            assert!(names.insert(name), "{id}: reference names are unique");
            let target = index
                .get(rid)
                .unwrap_or_else(|| panic!("{id}: reference {name} to a missing {rid}"));
            assert_eq!(target["type"], rtype, "{id}: reference {name} has the target's type");
        }
        // The JSON-string attributes parse, and the search source names its index pattern.
        match kind {
            "index-pattern" => {
                assert_eq!(o["attributes"]["timeFieldName"], "@timestamp", "{id}");
                assert_eq!(o["references"], json!([]), "{id}");
            }
            "visualization" | "search" => {
                let source = search_source(o);
                let ref_name = source["indexRefName"].as_str().expect("indexRefName");
                assert_eq!(ref_name, "kibanaSavedObjectMeta.searchSourceJSON.index", "{id}");
                let r = o["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["name"] == ref_name);
                assert_eq!(r.expect("the index reference")["type"], "index-pattern", "{id}");
                assert!(
                    source.get("index").is_none(),
                    "{id}: the index is a reference, not inline"
                );
                query_of(o);
                if kind == "visualization" {
                    let vis = json_attr(o, &["visState"]);
                    json_attr(o, &["uiStateJSON"]);
                    assert_eq!(vis["title"], o["attributes"]["title"], "{id}");
                    assert!(
                        ["histogram", "horizontal_bar", "line", "area", "pie", "table"]
                            .contains(&vis["type"].as_str().unwrap()),
                        "{id}"
                    );
                    let aggs = vis["aggs"].as_array().unwrap();
                    let agg_ids: BTreeSet<_> = aggs.iter().map(|a| a["id"].as_str().unwrap()).collect();
                    assert_eq!(agg_ids.len(), aggs.len(), "{id}: agg ids are unique");
                    assert!(
                        aggs.iter().any(|a| a["type"] == "count" && a["schema"] == "metric"),
                        "{id}"
                    );
                } else {
                    assert!(
                        o["attributes"]["columns"].as_array().is_some_and(|c| !c.is_empty()),
                        "{id}"
                    );
                    assert!(o["attributes"]["sort"].is_array(), "{id}");
                }
            }
            "dashboard" => {
                json_attr(o, &["optionsJSON"]);
                let source = search_source(o);
                assert!(
                    source.get("indexRefName").is_none(),
                    "{id}: panels have their own sources"
                );
                let panels = json_attr(o, &["panelsJSON"]);
                let panels = panels.as_array().unwrap();
                let refs: BTreeSet<&str> = o["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["name"].as_str().unwrap())
                    .collect();
                let panel_refs: BTreeSet<&str> = panels.iter().map(|p| p["panelRefName"].as_str().unwrap()).collect();
                assert_eq!(panel_refs.len(), panels.len(), "{id}: one reference per panel");
                assert_eq!(panel_refs, refs, "{id}: panelRefName values are the references");
                let expected: BTreeSet<String> = (0..panels.len()).map(|i| format!("panel_{i}")).collect();
                assert_eq!(
                    panel_refs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
                    expected,
                    "{id}: panel_0..N"
                );
                let mut cells: Vec<(u64, u64, u64, u64)> = Vec::new();
                let mut panel_ids = BTreeSet::new();
                for p in panels {
                    let g = &p["gridData"];
                    let (x, y, w, h) = (
                        g["x"].as_u64().unwrap(),
                        g["y"].as_u64().unwrap(),
                        g["w"].as_u64().unwrap(),
                        g["h"].as_u64().unwrap(),
                    );
                    assert!(w > 0 && h > 0 && x + w <= 48, "{id}: {p} fits the 48-column grid");
                    assert_eq!(g["i"], p["panelIndex"], "{id}");
                    assert!(
                        panel_ids.insert(p["panelIndex"].as_str().unwrap()),
                        "{id}: panelIndex unique"
                    );
                    for &(cx, cy, cw, ch) in &cells {
                        assert!(
                            x >= cx + cw || cx >= x + w || y >= cy + ch || cy >= y + h,
                            "{id}: {p} overlaps"
                        );
                    }
                    cells.push((x, y, w, h));
                }
            }
            _ => unreachable!(),
        }
    }

    // One dashboard, "CloudTrail audit", holding every visualization and saved search.
    let dashboards: Vec<&Value> = all.iter().filter(|o| o["type"] == "dashboard").collect();
    assert_eq!(dashboards.len(), 1);
    assert_eq!(dashboards[0]["attributes"]["title"], "CloudTrail audit");
    let held: BTreeSet<&str> = dashboards[0]["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let panels: BTreeSet<&str> = all
        .iter()
        .filter(|o| o["type"] == "visualization" || o["type"] == "search")
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(held, panels, "the dashboard holds every visualization and search");
    assert_eq!(all.iter().filter(|o| o["type"] == "visualization").count(), 7);
    assert_eq!(all.iter().filter(|o| o["type"] == "search").count(), 5);

    // The visualization of failed logins over time counts what the saved search lists.
    assert_eq!(
        query_of(index["cwl-indexer-failed-console-logins-over-time"]),
        query_of(index["cwl-indexer-failed-console-logins"])
    );
}

#[test]
fn the_index_pattern_is_named_once_and_retargets_with_one_substitution() {
    let all = objects(NDJSON);
    let patterns: Vec<&Value> = all.iter().filter(|o| o["type"] == "index-pattern").collect();
    assert_eq!(patterns.len(), 1);
    assert_eq!(patterns[0]["attributes"]["title"], DEFAULT_PATTERN);
    let retargeted = objects(&retarget(NDJSON, "audit"));
    let index = by_id(&retargeted);
    for o in &retargeted {
        if o["type"] == "visualization" || o["type"] == "search" {
            assert_eq!(pattern_of(o, &index), "audit-*", "{}", o["id"]);
        }
    }
    assert!(!retarget(NDJSON, "audit").contains(DEFAULT_PATTERN));
}

// ---------------------------------------------------------------------------------------
// The independent oracle: the fixtures' records, decoded and deduplicated without the crate.

/// One document as the cluster must hold it: its daily index, `_id`, `@timestamp`, and the
/// CloudTrail record it came from (None for text, other JSON and unparseable messages).
struct Doc {
    day: NaiveDate,
    id: String,
    time: DateTime<Utc>,
    record: Option<Value>,
}

impl Doc {
    fn index(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{:04}.{:02}.{:02}",
            self.day.year(),
            self.day.month(),
            self.day.day()
        )
    }

    /// The terms a keyword field holds for this document (dotted path; `keyword` fields skip
    /// strings over `ignore_above: 1024` characters; null and objects index nothing).
    fn terms(&self, field: &str) -> BTreeSet<String> {
        let mut values = vec![self.record.as_ref().unwrap_or(&Value::Null)];
        for part in field.split('.') {
            values = values
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(items) => items.iter().map(|i| &i[part]).collect::<Vec<_>>(),
                    v => vec![&v[part]],
                })
                .collect();
        }
        let mut out = BTreeSet::new();
        let mut push = |v: &Value| match v {
            Value::String(s) if s.chars().count() <= 1024 => {
                out.insert(s.clone());
            }
            Value::Number(n) => {
                out.insert(n.to_string());
            }
            Value::Bool(b) => {
                out.insert(b.to_string());
            }
            _ => {}
        };
        for v in values {
            match v {
                Value::Array(items) => items.iter().for_each(&mut push),
                v => push(v),
            }
        }
        out
    }

    fn has(&self, field: &str, value: &str) -> bool {
        self.terms(field).contains(value)
    }
}

/// `eventTime` as the README specifies: RFC 3339, or `YYYY-MM-DD[T ]HH:MM:SS[.fff]` as UTC,
/// years 1000 to 9999.
fn event_time(s: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|t| t.and_utc())
        })?;
    (1000..=9999).contains(&t.year()).then_some(t)
}

/// The fixture files, in the order the test indexes them.
fn fixture_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(common::fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every document `events` make, first per (index, `_id`): a bulk `create` keeps the first.
fn model(events: &[Value]) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut seen = BTreeSet::new();
    for event in events {
        let gz = base64::engine::general_purpose::STANDARD
            .decode(event["awslogs"]["data"].as_str().unwrap())
            .unwrap();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut text).unwrap();
        let envelope: Value = serde_json::from_slice(&text).unwrap();
        if envelope["messageType"] != "DATA_MESSAGE" {
            continue;
        }
        for event in envelope["logEvents"].as_array().unwrap() {
            let message = event["message"].as_str().unwrap();
            let record = match serde_json::from_str::<Value>(message) {
                Ok(Value::Object(m))
                    if m.contains_key("eventVersion")
                        || (m.contains_key("eventSource") && m.contains_key("eventName")) =>
                {
                    Some(Value::Object(m))
                }
                _ => None,
            };
            let time = record
                .as_ref()
                .and_then(|r| r["eventTime"].as_str())
                .and_then(event_time)
                .unwrap_or_else(|| {
                    DateTime::from_timestamp_millis(event["timestamp"].as_i64().unwrap())
                        .filter(|t| (1000..=9999).contains(&t.year()))
                        .unwrap_or(DateTime::UNIX_EPOCH)
                });
            let cloudtrail_id = record.as_ref().and_then(|r| {
                let id = r["eventID"].as_str().filter(|s| !s.is_empty())?;
                let id = match r["recipientAccountId"].as_str().filter(|s| !s.is_empty()) {
                    Some(account) => format!("{account}:{id}"),
                    None => id.to_owned(),
                };
                (id.len() <= 512).then_some(id)
            });
            let id = cloudtrail_id.unwrap_or_else(|| event["id"].as_str().unwrap().to_owned());
            let day = time.date_naive();
            if seen.insert((day, id.clone())) {
                docs.push(Doc { day, id, time, record });
            }
        }
    }
    docs
}

/// True for queries that search inside a free-form subtree (`responseElements.ConsoleLogin`).
/// Clusters without `flat_object` or `flattened` (OpenSearch before 2.7, Elasticsearch OSS)
/// store those subtrees unindexed, so such queries find nothing there.
fn needs_subtrees(query: &str) -> bool {
    query.contains("responseElements.")
}

/// The independent meaning of every query the saved objects use, on a cluster that indexes
/// free-form subtrees or not (`subtrees`). A query without an entry here fails the test:
/// changing a query means saying here what it must find.
fn oracle(query: &str, subtrees: bool) -> Box<dyn Fn(&Doc) -> bool> {
    let any_event = |names: &'static [&'static str]| -> Box<dyn Fn(&Doc) -> bool> {
        Box::new(move |d: &Doc| names.iter().any(|n| d.has("eventName", n)))
    };
    match query {
        "" => Box::new(|_| true),
        "_exists_:errorCode" => Box::new(|d| !d.terms("errorCode").is_empty()),
        "userIdentity.type:Root AND NOT _exists_:userIdentity.invokedBy AND NOT eventType:AwsServiceEvent" => {
            Box::new(|d| {
                d.has("userIdentity.type", "Root")
                    && d.terms("userIdentity.invokedBy").is_empty()
                    && !d.has("eventType", "AwsServiceEvent")
            })
        }
        "eventName:ConsoleLogin AND responseElements.ConsoleLogin:Failure" => Box::new(move |d| {
            subtrees && d.has("eventName", "ConsoleLogin") && d.has("responseElements.ConsoleLogin", "Failure")
        }),
        "errorCode:(AccessDenied* OR *UnauthorizedOperation)" => Box::new(|d| {
            d.terms("errorCode")
                .iter()
                .any(|c| c.starts_with("AccessDenied") || c.ends_with("UnauthorizedOperation"))
        }),
        "eventName:(StopLogging OR DeleteTrail OR UpdateTrail OR PutEventSelectors)" => {
            any_event(&["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"])
        }
        "eventName:(AuthorizeSecurityGroupIngress OR AuthorizeSecurityGroupEgress OR RevokeSecurityGroupIngress OR RevokeSecurityGroupEgress OR CreateSecurityGroup OR DeleteSecurityGroup OR ModifySecurityGroupRules)" => {
            any_event(&[
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress",
                "RevokeSecurityGroupEgress",
                "CreateSecurityGroup",
                "DeleteSecurityGroup",
                "ModifySecurityGroupRules",
            ])
        }
        other => panic!("no independent oracle for the query {other:?}: add one to tests/dashboards.rs"),
    }
}

// ---------------------------------------------------------------------------------------
// From visState to the request Dashboards sends, and to the buckets the oracle expects.

#[derive(Debug, Clone)]
enum BucketAgg {
    Terms {
        field: String,
        size: usize,
    },
    /// A daily histogram on a date field (the visualizations' `auto` interval, fixed to a day).
    Daily {
        field: String,
        min_doc_count: u64,
    },
}

impl BucketAgg {
    fn field(&self) -> &str {
        match self {
            Self::Terms { field, .. } | Self::Daily { field, .. } => field,
        }
    }

    fn request(&self) -> Value {
        match self {
            // orderBy "1" is the count metric: Dashboards orders by _count.
            Self::Terms { field, size } => {
                json!({"terms": {"field": field, "size": size, "order": {"_count": "desc"}}})
            }
            Self::Daily { field, min_doc_count } => json!({"date_histogram": {
                "field": field, "calendar_interval": "1d", "time_zone": "UTC", "min_doc_count": min_doc_count
            }}),
        }
    }

    /// The `_count` filter selecting one bucket of this aggregation.
    fn filter(&self, key: &str) -> Value {
        match self {
            Self::Terms { field, .. } => json!({"term": {field: key}}),
            Self::Daily { field, .. } => {
                json!({"range": {field: {"gte": key, "lt": format!("{key}||+1d"), "format": "strict_date"}}})
            }
        }
    }
}

/// The bucket aggregations of a visualization, in nesting order, as the editor saved them.
fn bucket_aggs(vis: &Value) -> Vec<BucketAgg> {
    let mut out = Vec::new();
    for agg in vis["aggs"].as_array().unwrap() {
        if agg["enabled"] == false {
            continue;
        }
        let params = &agg["params"];
        let field = params["field"].as_str().map(str::to_owned);
        match agg["type"].as_str().unwrap() {
            "count" => assert_eq!(agg["schema"], "metric"),
            "terms" => {
                assert_eq!(params["orderBy"], "1", "terms ordered by the count metric");
                assert_eq!(params["order"], "desc");
                assert_eq!(params["otherBucket"], false);
                assert_eq!(params["missingBucket"], false);
                out.push(BucketAgg::Terms {
                    field: field.unwrap(),
                    size: params["size"].as_u64().unwrap() as usize,
                });
            }
            "date_histogram" => {
                let interval = params["interval"].as_str().unwrap();
                assert!(["auto", "d", "1d"].contains(&interval), "interval {interval}");
                out.push(BucketAgg::Daily {
                    field: field.unwrap(),
                    min_doc_count: params["min_doc_count"].as_u64().unwrap_or(1),
                });
            }
            other => panic!("unsupported aggregation {other}"),
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
struct Bucket {
    key: String,
    count: u64,
    sub: Vec<Bucket>,
}

/// The buckets the oracle expects from `aggs` over `docs`: terms by count descending then key
/// ascending (OpenSearch's tie-break), cut to `size`; days ascending.
fn expected(docs: &[&Doc], aggs: &[BucketAgg]) -> Vec<Bucket> {
    let Some((agg, rest)) = aggs.split_first() else {
        return Vec::new();
    };
    let mut groups: BTreeMap<String, Vec<&Doc>> = BTreeMap::new();
    for &d in docs {
        let keys = match agg {
            BucketAgg::Terms { field, .. } => d.terms(field),
            BucketAgg::Daily { field, .. } => {
                assert_eq!(field, "@timestamp");
                BTreeSet::from([d.time.date_naive().to_string()])
            }
        };
        for k in keys {
            groups.entry(k).or_default().push(d);
        }
    }
    let mut buckets: Vec<Bucket> = groups
        .into_iter()
        .map(|(key, ds)| Bucket {
            key,
            count: ds.len() as u64,
            sub: expected(&ds, rest),
        })
        .collect();
    match agg {
        BucketAgg::Terms { size, .. } => {
            buckets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            buckets.truncate(*size);
        }
        BucketAgg::Daily { min_doc_count, .. } => buckets.retain(|b| b.count >= *min_doc_count),
    }
    buckets
}

fn request_aggs(aggs: &[BucketAgg]) -> Value {
    let Some((agg, rest)) = aggs.split_first() else {
        return json!({});
    };
    let mut body = agg.request();
    if !rest.is_empty() {
        body["aggs"] = request_aggs(rest);
    }
    json!({ "b": body })
}

fn actual(answer: &Value, aggs: &[BucketAgg]) -> Vec<Bucket> {
    let Some((agg, rest)) = aggs.split_first() else {
        return Vec::new();
    };
    answer["b"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {answer}"))
        .iter()
        .map(|b| Bucket {
            key: match agg {
                BucketAgg::Terms { .. } => match &b["key"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                BucketAgg::Daily { .. } => DateTime::from_timestamp_millis(b["key"].as_i64().unwrap())
                    .unwrap()
                    .date_naive()
                    .to_string(),
            },
            count: b["doc_count"].as_u64().unwrap(),
            sub: actual(b, rest),
        })
        .collect()
}

/// `query_string` as Dashboards sends a Lucene query (`query:queryString:options`).
fn lucene(query: &str) -> Value {
    if query.is_empty() {
        json!({"match_all": {}})
    } else {
        json!({"query_string": {"query": query, "analyze_wildcard": true}})
    }
}

/// The bucket filters of `buckets` and their counts, parents' filters included.
fn bucket_filters(aggs: &[BucketAgg], buckets: &[Bucket], path: &[Value], out: &mut Vec<(Vec<Value>, u64)>) {
    for b in buckets {
        let mut filters = path.to_vec();
        filters.push(aggs[0].filter(&b.key));
        bucket_filters(&aggs[1..], &b.sub, &filters, out);
        out.push((filters, b.count));
    }
}

/// Hit counts of several queries on `pattern`, in one `_msearch`.
async fn counts(pattern: &str, queries: &[Value]) -> Vec<u64> {
    let mut body = String::new();
    for q in queries {
        body.push_str(&json!({"index": pattern, "ignore_unavailable": true, "allow_no_indices": true}).to_string());
        body.push('\n');
        body.push_str(&json!({"size": 0, "track_total_hits": true, "query": q}).to_string());
        body.push('\n');
    }
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("{}/_msearch", node::url().trim_end_matches('/')))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "_msearch: {}", response.status());
    let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hits"]["total"]["value"].as_u64().unwrap_or_else(|| panic!("{r}")))
        .collect()
}

/// The second oracle: every bucket's count equals a plain count of the query plus the
/// bucket's key (and its parents' keys).
async fn check_with_count(pattern: &str, query: &str, aggs: &[BucketAgg], buckets: &[Bucket]) {
    let mut filters = Vec::new();
    bucket_filters(aggs, buckets, &[], &mut filters);
    let queries: Vec<Value> = filters
        .iter()
        .map(|(f, _)| {
            let mut all = f.clone();
            all.push(lucene(query));
            json!({"bool": {"filter": all}})
        })
        .collect();
    if queries.is_empty() {
        return;
    }
    let got = counts(pattern, &queries).await;
    for ((filter, want), got) in filters.iter().zip(got) {
        assert_eq!(got, *want, "{query:?} {filter:?}: the count agrees with the bucket");
    }
}

/// Hand-written records at the edges of the saved searches' queries that the fixtures do not
/// reach, each with the searches that must find it (and no other may). In the fixtures, the
/// root records invoked by a service and the StopLogging and DeleteTrail records share their
/// placeholder `_id`s (eventID "1", "1111", "...") with earlier documents, so they are never
/// indexed; and no fixture revokes or deletes a security group, modifies its rules, or is
/// refused with AccessDeniedException.
const EDGES: &[(&str, &str, &[&str])] = &[
    (
        "edge-root-console",
        r#"{"userIdentity":{"type":"Root","arn":"arn:aws:iam::999988887777:root"},"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-root-activity"],
    ),
    (
        "edge-root-invoked-by-service",
        r#"{"userIdentity":{"type":"Root","arn":"arn:aws:iam::999988887777:root","invokedBy":"support.amazonaws.com"},"eventName":"DescribeTrustedAdvisorChecks","eventSource":"support.amazonaws.com","eventType":"AwsApiCall"}"#,
        &[],
    ),
    (
        "edge-root-service-event",
        r#"{"userIdentity":{"type":"Root","arn":"arn:aws:iam::999988887777:root"},"eventName":"SharedSnapshotCopyInitiated","eventSource":"ec2.amazonaws.com","eventType":"AwsServiceEvent"}"#,
        &[],
    ),
    (
        "edge-access-denied-exception",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/mallory"},"eventName":"Decrypt","eventSource":"kms.amazonaws.com","eventType":"AwsApiCall","errorCode":"AccessDeniedException"}"#,
        &["cwl-indexer-unauthorized-calls"],
    ),
    (
        "edge-vpce-access-denied",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/mallory"},"eventName":"GetObject","eventSource":"s3.amazonaws.com","eventType":"AwsApiCall","errorCode":"VpceAccessDenied"}"#,
        &[],
    ),
    (
        "edge-stop-logging-denied",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/mallory"},"eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com","eventType":"AwsApiCall","errorCode":"AccessDenied"}"#,
        &["cwl-indexer-trail-tampering", "cwl-indexer-unauthorized-calls"],
    ),
    (
        "edge-delete-trail",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/mallory"},"eventName":"DeleteTrail","eventSource":"cloudtrail.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-trail-tampering"],
    ),
    (
        "edge-start-logging",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"StartLogging","eventSource":"cloudtrail.amazonaws.com","eventType":"AwsApiCall"}"#,
        &[],
    ),
    (
        "edge-revoke-ingress",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"RevokeSecurityGroupIngress","eventSource":"ec2.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-security-group-changes"],
    ),
    (
        "edge-delete-security-group",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"DeleteSecurityGroup","eventSource":"ec2.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-security-group-changes"],
    ),
    (
        "edge-modify-security-group-rules",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"ModifySecurityGroupRules","eventSource":"ec2.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-security-group-changes"],
    ),
    (
        "edge-revoke-egress",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"RevokeSecurityGroupEgress","eventSource":"ec2.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-security-group-changes"],
    ),
    (
        "edge-describe-security-groups",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"DescribeSecurityGroups","eventSource":"ec2.amazonaws.com","eventType":"AwsApiCall"}"#,
        &[],
    ),
    (
        "edge-console-login-success",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"ConsoleLogin","eventSource":"signin.amazonaws.com","eventType":"AwsConsoleSignIn","responseElements":{"ConsoleLogin":"Success"}}"#,
        &[],
    ),
    (
        "edge-console-login-failure",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"ConsoleLogin","eventSource":"signin.amazonaws.com","eventType":"AwsConsoleSignIn","responseElements":{"ConsoleLogin":"Failure"},"errorMessage":"Failed authentication"}"#,
        &["cwl-indexer-failed-console-logins"],
    ),
];

const EDGE_ACCOUNT: &str = "999988887777";

/// Searches for a list of eventNames, and the list: every name must be among the hits, so
/// each alternative of the query is shown to match something.
const WITNESSED: &[(&str, &[&str])] = &[
    (
        "cwl-indexer-trail-tampering",
        &["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"],
    ),
    (
        "cwl-indexer-security-group-changes",
        &[
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateSecurityGroup",
            "DeleteSecurityGroup",
            "ModifySecurityGroupRules",
        ],
    ),
];

/// The edge records as one CloudWatch Logs batch: the common fields added to each.
fn edge_event() -> CloudWatchLogsEvent {
    let messages: Vec<String> = EDGES
        .iter()
        .enumerate()
        .map(|(i, (id, record, _))| {
            let mut record: Value = serde_json::from_str(record).unwrap();
            let fields = record.as_object_mut().unwrap();
            fields.insert("eventVersion".into(), json!("1.09"));
            fields.insert("eventTime".into(), json!(format!("2024-05-01T10:00:{i:02}Z")));
            fields.insert("eventID".into(), json!(id));
            fields.insert("recipientAccountId".into(), json!(EDGE_ACCOUNT));
            fields.insert("awsRegion".into(), json!("eu-central-1"));
            fields.insert("sourceIPAddress".into(), json!("198.51.100.7"));
            record.to_string()
        })
        .collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    common::lambda_event(&common::data_envelope(&refs, |i| 1_714_557_600_000 + i as i64))
}

/// Every fixture file, in [`fixture_files`] order, then the edge records: as the Lambda
/// events the test indexes, and as the raw JSON the oracle decodes on its own.
fn lambda_events() -> Vec<(CloudWatchLogsEvent, Value)> {
    let mut events: Vec<_> = fixture_files()
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            (
                serde_json::from_slice(&bytes).unwrap(),
                serde_json::from_slice(&bytes).unwrap(),
            )
        })
        .collect();
    let edges = edge_event();
    let raw = json!({"awslogs": {"data": edges.awslogs.data}});
    events.push((edges, raw));
    events
}

#[tokio::test]
async fn every_visualization_and_saved_search_shows_exactly_what_the_fixtures_hold() {
    let prefix = node::unique_prefix("dashboards");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let events = lambda_events();
    for (event, _) in &events {
        let (summary, result) = pipeline.invoke(event, None).await;
        result.unwrap_or_else(|e| panic!("{e}: {summary:?}"));
        assert_eq!(summary.delivery.dead_lettered, 0, "{summary:?}");
    }
    node::refresh(&prefix).await;

    // The saved objects, pointed at this test's indices the way `setup` retargets a prefix.
    let ndjson = retarget(NDJSON, &prefix);
    let all = objects(&ndjson);
    let index = by_id(&all);
    let pattern = format!("{prefix}-*");

    // The oracle describes the cluster: the same documents, in the same daily indices.
    let raw: Vec<Value> = events.iter().map(|(_, raw)| raw.clone()).collect();
    let docs = model(&raw);
    let mut per_index: BTreeMap<String, u64> = BTreeMap::new();
    for d in &docs {
        *per_index.entry(d.index(&prefix)).or_default() += 1;
    }
    let answer = node::search(
        &pattern,
        json!({"size": 0, "aggs": {"i": {"terms": {"field": "_index", "size": 10000}}}}),
    )
    .await;
    let in_cluster: BTreeMap<String, u64> = answer["aggregations"]["i"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_str().unwrap().to_owned(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(in_cluster, per_index, "the oracle's documents are the cluster's");

    // Whether the cluster indexes free-form subtrees, from what it says it is.
    let flavor = Flavor::detect(&node::call(reqwest::Method::GET, "", None).await);
    let subtrees = flavor != Flavor::Disabled;
    let edges_index = format!("{prefix}-2024.05.01");
    let mut report = Vec::new();
    for vis_object in all.iter().filter(|o| o["type"] == "visualization") {
        let id = vis_object["id"].as_str().unwrap();
        assert_eq!(pattern_of(vis_object, &index), pattern, "{id}");
        let vis = json_attr(vis_object, &["visState"]);
        let query = query_of(vis_object);
        let aggs = bucket_aggs(&vis);
        assert!(!aggs.is_empty(), "{id}: buckets to draw");

        // Each field exists in every index that maps it, with an aggregatable type.
        for agg in &aggs {
            let field = agg.field();
            let mapping = node::call(reqwest::Method::GET, &format!("{pattern}/_mapping/field/{field}"), None).await;
            let types: BTreeSet<String> = mapping
                .as_object()
                .unwrap()
                .values()
                .filter_map(|i| {
                    let m = &i["mappings"][field]["mapping"];
                    let leaf = field.rsplit('.').next().unwrap();
                    m[leaf]["type"].as_str().map(str::to_owned)
                })
                .collect();
            assert!(!types.is_empty(), "{id}: {field} is mapped");
            assert!(
                types.iter().all(|t| AGGREGATABLE.contains(&t.as_str())),
                "{id}: {field} is {types:?}, not aggregatable"
            );
            if let BucketAgg::Daily { .. } = agg {
                assert_eq!(types, BTreeSet::from(["date".to_owned()]), "{id}: {field}");
            }
        }

        // The request Dashboards sends, and the buckets the oracle expects.
        let body = json!({"size": 0, "query": lucene(&query), "aggs": request_aggs(&aggs)});
        let answer = node::search(&pattern, body).await;
        let got = actual(&answer["aggregations"], &aggs);
        let matching: Vec<&Doc> = docs.iter().filter(|d| oracle(&query, subtrees)(d)).collect();
        let want = expected(&matching, &aggs);
        assert!(
            !got.is_empty() || (!subtrees && needs_subtrees(&query)),
            "{id}: non-empty buckets"
        );
        assert!(got.iter().all(|b| b.count > 0), "{id}");
        assert_eq!(got, want, "{id}: buckets equal the oracle's");
        check_with_count(&pattern, &query, &aggs, &got).await;
        let leaves: usize = got.iter().map(|b| b.sub.len().max(1)).sum();
        let first = match aggs[0] {
            BucketAgg::Terms { .. } => "largest",
            BucketAgg::Daily { .. } => "first",
        };
        report.push(match got.first() {
            Some(b) => format!(
                "{id}: {} buckets ({leaves} leaves), {first} {} = {}",
                got.len(),
                b.key,
                b.count
            ),
            None => format!(
                "{id}: no buckets (free-form subtrees are {} on this cluster)",
                flavor.as_str()
            ),
        });
    }

    for search in all.iter().filter(|o| o["type"] == "search") {
        let id = search["id"].as_str().unwrap();
        assert_eq!(pattern_of(search, &index), pattern, "{id}");
        let query = query_of(search);
        let want: BTreeSet<(String, String)> = docs
            .iter()
            .filter(|d| oracle(&query, subtrees)(d))
            .map(|d| (d.index(&prefix), d.id.clone()))
            .collect();
        let answer = node::search(
            &pattern,
            json!({"size": 10000, "_source": ["eventName"], "track_total_hits": true, "query": lucene(&query)}),
        )
        .await;
        let got: BTreeSet<(String, String)> = answer["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["_index"].as_str().unwrap().to_owned(),
                    h["_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            answer["hits"]["total"]["value"].as_u64(),
            Some(want.len() as u64),
            "{id}"
        );
        assert_eq!(got, want, "{id}: exactly the matching events");
        // Every case has examples among the fixtures, so a query that matches nothing is a bug.
        assert!(
            !want.is_empty() || (!subtrees && needs_subtrees(&query)),
            "{id}: the fixtures hold matching events"
        );
        // The edge records land where they must, whatever the oracle says.
        for (edge, _, found_by) in EDGES {
            let key = (edges_index.clone(), format!("{EDGE_ACCOUNT}:{edge}"));
            let found = found_by.contains(&id) && (subtrees || !needs_subtrees(&query));
            assert_eq!(got.contains(&key), found, "{id}: {edge}");
        }
        if let Some((_, names)) = WITNESSED.iter().find(|(w, _)| *w == id) {
            let found: BTreeSet<&str> = answer["hits"]["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["_source"]["eventName"].as_str().unwrap())
                .collect();
            assert_eq!(
                found,
                names.iter().copied().collect(),
                "{id}: every eventName of the query is found"
            );
        }
        report.push(format!("{id}: {} events", want.len()));
    }
    eprintln!("{}", report.join("\n"));
}
