//! SigV4 against an independent verifier: `tests/sigv4_proxy.py` recomputes every
//! signature with botocore, answers 403 on a mismatch, and forwards verified requests to
//! the real node.

mod common;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::node::{self, Pipeline};
use common::sigv4_proxy::Proxy;
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::config::AuthConfig;
use cwl_indexer::deliver::Auth;
use cwl_indexer::handler::HandlerError;

const KEY: &str = "AKIDCWLINDEXERTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEPr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==";

fn signed_pipeline(prefix: &str, proxy: &Proxy, service: &str, secret: &str, gzip: bool) -> Pipeline {
    let mut config = node::config(prefix, &proxy.url);
    let auth_config = AuthConfig::SigV4 {
        region: "eu-west-1".into(),
        service: service.into(),
    };
    let sink = config.sink.as_mut().unwrap();
    sink.auth = auth_config.clone();
    sink.gzip = gzip;
    let credentials = SharedCredentialsProvider::new(Credentials::new(KEY, secret, Some(TOKEN.into()), None, "test"));
    let auth = Auth::new(&auth_config, Some(credentials)).unwrap();
    Pipeline::new(config, Some(auth))
}

fn fixture(name: &str) -> CloudWatchLogsEvent {
    serde_json::from_slice(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap()
}

#[tokio::test]
async fn signed_requests_verify_and_land() {
    for (service, gzip) in [("es", true), ("es", false), ("aoss", true)] {
        let prefix = node::unique_prefix("sigv4");
        let _cleanup = node::Cleanup(prefix.clone());
        let proxy = Proxy::start(service, KEY, SECRET, TOKEN);
        let pipeline = signed_pipeline(&prefix, &proxy, service, SECRET, gzip);
        let mut events_in = 0;
        for name in ["console-login-failure.json", "root-activity.json"] {
            let (summary, result) = pipeline.invoke(&fixture(name), None).await;
            result.unwrap_or_else(|e| panic!("{service} gzip={gzip} {name}: {e}"));
            assert_eq!(summary.delivery.dead_lettered, 0);
            events_in += summary.events_in;
        }
        let (verified, rejected) = proxy.stats().await;
        // GET /, GET and PUT of two templates, then the bulk requests.
        assert!(verified >= 4, "{service}: {verified} verified");
        assert_eq!(rejected, 0, "{service} gzip={gzip}: every signature verifies");
        node::refresh(&prefix).await;
        assert!(node::count(&format!("{prefix}-*"), "*").await > 0);
        assert!(events_in > 0);
    }
}

#[tokio::test]
async fn a_wrong_secret_fails_the_invocation_and_indexes_nothing() {
    let prefix = node::unique_prefix("sigv4bad");
    let _cleanup = node::Cleanup(prefix.clone());
    let proxy = Proxy::start("es", KEY, SECRET, TOKEN);
    let pipeline = signed_pipeline(&prefix, &proxy, "es", "not-the-secret", true);
    let (summary, result) = pipeline.invoke(&fixture("console-login-failure.json"), None).await;
    let err = result.unwrap_err();
    assert!(matches!(err, HandlerError::Sink(_)), "{err}");
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(
        summary.failed, summary.events_in,
        "every event is reported as not delivered"
    );
    let (verified, rejected) = proxy.stats().await;
    assert_eq!(verified, 0);
    assert!(rejected >= 1);
    node::refresh(&prefix).await;
    assert_eq!(node::count(&format!("{prefix}-*"), "*").await, 0);
}
