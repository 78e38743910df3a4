//! Detections at ingest: a small declarative rule set (JSON; `rules/default.json` is built
//! in, users add their own with `RULES_FILE`) evaluated on every CloudTrail record. Fields
//! are read lazily from the borrowed record, so a rule that fails on `eventName` costs
//! nothing more.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Severity;
use crate::ingest::record::Record;

/// The built-in rules, compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.json");

/// A condition on a record.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    /// Every condition holds.
    All {
        /// The conditions.
        all: Vec<Condition>,
    },
    /// At least one condition holds.
    Any {
        /// The conditions.
        any: Vec<Condition>,
    },
    /// The condition does not hold.
    Not {
        /// The condition.
        not: Box<Condition>,
    },
    /// A test on the values at a dotted path (arrays are searched element by element).
    Field(Box<FieldTest>),
}

/// A test on one field. Exactly one operator is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldTest {
    /// Dotted path, e.g. `userIdentity.type` or
    /// `requestParameters.ipPermissions.items.ipRanges.items.cidrIp`; `source.geo.country_iso_code`
    /// reads the enrichment.
    pub field: String,
    /// Some value equals this (string, number or boolean).
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// Some value is one of these.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// Some string value ends with this.
    #[serde(default)]
    pub ends_with: Option<String>,
    /// Some string value contains this.
    #[serde(default)]
    pub contains: Option<String>,
    /// The field is present (and not null), or absent.
    #[serde(default)]
    pub exists: Option<bool>,
    /// Some value is in the named list from the configuration (`allowed_countries`).
    #[serde(default)]
    pub in_list: Option<String>,
    /// Some scalar anywhere inside the field's subtree is one of these.
    #[serde(default)]
    pub any_value_in: Option<Vec<serde_json::Value>>,
    /// Some string anywhere inside the field's subtree contains one of these.
    #[serde(default)]
    pub any_value_contains: Option<Vec<String>>,
    /// Two fields are both present and different (`requestParameters.userName` vs
    /// `@principal_name`: the caller's `userIdentity.userName`, else the last part of its ARN,
    /// which is the session name of an assumed role).
    #[serde(default)]
    pub differs_from: Option<String>,
}

/// Counting matches per key within one invocation.
#[derive(Debug, Clone, Deserialize)]
pub struct Burst {
    /// The field to count by, e.g. `userIdentity.arn`.
    pub by: String,
    /// The count from which every further match is reported.
    pub threshold: usize,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    /// Stable id: it lands in `signal.rules`.
    pub id: String,
    /// Human title, for alerts.
    pub title: String,
    /// How bad a match is.
    pub severity: Severity,
    /// When it matches.
    pub when: Condition,
    /// Optional: only a burst of matches counts.
    #[serde(default)]
    pub burst: Option<Burst>,
    /// Optional documentation.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct RuleFile {
    rules: Vec<Rule>,
}

/// Why a rule file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {reason}")]
pub struct RulesError {
    /// Which file (or the built-in set).
    pub source_name: String,
    /// Why.
    pub reason: String,
}

/// The rules in force and the named lists they refer to.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    lists: HashMap<String, Vec<String>>,
}

impl RuleSet {
    /// The built-in rules, plus `extra` (a user file's contents, named `extra_name`), with the
    /// named lists. A rule whose list is missing or empty is dropped (logged): an allow-list
    /// rule without an allow-list would flag everything.
    pub fn load(extra: Option<(&str, &str)>, lists: HashMap<String, Vec<String>>) -> Result<Self, RulesError> {
        let parse = |name: &str, text: &str| {
            serde_json::from_str::<RuleFile>(text).map_err(|e| RulesError {
                source_name: name.to_owned(),
                reason: e.to_string(),
            })
        };
        let mut rules = parse("rules/default.json", DEFAULT_RULES)?.rules;
        if let Some((name, text)) = extra {
            for rule in parse(name, text)?.rules {
                // A user's rule with a built-in id replaces it.
                rules.retain(|r| r.id != rule.id);
                rules.push(rule);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.as_str()) {
                return Err(RulesError {
                    source_name: extra.map_or("rules/default.json", |e| e.0).to_owned(),
                    reason: format!("duplicate rule id {:?}", r.id),
                });
            }
        }
        rules.retain(|r| {
            let missing = lists_of(&r.when)
                .into_iter()
                .find(|l| lists.get(*l).is_none_or(Vec::is_empty));
            if let Some(list) = missing {
                tracing::info!(rule = r.id, list, "rule disabled: its list is not configured");
            }
            missing.is_none()
        });
        Ok(Self { rules, lists })
    }

    /// The rules in force.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule on `record`; `geo_country` is the enrichment's country code.
    /// Burst rules count in `bursts`, which lives for one invocation.
    pub fn evaluate<'r>(
        &'r self,
        record: &Record<'_>,
        geo_country: Option<&str>,
        bursts: &mut BTreeMap<(usize, String), usize>,
    ) -> Vec<&'r Rule> {
        let fields = Fields {
            record,
            geo_country,
            objects: RefCell::new(Vec::new()),
        };
        let mut matched = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !self.holds(&rule.when, &fields) {
                continue;
            }
            if let Some(burst) = &rule.burst {
                let key = fields
                    .values(&burst.by)
                    .first()
                    .map(|v| scalar_text(v).into_owned())
                    .unwrap_or_default();
                let count = bursts.entry((i, key)).or_default();
                *count += 1;
                if *count < burst.threshold {
                    continue;
                }
            }
            matched.push(rule);
        }
        matched
    }

    fn holds(&self, condition: &Condition, fields: &Fields<'_, '_>) -> bool {
        match condition {
            Condition::All { all } => all.iter().all(|c| self.holds(c, fields)),
            Condition::Any { any } => any.iter().any(|c| self.holds(c, fields)),
            Condition::Not { not } => !self.holds(not, fields),
            Condition::Field(t) => self.test(t, fields),
        }
    }

    fn test(&self, t: &FieldTest, fields: &Fields<'_, '_>) -> bool {
        let values = fields.values(&t.field);
        let present: Vec<&Val<'_>> = values
            .iter()
            .filter(|v| !matches!(v, Val::Raw(r) if r.get() == "null"))
            .collect();
        if let Some(exists) = t.exists {
            return exists != present.is_empty();
        }
        if let Some(other) = &t.differs_from {
            let theirs = fields.values(other);
            return match (present.first(), theirs.first()) {
                (Some(a), Some(b)) => scalar_text(a) != scalar_text(b),
                _ => false,
            };
        }
        present.iter().any(|v| {
            if let Some(expected) = &t.equals {
                return equals(v, expected);
            }
            if let Some(options) = &t.one_of {
                return options.iter().any(|o| equals(v, o));
            }
            if let Some(suffix) = &t.ends_with {
                return is_string(v) && scalar_text(v).ends_with(suffix.as_str());
            }
            if let Some(needle) = &t.contains {
                return is_string(v) && scalar_text(v).contains(needle.as_str());
            }
            if let Some(list) = &t.in_list {
                let text = scalar_text(v);
                return self
                    .lists
                    .get(list)
                    .is_some_and(|l| l.iter().any(|x| x.eq_ignore_ascii_case(&text)));
            }
            if let Some(options) = &t.any_value_in {
                return any_scalar(v, &|s| options.iter().any(|o| equals(s, o)));
            }
            if let Some(needles) = &t.any_value_contains {
                return any_scalar(v, &|s| {
                    is_string(s) && needles.iter().any(|n| scalar_text(s).contains(n.as_str()))
                });
            }
            false
        })
    }
}

fn lists_of(c: &Condition) -> Vec<&str> {
    match c {
        Condition::All { all: cs } | Condition::Any { any: cs } => cs.iter().flat_map(lists_of).collect(),
        Condition::Not { not } => lists_of(not),
        Condition::Field(t) => t.in_list.as_deref().into_iter().collect(),
    }
}

/// A value found at a path: a raw JSON value from the record, or enrichment text.
enum Val<'a> {
    Raw(&'a RawValue),
    Text(&'a str),
}

/// The members of one JSON object, by key.
type Members<'r> = HashMap<Cow<'r, str>, &'r RawValue>;

struct Fields<'r, 'a> {
    record: &'r Record<'a>,
    geo_country: Option<&'r str>,
    /// Objects of this record already split into members, by the address of their text:
    /// the rules read `userIdentity.*` a dozen times per record, and parsing it once
    /// instead of once per test is most of what evaluating them costs.
    objects: RefCell<Vec<(usize, std::rc::Rc<Members<'r>>)>>,
}

impl<'r> Fields<'r, '_> {
    /// Every value at `path`, descending into arrays.
    fn values(&self, path: &str) -> Vec<Val<'r>> {
        if path == "source.geo.country_iso_code" {
            return self.geo_country.map(Val::Text).into_iter().collect();
        }
        if path == "@principal_name" {
            let name = self.values("userIdentity.userName");
            if !name.is_empty() {
                return name;
            }
            return self
                .values("userIdentity.arn")
                .into_iter()
                .filter_map(|v| match v {
                    Val::Raw(r) => serde_json::from_str::<&str>(r.get()).ok(),
                    Val::Text(t) => Some(t),
                })
                .filter_map(|arn| arn.rsplit('/').next().filter(|n| !n.is_empty() && !n.contains(':')))
                .map(Val::Text)
                .collect();
        }
        let mut parts = path.split('.');
        let Some(top) = parts.next() else { return Vec::new() };
        let Some(field) = self.record.fields.iter().find(|f| f.key == top) else {
            return Vec::new();
        };
        let mut current = vec![field.value];
        for part in parts {
            current = current.into_iter().flat_map(|raw| self.child(raw, part)).collect();
        }
        // A path ending on an array yields its elements.
        current.into_iter().flat_map(elements).map(Val::Raw).collect()
    }
}

impl<'r> Fields<'r, '_> {
    /// The members named `key` of an object, or of each object in an array.
    fn child(&self, raw: &'r RawValue, key: &str) -> Vec<&'r RawValue> {
        match raw.get().as_bytes().first() {
            Some(b'{') => self
                .members(raw)
                .and_then(|m| m.get(key).copied())
                .into_iter()
                .collect(),
            Some(b'[') => elements(raw).into_iter().flat_map(|e| self.child(e, key)).collect(),
            _ => Vec::new(),
        }
    }

    /// The members of the object `raw`, parsed once per record.
    fn members(&self, raw: &'r RawValue) -> Option<std::rc::Rc<Members<'r>>> {
        // Two values of one record never start at the same byte unless they are the same
        // value (a nested value starts after its parent's `{` or `[`).
        let at = raw.get().as_ptr() as usize;
        if let Some((_, m)) = self.objects.borrow().iter().find(|(a, _)| *a == at) {
            return Some(m.clone());
        }
        let members = std::rc::Rc::new(serde_json::from_str::<Members<'r>>(raw.get()).ok()?);
        self.objects.borrow_mut().push((at, members.clone()));
        Some(members)
    }
}

fn elements(raw: &RawValue) -> Vec<&RawValue> {
    if raw.get().starts_with('[') {
        serde_json::from_str::<Vec<&RawValue>>(raw.get()).unwrap_or_default()
    } else {
        vec![raw]
    }
}

fn is_string(v: &Val<'_>) -> bool {
    match v {
        Val::Raw(r) => r.get().starts_with('"'),
        Val::Text(_) => true,
    }
}

/// A scalar as text: strings unquoted and unescaped, other values as written.
fn scalar_text<'a>(v: &Val<'a>) -> Cow<'a, str> {
    match v {
        Val::Text(t) => Cow::Borrowed(t),
        Val::Raw(r) if r.get().starts_with('"') => {
            let text = r.get();
            // Most strings have no escape: borrow them (serde's `Cow<str>` always allocates).
            match text.get(1..text.len() - 1) {
                Some(inner) if text.len() >= 2 && !inner.contains('\\') => Cow::Borrowed(inner),
                _ => serde_json::from_str::<String>(text).map_or(Cow::Borrowed(text), Cow::Owned),
            }
        }
        Val::Raw(r) => Cow::Borrowed(r.get()),
    }
}

fn equals(v: &Val<'_>, expected: &serde_json::Value) -> bool {
    match expected {
        serde_json::Value::String(s) => is_string(v) && scalar_text(v) == s.as_str(),
        serde_json::Value::Bool(b) => match v {
            // CloudTrail writes some booleans as strings ("true"): both count.
            Val::Raw(r) => r.get() == b.to_string() || r.get() == format!("\"{b}\""),
            Val::Text(t) => *t == b.to_string(),
        },
        other => match v {
            Val::Raw(r) => serde_json::from_str::<serde_json::Value>(r.get()).ok().as_ref() == Some(other),
            Val::Text(_) => false,
        },
    }
}

/// Whether `test` holds for some scalar anywhere inside `v`.
fn any_scalar(v: &Val<'_>, test: &dyn Fn(&Val<'_>) -> bool) -> bool {
    match v {
        Val::Text(_) => test(v),
        Val::Raw(r) => match r.get().as_bytes().first() {
            Some(b'{') => serde_json::from_str::<HashMap<Cow<'_, str>, &RawValue>>(r.get())
                .map(|m| m.values().any(|c| any_scalar(&Val::Raw(c), test)))
                .unwrap_or(false),
            Some(b'[') => elements(r).iter().any(|c| any_scalar(&Val::Raw(c), test)),
            _ => test(v),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::record::{Message, classify};

    fn matches(rules: &RuleSet, message: &str, country: Option<&str>) -> Vec<String> {
        let Message::CloudTrail(record) = classify(message) else {
            panic!("{message}")
        };
        rules
            .evaluate(&record, country, &mut BTreeMap::new())
            .into_iter()
            .map(|r| r.id.clone())
            .collect()
    }

    fn default_rules() -> RuleSet {
        let lists = HashMap::from([("allowed_countries".to_owned(), vec!["US".to_owned(), "IL".to_owned()])]);
        RuleSet::load(None, lists).unwrap()
    }

    #[test]
    fn the_default_rules_load() {
        let rules = default_rules();
        assert!(rules.rules().len() >= 10);
        // Without an allow-list the country rule is off.
        let without = RuleSet::load(None, HashMap::new()).unwrap();
        assert_eq!(without.rules().len(), rules.rules().len() - 1);
    }

    #[test]
    fn root_activity_but_not_by_a_service() {
        let rules = default_rules();
        let root = r#"{"eventVersion":"1.08","userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},"eventName":"ListBuckets","eventSource":"s3.amazonaws.com"}"#;
        assert!(matches(&rules, root, None).contains(&"root-activity".to_owned()));
        let by_service = r#"{"eventVersion":"1.08","userIdentity":{"type":"Root","invokedBy":"config.amazonaws.com"},"eventName":"ListBuckets","eventSource":"s3.amazonaws.com"}"#;
        assert!(!matches(&rules, by_service, None).contains(&"root-activity".to_owned()));
    }

    #[test]
    fn security_group_open_to_the_world() {
        let rules = default_rules();
        let open = r#"{"eventVersion":"1.08","eventSource":"ec2.amazonaws.com","eventName":"AuthorizeSecurityGroupIngress","requestParameters":{"groupId":"sg-1","ipPermissions":{"items":[{"ipProtocol":"tcp","fromPort":22,"ipRanges":{"items":[{"cidrIp":"10.0.0.0/8"},{"cidrIp":"0.0.0.0/0"}]}}]}}}"#;
        assert!(matches(&rules, open, None).contains(&"security-group-open-to-world".to_owned()));
        let closed = open.replace("0.0.0.0/0", "192.0.2.0/24");
        assert!(!matches(&rules, &closed, None).contains(&"security-group-open-to-world".to_owned()));
    }

    #[test]
    fn country_allow_list() {
        let rules = default_rules();
        let call = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"81.2.69.142"}"#;
        assert!(matches(&rules, call, Some("GB")).contains(&"unexpected-country".to_owned()));
        assert!(!matches(&rules, call, Some("US")).contains(&"unexpected-country".to_owned()));
        assert!(
            !matches(&rules, call, None).contains(&"unexpected-country".to_owned()),
            "unknown country"
        );
    }

    #[test]
    fn bursts_count_per_principal_within_an_invocation() {
        let rules = default_rules();
        let denied = |who: &str| {
            format!(
                r#"{{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","errorCode":"AccessDenied","userIdentity":{{"arn":"{who}"}}}}"#
            )
        };
        let mut bursts = BTreeMap::new();
        let mut hits = Vec::new();
        for who in ["a", "a", "b", "a", "a", "a", "a"] {
            let msg = denied(who);
            let Message::CloudTrail(r) = classify(&msg) else {
                panic!()
            };
            hits.push(
                rules
                    .evaluate(&r, None, &mut bursts)
                    .iter()
                    .any(|r| r.id == "access-denied-burst"),
            );
        }
        // Principal "a" is refused at positions 0, 1, 3, 4, 5 and 6: its 5th refusal is at 5.
        assert_eq!(
            hits,
            vec![false, false, false, false, false, true, true],
            "from the 5th denial by one principal"
        );
    }

    #[test]
    fn user_rules_add_to_and_replace_the_defaults() {
        let extra = r#"{"rules":[
            {"id":"root-activity","title":"Root, stricter","severity":"critical","when":{"field":"userIdentity.type","equals":"Root"}},
            {"id":"kms-delete","title":"KMS key deletion","severity":"high","when":{"field":"eventName","in":["ScheduleKeyDeletion","DisableKey"]}}
        ]}"#;
        let rules = RuleSet::load(Some(("custom.json", extra)), HashMap::new()).unwrap();
        let root = rules.rules().iter().find(|r| r.id == "root-activity").unwrap();
        assert_eq!(root.severity, Severity::Critical);
        assert!(rules.rules().iter().any(|r| r.id == "kms-delete"));
        let err = RuleSet::load(Some(("bad.json", r#"{"rules":[{"id":"x"}]}"#)), HashMap::new()).unwrap_err();
        assert_eq!(err.source_name, "bad.json");
    }
}
