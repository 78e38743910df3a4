//! Security signals, computed at ingest while each CloudTrail record's document is written:
//! where the caller came from (GeoIP, ASN), which Sigma rules match, and one SNS alert
//! per invocation for the matches that matter.
//!
//! - `geo`, `countries`: MaxMind-format databases, loaded once at cold start.
//! - `rules`: the Sigma rules (bundled and `SIGMA_RULES`), compiled once; `event`: the
//!   borrowed record as the evaluator's event.
//! - `enrich`: both, per record, collected per invocation as [`Signals`].
//! - `alerts`: the SNS message composed from an invocation's matches.

pub(crate) mod alerts;
pub(crate) mod countries;
pub(crate) mod enrich;
pub(crate) mod event;
pub(crate) mod geo;
pub(crate) mod rules;

pub use crate::config::Severity;
pub use alerts::{AlertError, Alerts, GUARDDUTY_RULE_PREFIX, compose, discover_link};
pub use enrich::{EnrichError, Enrichment, Findings, SignalMatch, Signals, read_rules, source_address};
pub use event::{GEO_COUNTRY_FIELD, RecordEvent};
pub use geo::{Geo, GeoDb, GeoError};
pub use rules::{BUNDLED_RULES, Correlations, Origin, RuleInfo, RuleOptions, RuleSet, RulesError, attack, check};
