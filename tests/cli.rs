//! The `cwl-indexer` binary: `replay --dry-run` prints valid bulk NDJSON for every fixture,
//! and a broken envelope exits non-zero with one line on stderr, never a panic.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(args)
        .env_remove("INDEX_PREFIX")
        .env_remove("RAW_MESSAGE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run cwl-indexer")
}

fn fixture_files(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

/// Log event counts of a fixture, read independently of the library (through gzip + JSON).
fn events_in(path: &str) -> (String, usize) {
    use base64::Engine as _;
    use std::io::Read;
    let event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(event["awslogs"]["data"].as_str().unwrap())
        .unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut json).unwrap();
    let envelope: Value = serde_json::from_str(&json).unwrap();
    (
        envelope["messageType"].as_str().unwrap().to_owned(),
        envelope["logEvents"].as_array().unwrap().len(),
    )
}

#[test]
fn dry_run_prints_valid_bulk_ndjson_for_every_fixture() {
    let files = fixture_files(&common::fixtures());
    assert!(files.len() >= 15, "{files:?}");
    for file in &files {
        let out = cli(&["replay", "--dry-run", file]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let pairs = common::pairs(&out.stdout);
        let (kind, n) = events_in(file);
        let expected = if kind == "CONTROL_MESSAGE" { 0 } else { n };
        assert_eq!(pairs.len(), expected, "{file}: one document per log event");
        for (action, doc) in pairs {
            let create = action["create"]
                .as_object()
                .unwrap_or_else(|| panic!("{file}: {action}"));
            assert_eq!(create.len(), 2, "{file}: _index and _id only: {action}");
            assert!(create["_index"].as_str().unwrap().starts_with("cwl-"));
            assert!(!create["_id"].as_str().unwrap().is_empty());
            for field in ["@id", "@timestamp", "@owner", "@log_group", "@log_stream"] {
                assert!(doc.get(field).is_some(), "{file}: {field} missing");
            }
        }
    }
}

#[test]
fn dry_run_of_several_files_concatenates_their_bodies() {
    let a = common::fixtures()
        .join("console-login-failure.json")
        .display()
        .to_string();
    let b = common::fixtures().join("root-activity.json").display().to_string();
    let both = cli(&["replay", "--dry-run", &a, &b]);
    let mut separate = cli(&["replay", "--dry-run", &a]).stdout;
    separate.extend(cli(&["replay", "--dry-run", &b]).stdout);
    assert_eq!(both.stdout, separate);
}

#[test]
fn config_flags_override_the_environment() {
    let file = common::fixtures()
        .join("console-login-failure.json")
        .display()
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(["--index-prefix", "audit", "replay", "--dry-run", &file])
        .env("INDEX_PREFIX", "ignored")
        .env("RAW_MESSAGE", "always")
        .output()
        .unwrap();
    assert!(out.status.success());
    for (action, doc) in common::pairs(&out.stdout) {
        assert!(action["create"]["_index"].as_str().unwrap().starts_with("audit-"));
        assert!(doc["@message"].is_string(), "RAW_MESSAGE from the environment applies");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(["replay", "--dry-run", &file])
        .env("BULK_MAX_BYTES", "tiny")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("BULK_MAX_BYTES"));
}

#[test]
fn summary_counts_documents_per_index() {
    let file = common::fixtures()
        .join("console-login-failure.json")
        .display()
        .to_string();
    let out = cli(&["replay", "--dry-run", "--summary", &file]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let per_index: usize = text
        .lines()
        .filter(|l| l.starts_with("cwl-"))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(per_index, 16, "{text}");
    assert!(text.contains("16 log events: 16 CloudTrail"), "{text}");
}

#[test]
fn broken_envelopes_fail_with_one_line() {
    let expected = [
        ("bad-base64.json", "not valid base64"),
        ("not-gzip.json", "not gzip data"),
        ("truncated-gzip.json", "truncated gzip"),
        ("not-an-envelope.json", "not a CloudWatch Logs envelope"),
        ("gzip-bomb.json", "exceeds MAX_PAYLOAD_BYTES"),
        ("not-a-lambda-event.json", "not a CloudWatch Logs Lambda event"),
    ];
    let dir = common::fixtures().join("broken");
    assert_eq!(
        fixture_files(&dir).len(),
        expected.len(),
        "every broken fixture is covered"
    );
    for (name, reason) in expected {
        let out = cli(&["replay", "--dry-run", &dir.join(name).display().to_string()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(stderr.contains(reason) && stderr.contains(name), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn missing_file_and_missing_dry_run_are_errors() {
    let out = cli(&["replay", "--dry-run", "/nonexistent/event.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/event.json"));
    let file = common::fixtures().join("insights.json").display().to_string();
    assert!(!cli(&["replay", &file]).status.success());
}

#[test]
fn decode_prints_the_envelope() {
    let file = common::fixtures()
        .join("account-level-policy.json")
        .display()
        .to_string();
    let out = cli(&["decode", &file]);
    assert!(out.status.success());
    let env: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(env["policyLevel"], "ACCOUNT_LEVEL_POLICY");
    assert_eq!(env["logEvents"].as_array().unwrap().len(), 3);
}

/// The `(index, _id)` of every action line `replay --dry-run` printed.
fn targets(ndjson: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(ndjson).unwrap();
    text.lines()
        .step_by(2)
        .map(|line| {
            let action: Value = serde_json::from_str(line).unwrap();
            let create = &action["create"];
            (
                create["_index"].as_str().unwrap().to_owned(),
                create["_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn inputs(name: &str) -> String {
    common::fixtures().join("inputs").join(name).display().to_string()
}

#[test]
fn replay_takes_a_kinesis_event_with_the_ids_of_the_awslogs_events_it_carries() {
    let kinesis = inputs("kinesis.json");
    let out = cli(&["replay", "--dry-run", &kinesis]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(r#"{"batchItemFailures":[]}"#), "{stderr}");
    // Each Kinesis record's data is what CloudWatch Logs puts in `awslogs.data`.
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&kinesis).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("cwl-cli-kinesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut direct = Vec::new();
    for (i, record) in event["Records"].as_array().unwrap().iter().enumerate() {
        let path = dir.join(format!("awslogs-{i}.json"));
        let awslogs = serde_json::json!({"awslogs": {"data": record["kinesis"]["data"]}});
        std::fs::write(&path, awslogs.to_string()).unwrap();
        direct.push(path.display().to_string());
    }
    let mut args = vec!["replay", "--dry-run"];
    args.extend(direct.iter().map(String::as_str));
    let awslogs = cli(&args);
    assert!(awslogs.status.success(), "{}", String::from_utf8_lossy(&awslogs.stderr));
    let (through_kinesis, direct) = (targets(&out.stdout), targets(&awslogs.stdout));
    assert!(!direct.is_empty());
    assert_eq!(through_kinesis, direct, "the same _ids and indices either way");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_reports_the_kinesis_record_the_function_would_retry() {
    let dir = std::env::temp_dir().join(format!("cwl-cli-kinesis-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(inputs("kinesis.json")).unwrap()).unwrap();
    event["Records"][1]["kinesis"]["data"] = "bm90IGd6aXA=".into();
    let sequence = event["Records"][1]["kinesis"]["sequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = dir.join("kinesis-one-bad.json");
    std::fs::write(&path, event.to_string()).unwrap();
    let out = cli(&["replay", "--dry-run", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let failures = format!(r#"{{"batchItemFailures":[{{"itemIdentifier":"{sequence}"}}]}}"#);
    assert!(stderr.contains(&failures), "{stderr}");
    assert!(stderr.contains("1 batch items failed"), "{stderr}");
    // The other four records were still encoded.
    assert!(!targets(&out.stdout).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `replay` with moto's S3 on loopback as `S3_ENDPOINT_URL` (and no instance metadata).
fn cli_with_s3(moto: &common::moto::Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(args)
        .env_remove("INDEX_PREFIX")
        .env_remove("RAW_MESSAGE")
        .env_remove("RUST_LOG")
        .env("S3_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("run cwl-indexer")
}

#[test]
fn replay_takes_s3_notifications_direct_and_through_sns_and_sqs() {
    const BUCKET: &str = "cwl-indexer-fixture-trail";
    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/111122223333_CloudTrail_us-east-1_20240115T0000Z_fixture.json.gz";
    let moto = common::moto::start_moto();
    let file = common::fixtures().join("inputs/trail").join(KEY);
    common::moto::boto(
        &moto,
        &format!(
            "s3 = boto3.client('s3', **kw)\ns3.create_bucket(Bucket={BUCKET:?})\ns3.upload_file({:?}, {BUCKET:?}, {KEY:?})",
            file.display().to_string()
        ),
    );
    // The same 40 events as delivered by CloudWatch Logs.
    let cwl = cli(&[
        "replay",
        "--dry-run",
        &common::fixtures()
            .join("multi-region-111122223333-us-east-1.json")
            .display()
            .to_string(),
    ]);
    let mut expected = targets(&cwl.stdout);
    expected.sort();
    assert_eq!(expected.len(), 40);
    for (name, batch) in [
        ("s3-notification.json", false),
        ("sns-s3-notification.json", false),
        ("sqs-s3-notification.json", true),
        ("sqs-sns-s3-notification.json", true),
    ] {
        let out = cli_with_s3(&moto, &["replay", "--dry-run", &inputs(name)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let mut got = targets(&out.stdout);
        got.sort();
        assert_eq!(got, expected, "{name}: the CloudWatch Logs documents' _ids");
        assert_eq!(
            stderr.contains(r#"{"batchItemFailures":[]}"#),
            batch,
            "{name}: {stderr}"
        );
        let summary = cli_with_s3(&moto, &["replay", "--dry-run", "--summary", &inputs(name)]);
        assert!(
            String::from_utf8_lossy(&summary.stdout).contains("40 log events: 40 CloudTrail"),
            "{name}"
        );
    }
    // Without an S3 client the notification fails, saying what is missing.
    let out = Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(["replay", "--dry-run", &inputs("s3-notification.json")])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("S3_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs an S3 client"), "{stderr}");
}

/// A user rule: `eventName` equal to `name`, with `body` replacing the selection when given.
fn user_rule(id: &str, name: &str, level: &str) -> String {
    format!(
        "title: User rule {name}\nid: {id}\nstatus: test\nauthor: a user\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName: {name}\n  condition: sel\nlevel: {level}\n"
    )
}

fn rules_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(args)
        .env_remove("SIGMA_RULES")
        .env_remove("DISABLED_RULES")
        .env_remove("ALLOWED_COUNTRIES")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run cwl-indexer")
}

#[test]
fn rules_list_shows_every_rule_with_its_source_and_whether_it_is_on() {
    let dir = tempdir("rules-list");
    // Replaces the bundled root-activity rule by id, and adds one.
    std::fs::write(
        dir.join("root.yml"),
        user_rule("de45f90e-5fc0-4f77-b605-5b7883f4a1a1", "ListBuckets", "critical"),
    )
    .unwrap();
    std::fs::write(
        dir.join("kms.yml"),
        user_rule("0b7e8a2c-0000-4000-8000-000000000001", "ScheduleKeyDeletion", "high"),
    )
    .unwrap();
    let out = rules_cli(
        &["rules", "list"],
        &[
            ("SIGMA_RULES", dir.to_str().unwrap()),
            ("DISABLED_RULES", "iam-user-created"),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{id} in {text}"))
            .clone()
    };
    assert_eq!(
        text.lines().next().unwrap(),
        "id\tlevel\tenabled\tsource\ttitle\tauthor\tlink"
    );
    assert_eq!(rows.iter().filter(|r| r[3] == "sigmahq").count(), 57);
    let root = row("de45f90e-5fc0-4f77-b605-5b7883f4a1a1");
    assert_eq!(
        (root[1], root[2], root[4]),
        ("critical", "yes", "User rule ListBuckets")
    );
    assert!(
        root[3].starts_with("user:") && root[3].ends_with("root.yml"),
        "{root:?}"
    );
    assert_eq!(row("0b7e8a2c-0000-4000-8000-000000000001")[1], "high");
    // AssumeRole Misuse is off by default; DISABLED_RULES takes names too; no list, no country rule.
    assert_eq!(
        row("905d389b-b853-46d0-9d3d-dea0d3a3cd49")[2],
        "yes",
        "DISABLED_RULES replaces the default list"
    );
    let user_created = rows.iter().find(|r| r[4].starts_with("IAM user created")).unwrap();
    assert_eq!(user_created[2], "no (DISABLED_RULES)");
    let country = rows.iter().find(|r| r[4].contains("outside the allow-list")).unwrap();
    assert_eq!(country[2], "no (ALLOWED_COUNTRIES is not set)");
    let sigmahq = rows.iter().find(|r| r[3] == "sigmahq").unwrap();
    assert!(
        !sigmahq[5].is_empty() && sigmahq[6].starts_with("https://github.com/SigmaHQ/sigma/blob/"),
        "{sigmahq:?}"
    );

    let out = rules_cli(&["rules", "list"], &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("905d389b-b853-46d0-9d3d-dea0d3a3cd49\tlow\tno (DISABLED_RULES)\tsigmahq"),
        "{text}"
    );
}

#[test]
fn rules_test_names_the_record_and_the_rule_for_lambda_events_and_ndjson() {
    let out = rules_cli(
        &[
            "rules",
            "test",
            common::fixtures().join("root-activity.json").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l
            .contains("\tConsoleLogin\troot-activity\thigh\tRoot user activity\tde45f90e-5fc0-4f77-b605-5b7883f4a1a1")),
        "{text}"
    );
    let dir = tempdir("rules-test");
    let records = dir.join("records.ndjson");
    let ok = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"}}"#;
    let stop = r#"{"eventVersion":"1.08","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},"requestParameters":{"name":"t"}}"#;
    std::fs::write(&records, format!("{ok}\n{stop}\n")).unwrap();
    let out = rules_cli(&["rules", "test", records.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().all(|l| l.contains("records.ndjson:2\tStopLogging\t")),
        "{text}"
    );
    assert!(text.contains("\ttrail-tampering\t"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 records, 1 matched a rule"));
}

#[test]
fn rules_check_fails_with_the_file_line_and_reason() {
    let dir = tempdir("rules-check");
    let good = user_rule("0b7e8a2c-0000-4000-8000-000000000002", "ScheduleKeyDeletion", "high");
    std::fs::write(dir.join("a.yml"), &good).unwrap();
    let out = rules_cli(&["rules", "check", dir.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok: 1 rules in 1 files compile\n");
    for (bad, line, reason) in [
        (
            good.replace("eventName: ", "eventName|contians: "),
            10,
            "Unknown modifier 'contians'",
        ),
        (
            good.replace("condition: sel", "condition: sel or ("),
            11,
            "Condition parse error",
        ),
        (
            good.replace("eventName: ScheduleKeyDeletion", "eventName|re: 'Schedule(['"),
            10,
            "invalid regex",
        ),
    ] {
        std::fs::write(dir.join("b.yml"), &bad).unwrap();
        let out = rules_cli(&["rules", "check", dir.to_str().unwrap()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let expected = format!("{}:{line}: ", dir.join("b.yml").display());
        assert!(
            stderr.contains(&expected) && stderr.contains(reason),
            "{expected} {reason}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_bad_sigma_rules_stops_the_cold_start_with_the_file_line_and_reason() {
    let dir = tempdir("cold-start");
    let bad =
        user_rule("0b7e8a2c-0000-4000-8000-000000000003", "X", "high").replace("eventName: ", "eventName|contians: ");
    std::fs::write(dir.join("bad.yml"), bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs([
            ("OPENSEARCH_ENDPOINT", "http://127.0.0.1:9"),
            ("AUTH", "none"),
            ("SIGMA_RULES", dir.to_str().unwrap()),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = format!(
        "SIGMA_RULES: {}:10: Unknown modifier 'contians'",
        dir.join("bad.yml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // The old variable is refused, not ignored.
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs([
            ("OPENSEARCH_ENDPOINT", "http://127.0.0.1:9"),
            ("AUTH", "none"),
            ("RULES_FILE", "/opt/r.json"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RULES_FILE"));
}

/// A fresh directory under the target directory (removed first if left over).
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
