//! `s3:TestEvent`: S3 sends it once when a notification is configured. There is nothing to
//! index; it is acknowledged so that it is not retried.

use crate::indexer::HandlerError;

/// Skips the test event.
pub(crate) fn skip() -> Result<(), HandlerError> {
    tracing::info!("s3:TestEvent: skipped");
    Ok(())
}
