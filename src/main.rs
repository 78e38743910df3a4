//! `bootstrap`: the Lambda function. Parses its configuration once at cold start, builds the
//! HTTP client and signer once, and serves invocations through the same handler the CLI runs.

use cwl_indexer::Config;
use cwl_indexer::auth::{self, Auth};
use cwl_indexer::config::ConfigError;
use cwl_indexer::handler::{CloudWatchLogsEvent, Indexer};
use cwl_indexer::sink::OpenSearch;
use lambda_runtime::{Error, LambdaEvent, service_fn};

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
    let auth = Auth::new(&sink.auth, auth::credentials_from_env())?;
    let opensearch = OpenSearch::new(sink, auth, &config)?;
    tracing::info!(?config, "cold start");
    let indexer = Indexer::new(config);
    let (indexer, opensearch) = (&indexer, &opensearch);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<CloudWatchLogsEvent>| async move {
        let mut sink = opensearch;
        indexer.handle(event, &mut sink).await
    }))
    .await
}
