//! `bootstrap`: the Lambda function. Parses its configuration once at cold start, wires the
//! indexer and its clients once ([`cwl_indexer::wire`]), and serves invocations through the
//! same handler the CLI runs.

use cwl_indexer::config::ConfigError;
use cwl_indexer::{Aws, Config, Wired};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    if config.sink.is_none() {
        return Err(ConfigError {
            var: "OPENSEARCH_ENDPOINT",
            value: String::new(),
            reason: "required: the https:// URL of the OpenSearch domain".into(),
        }
        .into());
    }
    // Lambda puts the role's credentials in the environment; no network call at init.
    // A rule file that does not compile stops the cold start here, naming its file, line and
    // reason (Display, not the error's Debug form, in the log and in Lambda's init error).
    let Wired { indexer, opensearch } = cwl_indexer::wire(config, &Aws::from_env()).map_err(|e| {
        tracing::error!(error = %e, "cold start failed");
        Error::from(e.to_string())
    })?;
    let opensearch = opensearch.ok_or("OPENSEARCH_ENDPOINT: no cluster client was built")?;
    tracing::info!(config = ?indexer.config(), enrichment = ?indexer.enrichment(), "cold start");
    let (indexer, opensearch) = (&indexer, &opensearch);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        let mut sink = opensearch;
        indexer.handle_event(event, &mut sink).await
    }))
    .await
}
