//! The Lambda function as Lambda runs it: the real `bootstrap` binary, served invocations by
//! cargo-lambda's Lambda runtime API emulator (`cargo lambda watch`), invoked with the fixture
//! files `sam local invoke -e` takes (`cargo lambda invoke --data-file`), writing to the real
//! node (`OPENSEARCH_URL`, from scripts/with-opensearch.sh). This is what `make invoke` does, and
//! what `sam local invoke` does where Docker runs.
//!
//! What runs, all on 127.0.0.1, all started and stopped (killed and reaped) by the test:
//! - `cargo lambda watch --only-lambda-apis`: the emulator. Its `Lambda-Runtime-Deadline-Ms` is
//!   the constant 600000 instead of an absolute time (cargo-lambda 1.9): a deadline in 1970,
//!   which the function ignores with a warning, so it would run with no deadline at all. The
//!   emulator does not start the function itself because it would point the function straight
//!   at itself. It reads a Cargo manifest at start, so it runs in an empty package of its own
//!   rather than waiting on this repository's build locks.
//! - `scripts/runtime-api-shim.py` between the function and the emulator: rewrites that header
//!   to now + the function's Timeout from template.yaml, as Lambda sends it; nothing else. The
//!   test checks that the function saw a real deadline (no "already past" warning).
//! - `target/debug/bootstrap` (built by `cargo test`), with the environment the stack gives it,
//!   but `AUTH=none` and the local node, and Lambda's JSON log format.
//!
//! The second test gives the function an S3 Batch Operations invocation of several tasks, with
//! moto's S3 on loopback holding the files and the fault proxy between the function and the node.
//!
//! Needs cargo-lambda: `CARGO_LAMBDA=/path/to/cargo-lambda`, `.venv-lambda/bin/cargo-lambda`
//! (`bash scripts/tool-venv.sh lambda`, which `make test` runs), or `cargo-lambda` on PATH.
//! Without it the test says so and passes, unless `CWL_REQUIRE_CARGO_LAMBDA` is set, as
//! `make test` and CI set it.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy};
use common::moto::{boto, start_moto};
use common::node;
use cwl_indexer::CloudWatchLogsEvent;
use serde_json::{Value, json};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// A child process that is killed and reaped when dropped, also when the test fails; its
/// output is collected by threads so that a full pipe never blocks it.
struct Running {
    name: &'static str,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(name: &'static str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        Self {
            name,
            child,
            stdout,
            stderr,
        }
    }

    /// Everything it printed so far, for failure messages.
    fn output(&self) -> String {
        format!(
            "--- {} stdout\n{}\n--- {} stderr\n{}",
            self.name,
            self.stdout.lock().unwrap(),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status})\n{}", self.name, self.output());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// cargo-lambda's executable (`cargo-lambda lambda ...` is what `cargo lambda ...` runs).
fn cargo_lambda() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CARGO_LAMBDA") {
        return Some(path.into());
    }
    let venv = Path::new(MANIFEST_DIR).join(".venv-lambda/bin/cargo-lambda");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("cargo-lambda"))
        .find(|p| p.is_file())
}

/// cargo-lambda, or `None` after saying the test is skipped (an error where it is required).
fn cargo_lambda_or_skip() -> Option<PathBuf> {
    let found = cargo_lambda();
    if found.is_none() {
        assert!(
            std::env::var_os("CWL_REQUIRE_CARGO_LAMBDA").is_none(),
            "cargo-lambda not found: run `bash scripts/tool-venv.sh lambda`, or set CARGO_LAMBDA"
        );
        eprintln!("local_invoke: SKIPPED, cargo-lambda not found (bash scripts/tool-venv.sh lambda)");
    }
    found
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The function's Timeout in template.yaml, in milliseconds: the deadline the shim sends.
fn template_timeout_ms() -> u64 {
    let template = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("template.yaml")).unwrap();
    let seconds: Vec<u64> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Timeout:"))
        .map(|v| v.trim().parse().expect("a number of seconds"))
        .collect();
    assert_eq!(seconds.len(), 1, "one Timeout in template.yaml: {seconds:?}");
    seconds[0] * 1000
}

fn wait_for_port(port: u16, process: &mut Running, within: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        process.assert_running();
        assert!(
            start.elapsed() < within,
            "{} not listening on {addr} after {within:?}\n{}",
            process.name,
            process.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The emulator, the shim and the function, running; dropped in reverse order.
struct Lambda {
    cargo_lambda: PathBuf,
    invoke_port: u16,
    function: Running,
    _shim: Running,
    _emulator: Running,
}

impl Lambda {
    /// Starts everything; `env` adds to (or overrides) the function's environment.
    fn start(cargo_lambda: PathBuf, prefix: &str, env: &[(&str, String)]) -> Self {
        // An empty package for the emulator's `cargo metadata`.
        let package = Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-invoke-emulator");
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(
            package.join("Cargo.toml"),
            "[package]\nname = \"emulator\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(package.join("src/main.rs"), "fn main() {}\n").unwrap();

        let invoke_port = free_port();
        let mut watch = Command::new(&cargo_lambda);
        watch
            .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &invoke_port.to_string()])
            .current_dir(&package);
        let mut emulator = Running::spawn("cargo lambda watch", watch);
        wait_for_port(invoke_port, &mut emulator, Duration::from_secs(120));

        let mut shim_cmd = Command::new("python3");
        shim_cmd
            .arg(Path::new(MANIFEST_DIR).join("scripts/runtime-api-shim.py"))
            .args(["--upstream", &format!("127.0.0.1:{invoke_port}"), "--port", "0"])
            .args(["--timeout-ms", &template_timeout_ms().to_string()]);
        let mut shim_child = shim_cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs scripts/runtime-api-shim.py");
        let mut first = String::new();
        let mut stdout = BufReader::new(shim_child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let shim_port: u16 = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the shim's first line names its port: {first:?}"));
        let shim = Running {
            name: "runtime-api-shim",
            stdout: drain(stdout),
            stderr: drain(shim_child.stderr.take().unwrap()),
            child: shim_child,
        };

        let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        bootstrap.env_clear().envs([
            // What Lambda sets (the emulator's names for them).
            ("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{shim_port}/.rt")),
            ("AWS_LAMBDA_FUNCTION_NAME", "bootstrap".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
            // What the stack sets, for the local node.
            ("OPENSEARCH_ENDPOINT", node::url()),
            ("AUTH", "none".into()),
            ("INDEX_PREFIX", prefix.into()),
            ("INDEX_REPLICAS", "0".into()),
        ]);
        bootstrap.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let function = Running::spawn("bootstrap", bootstrap);
        Self {
            cargo_lambda,
            invoke_port,
            function,
            _shim: shim,
            _emulator: emulator,
        }
    }

    /// `cargo lambda invoke --data-file <fixture>`: the command's output.
    fn invoke(&mut self, fixture: &Path) -> Output {
        self.function.assert_running();
        Command::new(&self.cargo_lambda)
            .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.invoke_port.to_string()])
            .arg("--data-file")
            .arg(fixture)
            .args(["--output-format", "json"])
            .stdin(Stdio::null())
            .output()
            .expect("cargo lambda invoke runs")
    }

    /// Invokes and returns the function's response (its summary), asserting success.
    fn invoke_ok(&mut self, fixture: &Path) -> Value {
        let out = self.invoke(fixture);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "invoke {} failed: {}\n{}\n{}",
            fixture.display(),
            String::from_utf8_lossy(&out.stderr),
            stdout,
            self.function.output()
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// The function's "invocation summary" log lines so far (Lambda's JSON log format).
    fn summary_lines(&self) -> Vec<Value> {
        self.function
            .stdout
            .lock()
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == "invocation summary")
            .collect()
    }
}

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join(name)
}

/// The distinct (index, _id) pairs the transform makes of `path` under `prefix`.
async fn expected_ids(prefix: &str, path: &Path) -> BTreeSet<(String, String)> {
    let event: CloudWatchLogsEvent = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    common::expected_ids(prefix, &event).await
}

fn hits(answer: &Value) -> BTreeSet<(String, String)> {
    answer["hits"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|h| {
            (
                h["_index"].as_str().unwrap().to_owned(),
                h["_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fixtures_through_the_cargo_lambda_emulator_land_in_the_node() {
    let Some(cargo_lambda) = cargo_lambda_or_skip() else {
        return;
    };
    let prefix = node::unique_prefix("invoke");
    let _cleanup = node::Cleanup(prefix.clone());
    let mut lambda = tokio::task::block_in_place(|| Lambda::start(cargo_lambda, &prefix, &[]));
    let pattern = format!("{prefix}-*");

    // 16 failed console logins: one document per distinct (index, _id).
    let logins = fixture("console-login-failure.json");
    let expected = expected_ids(&prefix, &logins).await;
    assert!(!expected.is_empty() && expected.len() <= 16, "{expected:?}");
    let response = tokio::task::block_in_place(|| lambda.invoke_ok(&logins));
    assert_eq!(response["events_in"], 16, "{response}");
    assert_eq!(response["indexed"], expected.len(), "{response}");
    assert_eq!(response["failed"], 0, "{response}");
    assert_eq!(response["dead_lettered"], 0, "{response}");

    // The summary log line, as CloudWatch Logs would get it.
    let summaries = lambda.summary_lines();
    assert_eq!(summaries.len(), 1, "{}", lambda.function.output());
    assert_eq!(summaries[0]["fields"]["events_in"], 16, "{}", summaries[0]);
    assert_eq!(summaries[0]["fields"]["indexed"], expected.len(), "{}", summaries[0]);

    node::refresh(&prefix).await;
    let all = node::search(
        &pattern,
        json!({"size": 1000, "_source": false, "query": {"match_all": {}}}),
    )
    .await;
    assert_eq!(hits(&all), expected, "exactly the expected documents, nothing else");
    let failed = node::search(
        &pattern,
        json!({"size": 1000, "_source": false, "query": {"query_string": {
            "query": "eventName:ConsoleLogin AND responseElements.ConsoleLogin:Failure"}}}),
    )
    .await;
    assert_eq!(hits(&failed), expected, "every document is a failed console login");
    assert_eq!(node::count(&format!("{prefix}-deadletter-*"), "*").await, 0);

    // Redelivery (Lambda's async retry, a resent batch) duplicates nothing.
    let again = tokio::task::block_in_place(|| lambda.invoke_ok(&logins));
    assert_eq!(again["indexed"], 0, "{again}");
    assert_eq!(again["failed"], 0, "{again}");

    // A control message indexes nothing; a broken event fails the invocation (Lambda would
    // retry it, then hand it to the on-failure destination) and the function keeps serving.
    let control = tokio::task::block_in_place(|| lambda.invoke_ok(&fixture("control-message.json")));
    assert_eq!(control["indexed"], 0, "{control}");
    let broken = tokio::task::block_in_place(|| lambda.invoke(&fixture("broken/not-gzip.json")));
    assert!(
        !broken.status.success(),
        "a broken event fails the invocation: {}",
        String::from_utf8_lossy(&broken.stdout)
    );
    let root = fixture("root-activity.json");
    let root_expected = expected_ids(&prefix, &root).await;
    let response = tokio::task::block_in_place(|| lambda.invoke_ok(&root));
    // Root's failed console logins are already there, from the first fixture.
    let new = root_expected.difference(&expected).count();
    assert!(new > 0 && new < root_expected.len(), "{new} of {}", root_expected.len());
    assert_eq!(response["indexed"], new, "{response}");
    assert_eq!(response["events_in"], 45, "{response}");

    // The same binary takes a Kinesis batch (CloudWatch Logs through a stream, two accounts and
    // a control message) and answers batchItemFailures: none, when every record landed.
    let kinesis = tokio::task::block_in_place(|| lambda.invoke_ok(&fixture("inputs/kinesis.json")));
    assert_eq!(kinesis, json!({"batchItemFailures": []}), "{kinesis}");
    let mut everything: BTreeSet<_> = expected.union(&root_expected).cloned().collect();
    for account_region in [
        "111122223333-us-east-1",
        "111122223333-us-west-2",
        "123456789012-us-east-1",
        "123456789012-us-west-2",
    ] {
        let path = fixture(&format!("multi-region-{account_region}.json"));
        everything.extend(expected_ids(&prefix, &path).await);
    }

    node::refresh(&prefix).await;
    let all = node::search(
        &pattern,
        json!({"size": 1000, "_source": false, "query": {"match_all": {}}}),
    )
    .await;
    assert_eq!(hits(&all), everything);
    assert_eq!(lambda.summary_lines().len(), 6, "one summary line per invocation");
    let log = lambda.function.stdout.lock().unwrap().clone();
    assert!(
        !log.contains("already past"),
        "the shim gives the function a real deadline: {log}"
    );
}

/// A task of an S3 Batch Operations invocation (schema 2.0) for `key` in `bucket`.
fn task(n: usize, bucket: &str, key: &str) -> Value {
    json!({"taskId": format!("task-{n}"), "s3Key": key, "s3VersionId": null, "s3Bucket": bucket})
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_operations_tasks_through_the_emulator_one_refused_one_throttled_the_rest_indexed() {
    let Some(cargo_lambda) = cargo_lambda_or_skip() else {
        return;
    };
    // Four CloudTrail files of 10 records each (fresh eventIDs, one day each) and a digest file.
    let moto = start_moto();
    let corpus = common::fixtures().join("cloudtrail-records.ndjson");
    let bucket = "trail";
    let keys: Vec<String> = (0..4)
        .map(|f| {
            format!(
                "AWSLogs/111122223333/CloudTrail/us-east-1/2024/02/0{d}/111122223333_CloudTrail_us-east-1_2024020{d}T1000Z_f{f}.json.gz",
                d = f + 1
            )
        })
        .collect();
    let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/02/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240201T100000Z.json.gz";
    boto(
        &moto,
        &format!(
            r#"import gzip
s3 = boto3.client('s3', **kw)
s3.create_bucket(Bucket={bucket:?})
lines = [json.loads(l) for l in open({corpus:?}) if l.strip()]
for f, key in enumerate({keys:?}):
    recs = []
    for r in range(10):
        rec = dict(lines[(f * 10 + r) % len(lines)])
        rec['eventID'] = 'batchops-%d-%d' % (f, r)
        rec['recipientAccountId'] = '111122223333'
        rec['eventTime'] = '2024-02-0%dT10:00:00Z' % (f + 1)
        recs.append(rec)
    s3.put_object(Bucket={bucket:?}, Key=key, Body=gzip.compress(json.dumps({{'Records': recs}}).encode(), mtime=0))
s3.put_object(Bucket={bucket:?}, Key={digest:?}, Body=gzip.compress(b'{{}}', mtime=0))
"#,
            corpus = corpus.display().to_string()
        ),
    );
    let proxy = FaultProxy::start(&node::url());
    let prefix = node::unique_prefix("invoke-batchops");
    let _cleanup = node::Cleanup(prefix.clone());
    let env = [
        ("OPENSEARCH_ENDPOINT", proxy.url()),
        ("S3_ENDPOINT_URL", moto.url.clone()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        // Two attempts, quickly: the throttled task runs out of retries in well under a second.
        ("MAX_ATTEMPTS", "2".into()),
        ("RETRY_BASE_MS", "20".into()),
    ];
    let mut lambda = tokio::task::block_in_place(|| Lambda::start(cargo_lambda, &prefix, &env));

    // Tasks in order: file 0, the digest, file 1 (throttled), file 2, file 3. One bulk request
    // per file; the node itself rejects nothing here, the proxy stands in for its full queue:
    // both attempts for file 1 get 429 rejected_execution_exception for every item.
    let reject = || Fault::RejectItems {
        positions: (0..100).collect(),
        status: 429,
        error_type: "rejected_execution_exception",
    };
    proxy.plan(vec![Fault::Pass, reject(), reject()]);
    let tasks = vec![
        task(0, bucket, &keys[0]),
        task(1, bucket, digest),
        task(2, bucket, &keys[1]),
        task(3, bucket, &keys[2]),
        task(4, bucket, &keys[3]),
    ];
    let event = json!({
        "invocationSchemaVersion": "2.0",
        "invocationId": "bG9jYWwtaW52b2tl",
        "job": {"id": "7c1e3a52-0b6f-4e8e-9d1a-3f5b2c4d6e70", "userArguments": {}},
        "tasks": tasks,
    });
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-batch.json"));
    std::fs::write(&file, event.to_string()).unwrap();
    let response = tokio::task::block_in_place(|| lambda.invoke_ok(&file));
    let url = |key: &str| format!("s3://{bucket}/{key}");
    let indexed = "10 events: 10 indexed, 0 already present, 0 dead-lettered";
    assert_eq!(response["invocationSchemaVersion"], "2.0", "{response}");
    assert_eq!(response["invocationId"], "bG9jYWwtaW52b2tl", "{response}");
    assert_eq!(response["treatMissingKeysAs"], "TemporaryFailure", "{response}");
    let results = response["results"].as_array().unwrap();
    let code = |i: usize| results[i]["resultCode"].as_str().unwrap();
    let text = |i: usize| results[i]["resultString"].as_str().unwrap();
    assert_eq!(results.len(), 5, "{response}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["taskId"], format!("task-{i}"), "{response}");
    }
    assert_eq!((code(0), text(0)), ("Succeeded", indexed));
    assert_eq!(
        (code(1), text(1).to_owned()),
        (
            "PermanentFailure",
            format!("not a CloudTrail log file (a digest file): {}", url(digest))
        )
    );
    assert_eq!(code(2), "TemporaryFailure", "{response}");
    assert!(
        text(2).contains("10 items still failing after 2 attempts")
            && text(2).contains("rejected_execution_exception")
            && text(2).ends_with(&url(&keys[1])),
        "{response}"
    );
    assert_eq!((code(3), text(3)), ("Succeeded", indexed));
    assert_eq!((code(4), text(4)), ("Succeeded", indexed));
    let summaries = lambda.summary_lines();
    assert_eq!(summaries.len(), 1, "{}", lambda.function.output());
    assert_eq!(summaries[0]["fields"]["input"], "batch-operations", "{}", summaries[0]);
    assert_eq!(summaries[0]["fields"]["item_failures"], 2, "{}", summaries[0]);

    // Batch Operations redrives the temporary failure alone: it lands, nothing else changes.
    let redrive = json!({
        "invocationSchemaVersion": "2.0",
        "invocationId": "bG9jYWwtaW52b2tlLTI",
        "job": {"id": "7c1e3a52-0b6f-4e8e-9d1a-3f5b2c4d6e70"},
        "tasks": [task(2, bucket, &keys[1])],
    });
    std::fs::write(&file, redrive.to_string()).unwrap();
    let again = tokio::task::block_in_place(|| lambda.invoke_ok(&file));
    assert_eq!(again["results"][0]["resultCode"], "Succeeded", "{again}");
    assert_eq!(again["results"][0]["resultString"], indexed, "{again}");

    let landed = node::landed(&prefix).await;
    let prefix_ = prefix.as_str();
    let expected: BTreeSet<(String, String)> = (0..4)
        .flat_map(|f| {
            (0..10).map(move |r| {
                (
                    format!("{prefix_}-2024.02.0{}", f + 1),
                    format!("111122223333:batchops-{f}-{r}"),
                )
            })
        })
        .collect();
    assert_eq!(landed.len(), 40, "every event once: {landed:?}");
    assert_eq!(landed.into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        node::count(&format!("{prefix}-deadletter-*"), "*").await,
        0,
        "nothing dead-lettered"
    );
    let bulks: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains("_bulk"))
        .map(|r| r.fault.clone())
        .collect();
    assert_eq!(
        bulks,
        ["Pass", "RejectItems", "RejectItems", "Pass", "Pass", "Pass"],
        "one bulk per file, two for the throttled one, one for its redrive"
    );
    let log = lambda.function.stdout.lock().unwrap().clone();
    assert!(
        !log.contains("already past"),
        "the shim gives the function a real deadline: {log}"
    );
}
