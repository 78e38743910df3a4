//! moto's server mode: real AWS APIs (S3, SQS, SNS) on loopback, started per test from the
//! git-ignored venv (`scripts/venv.sh`), and boto3 snippets to arrange and inspect them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::sigv4_proxy::python;

/// A moto server, killed and reaped when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto on a free port and waits until it accepts connections.
pub fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python())
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned by the guard from here on: it is killed and waited for however the test ends.
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return moto;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not start");
}

impl Moto {
    /// The environment that points the CLI's aws-config chain at this server, and at nothing
    /// of the machine's (no profile, no instance metadata).
    pub fn cli_env(&self) -> [(&'static str, String); 7] {
        [
            ("S3_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// Runs a boto3 snippet against moto; `print` what the test reads.
pub fn boto(moto: &Moto, script: &str) -> String {
    let full = format!(
        "import boto3, json\nkw = dict(endpoint_url={:?}, region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{script}",
        moto.url
    );
    let out = Command::new(python()).args(["-c", &full]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The fixture trail bucket (`fixtures/inputs/trail/`) and its one CloudTrail file.
pub const TRAIL_BUCKET: &str = "cwl-indexer-fixture-trail";
/// The fixture CloudTrail file's key.
pub const TRAIL_KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/111122223333_CloudTrail_us-east-1_20240115T0000Z_fixture.json.gz";

/// moto with [`TRAIL_BUCKET`] holding the fixture CloudTrail file at [`TRAIL_KEY`].
pub fn with_trail_file() -> Moto {
    let moto = start_moto();
    let file = super::fixtures().join("inputs/trail").join(TRAIL_KEY);
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
