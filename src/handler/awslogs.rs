//! A CloudWatch Logs subscription event: one payload, `base64(gzip(envelope))`, through the
//! indexer; the invocation fails as a whole, and Lambda retries it, if any event is unsettled.

use super::source::Run;
use crate::indexer::HandlerError;
use crate::pipeline::Sink;

/// Indexes the payload `data`; what was done becomes the run's summary.
pub(crate) async fn process<S: Sink>(run: &mut Run<'_, S>, data: &str) -> Result<(), HandlerError> {
    let (done, result) = run.indexer.process_data(data, run.sink, run.deadline).await;
    *run.total = done;
    result
}
