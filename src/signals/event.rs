//! A borrowed CloudTrail [`Record`] as the Sigma evaluator's `Event`: fields are read from the
//! record's raw JSON on demand (nested objects split once per record, on first use), an
//! object-valued field reads as its JSON text and arrays match element by element.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rsigma_eval::{Event, EventValue};
use serde_json::value::RawValue;

use crate::ingest::record::Record;

/// The field the GeoIP enrichment adds for rules: the caller's ISO country code.
pub const GEO_COUNTRY_FIELD: &str = "source.geo.country_iso_code";

/// The members of one JSON object, by key, borrowed from the record text.
type Members<'a> = HashMap<Cow<'a, str>, &'a RawValue>;

/// One record as the evaluator sees it. Building it costs nothing: the top level is the
/// record's own split, and nothing deeper is parsed until a rule asks for a nested path.
pub struct RecordEvent<'r, 'a> {
    record: &'r Record<'a>,
    /// The caller's country from the GeoIP enrichment, if known.
    country: Option<&'r str>,
    /// Objects already split into members, by the address of their text. Two values of one
    /// record never start at the same byte unless they are the same value.
    objects: RefCell<Vec<(usize, Rc<Members<'a>>)>>,
}

impl<'r, 'a> RecordEvent<'r, 'a> {
    /// `record`, with the enrichment's `country` visible as [`GEO_COUNTRY_FIELD`].
    pub fn new(record: &'r Record<'a>, country: Option<&'r str>) -> Self {
        Self {
            record,
            country,
            objects: RefCell::new(Vec::new()),
        }
    }

    /// A top-level field's raw value.
    fn top(&self, key: &str) -> Option<&'a RawValue> {
        self.record.fields.iter().find(|f| f.key == key).map(|f| f.value)
    }

    /// A top-level string field, unescaped (`eventSource`, `eventName`, ...).
    pub fn top_str(&self, key: &str) -> Option<Cow<'a, str>> {
        match value_of(self.top(key)?) {
            EventValue::Str(s) => Some(s),
            _ => None,
        }
    }

    fn members(&self, raw: &'a RawValue) -> Option<Rc<Members<'a>>> {
        let at = raw.get().as_ptr() as usize;
        if let Some((_, m)) = self.objects.borrow().iter().find(|(a, _)| *a == at) {
            return Some(m.clone());
        }
        let members = Rc::new(serde_json::from_str::<Members<'a>>(raw.get()).ok()?);
        self.objects.borrow_mut().push((at, members.clone()));
        Some(members)
    }

    /// The values named `key` inside `raw`: an object's member, or each array element's.
    fn child(&self, raw: &'a RawValue, key: &str, out: &mut Vec<&'a RawValue>) {
        match raw.get().as_bytes().first() {
            Some(b'{') => {
                if let Some(v) = self.members(raw).and_then(|m| m.get(key).copied()) {
                    out.push(v);
                }
            }
            Some(b'[') => {
                for e in elements(raw) {
                    self.child(e, key, out);
                }
            }
            _ => {}
        }
    }
}

fn elements(raw: &RawValue) -> Vec<&RawValue> {
    serde_json::from_str::<Vec<&RawValue>>(raw.get()).unwrap_or_default()
}

/// A raw JSON value as the evaluator's value. Objects become their JSON text (what the
/// SigmaHQ CloudTrail rules assume for `requestParameters|contains`); arrays stay arrays, so
/// a list matches element by element.
fn value_of(raw: &RawValue) -> EventValue<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => match text.get(1..text.len() - 1) {
            // Most strings have no escape: borrow them.
            Some(inner) if !inner.contains('\\') => EventValue::Str(Cow::Borrowed(inner)),
            _ => serde_json::from_str::<String>(text)
                .map(|s| EventValue::Str(Cow::Owned(s)))
                .unwrap_or(EventValue::Null),
        },
        Some(b'{') => EventValue::Str(Cow::Borrowed(text)),
        Some(b'[') => EventValue::Array(elements(raw).into_iter().map(value_of).collect()),
        Some(b't') => EventValue::Bool(true),
        Some(b'f') => EventValue::Bool(false),
        Some(b'n') => EventValue::Null,
        _ => match text.parse::<i64>() {
            Ok(n) => EventValue::Int(n),
            Err(_) => text.parse::<f64>().map(EventValue::Float).unwrap_or(EventValue::Null),
        },
    }
}

/// Every string inside `raw`, unescaped (for keyword rules, which no bundled rule uses).
fn walk_strings(raw: &RawValue, visit: &mut dyn FnMut(&str)) {
    match raw.get().as_bytes().first() {
        Some(b'"') => {
            if let EventValue::Str(s) = value_of(raw) {
                visit(&s);
            }
        }
        Some(b'{') => {
            if let Ok(members) = serde_json::from_str::<Members<'_>>(raw.get()) {
                for v in members.values() {
                    walk_strings(v, visit);
                }
            }
        }
        Some(b'[') => {
            for e in elements(raw) {
                walk_strings(e, visit);
            }
        }
        _ => {}
    }
}

impl Event for RecordEvent<'_, '_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if path == GEO_COUNTRY_FIELD {
            return self.country.map(|c| EventValue::Str(Cow::Borrowed(c)));
        }
        if let Some(v) = self.top(path) {
            return Some(value_of(v));
        }
        let mut parts = path.split('.');
        let root = self.top(parts.next()?)?;
        let mut current = vec![root];
        for part in parts {
            let mut next = Vec::new();
            for raw in current {
                self.child(raw, part, &mut next);
            }
            if next.is_empty() {
                return None;
            }
            current = next;
        }
        let mut values: Vec<EventValue<'_>> = current.into_iter().map(value_of).collect();
        if values.len() == 1 {
            values.pop()
        } else {
            Some(EventValue::Array(values))
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut found = false;
        self.visit_string_values(&mut |s| found |= pred(s));
        found
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_string_values(&mut |s| out.push(Cow::Owned(s.to_owned())));
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for field in &self.record.fields {
            walk_strings(field.value, visit);
        }
        if let Some(c) = self.country {
            visit(c);
        }
    }

    fn to_json(&self) -> serde_json::Value {
        // Only for correlation event storage, which the indexer leaves off.
        let mut map = serde_json::Map::new();
        for f in &self.record.fields {
            map.insert(
                f.key.to_string(),
                serde_json::from_str(f.value.get()).unwrap_or(serde_json::Value::Null),
            );
        }
        serde_json::Value::Object(map)
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        Some(
            self.record
                .fields
                .iter()
                .map(|f| Cow::Borrowed(f.key.as_ref()))
                .chain(self.country.map(|_| Cow::Borrowed("source")))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::record::{Message, classify};

    fn with<T>(message: &str, country: Option<&str>, f: impl FnOnce(&RecordEvent<'_, '_>) -> T) -> T {
        let Message::CloudTrail(record) = classify(message) else {
            panic!("{message}")
        };
        f(&RecordEvent::new(&record, country))
    }

    #[test]
    fn objects_read_as_their_json_text_and_paths_distribute_over_arrays() {
        let msg = r#"{"eventVersion":"1.08","eventName":"A\"b","requestParameters":{"x":{"y":1},"items":[{"cidrIp":"0.0.0.0/0"},{"cidrIp":"10.0.0.0/8"}]},"errorCode":null}"#;
        with(msg, Some("GB"), |e| {
            assert!(matches!(e.get_field("requestParameters.x"), Some(EventValue::Str(s)) if s == r#"{"y":1}"#));
            assert!(matches!(e.get_field("requestParameters.x.y"), Some(EventValue::Int(1))));
            let Some(EventValue::Array(v)) = e.get_field("requestParameters.items.cidrIp") else {
                panic!("array")
            };
            assert_eq!(v.len(), 2);
            assert!(matches!(e.get_field("eventName"), Some(EventValue::Str(s)) if s == "A\"b"));
            assert!(matches!(e.get_field("errorCode"), Some(EventValue::Null)));
            assert!(e.get_field("requestParameters.nope").is_none());
            assert!(matches!(e.get_field(GEO_COUNTRY_FIELD), Some(EventValue::Str(s)) if s == "GB"));
            assert!(e.any_string_value(&|s| s == "10.0.0.0/8"));
            assert!(!e.any_string_value(&|s| s == "nothing"));
        });
    }
}
