//! The real OpenSearch node the integration tests talk to (`OPENSEARCH_URL`, set by
//! `scripts/with-opensearch.sh`), and helpers to index through the library and query back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::config::{AuthConfig, SetupConfig, SinkConfig};
use cwl_indexer::deliver::Auth;
use cwl_indexer::deliver::OpenSearch;
use cwl_indexer::deliver::RetryPolicy;
use cwl_indexer::handler::HandlerError;
use cwl_indexer::{Config, Indexer, Summary};
use serde_json::{Value, json};

/// The node's URL. Integration tests need a real node: run them through `make test` (or
/// `scripts/with-opensearch.sh cargo test`), which starts one and stops it afterwards.
pub fn url() -> String {
    std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| {
        panic!("OPENSEARCH_URL is not set: run `make test`, or `scripts/with-opensearch.sh cargo test`")
    })
}

/// A fast retry policy: tests exercise retries without waiting seconds for each.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_attempts: 6,
        deadline_margin: Duration::from_millis(500),
        request_timeout: Duration::from_secs(30),
    }
}

/// The configuration for indexing under `prefix` into `endpoint` without auth.
pub fn config(prefix: &str, endpoint: &str) -> Config {
    Config {
        index_prefix: prefix.to_owned(),
        sink: Some(SinkConfig {
            endpoint: format!("{}/", endpoint.trim_end_matches('/')).parse().unwrap(),
            auth: AuthConfig::None,
            gzip: true,
            retry: fast_retry(),
            setup: SetupConfig {
                // One node: replicas would stay unassigned yet count against its shard limit.
                index_replicas: Some(0),
                ..SetupConfig::default()
            },
        }),
        ..Config::default()
    }
}

/// An indexer and its sink, as the Lambda function builds them.
pub struct Pipeline {
    pub indexer: Indexer,
    pub opensearch: OpenSearch,
}

impl Pipeline {
    /// A pipeline for `config`, unauthenticated unless `auth` is given.
    pub fn new(config: Config, auth: Option<Auth>) -> Self {
        let sink = config.sink.clone().expect("a sink config");
        let auth = auth.unwrap_or_else(|| Auth::new(&AuthConfig::None, None).unwrap());
        let opensearch = OpenSearch::new(&sink, auth, &config).unwrap();
        Self {
            indexer: Indexer::new(config),
            opensearch,
        }
    }

    /// Runs one Lambda event through the handler, as an invocation would.
    pub async fn invoke(
        &self,
        event: &CloudWatchLogsEvent,
        deadline: Option<std::time::Instant>,
    ) -> (Summary, Result<(), HandlerError>) {
        let mut sink = &self.opensearch;
        self.indexer.process(event, &mut sink, deadline).await
    }
}

/// A unique index prefix for one test, so tests never see each other's documents.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("it-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Creates `index` (no replicas) with writes blocked: a real refusal of every document sent
/// to it (`cluster_block_exception`).
pub async fn create_write_blocked(index: &str) {
    call(
        reqwest::Method::PUT,
        index,
        Some(json!({"settings": {"index.number_of_replicas": 0, "index.blocks.write": true}})),
    )
    .await;
}

/// Sends a JSON request straight to the node (not through the code under test).
pub async fn call(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.request(method, format!("{}/{}", url().trim_end_matches('/'), path));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    assert!(
        status.is_success() || status.as_u16() == 404,
        "{path}: {status} {value}"
    );
    value
}

/// Refreshes `<prefix>-*` so that what was indexed is searchable (instead of sleeping).
pub async fn refresh(prefix: &str) {
    call(
        reqwest::Method::POST,
        &format!("{prefix}-*/_refresh?ignore_unavailable=true&allow_no_indices=true"),
        None,
    )
    .await;
}

/// Documents in `pattern` matching a query-string query (`*` for all).
pub async fn count(pattern: &str, query: &str) -> u64 {
    let body = json!({"query": {"query_string": {"query": query}}});
    let answer = call(
        reqwest::Method::POST,
        &format!("{pattern}/_count?ignore_unavailable=true&allow_no_indices=true"),
        Some(body),
    )
    .await;
    answer["count"].as_u64().unwrap_or_else(|| panic!("{answer}"))
}

/// Searches `pattern` with a full request body.
pub async fn search(pattern: &str, body: Value) -> Value {
    call(
        reqwest::Method::POST,
        &format!("{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
        Some(body),
    )
    .await
}

/// Every (index, `_id`) under `prefix`'s daily indices (dead letters left out), sorted, repeats
/// kept: what landed, to compare with what must land exactly once.
pub async fn landed(prefix: &str) -> Vec<(String, String)> {
    refresh(prefix).await;
    let hits = search(
        &format!("{prefix}-*"),
        json!({"size": 10000, "_source": false, "query": {"match_all": {}}}),
    )
    .await;
    let mut ids: Vec<(String, String)> = hits["hits"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{hits}"))
        .iter()
        .filter(|h| !h["_index"].as_str().unwrap().contains("-deadletter-"))
        .map(|h| {
            (
                h["_index"].as_str().unwrap().to_owned(),
                h["_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ids.sort();
    ids
}

/// Deletes everything a test created under `prefix`: indices and the templates.
pub async fn cleanup(prefix: &str) {
    call(
        reqwest::Method::DELETE,
        &format!("{prefix}-*?ignore_unavailable=true&allow_no_indices=true&expand_wildcards=all"),
        None,
    )
    .await;
    let families = cwl_indexer::index::family_templates(prefix, None, None);
    for name in [
        cwl_indexer::index::template_name(prefix),
        cwl_indexer::index::deadletter_template_name(prefix),
    ]
    .into_iter()
    .chain(families.into_iter().map(|(name, _)| name))
    {
        call(reqwest::Method::DELETE, &format!("_index_template/{name}"), None).await;
    }
    // After the index template that composes them: a component in use cannot be deleted.
    for part in cwl_indexer::index::COMPONENTS {
        let name = cwl_indexer::index::component_name(prefix, part);
        call(reqwest::Method::DELETE, &format!("_component_template/{name}"), None).await;
    }
}

/// Deletes a test's indices and templates when dropped, also when the test fails, so a
/// failing test does not leave shards behind on a reused node.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        // Drop cannot await, and may run inside the test's runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(cleanup(&prefix));
        })
        .join();
    }
}

/// How the node maps free-form subtrees, from what it says it is (`GET /`).
pub async fn flavor() -> cwl_indexer::index::Flavor {
    cwl_indexer::index::Flavor::detect(&call(reqwest::Method::GET, "", None).await)
}
