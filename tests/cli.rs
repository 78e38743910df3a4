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
