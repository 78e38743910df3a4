//! The other ways in, against the real node: Kinesis batches (several accounts, item failures
//! under an injected fault), S3 notifications direct, in SQS, SNS in SQS and through SNS, with
//! a real S3 API on loopback (moto's server mode), the same events by CloudWatch Logs and by S3
//! as one document each, and the `backfill` command, killed and resumed.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::fault_proxy::{Fault, FaultProxy};
use common::moto::{self, Moto, TRAIL_BUCKET, TRAIL_KEY, boto, start_moto};
use common::node;
use cwl_indexer::Summary;
use cwl_indexer::config::AuthConfig;
use cwl_indexer::deliver::Auth;
use cwl_indexer::deliver::OpenSearch;
use cwl_indexer::handler::{HandlerError, ItemFailure, Response};
use cwl_indexer::ingest::TrailStore;
use cwl_indexer::{CloudWatchLogsEvent, Indexer};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use serde_json::value::RawValue;

fn inputs(name: &str) -> String {
    std::fs::read_to_string(common::fixtures().join("inputs").join(name)).unwrap()
}

fn cwl_fixture(name: &str) -> CloudWatchLogsEvent {
    serde_json::from_slice(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap()
}

/// An indexer and its sink into `endpoint` under `prefix`, reading S3 from `moto` if given.
fn pipeline(prefix: &str, endpoint: &str, moto: Option<&Moto>) -> (Indexer, OpenSearch) {
    let config = node::config(prefix, endpoint);
    let sink = config.sink.clone().unwrap();
    let opensearch = OpenSearch::new(&sink, Auth::new(&AuthConfig::None, None).unwrap(), &config).unwrap();
    let mut indexer = Indexer::new(config);
    if let Some(moto) = moto {
        let credentials = SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test"));
        let url = url::Url::parse(&moto.url).unwrap();
        indexer = indexer.with_trail_store(TrailStore::new("us-east-1".into(), credentials, Some(&url)));
    }
    (indexer, opensearch)
}

async fn invoke(indexer: &Indexer, opensearch: &OpenSearch, json: &str) -> Result<Response, HandlerError> {
    let mut sink = opensearch;
    let event = LambdaEvent::new(RawValue::from_string(json.to_owned()).unwrap(), Context::default());
    indexer.handle_event(event, &mut sink).await
}

#[tokio::test]
async fn kinesis_batch_of_two_accounts_reports_only_the_record_that_could_not_be_indexed() {
    let prefix = node::unique_prefix("kinesis");
    let _cleanup = node::Cleanup(prefix.clone());
    let proxy = FaultProxy::start(&node::url());
    let (indexer, opensearch) = pipeline(&prefix, &proxy.url(), None);
    let fixture = inputs("kinesis.json");
    let parsed: Value = serde_json::from_str(&fixture).unwrap();
    let records = parsed["Records"].as_array().unwrap();
    let seq = |i: usize| records[i]["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned();

    // Record 0 passes; every attempt of record 1 is refused until its retries run out
    // (fast_retry: 6 attempts); the rest pass.
    let unavailable = Fault::Respond {
        status: 503,
        content_type: "application/json",
        body: r#"{"message":"Service Unavailable"}"#.into(),
    };
    let mut plan = vec![Fault::Pass];
    plan.extend(std::iter::repeat_n(
        unavailable,
        node::fast_retry().max_attempts as usize,
    ));
    proxy.plan(plan);
    let response = invoke(&indexer, &opensearch, &fixture).await.unwrap();
    let Response::Batch(batch) = response else {
        panic!("{response:?}")
    };
    assert_eq!(
        batch.batch_item_failures,
        vec![ItemFailure {
            item_identifier: seq(1)
        }]
    );

    // What landed: records 0, 2 and 3 (the control message indexes nothing).
    let names = [
        "multi-region-111122223333-us-east-1.json",
        "multi-region-111122223333-us-west-2.json",
        "multi-region-123456789012-us-east-1.json",
        "multi-region-123456789012-us-west-2.json",
    ];
    let mut expected = BTreeSet::new();
    for name in [names[0], names[2], names[3]] {
        expected.extend(common::expected_ids(&prefix, &cwl_fixture(name)).await);
    }
    assert_eq!(
        node::landed(&prefix).await,
        expected.iter().cloned().collect::<Vec<_>>()
    );

    // Lambda retries from the failed record on: records 1..4 again, now without a fault.
    let retry = serde_json::json!({"Records": records[1..].to_vec()}).to_string();
    let Response::Batch(batch) = invoke(&indexer, &opensearch, &retry).await.unwrap() else {
        panic!("not a batch response")
    };
    assert!(batch.batch_item_failures.is_empty(), "{batch:?}");
    for name in names {
        expected.extend(common::expected_ids(&prefix, &cwl_fixture(name)).await);
    }
    let ids = node::landed(&prefix).await;
    assert_eq!(ids, expected.iter().cloned().collect::<Vec<_>>(), "each event once");
    // Accounts are told apart: each envelope's owner (111111111111 is the organization
    // trail's management account, which owns the us-west-2 stream of 111122223333), and
    // every _id names the account the event belongs to (recipientAccountId).
    let owners = node::search(
        &format!("{prefix}-*"),
        serde_json::json!({"size": 0, "aggs": {"o": {"terms": {"field": "@owner"}}}}),
    )
    .await;
    let mut owners: Vec<String> = owners["aggregations"]["o"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_owned())
        .collect();
    owners.sort();
    assert_eq!(owners, ["111111111111", "111122223333", "123456789012"]);
    assert!(ids.iter().any(|(_, id)| id.starts_with("123456789012:")));
}

fn summary(response: Result<Response, HandlerError>) -> Summary {
    match response {
        Ok(Response::Summary(s)) => s,
        other => panic!("{other:?}"),
    }
}

fn no_failures(response: Result<Response, HandlerError>) {
    match response {
        Ok(Response::Batch(b)) => assert!(b.batch_item_failures.is_empty(), "{b:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn s3_notifications_in_every_wrapping_index_the_file_and_meet_cloudwatch_logs_as_one_document() {
    let moto = moto::with_trail_file();
    let cwl = cwl_fixture("multi-region-111122223333-us-east-1.json");

    // CloudWatch Logs first, then S3 in each wrapping: the S3 copies are all 409s.
    let prefix = node::unique_prefix("s3-after-cwl");
    let expected: Vec<(String, String)> = common::expected_ids(&prefix, &cwl).await.into_iter().collect();
    let _cleanup = node::Cleanup(prefix.clone());
    let (indexer, opensearch) = pipeline(&prefix, &node::url(), Some(&moto));
    let mut sink = &opensearch;
    let (s, result) = indexer.process(&cwl, &mut sink, None).await;
    result.unwrap();
    assert_eq!(s.delivery.indexed + s.delivery.duplicates, 40);
    let direct = summary(invoke(&indexer, &opensearch, &inputs("s3-notification.json")).await);
    assert_eq!(
        (direct.events_in, direct.delivery.indexed, direct.delivery.duplicates),
        (40, 0, 40)
    );
    let sns = summary(invoke(&indexer, &opensearch, &inputs("sns-s3-notification.json")).await);
    assert_eq!(sns.delivery.duplicates, 40);
    no_failures(invoke(&indexer, &opensearch, &inputs("sqs-s3-notification.json")).await);
    no_failures(invoke(&indexer, &opensearch, &inputs("sqs-sns-s3-notification.json")).await);
    assert_eq!(node::landed(&prefix).await, expected, "one document per event");

    // S3 first, then CloudWatch Logs: the same documents, the CloudWatch copies are 409s.
    let prefix = node::unique_prefix("cwl-after-s3");
    let _cleanup2 = node::Cleanup(prefix.clone());
    let expected: Vec<(String, String)> = common::expected_ids(&prefix, &cwl).await.into_iter().collect();
    let (indexer, opensearch) = pipeline(&prefix, &node::url(), Some(&moto));
    no_failures(invoke(&indexer, &opensearch, &inputs("sqs-sns-s3-notification.json")).await);
    let mut sink = &opensearch;
    let (s, result) = indexer.process(&cwl, &mut sink, None).await;
    result.unwrap();
    assert_eq!((s.delivery.indexed, s.delivery.duplicates), (0, 40));
    assert_eq!(node::landed(&prefix).await, expected, "one document per event");
    // The S3 document says where it came from.
    let hit = node::search(
        &format!("{prefix}-*"),
        serde_json::json!({"size": 1, "query": {"ids": {"values": [expected[0].1]}}}),
    )
    .await;
    let doc = &hit["hits"]["hits"][0]["_source"];
    assert_eq!(doc["@log_group"], TRAIL_BUCKET);
    assert_eq!(doc["@log_stream"], TRAIL_KEY);
    assert_eq!(doc["@owner"], "111122223333");
    assert_eq!(doc["@id"], expected[0].1.as_str());
}

#[tokio::test]
async fn sqs_reports_only_the_message_whose_object_cannot_be_read() {
    let moto = moto::with_trail_file();
    let prefix = node::unique_prefix("sqs-missing");
    let _cleanup = node::Cleanup(prefix.clone());
    let (indexer, opensearch) = pipeline(&prefix, &node::url(), Some(&moto));
    let mut event: Value = serde_json::from_str(&inputs("sqs-s3-notification.json")).unwrap();
    // A third message: a CloudTrail file that is not in the bucket.
    let mut missing = event["Records"][1].clone();
    let body = missing["body"]
        .as_str()
        .unwrap()
        .replace("_fixture.json.gz", "_missing.json.gz");
    missing["body"] = Value::String(body);
    missing["messageId"] = Value::String("missing-object".into());
    event["Records"].as_array_mut().unwrap().push(missing);
    let response = invoke(&indexer, &opensearch, &event.to_string()).await.unwrap();
    let Response::Batch(batch) = response else {
        panic!("{response:?}")
    };
    assert_eq!(
        batch.batch_item_failures,
        vec![ItemFailure {
            item_identifier: "missing-object".into()
        }]
    );
    let cwl = cwl_fixture("multi-region-111122223333-us-east-1.json");
    let expected: Vec<(String, String)> = common::expected_ids(&prefix, &cwl).await.into_iter().collect();
    assert_eq!(node::landed(&prefix).await, expected);
}

/// Writes `files` CloudTrail files of `per_file` records (corpus records with fresh eventIDs,
/// account 111122223333) over ten days, plus a digest file and another object, into a new
/// bucket of `moto`.
fn upload_backfill_files(moto: &Moto, bucket: &str, files: usize, per_file: usize) {
    let corpus = common::fixtures().join("cloudtrail-records.ndjson");
    boto(
        moto,
        &format!(
            r#"import gzip
s3 = boto3.client('s3', **kw)
s3.create_bucket(Bucket={bucket:?})
lines = [json.loads(l) for l in open({corpus:?}) if l.strip()]
n = 0
for f in range({files}):
    day = 1 + f % 10
    recs = []
    for r in range({per_file}):
        rec = dict(lines[n % len(lines)])
        rec['eventID'] = 'backfill-%06d' % n
        rec['recipientAccountId'] = '111122223333'
        rec['eventTime'] = '2024-01-%02dT10:00:00Z' % day
        recs.append(rec)
        n += 1
    key = 'AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/%02d/111122223333_CloudTrail_us-east-1_202401%02dT1000Z_f%04d.json.gz' % (day, day, f)
    s3.put_object(Bucket={bucket:?}, Key=key, Body=gzip.compress(json.dumps({{'Records': recs}}).encode(), mtime=0))
s3.put_object(Bucket={bucket:?}, Key='AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/01/d.json.gz', Body=b'x')
s3.put_object(Bucket={bucket:?}, Key='AWSLogs/111122223333/notes.txt', Body=b'x')
"#,
            corpus = corpus.display().to_string()
        ),
    );
}

fn backfill(moto: &Moto, args: &[&str], state: &Path, prefix: &str, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cwl-indexer"));
    cmd.arg("backfill")
        .args(args)
        .args([
            "--state",
            &state.display().to_string(),
            "--progress",
            "never",
            "--log-format",
            "json",
        ])
        .args(["--index-prefix", prefix, "--endpoint", &node::url(), "--auth", "none"])
        .envs(moto.cli_env())
        .env("INDEX_REPLICAS", "0")
        .env(
            "RUST_LOG",
            "cwl_indexer=info,cwl_indexer::deliver::sink=warn,backfill=info",
        )
        .env_remove("OPENSEARCH_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

/// The URLs the back-fill logged as read (its JSON log lines).
fn read_urls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "reading")
        .map(|l| l["fields"]["url"].as_str().unwrap().to_owned())
        .collect()
}

fn state_lines(state: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(state)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn backfill_is_resumable_after_a_kill_and_selects_by_date() {
    let (files, per_file) = (150, 4);
    let moto = start_moto();
    let bucket = "cwl-indexer-backfill";
    upload_backfill_files(&moto, bucket, files, per_file);
    let dir = std::env::temp_dir().join(node::unique_prefix("backfill"));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state");
    let url = format!("s3://{bucket}/AWSLogs/");
    let prefix = node::unique_prefix("backfill");
    let _cleanup = node::Cleanup(prefix.clone());

    // A dry run over two days: counts, indexes nothing, writes no state.
    let out = backfill(
        &moto,
        &[&url, "--dry-run", "--since", "2024-01-03", "--until", "2024-01-04"],
        &state,
        &prefix,
        &dir.join("dry.log"),
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        std::fs::read_to_string(dir.join("dry.log")).unwrap()
    );
    assert!(stdout.starts_with("30 files read"), "{stdout}");
    assert!(stdout.contains(&format!("{} events", 30 * per_file)), "{stdout}");
    assert!(
        stdout.contains("120 outside the dates, 2 not CloudTrail log files"),
        "{stdout}"
    );
    assert!(!state.exists());
    assert_eq!(node::count(&format!("{prefix}-*"), "*").await, 0);

    // The real run, killed once some files are done.
    let log1 = dir.join("run1.log");
    let mut child = backfill(&moto, &[&url, "--concurrency", "2"], &state, &prefix, &log1)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while state_lines(&state).len() < 10 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the back-fill ended before it could be killed"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_at_kill = state_lines(&state);
    assert!(
        done_at_kill.len() < files,
        "killed after {} of {files} files",
        done_at_kill.len()
    );

    // The rerun skips the finished keys and reads the rest.
    let log2 = dir.join("run2.log");
    let out = backfill(&moto, &[&url, "--concurrency", "3"], &state, &prefix, &log2)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        std::fs::read_to_string(&log2).unwrap()
    );
    let second = read_urls(&log2);
    let reread: Vec<&String> = second.iter().filter(|u| done_at_kill.contains(*u)).collect();
    assert!(reread.is_empty(), "finished files read again: {reread:?}");
    assert_eq!(second.len(), files - done_at_kill.len(), "{stdout}");
    assert!(
        stdout.contains(&format!("skipped: {} already done", done_at_kill.len())),
        "{stdout}"
    );
    assert_eq!(state_lines(&state).len(), files);
    node::refresh(&prefix).await;
    assert_eq!(
        node::count(&format!("{prefix}-*"), "*").await,
        (files * per_file) as u64,
        "one document per event"
    );
    eprintln!(
        "backfill: {files} files, killed after {} were done; rerun read {}: {stdout}",
        done_at_kill.len(),
        files - done_at_kill.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
