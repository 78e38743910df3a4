//! `bootstrap`: the Lambda function. Parses its configuration once at cold start, builds
//! the indexer, and serves invocations through the same handler the CLI runs.

use cwl_indexer::handler::{CloudWatchLogsEvent, Indexer, Sink};
use cwl_indexer::{Config, bulk::BulkChunk, envelope::Envelope};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Until delivery lands, the function builds the bodies and discards them.
struct Discard;

impl Sink for Discard {
    type Error = std::convert::Infallible;

    async fn send(&mut self, _chunk: &BulkChunk, _envelope: &Envelope<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    tracing::info!(?config, "cold start");
    let indexer = Indexer::new(config);
    let indexer = &indexer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<CloudWatchLogsEvent>| async move {
        indexer.handle(event, &mut Discard).await
    }))
    .await
}
