//! OpenSearch Serverless (`SIGV4_SERVICE=aoss`), per collection type: the exact requests the
//! function sends, recorded by a loopback server (`tests/common/recorder.rs`) that answers as
//! a collection's documentation says one would. No real collection was reachable here: these
//! tests pin what the function sends, not what a real collection accepts.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::recorder::{Kind, Recorded, Recorder};
use cwl_indexer::deliver::OpenSearch;
use cwl_indexer::deliver::cluster::{self, Retention, SERVERLESS_RETENTION};
use cwl_indexer::{Aws, CloudWatchLogsEvent, Config, Indexer, Summary, Wired};
use serde_json::{Value, json};
use sha2::Digest as _;

const KEY: &str = "AKIDCWLINDEXERTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEPr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==";
const FIXTURES: [&str; 3] = ["console-login-failure.json", "root-activity.json", "plain-text.json"];

/// The function's configuration for a collection at `url`, parsed from the environment it
/// would get (the template's `ServerlessCollection` mode, plus `extra`).
fn config(url: &str, kind: &str, extra: &[(&str, &str)]) -> Config {
    let mut env: Vec<(&str, &str)> = vec![
        ("OPENSEARCH_ENDPOINT", url),
        ("AWS_REGION", "eu-west-1"),
        ("SIGV4_SERVICE", "aoss"),
        ("AOSS_COLLECTION_TYPE", kind),
        ("RETENTION_DAYS", "0"),
        ("DETECTIONS", "false"),
    ];
    env.extend_from_slice(extra);
    Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())).unwrap()
}

/// Wired as the function wires itself, with static credentials for signing.
fn wired(config: Config) -> (Indexer, OpenSearch) {
    let aws = Aws {
        region: Some("eu-west-1".into()),
        credentials: Some(SharedCredentialsProvider::new(Credentials::new(
            KEY,
            SECRET,
            Some(TOKEN.into()),
            None,
            "test",
        ))),
    };
    let Wired { indexer, opensearch } = cwl_indexer::wire(config, &aws).unwrap();
    (indexer, opensearch.unwrap())
}

fn fixture(name: &str) -> CloudWatchLogsEvent {
    serde_json::from_slice(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap()
}

async fn invoke(indexer: &Indexer, opensearch: &OpenSearch, name: &str) -> Summary {
    let mut sink = opensearch;
    let (summary, result) = indexer.process(&fixture(name), &mut sink, None).await;
    result.unwrap_or_else(|e| panic!("{name}: {e}"));
    summary
}

/// Every request is SigV4-signed for service `aoss` in eu-west-1, with the session token and
/// an `x-amz-content-sha256` that is the SHA-256 of the body as sent (gzip included), and
/// signed. (The signature itself is checked by botocore in `tests/sigv4.rs`.)
fn assert_signed_for_aoss(request: &Recorded) {
    let what = format!("{} {}", request.method, request.path);
    let auth = request
        .header("authorization")
        .unwrap_or_else(|| panic!("{what}: unsigned"));
    let date = &request.header("x-amz-date").expect("x-amz-date")[..8];
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={KEY}/{date}/eu-west-1/aoss/aws4_request, "
        )),
        "{what}: {auth}"
    );
    let signed = auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
    let signed: Vec<&str> = signed.split(';').collect();
    for header in ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"] {
        assert!(signed.contains(&header), "{what}: {header} not signed: {signed:?}");
    }
    let hash: String = sha2::Sha256::digest(&request.body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(request.header("x-amz-content-sha256"), Some(hash.as_str()), "{what}");
    assert_eq!(request.header("x-amz-security-token"), Some(TOKEN), "{what}");
}

/// The only setup requests on Serverless: GET and PUT of the two index templates. Nothing
/// Serverless lacks: no `GET /`, no `_cat/plugins`, no ISM or ILM, no `_cluster`.
fn assert_setup_requests(requests: &[Recorded]) {
    let lines: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        lines,
        [
            "GET /_index_template/cwl-indexer-cwl",
            "PUT /_index_template/cwl-indexer-cwl",
            "GET /_index_template/cwl-indexer-cwl-deadletter",
            "PUT /_index_template/cwl-indexer-cwl-deadletter",
        ]
    );
    for r in requests {
        assert_signed_for_aoss(r);
        if r.method == "PUT" {
            let body: Value = serde_json::from_slice(&r.decoded()).unwrap();
            let settings = &body["template"]["settings"];
            assert!(settings.get("index.codec").is_none(), "{}: {settings}", r.path);
            assert!(settings.get("index.sort.field").is_none(), "{}: {settings}", r.path);
            assert!(
                settings.get("index.number_of_replicas").is_none(),
                "{}: {settings}",
                r.path
            );
            assert!(settings.get("index.lifecycle.name").is_none(), "{}: {settings}", r.path);
            assert_eq!(body["template"]["mappings"]["properties"]["@timestamp"]["type"], "date");
        }
    }
}

/// The one bulk request of an invocation, after the setup requests on the container's
/// first write (setup runs once per container).
fn the_bulk_request(recorder: &Recorder, first_write: bool) -> Recorded {
    let mut requests = recorder.take();
    if first_write {
        assert_setup_requests(&requests[..4]);
        requests.drain(..4);
    }
    assert_eq!(requests.len(), 1, "one bulk request");
    requests.remove(0)
}

fn bulk_pairs(request: &Recorded) -> Vec<(Value, Value)> {
    assert_eq!((request.method.as_str(), request.route()), ("POST", "/_bulk"));
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_signed_for_aoss(request);
    common::pairs(&request.decoded())
}

#[tokio::test]
async fn search_collection_creates_with_ids_and_a_redelivery_changes_nothing() {
    let recorder = Recorder::start(Kind::Search);
    let (indexer, opensearch) = wired(config(&recorder.url(), "search", &[]));
    let mut expected = BTreeSet::new();
    let mut indexed = 0;
    for (n, name) in FIXTURES.iter().enumerate() {
        let summary = invoke(&indexer, &opensearch, name).await;
        // The fixtures share some records: the second copy of a record is a 409.
        assert_eq!(
            summary.delivery.indexed + summary.delivery.duplicates,
            summary.events_in
        );
        indexed += summary.delivery.indexed;
        expected.extend(common::expected_ids("cwl", &fixture(name)).await);
        let bulk = the_bulk_request(&recorder, n == 0);
        let pairs = bulk_pairs(&bulk);
        let raw = String::from_utf8(bulk.decoded()).unwrap();
        for ((action, _), line) in pairs.iter().zip(raw.lines().step_by(2)) {
            let (index, id) = (&action["create"]["_index"], &action["create"]["_id"]);
            assert!(
                index.is_string() && id.is_string(),
                "create with the deterministic _id: {action}"
            );
            assert_eq!(line, format!(r#"{{"create":{{"_index":{index},"_id":{id}}}}}"#));
        }
    }
    let landed: BTreeSet<(String, String)> = recorder
        .collection
        .lock()
        .unwrap()
        .documents
        .iter()
        .flat_map(|(index, docs)| docs.iter().map(|(id, _)| (index.clone(), id.clone())))
        .collect();
    assert_eq!(landed, expected);
    assert_eq!(landed.len(), indexed);

    // Redelivery: every item answered 409, counted as already present, nothing written twice.
    let summary = invoke(&indexer, &opensearch, FIXTURES[0]).await;
    assert_eq!(
        (summary.delivery.indexed, summary.delivery.duplicates),
        (0, summary.events_in)
    );
    let stored: usize = recorder
        .collection
        .lock()
        .unwrap()
        .documents
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(stored, indexed);
}

#[tokio::test]
async fn time_series_collection_indexes_without_ids_and_a_redelivery_duplicates() {
    let search = Recorder::start(Kind::Search);
    let (search_indexer, search_os) = wired(config(&search.url(), "search", &[]));
    let recorder = Recorder::start(Kind::TimeSeries);
    let (indexer, opensearch) = wired(config(&recorder.url(), "timeseries", &[]));
    let mut events = 0;
    for (n, name) in FIXTURES.iter().enumerate() {
        let summary = invoke(&indexer, &opensearch, name).await;
        assert_eq!(
            (summary.delivery.indexed, summary.delivery.dead_lettered),
            (summary.events_in, 0)
        );
        events += summary.events_in;
        let bulk = the_bulk_request(&recorder, n == 0);
        let pairs = bulk_pairs(&bulk);

        // The same events sent to a search collection: the same documents, byte for byte
        // once parsed, the same daily indices; only the action differs.
        invoke(&search_indexer, &search_os, name).await;
        let reference = bulk_pairs(search.take().last().unwrap());
        assert_eq!(pairs.len(), reference.len());
        for ((action, doc), (create, same)) in pairs.iter().zip(&reference) {
            assert_eq!(
                action,
                &json!({"index": {"_index": create["create"]["_index"]}}),
                "no _id"
            );
            assert_eq!(doc, same);
        }
        let raw = String::from_utf8(bulk.decoded()).unwrap();
        for ((action, _), line) in pairs.iter().zip(raw.lines().step_by(2)) {
            assert_eq!(
                line,
                format!(r#"{{"index":{{"_index":{}}}}}"#, action["index"]["_index"])
            );
        }
    }
    let stored = |r: &Recorder| -> usize { r.collection.lock().unwrap().documents.values().map(Vec::len).sum() };
    assert_eq!(stored(&recorder), events);

    // Redelivery of a batch: indexed again, a second copy of each event (the documented
    // trade-off), never a 409 and never a failure.
    let again = invoke(&indexer, &opensearch, FIXTURES[0]).await;
    assert_eq!(
        (again.delivery.indexed, again.delivery.duplicates),
        (again.events_in, 0)
    );
    assert_eq!(stored(&recorder), events + again.events_in);
}

#[tokio::test]
async fn time_series_dead_letters_have_no_id_either() {
    let recorder = Recorder::start(Kind::TimeSeries);
    let (indexer, opensearch) = wired(config(&recorder.url(), "timeseries", &[]));
    // Setup first, so that the refusal applies to the documents' bulk request.
    invoke(&indexer, &opensearch, "plain-text.json").await;
    recorder.take();
    recorder.collection.lock().unwrap().refuse_next = vec![1];
    let summary = invoke(&indexer, &opensearch, "root-activity.json").await;
    assert_eq!(summary.delivery.dead_lettered, 1, "{summary:?}");
    assert_eq!(summary.delivery.indexed, summary.events_in - 1);
    let requests = recorder.take();
    assert_eq!(requests.len(), 2, "the bulk request, then the dead letter's");
    let documents = bulk_pairs(&requests[0]);
    let letters = bulk_pairs(&requests[1]);
    assert_eq!(letters.len(), 1);
    let (action, letter) = &letters[0];
    let original = documents[1].0["index"]["_index"].as_str().unwrap();
    let date = original.strip_prefix("cwl-").unwrap();
    assert_eq!(action, &json!({"index": {"_index": format!("cwl-deadletter-{date}")}}));
    assert_eq!(letter["original"], json!({"index": original}), "no original id to keep");
    assert_eq!(letter["error"]["type"], "mapper_parsing_exception");
    assert!(
        letter["@timestamp"].is_string(),
        "a time-series collection needs @timestamp"
    );
}

#[tokio::test]
async fn setup_reports_every_skip_and_is_idempotent() {
    let recorder = Recorder::start(Kind::Search);
    let config = config(
        &recorder.url(),
        "search",
        // What a hand-written configuration might carry over from a domain.
        &[
            ("RETENTION_DAYS", "30"),
            ("INDEX_REPLICAS", "1"),
            (
                "DASHBOARDS_URL",
                "https://example.eu-west-1.aoss.amazonaws.com/_dashboards",
            ),
        ],
    );
    let setup = config.sink.as_ref().unwrap().setup.clone();
    let (_, opensearch) = wired(config);
    let timeout = Duration::from_secs(10);
    let report = cluster::run(&opensearch, "cwl", &setup, timeout).await.unwrap();
    assert_setup_requests(&recorder.take());
    assert_eq!(report.cluster.distribution, "opensearch-serverless");
    assert_eq!(
        report.retention,
        Retention::Unsupported {
            reason: SERVERLESS_RETENTION.into()
        }
    );
    assert_eq!(report.dashboards_objects, None);
    let steps: Vec<&str> = report.skipped.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        [
            "GET / (version probe)",
            "GET _cat/plugins (plugin listing)",
            "ISM/ILM retention policy",
            "index.number_of_replicas (INDEX_REPLICAS)",
            "index.codec",
            "index.sort.* (sorted daily indices)",
            "Dashboards saved objects import (DASHBOARDS_URL)",
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["retention"]["status"], "unsupported");
    assert_eq!(
        json["retention"]["reason"],
        "OpenSearch Serverless: retention is the collection's lifecycle policy"
    );
    assert!(report.templates.iter().all(|(_, c)| *c == cluster::Change::Created));

    // A second cold start reads the templates back and writes nothing (assuming a real
    // collection keeps a template's `_meta`, as OpenSearch does).
    let again = cluster::run(&opensearch, "cwl", &setup, timeout).await.unwrap();
    assert!(
        again.templates.iter().all(|(_, c)| *c == cluster::Change::Unchanged),
        "{again:?}"
    );
    let lines: Vec<String> = recorder
        .take()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        lines,
        [
            "GET /_index_template/cwl-indexer-cwl",
            "GET /_index_template/cwl-indexer-cwl-deadletter"
        ]
    );
}

#[tokio::test]
async fn redrive_refuses_a_time_series_collection() {
    let recorder = Recorder::start(Kind::TimeSeries);
    let (indexer, opensearch) = wired(config(&recorder.url(), "timeseries", &[]));
    let err = cwl_indexer::ops::redrive(&opensearch, &indexer, false, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AOSS_COLLECTION_TYPE=timeseries"), "{err}");
    assert!(recorder.take().is_empty(), "refused before any request");
}
