//! Secrets never reach the logs, even at trace level: the AWS secret key, the session token,
//! signatures and the basic-auth password are absent from everything the CLI prints while
//! it signs, sends and retries against the real node.

mod common;

use std::process::Command;

use common::node;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzSECRETKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjSESSIONTOKENzZWNyZXQ=";
const PASSWORD: &str = "correct-horse-battery-staple-7";

fn run_cli(envs: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cwl-indexer"))
        .args(["--log-format", "json"])
        .args(args)
        .env("RUST_LOG", "trace")
        .env("LOG_SIGNABLE_BODY", "true")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().count() > 20,
        "trace logging is on: {} lines",
        text.lines().count()
    );
    text
}

fn assert_clean(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked into the logs: {secret}");
    }
    assert!(!text.contains("Signature="), "a SigV4 signature leaked");
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("authorization: basic") && !lower.contains("\"basic "),
        "a basic-auth header leaked"
    );
}

#[test]
fn sigv4_credentials_and_signatures_never_reach_the_logs() {
    let prefix = node::unique_prefix("secrets");
    let _cleanup = node::Cleanup(prefix.clone());
    let proxy = common::sigv4_proxy::Proxy::start("es", "AKIDSECRETSTEST", SECRET, TOKEN);
    let url = proxy.url.clone();
    let fixture = common::fixtures()
        .join("console-login-failure.json")
        .display()
        .to_string();
    let text = run_cli(
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDSECRETSTEST"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_REGION", "eu-west-1"),
            ("INDEX_PREFIX", &prefix),
            ("INDEX_REPLICAS", "0"),
            ("HOME", "/nonexistent"),
        ],
        &["--endpoint", &url, "--auth", "sigv4", "replay", &fixture],
    );
    drop(proxy);
    assert!(
        text.contains("16 log events: "),
        "the replay went through the verifier: {text:.2000}"
    );
    assert_clean(&text, &[SECRET, TOKEN]);
}

#[test]
fn the_basic_auth_password_never_reaches_the_logs() {
    let prefix = node::unique_prefix("secretsbasic");
    let _cleanup = node::Cleanup(prefix.clone());
    let fixture = common::fixtures().join("root-activity.json").display().to_string();
    let text = run_cli(
        &[
            ("BASIC_AUTH_USER", "indexer"),
            ("BASIC_AUTH_PASSWORD", PASSWORD),
            ("INDEX_PREFIX", &prefix),
            ("INDEX_REPLICAS", "0"),
        ],
        &["--endpoint", &node::url(), "--auth", "basic", "replay", &fixture],
    );
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("indexer:{PASSWORD}"));
    assert_clean(&text, &[PASSWORD, &encoded]);
}
