//! Self-test of the fault-injecting proxy (tests/common/fault_proxy.rs) against a real OpenSearch node, whose URL
//! is in `OPENSEARCH_URL`; without it, every test says so and passes.

#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fault_proxy::{Fault, FaultProxy, Seen};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The node's URL, or `None` (after saying so) when the suite runs without one.
fn node() -> Option<String> {
    match std::env::var("OPENSEARCH_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_string()),
        _ => {
            println!("OPENSEARCH_URL not set: skipping");
            None
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("HTTP client")
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("response body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// An index of this test run, created empty (one shard, no replica) and deleted on drop, even if the test fails.
struct TestIndex {
    node: String,
    name: String,
}

impl TestIndex {
    async fn create(node: &str, tag: &str) -> TestIndex {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("faultproxy-selftest-{}-{tag}-{n}", std::process::id());
        let settings = json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}});
        let response = client()
            .put(format!("{node}/{name}"))
            .header("content-type", "application/json")
            .body(settings.to_string())
            .send()
            .await
            .expect("create index");
        assert_eq!(response.status(), 200, "create {name}: {}", json_of(response).await);
        TestIndex {
            node: node.to_string(),
            name,
        }
    }

    /// The ids of the documents in the index, sorted, asked of the node directly after a refresh.
    async fn ids(&self) -> Vec<String> {
        let http = client();
        let refresh = http.post(format!("{}/{}/_refresh", self.node, self.name)).send().await;
        assert_eq!(refresh.expect("refresh").status(), 200);
        let query = json!({"size": 10000, "_source": false, "query": {"match_all": {}}});
        let response = http
            .post(format!("{}/{}/_search", self.node, self.name))
            .header("content-type", "application/json")
            .body(query.to_string())
            .send()
            .await
            .expect("search");
        let hits = json_of(response).await;
        let mut ids: Vec<String> = hits["hits"]["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|hit| hit["_id"].as_str().expect("_id").to_string())
            .collect();
        ids.sort();
        ids
    }

    async fn count(&self) -> usize {
        self.ids().await.len()
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside the test's runtime: delete from a thread with a runtime of its own.
        let url = format!("{}/{}", self.node, self.name);
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            runtime.map(|runtime| runtime.block_on(client().delete(url).send()))
        })
        .join();
        if !matches!(deleted, Ok(Ok(Ok(ref response))) if response.status() == 200) {
            eprintln!("could not delete index {}", self.name);
        }
    }
}

fn doc_ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// `create` items for `ids`, the way the indexer writes them.
fn creates(index: &str, ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "{}\n{}\n",
                json!({"create": {"_index": index, "_id": id}}),
                json!({"doc": id})
            )
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Sends a bulk request through `base` and returns the status and the JSON answer (`Null` if not JSON).
async fn bulk(http: &reqwest::Client, base: &str, body: impl Into<reqwest::Body>) -> reqwest::Result<(u16, Value)> {
    bulk_with(http, base, body, &[]).await
}

async fn bulk_with(
    http: &reqwest::Client,
    base: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> reqwest::Result<(u16, Value)> {
    let mut request = http
        .post(format!("{base}/_bulk?refresh=true"))
        .header("content-type", "application/x-ndjson")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// The `status` of each item of a bulk response, in order.
fn item_statuses(response: &Value) -> Vec<u64> {
    response["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {response}"))
        .iter()
        .map(|item| {
            item.as_object().and_then(|o| o.values().next()).expect("item")["status"]
                .as_u64()
                .expect("status")
        })
        .collect()
}

/// The records' (fault, items, status), the parts most checks care about.
fn summary(seen: &[Seen]) -> Vec<(&str, usize, Option<u16>)> {
    seen.iter().map(|s| (s.fault.as_str(), s.items, s.status)).collect()
}

#[tokio::test]
async fn pass_forwards_everything_and_records_it() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "pass").await;
    let http = client();

    let body = creates(&index.name, &doc_ids("d", 5));
    let (status, response) = bulk(&http, &proxy.url(), body.clone()).await.expect("bulk");
    assert_eq!(status, 200);
    assert_eq!(response["errors"], false);
    assert_eq!(item_statuses(&response), [201; 5]);

    // Non-bulk requests are relayed too, with the node's real answer.
    let answer = http
        .get(format!("{}/{}/_count", proxy.url(), index.name))
        .send()
        .await
        .expect("count");
    assert_eq!(answer.status(), 200);
    assert_eq!(json_of(answer).await["count"], 5);
    let missing = http
        .get(format!("{}/no-such-index-{}", proxy.url(), index.name))
        .send()
        .await;
    assert_eq!(missing.expect("get").status(), 404);
    assert_eq!(index.count().await, 5);

    let seen = proxy.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/_bulk?refresh=true")
    );
    assert_eq!(seen[0].body_bytes, body.len());
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[1].path, format!("/{}/_count", index.name));
    assert_eq!(
        summary(&seen),
        [("Pass", 5, Some(200)), ("Pass", 0, Some(200)), ("Pass", 0, Some(404))]
    );
}

#[tokio::test]
async fn respond_answers_without_forwarding() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "respond").await;
    let http = client();
    let busy = r#"{"error":{"type":"cluster_busy"},"status":503}"#;
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    proxy.plan(vec![
        Fault::Respond {
            status: 503,
            content_type: "application/json",
            body: busy.to_string(),
        },
        Fault::Respond {
            status: 502,
            content_type: "text/html",
            body: html.to_string(),
        },
    ]);

    // A non-bulk request in between neither gets nor uses up a planned fault.
    let health = http
        .get(format!("{}/_cluster/health", proxy.url()))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);

    let body = creates(&index.name, &doc_ids("d", 3));
    for (status, content_type, text) in [(503, "application/json", busy), (502, "text/html", html)] {
        let response = http
            .post(format!("{}/{}/_bulk", proxy.url(), index.name))
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await
            .expect("bulk");
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.text().await.expect("body"), text);
    }
    assert_eq!(index.count().await, 0, "a Respond fault must not reach the node");

    // The plan is used up: the next bulk passes, on the same keep-alive connection.
    let (status, response) = bulk(&http, &proxy.url(), body).await.expect("bulk");
    assert_eq!((status, item_statuses(&response)), (200, vec![201; 3]));
    assert_eq!(index.count().await, 3);
    assert_eq!(
        summary(&proxy.requests()),
        [
            ("Pass", 0, Some(200)),
            ("Respond", 3, Some(503)),
            ("Respond", 3, Some(502)),
            ("Pass", 3, Some(200))
        ]
    );
}

#[tokio::test]
async fn reject_items_splices_failures_into_the_real_response() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "reject").await;
    let http = client();
    proxy.plan(vec![Fault::RejectItems {
        positions: vec![3, 1, 99],
        status: 429,
        error_type: "es_rejected_execution_exception",
    }]);

    let ids = doc_ids("d", 5);
    let (status, response) = bulk(&http, &proxy.url(), creates(&index.name, &ids))
        .await
        .expect("bulk");
    assert_eq!(status, 200);
    assert_eq!(response["errors"], true);
    assert_eq!(item_statuses(&response), [201, 429, 201, 429, 201]);
    for (position, item) in response["items"].as_array().expect("items").iter().enumerate() {
        let item = &item["create"];
        assert_eq!(item["_index"], index.name.as_str());
        assert_eq!(item["_id"], ids[position].as_str());
        if position % 2 == 1 {
            assert_eq!(item["error"]["type"], "es_rejected_execution_exception");
        } else {
            assert_eq!(item["result"], "created", "a real item from the node: {item}");
        }
    }
    assert_eq!(index.ids().await, ["d0", "d2", "d4"]);

    // Retrying what was rejected completes the set.
    let retry = creates(&index.name, &[ids[1].clone(), ids[3].clone()]);
    let (status, response) = bulk(&http, &proxy.url(), retry).await.expect("bulk");
    assert_eq!((status, item_statuses(&response)), (200, vec![201, 201]));
    assert_eq!(index.ids().await, ids);
    assert_eq!(
        summary(&proxy.requests()),
        [("RejectItems", 5, Some(200)), ("Pass", 2, Some(200))]
    );
}

#[tokio::test]
async fn reject_items_handles_deletes_and_the_index_in_the_path() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "delete").await;
    let http = client();
    let (status, _) = bulk(&http, &node, creates(&index.name, &doc_ids("d", 3)))
        .await
        .expect("seed");
    assert_eq!(status, 200);

    // Action lines without `_index`, sent to `/<index>/_bulk`; deletes have no source line; no final newline.
    let body = [
        r#"{"delete":{"_id":"d0"}}"#,
        r#"{"create":{"_id":"d3"}}"#,
        r#"{"doc":"d3"}"#,
        r#"{"delete":{"_id":"d1"}}"#,
        r#"{"index":{"_id":"d4"}}"#,
        r#"{"doc":"d4"}"#,
    ]
    .join("\n");
    proxy.plan(vec![Fault::RejectItems {
        positions: vec![0, 3],
        status: 400,
        error_type: "mapper_parsing_exception",
    }]);
    let base = format!("{}/{}", proxy.url(), index.name);
    let (status, response) = bulk(&http, &base, body).await.expect("bulk");
    assert_eq!(status, 200);
    assert_eq!(item_statuses(&response), [400, 201, 200, 400]);
    let items = response["items"].as_array().expect("items");
    assert_eq!(items[0]["delete"]["_index"], index.name.as_str());
    assert_eq!(items[0]["delete"]["error"]["type"], "mapper_parsing_exception");
    assert_eq!(items[2]["delete"]["result"], "deleted");
    assert_eq!(items[3]["index"]["_id"], "d4");
    assert_eq!(index.ids().await, ["d0", "d2", "d3"]);
    assert_eq!(summary(&proxy.requests()), [("RejectItems", 4, Some(200))]);
}

#[tokio::test]
async fn reject_items_in_a_gzipped_body() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "gzip").await;
    let http = client();
    let gzipped = [("content-encoding", "gzip")];

    // A compressed bulk that passes goes to the node as it is: the node reads gzip itself.
    let passed = gzip(creates(&index.name, &doc_ids("p", 2)).as_bytes());
    let (status, response) = bulk_with(&http, &proxy.url(), passed.clone(), &gzipped)
        .await
        .expect("bulk");
    assert_eq!((status, item_statuses(&response)), (200, vec![201, 201]));

    proxy.plan(vec![Fault::RejectItems {
        positions: vec![0, 2],
        status: 429,
        error_type: "es_rejected_execution_exception",
    }]);
    let body = gzip(creates(&index.name, &doc_ids("g", 4)).as_bytes());
    let (status, response) = bulk_with(&http, &proxy.url(), body.clone(), &gzipped)
        .await
        .expect("bulk");
    assert_eq!(status, 200);
    assert_eq!(response["errors"], true);
    assert_eq!(item_statuses(&response), [429, 201, 429, 201]);
    assert_eq!(index.ids().await, ["g1", "g3", "p0", "p1"]);

    let seen = proxy.requests();
    assert_eq!(summary(&seen), [("Pass", 2, Some(200)), ("RejectItems", 4, Some(200))]);
    assert_eq!(
        (seen[0].body_bytes, seen[1].body_bytes),
        (passed.len(), body.len()),
        "sizes as received"
    );
}

#[tokio::test]
async fn rejecting_every_item_does_not_forward() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "rejectall").await;
    let http = client();
    proxy.plan(vec![Fault::RejectItems {
        positions: vec![0, 1, 2],
        status: 429,
        error_type: "es_rejected_execution_exception",
    }]);
    let (status, response) = bulk(&http, &proxy.url(), creates(&index.name, &doc_ids("d", 3)))
        .await
        .expect("bulk");
    assert_eq!(status, 200);
    assert_eq!((&response["took"], &response["errors"]), (&json!(0), &json!(true)));
    assert_eq!(item_statuses(&response), [429; 3]);
    assert_eq!(response["items"][2]["create"]["_id"], "d2");
    assert_eq!(index.count().await, 0);
    assert_eq!(summary(&proxy.requests()), [("RejectItems", 3, Some(200))]);
}

#[tokio::test]
async fn too_large_over_answers_413_above_the_limit_only() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "toolarge").await;
    let http = client();
    let body = creates(&index.name, &doc_ids("d", 5));
    proxy.plan(vec![Fault::TooLargeOver(100), Fault::TooLargeOver(body.len())]);

    let (status, response) = bulk(&http, &proxy.url(), body.clone()).await.expect("bulk");
    assert_eq!(status, 413);
    assert_eq!(response, json!({"Message": "Request size exceeded 100 bytes"}));
    assert_eq!(index.count().await, 0);

    // Exactly at the limit is not over it.
    let (status, response) = bulk(&http, &proxy.url(), body).await.expect("bulk");
    assert_eq!((status, item_statuses(&response)), (200, vec![201; 5]));
    assert_eq!(index.count().await, 5);
    assert_eq!(
        summary(&proxy.requests()),
        [("TooLargeOver", 5, Some(413)), ("TooLargeOver", 5, Some(200))]
    );
}

#[tokio::test]
async fn reset_mid_body_fails_the_call_and_indexes_nothing() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "reset").await;
    let http = client();
    // Large enough that the client is still sending when the proxy hangs up; and a small one that is not.
    let large = creates(&index.name, &doc_ids("d", 5000));
    let small = creates(&index.name, &doc_ids("s", 2));
    proxy.plan(vec![Fault::ResetMidBody, Fault::ResetMidBody]);

    for body in [&large, &small] {
        let result = bulk(&http, &proxy.url(), body.clone()).await;
        assert!(result.is_err(), "expected a failed call, got {result:?}");
    }
    assert_eq!(index.count().await, 0);

    // Retrying on a fresh connection goes through.
    let (status, response) = bulk(&http, &proxy.url(), large.clone()).await.expect("bulk");
    assert_eq!((status, response["errors"].clone()), (200, json!(false)));
    assert_eq!(index.count().await, 5000);

    let seen = proxy.requests();
    assert_eq!(
        summary(&seen),
        [
            ("ResetMidBody", 0, None),
            ("ResetMidBody", 0, None),
            ("Pass", 5000, Some(200))
        ]
    );
    assert!(
        seen[0].body_bytes > 0 && seen[0].body_bytes < large.len(),
        "{:?}",
        seen[0]
    );
}

#[tokio::test]
async fn delay_relays_late_what_the_node_already_indexed() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "delay").await;
    let delay = Duration::from_millis(1500);
    proxy.plan(vec![Fault::Delay(delay)]);

    let started = Instant::now();
    let (url, body) = (proxy.url(), creates(&index.name, &doc_ids("d", 3)));
    let call = tokio::spawn(async move { bulk(&client(), &url, body).await });
    // The documents show up while the client is still waiting for its answer.
    let mut indexed_early = false;
    while !call.is_finished() {
        if index.count().await == 3 {
            indexed_early = !call.is_finished();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, response) = call.await.expect("task").expect("bulk");
    assert!(started.elapsed() >= delay, "answered after {:?}", started.elapsed());
    assert!(
        indexed_early,
        "the node should have the documents before the delayed answer"
    );
    assert_eq!((status, item_statuses(&response)), (200, vec![201; 3]));
    assert_eq!(summary(&proxy.requests()), [("Delay", 3, Some(200))]);
}

#[tokio::test]
async fn drop_response_fails_the_call_but_the_node_has_the_docs() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "drop").await;
    let http = client();
    proxy.plan(vec![Fault::DropResponse]);
    let body = creates(&index.name, &doc_ids("d", 4));

    let result = bulk(&http, &proxy.url(), body.clone()).await;
    assert!(result.is_err(), "expected a failed call, got {result:?}");
    assert_eq!(index.count().await, 4);

    // The retry the client would make: `create` makes the duplicates conflicts instead of second copies.
    let (status, response) = bulk(&http, &proxy.url(), body).await.expect("bulk");
    assert_eq!((status, item_statuses(&response)), (200, vec![409; 4]));
    assert_eq!(index.count().await, 4);
    assert_eq!(
        summary(&proxy.requests()),
        [("DropResponse", 4, None), ("Pass", 4, Some(200))]
    );
}

#[tokio::test]
async fn always_applies_to_every_bulk_until_cleared() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "always").await;
    let http = client();
    let body = creates(&index.name, &doc_ids("d", 2));
    proxy.plan(vec![Fault::TooLargeOver(0)]);
    proxy.always(Some(Fault::Respond {
        status: 503,
        content_type: "application/json",
        body: r#"{"message":"unavailable"}"#.to_string(),
    }));

    for _ in 0..3 {
        let (status, _) = bulk(&http, &proxy.url(), body.clone()).await.expect("bulk");
        assert_eq!(status, 503);
    }
    let root = http.get(proxy.url()).send().await.expect("GET /");
    assert_eq!(root.status(), 200, "non-bulk requests still pass");
    assert_eq!(index.count().await, 0);

    // Cleared: the plan, left untouched meanwhile, resumes; then requests pass.
    proxy.always(None);
    assert_eq!(bulk(&http, &proxy.url(), body.clone()).await.expect("bulk").0, 413);
    assert_eq!(bulk(&http, &proxy.url(), body).await.expect("bulk").0, 200);
    assert_eq!(index.count().await, 2);
    assert_eq!(
        summary(&proxy.requests()),
        [
            ("Respond", 2, Some(503)),
            ("Respond", 2, Some(503)),
            ("Respond", 2, Some(503)),
            ("Pass", 0, Some(200)),
            ("TooLargeOver", 2, Some(413)),
            ("Pass", 2, Some(200))
        ]
    );
}

/// Reads one response from a raw connection: status, headers (names lowercased) and body.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    head_request: bool,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_length) = response.parse(buf).expect("a valid response head") {
            let status = response.code.expect("status");
            let headers: Vec<(String, String)> = response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .map(|(_, value)| value.parse::<usize>().expect("content-length"))
                .expect("every answer has a content-length");
            buf.drain(..head_length);
            let length = if head_request { 0 } else { length };
            while buf.len() < length {
                assert!(stream.read_buf(buf).await.expect("read") > 0, "closed mid-body");
            }
            let body = buf.drain(..length).collect();
            return (status, headers, body);
        }
        assert!(
            stream.read_buf(buf).await.expect("read") > 0,
            "closed before a response"
        );
    }
}

#[tokio::test]
async fn raw_http_chunked_bodies_and_keep_alive() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let index = TestIndex::create(&node, "raw").await;
    proxy.plan(vec![Fault::RejectItems {
        positions: vec![1],
        status: 429,
        error_type: "es_rejected_execution_exception",
    }]);
    let mut stream = tokio::net::TcpStream::connect(proxy.url().trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut buf = Vec::new();

    // A chunked bulk (split mid-line), then a GET, a HEAD and another GET, all on one connection.
    let body = creates(&index.name, &doc_ids("d", 3));
    let (first, second) = body.split_at(body.len() / 3);
    let mut request =
        b"POST /_bulk?refresh=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in [first, second] {
        request.extend_from_slice(format!("{:x};ext=1\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\nX-Trailer: ignored\r\n\r\n");
    stream.write_all(&request).await.expect("write");
    let (status, _, answer) = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(item_statuses(&answer), [201, 429, 201]);

    let get = format!("GET /{}/_count HTTP/1.1\r\nHost: x\r\n\r\n", index.name);
    let head = format!("HEAD /{} HTTP/1.1\r\nHost: x\r\n\r\n", index.name);
    for (request, head_request) in [(&get, false), (&head, true), (&get, false)] {
        stream.write_all(request.as_bytes()).await.expect("write");
        let (status, _, answer) = read_response(&mut stream, &mut buf, head_request).await;
        assert_eq!(status, 200);
        if !head_request {
            assert_eq!(serde_json::from_slice::<Value>(&answer).expect("JSON")["count"], 2);
        }
    }

    // A broken head gets a 400 and the connection closes.
    stream.write_all(b"NOT HTTP\r\n\r\n").await.expect("write");
    let (status, headers, _) = read_response(&mut stream, &mut buf, false).await;
    assert_eq!(status, 400);
    assert!(headers.contains(&("connection".to_string(), "close".to_string())));
    assert_eq!(stream.read_buf(&mut buf).await.expect("read"), 0);

    let seen = proxy.requests();
    assert_eq!(seen.len(), 4, "the broken request is not recorded: {seen:?}");
    assert_eq!(seen[0].body_bytes, body.len(), "de-chunked size");
    assert_eq!(seen[0].items, 3);
    assert_eq!(seen[2].method, "HEAD");
}

/// The proxy serves plain `#[test]`s too, and dropping it closes its port.
#[test]
fn works_from_a_plain_test_and_stops_on_drop() {
    let Some(node) = node() else { return };
    let proxy = FaultProxy::start(&node);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = runtime.block_on(async { client().get(proxy.url()).send().await.map(|r| r.status()) });
    assert_eq!(status.expect("GET /"), 200);

    let address = proxy.url().trim_start_matches("http://").to_string();
    drop(proxy);
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "still listening after drop"
    );
}
