//! A CloudWatch Logs subscription event: one payload, `base64(gzip(envelope))`, through the
//! indexer; the invocation fails as a whole, and Lambda retries it, if any event is unsettled.

use std::time::Instant;

use crate::indexer::{HandlerError, Indexer};
use crate::pipeline::{Sink, Summary};

/// Indexes the payload `data`, adding what was done to `summary`.
pub(crate) async fn process<S: Sink>(
    indexer: &Indexer,
    data: &str,
    sink: &mut S,
    deadline: Option<Instant>,
    summary: &mut Summary,
) -> Result<(), HandlerError> {
    let (done, result) = indexer.process_data(data, sink, deadline).await;
    *summary = done;
    result
}
