//! Reading JSON log records lazily and leniently: an object's members as raw values, decoded
//! only when asked for, and each field a [`Lenient`] value: absent, of its type, or the JSON
//! text of a value of another shape, which a document keeps under `@unindexed`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the message when it has no escapes.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object's members in order, values as raw JSON: nothing below is decoded until it is
/// asked for.
pub(crate) struct Members<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

pub(crate) fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

impl<'a> Members<'a> {
    /// The members of `raw` when it is an object.
    pub(crate) fn of(raw: Option<&'a RawValue>) -> Option<Self> {
        let raw = raw.filter(|r| first_byte(r) == b'{')?;
        serde_json::from_str(raw.get()).ok()
    }

    /// A member's value; the last one wins, as in `JSON.parse`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// A member that is a string.
    pub(crate) fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        string(self.get(key)).value()
    }
}

/// A field's value: absent (missing or `null`), a value of the field's type, or the JSON text
/// of a value of the wrong shape, which the document keeps under `@unindexed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Lenient<'a, T> {
    /// Missing, or `null`.
    #[default]
    Absent,
    /// A value of the field's type.
    Value(T),
    /// The JSON text of a value of another shape.
    Invalid(&'a str),
}

impl<'a, T: Clone> Lenient<'a, T> {
    /// The value, if it is one.
    pub fn value(&self) -> Option<T> {
        match self {
            Self::Value(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T> Lenient<'_, T> {
    /// The value, borrowed.
    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

pub(crate) fn lenient<'a, T>(
    raw: Option<&'a RawValue>,
    convert: impl FnOnce(&'a RawValue) -> Option<T>,
) -> Lenient<'a, T> {
    match raw {
        None => Lenient::Absent,
        Some(r) if r.get() == "null" => Lenient::Absent,
        Some(r) => convert(r).map_or(Lenient::Invalid(r.get()), Lenient::Value),
    }
}

/// A JSON string.
pub(crate) fn string(raw: Option<&RawValue>) -> Lenient<'_, Cow<'_, str>> {
    lenient(raw, |r| serde_json::from_str::<Text<'_>>(r.get()).ok().map(|t| t.0))
}

/// A value a `keyword` takes: a string, or a number or boolean as its JSON text (GuardDuty
/// writes `asn` as `"-1"` in one finding and `-1` in another).
pub(crate) fn keyword(raw: Option<&RawValue>) -> Lenient<'_, Cow<'_, str>> {
    lenient(raw, |r| match first_byte(r) {
        b'"' => serde_json::from_str::<Text<'_>>(r.get()).ok().map(|t| t.0),
        b'-' | b'0'..=b'9' | b't' | b'f' => Some(Cow::Borrowed(r.get())),
        _ => None,
    })
}

pub(crate) fn number(raw: Option<&RawValue>) -> Lenient<'_, f64> {
    lenient(raw, |r| {
        matches!(first_byte(r), b'-' | b'0'..=b'9')
            .then(|| serde_json::from_str::<f64>(r.get()).ok())
            .flatten()
            .filter(|v| v.is_finite())
    })
}

pub(crate) fn integer(raw: Option<&RawValue>) -> Lenient<'_, i64> {
    lenient(raw, |r| serde_json::from_str::<i64>(r.get()).ok())
}

pub(crate) fn boolean(raw: Option<&RawValue>) -> Lenient<'_, bool> {
    lenient(raw, |r| serde_json::from_str::<bool>(r.get()).ok())
}

pub(crate) fn array(raw: Option<&RawValue>) -> Vec<&RawValue> {
    raw.filter(|r| first_byte(r) == b'[')
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default()
}

/// The text of a keyword or string field, borrowed.
pub fn text_of<'s>(l: &'s Lenient<'_, Cow<'_, str>>) -> Option<&'s str> {
    l.as_ref().map(|c| c.as_ref())
}
