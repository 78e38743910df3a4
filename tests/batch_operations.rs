//! S3 Batch Operations against the real node and a real S3 API on loopback (moto): the
//! fixture invocations (schema 1.0 and 2.0) answered exactly as `fixtures/inputs/batch-operations/`
//! says, a file over the size cap refused, a task throttled by the cluster retried by the job and
//! landing once, and `backfill --batch-operations` writing its manifest and creating the job.

mod common;

use std::collections::BTreeSet;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::fault_proxy::{Fault, FaultProxy};
use common::moto::{Moto, boto, start_moto};
use common::node;
use cwl_indexer::config::AuthConfig;
use cwl_indexer::deliver::{Auth, OpenSearch};
use cwl_indexer::handler::{BatchOperationsResponse, Response};
use cwl_indexer::ingest::TrailStore;
use cwl_indexer::{Config, Indexer};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::value::RawValue;
use serde_json::{Value, json};

const TRAIL_BUCKET: &str = "cwl-indexer-fixture-trail";
const TRAIL_KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/111122223333_CloudTrail_us-east-1_20240115T0000Z_fixture.json.gz";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::fixtures().join("inputs/batch-operations").join(name)).unwrap()
}

/// moto with the fixture trail bucket and its one CloudTrail file.
fn moto_with_trail_file() -> Moto {
    let moto = start_moto();
    let file = common::fixtures().join("inputs/trail").join(TRAIL_KEY);
    boto(
        &moto,
        &format!(
            "s3 = boto3.client('s3', **kw)\ns3.create_bucket(Bucket={TRAIL_BUCKET:?})\n\
             s3.upload_file({:?}, {TRAIL_BUCKET:?}, {TRAIL_KEY:?})",
            file.display().to_string()
        ),
    );
    moto
}

/// An indexer reading S3 from `moto`, and its sink into `endpoint`.
fn pipeline(config: Config, moto: &Moto) -> (Indexer, OpenSearch) {
    let sink = config.sink.clone().unwrap();
    let opensearch = OpenSearch::new(&sink, Auth::new(&AuthConfig::None, None).unwrap(), &config).unwrap();
    let credentials = SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test"));
    let url = url::Url::parse(&moto.url).unwrap();
    let indexer = Indexer::new(config).with_trail_store(TrailStore::new("us-east-1".into(), credentials, Some(&url)));
    (indexer, opensearch)
}

/// The invocation as Lambda makes it; the function must answer, never fail.
async fn invoke(indexer: &Indexer, opensearch: &OpenSearch, json: &str) -> BatchOperationsResponse {
    let mut sink = opensearch;
    let event = LambdaEvent::new(RawValue::from_string(json.to_owned()).unwrap(), Context::default());
    match indexer.handle_event(event, &mut sink).await {
        Ok(Response::BatchOperations(r)) => r,
        other => panic!("a Batch Operations event is answered per task: {other:?}"),
    }
}

/// The (index, _id) of every document under `prefix` (daily indices), repeats kept.
async fn landed(prefix: &str) -> Vec<(String, String)> {
    node::refresh(prefix).await;
    let hits = node::search(
        &format!("{prefix}-*"),
        json!({"size": 10000, "_source": false, "query": {"match_all": {}}}),
    )
    .await;
    let mut ids: Vec<(String, String)> = hits["hits"]["hits"]
        .as_array()
        .unwrap()
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

fn codes(r: &BatchOperationsResponse) -> Vec<String> {
    let v = serde_json::to_value(r).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["resultCode"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_fixture_invocations_are_answered_as_documented_and_a_retry_duplicates_nothing() {
    let moto = moto_with_trail_file();
    for (request, expected) in [
        ("request-1.0.json", "expected-response-1.0.json"),
        ("request-2.0.json", "expected-response-2.0.json"),
        ("request-2.0-tasks.json", "expected-response-2.0-tasks.json"),
    ] {
        let prefix = node::unique_prefix("batchops");
        let _cleanup = node::Cleanup(prefix.clone());
        let (indexer, opensearch) = pipeline(node::config(&prefix, &node::url()), &moto);
        let response = invoke(&indexer, &opensearch, &fixture(request)).await;
        let want: Value = serde_json::from_str(&fixture(expected)).unwrap();
        assert_eq!(serde_json::to_value(&response).unwrap(), want, "{request}");
        let first = landed(&prefix).await;
        // 40 records, 32 documents: the samples repeat 8 (index, _id) pairs.
        assert_eq!(first.len(), 32, "{request}: the file's 32 documents");
        assert_eq!(first.iter().collect::<BTreeSet<_>>().len(), 32, "each once");

        // Batch Operations redrives a task (or a job is re-run): the same _ids, nothing new.
        let again = invoke(&indexer, &opensearch, &fixture(request)).await;
        assert_eq!(
            again.results[0].result_string, "40 events: 0 indexed, 40 already present, 0 dead-lettered",
            "{request}"
        );
        assert_eq!(
            landed(&prefix).await,
            first,
            "{request}: a retried task duplicates nothing"
        );
    }
}

#[tokio::test]
async fn a_file_over_the_size_cap_is_refused_and_a_throttled_task_is_retried_by_the_job() {
    let moto = moto_with_trail_file();
    let request = fixture("request-2.0.json");

    // Over MAX_TRAIL_FILE_BYTES: PermanentFailure with the reason, nothing sent.
    let prefix = node::unique_prefix("batchops-cap");
    let _cleanup = node::Cleanup(prefix.clone());
    let mut config = node::config(&prefix, &node::url());
    config.max_trail_file_bytes = 1024;
    let (indexer, opensearch) = pipeline(config, &moto);
    let response = invoke(&indexer, &opensearch, &request).await;
    assert_eq!(codes(&response), ["PermanentFailure"]);
    assert_eq!(
        response.results[0].result_string,
        format!("over the size cap (decompressed beyond MAX_TRAIL_FILE_BYTES=1024): s3://{TRAIL_BUCKET}/{TRAIL_KEY}")
    );
    assert!(landed(&prefix).await.is_empty());

    // The cluster rejects every item (429 rejected_execution_exception, as OpenSearch 2.19's full
    // write queue does) until the retries run out: TemporaryFailure, nothing dead-lettered, the
    // invocation still answers.
    let prefix = node::unique_prefix("batchops-429");
    let _cleanup = node::Cleanup(prefix.clone());
    let proxy = FaultProxy::start(&node::url());
    let (indexer, opensearch) = pipeline(node::config(&prefix, &proxy.url()), &moto);
    proxy.always(Some(Fault::RejectItems {
        positions: (0..100).collect(),
        status: 429,
        error_type: "rejected_execution_exception",
    }));
    let throttled = invoke(&indexer, &opensearch, &request).await;
    assert_eq!(codes(&throttled), ["TemporaryFailure"], "{throttled:?}");
    let text = &throttled.results[0].result_string;
    assert!(
        text.contains("rejected_execution_exception") && text.ends_with(&format!("s3://{TRAIL_BUCKET}/{TRAIL_KEY}")),
        "{text}"
    );
    let bulks = proxy.requests().iter().filter(|r| r.path.contains("_bulk")).count();
    assert_eq!(
        bulks,
        node::fast_retry().max_attempts as usize,
        "every attempt was made"
    );
    assert!(landed(&prefix).await.is_empty());
    assert_eq!(node::count(&format!("{prefix}-deadletter-*"), "*").await, 0);

    // The job redrives the task once the cluster has room: it lands, once.
    proxy.always(None);
    let retried = invoke(&indexer, &opensearch, &request).await;
    assert_eq!(codes(&retried), ["Succeeded"]);
    assert_eq!(
        retried.results[0].result_string,
        "40 events: 32 indexed, 8 already present, 0 dead-lettered"
    );
    let ids = landed(&prefix).await;
    assert_eq!((ids.len(), ids.iter().collect::<BTreeSet<_>>().len()), (32, 32));
}
