//! Detections at ingest: Sigma rules (the 57 SigmaHQ CloudTrail rules and ours, compiled into
//! the binary, plus a user's `SIGMA_RULES`), compiled once at cold start by rsigma-eval and
//! evaluated on each borrowed record; correlations count within one invocation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rsigma_eval::{CorrelationConfig, CorrelationEngine, Engine, EvaluationResult, Pipeline, parse_pipeline};
use rsigma_parser::{
    ConditionExpr, CorrelationRule, Detection, Level, Quantifier, SelectorPattern, SigmaCollection, SigmaRule,
    SigmaValue, parse_sigma_yaml,
};

use crate::config::Severity;
use crate::signals::event::RecordEvent;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled_rules.rs"));
}

/// The bundled rule files, compiled into the binary: (path in the repository, text).
pub const BUNDLED_RULES: &[(&str, &str)] = bundled::BUNDLED;

/// The SigmaHQ commit the vendored rules come from (their source links point there).
const SIGMAHQ_COMMIT: &str = "8eaafff1f2845a696050e05e72ba1140ee190698";

/// The placeholder the country rule's allow-list fills (`ALLOWED_COUNTRIES`).
const COUNTRIES_PLACEHOLDER: &str = "%allowed_countries%";

/// Rule attributes rsigma-eval turns into engine-wide defaults: a user rule carrying one
/// would change every correlation's behaviour, so they are refused.
const ENGINE_WIDE_ATTRIBUTES: &[&str] = &["rsigma.action", "rsigma.timestamp_field"];

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Vendored from SigmaHQ (DRL 1.1: alerts name its author).
    SigmaHq,
    /// One of cwl-indexer's own rules.
    CwlIndexer,
    /// A user's, from `SIGMA_RULES`.
    User,
}

impl Origin {
    /// `sigmahq`, `cwl-indexer` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigmaHq => "sigmahq",
            Self::CwlIndexer => "cwl-indexer",
            Self::User => "user",
        }
    }
}

/// What is known of one rule, for documents, alerts and `rules list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The Sigma `id` (a UUID): what `signal.rules` holds.
    pub id: String,
    /// The Sigma `name`, else the id (ours keep the former JSON rule ids here).
    pub name: String,
    /// The Sigma `title`.
    pub title: String,
    /// The Sigma `level` (`informational` counts as low).
    pub level: Severity,
    /// The Sigma `author`.
    pub author: String,
    /// Where to read the rule: the SigmaHQ source link, or the file.
    pub source: String,
    /// The file it was loaded from.
    pub file: String,
    /// Where it comes from.
    pub origin: Origin,
    /// ATT&CK tactic names from the `attack.<tactic>` tags, e.g. `Defense Evasion`.
    pub tactics: Vec<String>,
    /// ATT&CK technique ids from the `attack.tNNNN[.NNN]` tags, e.g. `T1562.008`.
    pub techniques: Vec<String>,
    /// A correlation rule.
    pub correlation: bool,
    /// Only the input of a correlation (`generate: false`): it never alerts on its own.
    pub silent: bool,
    /// Why it is not evaluated (`DISABLED_RULES`, a missing list, replaced), or `None`.
    pub disabled: Option<String>,
}

/// Why the rules cannot be used: the file, the line when known, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RulesError {
    /// The rule file (or `SIGMA_RULES`' path).
    pub file: String,
    /// The 1-based line of the offending key, when it can be found.
    pub line: Option<usize>,
    /// Why.
    pub reason: String,
}

/// What the rules are loaded with.
#[derive(Debug, Clone, Default)]
pub struct RuleOptions {
    /// The user's rule files: (path, text), loaded after the bundled ones.
    pub user: Vec<(String, String)>,
    /// Ids switched off (`DISABLED_RULES`).
    pub disabled: Vec<String>,
    /// `ALLOWED_COUNTRIES`; empty leaves the country rule out.
    pub allowed_countries: Vec<String>,
}

/// The compiled rules, built once at cold start.
#[derive(Default)]
pub struct RuleSet {
    /// Detection rules that require a literal `eventName` or `eventSource` (of [`Self::gate`]),
    /// evaluated only on records carrying one of them.
    gated: Option<Engine>,
    /// Detection rules that can match any record.
    open: Option<Engine>,
    /// The lower-cased `eventName` (`false`) and `eventSource` (`true`) values the gated rules
    /// require, one of which a record must carry for them to be evaluated.
    gate: HashSet<(bool, String)>,
    /// Correlations, compiled afresh per invocation that needs one (their state is the
    /// invocation's).
    correlations: Vec<CorrelationRule>,
    /// Ids of the base rules of correlations.
    bases: HashSet<String>,
    /// Base rules that do not alert on their own (`generate: false`, the default).
    silent: HashSet<String>,
    /// Every enabled rule, by id.
    enabled: HashMap<String, Arc<RuleInfo>>,
    /// Every rule seen, enabled or not, in load order.
    catalogue: Vec<RuleInfo>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("enabled", &self.enabled.len())
            .field("correlations", &self.correlations.len())
            .finish_non_exhaustive()
    }
}

/// Per-invocation correlation state: created on the first match of a correlation's base
/// rule, dropped with the invocation.
#[derive(Default)]
pub struct Correlations {
    engine: Option<CorrelationEngine>,
}

impl std::fmt::Debug for Correlations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlations")
            .field("active", &self.engine.is_some())
            .finish()
    }
}

/// One parsed document's rule, before compiling.
enum Parsed {
    Detection(Box<SigmaRule>),
    Correlation(Box<CorrelationRule>),
}

impl Parsed {
    fn id(&self) -> Option<&str> {
        match self {
            Self::Detection(r) => r.id.as_deref(),
            Self::Correlation(c) => c.id.as_deref(),
        }
    }
}

impl RuleSet {
    /// The bundled rules, then the user's (a user rule with a bundled id replaces it), minus
    /// `disabled`; the country rule only with an allow-list. Any rule that does not parse or
    /// compile fails the whole load with its file, line and reason: a rule is never dropped
    /// silently.
    pub fn load(options: &RuleOptions) -> Result<Self, RulesError> {
        let mut loaded: Vec<(Parsed, RuleInfo, bool)> = Vec::new(); // rule, info, uses the countries list
        let bundled = BUNDLED_RULES.iter().map(|(p, t)| (p.to_string(), t.to_string(), false));
        let user = options.user.iter().map(|(p, t)| (p.clone(), t.clone(), true));
        for (file, text, is_user) in bundled.chain(user) {
            let origin = if is_user {
                Origin::User
            } else if file.starts_with("rules/sigma/sigmahq/") {
                Origin::SigmaHq
            } else {
                Origin::CwlIndexer
            };
            for (parsed, uses_list) in parse_file(&file, &text, is_user)? {
                let info = info_of(&parsed, &file, origin);
                if let Some(at) = loaded.iter().position(|(_, i, _)| i.id == info.id) {
                    if !is_user {
                        return Err(RulesError {
                            file,
                            line: line_of(&text, &info.id),
                            reason: format!("duplicate rule id {} (also in {})", info.id, loaded[at].1.file),
                        });
                    }
                    // A user rule replaces the bundled rule with its id.
                    loaded.remove(at);
                }
                loaded.push((parsed, info, uses_list));
            }
        }
        let mut set = Self::default();
        let mut collection = SigmaCollection::new();
        for (parsed, mut info, uses_list) in loaded {
            if options.disabled.iter().any(|d| *d == info.id || *d == info.name) {
                info.disabled = Some("DISABLED_RULES".into());
            } else if uses_list && options.allowed_countries.is_empty() {
                info.disabled = Some("ALLOWED_COUNTRIES is not set".into());
            }
            if info.disabled.is_none() {
                set.enabled.insert(info.id.clone(), Arc::new(info.clone()));
                match parsed {
                    Parsed::Detection(r) => collection.rules.push(*r),
                    Parsed::Correlation(c) => collection.correlations.push(*c),
                }
            }
            set.catalogue.push(info);
        }
        for c in &collection.correlations {
            set.bases.extend(c.rules.iter().cloned());
            if !c.generate {
                set.silent.extend(c.rules.iter().cloned());
            }
        }
        for info in &mut set.catalogue {
            info.silent = set.silent.contains(&info.id);
            if let Some(enabled) = set.enabled.get_mut(&info.id) {
                *enabled = Arc::new(info.clone());
            }
        }
        if !collection.rules.is_empty() {
            let (mut gated, mut open) = (Engine::new(), Engine::new());
            gated.add_pipeline(countries_pipeline(&options.allowed_countries)?);
            open.add_pipeline(countries_pipeline(&options.allowed_countries)?);
            let (mut n_gated, mut n_open) = (0, 0);
            // Compiled one by one so that a failure (a bad regex) names its rule's file.
            for rule in &collection.rules {
                let engine = match required_keys(rule) {
                    Some(keys) => {
                        set.gate.extend(keys);
                        n_gated += 1;
                        &mut gated
                    }
                    None => {
                        n_open += 1;
                        &mut open
                    }
                };
                engine.add_rule(rule).map_err(|e| {
                    let info = rule.id.as_deref().and_then(|id| set.enabled.get(id));
                    let file = info.map_or_else(String::new, |i| i.file.clone());
                    let text = source_text(&file, options);
                    RulesError {
                        line: text.and_then(|t| line_of_compile_error(t, rule)),
                        file,
                        reason: format!("rule {:?}: {}", rule.title, one_line(&e.to_string())),
                    }
                })?;
            }
            set.gated = (n_gated > 0).then_some(gated);
            set.open = (n_open > 0).then_some(open);
            tracing::debug!(gated = n_gated, open = n_open, keys = set.gate.len(), "rules compiled");
        }
        for c in &collection.correlations {
            if let Err(e) = correlation_engine(std::slice::from_ref(c)) {
                let file =
                    c.id.as_deref()
                        .and_then(|id| set.enabled.get(id))
                        .map_or_else(String::new, |i| i.file.clone());
                return Err(RulesError {
                    line: source_text(&file, options).and_then(|t| line_of(t, "correlation:")),
                    file,
                    reason: format!("correlation {:?}: {}", c.title, one_line(&e.to_string())),
                });
            }
            if let Some(missing) = c
                .rules
                .iter()
                .find(|r| !set.enabled.contains_key(*r) && !set.enabled.values().any(|i| i.name == **r))
            {
                tracing::info!(
                    correlation = c.title,
                    rule = missing,
                    "a correlation's base rule is not loaded"
                );
            }
        }
        set.correlations = collection.correlations;
        Ok(set)
    }

    /// Every rule seen, enabled or not, in load order (for `rules list`).
    pub fn catalogue(&self) -> &[RuleInfo] {
        &self.catalogue
    }

    /// The enabled rule with this id.
    pub fn rule(&self, id: &str) -> Option<&RuleInfo> {
        self.enabled.get(id).map(|r| r.as_ref())
    }

    /// The number of rules evaluated (detections and correlations).
    pub fn len(&self) -> usize {
        self.enabled.len()
    }

    /// True when no rule is evaluated.
    pub fn is_empty(&self) -> bool {
        self.enabled.is_empty()
    }

    /// The detection rules matching `event` on its own: no correlation, base rules of
    /// correlations included (to test a rule's condition on one record).
    pub fn detect(&self, event: &RecordEvent<'_, '_>) -> Vec<Arc<RuleInfo>> {
        self.detections(event)
            .iter()
            .filter_map(|r| self.enabled.get(r.header.rule_id.as_deref()?).cloned())
            .collect()
    }

    /// The rules matching `event`, correlations included (their state in `state`, which lives
    /// for one invocation). Base rules of correlations do not appear on their own.
    pub fn evaluate(&self, event: &RecordEvent<'_, '_>, state: &mut Correlations) -> Vec<Arc<RuleInfo>> {
        let detections = self.detections(event);
        if detections.is_empty() {
            return Vec::new();
        }
        let id_of = |r: &EvaluationResult| r.header.rule_id.clone().unwrap_or_default();
        let results: Vec<EvaluationResult> = if detections.iter().any(|d| self.bases.contains(&id_of(d))) {
            let correlator = state.engine.get_or_insert_with(|| {
                // Compiled at load already: this cannot fail.
                correlation_engine(&self.correlations).unwrap_or_else(|_| CorrelationEngine::new(config()))
            });
            // One timestamp for the whole invocation: a window is the invocation.
            correlator.process_with_detections(event, detections, 0)
        } else {
            detections
        };
        let mut out: Vec<Arc<RuleInfo>> = Vec::new();
        for r in &results {
            let id = id_of(r);
            if r.is_detection() && self.silent.contains(&id) {
                continue;
            }
            if let Some(info) = self.enabled.get(&id)
                && !out.iter().any(|o| o.id == id)
            {
                out.push(info.clone());
            }
        }
        out
    }
}

impl RuleSet {
    /// Every detection match of `event`: the open rules always, the gated ones only when the
    /// record carries one of the `eventName`/`eventSource` values they require.
    fn detections(&self, event: &RecordEvent<'_, '_>) -> Vec<EvaluationResult> {
        let mut out = self.open.as_ref().map(|e| e.evaluate(event)).unwrap_or_default();
        if let Some(gated) = &self.gated {
            let carries = |is_source: bool, key: &str| {
                event
                    .top_str(key)
                    .is_some_and(|v| self.gate.contains(&(is_source, v.to_ascii_lowercase())))
            };
            if carries(false, "eventName") || carries(true, "eventSource") {
                out.extend(gated.evaluate(event));
            }
        }
        out
    }
}

/// Literal (`eventSource` if `true`, else `eventName`, lower-cased) values, one of which a
/// record must carry.
type Keys = HashSet<(bool, String)>;

/// The literal `eventName`/`eventSource` values (lower-cased: Sigma's equality ignores case)
/// one of which a record must carry for `rule` to match; `None` when the rule can match without
/// (a negation, a wildcard or modifier on them, or no such field).
fn required_keys(rule: &SigmaRule) -> Option<Keys> {
    let d = &rule.detection;
    union(d.conditions.iter().map(|c| condition_keys(c, &d.named)).collect())
}

/// An OR: every branch must require something, and the record one of them all.
fn union(sets: Vec<Option<Keys>>) -> Option<Keys> {
    let mut all = Keys::new();
    for set in sets {
        all.extend(set?);
    }
    (!all.is_empty()).then_some(all)
}

/// An AND: one branch's requirement is enough; the smallest.
fn smallest(sets: Vec<Option<Keys>>) -> Option<Keys> {
    sets.into_iter().flatten().min_by_key(HashSet::len)
}

fn condition_keys(c: &ConditionExpr, named: &HashMap<String, Detection>) -> Option<Keys> {
    match c {
        ConditionExpr::Identifier(name) => selection_keys(named.get(name)?),
        ConditionExpr::And(xs) => smallest(xs.iter().map(|x| condition_keys(x, named)).collect()),
        ConditionExpr::Or(xs) => union(xs.iter().map(|x| condition_keys(x, named)).collect()),
        ConditionExpr::Not(_) => None,
        ConditionExpr::Selector { quantifier, pattern } => {
            let picked: Vec<Option<Keys>> = named
                .iter()
                .filter(|(n, _)| match pattern {
                    SelectorPattern::Them => !n.starts_with('_'),
                    SelectorPattern::Pattern(p) => glob(p, n),
                })
                .map(|(_, d)| selection_keys(d))
                .collect();
            match quantifier {
                Quantifier::All => smallest(picked),
                Quantifier::Any | Quantifier::Count(_) => union(picked),
            }
        }
    }
}

/// A selection's requirement: a map (AND of its fields) needs one field's plain values, a
/// list of maps (OR) every map's.
fn selection_keys(d: &Detection) -> Option<Keys> {
    match d {
        Detection::AllOf(items) => smallest(
            items
                .iter()
                .map(|item| {
                    let is_source = match item.field.name.as_deref()? {
                        "eventName" => false,
                        "eventSource" => true,
                        _ => return None,
                    };
                    if !item.field.modifiers.is_empty() || item.values.is_empty() {
                        return None;
                    }
                    item.values
                        .iter()
                        .map(|v| match v {
                            SigmaValue::String(s) => s.as_plain().map(|p| (is_source, p.to_ascii_lowercase())),
                            _ => None,
                        })
                        .collect::<Option<Keys>>()
                })
                .collect(),
        ),
        Detection::AnyOf(subs) => union(subs.iter().map(selection_keys).collect()),
        _ => None,
    }
}

/// Sigma's selector patterns: `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(after) = name.strip_prefix(head) else {
                return false;
            };
            (0..=after.len()).any(|i| after.is_char_boundary(i) && glob(rest, &after[i..]))
        }
    }
}

/// The correlation settings: every suppression pinned to none unless a rule sets its own (a
/// rule's `rsigma.suppress` would otherwise become every correlation's), base rules silent.
fn config() -> CorrelationConfig {
    CorrelationConfig {
        emit_detections: false,
        suppress: Some(0),
        ..CorrelationConfig::default()
    }
}

/// A correlation engine holding only `correlations`: detections are computed by the
/// stateless [`Engine`] and fed in.
fn correlation_engine(correlations: &[CorrelationRule]) -> Result<CorrelationEngine, rsigma_eval::EvalError> {
    let mut engine = CorrelationEngine::new(config());
    for c in correlations {
        engine.add_correlation(c)?;
    }
    Ok(engine)
}

/// The pipeline filling `%allowed_countries%`.
fn countries_pipeline(countries: &[String]) -> Result<Pipeline, RulesError> {
    let mut pipeline = parse_pipeline(
        "name: cwl-indexer placeholders\npriority: 10\ntransformations:\n  - id: allowed_countries\n    type: value_placeholders\n",
    )
    .map_err(|e| RulesError {
        file: "(the placeholders pipeline)".into(),
        line: None,
        reason: e.to_string(),
    })?;
    pipeline.vars.insert("allowed_countries".into(), countries.to_vec());
    Ok(pipeline)
}

/// The text of a loaded file, to find lines in (bundled or the user's).
fn source_text<'a>(file: &str, options: &'a RuleOptions) -> Option<&'a str> {
    BUNDLED_RULES
        .iter()
        .find(|(p, _)| *p == file)
        .map(|(_, t)| *t)
        .or_else(|| options.user.iter().find(|(p, _)| p == file).map(|(_, t)| t.as_str()))
}

/// Parses one rule file (one or more YAML documents) into its rules; a document that does not
/// parse fails with the file, the line and the reason.
fn parse_file(file: &str, text: &str, is_user: bool) -> Result<Vec<(Parsed, bool)>, RulesError> {
    let err = |line: Option<usize>, reason: String| RulesError {
        file: file.to_owned(),
        line,
        reason,
    };
    let collection = parse_sigma_yaml(text).map_err(|e| err(yaml_line(&e.to_string()), e.to_string()))?;
    if !collection.errors.is_empty() {
        // Find which document, and in it the offending line.
        for (start, doc) in documents(text) {
            if let Ok(c) = parse_sigma_yaml(doc)
                && let Some(e) = c.errors.first()
            {
                return Err(err(line_of_parse_error(doc, e).map(|l| l + start), first_line(e)));
            }
        }
        return Err(err(None, collection.errors.join("; ")));
    }
    if !collection.filters.is_empty() {
        return Err(err(line_of(text, "filter:"), "filter rules are not supported".into()));
    }
    let mut out = Vec::new();
    for rule in collection.rules {
        check_attributes(file, text, is_user, &rule.custom_attributes)?;
        check_id(file, text, rule.id.as_deref(), &rule.title)?;
        let uses_list = rule_mentions_countries(text, rule.id.as_deref());
        out.push((Parsed::Detection(Box::new(rule)), uses_list));
    }
    for c in collection.correlations {
        check_attributes(file, text, is_user, &c.custom_attributes)?;
        check_id(file, text, c.id.as_deref(), &c.title)?;
        out.push((Parsed::Correlation(Box::new(c)), false));
    }
    if out.is_empty() {
        return Err(err(None, "no Sigma rule in the file".into()));
    }
    Ok(out)
}

fn check_id(file: &str, text: &str, id: Option<&str>, title: &str) -> Result<(), RulesError> {
    if id.is_none_or(|i| i.trim().is_empty()) {
        return Err(RulesError {
            file: file.to_owned(),
            line: line_of(text, title),
            reason: format!(
                "rule {title:?} has no id (every rule needs one: it replaces, disables and names the rule)"
            ),
        });
    }
    Ok(())
}

fn check_attributes<V>(
    file: &str,
    text: &str,
    is_user: bool,
    attributes: &HashMap<String, V>,
) -> Result<(), RulesError> {
    if !is_user {
        return Ok(());
    }
    if let Some(key) = ENGINE_WIDE_ATTRIBUTES.iter().find(|k| attributes.contains_key(**k)) {
        return Err(RulesError {
            file: file.to_owned(),
            line: line_of(text, key),
            reason: format!("{key} is not allowed in a user rule: rsigma-eval would apply it to every rule"),
        });
    }
    Ok(())
}

/// Whether the document of the rule `id` in `text` uses the countries placeholder.
fn rule_mentions_countries(text: &str, id: Option<&str>) -> bool {
    documents(text)
        .into_iter()
        .any(|(_, doc)| id.is_some_and(|id| doc.contains(id)) && doc.contains(COUNTRIES_PLACEHOLDER))
}

/// The YAML documents of `text` with the 0-based line each starts on.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut start_byte, mut start_line) = (0, 0);
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            out.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = n + 1;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start_byte..]));
    out.retain(|(_, d)| !d.trim().is_empty());
    out
}

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|n| n + 1)
}

/// The first line of an error message (rsigma's condition errors draw the condition below).
fn first_line(e: &str) -> String {
    e.lines().next().unwrap_or(e).trim().to_owned()
}

/// A multi-line message (a regex error draws the pattern with a caret) on one line: the lines
/// that are not the drawing.
fn one_line(e: &str) -> String {
    e.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The line a parse error is about: the key carrying an unknown modifier, or the condition.
fn line_of_parse_error(doc: &str, error: &str) -> Option<usize> {
    if let Some(rest) = error.split("modifier '").nth(1)
        && let Some(modifier) = rest.split('\'').next()
    {
        return line_of(doc, &format!("|{modifier}"));
    }
    if error.to_ascii_lowercase().contains("condition") {
        return line_of(doc, "condition:");
    }
    None
}

/// The line of the first regular expression of `rule` that does not compile (what rsigma
/// refuses at compile time), else its title.
fn line_of_compile_error(text: &str, rule: &SigmaRule) -> Option<usize> {
    let doc_start = documents(text)
        .into_iter()
        .find(|(_, d)| rule.id.as_deref().is_some_and(|id| d.contains(id)))
        .map_or(0, |(s, _)| s);
    let lines: Vec<&str> = text.lines().collect();
    let mut in_re = false;
    for (n, line) in lines.iter().enumerate().skip(doc_start) {
        let trimmed = line.trim_start();
        let value = if let Some((key, value)) = trimmed.split_once(':').filter(|(k, _)| !k.starts_with('-')) {
            in_re = key.contains("|re");
            value.trim()
        } else if let Some(item) = trimmed.strip_prefix("- ") {
            item.trim()
        } else {
            continue;
        };
        if in_re && !value.is_empty() {
            let pattern = value.trim_matches(|c| c == '\'' || c == '"');
            if regex::Regex::new(pattern).is_err() {
                return Some(n + 1);
            }
        }
    }
    line_of(text, &rule.title)
}

/// `line N` from a YAML error message.
fn yaml_line(message: &str) -> Option<usize> {
    let rest = message.split("line ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn info_of(parsed: &Parsed, file: &str, origin: Origin) -> RuleInfo {
    let (title, name, level, author, tags, references, correlation) = match parsed {
        Parsed::Detection(r) => (&r.title, &r.name, r.level, &r.author, &r.tags, &r.references, false),
        Parsed::Correlation(c) => (&c.title, &c.name, c.level, &c.author, &c.tags, &c.references, true),
    };
    let id = parsed.id().unwrap_or_default().to_owned();
    let source = match origin {
        Origin::SigmaHq => format!(
            "https://github.com/SigmaHQ/sigma/blob/{SIGMAHQ_COMMIT}/rules/cloud/aws/cloudtrail/{}",
            file.rsplit('/').next().unwrap_or(file)
        ),
        Origin::CwlIndexer | Origin::User => references.first().cloned().unwrap_or_else(|| file.to_owned()),
    };
    let (tactics, techniques) = attack(tags);
    RuleInfo {
        name: name.clone().unwrap_or_else(|| id.clone()),
        id,
        title: title.clone(),
        level: match level {
            Some(Level::Critical) => Severity::Critical,
            Some(Level::High) => Severity::High,
            Some(Level::Medium) => Severity::Medium,
            Some(Level::Low | Level::Informational) | None => Severity::Low,
        },
        author: author.clone().unwrap_or_default(),
        source,
        file: file.to_owned(),
        origin,
        tactics,
        techniques,
        correlation,
        silent: false,
        disabled: None,
    }
}

/// ATT&CK tactic names and technique ids from Sigma tags (`attack.defense-evasion`,
/// `attack.t1562.008`).
pub fn attack(tags: &[String]) -> (Vec<String>, Vec<String>) {
    const TACTICS: &[&str] = &[
        "Reconnaissance",
        "Resource Development",
        "Initial Access",
        "Execution",
        "Persistence",
        "Privilege Escalation",
        "Defense Evasion",
        "Credential Access",
        "Discovery",
        "Lateral Movement",
        "Collection",
        "Command and Control",
        "Exfiltration",
        "Impact",
    ];
    let (mut tactics, mut techniques) = (Vec::new(), Vec::new());
    for tag in tags {
        let Some(rest) = tag.to_ascii_lowercase().strip_prefix("attack.").map(str::to_owned) else {
            continue;
        };
        let is_technique = rest.len() > 1
            && rest.starts_with('t')
            && rest[1..]
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if is_technique {
            let id = rest.to_ascii_uppercase();
            if !techniques.contains(&id) {
                techniques.push(id);
            }
        } else if let Some(name) = TACTICS
            .iter()
            .find(|t| t.to_ascii_lowercase().replace(' ', "-") == rest.replace('_', "-"))
            && !tactics.iter().any(|t| t == name)
        {
            tactics.push((*name).to_owned());
        }
    }
    (tactics, techniques)
}

/// Validates rule files as the function would load them, after the bundled ones (for
/// `rules check`): the first problem with its file, line and reason.
pub fn check(files: Vec<(String, String)>) -> Result<RuleSet, RulesError> {
    RuleSet::load(&RuleOptions {
        user: files,
        disabled: Vec::new(),
        allowed_countries: vec!["US".into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::record::{Message, classify};

    fn names(rules: &RuleSet, message: &str, country: Option<&str>, state: &mut Correlations) -> Vec<String> {
        let Message::CloudTrail(record) = classify(message) else {
            panic!("{message}")
        };
        rules
            .evaluate(&RecordEvent::new(&record, country), state)
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    fn options() -> RuleOptions {
        RuleOptions {
            allowed_countries: vec!["US".into(), "IL".into()],
            ..RuleOptions::default()
        }
    }

    #[test]
    fn the_bundled_rules_load_and_the_country_rule_needs_its_list() {
        let rules = RuleSet::load(&options()).unwrap();
        assert!(rules.len() > 90, "{}", rules.len());
        assert_eq!(
            rules.catalogue().iter().filter(|r| r.origin == Origin::SigmaHq).count(),
            57
        );
        let without = RuleSet::load(&RuleOptions::default()).unwrap();
        assert_eq!(without.len(), rules.len() - 1);
        let country = without
            .catalogue()
            .iter()
            .find(|r| r.name == "unexpected-country")
            .unwrap();
        assert!(country.disabled.is_some());
        let call = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"81.2.69.142"}"#;
        let mut state = Correlations::default();
        assert!(names(&rules, call, Some("GB"), &mut state).contains(&"unexpected-country".to_owned()));
        assert!(!names(&rules, call, Some("US"), &mut state).contains(&"unexpected-country".to_owned()));
        assert!(!names(&without, call, Some("GB"), &mut state).contains(&"unexpected-country".to_owned()));
    }

    #[test]
    fn bursts_count_within_one_invocation_and_base_rules_stay_silent() {
        let rules = RuleSet::load(&options()).unwrap();
        let denied = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","errorCode":"AccessDenied","sourceIPAddress":"198.51.100.7","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"}}"#;
        let mut state = Correlations::default();
        let hits: Vec<bool> = (0..7)
            .map(|_| {
                let n = names(&rules, denied, None, &mut state);
                assert!(!n.contains(&"access-denied-call".to_owned()), "{n:?}");
                n.contains(&"access-denied-burst".to_owned())
            })
            .collect();
        assert_eq!(hits, [false, false, false, false, true, true, true]);
        let mut next = Correlations::default();
        assert!(!names(&rules, denied, None, &mut next).contains(&"access-denied-burst".to_owned()));
    }

    #[test]
    fn user_rules_replace_by_id_and_disabled_rules_are_off() {
        let root = "title: Root, stricter\nid: de45f90e-5fc0-4f77-b605-5b7883f4a1a1\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    userIdentity.type: Root\n  condition: sel\nlevel: critical\n";
        let rules = RuleSet::load(&RuleOptions {
            user: vec![("/opt/rules/root.yml".into(), root.into())],
            disabled: vec!["905d389b-b853-46d0-9d3d-dea0d3a3cd49".into()],
            ..options()
        })
        .unwrap();
        let r = rules
            .catalogue()
            .iter()
            .find(|r| r.id == "de45f90e-5fc0-4f77-b605-5b7883f4a1a1")
            .unwrap();
        assert_eq!(
            (r.level, r.origin, r.title.as_str()),
            (Severity::Critical, Origin::User, "Root, stricter")
        );
        let assume = rules
            .catalogue()
            .iter()
            .find(|r| r.id == "905d389b-b853-46d0-9d3d-dea0d3a3cd49")
            .unwrap();
        assert_eq!(assume.disabled.as_deref(), Some("DISABLED_RULES"));
    }

    #[test]
    fn bad_rules_fail_with_file_line_and_reason() {
        let good = "title: t\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    eventName: A\n  condition: sel\nlevel: low\n";
        for (bad, line, reason) in [
            (good.replace("eventName: A", "eventName|contians: A"), 8, "contians"),
            (good.replace("condition: sel", "condition: sel and ("), 9, "ondition"),
            (good.replace("eventName: A", "eventName|re: '(['"), 8, "regex"),
            (format!("{good}rsigma.action: reset\n"), 11, "rsigma.action"),
        ] {
            let err = check(vec![("u.yml".into(), bad.clone())]).unwrap_err();
            assert_eq!((err.file.as_str(), err.line), ("u.yml", Some(line)), "{bad}: {err}");
            assert!(err.reason.contains(reason), "{err}");
        }
        let multi = format!(
            "{good}---\n{}",
            good.replace("1111", "9999")
                .replace("eventName: A", "eventName|nope: A")
        );
        assert_eq!(check(vec![("m.yml".into(), multi)]).unwrap_err().line, Some(19));
    }

    #[test]
    fn rules_are_gated_by_the_event_names_and_sources_they_require() {
        let parse = |detection: &str| {
            let yaml = format!(
                "title: t\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: aws\ndetection:\n{detection}"
            );
            let rule = parse_sigma_yaml(&yaml).unwrap().rules.remove(0);
            let mut keys: Vec<(bool, String)> = required_keys(&rule).unwrap_or_default().into_iter().collect();
            keys.sort();
            keys
        };
        let key = |s: bool, v: &str| (s, v.to_owned());
        assert_eq!(
            parse(
                "  sel:\n    eventName:\n      - StopLogging\n      - DeleteTrail\n    errorCode: null\n  condition: sel\n"
            ),
            [key(false, "deletetrail"), key(false, "stoplogging")]
        );
        assert_eq!(
            parse(
                "  a:\n    eventSource: iam.amazonaws.com\n  b:\n    userIdentity.type: Root\n  condition: a and not b\n"
            ),
            [key(true, "iam.amazonaws.com")]
        );
        assert_eq!(
            parse("  a:\n    eventName: A\n  b:\n    userIdentity.type: Root\n  condition: a or b\n"),
            []
        );
        assert_eq!(parse("  a:\n    eventName|startswith: Get\n  condition: a\n"), []);
        assert_eq!(parse("  a:\n    eventName: Get*\n  condition: a\n"), []);
        assert_eq!(parse("  a:\n    eventName: A\n  condition: not a\n"), []);
        assert!(glob("sel_*", "sel_1") && glob("*_a*b", "x_ayb") && !glob("sel_*", "filter") && glob("them", "them"));
        assert_eq!(
            parse("  sel_1:\n    eventName: A\n  sel_2:\n    eventName: B\n  condition: 1 of sel_*\n"),
            [key(false, "a"), key(false, "b")]
        );
        let rules = RuleSet::load(&options()).unwrap();
        let open = rules.open.as_ref().map_or(0, Engine::rule_count);
        let gated = rules.gated.as_ref().map_or(0, Engine::rule_count);
        eprintln!("{gated} gated rules on {} keys, {open} open rules", rules.gate.len());
        assert!(gated > 70 && open < 20, "{gated} gated, {open} open");
    }

    #[test]
    fn attack_tags_become_tactic_names_and_technique_ids() {
        let tags = [
            "attack.defense-evasion",
            "attack.t1562.008",
            "attack.command_and_control",
            "attack.s0002",
            "cve.x",
        ];
        let (tactics, techniques) = attack(&tags.map(String::from));
        assert_eq!(tactics, ["Defense Evasion", "Command and Control"]);
        assert_eq!(techniques, ["T1562.008"]);
    }
}
