//! The OpenSearch Dashboards saved objects in `dashboards/`: the committed NDJSON is the
//! generator's output, it has the structure the saved-objects import API requires, and,
//! against the real node filled with every fixture (indexed with GeoIP enrichment and the
//! built-in detection rules), each visualization's aggregation returns exactly the buckets
//! the input records hold and each saved search finds exactly the matching events.
//!
//! No Dashboards server runs here, so the visualizations are not rendered: the test reads
//! each one's aggregations (type, field, size, interval, precision) and query from its
//! visState and searchSourceJSON, sends the request Dashboards would send, and compares the
//! answer with two oracles: counts computed from the fixtures' records without the crate
//! (decoded here with base64 and flate2, classified and deduplicated as the README
//! specifies, located with `fixtures/geo/expected.json`), and a plain count per bucket. A
//! few hand-written records ([`EDGES`]) cover the edges of the saved searches' queries that
//! the fixtures leave untested.
//!
//! The Sigma rules are not re-implemented here: which rules a document matched
//! (`signal.rules`) is read back from the node, its severity is checked against the rules'
//! levels, the former built-in rules (simple enough) are recomputed from the records
//! ([`rule_oracle`]), and each of those but the [`SILENT_IN_FIXTURES`] must match something.
//! Every bundled rule's cases on real records are in `tests/detections.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::net::IpAddr;

use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use common::node::{self, Pipeline};
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::config::SignalsConfig;
use cwl_indexer::deliver::cluster::cloudtrail_pattern;
use cwl_indexer::index::Flavor;
use cwl_indexer::signals::{Enrichment, Origin, RuleOptions, RuleSet};
use serde_json::{Value, json};

/// The saved objects, as committed.
const NDJSON: &str = include_str!("../dashboards/cloudtrail-audit.ndjson");

/// The index pattern the saved objects ship with (the default `INDEX_PREFIX`): the daily
/// CloudTrail indices, not the log type families nor the dead letters.
const DEFAULT_PATTERN: &str = "cwl-1*,cwl-2*,cwl-3*,cwl-4*,cwl-5*,cwl-6*,cwl-7*,cwl-8*,cwl-9*";

/// What each public address of the fixtures should give, written by
/// `scripts/make-geo-fixtures.py` from the databases' source networks (not by the crate).
const EXPECTED_GEO: &str = include_str!("../fixtures/geo/expected.json");

/// The allow-list of the country rule, as Logz.io's example has it.
const ALLOWED_COUNTRIES: [&str; 2] = ["US", "IL"];

/// The English names of the countries the fixtures' addresses are in (as MaxMind writes
/// them), for the oracle of `source.geo.country_name`.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("AU", "Australia"),
    ("BO", "Bolivia"),
    ("CN", "China"),
    ("DE", "Germany"),
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("JP", "Japan"),
    ("RO", "Romania"),
    ("SY", "Syria"),
    ("US", "United States"),
];

/// Built-in rules that no fixture matches (dashboards/README.md lists them): the [`EDGES`]
/// give each a positive. Every other rule matches some fixture, and every rule something.
const SILENT_IN_FIXTURES: &[&str] = &[
    "iam-access-key-for-another-user",
    "iam-admin-policy-attached",
    "iam-login-profile-created",
    "iam-role-trust-changed",
];

/// The geohash precision of a coordinate map zoomed in to about city level (cells of about
/// 5 km), checked besides the precision saved for the initial zoom.
const ZOOMED_IN_PRECISION: usize = 5;

const AUDIT_DASHBOARD: &str = "CloudTrail audit";
const SIGNALS_DASHBOARD: &str = "Security signals";
const RESOURCES_DASHBOARD: &str = "CloudTrail resources";
const SIGMAHQ_DASHBOARD: &str = "Security signals: SigmaHQ rules";

/// A bundled rule that alerts, as the indexer loads it: (id, saved-search key: its name,
/// level, one of cwl-indexer's own). The generator makes one saved search of each.
struct BundledRule {
    id: String,
    key: String,
    level: String,
    ours: bool,
}

/// The bundled rules that alert (a correlation's base rules do not), in load order.
fn rules() -> Vec<BundledRule> {
    let set = RuleSet::load(&RuleOptions {
        allowed_countries: ALLOWED_COUNTRIES.iter().map(|c| c.to_string()).collect(),
        ..RuleOptions::default()
    })
    .unwrap();
    set.catalogue()
        .iter()
        .filter(|r| !r.silent)
        .map(|r| BundledRule {
            id: r.id.clone(),
            key: r.name.clone(),
            level: r.level.as_str().to_owned(),
            ours: r.origin == Origin::CwlIndexer,
        })
        .collect()
}

/// The rule a saved search's query selects (`signal.rules:"<id>"`).
fn rule_of_query(query: &str) -> Option<&str> {
    query.strip_prefix("signal.rules:").map(|r| r.trim_matches('"'))
}

fn severity_rank(severity: &str) -> usize {
    ["low", "medium", "high", "critical"]
        .iter()
        .position(|s| *s == severity)
        .unwrap_or_else(|| panic!("severity {severity}"))
}

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
    ndjson.replace(&needle, &format!(r#""title":"{}""#, cloudtrail_pattern(prefix)))
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
                        [
                            "histogram",
                            "horizontal_bar",
                            "line",
                            "area",
                            "pie",
                            "table",
                            "tile_map"
                        ]
                        .contains(&vis["type"].as_str().unwrap()),
                        "{id}"
                    );
                    let aggs = vis["aggs"].as_array().unwrap();
                    if vis["type"] == "tile_map" {
                        let buckets: Vec<&Value> = aggs.iter().filter(|a| a["type"] != "count").collect();
                        assert_eq!(buckets.len(), 1, "{id}: one geohash_grid");
                        assert_eq!(buckets[0]["type"], "geohash_grid", "{id}");
                        assert_eq!(buckets[0]["schema"], "segment", "{id}");
                    }
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

    // Three dashboards: "CloudTrail audit", which needs nothing but the indexer, "CloudTrail
    // resources", exactly the charts on the promoted fields and `event.outcome` (schema v2),
    // and "Security signals", holding exactly the objects that show what enrichment adds
    // (`source.geo.*`, `signal.*`). Together they hold every visualization and saved search,
    // each once.
    let dashboards: BTreeMap<&str, Vec<&str>> = all
        .iter()
        .filter(|o| o["type"] == "dashboard")
        .map(|d| {
            let held = d["references"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap())
                .collect();
            (d["attributes"]["title"].as_str().unwrap(), held)
        })
        .collect();
    assert_eq!(
        dashboards.keys().copied().collect::<Vec<_>>(),
        [
            AUDIT_DASHBOARD,
            RESOURCES_DASHBOARD,
            SIGNALS_DASHBOARD,
            SIGMAHQ_DASHBOARD
        ]
    );
    let mut held: Vec<&str> = dashboards.values().flatten().copied().collect();
    held.sort_unstable();
    let panels: Vec<&str> = all
        .iter()
        .filter(|o| o["type"] == "visualization" || o["type"] == "search")
        .map(|o| o["id"].as_str().unwrap())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(held, panels, "the dashboards hold every visualization and search, once");
    for o in all
        .iter()
        .filter(|o| o["type"] == "visualization" || o["type"] == "search")
    {
        let id = o["id"].as_str().unwrap();
        let mut fields = vec![query_of(o)];
        if o["type"] == "visualization" {
            fields.extend(
                bucket_aggs(&json_attr(o, &["visState"]))
                    .iter()
                    .map(|a| a.field().to_owned()),
            );
        }
        let enriched = fields
            .iter()
            .any(|f| f.contains("signal.") || f.contains("source.geo."));
        assert_eq!(
            dashboards[SIGNALS_DASHBOARD].contains(&id) || dashboards[SIGMAHQ_DASHBOARD].contains(&id),
            enriched,
            "{id}: on a signals dashboard exactly when it shows enrichment"
        );
        let schema_v2 = fields
            .iter()
            .any(|f| f.contains("aws.cloudtrail.") || f.contains("event.outcome"));
        assert_eq!(
            dashboards[RESOURCES_DASHBOARD].contains(&id),
            schema_v2,
            "{id}: on the resources dashboard exactly when it uses the promoted or computed fields"
        );
    }
    let count = |dashboard: &str, kind: &str| {
        dashboards[dashboard]
            .iter()
            .filter(|id| index[**id]["type"] == kind)
            .count()
    };
    assert_eq!(count(AUDIT_DASHBOARD, "visualization"), 7);
    assert_eq!(count(AUDIT_DASHBOARD, "search"), 5);
    assert_eq!(count(SIGNALS_DASHBOARD, "visualization"), 5);
    assert_eq!(count(RESOURCES_DASHBOARD, "visualization"), 6);

    // One saved search per bundled rule that alerts, and one for all signals; ours are panels.
    let rules = rules();
    assert!(rules.len() > 90, "{}", rules.len());
    assert_eq!(
        count(SIGNALS_DASHBOARD, "search"),
        1 + rules.iter().filter(|r| r.ours).count()
    );
    assert_eq!(
        count(SIGMAHQ_DASHBOARD, "search"),
        rules.iter().filter(|r| !r.ours).count()
    );
    assert_eq!(all.iter().filter(|o| o["type"] == "search").count(), 6 + rules.len());
    for rule in &rules {
        let id = format!("cwl-indexer-signal-{}", rule.key);
        let search = index.get(id.as_str()).unwrap_or_else(|| panic!("no saved search {id}"));
        assert_eq!(search["type"], "search", "{id}");
        assert_eq!(query_of(search), format!("signal.rules:\"{}\"", rule.id), "{id}");
    }
    assert_eq!(query_of(index["cwl-indexer-signals"]), "_exists_:signal.rules");

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
            assert_eq!(pattern_of(o, &index), cloudtrail_pattern("audit"), "{}", o["id"]);
        }
    }
    assert!(!retarget(NDJSON, "audit").contains(DEFAULT_PATTERN));
}

// ---------------------------------------------------------------------------------------
// The independent oracle: the fixtures' records, decoded and deduplicated without the crate.

/// One document as the cluster must hold it: its daily index, `_id`, `@timestamp`, the
/// CloudTrail record it came from (None for text, other JSON and unparseable messages), and
/// what enrichment adds: `source` from the oracle's own GeoIP lookup ([`geo_oracle`]),
/// `signal` as read back from the node ([`stored_signals`]).
struct Doc {
    day: NaiveDate,
    id: String,
    time: DateTime<Utc>,
    record: Option<Value>,
    enriched: Value,
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

    /// Where `field` is found: enrichment's fields in [`Doc::enriched`], the rest in the record.
    fn root(&self, field: &str) -> &Value {
        if field.starts_with("source.") || field.starts_with("signal.") || field.starts_with("threat.") {
            &self.enriched
        } else {
            self.record.as_ref().unwrap_or(&Value::Null)
        }
    }

    /// The terms a keyword field holds for this document (dotted path; `keyword` fields skip
    /// strings over `ignore_above: 1024` characters; null and objects index nothing).
    fn terms(&self, field: &str) -> BTreeSet<String> {
        // The computed fields, by the README's rules; only CloudTrail records have them.
        match (field, &self.record) {
            ("event.outcome", Some(r)) => {
                let failed = r["errorCode"].as_str().is_some_and(|c| !c.is_empty())
                    || r["responseElements"]["ConsoleLogin"] == "Failure";
                return BTreeSet::from([if failed { "failure" } else { "success" }.to_owned()]);
            }
            ("user.name", Some(_)) => return principal_name(self).into_iter().collect(),
            ("event.outcome" | "user.name", None) => return BTreeSet::new(),
            _ => {}
        }
        // A promoted field holds its keyword subtree path's values, read from an object root.
        let (mut values, field) = match field.strip_prefix("aws.cloudtrail.") {
            Some(path) => {
                let root = path.split('.').next().unwrap_or_default();
                if !self.root(path)[root].is_object() {
                    return BTreeSet::new();
                }
                (vec![self.root(path)], path)
            }
            None => (vec![self.root(field)], field),
        };
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

    /// The `(lat, lon)` a geo_point field holds (`{"lat": .., "lon": ..}`).
    fn point(&self, field: &str) -> Option<(f64, f64)> {
        let mut v = self.root(field);
        for part in field.split('.') {
            v = &v[part];
        }
        Some((v["lat"].as_f64()?, v["lon"].as_f64()?))
    }
}

/// What enrichment must add as `source` for `record`, from [`EXPECTED_GEO`]: the address is
/// the first of the comma-separated `sourceIPAddress` values that the fixtures' databases
/// know (they hold exactly the corpus's public addresses; private addresses, service names
/// and "AWS Internal" are never looked up), and the country and coordinates are the city
/// database's (`GEOIP_DB`).
fn geo_oracle(record: &Value, expected: &Value) -> Value {
    let Some(value) = record["sourceIPAddress"].as_str() else {
        return Value::Null;
    };
    let known = value
        .split(',')
        .filter_map(|p| p.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
        .find(|ip| expected.get(ip).is_some());
    let Some(ip) = known else {
        return Value::Null;
    };
    let city = &expected[&ip]["city"];
    let Some(code) = city["country_code"].as_str() else {
        return json!({ "ip": ip });
    };
    let name = COUNTRY_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .unwrap_or_else(|| panic!("{ip}: add {code} to COUNTRY_NAMES"))
        .1;
    json!({"ip": ip, "geo": {
        "country_iso_code": code,
        "country_name": name,
        "location": {"lat": city["latitude"], "lon": city["longitude"]},
    }})
}

/// The geohash of a point: longitude and latitude bisected alternately, five bits a character.
fn geohash(lat: f64, lon: f64, precision: usize) -> String {
    const BASE32: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (mut lats, mut lons) = ((-90.0, 90.0), (-180.0, 180.0));
    let mut out = String::new();
    let (mut bit, mut char_bits, mut lon_turn) = (0usize, 0usize, true);
    while out.len() < precision {
        let (range, v): (&mut (f64, f64), f64) = if lon_turn { (&mut lons, lon) } else { (&mut lats, lat) };
        let mid = (range.0 + range.1) / 2.0;
        char_bits <<= 1;
        if v >= mid {
            char_bits |= 1;
            range.0 = mid;
        } else {
            range.1 = mid;
        }
        lon_turn = !lon_turn;
        bit += 1;
        if bit == 5 {
            out.push(BASE32[char_bits] as char);
            (bit, char_bits) = (0, 0);
        }
    }
    out
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
    let expected_geo: Value = serde_json::from_str(EXPECTED_GEO).unwrap();
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
        // A log group the default `FLOW_LOG_GROUPS` (`*flow*`) names holds flow logs: its text
        // messages go to `<prefix>-vpcflow-*` (tests/logtypes.rs), not the CloudTrail indices.
        let flow_group = envelope["logGroup"].as_str().unwrap_or("").contains("flow");
        for event in envelope["logEvents"].as_array().unwrap() {
            let message = event["message"].as_str().unwrap();
            if flow_group && !message.trim_start().starts_with(['{', '[']) {
                continue;
            }
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
                let source = record.as_ref().map_or(Value::Null, |r| geo_oracle(r, &expected_geo));
                let enriched = json!({ "source": source });
                docs.push(Doc {
                    day,
                    id,
                    time,
                    record,
                    enriched,
                });
            }
        }
    }
    docs
}

/// Which documents a query or rule selects.
type Predicate = Box<dyn Fn(&Doc) -> bool>;

/// True for queries that search inside a free-form subtree (`responseElements.ConsoleLogin`).
/// Clusters without `flat_object` or `flattened` (OpenSearch before 2.7, Elasticsearch OSS)
/// store those subtrees unindexed, so such queries find nothing there.
fn needs_subtrees(query: &str) -> bool {
    query.contains("responseElements.")
}

/// The independent meaning of every query the saved objects use, on a cluster that indexes
/// free-form subtrees or not (`subtrees`). A query without an entry here fails the test:
/// changing a query means saying here what it must find.
fn oracle(query: &str, subtrees: bool) -> Predicate {
    let any_event = |names: &'static [&'static str]| -> Predicate {
        Box::new(move |d: &Doc| names.iter().any(|n| d.has("eventName", n)))
    };
    if let Some(rule) = rule_of_query(query) {
        // Which rules matched is read back from the node; see rule_oracle for the
        // independent check of the rules simple enough to recompute.
        let rule = rule.to_owned();
        return Box::new(move |d| d.has("signal.rules", &rule));
    }
    match query {
        "" => Box::new(|_| true),
        "_exists_:errorCode" => Box::new(|d| !d.terms("errorCode").is_empty()),
        "event.outcome:failure" => Box::new(|d| d.has("event.outcome", "failure")),
        "eventName:RunInstances AND event.outcome:success" => {
            Box::new(|d| d.has("eventName", "RunInstances") && d.has("event.outcome", "success"))
        }
        "eventName:(AssumeRole OR AssumeRoleWithSAML OR AssumeRoleWithWebIdentity)" => {
            any_event(&["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"])
        }
        "eventSource:kms.amazonaws.com" => Box::new(|d| d.has("eventSource", "kms.amazonaws.com")),
        "eventSource:secretsmanager.amazonaws.com" => {
            Box::new(|d| d.has("eventSource", "secretsmanager.amazonaws.com"))
        }
        "_exists_:signal.rules" => Box::new(|d| !d.terms("signal.rules").is_empty()),
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

/// The caller's name as the rules compare it (`@principal_name`): `userIdentity.userName`,
/// else the last part of the ARN (an assumed role's session name).
fn principal_name(d: &Doc) -> Option<String> {
    let record = d.record.as_ref()?;
    let identity = &record["userIdentity"];
    if let Some(name) = identity["userName"].as_str() {
        return Some(name.to_owned());
    }
    let last = identity["arn"].as_str()?.rsplit('/').next()?;
    (!last.is_empty() && !last.contains(':')).then(|| last.to_owned())
}

/// Whether any string anywhere under `value` satisfies `test`.
fn any_string(value: &Value, test: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => test(s),
        Value::Array(items) => items.iter().any(|v| any_string(v, test)),
        Value::Object(fields) => fields.values().any(|v| any_string(v, test)),
        _ => false,
    }
}

/// The built-in rules, recomputed from the records: which documents each must have matched.
/// All but the burst rule, whose count runs per invocation in delivery order.
fn rule_oracle(rule: &str) -> Option<Predicate> {
    let ok = |d: &Doc| d.terms("errorCode").is_empty();
    let parameters = |d: &Doc| {
        d.record
            .as_ref()
            .map_or(Value::Null, |r| r["requestParameters"].clone())
    };
    let for_another = |d: &Doc| {
        let target = d.terms("requestParameters.userName").into_iter().next();
        matches!((target, principal_name(d)), (Some(t), Some(p)) if t != p)
    };
    Some(match rule {
        "root-activity" => Box::new(|d| {
            d.has("userIdentity.type", "Root")
                && d.terms("userIdentity.invokedBy").is_empty()
                && !d.has("eventType", "AwsServiceEvent")
                && !d.has("eventName", "CreateServiceLinkedRole")
        }),
        "console-login-failure" => {
            Box::new(|d| d.has("eventName", "ConsoleLogin") && d.has("responseElements.ConsoleLogin", "Failure"))
        }
        "console-login-without-mfa" => Box::new(|d| {
            d.has("eventName", "ConsoleLogin")
                && d.has("responseElements.ConsoleLogin", "Success")
                && d.has("additionalEventData.MFAUsed", "No")
                && (d.has("userIdentity.type", "IAMUser") || d.has("userIdentity.type", "Root"))
                && d.terms("additionalEventData.SamlProviderArn").is_empty()
        }),
        "trail-tampering" => Box::new(move |d| {
            d.has("eventSource", "cloudtrail.amazonaws.com")
                && ok(d)
                && (["StopLogging", "DeleteTrail", "UpdateTrail"]
                    .iter()
                    .any(|n| d.has("eventName", n))
                    || (d.has("eventName", "PutEventSelectors")
                        && (d.has("requestParameters.eventSelectors.includeManagementEvents", "false")
                            || d.has("requestParameters.eventSelectors.readWriteType", "ReadOnly"))))
        }),
        "iam-user-created" => {
            Box::new(move |d| d.has("eventName", "CreateUser") && d.has("eventSource", "iam.amazonaws.com") && ok(d))
        }
        "iam-role-trust-changed" => Box::new(move |d| d.has("eventName", "UpdateAssumeRolePolicy") && ok(d)),
        "iam-admin-policy-attached" => Box::new(move |d| {
            ["AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy"]
                .iter()
                .any(|n| d.has("eventName", n))
                && d.terms("requestParameters.policyArn")
                    .iter()
                    .any(|a| a.ends_with("policy/AdministratorAccess"))
                && ok(d)
        }),
        "iam-access-key-for-another-user" => {
            Box::new(move |d| d.has("eventName", "CreateAccessKey") && ok(d) && for_another(d))
        }
        "iam-login-profile-created" => Box::new(move |d| {
            ok(d)
                && (d.has("eventName", "CreateLoginProfile")
                    || (d.has("eventName", "UpdateLoginProfile") && for_another(d)))
        }),
        "security-group-open-to-world" => Box::new(move |d| {
            (d.has("eventName", "AuthorizeSecurityGroupIngress") || d.has("eventName", "ModifySecurityGroupRules"))
                && ok(d)
                && any_string(&parameters(d), &|s| s == "0.0.0.0/0" || s == "::/0")
        }),
        "guardduty-disabled" => Box::new(move |d| {
            d.has("eventSource", "guardduty.amazonaws.com")
                && ok(d)
                && ([
                    "DeleteDetector",
                    "DisassociateFromMasterAccount",
                    "DisassociateFromAdministratorAccount",
                    "StopMonitoringMembers",
                    "DeleteMembers",
                ]
                .iter()
                .any(|n| d.has("eventName", n))
                    || (d.has("eventName", "UpdateDetector") && d.has("requestParameters.enable", "false")))
        }),
        "s3-bucket-made-public" => Box::new(move |d| {
            let everyone = |s: &str| {
                s.contains("acs.amazonaws.com/groups/global/AllUsers")
                    || s.contains("acs.amazonaws.com/groups/global/AuthenticatedUsers")
            };
            let policy = "requestParameters.bucketPolicy.Statement";
            d.has("eventSource", "s3.amazonaws.com")
                && ok(d)
                && (((d.has("eventName", "PutBucketAcl") || d.has("eventName", "PutObjectAcl"))
                    && any_string(&parameters(d), &everyone))
                    || (d.has("eventName", "PutBucketPolicy")
                        && (d.has(&format!("{policy}.Principal"), "*")
                            || d.has(&format!("{policy}.Principal.AWS"), "*"))
                        && d.has(&format!("{policy}.Effect"), "Allow"))
                    || d.has("eventName", "DeleteBucketPublicAccessBlock"))
        }),
        "unexpected-country" => Box::new(|d| {
            d.terms("source.geo.country_iso_code")
                .iter()
                .any(|c| !ALLOWED_COUNTRIES.contains(&c.as_str()))
        }),
        _ => return None,
    })
}

/// `signal` and `threat` of every document that has a signal, by (index, `_id`), as the node holds it.
async fn stored_signals(pattern: &str) -> BTreeMap<(String, String), Value> {
    let answer = node::search(
        pattern,
        json!({"size": 10000, "track_total_hits": true, "_source": ["signal", "threat"],
               "query": {"exists": {"field": "signal.rules"}}}),
    )
    .await;
    let hits = answer["hits"]["hits"].as_array().unwrap();
    assert_eq!(answer["hits"]["total"]["value"].as_u64(), Some(hits.len() as u64));
    hits.iter()
        .map(|h| {
            (
                (
                    h["_index"].as_str().unwrap().to_owned(),
                    h["_id"].as_str().unwrap().to_owned(),
                ),
                h["_source"].clone(),
            )
        })
        .collect()
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
    /// Geohash cells of a geo_point field, at the precision Dashboards derives from the map's
    /// zoom, each with its centroid (where the coordinate map draws the marker).
    Geohash {
        field: String,
        precision: usize,
    },
}

impl BucketAgg {
    fn field(&self) -> &str {
        match self {
            Self::Terms { field, .. } | Self::Daily { field, .. } | Self::Geohash { field, .. } => field,
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
            // The collar filter Dashboards wraps around it spans the visible map, at the
            // initial zoom the whole world, so it is left out.
            Self::Geohash { field, precision } => json!({
                "geohash_grid": {"field": field, "precision": precision},
                "aggs": {"centroid": {"geo_centroid": {"field": field}}},
            }),
        }
    }

    /// The `_count` filter selecting one bucket of this aggregation.
    fn filter(&self, key: &str) -> Value {
        match self {
            Self::Terms { field, .. } => json!({"term": {field: key}}),
            Self::Daily { field, .. } => {
                json!({"range": {field: {"gte": key, "lt": format!("{key}||+1d"), "format": "strict_date"}}})
            }
            // A geohash given as both corners stands for its cell.
            Self::Geohash { field, .. } => {
                json!({"geo_bounding_box": {field: {"top_left": key, "bottom_right": key}}})
            }
        }
    }

    /// The field types the aggregation runs on.
    fn accepts(&self, field_type: &str) -> bool {
        match self {
            Self::Terms { .. } => AGGREGATABLE.contains(&field_type),
            Self::Daily { .. } => field_type == "date",
            Self::Geohash { .. } => field_type == "geo_point",
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
            "geohash_grid" => {
                // The precision saved is the one of the map's initial zoom (2 at zoom 2).
                assert_eq!(params["autoPrecision"], true, "the precision follows the zoom");
                assert_eq!(params["useGeocentroid"], true, "markers at the centroids");
                out.push(BucketAgg::Geohash {
                    field: field.unwrap(),
                    precision: params["precision"].as_u64().unwrap() as usize,
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
            BucketAgg::Geohash { field, precision } => d
                .point(field)
                .map(|(lat, lon)| geohash(lat, lon, *precision))
                .into_iter()
                .collect(),
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
        BucketAgg::Geohash { .. } => by_count(&mut buckets),
    }
    buckets
}

/// Most documents first, then by key: geohash_grid breaks ties by the cell's internal
/// number, not its name, so both sides are put in this order.
fn by_count(buckets: &mut [Bucket]) {
    buckets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
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
    let mut buckets: Vec<Bucket> = answer["b"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {answer}"))
        .iter()
        .map(|b| Bucket {
            key: match agg {
                BucketAgg::Terms { .. } | BucketAgg::Geohash { .. } => match &b["key"] {
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
        .collect();
    if let BucketAgg::Geohash { .. } = agg {
        by_count(&mut buckets);
    }
    buckets
}

/// Whether the node runs geohash_grid aggregations. OpenSearch 2.x has them in its `geo`
/// module, which every distribution and Amazon OpenSearch Service include but the minimal
/// test build (the integ-test zip, with no module but transport) does not.
async fn has_geohash_grid(pattern: &str, field: &str) -> bool {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("{}/{pattern}/_search", node::url().trim_end_matches('/')))
        .header("content-type", "application/json")
        .body(json!({"size": 0, "aggs": {"g": {"geohash_grid": {"field": field}}}}).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    match status.as_u16() {
        200 => true,
        400 if text.contains("Unknown aggregation type [geohash_grid]") => false,
        _ => panic!("geohash_grid probe: {status} {text}"),
    }
}

/// Where geohash_grid is missing, the cells the oracle expects, counted by the node one by
/// one: a `filters` aggregation of one geo_bounding_box a cell (with the same centroid
/// sub-aggregation), in the shape of geohash_grid's answer. That every located document is in
/// one of these cells is checked by the caller.
fn cells_request(field: &str, cells: &[Bucket]) -> Value {
    let filters: serde_json::Map<String, Value> = cells
        .iter()
        .map(|c| {
            (
                c.key.clone(),
                json!({"geo_bounding_box": {field: {"top_left": c.key, "bottom_right": c.key}}}),
            )
        })
        .collect();
    json!({"b": {
        "filters": {"filters": filters},
        "aggs": {"centroid": {"geo_centroid": {"field": field}}},
    }})
}

/// The answer of [`cells_request`] as geohash_grid gives it: a list of non-empty buckets.
fn as_grid(answer: &Value) -> Value {
    let buckets: Vec<Value> = answer["b"]["buckets"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, b)| b["doc_count"].as_u64() != Some(0))
        .map(|(key, b)| {
            let mut b = b.clone();
            b["key"] = json!(key);
            b
        })
        .collect();
    json!({"b": {"buckets": buckets}})
}

/// Each geohash cell's centroid, as the node computes it, against the mean of the oracle's
/// points in the cell (the node stores coordinates to about 1e-7 degrees).
fn check_centroids(id: &str, answer: &Value, docs: &[&Doc], field: &str, precision: usize) {
    for b in answer["b"]["buckets"].as_array().unwrap() {
        let cell = b["key"].as_str().unwrap();
        let points: Vec<(f64, f64)> = docs
            .iter()
            .filter_map(|d| d.point(field))
            .filter(|(lat, lon)| geohash(*lat, *lon, precision) == cell)
            .collect();
        let n = points.len() as f64;
        let lat = points.iter().map(|p| p.0).sum::<f64>() / n;
        let lon = points.iter().map(|p| p.1).sum::<f64>() / n;
        let at = &b["centroid"]["location"];
        let (got_lat, got_lon) = (at["lat"].as_f64().unwrap(), at["lon"].as_f64().unwrap());
        assert!(
            (got_lat - lat).abs() < 1e-5 && (got_lon - lon).abs() < 1e-5,
            "{id}: cell {cell}: centroid {got_lat},{got_lon}, expected {lat},{lon}"
        );
    }
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
/// reach, each with the searches that must find it (and no other may). Their address is a
/// documentation one, never looked up, so only the rules on the records' own fields match:
/// the refused StopLogging is not trail tampering (the rule wants a call that succeeded), the
/// root call invoked by a service and the root AwsServiceEvent are not root activity. Some near
/// misses of our rules are SigmaHQ rules' matches, so they are in "Security signals: all": AWS
/// Root Credentials takes the root call invoked by a service, CloudTrail Important Change the
/// refused StopLogging, the security group modification rule the revokes, IAM Backdoor Users
/// Keys and User Login Profile Was Modified the calls for oneself. The
/// IAM records give the four IAM rules that no fixture matches ([`SILENT_IN_FIXTURES`]) a
/// positive each, next to a near miss (for oneself, another policy, refused). In the fixtures, the
/// root records invoked by a service and the StopLogging and DeleteTrail records share their
/// placeholder `_id`s (eventID "1", "1111", "...") with earlier documents, so they are never
/// indexed; and no fixture revokes or deletes a security group, modifies its rules, or is
/// refused with AccessDeniedException.
const EDGES: &[(&str, &str, &[&str])] = &[
    (
        "edge-root-console",
        r#"{"userIdentity":{"type":"Root","arn":"arn:aws:iam::999988887777:root"},"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall"}"#,
        &[
            "cwl-indexer-root-activity",
            "cwl-indexer-signals",
            "cwl-indexer-signal-root-activity",
        ],
    ),
    (
        "edge-root-invoked-by-service",
        r#"{"userIdentity":{"type":"Root","arn":"arn:aws:iam::999988887777:root","invokedBy":"support.amazonaws.com"},"eventName":"DescribeTrustedAdvisorChecks","eventSource":"support.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-signals"],
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
        &[
            "cwl-indexer-trail-tampering",
            "cwl-indexer-unauthorized-calls",
            "cwl-indexer-signals",
        ],
    ),
    (
        "edge-delete-trail",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/mallory"},"eventName":"DeleteTrail","eventSource":"cloudtrail.amazonaws.com","eventType":"AwsApiCall"}"#,
        &[
            "cwl-indexer-trail-tampering",
            "cwl-indexer-signals",
            "cwl-indexer-signal-trail-tampering",
        ],
    ),
    (
        "edge-start-logging",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"StartLogging","eventSource":"cloudtrail.amazonaws.com","eventType":"AwsApiCall"}"#,
        &[],
    ),
    (
        "edge-revoke-ingress",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice"},"eventName":"RevokeSecurityGroupIngress","eventSource":"ec2.amazonaws.com","eventType":"AwsApiCall"}"#,
        &["cwl-indexer-security-group-changes", "cwl-indexer-signals"],
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
        &["cwl-indexer-security-group-changes", "cwl-indexer-signals"],
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
        &[
            "cwl-indexer-failed-console-logins",
            "cwl-indexer-signals",
            "cwl-indexer-signal-console-login-failure",
        ],
    ),
    (
        "edge-access-key-for-another-user",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"userName":"bob"}}"#,
        &[
            "cwl-indexer-signals",
            "cwl-indexer-signal-iam-access-key-for-another-user",
        ],
    ),
    (
        "edge-access-key-for-oneself",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"CreateAccessKey","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"userName":"alice"}}"#,
        &["cwl-indexer-signals"],
    ),
    (
        "edge-create-login-profile",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"CreateLoginProfile","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"userName":"bob"}}"#,
        &["cwl-indexer-signals", "cwl-indexer-signal-iam-login-profile-created"],
    ),
    (
        "edge-update-login-profile-of-another-user",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"UpdateLoginProfile","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"userName":"bob"}}"#,
        &["cwl-indexer-signals", "cwl-indexer-signal-iam-login-profile-created"],
    ),
    (
        "edge-update-own-login-profile",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"UpdateLoginProfile","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"userName":"alice"}}"#,
        &["cwl-indexer-signals"],
    ),
    (
        "edge-update-assume-role-policy",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"UpdateAssumeRolePolicy","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"roleName":"deploy"}}"#,
        &["cwl-indexer-signals", "cwl-indexer-signal-iam-role-trust-changed"],
    ),
    (
        "edge-update-assume-role-policy-denied",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/carol","userName":"carol"},"eventName":"UpdateAssumeRolePolicy","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"roleName":"deploy"},"errorCode":"AccessDenied"}"#,
        &["cwl-indexer-unauthorized-calls"],
    ),
    (
        "edge-attach-administrator-access",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"AttachRolePolicy","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"roleName":"deploy","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}}"#,
        &["cwl-indexer-signals", "cwl-indexer-signal-iam-admin-policy-attached"],
    ),
    (
        "edge-attach-read-only-access",
        r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::999988887777:user/alice","userName":"alice"},"eventName":"AttachUserPolicy","eventSource":"iam.amazonaws.com","eventType":"AwsApiCall","requestParameters":{"userName":"bob","policyArn":"arn:aws:iam::aws:policy/ReadOnlyAccess"}}"#,
        &[],
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
    // Indexed as a deployment with the GeoIP databases and the detection rules indexes, so
    // the map and the signals have something to show.
    let geo = common::fixtures().join("geo");
    let signals = SignalsConfig {
        geoip_db: Some(geo.join("city-subset.mmdb")),
        geoip_asn_db: Some(geo.join("asn-subset.mmdb")),
        allowed_countries: ALLOWED_COUNTRIES.iter().map(|c| c.to_string()).collect(),
        ..SignalsConfig::default()
    };
    let mut pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    pipeline.indexer = pipeline.indexer.with_enrichment(Enrichment::load(&signals).unwrap());
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
    let pattern = cloudtrail_pattern(&prefix);

    // The oracle describes the cluster: the same documents, in the same daily indices.
    let raw: Vec<Value> = events.iter().map(|(_, raw)| raw.clone()).collect();
    let mut docs = model(&raw);
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

    // The rules each document matched, as the node holds them; each document's severity is
    // the highest of its rules' in the rules file.
    let severities: HashMap<String, String> = rules().into_iter().map(|r| (r.id, r.level)).collect();
    let catalogue = RuleSet::load(&RuleOptions::default()).unwrap();
    let mut stored = stored_signals(&pattern).await;
    for d in &mut docs {
        if let Some(source) = stored.remove(&(d.index(&prefix), d.id.clone())) {
            let signal = source["signal"].clone();
            let matched: Vec<&str> = signal["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let highest = matched
                .iter()
                .map(|r| {
                    severities
                        .get(*r)
                        .unwrap_or_else(|| panic!("{}: unknown rule {r}", d.id))
                })
                .max_by_key(|s| severity_rank(s))
                .unwrap();
            assert_eq!(signal["severity"], highest.as_str(), "{}: {signal}", d.id);
            // ATT&CK: the union of the matched rules' tags, in the ECS fields.
            let (mut tactics, mut techniques) = (BTreeSet::new(), BTreeSet::new());
            for r in &matched {
                let info = catalogue.catalogue().iter().find(|i| i.id == *r).unwrap();
                tactics.extend(info.tactics.iter().cloned());
                techniques.extend(info.techniques.iter().cloned());
            }
            let threat = &source["threat"];
            if tactics.is_empty() && techniques.is_empty() {
                assert!(threat.is_null(), "{}: {threat}", d.id);
            } else {
                assert_eq!(threat["framework"], "MITRE ATT&CK", "{}", d.id);
                let set = |v: &Value| {
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_owned())
                        .collect::<BTreeSet<String>>()
                };
                assert_eq!(set(&threat["tactic"]["name"]), tactics, "{}", d.id);
                assert_eq!(set(&threat["technique"]["id"]), techniques, "{}", d.id);
                d.enriched["threat"] = threat.clone();
            }
            d.enriched["signal"] = signal;
        }
    }
    assert!(stored.is_empty(), "signals on documents the oracle lacks: {stored:?}");

    // Whether the cluster indexes free-form subtrees, from what it says it is.
    let flavor = Flavor::detect(&node::call(reqwest::Method::GET, "", None).await);
    let subtrees = flavor != Flavor::Disabled;
    let edges_index = format!("{prefix}-2024.05.01");
    let grid = has_geohash_grid(&pattern, "source.geo.location").await;
    let mut report = Vec::new();
    if !grid {
        report.push("geohash_grid: not on this node (no geo module); map cells counted one by one".to_owned());
    }
    for vis_object in all.iter().filter(|o| o["type"] == "visualization") {
        let id = vis_object["id"].as_str().unwrap();
        assert_eq!(pattern_of(vis_object, &index), pattern, "{id}");
        let vis = json_attr(vis_object, &["visState"]);
        let query = query_of(vis_object);
        let aggs = bucket_aggs(&vis);
        assert!(!aggs.is_empty(), "{id}: buckets to draw");

        // Each field exists in every index that maps it, with a type its aggregation takes.
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
                types.iter().all(|t| agg.accepts(t)),
                "{id}: {field} is {types:?}, not aggregatable by {agg:?}"
            );
        }

        // A coordinate map asks for finer cells as it is zoomed in: check a zoomed-in
        // precision too.
        let mut variants = vec![aggs.clone()];
        if let [BucketAgg::Geohash { field, .. }] = aggs.as_slice() {
            variants.push(vec![BucketAgg::Geohash {
                field: field.clone(),
                precision: ZOOMED_IN_PRECISION,
            }]);
        }
        for aggs in variants {
            // The request Dashboards sends, and the buckets the oracle expects.
            let matching: Vec<&Doc> = docs.iter().filter(|d| oracle(&query, subtrees)(d)).collect();
            let want = expected(&matching, &aggs);
            let mut body = json!({"size": 0, "query": lucene(&query), "aggs": request_aggs(&aggs)});
            if let (false, [BucketAgg::Geohash { field, .. }]) = (grid, aggs.as_slice()) {
                body["aggs"] = cells_request(field, &want);
                let located = json!({"bool": {"filter": [lucene(&query), {"exists": {"field": field}}]}});
                let total: u64 = want.iter().map(|b| b.count).sum();
                assert_eq!(
                    counts(&pattern, &[located]).await,
                    [total],
                    "{id}: every located call is in a cell"
                );
            }
            let mut answer = node::search(&pattern, body).await;
            if !grid && matches!(aggs[0], BucketAgg::Geohash { .. }) {
                answer["aggregations"] = as_grid(&answer["aggregations"]);
            }
            let got = actual(&answer["aggregations"], &aggs);
            assert!(
                !got.is_empty() || (!subtrees && needs_subtrees(&query)),
                "{id}: non-empty buckets"
            );
            assert!(got.iter().all(|b| b.count > 0), "{id}");
            assert_eq!(got, want, "{id}: buckets equal the oracle's");
            check_with_count(&pattern, &query, &aggs, &got).await;
            if let [BucketAgg::Geohash { field, precision }] = aggs.as_slice() {
                check_centroids(id, &answer["aggregations"], &matching, field, *precision);
            }
            let leaves: usize = got.iter().map(|b| b.sub.len().max(1)).sum();
            let (first, detail) = match &aggs[0] {
                BucketAgg::Terms { .. } => ("largest", String::new()),
                BucketAgg::Daily { .. } => ("first", String::new()),
                BucketAgg::Geohash { precision, .. } => ("largest", format!(" at precision {precision}")),
            };
            report.push(match got.first() {
                Some(b) => format!(
                    "{id}: {} buckets{detail} ({leaves} leaves), {first} {} = {}",
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
    }

    let mut silent = BTreeSet::new();
    let edge_ids = format!("{EDGE_ACCOUNT}:edge-");
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
        // A rule's search: the documents the rule matched, which for the simple rules are
        // exactly those the rule, recomputed here, selects.
        // The name of the rule a search selects, when it is one of the former built-in rules,
        // which are simple enough to recompute ([`rule_oracle`]).
        let names: HashMap<String, String> = rules().into_iter().map(|r| (r.id, r.key)).collect();
        let rule = rule_of_query(&query).map(|id| names[id].as_str());
        let recomputed = rule.and_then(rule_oracle);
        if rule.is_some() && recomputed.is_none() {
            // Any other rule's search: exactly what the node's signal.rules says, checked above.
            report.push(format!("{id}: {} events", want.len()));
            continue;
        }
        if let Some(recomputed) = recomputed {
            let want: BTreeSet<(String, String)> = docs
                .iter()
                .filter(|d| recomputed(d))
                .map(|d| (d.index(&prefix), d.id.clone()))
                .collect();
            assert_eq!(got, want, "{id}: the documents the rule selects");
        }
        // Every case has examples among the fixtures and edges, so a query that matches
        // nothing is a bug. The rules that match no fixture are those listed.
        assert!(
            !want.is_empty() || (!subtrees && needs_subtrees(&query)),
            "{id}: the fixtures hold matching events"
        );
        if let Some(rule) = rule
            && want.iter().all(|(i, d)| *i == edges_index && d.starts_with(&edge_ids))
        {
            silent.insert(rule.to_owned());
        }
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
    assert_eq!(
        silent,
        SILENT_IN_FIXTURES.iter().map(|r| r.to_string()).collect(),
        "the rules no fixture matches (update SILENT_IN_FIXTURES and dashboards/README.md)"
    );
}
