//! `bootstrap`: the Lambda function. Parses its configuration once at cold start, builds the
//! HTTP client and signer once, and serves invocations through the same handler the CLI runs.

use aws_credential_types::provider::SharedCredentialsProvider;
use cwl_indexer::Config;
use cwl_indexer::alerts::Alerts;
use cwl_indexer::auth::{self, Auth};
use cwl_indexer::config::ConfigError;
use cwl_indexer::enrich::Enrichment;
use cwl_indexer::handler::Indexer;
use cwl_indexer::s3::TrailStore;
use cwl_indexer::sink::OpenSearch;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sink = config.sink.as_ref().ok_or_else(|| ConfigError {
        var: "OPENSEARCH_ENDPOINT",
        value: String::new(),
        reason: "required: the https:// URL of the OpenSearch domain".into(),
    })?;
    // Lambda puts the role's credentials in the environment; no network call at init.
    let credentials = auth::credentials_from_env();
    let auth = Auth::new(&sink.auth, credentials.clone())?;
    let opensearch = OpenSearch::new(sink, auth, &config)?;
    let enrichment = Enrichment::load(&config.signals)?;
    let alerts = alerts(&config, credentials.clone())?;
    // S3 notifications: the client is built without a network call, and only used when one arrives.
    let trails = match (std::env::var("AWS_REGION"), credentials) {
        (Ok(region), Some(credentials)) => Some(TrailStore::new(region, credentials, config.s3_endpoint.as_ref())),
        _ => None,
    };
    tracing::info!(?config, ?enrichment, "cold start");
    let mut indexer = Indexer::new(config).with_enrichment(enrichment);
    if let Some(alerts) = alerts {
        indexer = indexer.with_alerts(alerts);
    }
    if let Some(trails) = trails {
        indexer = indexer.with_trail_store(trails);
    }
    let (indexer, opensearch) = (&indexer, &opensearch);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        let mut sink = opensearch;
        indexer.handle_event(event, &mut sink).await
    }))
    .await
}

/// The SNS alerts, if `ALERT_TOPIC_ARN` is set, with the function's credentials.
fn alerts(config: &Config, credentials: Option<SharedCredentialsProvider>) -> Result<Option<Alerts>, Error> {
    let signals = &config.signals;
    let Some(topic) = signals.alert_topic_arn.clone() else {
        return Ok(None);
    };
    let region = std::env::var("AWS_REGION").map_err(|_| "ALERT_TOPIC_ARN needs AWS_REGION")?;
    let credentials = credentials.ok_or("ALERT_TOPIC_ARN needs the function's AWS credentials")?;
    Ok(Some(Alerts::new(
        topic,
        region,
        credentials,
        signals.sns_endpoint.as_ref(),
        signals.alert_min_severity,
        signals.dashboards_url.clone(),
    )))
}
