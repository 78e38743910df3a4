//! SNS: a notification whose `Message` is an S3 notification, from an SNS record of a
//! Lambda SNS event or from an SNS envelope in an SQS body.

use super::source::{Run, notification_text};
use crate::indexer::HandlerError;
use crate::pipeline::Sink;

/// Runs the S3 notification inside an SNS `message`, adding what was done to the run's total.
pub(crate) async fn envelope<S: Sink>(run: &mut Run<'_, S>, message: &str) -> Result<(), HandlerError> {
    notification_text(run, message).await
}
