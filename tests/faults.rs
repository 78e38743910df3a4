//! The retry and dead-letter paths against the real node behind the fault-injecting proxy:
//! whatever the proxy does, every log event ends up in its daily index exactly once, or in
//! the dead-letter index, or the invocation fails (and its redelivery then lands it).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy};
use common::node::{self, Pipeline};
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::Summary;
use cwl_indexer::handler::HandlerError;
use serde_json::{Value, json};

fn fixture(name: &str) -> CloudWatchLogsEvent {
    serde_json::from_slice(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap()
}

/// Every (index, _id) in the daily indices, and every original (index, id) in the dead letters.
async fn landed(prefix: &str) -> (Vec<(String, String)>, Vec<(String, String)>) {
    node::refresh(prefix).await;
    let all = |pattern: String, dead: bool| async move {
        let hits = node::search(&pattern, json!({"size": 10000, "query": {"match_all": {}}})).await;
        hits["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| dead || !h["_index"].as_str().unwrap().contains("-deadletter-"))
            .map(|h| {
                if dead {
                    let o = &h["_source"]["original"];
                    (
                        o["index"].as_str().unwrap().to_owned(),
                        o["id"].as_str().unwrap().to_owned(),
                    )
                } else {
                    (
                        h["_index"].as_str().unwrap().to_owned(),
                        h["_id"].as_str().unwrap().to_owned(),
                    )
                }
            })
            .collect::<Vec<_>>()
    };
    (
        all(format!("{prefix}-*"), false).await,
        all(format!("{prefix}-deadletter-*"), true).await,
    )
}

/// The invariant: each expected document exactly once, in its index or in the dead letters.
async fn assert_exactly_once(prefix: &str, expected: &BTreeSet<(String, String)>) -> (usize, usize) {
    let (docs, dead) = landed(prefix).await;
    common::assert_each_once(docs.iter().chain(dead.iter()).cloned().collect(), expected);
    (docs.len(), dead.len())
}

struct Setup {
    prefix: String,
    _cleanup: node::Cleanup,
    proxy: FaultProxy,
    pipeline: Pipeline,
}

fn setup(name: &str, gzip: bool) -> Setup {
    let prefix = node::unique_prefix(name);
    let proxy = FaultProxy::start(&node::url());
    let mut config = node::config(&prefix, &proxy.url());
    config.sink.as_mut().unwrap().gzip = gzip;
    Setup {
        _cleanup: node::Cleanup(prefix.clone()),
        pipeline: Pipeline::new(config, None),
        prefix,
        proxy,
    }
}

fn ok(result: (Summary, Result<(), HandlerError>)) -> Summary {
    let (summary, result) = result;
    result.unwrap_or_else(|e| panic!("{e}: {summary:?}"));
    summary
}

#[tokio::test]
async fn items_rejected_with_429_are_retried_and_land_once() {
    let s = setup("item429", true);
    let event = fixture("access-denied.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    s.proxy.plan(vec![
        Fault::RejectItems {
            positions: vec![0, 2, 5],
            status: 429,
            error_type: "es_rejected_execution_exception",
        },
        Fault::RejectItems {
            positions: vec![1],
            status: 503,
            error_type: "unavailable_shards_exception",
        },
    ]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    measured("429 and 503 on some items of a 200", &summary);
    assert_eq!(summary.delivery.retried, 4, "{summary:?}");
    assert_eq!(summary.delivery.requests, 3);
    // The retries re-sent only the rejected items.
    let bulk: Vec<_> = s
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("_bulk"))
        .collect();
    assert_eq!(bulk.iter().map(|r| r.items).collect::<Vec<_>>(), vec![37, 3, 1]);
    assert_eq!(assert_exactly_once(&s.prefix, &expected).await.1, 0);
}

#[tokio::test]
async fn whole_request_throttling_and_unavailability_are_retried() {
    let s = setup("req503", true);
    let event = fixture("root-activity.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    let es_429 = r#"{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"},"status":429}"#;
    s.proxy.plan(vec![
        Fault::Respond {
            status: 503,
            content_type: "application/json",
            body: r#"{"message":"Service Unavailable"}"#.into(),
        },
        Fault::Respond {
            status: 429,
            content_type: "application/json",
            body: es_429.into(),
        },
        Fault::Respond {
            status: 502,
            content_type: "text/html",
            body: "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
        },
        Fault::ResetMidBody,
    ]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    measured(
        "503, 429 (es_rejected_execution_exception), 502 HTML, reset mid-body",
        &summary,
    );
    assert_eq!(summary.delivery.requests, 5, "{summary:?}");
    assert_eq!(summary.delivery.indexed, expected.len());
    assert_exactly_once(&s.prefix, &expected).await;
}

#[tokio::test]
async fn a_lost_response_is_retried_without_duplicates() {
    let s = setup("lost", true);
    let event = fixture("assume-role.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    s.proxy.plan(vec![Fault::DropResponse]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    measured("response lost after indexing", &summary);
    // The node indexed everything the first time; the retry finds every _id taken.
    assert_eq!(summary.delivery.indexed, 0, "{summary:?}");
    assert_eq!(summary.delivery.duplicates, summary.events_in);
    assert_exactly_once(&s.prefix, &expected).await;
}

#[tokio::test]
async fn a_413_splits_the_body_until_it_fits() {
    let s = setup("split", false);
    let event = fixture("vpc-endpoint.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    // The 100-item body is about 200 KB: the proxy refuses anything over 60 KB.
    s.proxy.always(Some(Fault::TooLargeOver(60_000)));
    let summary = ok(s.pipeline.invoke(&event, None).await);
    s.proxy.always(None);
    measured("413 until bodies are under 60 KB", &summary);
    assert!(summary.delivery.splits >= 3, "{summary:?}");
    assert_eq!(summary.delivery.indexed, expected.len());
    assert!(s.proxy.requests().iter().filter(|r| r.status == Some(413)).count() >= 3);
    assert_eq!(assert_exactly_once(&s.prefix, &expected).await.1, 0);
}

#[tokio::test]
async fn a_single_document_too_large_for_the_cluster_is_dead_lettered() {
    let s = setup("toolarge", false);
    let event = fixture("runinstances-large.json");
    let big = fixture_message("runinstances-large.json", 1);
    // Padded RunInstances records of 33 KB and 256 KB: the cluster "accepts" 100 KB.
    s.proxy.plan(vec![
        Fault::TooLargeOver(100_000),
        Fault::TooLargeOver(100_000),
        Fault::TooLargeOver(100_000),
    ]);
    let (summary, result) = s.pipeline.invoke(&event, None).await;
    result.unwrap();
    measured("413 for a single document", &summary);
    assert_eq!(summary.delivery.splits, 1);
    assert_eq!(summary.delivery.dead_lettered, 1, "{summary:?}");
    node::refresh(&s.prefix).await;
    let dead = node::search(&format!("{}-deadletter-*", s.prefix), json!({"size": 10})).await;
    let letter = &dead["hits"]["hits"][0]["_source"];
    assert_eq!(letter["error"]["status"], 413);
    assert_eq!(letter["message"], big, "the raw log event, verbatim");
    assert_eq!(letter["@log_stream"], "111122223333_CloudTrail_us-west-2");
}

fn fixture_message(name: &str, n: usize) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(["decode", &common::fixtures().join(name).display().to_string()])
        .output()
        .unwrap();
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    envelope["logEvents"][n]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_mapping_rejection_goes_to_the_dead_letter_index_once() {
    let s = setup("mapping", true);
    let event = fixture("console-login-failure.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    let reject = || Fault::RejectItems {
        positions: vec![3],
        status: 400,
        error_type: "mapper_parsing_exception",
    };
    s.proxy.plan(vec![reject()]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    measured("mapping rejection on one item", &summary);
    assert_eq!(summary.delivery.dead_lettered, 1, "{summary:?}");
    assert_eq!(assert_exactly_once(&s.prefix, &expected).await.1, 1);
    // Redelivered and rejected again: still one dead letter, nothing duplicated.
    s.proxy.plan(vec![reject()]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!(summary.delivery.dead_lettered, 1);
    assert_eq!(summary.delivery.duplicates, summary.events_in - 1);
    assert_eq!(assert_exactly_once(&s.prefix, &expected).await.1, 1);
}

#[tokio::test]
async fn a_failing_dead_letter_write_fails_the_invocation_and_the_retry_lands_it() {
    let s = setup("dlqfail", true);
    let event = fixture("console-login-success.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    s.proxy.plan(vec![
        Fault::RejectItems {
            positions: vec![0],
            status: 400,
            error_type: "mapper_parsing_exception",
        },
        Fault::Respond {
            status: 500,
            content_type: "application/json",
            body: r#"{"error":"boom"}"#.into(),
        },
    ]);
    let (summary, result) = s.pipeline.invoke(&event, None).await;
    measured("dead-letter write fails too", &summary);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("dead-letter write failed"), "{err}");
    assert_eq!(summary.failed, 1, "{summary:?}");
    // Lambda retries the invocation: this time nothing is injected.
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!((summary.delivery.indexed, summary.delivery.dead_lettered), (1, 0));
    assert_eq!(assert_exactly_once(&s.prefix, &expected).await.1, 0);
}

#[tokio::test]
async fn a_read_only_index_sends_its_documents_to_the_dead_letter_index() {
    let s = setup("readonly", true);
    let event = fixture("console-login-failure.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    // A real block on a real index: every daily index of this fixture exists, write-blocked.
    let indices: BTreeSet<&str> = expected.iter().map(|(i, _)| i.as_str()).collect();
    for index in &indices {
        node::create_write_blocked(index).await;
    }
    let summary = ok(s.pipeline.invoke(&event, None).await);
    measured("read-only index (index.blocks.write)", &summary);
    assert_eq!(summary.delivery.dead_lettered, summary.events_in, "{summary:?}");
    node::refresh(&s.prefix).await;
    let dead = node::search(&format!("{}-deadletter-*", s.prefix), json!({"size": 1})).await;
    assert_eq!(
        dead["hits"]["hits"][0]["_source"]["error"]["type"],
        "cluster_block_exception"
    );
    assert_exactly_once(&s.prefix, &expected).await;
}

#[tokio::test]
async fn retries_stop_in_time_for_the_deadline() {
    let s = setup("deadline", true);
    s.proxy.always(Some(Fault::Respond {
        status: 503,
        content_type: "text/plain",
        body: "unavailable".into(),
    }));
    let mut config = node::config(&s.prefix, &s.proxy.url());
    let retry = &mut config.sink.as_mut().unwrap().retry;
    retry.max_attempts = 1000;
    retry.base = Duration::from_millis(100);
    retry.max_backoff = Duration::from_millis(400);
    let pipeline = Pipeline::new(config, None);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3);
    let (summary, result) = pipeline.invoke(&fixture("insights.json"), Some(deadline)).await;
    measured("503 on every request until the deadline", &summary);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("deadline"), "{err}");
    // Returned before the deadline, keeping (most of) the 500 ms margin.
    assert!(
        Instant::now() < deadline - Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(summary.delivery.requests >= 3, "{summary:?}");
    assert_eq!(summary.failed, summary.events_in);
}

#[tokio::test]
async fn an_unreachable_cluster_fails_the_invocation() {
    // A port nothing listens on: connection refused on every attempt.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let prefix = node::unique_prefix("refused");
    let pipeline = Pipeline::new(node::config(&prefix, &format!("http://127.0.0.1:{port}")), None);
    let (summary, result) = pipeline.invoke(&fixture("insights.json"), None).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("after 6 attempts") && err.to_lowercase().contains("connect"),
        "{err}"
    );
    assert_eq!(summary.delivery.requests, 6);
}

/// One line per fault for the README's table: requests, item retries and time spent.
fn measured(fault: &str, summary: &Summary) {
    eprintln!(
        "fault-matrix | {fault} | requests {} | item retries {} | splits {} | dead-lettered {} | {} ms",
        summary.delivery.requests,
        summary.delivery.retried,
        summary.delivery.splits,
        summary.delivery.dead_lettered,
        summary.millis
    );
}

#[tokio::test]
async fn a_500_fails_the_invocation_and_the_redelivery_lands_it() {
    let s = setup("err500", true);
    let event = fixture("root-activity.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    s.proxy.plan(vec![Fault::Respond {
        status: 500,
        content_type: "application/json",
        body: r#"{"error":{"type":"null_pointer_exception","reason":"boom"},"status":500}"#.into(),
    }]);
    let (summary, result) = s.pipeline.invoke(&event, None).await;
    measured("500 on the whole request", &summary);
    assert!(result.unwrap_err().to_string().contains("HTTP 500"));
    assert_eq!(summary.failed, summary.events_in);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!(summary.delivery.indexed, expected.len());
    assert_exactly_once(&s.prefix, &expected).await;
}

#[tokio::test]
async fn a_response_stalling_past_the_deadline_returns_in_time_and_redelivery_duplicates_nothing() {
    let s = setup("stall", true);
    let event = fixture("console-login-success.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    // The node indexes the documents, but its answer comes after the deadline.
    s.proxy.plan(vec![Fault::Delay(Duration::from_secs(10))]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3);
    let (summary, result) = s.pipeline.invoke(&event, Some(deadline)).await;
    measured("response stalls past the deadline", &summary);
    assert!(result.unwrap_err().to_string().contains("deadline"));
    assert!(
        Instant::now() < deadline,
        "returned {:?} after start",
        started.elapsed()
    );
    // Lambda retries the invocation: whatever the node had indexed is found there, the rest
    // is indexed now, and nothing is there twice.
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!(
        summary.delivery.indexed + summary.delivery.duplicates,
        summary.events_in
    );
    assert_exactly_once(&s.prefix, &expected).await;
}

#[tokio::test]
async fn a_missing_primary_fails_the_invocation_until_the_shard_is_back() {
    let s = setup("red", true);
    let event = fixture("insights.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    let indices: BTreeSet<&str> = expected.iter().map(|(i, _)| i.as_str()).collect();
    // Real red indices: primaries that cannot be allocated anywhere.
    for index in &indices {
        node::call(
            reqwest::Method::PUT,
            &format!("{index}?wait_for_active_shards=0"),
            Some(json!({"settings": {"index.number_of_replicas": 0, "index.routing.allocation.require._name": "nowhere"}})),
        )
        .await;
    }
    let health = node::call(
        reqwest::Method::GET,
        &format!("_cluster/health/{}", indices.iter().next().unwrap()),
        None,
    )
    .await;
    assert_eq!(health["status"], "red");
    let deadline = Instant::now() + Duration::from_secs(4);
    let (summary, result) = s.pipeline.invoke(&event, Some(deadline)).await;
    measured("red index (primary not allocated)", &summary);
    assert!(result.is_err(), "{summary:?}");
    assert!(Instant::now() < deadline);
    for index in &indices {
        node::call(
            reqwest::Method::PUT,
            &format!("{index}/_settings"),
            Some(json!({"index.routing.allocation.require._name": null})),
        )
        .await;
        node::call(
            reqwest::Method::GET,
            &format!("_cluster/health/{index}?wait_for_status=green&timeout=30s"),
            None,
        )
        .await;
    }
    ok(s.pipeline.invoke(&event, None).await);
    assert_exactly_once(&s.prefix, &expected).await;
}

#[tokio::test]
async fn a_dns_failure_fails_the_invocation() {
    let prefix = node::unique_prefix("dns");
    // `.invalid` never resolves (RFC 6761).
    let pipeline = Pipeline::new(node::config(&prefix, "http://cwl-indexer-test.invalid:9200"), None);
    let (summary, result) = pipeline.invoke(&fixture("insights.json"), None).await;
    measured("DNS failure", &summary);
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("dns") || err.contains("resolve") || err.contains("lookup"),
        "{err}"
    );
    assert_eq!(summary.failed, summary.events_in);
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_fails_closed() {
    let dir = std::env::temp_dir().join(format!("cwl-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    // A self-signed HTTPS server on loopback that records any request it manages to read.
    let log = dir.join("requests.log");
    let script = format!(
        "import http.server, ssl, sys\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_POST(self):\n\
         \x20       open({log:?}, 'a').write(self.path + '\\n'); self.send_response(200); self.end_headers()\n\
         \x20   do_GET = do_POST\n\
         s = http.server.HTTPServer(('127.0.0.1', 0), H)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain({cert:?}, {key:?})\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         print(s.server_address[1], flush=True)\n\
         s.serve_forever()\n"
    );
    let mut server = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();

    let prefix = node::unique_prefix("tls");
    let pipeline = Pipeline::new(node::config(&prefix, &format!("https://127.0.0.1:{port}")), None);
    let (summary, result) = pipeline.invoke(&fixture("insights.json"), None).await;
    let _ = server.kill();
    let _ = server.wait();
    measured("TLS certificate does not verify", &summary);
    let err = result.unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    // Nothing was ever sent in the clear: the server read no request.
    assert!(!log.exists(), "{:?}", std::fs::read_to_string(&log));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn redrive_resubmits_dead_letters_once_the_cause_is_fixed() {
    let s = setup("redrive", true);
    // Every event of this fixture has its own _id, so each dead letter stands alone.
    let event = fixture("insights.json");
    let expected = common::expected_ids(&s.prefix, &event).await;
    assert_eq!(expected.len(), 6);
    s.proxy.plan(vec![Fault::RejectItems {
        positions: vec![1, 4],
        status: 400,
        error_type: "mapper_parsing_exception",
    }]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!(summary.delivery.dead_lettered, 2);
    node::refresh(&s.prefix).await;
    let indexer = &s.pipeline.indexer;
    let timeout = Duration::from_secs(30);

    // A dry run only counts.
    let report = cwl_indexer::ops::redrive(&s.pipeline.opensearch, indexer, true, timeout)
        .await
        .unwrap();
    assert_eq!((report.found, report.cleared), (2, 0));
    assert_eq!(report.by_error.get("mapper_parsing_exception"), Some(&2));

    // Still failing: the dead letters stay, nothing is duplicated.
    s.proxy.plan(vec![Fault::RejectItems {
        positions: vec![0, 1],
        status: 400,
        error_type: "mapper_parsing_exception",
    }]);
    let report = cwl_indexer::ops::redrive(&s.pipeline.opensearch, indexer, false, timeout)
        .await
        .unwrap();
    assert_eq!((report.found, report.cleared, report.kept), (2, 0, 2), "{report:?}");
    assert_eq!(assert_exactly_once(&s.prefix, &expected).await.1, 2);

    // Fixed: both are indexed and their dead letters deleted.
    let report = cwl_indexer::ops::redrive(&s.pipeline.opensearch, indexer, false, timeout)
        .await
        .unwrap();
    assert_eq!((report.found, report.cleared, report.kept), (2, 2, 0), "{report:?}");
    assert_eq!(report.delivery.indexed, 2);
    let (docs, dead) = assert_exactly_once(&s.prefix, &expected).await;
    assert_eq!((docs, dead), (expected.len(), 0));
}

/// The delivery rules with `index` actions and no `_id` (`AOSS_COLLECTION_TYPE=timeseries`),
/// on the real node: OpenSearch takes such actions as a time-series collection does (no real
/// collection was reachable here). Retries re-send only the failed items, dead letters land
/// without `_id`, and a lost response duplicates: the documented trade-off.
#[tokio::test]
async fn index_actions_without_id_retry_only_what_failed_and_a_lost_response_duplicates() {
    let time_series = |name: &str| {
        let mut s = setup(name, true);
        let mut config = node::config(&s.prefix, &s.proxy.url());
        config.bulk_action = cwl_indexer::config::BulkAction::IndexWithoutId;
        s.pipeline = Pipeline::new(config, None);
        s
    };
    let documents = |prefix: &str| format!("{prefix}-1*,{prefix}-2*");
    let event = fixture("access-denied.json");

    // 429 and a mapping rejection on some items of a 200.
    let s = time_series("tsretry");
    s.proxy.plan(vec![Fault::RejectItems {
        positions: vec![0, 2],
        status: 429,
        error_type: "es_rejected_execution_exception",
    }]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!(
        (summary.delivery.retried, summary.delivery.duplicates),
        (2, 0),
        "{summary:?}"
    );
    let bulk: Vec<usize> = s
        .proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains("_bulk"))
        .map(|r| r.items)
        .collect();
    assert_eq!(bulk, vec![summary.events_in, 2], "only the rejected items are re-sent");
    node::refresh(&s.prefix).await;
    assert_eq!(
        node::count(&documents(&s.prefix), "*").await,
        summary.events_in as u64,
        "each event once"
    );

    s.proxy.plan(vec![Fault::RejectItems {
        positions: vec![3],
        status: 400,
        error_type: "mapper_parsing_exception",
    }]);
    let again = ok(s.pipeline.invoke(&fixture("root-activity.json"), None).await);
    assert_eq!(again.delivery.dead_lettered, 1, "{again:?}");
    node::refresh(&s.prefix).await;
    let letters = node::search(
        &format!("{}-deadletter-*", s.prefix),
        json!({"query": {"match_all": {}}}),
    )
    .await;
    let letter = &letters["hits"]["hits"][0];
    assert_eq!(letters["hits"]["total"]["value"], 1);
    assert!(letter["_source"]["original"].get("id").is_none(), "{letter}");
    assert!(
        letter["_source"]["original"]["index"]
            .as_str()
            .unwrap()
            .starts_with(&s.prefix)
    );

    // The response is lost after the node indexed the body: the retry indexes it again.
    let s = time_series("tslost");
    s.proxy.plan(vec![Fault::DropResponse]);
    let summary = ok(s.pipeline.invoke(&event, None).await);
    assert_eq!(
        (summary.delivery.indexed, summary.delivery.duplicates),
        (summary.events_in, 0)
    );
    node::refresh(&s.prefix).await;
    assert_eq!(
        node::count(&documents(&s.prefix), "*").await,
        2 * summary.events_in as u64,
        "without _ids a retried request is a second copy"
    );
}
