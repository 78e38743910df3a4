//! The SigV4 verifier (`tests/sigv4_proxy.py`, botocore) started in front of the real node
//! for a test, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running verifier.
pub struct Proxy {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

/// The venv's Python (botocore, moto): `make test` creates it with `scripts/venv.sh`.
pub fn python() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python =
        std::env::var("CWL_TEST_PYTHON").unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run `bash scripts/venv.sh` (make test does) to install botocore"
    );
    python
}

impl Proxy {
    /// Verifies signatures for `service` in eu-west-1 with these credentials, forwarding to
    /// the node.
    pub fn start(service: &str, key: &str, secret: &str, token: &str) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(python())
            .arg(root.join("tests/sigv4_proxy.py"))
            .args([
                "--upstream",
                &super::node::url(),
                "--region",
                "eu-west-1",
                "--service",
                service,
                "--port",
                "0",
            ])
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_SESSION_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/sigv4_proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .expect(&line)
            .to_owned();
        Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// `(verified, rejected)` requests so far.
    pub async fn stats(&self) -> (u64, u64) {
        let body = reqwest::get(format!("{}/__sigv4_proxy/stats", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["verified"].as_u64().unwrap(), v["rejected"].as_u64().unwrap())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
