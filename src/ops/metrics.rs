//! CloudWatch Embedded Metric Format: one JSON line per invocation on stdout, which
//! CloudWatch turns into metrics without an API call or extra permission.

use serde_json::{Value, json};

use crate::pipeline::Summary;

/// The CloudWatch namespace of the metrics.
pub const NAMESPACE: &str = "cwl-indexer";

/// The EMF document for one invocation, dimensioned by function name.
pub fn emf(summary: &Summary, function_name: &str, timestamp_ms: i64) -> Value {
    let d = &summary.delivery;
    let metrics: [(&str, &str, usize); 11] = [
        ("EventsIn", "Count", summary.events_in),
        ("Indexed", "Count", d.indexed),
        ("Duplicates", "Count", d.duplicates),
        ("Retried", "Count", d.retried),
        ("DeadLettered", "Count", d.dead_lettered),
        ("Failed", "Count", summary.failed),
        ("Signals", "Count", summary.signals),
        ("Requests", "Count", d.requests),
        ("BulkBytes", "Bytes", d.bulk_bytes),
        ("WireBytes", "Bytes", d.wire_bytes),
        (
            "Latency",
            "Milliseconds",
            usize::try_from(summary.millis).unwrap_or(usize::MAX),
        ),
    ];
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>()
            }]
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        doc[name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Delivery;

    #[test]
    fn the_emf_document_follows_the_specification() {
        let summary = Summary {
            events_in: 10,
            failed: 1,
            millis: 42,
            delivery: Delivery {
                indexed: 7,
                duplicates: 1,
                dead_lettered: 1,
                retried: 3,
                requests: 2,
                bulk_bytes: 1000,
                wire_bytes: 150,
                ..Delivery::default()
            },
            ..Summary::default()
        };
        let doc = emf(&summary, "cwl-indexer-fn", 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(directive["Namespace"], "cwl-indexer");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        // Every declared metric has a member of the same name at the top level.
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name}");
        }
        assert_eq!(doc["Indexed"], 7);
        assert_eq!(doc["DeadLettered"], 1);
        assert_eq!(doc["Failed"], 1);
        assert_eq!(doc["Latency"], 42);
        assert_eq!(doc["FunctionName"], "cwl-indexer-fn");
        // One line.
        assert!(!doc.to_string().contains('\n'));
    }
}
