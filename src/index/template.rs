//! The index templates, built from [`crate::schema`]: the document template that makes mapping
//! conflicts impossible, and the dead-letter template whose mapping cannot conflict at all.

use serde_json::{Map, Value, json};

use crate::schema::{CLOUDTRAIL_FIELDS, Shape};

/// The templates' `version`, bumped with their layout. Whether an installed template is
/// current is decided by a fingerprint of its whole body (see [`crate::deliver::setup`]).
pub const TEMPLATE_VERSION: u64 = 1;

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

/// The composable index template for `<prefix>-*`, with `replicas` and an ILM policy
/// (Elasticsearch) if given.
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
        ("@json", json!({"type": "object", "dynamic": true})),
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
    let mut template = json!({
        "index_patterns": [format!("{prefix}-*")],
        "priority": 100,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "cwl-indexer", "flavor": flavor.as_str()},
        "template": {
            "settings": {
                // The schema maps about 80 fields; unknown top-level objects add a few each.
                "index.mapping.total_fields.limit": 2000,
                // Audit logs are written once and kept for months: trade a little CPU for disk.
                "index.codec": "best_compression"
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
        assert_eq!(t["index_patterns"], json!(["cwl-*"]));
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
        let d = document_template("cwl", Flavor::Disabled, Some(0), Some("p"));
        assert_eq!(
            d["template"]["mappings"]["properties"]["responseElements"],
            json!({"type": "object", "enabled": false})
        );
        assert_eq!(d["template"]["settings"]["index.number_of_replicas"], 0);
        assert_eq!(d["template"]["settings"]["index.lifecycle.name"], "p");
        assert!(t["template"]["settings"].get("index.number_of_replicas").is_none());
    }

    #[test]
    fn the_deadletter_template_wins_over_the_document_template() {
        let d = deadletter_template("cwl", None, None);
        assert_eq!(d["index_patterns"], json!(["cwl-deadletter-*"]));
        assert!(d["priority"].as_u64() > document_template("cwl", Flavor::FlatObject, None, None)["priority"].as_u64());
        assert_eq!(d["template"]["mappings"]["dynamic"], false);
    }
}
