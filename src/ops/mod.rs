//! Operations around the pipeline: one EMF metrics line per invocation (`metrics`), and the
//! re-drive of dead letters once their cause is fixed (`redrive`).

pub(crate) mod metrics;
pub(crate) mod redrive;

pub use metrics::{NAMESPACE, emf};
pub use redrive::{RedriveError, RedriveReport, redrive};
