//! Security signals, computed at ingest while each CloudTrail record's document is written:
//! where the caller came from (GeoIP, ASN), which detection rules match, and one SNS alert
//! per invocation for the matches that matter.
//!
//! - `geo`, `countries`: MaxMind-format databases, loaded once at cold start.
//! - `rules`: the detection rules, evaluated on the borrowed record.
//! - `enrich`: both, per record, collected per invocation as [`Signals`].
//! - `alerts`: the SNS message composed from an invocation's matches.

pub(crate) mod alerts;
pub(crate) mod countries;
pub(crate) mod enrich;
pub(crate) mod geo;
pub(crate) mod rules;

pub use crate::config::Severity;
pub use alerts::{AlertError, Alerts, GUARDDUTY_RULE_PREFIX, compose, discover_link};
pub use enrich::{EnrichError, Enrichment, Findings, SignalMatch, Signals, source_address};
pub use geo::{Geo, GeoDb, GeoError};
pub use rules::{DEFAULT_RULES, Rule, RuleSet, RulesError};
