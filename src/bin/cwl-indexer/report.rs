//! `report`: what is indexed, read back from the cluster with one refresh and one
//! aggregation query: documents per index, the top eventNames and errorCodes, dead letters.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use cwl_indexer::deliver::OpenSearch;
use reqwest::Method;
use serde_json::{Value, json};

/// Documents per index, the top eventNames and errorCodes, and the dead letters, read back
/// with one refresh and one aggregation query.
pub async fn report(opensearch: &OpenSearch, prefix: &str, top: usize) -> Result<()> {
    let timeout = Duration::from_secs(30);
    let pattern = format!("{prefix}-*");
    let call = |method: Method, path: String, body: Option<Value>| async move {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let (status, answer) = opensearch.request(method, &path, bytes.as_deref(), timeout).await?;
        if !status.is_success() {
            bail!(
                "{path}: HTTP {status}: {}",
                cwl_indexer::deliver::describe_error(&answer)
            );
        }
        Ok(serde_json::from_slice::<Value>(&answer)?)
    };
    call(
        Method::POST,
        format!("{pattern}/_refresh?ignore_unavailable=true&allow_no_indices=true"),
        None,
    )
    .await?;
    let query = json!({
        "size": 0,
        "track_total_hits": true,
        "aggs": {
            "indices": {"terms": {"field": "_index", "size": 10000, "order": {"_key": "asc"}}},
            "eventName": {"terms": {"field": "eventName", "size": top}},
            "errorCode": {"terms": {"field": "errorCode", "size": top}}
        }
    });
    let answer = call(
        Method::POST,
        format!("{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
        Some(query),
    )
    .await?;
    let buckets = |name: &str| {
        answer["aggregations"][name]["buckets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let mut out = std::io::stdout().lock();
    let dead_prefix = format!("{}-", cwl_indexer::index::deadletter_prefix(prefix));
    let (mut docs, mut dead) = (0, 0);
    writeln!(out, "{:<36} {:>10}", "index", "documents")?;
    for b in buckets("indices") {
        let (index, count) = (b["key"].as_str().unwrap_or(""), b["doc_count"].as_u64().unwrap_or(0));
        if index.starts_with(&dead_prefix) {
            dead += count;
        } else {
            docs += count;
        }
        writeln!(out, "{index:<36} {count:>10}")?;
    }
    writeln!(out, "{docs} documents, {dead} dead letters\n")?;
    for name in ["eventName", "errorCode"] {
        writeln!(out, "top {name}")?;
        for b in buckets(name) {
            writeln!(out, "  {:<44} {:>8}", b["key"].as_str().unwrap_or(""), b["doc_count"])?;
        }
    }
    Ok(())
}
