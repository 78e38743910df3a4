//! SNS alerts against a real SNS API on loopback (moto's server mode): one message per
//! invocation, exactly the summary composed from the invocation's rule matches, delivered
//! to a subscribed SQS queue and read back from it.

mod common;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::moto::{boto, start_moto};
use common::node::{self, Pipeline};
use cwl_indexer::CloudWatchLogsEvent;
use cwl_indexer::config::{Config, SignalsConfig};
use cwl_indexer::index::{BulkChunk, BulkEncoder};
use cwl_indexer::ingest as envelope;
use cwl_indexer::signals::Enrichment;
use cwl_indexer::signals::Severity;
use cwl_indexer::signals::{self as alerts, Alerts};
use serde_json::Value;

fn fixture(name: &str) -> CloudWatchLogsEvent {
    serde_json::from_slice(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap()
}

/// The matches the transform finds in `event`, with the same enrichment.
fn matches_of(
    event: &CloudWatchLogsEvent,
    enrichment: &Enrichment,
    prefix: &str,
) -> (String, Vec<cwl_indexer::signals::SignalMatch>) {
    let config = Config {
        index_prefix: prefix.into(),
        ..Config::default()
    };
    let mut payload = Vec::new();
    envelope::decode_payload(&event.awslogs.data, 1 << 24, &mut payload).unwrap();
    let env = envelope::parse_envelope(&payload).unwrap();
    let mut encoder = BulkEncoder::new(&config, &env).with_enrichment(enrichment);
    let mut chunk = BulkChunk::default();
    while encoder.next_chunk(&mut chunk) {}
    (env.log_group.to_string(), encoder.signals().matches.clone())
}

/// An SNS topic named `name` with an SQS queue subscribed: `{"topic": arn, "queue": url}`.
fn topic_and_queue(moto: &common::moto::Moto, name: &str) -> Value {
    let setup = boto(
        moto,
        &format!(
            "sns = boto3.client('sns', **kw); sqs = boto3.client('sqs', **kw)\n\
             topic = sns.create_topic(Name={name:?})['TopicArn']\n\
             q = sqs.create_queue(QueueName={name:?})['QueueUrl']\n\
             arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
             sns.subscribe(TopicArn=topic, Protocol='sqs', Endpoint=arn)\n\
             print(json.dumps({{'topic': topic, 'queue': q}}))"
        ),
    );
    serde_json::from_str(&setup).unwrap()
}

/// The SNS messages delivered to the queue of `ids` so far.
fn received(moto: &common::moto::Moto, ids: &Value) -> Vec<Value> {
    let received = boto(
        moto,
        &format!(
            "sqs = boto3.client('sqs', **kw)\nout = []\n\
             for _ in range(5):\n    r = sqs.receive_message(QueueUrl={:?}, MaxNumberOfMessages=10, WaitTimeSeconds=1)\n    out += [json.loads(m['Body']) for m in r.get('Messages', [])]\n\
             print(json.dumps(out))",
            ids["queue"].as_str().unwrap()
        ),
    );
    serde_json::from_str(&received).unwrap()
}

#[tokio::test]
async fn one_alert_per_invocation_with_exactly_the_composed_summary() {
    let moto = start_moto();
    let ids = topic_and_queue(&moto, "cwl-alerts");

    let prefix = node::unique_prefix("alerts");
    let _cleanup = node::Cleanup(prefix.clone());
    let enrichment = Enrichment::load(&SignalsConfig::default()).unwrap();
    let dashboards = url::Url::parse("https://search.example.com/_dashboards").unwrap();
    let credentials = SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test"));
    let alerts = Alerts::new(
        ids["topic"].as_str().unwrap().into(),
        "us-east-1".into(),
        credentials,
        Some(&url::Url::parse(&moto.url).unwrap()),
        Severity::Medium,
        Some(dashboards.clone()),
    );
    let config = node::config(&prefix, &node::url());
    let mut pipeline = Pipeline::new(config, None);
    pipeline.indexer = pipeline
        .indexer
        .with_enrichment(Enrichment::load(&SignalsConfig::default()).unwrap())
        .with_alerts(alerts);

    let mut expected = Vec::new();
    for name in ["root-activity.json", "console-login-failure.json", "insights.json"] {
        let event = fixture(name);
        let (summary, result) = pipeline.invoke(&event, None).await;
        result.unwrap();
        let (group, matches) = matches_of(&event, &enrichment, &prefix);
        assert_eq!(summary.signals, matches.len(), "{name}");
        let composed = alerts::compose(&matches, Severity::Medium, Some(&dashboards), &group);
        assert_eq!(summary.alert_message_id.is_some(), composed.is_some(), "{name}");
        expected.extend(composed);
    }
    assert!(expected.len() >= 2, "root activity and failed logins both alert");

    let received = received(&moto, &ids);
    let got: Vec<(String, String)> = received
        .iter()
        .map(|m| {
            (
                m["Subject"].as_str().unwrap().to_owned(),
                m["Message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected, "one message per invocation, exactly as composed");
    assert!(got[0].0.starts_with("[HIGH] cwl-indexer: "), "{}", got[0].0);
    assert!(
        got[0].1.contains("Root user activity (root-activity): "),
        "{}",
        got[0].1
    );
    assert!(got.iter().all(|(s, _)| s.len() <= 100));
    // A SigmaHQ rule's alert names its author (DRL 1.1) and source link; ours their technique.
    assert!(
        got[0]
            .1
            .contains("AWS Root Credentials (8ad1600d-e9dc-4251-b0ee-a65268f29add): ")
            && got[0]
                .1
                .contains("  author: vitaliy0x1 (SigmaHQ, Detection Rule License 1.1)\n")
            && got[0].1.contains("https://github.com/SigmaHQ/sigma/blob/"),
        "{}",
        got[0].1
    );
    assert!(got[0].1.contains("  ATT&CK: T1078.004\n"), "{}", got[0].1);
}

#[tokio::test]
async fn guardduty_findings_at_or_above_the_threshold_alert_once_per_invocation() {
    let moto = start_moto();
    let ids = topic_and_queue(&moto, "cwl-findings");
    let prefix = node::unique_prefix("gdalerts");
    let _cleanup = node::Cleanup(prefix.clone());
    let credentials = SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test"));
    let alerts = Alerts::new(
        ids["topic"].as_str().unwrap().into(),
        "us-east-1".into(),
        credentials,
        Some(&url::Url::parse(&moto.url).unwrap()),
        Severity::High,
        None,
    );
    // No GeoIP and no rules: findings alert without any enrichment.
    let mut pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    pipeline.indexer = pipeline.indexer.with_alerts(alerts);

    let mut expected = Vec::new();
    for name in ["guardduty/findings-bare.json", "guardduty/findings-eventbridge.json"] {
        let event = fixture(name);
        let (summary, result) = pipeline.invoke(&event, None).await;
        result.unwrap();
        assert!(summary.guardduty > 0, "{summary:?}");
        let (group, matches) = matches_of(&event, &Enrichment::default(), &prefix);
        assert!(matches.iter().all(|m| m.rule.starts_with("guardduty:")), "{matches:?}");
        assert_eq!(summary.signals, matches.len(), "{name}");
        let composed = alerts::compose(&matches, Severity::High, None, &group);
        assert_eq!(summary.alert_message_id.is_some(), composed.is_some(), "{name}");
        expected.extend(composed);
    }
    assert!(!expected.is_empty(), "the fixtures hold high and critical findings");

    let received = received(&moto, &ids);
    let got: Vec<(String, String)> = received
        .iter()
        .map(|m| {
            (
                m["Subject"].as_str().unwrap().to_owned(),
                m["Message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected, "one message per invocation, exactly as composed");
    for (_, body) in &got {
        assert!(body.contains("GuardDuty findings at or above high"), "{body}");
        assert!(!body.contains("[LOW]") && !body.contains("[MEDIUM]"), "{body}");
        assert!(body.contains(&format!("document: {prefix}-guardduty-")), "{body}");
    }
}
