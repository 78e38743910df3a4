//! The promoted and computed fields of a CloudTrail document: `aws.cloudtrail.<path>` (one
//! nested object, written after the record's own fields), `event.outcome` and `user.name`.

use super::json::write_json_str;
use crate::ingest::{Promoted, PromotedValue};
use crate::schema::PROMOTED;

/// Appends `,"aws":{"cloudtrail":{...}}` (when anything was promoted), `,"event":{"outcome":..}`
/// and `,"user":{"name":..}` (when there is a name).
pub fn write_promoted(out: &mut Vec<u8>, promoted: &Promoted<'_>) {
    if !promoted.values.is_empty() {
        out.extend_from_slice(br#","aws":{"cloudtrail":{"#);
        // The objects open below `aws.cloudtrail`; `first` is true right after an opening brace.
        let mut open: Vec<&str> = Vec::new();
        let mut first = true;
        let values = &promoted.values;
        let mut i = 0;
        while i < values.len() {
            let index = values[i].0;
            let end = i + values[i..].iter().take_while(|(j, _)| *j == index).count();
            let mut parts: Vec<&str> = PROMOTED[usize::from(index)].0.split('.').collect();
            let leaf = parts.pop().unwrap_or_default();
            let common = open.iter().zip(&parts).take_while(|(a, b)| a == b).count();
            for _ in common..open.len() {
                out.push(b'}');
                first = false;
            }
            open.truncate(common);
            for part in &parts[common..] {
                if !first {
                    out.push(b',');
                }
                write_json_str(out, part);
                out.extend_from_slice(b":{");
                open.push(part);
                first = true;
            }
            if !first {
                out.push(b',');
            }
            write_json_str(out, leaf);
            out.push(b':');
            let many = end - i > 1;
            if many {
                out.push(b'[');
            }
            for (n, (_, value)) in values[i..end].iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                match value {
                    PromotedValue::Json(text) => out.extend_from_slice(text.as_bytes()),
                    PromotedValue::Quoted(text) => {
                        out.push(b'"');
                        out.extend_from_slice(text.as_bytes());
                        out.push(b'"');
                    }
                }
            }
            if many {
                out.push(b']');
            }
            first = false;
            i = end;
        }
        for _ in 0..open.len() + 2 {
            out.push(b'}');
        }
    }
    out.extend_from_slice(if promoted.failure {
        br#","event":{"outcome":"failure"}"#
    } else {
        br#","event":{"outcome":"success"}"#
    });
    if let Some(name) = &promoted.user_name {
        out.extend_from_slice(br#","user":{"name":"#);
        write_json_str(out, name);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::borrow::Cow;

    fn at(path: &str) -> u16 {
        u16::try_from(PROMOTED.iter().position(|(p, _)| *p == path).unwrap()).unwrap()
    }

    #[test]
    fn paths_nest_and_repeated_paths_become_arrays() {
        let mut values = vec![
            (at("requestParameters.bucketName"), PromotedValue::Json("\"b\"")),
            (
                at("requestParameters.ipPermissions.items.fromPort"),
                PromotedValue::Json("22"),
            ),
            (
                at("requestParameters.ipPermissions.items.ipRanges.items.cidrIp"),
                PromotedValue::Json("\"0.0.0.0/0\""),
            ),
            (
                at("requestParameters.ipPermissions.items.ipRanges.items.cidrIp"),
                PromotedValue::Json("\"::/0\""),
            ),
            (
                at("requestParameters.ipPermissions.items.toPort"),
                PromotedValue::Json("443"),
            ),
            (at("responseElements.ConsoleLogin"), PromotedValue::Json("\"Failure\"")),
            (at("additionalEventData.MFAUsed"), PromotedValue::Quoted("true")),
        ];
        values.sort_by_key(|(i, _)| PROMOTED[usize::from(*i)].0);
        let promoted = Promoted {
            values,
            failure: true,
            user_name: Some(Cow::Borrowed("a\"b")),
        };
        let mut out = b"{\"x\":1".to_vec();
        write_promoted(&mut out, &promoted);
        out.push(b'}');
        let doc: Value =
            serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
        assert_eq!(
            doc,
            json!({"x": 1, "aws": {"cloudtrail": {
                "additionalEventData": {"MFAUsed": "true"},
                "requestParameters": {"bucketName": "b", "ipPermissions": {"items": {
                    "fromPort": 22, "ipRanges": {"items": {"cidrIp": ["0.0.0.0/0", "::/0"]}}, "toPort": 443}}},
                "responseElements": {"ConsoleLogin": "Failure"}}},
                "event": {"outcome": "failure"}, "user": {"name": "a\"b"}})
        );
        let mut out = b"{".to_vec();
        write_promoted(&mut out, &Promoted::default());
        assert_eq!(out, br#"{,"event":{"outcome":"success"}"#);
    }
}
