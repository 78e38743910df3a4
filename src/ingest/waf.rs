//! Stage 2 for AWS WAF logs (JSON, one web request per log event): recognised by shape, read
//! into borrowed lenient fields. A value of the wrong shape is kept as its JSON text, never an
//! error.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::ingest::lenient::{Lenient, Members, array, integer, keyword, lenient, string};
use crate::ingest::resolver::address;

/// A WAF log record ("Log fields for protection pack (web ACL) traffic").
#[derive(Debug, Clone, PartialEq)]
pub struct WafLog<'a> {
    /// `timestamp`, in milliseconds since the epoch, within years 1000 to 9999 (so that it
    /// names a daily index).
    pub timestamp: Lenient<'a, i64>,
    /// `formatVersion`.
    pub format_version: Lenient<'a, i64>,
    /// `webaclId`: the web ACL's ARN.
    pub webacl_id: Cow<'a, str>,
    /// `action`: `ALLOW`, `BLOCK`, `COUNT`, `CAPTCHA`, `CHALLENGE`.
    pub action: Cow<'a, str>,
    /// `terminatingRuleId`: the rule that decided, or `Default_Action`.
    pub terminating_rule_id: Lenient<'a, Cow<'a, str>>,
    /// `terminatingRuleType`: `REGULAR`, `RATE_BASED`, `GROUP`, `MANAGED_RULE_GROUP`.
    pub terminating_rule_type: Lenient<'a, Cow<'a, str>>,
    /// `httpSourceName`: `CF`, `ALB`, `APIGW`, `APPSYNC`, ...
    pub http_source_name: Lenient<'a, Cow<'a, str>>,
    /// `httpSourceId`.
    pub http_source_id: Lenient<'a, Cow<'a, str>>,
    /// `responseCodeSent`, for custom responses.
    pub response_code_sent: Lenient<'a, i64>,
    /// `labels[].name`.
    pub labels: Vec<Cow<'a, str>>,
    /// `nonTerminatingMatchingRules[].ruleId`.
    pub non_terminating_rule_ids: Vec<Cow<'a, str>>,
    /// `ruleGroupList[].ruleGroupId`.
    pub rule_group_ids: Vec<Cow<'a, str>>,
    /// `rateBasedRuleList[].rateBasedRuleId`.
    pub rate_based_rule_ids: Vec<Cow<'a, str>>,
    /// `ja3Fingerprint`.
    pub ja3_fingerprint: Lenient<'a, Cow<'a, str>>,
    /// `ja4Fingerprint`.
    pub ja4_fingerprint: Lenient<'a, Cow<'a, str>>,
    /// `httpRequest.clientIp`.
    pub client_ip: Lenient<'a, IpAddr>,
    /// `httpRequest.country`: WAF's own ISO 3166-1 alpha-2 code for the client.
    pub country: Lenient<'a, Cow<'a, str>>,
    /// `httpRequest.uri`.
    pub uri: Lenient<'a, Cow<'a, str>>,
    /// `httpRequest.args`.
    pub args: Lenient<'a, Cow<'a, str>>,
    /// `httpRequest.httpVersion`: `HTTP/1.1`, `HTTP/2.0`.
    pub http_version: Lenient<'a, Cow<'a, str>>,
    /// `httpRequest.httpMethod`.
    pub http_method: Lenient<'a, Cow<'a, str>>,
    /// `httpRequest.requestId`.
    pub request_id: Lenient<'a, Cow<'a, str>>,
    /// The `Host` header (names compared without case).
    pub host: Option<Cow<'a, str>>,
    /// The `User-Agent` header.
    pub user_agent: Option<Cow<'a, str>>,
}

/// What a web ACL ARN says: `arn:aws:wafv2:<region>:<account>:<scope>/webacl/<name>/<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebAcl<'t> {
    /// The region (`us-east-1` for CloudFront's global scope).
    pub region: &'t str,
    /// The account.
    pub account: &'t str,
    /// `regional` or `global`.
    pub scope: &'t str,
    /// The web ACL's name.
    pub name: &'t str,
}

impl<'t> WebAcl<'t> {
    /// Splits a web ACL ARN; `None` for anything else.
    pub fn parse(arn: &'t str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (_, _, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let mut path = resource.split('/');
        let (scope, kind, name) = (path.next()?, path.next()?, path.next()?);
        (service.starts_with("waf") && kind == "webacl" && !name.is_empty()).then_some(Self {
            region,
            account,
            scope,
            name,
        })
    }
}

/// Milliseconds of 1000-01-01T00:00:00Z and of the last millisecond of year 9999.
const MILLIS: std::ops::RangeInclusive<i64> = -30_610_224_000_000..=253_402_300_799_999;

fn ids<'a>(m: &Members<'a>, list: &str, key: &str) -> Vec<Cow<'a, str>> {
    array(m.get(list))
        .into_iter()
        .filter_map(|item| Members::of(Some(item))?.text(key))
        .collect()
}

/// Recognises and reads a WAF log record: `None` when the message is not one (no string
/// `webaclId` and `action`, no `httpRequest` object, or no `timestamp`).
pub fn parse(message: &str) -> Option<WafLog<'_>> {
    if !message.trim_start().starts_with('{') {
        return None;
    }
    let m: Members<'_> = serde_json::from_str(message).ok()?;
    let webacl_id = m.text("webaclId")?;
    let action = m.text("action")?;
    let request = Members::of(m.get("httpRequest"))?;
    m.get("timestamp")?;
    let header = |wanted: &str| {
        array(request.get("headers"))
            .into_iter()
            .filter_map(|h| Members::of(Some(h)))
            .find(|h| h.text("name").is_some_and(|n| n.eq_ignore_ascii_case(wanted)))
            .and_then(|h| h.text("value"))
    };
    Some(WafLog {
        timestamp: lenient(m.get("timestamp"), |r| {
            serde_json::from_str::<i64>(r.get())
                .ok()
                .filter(|ms| MILLIS.contains(ms))
        }),
        format_version: integer(m.get("formatVersion")),
        webacl_id,
        action,
        terminating_rule_id: keyword(m.get("terminatingRuleId")),
        terminating_rule_type: keyword(m.get("terminatingRuleType")),
        http_source_name: keyword(m.get("httpSourceName")),
        http_source_id: keyword(m.get("httpSourceId")),
        response_code_sent: integer(m.get("responseCodeSent")),
        labels: ids(&m, "labels", "name"),
        non_terminating_rule_ids: ids(&m, "nonTerminatingMatchingRules", "ruleId"),
        rule_group_ids: ids(&m, "ruleGroupList", "ruleGroupId"),
        rate_based_rule_ids: ids(&m, "rateBasedRuleList", "rateBasedRuleId"),
        ja3_fingerprint: keyword(m.get("ja3Fingerprint")),
        ja4_fingerprint: keyword(m.get("ja4Fingerprint")),
        client_ip: address(request.get("clientIp")),
        country: keyword(request.get("country")),
        uri: string(request.get("uri")),
        args: string(request.get("args")),
        http_version: keyword(request.get("httpVersion")),
        http_method: keyword(request.get("httpMethod")),
        request_id: keyword(request.get("requestId")),
        host: header("host"),
        user_agent: header("user-agent"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(name: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/waf")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_sample_reads() {
        let docs = lines("awsdocs-logging-examples.ndjson");
        let actions: Vec<String> = docs.iter().map(|l| parse(l).unwrap().action.into_owned()).collect();
        assert_eq!(actions, ["BLOCK", "ALLOW", "BLOCK", "BLOCK", "ALLOW", "CAPTCHA"]);
        let first = parse(&docs[0]).unwrap();
        assert_eq!(first.terminating_rule_id.value().as_deref(), Some("STMTest_SQLi_XSS"));
        assert_eq!(first.client_ip, Lenient::Value("1.1.1.1".parse().unwrap()));
        assert_eq!(first.country.value().as_deref(), Some("AU"));
        assert_eq!(first.uri.value().as_deref(), Some("/myUri"));
        assert_eq!(first.host.as_deref(), Some("localhost:1989"));
        assert_eq!(first.user_agent.as_deref(), Some("curl/7.61.1"));
        assert_eq!(first.labels, ["value"]);
        assert_eq!(first.timestamp, Lenient::Value(1_576_280_412_771));
        let late = r#"{"webaclId":"a","action":"ALLOW","httpRequest":{},"timestamp":253402300800000}"#;
        assert_eq!(parse(late).unwrap().timestamp, Lenient::Invalid("253402300800000"));
        let acl = WebAcl::parse(&first.webacl_id).unwrap();
        assert_eq!(
            acl,
            WebAcl {
                region: "ap-southeast-2",
                account: "111122223333",
                scope: "regional",
                name: "STMTest"
            }
        );
        let second = parse(&docs[1]).unwrap();
        assert_eq!(second.non_terminating_rule_ids, ["TestRule"]);
        assert_eq!(WebAcl::parse(&second.webacl_id).unwrap().scope, "global");
        let captcha = parse(&docs[5]).unwrap();
        assert_eq!(captcha.http_source_name.value().as_deref(), Some("APIGW"));
        assert_eq!(captcha.response_code_sent, Lenient::Value(405));

        for line in lines("clo-waf-appsync.log") {
            let log = parse(&line).unwrap();
            assert_eq!(log.http_source_name.value().as_deref(), Some("APPSYNC"));
            assert_eq!(log.uri.value().as_deref(), Some("/graphql"));
            assert!(!log.rule_group_ids.is_empty());
        }
        let cf_lines = lines("otel-valid_log.json");
        let cf = parse(&cf_lines[0]).unwrap();
        assert_eq!(cf.http_source_name.value().as_deref(), Some("CF"));
        assert!(cf.ja4_fingerprint.value().is_some() && cf.ja3_fingerprint.value().is_some());
        assert!(!cf.rate_based_rule_ids.is_empty());
    }

    #[test]
    fn other_json_is_not_a_waf_log() {
        for m in [
            r#"{"eventVersion":"1.08"}"#,
            r#"{"webaclId":"arn","action":"ALLOW","timestamp":1}"#,
            r#"{"webaclId":"arn","action":"ALLOW","httpRequest":"x","timestamp":1}"#,
            r#"{"webaclId":"arn","action":"ALLOW","httpRequest":{}}"#,
            "text",
        ] {
            assert!(parse(m).is_none(), "{m}");
        }
        assert_eq!(WebAcl::parse("arn:aws:s3:::bucket"), None);
        assert_eq!(WebAcl::parse("not an arn"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_values_never_panic(
            values in proptest::collection::vec(prop_oneof![
                Just(serde_json::json!(null)), Just(serde_json::json!(-3)), Just(serde_json::json!([{"name": 1}, 2, "x"])),
                "[ -~]{0,12}".prop_map(serde_json::Value::String), Just(serde_json::json!({"a": []})),
            ], 5),
        ) {
            let m = serde_json::json!({
                "timestamp": values[0], "webaclId": "arn:aws:wafv2:x:y:z", "action": "BLOCK", "labels": values[1],
                "httpRequest": {"clientIp": values[2], "headers": values[3], "uri": values[4]},
            });
            let text = m.to_string();
            let log = parse(&text);
            prop_assert!(log.is_some());
            let _ = WebAcl::parse(&log.unwrap().webacl_id);
        }
    }
}
