//! Re-drive dead letters once their cause is fixed: each dead letter's raw log event is
//! re-submitted as a CloudWatch Logs payload through the same handler, and the dead letter is
//! deleted only after its document is read back from its daily index.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use flate2::{Compression, write::GzEncoder};
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::BulkAction;
use crate::deliver::{OpenSearch, SinkError, describe_error};
use crate::index::{self, BulkChunk, Target};
use crate::indexer::Indexer;
use crate::ingest::{AwsLogs, CloudWatchLogsEvent};
use crate::pipeline::{Batch, Delivery, Sink};

/// Why a redrive stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// Reading or deleting dead letters failed.
    #[error("{what}: {reason}")]
    Cluster {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Re-submitting failed; the dead letters stay where they are.
    #[error("re-submitting failed: {0}")]
    Submit(String),
    /// Documents have no `_id` to read back by (an OpenSearch Serverless time-series
    /// collection): a dead letter could never be cleared safely.
    #[error(
        "redrive needs documents with _ids to read back before it deletes a dead letter; \
         AOSS_COLLECTION_TYPE=timeseries has none (use --dry-run to count them, re-submit by hand)"
    )]
    NoIds,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RedriveReport {
    /// Dead letters found.
    pub found: usize,
    /// Dead letters by error type, as found.
    pub by_error: BTreeMap<String, usize>,
    /// What re-submitting did (zero on a dry run).
    pub delivery: Delivery,
    /// Dead letters deleted because their document is now in its index.
    pub cleared: usize,
    /// Dead letters kept because their document is still missing.
    pub kept: usize,
}

/// Records the `(event, target)` of every item, then delivers through the real sink.
struct Recording<'a> {
    opensearch: &'a OpenSearch,
    targets: Vec<(usize, Target)>,
}

impl Sink for Recording<'_> {
    type Error = SinkError;

    async fn send(&mut self, chunk: &BulkChunk, batch: &Batch<'_>, delivery: &mut Delivery) -> Result<(), SinkError> {
        for item in chunk.items() {
            self.targets.push((item.event, chunk.target(item)?));
        }
        let mut sink = self.opensearch;
        sink.send(chunk, batch, delivery).await
    }
}

const PAGE: usize = 500;

/// Re-drives every dead letter under `indexer`'s prefix (or only counts them, `dry_run`).
pub async fn redrive(
    opensearch: &OpenSearch,
    indexer: &Indexer,
    dry_run: bool,
    timeout: Duration,
) -> Result<RedriveReport, RedriveError> {
    if !dry_run && indexer.config().bulk_action == BulkAction::IndexWithoutId {
        return Err(RedriveError::NoIds);
    }
    let pattern = format!("{}-*", index::deadletter_prefix(&indexer.config().index_prefix));
    let call = |what: &'static str, method: Method, path: String, body: Value| async move {
        let (status, answer) = opensearch
            .request(method, &path, Some(body.to_string().as_bytes()), timeout)
            .await
            .map_err(|e| RedriveError::Cluster {
                what: what.into(),
                reason: e.to_string(),
            })?;
        if !status.is_success() {
            return Err(RedriveError::Cluster {
                what: what.into(),
                reason: format!("HTTP {status}: {}", describe_error(&answer)),
            });
        }
        serde_json::from_slice::<Value>(&answer).map_err(|e| RedriveError::Cluster {
            what: what.into(),
            reason: e.to_string(),
        })
    };
    let mut report = RedriveReport::default();
    let mut after: Option<Value> = None;
    loop {
        let mut query = json!({
            "size": PAGE,
            "sort": [{"original.index": "asc"}, {"original.id": "asc"}],
            "_source": ["message", "@id", "@owner", "@log_group", "@log_stream", "timestamp", "original", "error.type"]
        });
        if let Some(a) = &after {
            query["search_after"] = a.clone();
        }
        let page = call(
            "read dead letters",
            Method::POST,
            format!("{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
            query,
        )
        .await?;
        let hits = page["hits"]["hits"].as_array().cloned().unwrap_or_default();
        if hits.is_empty() {
            break;
        }
        after = hits.last().map(|h| h["sort"].clone());
        report.found += hits.len();
        for h in &hits {
            let kind = h["_source"]["error"]["type"].as_str().unwrap_or("unknown").to_owned();
            *report.by_error.entry(kind).or_default() += 1;
        }
        if !dry_run {
            resubmit(opensearch, indexer, &hits, &mut report, &call).await?;
        }
        if hits.len() < PAGE {
            break;
        }
    }
    Ok(report)
}

async fn resubmit<F, Fut>(
    opensearch: &OpenSearch,
    indexer: &Indexer,
    hits: &[Value],
    report: &mut RedriveReport,
    call: &F,
) -> Result<(), RedriveError>
where
    F: Fn(&'static str, Method, String, Value) -> Fut,
    Fut: std::future::Future<Output = Result<Value, RedriveError>>,
{
    // One CloudWatch payload per log stream, as CloudWatch itself would have sent them.
    let mut streams: BTreeMap<(String, String, String), Vec<&Value>> = BTreeMap::new();
    for h in hits {
        let s = &h["_source"];
        let key = |f: &str| s[f].as_str().unwrap_or("").to_owned();
        streams
            .entry((key("@owner"), key("@log_group"), key("@log_stream")))
            .or_default()
            .push(h);
    }
    let mut delete = Vec::new();
    let mut recording = Recording {
        opensearch,
        targets: Vec::new(),
    };
    for ((owner, group, stream), letters) in &streams {
        let events: Vec<Value> = letters
            .iter()
            .map(|h| {
                let s = &h["_source"];
                json!({"id": s["@id"], "timestamp": s["timestamp"].as_i64().unwrap_or(0), "message": s["message"]})
            })
            .collect();
        let envelope = json!({
            "messageType": "DATA_MESSAGE", "owner": owner, "logGroup": group, "logStream": stream,
            "subscriptionFilters": ["cwl-indexer-redrive"], "logEvents": events
        });
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let _ = gz.write_all(envelope.to_string().as_bytes());
        let event = CloudWatchLogsEvent {
            awslogs: AwsLogs {
                data: base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap_or_default()),
            },
        };
        recording.targets.clear();
        let (summary, result) = indexer.process(&event, &mut recording, None).await;
        report.delivery += summary.delivery;
        result.map_err(|e| RedriveError::Submit(e.to_string()))?;
        // A dead letter is cleared only once its document is read back from its index.
        let docs: Vec<Value> = recording
            .targets
            .iter()
            .map(|(_, t)| json!({"_index": t.index, "_id": t.id, "_source": false}))
            .collect();
        let found = call("read back", Method::POST, "_mget".into(), json!({"docs": docs})).await?;
        let found = found["docs"].as_array().cloned().unwrap_or_default();
        for ((event, _), doc) in recording.targets.iter().zip(found.iter()) {
            let letter = letters[*event];
            if doc["found"] == true {
                delete.push((letter["_index"].clone(), letter["_id"].clone()));
            } else {
                report.kept += 1;
            }
        }
    }
    if !delete.is_empty() {
        let mut body = String::new();
        for (index, id) in &delete {
            body.push_str(&json!({"delete": {"_index": index, "_id": id}}).to_string());
            body.push('\n');
        }
        let (status, answer) = opensearch
            .request(
                Method::POST,
                "_bulk?refresh=true",
                Some(body.as_bytes()),
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| RedriveError::Cluster {
                what: "delete dead letters".into(),
                reason: e.to_string(),
            })?;
        if !status.is_success() {
            return Err(RedriveError::Cluster {
                what: "delete dead letters".into(),
                reason: describe_error(&answer),
            });
        }
        report.cleared += delete.len();
    }
    Ok(())
}
