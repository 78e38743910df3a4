//! The index templates, built from [`crate::schema`]: the document template that makes mapping
//! conflicts impossible, and the dead-letter template whose mapping cannot conflict at all.

use serde_json::{Map, Value, json};

use crate::schema::{
    CLOUDTRAIL_FIELDS, COMPUTED_FIELDS, ECS_ALIASES, PROMOTED, PROMOTED_PREFIX, Promote, SECURITY_ANALYTICS_ALIASES,
    Shape,
};

/// The templates' `version`, bumped with their layout (3: the Sigma `signal.titles` and ECS
/// `threat.*` fields; 4: the daily indices sorted on eventSource, userIdentity.arn, eventName,
/// @timestamp). Whether an installed template is current is decided by a fingerprint of its
/// whole body (see [`crate::deliver::setup`]).
pub const TEMPLATE_VERSION: u64 = 4;

/// Unique identifiers: searched by value, never aggregated or sorted on, so they keep no doc
/// values (49 B per document on the shared batches, BENCHMARKS.md "Cluster cost").
const NO_DOC_VALUES: &[&str] = &["@id", "eventID", "requestID", "sharedEventID"];

/// The daily indices' sort order (`index.sort.field`, all ascending): a service's calls
/// grouped by caller, then action, then time. Neighbouring documents then share most of
/// their bytes, so the stored fields compress better the more the traffic repeats: 33 B per
/// document on the benchmark's batches, none on distinct records (BENCHMARKS.md "Cluster
/// cost", storage levers), at no measurable indexing cost.
/// Every field is a single-valued keyword (or date) with doc values in every flavor.
pub const INDEX_SORT: [&str; 4] = ["eventSource", "userIdentity.arn", "eventName", "@timestamp"];

/// How free-form subtrees are mapped, chosen by asking the cluster what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenSearch 2.7 and later: `flat_object`, searchable by dotted path.
    FlatObject,
    /// Elasticsearch 7.3 and later with the default (non-OSS) distribution: `flattened`.
    Flattened,
    /// Anything older: `{"type": "object", "enabled": false}`, stored but not indexed, which
    /// accepts every JSON value; the `@json` text copies keep the content searchable.
    Disabled,
}

impl Flavor {
    /// Picks the flavor from the root endpoint's answer (`GET /`).
    pub fn detect(root: &Value) -> Self {
        let version = &root["version"];
        let number = version["number"].as_str().unwrap_or("0");
        let mut parts = number.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if version["distribution"].as_str() == Some("opensearch") {
            if (major, minor) >= (2, 7) {
                Self::FlatObject
            } else {
                Self::Disabled
            }
        } else if version["build_flavor"].as_str() == Some("default") && (major, minor) >= (7, 3) {
            Self::Flattened
        } else {
            Self::Disabled
        }
    }

    /// True where free-form subtrees are indexed (`flat_object`, `flattened`): the `@json`
    /// text copies are then optional (`FULL_TEXT_SUBTREES=auto` leaves them out).
    pub fn indexes_subtrees(self) -> bool {
        self != Self::Disabled
    }

    /// The name recorded in the template's `_meta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlatObject => "flat_object",
            Self::Flattened => "flattened",
            Self::Disabled => "disabled",
        }
    }

    fn free_form(self) -> Value {
        match self {
            Self::FlatObject => json!({"type": "flat_object"}),
            Self::Flattened => json!({"type": "flattened", "ignore_above": 1024}),
            Self::Disabled => json!({"type": "object", "enabled": false}),
        }
    }
}

/// The name of the document template for `prefix`.
pub fn template_name(prefix: &str) -> String {
    format!("cwl-indexer-{prefix}")
}

/// The parts of the document template, each a component template of its own: `settings`
/// (shards, codec, replicas, lifecycle), `cloudtrail` (the record's fields, the promoted and
/// computed fields, the dynamic rules) and `signals` (`source`, `signal`). The aliases sit in
/// the index template itself, which the node validates against the merged mapping (a
/// component holding only aliases is refused: their targets are in another component).
pub const COMPONENTS: [&str; 3] = ["settings", "cloudtrail", "signals"];

/// The name of component `part` of `prefix`'s document template.
pub fn component_name(prefix: &str, part: &str) -> String {
    format!("cwl-indexer-{prefix}-component-{part}")
}

/// The document template as component templates plus the index template composing them.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// `(name, body)` of each component template, in `composed_of` order.
    pub components: Vec<(String, Value)>,
    /// The index template: patterns, priority, `composed_of` and the aliases.
    pub index_template: Value,
}

/// Moves every alias leaf of `properties` into `aliases` (same paths), dropping the objects
/// that held nothing else.
fn take_aliases(properties: &mut Map<String, Value>, aliases: &mut Map<String, Value>) {
    let keys: Vec<String> = properties.keys().cloned().collect();
    for key in keys {
        let Some(field) = properties.get_mut(&key) else {
            continue;
        };
        if field["type"] == "alias" {
            if let Some(alias) = properties.remove(&key) {
                aliases.insert(key, alias);
            }
            continue;
        }
        let Some(children) = field.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut inner = Map::new();
        take_aliases(children, &mut inner);
        let emptied = children.is_empty();
        if !inner.is_empty() {
            let mut holder = field.clone();
            holder["properties"] = Value::Object(inner);
            aliases.insert(key.clone(), holder);
        }
        if emptied {
            properties.remove(&key);
        }
    }
}

/// [`document_template`] split into component templates and the index template composing
/// them; the node's composition of these is exactly that template.
pub fn composed_templates(prefix: &str, flavor: Flavor, replicas: Option<u32>, lifecycle: Option<&str>) -> Composed {
    let mut whole = document_template(prefix, flavor, replicas, lifecycle);
    let meta = whole["_meta"].clone();
    let component = |template: Value| json!({"version": TEMPLATE_VERSION, "_meta": meta, "template": template});
    let mut settings = whole["template"]["settings"].take();
    // The sort names fields, so it goes with the mapping that defines them: a node that
    // validates a component on its own then finds them (2.19 does not check, others may).
    let mut sort = Map::new();
    if let Some(all) = settings.as_object_mut() {
        for key in ["index.sort.field", "index.sort.order"] {
            if let Some(value) = all.remove(key) {
                sort.insert(key.to_owned(), value);
            }
        }
    }
    let mut mappings = whole["template"]["mappings"].take();
    let mut aliases = Map::new();
    let mut signals = Map::new();
    if let Some(properties) = mappings["properties"].as_object_mut() {
        take_aliases(properties, &mut aliases);
        for name in ["source", "signal"] {
            if let Some(field) = properties.remove(name) {
                signals.insert(name.to_owned(), field);
            }
        }
    }
    let components = vec![
        (
            component_name(prefix, "settings"),
            component(json!({"settings": settings})),
        ),
        (
            component_name(prefix, "cloudtrail"),
            component(if sort.is_empty() {
                json!({"mappings": mappings})
            } else {
                json!({"settings": sort, "mappings": mappings})
            }),
        ),
        (
            component_name(prefix, "signals"),
            component(json!({"mappings": {"properties": signals}})),
        ),
    ];
    let mut index_template = whole;
    index_template["composed_of"] = json!(components.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
    index_template["template"] = json!({"mappings": {"properties": aliases}});
    Composed {
        components,
        index_template,
    }
}

/// The name of the dead-letter template for `prefix`.
pub fn deadletter_template_name(prefix: &str) -> String {
    format!("cwl-indexer-{prefix}-deadletter")
}

/// The prefix of dead-letter indices: `<prefix>-deadletter-YYYY.MM.DD`.
pub fn deadletter_prefix(prefix: &str) -> String {
    format!("{prefix}-deadletter")
}

fn keyword() -> Value {
    json!({"type": "keyword", "ignore_above": 1024})
}

fn mapping(shape: Shape, flavor: Flavor) -> Value {
    match shape {
        Shape::Keyword => keyword(),
        Shape::Text => json!({"type": "text", "norms": false, "fields": {"keyword": keyword()}}),
        Shape::Date => json!({
            "type": "date",
            "format": "strict_date_optional_time||yyyy-MM-dd HH:mm:ss||yyyy-MM-dd HH:mm:ss.SSS||epoch_millis",
            "ignore_malformed": true
        }),
        Shape::Flat => flavor.free_form(),
        Shape::Object(children) => {
            let properties: Map<String, Value> = children
                .iter()
                .map(|(name, shape)| ((*name).to_owned(), mapping(*shape, flavor)))
                .collect();
            // Unknown children stay in _source, unmapped: they can never conflict.
            json!({"type": "object", "dynamic": false, "properties": properties})
        }
    }
}

fn promoted_mapping(kind: Promote) -> Value {
    match kind {
        Promote::Keyword => keyword(),
        Promote::Long => json!({"type": "long", "ignore_malformed": true}),
        Promote::Boolean => json!({"type": "boolean"}),
        Promote::Ip => json!({"type": "ip", "ignore_malformed": true}),
    }
}

/// Puts `mapping` at the dotted `path` under `properties`, creating `dynamic: false` objects
/// on the way (only the encoder writes below them) and entering existing ones.
fn put(properties: &mut Map<String, Value>, path: &str, mapping: Value) {
    let mut parts = path.split('.').peekable();
    let mut node = properties;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(part.to_owned(), mapping);
            return;
        }
        let child = node
            .entry(part.to_owned())
            .or_insert_with(|| json!({"type": "object", "dynamic": false, "properties": {}}));
        if child.get("properties").is_none() {
            child["properties"] = json!({});
        }
        let Some(next) = child["properties"].as_object_mut() else {
            return;
        };
        node = next;
    }
}

/// The promoted fields (`aws.cloudtrail.<path>`), the computed `event.outcome` and
/// `user.name`, and the ECS and Security Analytics aliases.
fn platform_fields(properties: &mut Map<String, Value>, flavor: Flavor) {
    for (path, kind) in PROMOTED {
        put(properties, &format!("{PROMOTED_PREFIX}{path}"), promoted_mapping(*kind));
    }
    for name in COMPUTED_FIELDS {
        put(properties, name, keyword());
    }
    for (alias, target) in ECS_ALIASES.iter().chain(SECURITY_ANALYTICS_ALIASES) {
        // An alias cannot point at an `enabled: false` object: without `flat_object` or
        // `flattened`, the free-form root is searchable through its `@json` copy only.
        let target = match (flavor, *target) {
            (Flavor::Disabled, "responseElements") => "@json.responseElements",
            (_, t) => t,
        };
        put(properties, alias, json!({"type": "alias", "path": target}));
    }
}

/// The index patterns of the CloudTrail (and `@message`) daily indices: `<prefix>-1*` to
/// `<prefix>-9*`. A daily index name goes on with its four-digit year (1000 to 9999), so the
/// log type families (`<prefix>-vpcflow-*`, ...) and dead letters (`<prefix>-deadletter-*`)
/// never match: their documents can never be mapped by this template, whatever the priorities.
pub fn document_patterns(prefix: &str) -> Vec<String> {
    (1..=9).map(|d| format!("{prefix}-{d}*")).collect()
}

/// The log type families' templates, `(name, body)`: one per family, each built from its
/// writer's field table (`<prefix>-vpcflow-*`, `-guardduty-*`, `-resolver-*`, `-waf-*`).
pub fn family_templates(prefix: &str, replicas: Option<u32>, lifecycle: Option<&str>) -> Vec<(String, Value)> {
    family_templates_with(prefix, replicas, &|_| lifecycle.map(str::to_owned))
}

/// Like [`family_templates`], each family's ILM policy given by `lifecycle` (a family with a
/// retention of its own names its own policy, or none).
pub fn family_templates_with(
    prefix: &str,
    replicas: Option<u32>,
    lifecycle: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, Value)> {
    use super::{guardduty_doc, resolver_doc, vpcflow_doc, waf_doc};
    type Build = fn(&str, Option<u32>, Option<&str>) -> Value;
    let families: [(&str, Build); 4] = [
        (vpcflow_doc::FAMILY, vpcflow_doc::vpcflow_template),
        (guardduty_doc::FAMILY, guardduty_doc::guardduty_template),
        (resolver_doc::FAMILY, resolver_doc::resolver_template),
        (waf_doc::FAMILY, waf_doc::waf_template),
    ];
    families
        .into_iter()
        .map(|(family, build)| {
            let body = build(prefix, replicas, lifecycle(family).as_deref());
            (super::family::template_name(prefix, family), body)
        })
        .collect()
}

/// The composable index template for the daily indices [`document_patterns`] names, with
/// `replicas` and an ILM policy (Elasticsearch) if given.
pub fn document_template(prefix: &str, flavor: Flavor, replicas: Option<u32>, lifecycle: Option<&str>) -> Value {
    let mut properties: Map<String, Value> = CLOUDTRAIL_FIELDS
        .iter()
        .map(|(name, shape)| ((*name).to_owned(), mapping(*shape, flavor)))
        .collect();
    let text = json!({"type": "text", "norms": false});
    for (name, value) in [
        ("@timestamp", json!({"type": "date"})),
        ("@id", keyword()),
        ("@owner", keyword()),
        ("@log_group", keyword()),
        ("@log_stream", keyword()),
        ("@message", text.clone()),
        ("@parse_error", text.clone()),
        ("@unindexed", json!({"type": "object", "enabled": false})),
        (
            "@json",
            if flavor == Flavor::Disabled {
                // Declared, so that the Security Analytics alias can point at it.
                json!({"type": "object", "dynamic": true, "properties": {"responseElements": text.clone()}})
            } else {
                json!({"type": "object", "dynamic": true})
            },
        ),
        (
            "source",
            json!({"type": "object", "dynamic": false, "properties": {
                "ip": {"type": "ip"},
                "geo": {"properties": {
                    "country_iso_code": keyword(),
                    "country_name": keyword(),
                    "location": {"type": "geo_point"}
                }},
                "as": {"properties": {
                    "number": {"type": "long"},
                    "organization": {"properties": {"name": keyword()}}
                }}
            }}),
        ),
        (
            "signal",
            json!({"type": "object", "dynamic": false, "properties": {
                "rules": keyword(), "names": keyword(), "titles": keyword(), "severity": keyword()
            }}),
        ),
        (
            "threat",
            json!({"type": "object", "dynamic": false, "properties": {
                "framework": keyword(),
                "tactic": {"properties": {"name": keyword()}},
                "technique": {"properties": {"id": keyword()}}
            }}),
        ),
    ] {
        properties.insert(name.to_owned(), value);
    }
    for name in NO_DOC_VALUES {
        if let Some(field) = properties.get_mut(*name) {
            field["doc_values"] = json!(false);
        }
    }
    platform_fields(&mut properties, flavor);
    let mut template = json!({
        "index_patterns": document_patterns(prefix),
        "priority": 100,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "cwl-indexer", "flavor": flavor.as_str()},
        "template": {
            "settings": {
                // The schema maps about 80 fields; unknown top-level objects add a few each.
                "index.mapping.total_fields.limit": 2000,
                // Audit logs are written once and kept for months: trade a little CPU for disk.
                // (zstd is a plugin's, absent from the minimal distributions and OpenSearch 1.x.)
                "index.codec": "best_compression",
                "index.sort.field": INDEX_SORT,
                "index.sort.order": INDEX_SORT.map(|_| "asc")
            },
            "mappings": {
                "dynamic": true,
                // The @json text copies are indexed for full-text search but not stored twice.
                "_source": {"excludes": ["@json", "@json.*"]},
                "dynamic_templates": [
                    {"json_text_copies": {"path_match": "@json.*", "mapping": text}},
                    // The encoder wraps every unknown top-level non-object, so only objects
                    // reach dynamic mapping at the top level.
                    {"unknown_top_level_objects": {
                        "match_mapping_type": "object", "path_unmatch": "*.*", "mapping": flavor.free_form()
                    }},
                    {"any_other_string": {"match_mapping_type": "string", "mapping": keyword()}}
                ],
                "properties": properties
            }
        }
    });
    settings(&mut template, replicas, lifecycle);
    template
}

fn settings(template: &mut Value, replicas: Option<u32>, lifecycle: Option<&str>) {
    let settings = &mut template["template"]["settings"];
    if let Some(n) = replicas {
        settings["index.number_of_replicas"] = json!(n);
    }
    if let Some(policy) = lifecycle {
        settings["index.lifecycle.name"] = json!(policy);
    }
}

/// The composable index template for `<prefix>-deadletter-*`. Higher priority than the
/// document template (whose pattern also matches), `dynamic: false`, every field a keyword,
/// text or number: nothing a dead letter holds can be refused.
pub fn deadletter_template(prefix: &str, replicas: Option<u32>, lifecycle: Option<&str>) -> Value {
    let k = keyword();
    let mut template = json!({
        "index_patterns": [format!("{}-*", deadletter_prefix(prefix))],
        "priority": 200,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "cwl-indexer"},
        "template": {
            "settings": {"index.codec": "best_compression"},
            "mappings": {
                "dynamic": false,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "message": {"type": "text", "norms": false},
                    "error": {"properties": {
                        "status": {"type": "integer"},
                        "type": k,
                        "reason": {"type": "text", "norms": false}
                    }},
                    "original": {"properties": {"index": k, "id": k}},
                    "@id": k,
                    "@owner": k,
                    "@log_group": k,
                    "@log_stream": k,
                    // The log event's own timestamp, so a redrive rebuilds the same document.
                    "timestamp": {"type": "date", "format": "epoch_millis"},
                    "attempts": {"type": "integer"}
                }
            }
        }
    });
    settings(&mut template, replicas, lifecycle);
    template
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_follows_the_cluster() {
        let os = |n: &str| json!({"version": {"distribution": "opensearch", "number": n}});
        assert_eq!(Flavor::detect(&os("2.19.6")), Flavor::FlatObject);
        assert_eq!(Flavor::detect(&os("2.7.0")), Flavor::FlatObject);
        assert_eq!(Flavor::detect(&os("3.0.0-alpha1")), Flavor::FlatObject);
        assert_eq!(Flavor::detect(&os("2.6.0")), Flavor::Disabled);
        assert_eq!(Flavor::detect(&os("1.3.20")), Flavor::Disabled);
        let es = |n: &str, f: &str| json!({"version": {"number": n, "build_flavor": f}});
        assert_eq!(Flavor::detect(&es("7.10.2", "oss")), Flavor::Disabled);
        assert_eq!(Flavor::detect(&es("7.10.2", "default")), Flavor::Flattened);
        assert_eq!(Flavor::detect(&es("8.15.0", "default")), Flavor::Flattened);
        assert_eq!(Flavor::detect(&json!({})), Flavor::Disabled);
    }

    #[test]
    fn the_template_maps_every_schema_field() {
        let t = document_template("cwl", Flavor::FlatObject, None, None);
        let props = &t["template"]["mappings"]["properties"];
        assert_eq!(t["index_patterns"][0], "cwl-1*");
        assert_eq!(t["index_patterns"][8], "cwl-9*");
        assert_eq!(props["eventName"]["type"], "keyword");
        assert_eq!(props["sourceIPAddress"]["type"], "keyword");
        assert_eq!(props["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(
            props["source"]["properties"]["geo"]["properties"]["location"]["type"],
            "geo_point"
        );
        assert_eq!(props["signal"]["properties"]["rules"]["type"], "keyword");
        assert_eq!(props["signal"]["properties"]["titles"]["type"], "keyword");
        assert_eq!(
            props["threat"]["properties"]["technique"]["properties"]["id"]["type"],
            "keyword"
        );
        assert_eq!(props["eventTime"]["type"], "date");
        assert_eq!(props["requestParameters"]["type"], "flat_object");
        assert_eq!(props["userIdentity"]["dynamic"], false);
        assert_eq!(
            props["userIdentity"]["properties"]["sessionContext"]["properties"]["sessionIssuer"]["properties"]["arn"]["type"],
            "keyword"
        );
        assert_eq!(props["@unindexed"]["enabled"], false);
        for (name, _) in CLOUDTRAIL_FIELDS {
            assert!(props.get(*name).is_some(), "{name}");
        }
        let sa = &props["aws"]["properties"]["cloudtrail"]["properties"];
        assert_eq!(
            sa["response_elements"]["properties"]["text"]["path"],
            "responseElements"
        );
        assert_eq!(props["@id"]["doc_values"], false);
        assert_eq!(
            sa["requestParameters"]["properties"]["ipPermissions"]["properties"]["items"]["properties"]["fromPort"]["type"],
            "long"
        );
        let d = document_template("cwl", Flavor::Disabled, Some(0), Some("p"));
        let dp = &d["template"]["mappings"]["properties"];
        // An alias cannot point at an unindexed object: there it points at the declared text copy.
        assert_eq!(
            dp["aws"]["properties"]["cloudtrail"]["properties"]["response_elements"]["properties"]["text"]["path"],
            "@json.responseElements"
        );
        assert_eq!(dp["@json"]["properties"]["responseElements"]["type"], "text");
        assert_eq!(
            d["template"]["mappings"]["properties"]["responseElements"],
            json!({"type": "object", "enabled": false})
        );
        assert_eq!(d["template"]["settings"]["index.number_of_replicas"], 0);
        assert_eq!(d["template"]["settings"]["index.lifecycle.name"], "p");
        assert!(t["template"]["settings"].get("index.number_of_replicas").is_none());
    }

    #[test]
    fn the_sort_fields_are_single_valued_fields_with_doc_values_in_every_flavor() {
        for flavor in [Flavor::FlatObject, Flavor::Flattened, Flavor::Disabled] {
            let t = document_template("cwl", flavor, None, None);
            for path in INDEX_SORT {
                let mut field = &t["template"]["mappings"];
                for part in path.split('.') {
                    field = &field["properties"][part];
                }
                assert!(
                    matches!(field["type"].as_str(), Some("keyword" | "date")),
                    "{path} in {flavor:?}: {field}"
                );
                assert_ne!(field["doc_values"], false, "{path} in {flavor:?}");
            }
        }
    }

    /// Whether a composable template's patterns (`*` wildcards only) match an index name.
    fn matches(template: &Value, index: &str) -> bool {
        template["index_patterns"].as_array().unwrap().iter().any(|p| {
            let p = p.as_str().unwrap();
            let (head, tail) = p.split_once('*').unwrap();
            assert!(!tail.contains('*'), "{p}");
            index.starts_with(head) && index.ends_with(tail) && index.len() >= head.len() + tail.len()
        })
    }

    #[test]
    fn each_index_is_matched_by_one_template_only() {
        let doc = document_template("cwl", Flavor::FlatObject, None, None);
        let dead = deadletter_template("cwl", None, None);
        let families = family_templates("cwl", None, None);
        assert_eq!(families.len(), 4);
        let mut all: Vec<(String, &Value)> = vec![("document".into(), &doc), ("deadletter".into(), &dead)];
        all.extend(families.iter().map(|(n, t)| (n.clone(), t)));
        for (index, wanted) in [
            ("cwl-2024.05.06", "document"),
            ("cwl-1970.01.01", "document"),
            ("cwl-9999.12.31", "document"),
            ("cwl-deadletter-2024.05.06", "deadletter"),
            ("cwl-vpcflow-2024.05.06", "cwl-indexer-cwl-vpcflow"),
            ("cwl-guardduty-2024.05.06", "cwl-indexer-cwl-guardduty"),
            ("cwl-resolver-2024.05.06", "cwl-indexer-cwl-resolver"),
            ("cwl-waf-2024.05.06", "cwl-indexer-cwl-waf"),
        ] {
            let hits: Vec<&str> = all
                .iter()
                .filter(|(_, t)| matches(t, index))
                .map(|(n, _)| n.as_str())
                .collect();
            assert_eq!(hits, vec![wanted], "{index}");
        }
    }

    #[test]
    fn the_components_and_the_index_template_hold_the_whole_template_once() {
        let whole = document_template("cwl", Flavor::FlatObject, Some(1), None);
        let c = composed_templates("cwl", Flavor::FlatObject, Some(1), None);
        let names: Vec<&str> = c.components.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(c.index_template["composed_of"], json!(names));
        let mut settings = c.components[0].1["template"]["settings"].clone();
        assert!(settings.get("index.sort.field").is_none());
        for (key, value) in c.components[1].1["template"]["settings"].as_object().unwrap() {
            settings[key] = value.clone();
        }
        assert_eq!(settings, whole["template"]["settings"]);
        assert_eq!(
            whole["template"]["settings"]["index.sort.field"],
            json!(["eventSource", "userIdentity.arn", "eventName", "@timestamp"])
        );
        assert_eq!(
            whole["template"]["settings"]["index.sort.order"],
            json!(["asc", "asc", "asc", "asc"])
        );
        let cloudtrail = &c.components[1].1["template"]["mappings"];
        let signals = &c.components[2].1["template"]["mappings"]["properties"];
        let aliases = &c.index_template["template"]["mappings"]["properties"];
        assert_eq!(
            cloudtrail["dynamic_templates"],
            whole["template"]["mappings"]["dynamic_templates"]
        );
        assert_eq!(cloudtrail["properties"]["eventName"]["type"], "keyword");
        assert_eq!(
            cloudtrail["properties"]["event"]["properties"]["outcome"]["type"],
            "keyword"
        );
        assert!(cloudtrail["properties"]["event"]["properties"].get("action").is_none());
        assert!(
            cloudtrail["properties"].get("cloud").is_none(),
            "aliases only: moved whole"
        );
        assert_eq!(
            cloudtrail["properties"]["aws"]["properties"]["cloudtrail"]["properties"]["requestParameters"]["properties"]
                ["bucketName"]["type"],
            "keyword"
        );
        assert_eq!(signals["source"]["properties"]["ip"]["type"], "ip");
        assert!(signals["source"]["properties"].get("address").is_none());
        assert_eq!(aliases["source"]["properties"]["address"]["path"], "sourceIPAddress");
        assert_eq!(aliases["event"]["properties"]["action"]["path"], "eventName");
        assert_eq!(aliases["timestamp"]["path"], "@timestamp");
        // Every alias of the whole template is in the index template, and nothing else is.
        fn leaves(v: &Value, at: &str, out: &mut Vec<(String, Value)>) {
            for (k, f) in v.as_object().into_iter().flatten() {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                match f.get("properties") {
                    Some(p) => leaves(p, &path, out),
                    None => out.push((path, f.clone())),
                }
            }
        }
        let (mut all, mut split) = (Vec::new(), Vec::new());
        leaves(&whole["template"]["mappings"]["properties"], "", &mut all);
        for part in [&cloudtrail["properties"], signals, aliases] {
            leaves(part, "", &mut split);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        split.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(all, split);
        let mut only_aliases = Vec::new();
        leaves(aliases, "", &mut only_aliases);
        assert!(only_aliases.iter().all(|(_, f)| f["type"] == "alias"));
        assert_eq!(only_aliases.len(), 49);
    }

    #[test]
    fn the_deadletter_template_wins_over_the_document_template() {
        let d = deadletter_template("cwl", None, None);
        assert_eq!(d["index_patterns"], json!(["cwl-deadletter-*"]));
        assert!(d["priority"].as_u64() > document_template("cwl", Flavor::FlatObject, None, None)["priority"].as_u64());
        assert_eq!(d["template"]["mappings"]["dynamic"], false);
    }
}
