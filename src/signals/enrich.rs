//! Security signals at ingest: what the [`geo`](crate::signals::geo) databases say about the caller,
//! and which [`rules`](crate::signals::rules) match, computed once per record while its document is
//! written, and collected per invocation for alerts.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Severity;
use crate::ingest::record::{Placement, Record};
use crate::signals::event::RecordEvent;
use crate::signals::geo::{self, Geo, GeoDb};
use crate::signals::rules::{Correlations, RuleInfo, RuleOptions, RuleSet, RulesError};

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
    /// The rule name (Sigma `name`, else the id).
    pub name: String,
    /// The rule title.
    pub title: String,
    /// The rule severity.
    pub severity: Severity,
    /// ATT&CK technique ids from the rule's tags.
    pub techniques: Vec<String>,
    /// Where to read the rule (its SigmaHQ source link, or its file or reference).
    pub source: String,
    /// The rule's author, for a SigmaHQ rule (DRL 1.1: messages built from a match name it).
    pub author: Option<String>,
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

/// Per-invocation state: correlation windows and the matches so far.
#[derive(Debug, Default)]
pub struct Signals {
    /// Correlation state of this invocation.
    pub correlations: Correlations,
    /// Every match, in document order.
    pub matches: Vec<SignalMatch>,
}

/// What enrichment adds to one document.
#[derive(Debug, Default)]
pub struct Findings {
    /// The source address and what is known of it.
    pub source: Option<(Geo, bool)>,
    /// Matching rules.
    pub rules: Vec<Arc<RuleInfo>>,
}

/// Why enrichment could not be set up at cold start.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// A GeoIP database.
    #[error(transparent)]
    Geo(#[from] crate::signals::geo::GeoError),
    /// A rule that cannot be used: file, line, reason.
    #[error("SIGMA_RULES: {0}")]
    Rules(#[from] RulesError),
}

impl Enrichment {
    /// Loads the databases and rules the configuration names, once, at cold start.
    pub fn load(config: &crate::config::SignalsConfig) -> Result<Self, EnrichError> {
        let geo = GeoDb::open(config.geoip_db.as_deref(), config.geoip_asn_db.as_deref())?;
        let rules = if config.detections {
            let user = match &config.sigma_rules {
                Some(path) => read_rules(path)?,
                None => Vec::new(),
            };
            RuleSet::load(&RuleOptions {
                user,
                disabled: config.disabled_rules.clone(),
                allowed_countries: config.allowed_countries.clone(),
            })?
        } else {
            RuleSet::default()
        };
        Ok(Self { geo, rules })
    }

    /// True when there is nothing to add to documents.
    pub fn is_empty(&self) -> bool {
        self.geo.is_empty() && self.rules.is_empty()
    }

    /// Looks up the caller and evaluates the rules for `record`.
    pub fn examine(&self, record: &Record<'_>, signals: &mut Signals) -> Findings {
        let source = source_address(record).map(|(ip, public)| {
            if public && !self.geo.is_empty() {
                (self.geo.lookup(ip), true)
            } else {
                (Geo::unknown(ip), public)
            }
        });
        let country = source.as_ref().and_then(|(g, _)| g.country_iso_code.as_deref());
        let rules = self
            .rules
            .evaluate(&RecordEvent::new(record, country), &mut signals.correlations);
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

/// The highest level among `rules`.
pub fn severity(rules: &[Arc<RuleInfo>]) -> Option<Severity> {
    rules.iter().map(|r| r.level).max()
}

/// The Sigma rule files at `path` (a `.yml`/`.yaml` file, or a directory searched
/// recursively), sorted by path: (path, text). Any unreadable file fails.
pub fn read_rules(path: &Path) -> Result<Vec<(String, String)>, RulesError> {
    let fail = |p: &Path, e: std::io::Error| RulesError {
        file: p.display().to_string(),
        line: None,
        reason: e.to_string(),
    };
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| fail(&dir, e))? {
                let p = entry.map_err(|e| fail(&dir, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                    files.push(p);
                }
            }
        }
        if files.is_empty() {
            return Err(RulesError {
                file: path.display().to_string(),
                line: None,
                reason: "no .yml or .yaml file in the directory".into(),
            });
        }
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| fail(&p, e))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}
