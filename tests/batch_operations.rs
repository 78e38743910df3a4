//! S3 Batch Operations against the real node and a real S3 API on loopback (moto): the
//! fixture invocations (schema 1.0 and 2.0) answered exactly as `fixtures/inputs/batch-operations/`
//! says, a file over the size cap refused, a task throttled by the cluster retried by the job and
//! landing once, and `backfill --batch-operations` writing its manifest and creating the job.

mod common;

use std::collections::BTreeSet;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::fault_proxy::{Fault, FaultProxy};
use common::moto::{self, Moto, TRAIL_BUCKET, TRAIL_KEY, boto, start_moto};
use common::node;
use cwl_indexer::config::AuthConfig;
use cwl_indexer::deliver::{Auth, OpenSearch};
use cwl_indexer::handler::{BatchOperationsResponse, Response};
use cwl_indexer::ingest::TrailStore;
use cwl_indexer::{Config, Indexer};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use serde_json::value::RawValue;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(common::fixtures().join("inputs/batch-operations").join(name)).unwrap()
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
    let moto = moto::with_trail_file();
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
        let first = node::landed(&prefix).await;
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
            node::landed(&prefix).await,
            first,
            "{request}: a retried task duplicates nothing"
        );
    }
}

#[tokio::test]
async fn a_file_over_the_size_cap_is_refused_and_a_throttled_task_is_retried_by_the_job() {
    let moto = moto::with_trail_file();
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
    assert!(node::landed(&prefix).await.is_empty());

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
    assert!(node::landed(&prefix).await.is_empty());
    assert_eq!(node::count(&format!("{prefix}-deadletter-*"), "*").await, 0);

    // The job redrives the task once the cluster has room: it lands, once.
    proxy.always(None);
    let retried = invoke(&indexer, &opensearch, &request).await;
    assert_eq!(codes(&retried), ["Succeeded"]);
    assert_eq!(
        retried.results[0].result_string,
        "40 events: 32 indexed, 8 already present, 0 dead-lettered"
    );
    let ids = node::landed(&prefix).await;
    assert_eq!((ids.len(), ids.iter().collect::<BTreeSet<_>>().len()), (32, 32));
}

/// One HTTP request as the stub received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback stub of S3 Control's `POST /v20180820/jobs` (CreateJob) only: moto 5.2.5's
/// s3control has no Batch Operations jobs (its CreateJob, DescribeJob and ListJobs answer 404,
/// notes/batch-operations.md), so the request is checked here, and answered as S3 Control does.
struct CreateJobStub {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    _thread: std::thread::JoinHandle<()>,
}

const STUB_JOB_ID: &str = "f3cc4f60-61f6-4a2b-8a21-d07600c373ce";

impl CreateJobStub {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&received);
        // Serves until the test process ends; a thread blocked in accept holds nothing else.
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let request = loop {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut headers);
                    if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
                        let headers: Vec<(String, String)> = req
                            .headers
                            .iter()
                            .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                            .collect();
                        let length: usize = headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= head + length {
                            break Some(Received {
                                method: req.method.unwrap_or_default().to_owned(),
                                path: req.path.unwrap_or_default().to_owned(),
                                headers,
                                body: String::from_utf8_lossy(&buf[head..head + length]).into_owned(),
                            });
                        }
                    }
                };
                let Some(request) = request else { continue };
                let ok = request.method == "POST" && request.path == "/v20180820/jobs";
                log.lock().unwrap().push(request);
                let (status, body) = if ok {
                    (
                        "200 OK",
                        format!(
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateJobResult><JobId>{STUB_JOB_ID}</JobId></CreateJobResult>"
                        ),
                    )
                } else {
                    ("404 Not Found", "<Error><Code>NotFound</Code></Error>".to_owned())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nx-amz-request-id: stub\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            url,
            received,
            _thread: thread,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// An XML document as its (element path, text) leaves, in order: element order within a
/// parent is not compared by S3 Control, and neither is whitespace; the root's namespace is.
fn xml_leaves(xml: &str) -> BTreeSet<(String, String)> {
    let xml = xml.trim_start_matches(|c| c != '<');
    let xml = match xml.strip_prefix("<?xml") {
        Some(rest) => &rest[rest.find("?>").unwrap() + 2..],
        None => xml,
    };
    let mut path: Vec<String> = Vec::new();
    let mut leaves = BTreeSet::new();
    for piece in xml.split('<').skip(1) {
        let (tag, text) = piece.split_once('>').unwrap();
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(
                path.last().map(|p| p.split(' ').next().unwrap()),
                Some(closing),
                "{xml}"
            );
            path.pop();
        } else {
            path.push(tag.to_owned());
            if !text.trim().is_empty() {
                leaves.insert((path.join("/"), text.to_owned()));
            }
        }
    }
    assert!(path.is_empty(), "unbalanced: {xml}");
    leaves
}

/// `cwl-indexer backfill ... --batch-operations` against moto (S3) and the stub (S3 Control).
fn backfill_batch(moto: &Moto, stub: &CreateJobStub, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .arg("backfill")
        .args(args)
        .args(["--batch-operations", "--manifest-bucket", "cwl-indexer-batch"])
        .args(["--s3-control-endpoint", &stub.url])
        .envs(moto.cli_env())
        .env_remove("OPENSEARCH_ENDPOINT")
        .output()
        .unwrap()
}

fn manifest_in(moto: &Moto, key: &str) -> String {
    boto(
        moto,
        &format!(
            "s3 = boto3.client('s3', **kw)\nprint(s3.get_object(Bucket='cwl-indexer-batch', Key={key:?})['Body'].read().decode(), end='')"
        ),
    )
}

#[test]
fn backfill_batch_operations_writes_the_manifest_and_creates_the_job_as_documented() {
    let moto = moto::with_trail_file();
    boto(
        &moto,
        "boto3.client('s3', **kw).create_bucket(Bucket='cwl-indexer-batch')",
    );
    let stub = CreateJobStub::start();
    let role = "arn:aws:iam::111122223333:role/cwl-indexer-BatchOperationsRole";
    let function = "arn:aws:lambda:us-east-1:111122223333:function:cwl-indexer-Indexer";
    let url = format!("s3://{TRAIL_BUCKET}/AWSLogs/");
    let manifest_key = "cwl-indexer/manifests/71e418ffb13b929f0a1268111c7becf7.csv";

    // --dry-run: the manifest only, no request to S3 Control.
    let dry = backfill_batch(&moto, &stub, &[&url, "--dry-run"]);
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        stdout.contains(&format!("manifest: s3://cwl-indexer-batch/{manifest_key} (1 files")),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: no job created"), "{stdout}");
    assert_eq!(manifest_in(&moto, manifest_key), fixture("expected-manifest.csv"));
    assert!(stub.received().is_empty(), "{:?}", stub.received());

    // Without --dry-run the role and the function are needed.
    let missing = backfill_batch(&moto, &stub, &[&url]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--role-arn"));

    let out = backfill_batch(&moto, &stub, &[&url, "--role-arn", role, "--function-arn", function]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("job: {STUB_JOB_ID}")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "aws s3control describe-job --account-id 111122223333 --job-id {STUB_JOB_ID} --region us-east-1"
        )),
        "{stdout}"
    );
    let received = stub.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let create = &received[0];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v20180820/jobs")
    );
    assert_eq!(create.header("x-amz-account-id"), Some("111122223333"));
    let auth = create.header("authorization").unwrap_or_default();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=testing/") && auth.contains("/us-east-1/s3/aws4_request"),
        "signed for S3 Control (signing name s3): {auth}"
    );
    // The exact request botocore sends for this manifest (recorded in the fixture), element by
    // element; the ETag is moto's PutObject answer, the MD5 the manifest is named by.
    let expected = xml_leaves(&fixture("expected-create-job-request.xml"));
    assert_eq!(expected.len(), 17, "{expected:?}");
    assert_eq!(xml_leaves(&create.body), expected, "{}", create.body);
}

#[test]
fn the_manifest_lists_only_trail_files_within_the_dates_with_keys_encoded() {
    let moto = start_moto();
    boto(
        &moto,
        r#"import gzip
s3 = boto3.client('s3', **kw)
for b in ('trail', 'cwl-indexer-batch'):
    s3.create_bucket(Bucket=b)
body = gzip.compress(b'{"Records":[]}', mtime=0)
for day, name in ((1, 'a'), (2, 'b c+d,e'), (3, 'f')):
    s3.put_object(Bucket='trail', Key='AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/%02d/111122223333_CloudTrail_us-east-1_202401%02dT0000Z_%s.json.gz' % (day, day, name), Body=body)
s3.put_object(Bucket='trail', Key='AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/02/d.json.gz', Body=body)
s3.put_object(Bucket='trail', Key='AWSLogs/111122223333/notes.txt', Body=b'x')
"#,
    );
    let stub = CreateJobStub::start();
    let out = backfill_batch(
        &moto,
        &stub,
        &["s3://trail/AWSLogs/", "--since", "2024-01-02", "--dry-run"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(2 files") && stdout.contains("1 outside the dates, 2 not CloudTrail log files"),
        "{stdout}"
    );
    let key = stdout
        .split("s3://cwl-indexer-batch/")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(
        manifest_in(&moto, key),
        "trail,AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/02/111122223333_CloudTrail_us-east-1_20240102T0000Z_b%20c%2Bd%2Ce.json.gz\n\
         trail,AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/03/111122223333_CloudTrail_us-east-1_20240103T0000Z_f.json.gz\n"
    );
    // Nothing to do is an error, not an empty job.
    let none = backfill_batch(
        &moto,
        &stub,
        &["s3://trail/AWSLogs/", "--since", "2030-01-01", "--dry-run"],
    );
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no manifest written"));
}
