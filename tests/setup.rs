//! `setup` against the real node: templates installed once and then left alone, the
//! retention policy where the cluster has ISM (or a clear "unsupported"), and the Dashboards
//! import request, validated as it arrives (no Dashboards server runs here).

mod common;

use std::time::Duration;

use common::node::{self, Pipeline};
use cwl_indexer::config::SetupConfig;
use cwl_indexer::deliver::cluster::{self as setup, Change, Retention};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn setup_is_idempotent_and_reports_what_it_did() {
    let prefix = node::unique_prefix("setup");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let config = SetupConfig {
        index_replicas: Some(0),
        warm_after_days: Some(30),
        ..SetupConfig::default()
    };
    let timeout = Duration::from_secs(30);
    let first = setup::run(&pipeline.opensearch, &prefix, &config, timeout)
        .await
        .unwrap();
    assert_eq!(first.cluster.flavor, node::flavor().await);
    assert!(first.templates.iter().all(|(_, c)| *c == Change::Created), "{first:?}");
    let second = setup::run(&pipeline.opensearch, &prefix, &config, timeout)
        .await
        .unwrap();
    assert!(
        second.templates.iter().all(|(_, c)| *c == Change::Unchanged),
        "{second:?}"
    );
    // A changed setting replaces what it changes, and only that.
    let changed = SetupConfig {
        index_replicas: Some(1),
        ..config.clone()
    };
    let third = setup::run(&pipeline.opensearch, &prefix, &changed, timeout)
        .await
        .unwrap();
    // The settings component, the dead-letter and the family templates carry the replicas.
    let settings = cwl_indexer::index::component_name(&prefix, "settings");
    let deadletter = cwl_indexer::index::deadletter_template_name(&prefix);
    let families: Vec<String> = cwl_indexer::index::family_templates(&prefix, None, None)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for (name, change) in &third.templates {
        let expected = if *name == settings || *name == deadletter || families.contains(name) {
            Change::Updated
        } else {
            Change::Unchanged
        };
        assert_eq!(*change, expected, "{name}: {third:?}");
    }
    assert_eq!(
        third.templates.len(),
        5 + families.len(),
        "three components, the index template, the dead-letter template, one per family"
    );

    let has_ism = has_ism().await;
    match (&first.retention, has_ism) {
        (
            Retention::Installed {
                kind: "ism",
                policy,
                change: Change::Created,
            },
            true,
        ) => {
            assert_eq!(
                second.retention,
                Retention::Installed {
                    kind: "ism",
                    policy: policy.clone(),
                    change: Change::Unchanged
                }
            );
            let installed = node::call(reqwest::Method::GET, &format!("_plugins/_ism/policies/{policy}"), None).await;
            assert_eq!(
                installed["policy"]["ism_template"][0]["index_patterns"][0],
                format!("{prefix}-*")
            );
            assert_eq!(
                installed["policy"]["states"][1]["actions"][0]["warm_migration"],
                serde_json::json!({})
            );
            node::call(
                reqwest::Method::DELETE,
                &format!("_plugins/_ism/policies/{policy}"),
                None,
            )
            .await;
        }
        (Retention::Unsupported { reason }, false) => {
            // The minimal distribution (and Elasticsearch OSS) has neither ISM nor ILM.
            assert!(reason.contains("no Index State Management"), "{reason}");
        }
        (other, ism) => panic!("retention {other:?} with ISM installed: {ism}"),
    }
}

/// Whether the node has the ISM plugin (the minimal distribution has not).
async fn has_ism() -> bool {
    let plugins = node::call(reqwest::Method::GET, "_cat/plugins?format=json", None).await;
    plugins
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["component"] == "opensearch-index-management")
}

/// The saved objects `setup` imports, as shipped.
fn shipped() -> String {
    std::fs::read_to_string(common::fixtures().join("../dashboards/cloudtrail-audit.ndjson")).unwrap()
}

/// Accepts one HTTP request on loopback, answers like Dashboards' import API, and returns
/// the request as received (head and body).
async fn capture_one(listener: tokio::net::TcpListener) -> (String, Vec<u8>) {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    // Dashboards counts the objects it imported: one a line of the file.
    let answer = format!(
        r#"{{"success":true,"successCount":{},"successResults":[]}}"#,
        shipped().lines().count()
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    socket.write_all(response.as_bytes()).await.unwrap();
    (head, buf[head_end..].to_vec())
}

#[tokio::test]
async fn the_dashboards_import_request_is_what_the_import_api_takes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!(
        "http://127.0.0.1:{}/_dashboards",
        listener.local_addr().unwrap().port()
    ))
    .unwrap();
    let capture = tokio::spawn(capture_one(listener));
    let prefix = "audit";
    let pipeline = Pipeline::new(node::config(prefix, "http://127.0.0.1:9"), None);
    let imported = setup::import_dashboards(&pipeline.opensearch, &base, prefix, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(imported, shipped().lines().count() as u64);
    let (head, body) = capture.await.unwrap();

    let mut lines = head.lines();
    assert_eq!(
        lines.next().unwrap(),
        "POST /_dashboards/api/saved_objects/_import?overwrite=true HTTP/1.1"
    );
    let headers: Vec<String> = lines.map(str::to_ascii_lowercase).collect();
    assert!(headers.contains(&"osd-xsrf: true".to_owned()), "{head}");
    let content_type = headers.iter().find_map(|h| h.strip_prefix("content-type: ")).unwrap();
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();

    // One part, the file field, holding the NDJSON with the prefix's index pattern.
    let body = String::from_utf8(body).unwrap();
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 3, "{body:.300}");
    assert_eq!(parts[2], "--\r\n");
    let (part_head, content) = parts[1].split_once("\r\n\r\n").unwrap();
    assert!(part_head.contains(r#"Content-Disposition: form-data; name="file"; filename="cloudtrail-audit.ndjson""#));
    let content = content.strip_suffix("\r\n").unwrap();
    let shipped = shipped();
    assert_eq!(content, cwl_indexer::deliver::cluster::saved_objects("audit"));
    assert!(content.starts_with(&shipped.replace(
        &format!(
            r#""title":"{}""#,
            cwl_indexer::deliver::cluster::cloudtrail_pattern("cwl")
        ),
        &format!(
            r#""title":"{}""#,
            cwl_indexer::deliver::cluster::cloudtrail_pattern("audit")
        )
    )));
    let objects: Vec<Value> = content.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let logtypes = std::fs::read_to_string(common::fixtures().join("../dashboards/logtypes.ndjson")).unwrap();
    assert_eq!(objects.len(), shipped.lines().count() + logtypes.lines().count());
    assert!(
        objects
            .iter()
            .any(|o| o["type"] == "index-pattern" && o["attributes"]["title"] == "audit-vpcflow-*")
    );
    assert!(
        objects
            .iter()
            .any(|o| o["type"] == "dashboard" && o["attributes"]["title"] == "CloudTrail audit")
    );
}

#[tokio::test]
async fn an_older_template_is_upgraded_in_place_keeping_components_we_did_not_write() {
    let prefix = node::unique_prefix("upgrade");
    let _cleanup = node::Cleanup(prefix.clone());
    let foreign = format!("{prefix}-security-analytics-aliases");
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let config = SetupConfig {
        index_replicas: Some(0),
        retention_days: 0,
        ..SetupConfig::default()
    };
    let timeout = Duration::from_secs(30);
    let name = cwl_indexer::index::template_name(&prefix);
    // The previous layout: one index template, no components, an older fingerprint; an index
    // made from it.
    let mut old = cwl_indexer::index::document_template(&prefix, node::flavor().await, Some(0), None);
    old["version"] = serde_json::json!(1);
    old["_meta"]["fingerprint"] = serde_json::json!("0000000000000000");
    old["template"]["mappings"]["properties"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !["aws", "event", "cloud", "user_agent", "user", "timestamp"].contains(&k.as_str()));
    old["template"]["mappings"]["properties"]["source"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("address");
    node::call(reqwest::Method::PUT, &format!("_index_template/{name}"), Some(old)).await;
    node::call(reqwest::Method::PUT, &format!("{prefix}-2024.01.01"), None).await;
    // Another tool's component, added to our template as Security Analytics does.
    node::call(
        reqwest::Method::PUT,
        &format!("_component_template/{foreign}"),
        Some(serde_json::json!({"template": {"mappings": {"properties": {"sa_marker": {"type": "keyword"}}}}})),
    )
    .await;
    let mut installed = node::call(reqwest::Method::GET, &format!("_index_template/{name}"), None).await["index_templates"][0]
        ["index_template"]
        .clone();
    installed["composed_of"] = serde_json::json!([foreign]);
    node::call(
        reqwest::Method::PUT,
        &format!("_index_template/{name}"),
        Some(installed),
    )
    .await;

    let report = setup::run(&pipeline.opensearch, &prefix, &config, timeout)
        .await
        .unwrap();
    let change = report.templates.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(change, Change::Updated, "{report:?}");
    let now = node::call(reqwest::Method::GET, &format!("_index_template/{name}"), None).await;
    let composed = now["index_templates"][0]["index_template"]["composed_of"].clone();
    let mut expected: Vec<String> = cwl_indexer::index::COMPONENTS
        .iter()
        .map(|p| cwl_indexer::index::component_name(&prefix, p))
        .collect();
    expected.push(foreign.clone());
    assert_eq!(
        composed,
        serde_json::json!(expected),
        "ours, then the component we did not write"
    );
    // Run again: nothing to do, and the foreign component stays.
    let again = setup::run(&pipeline.opensearch, &prefix, &config, timeout)
        .await
        .unwrap();
    assert!(
        again.templates.iter().all(|(_, c)| *c == Change::Unchanged),
        "{again:?}"
    );

    // The existing index keeps its mapping; the next one gets the new fields and the foreign one.
    let mapping = |index: String| async move {
        node::call(reqwest::Method::GET, &format!("{index}/_mapping"), None).await[&index]["mappings"]["properties"]
            .clone()
    };
    let old_props = mapping(format!("{prefix}-2024.01.01")).await;
    assert!(old_props.get("aws").is_none() && old_props.get("event").is_none());
    node::call(reqwest::Method::PUT, &format!("{prefix}-2024.01.02"), None).await;
    let new_props = mapping(format!("{prefix}-2024.01.02")).await;
    assert_eq!(new_props["event"]["properties"]["action"]["type"], "alias");
    assert_eq!(new_props["event"]["properties"]["outcome"]["type"], "keyword");
    assert_eq!(new_props["sa_marker"]["type"], "keyword");
    assert_eq!(new_props["source"]["properties"]["ip"]["type"], "ip");
    assert_eq!(new_props["source"]["properties"]["address"]["type"], "alias");
    // Our cleanup cannot delete a component another template uses: drop it first.
    node::call(reqwest::Method::DELETE, &format!("_index_template/{name}"), None).await;
    node::call(reqwest::Method::DELETE, &format!("_component_template/{foreign}"), None).await;
}

#[tokio::test]
async fn a_family_retention_is_reported_per_family_and_installed_where_the_cluster_has_ism() {
    let prefix = node::unique_prefix("famret");
    let _cleanup = node::Cleanup(prefix.clone());
    let pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    let config = SetupConfig {
        index_replicas: Some(0),
        // Nothing else deleted: the families' own settings alone make setup look for ISM.
        retention_days: 0,
        family_retention_days: vec![("vpcflow", 14), ("guardduty", 365), ("waf", 0)],
        ..SetupConfig::default()
    };
    let report = setup::run(&pipeline.opensearch, &prefix, &config, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(report.retention, Retention::Disabled);
    let families: Vec<&str> = report.family_retention.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(families, ["vpcflow", "guardduty", "waf"], "{report:?}");
    // `0` with nothing else deleting: nothing to install.
    assert_eq!(report.family_retention[2].1, Retention::Disabled);
    let has_ism = has_ism().await;
    for ((family, retention), days) in report.family_retention[..2].iter().zip([14, 365]) {
        match (retention, has_ism) {
            (
                Retention::Installed {
                    kind: "ism", policy, ..
                },
                true,
            ) => {
                assert_eq!(*policy, setup::family_policy_id(&prefix, family));
                let installed =
                    node::call(reqwest::Method::GET, &format!("_plugins/_ism/policies/{policy}"), None).await;
                assert_eq!(
                    installed["policy"]["ism_template"][0]["index_patterns"][0],
                    format!("{prefix}-{family}-*")
                );
                assert_eq!(
                    installed["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"],
                    format!("{days}d")
                );
                node::call(
                    reqwest::Method::DELETE,
                    &format!("_plugins/_ism/policies/{policy}"),
                    None,
                )
                .await;
            }
            (Retention::Unsupported { reason }, false) => {
                assert!(reason.contains("no Index State Management"), "{family}: {reason}");
            }
            (other, ism) => panic!("{family}: retention {other:?} with ISM installed: {ism}"),
        }
    }
}
