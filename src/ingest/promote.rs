//! The promoted values of a CloudTrail record: one pass over each subtree that holds a promoted
//! path ([`crate::schema::PROMOTED`]), reading only the keys on those paths, each value
//! shape-checked against its type; and the two computed fields, `event.outcome` and `user.name`.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::record::{CowStr, Record};
use crate::schema::{MAX_PROMOTED_STRING, PROMOTED, Promote};

/// One promoted value, ready to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotedValue<'a> {
    /// JSON text written as it is: a string token from the record, a number, `true`/`false`.
    Json(&'a str),
    /// A number or boolean promoted to a keyword: its JSON text, written between quotes.
    Quoted(&'a str),
}

/// What promotion found in one record.
#[derive(Debug, Default)]
pub struct Promoted<'a> {
    /// `(index into PROMOTED, value)`, sorted by path, values of one path in record order.
    pub values: Vec<(u16, PromotedValue<'a>)>,
    /// `event.outcome`: failure when `errorCode` is a non-empty string or the console login
    /// answered `Failure`.
    pub failure: bool,
    /// `user.name`: `userIdentity.userName`, else the last `/`-segment of `userIdentity.arn`
    /// (a session or federated user name), unescaped.
    pub user_name: Option<Cow<'a, str>>,
}

/// What a leaf of the path tree collects.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    /// A promoted field: its index into [`PROMOTED`] and type.
    Promoted(u16, Promote),
    /// `userIdentity.userName`, for `user.name`.
    UserName,
    /// `userIdentity.arn`, for `user.name`.
    UserArn,
}

/// One node of the tree of wanted paths: either a leaf or named children.
#[derive(Debug, Default)]
struct Node {
    leaf: Option<Leaf>,
    children: Vec<(&'static str, Node)>,
}

impl Node {
    fn insert(&mut self, path: &'static str, leaf: Leaf) {
        let mut node = self;
        for part in path.split('.') {
            let at = match node.children.iter().position(|(k, _)| *k == part) {
                Some(i) => i,
                None => {
                    node.children.push((part, Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node.leaf = Some(leaf);
    }

    fn child(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|(k, _)| *k == key).map(|(_, n)| n)
    }
}

/// The tree of every promoted path plus the two `user.name` sources, built once.
fn tree() -> &'static Node {
    static TREE: OnceLock<Node> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut root = Node::default();
        for (i, (path, kind)) in PROMOTED.iter().enumerate() {
            root.insert(path, Leaf::Promoted(u16::try_from(i).unwrap_or(u16::MAX), *kind));
        }
        root.insert("userIdentity.userName", Leaf::UserName);
        root.insert("userIdentity.arn", Leaf::UserArn);
        root
    })
}

/// What the walk collects, before sorting.
#[derive(Default)]
struct Found<'a> {
    values: Vec<(u16, PromotedValue<'a>)>,
    user_name: Option<&'a str>,
    user_arn: Option<&'a str>,
}

/// The promoted values and computed fields of `record`. Each subtree with a promoted path is
/// read once, borrowed; a subtree that is not an object promotes nothing.
pub fn promote<'a>(record: &Record<'a>) -> Promoted<'a> {
    let tree = tree();
    let mut found = Found::default();
    let mut failure = false;
    for field in &record.fields {
        let raw = field.value.get();
        if field.key == "errorCode" {
            failure |= raw.starts_with('"') && raw != "\"\"";
        }
        let Some(node) = tree.child(&field.key) else {
            continue;
        };
        if !raw.starts_with('{') {
            continue;
        }
        let before = (found.values.len(), found.user_name, found.user_arn);
        let mut de = serde_json::Deserializer::from_str(raw);
        if (Walk {
            node,
            found: &mut found,
        })
        .deserialize(&mut de)
        .is_err()
        {
            // Cannot happen for a record that classified (it parsed already); drop the
            // subtree's partial finds rather than promote half of it.
            found.values.truncate(before.0);
            (found.user_name, found.user_arn) = (before.1, before.2);
        }
    }
    let console_failure = PROMOTED
        .iter()
        .position(|(p, _)| *p == "responseElements.ConsoleLogin")
        .and_then(|i| u16::try_from(i).ok());
    failure |= found
        .values
        .iter()
        .any(|(i, v)| Some(*i) == console_failure && *v == PromotedValue::Json("\"Failure\""));
    // Stable: the values of one path keep their order.
    found.values.sort_by_key(|(i, _)| PROMOTED[usize::from(*i)].0);
    let user_name = found.user_name.and_then(unquote).or_else(|| {
        let arn = unquote(found.user_arn?)?;
        let last = arn.rsplit('/').next().unwrap_or_default();
        (!last.is_empty() && !last.contains(':')).then(|| match arn {
            Cow::Borrowed(a) => Cow::Borrowed(&a[a.len() - last.len()..]),
            Cow::Owned(_) => Cow::Owned(last.to_owned()),
        })
    });
    Promoted {
        values: found.values,
        failure,
        user_name,
    }
}

/// A JSON string token's content, unescaped (borrowed when it has no escape).
fn unquote(token: &str) -> Option<Cow<'_, str>> {
    let inner = token.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(token).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// Collects the value at a promoted path: a scalar, or the scalars of an array (of arrays),
/// each kept only if it fits `kind`.
fn collect<'a>(index: u16, kind: Promote, raw: &'a str, out: &mut Vec<(u16, PromotedValue<'a>)>) {
    let Some(&first) = raw.as_bytes().first() else {
        return;
    };
    match first {
        b'[' => {
            if let Ok(items) = serde_json::from_str::<Vec<&'a RawValue>>(raw) {
                for item in items {
                    collect(index, kind, item.get(), out);
                }
            }
        }
        b'{' | b'n' => {}
        _ => {
            if let Some(v) = fit(kind, raw) {
                out.push((index, v));
            }
        }
    }
}

/// A scalar's promoted form if it fits `kind` (the shape check), else `None`.
fn fit(kind: Promote, raw: &str) -> Option<PromotedValue<'_>> {
    let string = raw.starts_with('"');
    match kind {
        Promote::Keyword if string => (raw.len() <= MAX_PROMOTED_STRING + 2
            || unquote(raw).is_some_and(|s| s.chars().count() <= MAX_PROMOTED_STRING))
        .then_some(PromotedValue::Json(raw)),
        Promote::Keyword => Some(PromotedValue::Quoted(raw)),
        Promote::Long => {
            let digits = if string { &raw[1..raw.len() - 1] } else { raw };
            let unsigned = digits.strip_prefix('-').unwrap_or(digits);
            ((1..=18).contains(&unsigned.len()) && unsigned.bytes().all(|b| b.is_ascii_digit()))
                .then_some(PromotedValue::Json(digits))
        }
        Promote::Boolean => match raw {
            "true" | "\"true\"" => Some(PromotedValue::Json("true")),
            "false" | "\"false\"" => Some(PromotedValue::Json("false")),
            _ => None,
        },
        Promote::Ip if string => unquote(raw)
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())
            .then_some(PromotedValue::Json(raw)),
        Promote::Ip => None,
    }
}

/// Walks one object (or array of objects) of the record along the wanted paths, skipping
/// every other key without decoding it.
struct Walk<'n, 'f, 'a> {
    node: &'n Node,
    found: &'f mut Found<'a>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Borrowed keys: serde's own `Cow<str>` would allocate every key of the subtree.
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            match self.node.child(&key) {
                Some(Node { leaf: Some(leaf), .. }) => {
                    let raw: &'de RawValue = map.next_value()?;
                    let raw = raw.get();
                    match *leaf {
                        Leaf::Promoted(index, kind) => collect(index, kind, raw, &mut self.found.values),
                        Leaf::UserName if raw.starts_with('"') => self.found.user_name = Some(raw),
                        Leaf::UserArn if raw.starts_with('"') => self.found.user_arn = Some(raw),
                        Leaf::UserName | Leaf::UserArn => {}
                    }
                }
                Some(node) => map.next_value_seed(Walk {
                    node,
                    found: self.found,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Arrays are transparent: `items.instanceId` collects every element's.
        while seq
            .next_element_seed(Walk {
                node: self.node,
                found: self.found,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Message, classify};

    fn promoted(message: &str) -> Vec<(&'static str, String)> {
        let Message::CloudTrail(record) = classify(message) else {
            panic!("not CloudTrail: {message}");
        };
        promote(&record)
            .values
            .iter()
            .map(|(i, v)| {
                let text = match v {
                    PromotedValue::Json(t) => (*t).to_owned(),
                    PromotedValue::Quoted(t) => format!("\"{t}\""),
                };
                (PROMOTED[usize::from(*i)].0, text)
            })
            .collect()
    }

    #[test]
    fn paths_through_arrays_collect_every_value_and_wrong_shapes_are_left_out() {
        let got = promoted(
            r#"{"eventVersion":"1","requestParameters":{"bucketName":"b","ipPermissions":{"items":[
            {"fromPort":22,"toPort":"443","ipRanges":{"items":[{"cidrIp":"0.0.0.0/0"},{"cidrIp":"10.0.0.0/8"}]}},
            {"fromPort":1.5,"toPort":"x","ipRanges":{"items":[{"cidrIp":{"odd":1}}]}}]},
            "instanceType":{"oops":1},"names":["a",["b"],{"c":1},null,7],"enable":"false","publiclyAccessible":1},
            "responseElements":{"instancesSet":{"items":[{"privateIpAddress":"10.1.2.3"},{"privateIpAddress":"nope"}]}}}"#,
        );
        assert_eq!(
            got,
            vec![
                ("requestParameters.bucketName", "\"b\"".into()),
                ("requestParameters.enable", "false".into()),
                ("requestParameters.ipPermissions.items.fromPort", "22".into()),
                (
                    "requestParameters.ipPermissions.items.ipRanges.items.cidrIp",
                    "\"0.0.0.0/0\"".into()
                ),
                (
                    "requestParameters.ipPermissions.items.ipRanges.items.cidrIp",
                    "\"10.0.0.0/8\"".into()
                ),
                ("requestParameters.ipPermissions.items.toPort", "443".into()),
                ("requestParameters.names", "\"a\"".into()),
                ("requestParameters.names", "\"b\"".into()),
                ("requestParameters.names", "\"7\"".into()),
                (
                    "responseElements.instancesSet.items.privateIpAddress",
                    "\"10.1.2.3\"".into()
                ),
            ]
        );
    }

    #[test]
    fn subtrees_that_are_not_objects_promote_nothing() {
        assert!(promoted(r#"{"eventVersion":"1","requestParameters":"{\"bucketName\":\"b\"}"}"#).is_empty());
        assert!(promoted(r#"{"eventVersion":"1","requestParameters":[{"bucketName":"b"}]}"#).is_empty());
        assert!(promoted(r#"{"eventVersion":"1","requestParameters":null,"bucketName":"b"}"#).is_empty());
        let long = format!(
            r#"{{"eventVersion":"1","requestParameters":{{"key":"{}","bucketName":"{}"}}}}"#,
            "k".repeat(MAX_PROMOTED_STRING + 1),
            "é".repeat(MAX_PROMOTED_STRING)
        );
        assert_eq!(
            promoted(&long).len(),
            1,
            "over 1,024 characters is left out, 1,024 kept"
        );
    }

    #[test]
    fn outcome_and_user_name_are_computed() {
        let p = |m: &'static str| {
            let Message::CloudTrail(record) = classify(m) else {
                panic!("{m}");
            };
            let p = promote(&record);
            (p.failure, p.user_name.map(Cow::into_owned))
        };
        assert_eq!(
            p(
                r#"{"eventVersion":"1","errorCode":"AccessDenied","userIdentity":{"userName":"alice","arn":"arn:aws:iam::1:user/x"}}"#
            ),
            (true, Some("alice".into()))
        );
        assert_eq!(
            p(
                r#"{"eventVersion":"1","errorCode":"","userIdentity":{"arn":"arn:aws:sts::1:assumed-role/R/sess\u0069on"}}"#
            ),
            (false, Some("session".into()))
        );
        assert_eq!(
            p(
                r#"{"eventVersion":"1","responseElements":{"ConsoleLogin":"Failure"},"userIdentity":{"arn":"arn:aws:iam::1:root"}}"#
            ),
            (true, None)
        );
        assert_eq!(
            p(r#"{"eventVersion":"1","responseElements":{"ConsoleLogin":"Success"},"userIdentity":"AWS Internal"}"#),
            (false, None)
        );
        assert_eq!(
            p(r#"{"eventVersion":"1","userIdentity":{"userName":7,"arn":"arn:aws:sts::1:assumed-role/R/"}}"#),
            (false, None)
        );
    }
}
