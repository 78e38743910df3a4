//! Security signals at ingest: what the [`geo`](crate::signals::geo) databases say about the caller,
//! and which [`rules`](crate::signals::rules) match, computed once per record while its document is
//! written, and collected per invocation for alerts.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Severity;
use crate::ingest::record::{Placement, Record};
use crate::signals::geo::{self, Geo, GeoDb};
use crate::signals::rules::RuleSet;

/// Built once at cold start: the databases and the rules.
#[derive(Debug, Default)]
pub struct Enrichment {
    /// GeoIP databases (possibly none).
    pub geo: GeoDb,
    /// Detection rules (possibly none).
    pub rules: RuleSet,
}

/// One rule match, kept for the invocation's alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalMatch {
    /// The rule id.
    pub rule: String,
    /// The rule title.
    pub title: String,
    /// The rule severity.
    pub severity: Severity,
    /// Who: `userIdentity.arn`, else its `type`.
    pub principal: Option<String>,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// The caller's country, when known.
    pub country: Option<String>,
    /// `eventName`.
    pub event_name: Option<String>,
    /// `eventTime`.
    pub event_time: Option<String>,
    /// The document's index.
    pub index: String,
    /// The document's `_id`.
    pub id: String,
}

/// Per-invocation state: burst counters and the matches so far.
#[derive(Debug, Default)]
pub struct Signals {
    /// Burst counts by (rule, key).
    pub bursts: BTreeMap<(usize, String), usize>,
    /// Every match, in document order.
    pub matches: Vec<SignalMatch>,
}

/// What enrichment adds to one document.
#[derive(Debug, Default)]
pub struct Findings<'r> {
    /// The source address and what is known of it.
    pub source: Option<(Geo, bool)>,
    /// Matching rules.
    pub rules: Vec<&'r crate::signals::rules::Rule>,
}

/// Why enrichment could not be set up at cold start.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// A GeoIP database.
    #[error(transparent)]
    Geo(#[from] crate::signals::geo::GeoError),
    /// The rules.
    #[error("RULES_FILE: {0}")]
    Rules(#[from] crate::signals::rules::RulesError),
    /// The rules file could not be read.
    #[error("RULES_FILE={path}: {reason}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Enrichment {
    /// Loads the databases and rules the configuration names, once, at cold start.
    pub fn load(config: &crate::config::SignalsConfig) -> Result<Self, EnrichError> {
        let geo = GeoDb::open(config.geoip_db.as_deref(), config.geoip_asn_db.as_deref())?;
        let rules = if config.detections {
            let extra = config
                .rules_file
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map(|text| (p.display().to_string(), text))
                        .map_err(|e| EnrichError::Read {
                            path: p.display().to_string(),
                            reason: e.to_string(),
                        })
                })
                .transpose()?;
            let lists =
                std::collections::HashMap::from([("allowed_countries".to_owned(), config.allowed_countries.clone())]);
            RuleSet::load(extra.as_ref().map(|(n, t)| (n.as_str(), t.as_str())), lists)?
        } else {
            RuleSet::default()
        };
        Ok(Self { geo, rules })
    }

    /// True when there is nothing to add to documents.
    pub fn is_empty(&self) -> bool {
        self.geo.is_empty() && self.rules.rules().is_empty()
    }

    /// Looks up the caller and evaluates the rules for `record`.
    pub fn examine<'r>(&'r self, record: &Record<'_>, signals: &mut Signals) -> Findings<'r> {
        let source = source_address(record).map(|(ip, public)| {
            if public && !self.geo.is_empty() {
                (self.geo.lookup(ip), true)
            } else {
                (Geo::unknown(ip), public)
            }
        });
        let country = source.as_ref().and_then(|(g, _)| g.country_iso_code.as_deref());
        let rules = self.rules.evaluate(record, country, &mut signals.bursts);
        Findings { source, rules }
    }
}

/// The address `sourceIPAddress` names (see [`geo::source_ip`]), and whether it is public.
pub fn source_address(record: &Record<'_>) -> Option<(std::net::IpAddr, bool)> {
    let field = record
        .fields
        .iter()
        .find(|f| f.key == "sourceIPAddress" && f.placement == Placement::Keep)?;
    let text = serde_json::from_str::<std::borrow::Cow<'_, str>>(field.value.get()).ok()?;
    geo::source_ip(&text)
}

/// The highest severity among `rules`.
pub fn severity(rules: &[&crate::signals::rules::Rule]) -> Option<Severity> {
    rules.iter().map(|r| r.severity).max()
}
