//! SNS: a notification whose `Message` is an S3 notification, from an SNS record of a
//! Lambda SNS event or from an SNS envelope in an SQS body.

use std::time::Instant;

use crate::indexer::{HandlerError, Indexer};
use crate::pipeline::{Sink, Summary};

/// Runs the S3 notification inside an SNS `message`, adding what was done to `total`.
pub(crate) async fn envelope<S: Sink>(
    indexer: &Indexer,
    message: &str,
    sink: &mut S,
    deadline: Option<Instant>,
    total: &mut Summary,
) -> Result<(), HandlerError> {
    indexer.notification_text(message, sink, deadline, total).await
}
