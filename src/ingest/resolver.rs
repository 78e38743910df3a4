//! Stage 2 for Route 53 Resolver query logs (JSON, one query per log event): recognised by
//! shape, read into borrowed lenient fields. A value of the wrong shape is kept as its JSON
//! text, never an error.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::value::RawValue;

use crate::ingest::lenient::{Lenient, Members, array, keyword, lenient, string};

/// One answer of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<'a> {
    /// `Rdata`: an address for `A`/`AAAA`, a name for `PTR`/`CNAME`, ...
    pub data: Lenient<'a, Cow<'a, str>>,
    /// `Type`.
    pub kind: Lenient<'a, Cow<'a, str>>,
    /// `Class`.
    pub class: Lenient<'a, Cow<'a, str>>,
}

/// A Resolver query log record ("Values that appear in Resolver query logs").
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverQuery<'a> {
    /// `version`: `1.000000`, `1.100000` with DNS Firewall fields.
    pub version: Lenient<'a, Cow<'a, str>>,
    /// `account_id`.
    pub account_id: Lenient<'a, Cow<'a, str>>,
    /// `region`.
    pub region: Lenient<'a, Cow<'a, str>>,
    /// `vpc_id`.
    pub vpc_id: Lenient<'a, Cow<'a, str>>,
    /// `query_timestamp`.
    pub query_timestamp: Lenient<'a, Cow<'a, str>>,
    /// `query_name`, with its final dot.
    pub query_name: Cow<'a, str>,
    /// `query_type`: `A`, `AAAA`, `PTR`, ...
    pub query_type: Lenient<'a, Cow<'a, str>>,
    /// `query_class`.
    pub query_class: Lenient<'a, Cow<'a, str>>,
    /// `rcode`: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...
    pub rcode: Lenient<'a, Cow<'a, str>>,
    /// `answers`.
    pub answers: Vec<Answer<'a>>,
    /// `srcaddr`.
    pub srcaddr: Lenient<'a, IpAddr>,
    /// `srcport`, a string in the logs.
    pub srcport: Lenient<'a, u16>,
    /// `transport`: `UDP` or `TCP`.
    pub transport: Lenient<'a, Cow<'a, str>>,
    /// `srcids.instance`.
    pub instance: Lenient<'a, Cow<'a, str>>,
    /// `srcids.resolver-endpoint`.
    pub resolver_endpoint: Lenient<'a, Cow<'a, str>>,
    /// `firewall_rule_action`: `ALERT`, `BLOCK` or `ALLOW`, when DNS Firewall matched.
    pub firewall_rule_action: Lenient<'a, Cow<'a, str>>,
    /// `firewall_rule_group_id`.
    pub firewall_rule_group_id: Lenient<'a, Cow<'a, str>>,
    /// `firewall_domain_list_id`.
    pub firewall_domain_list_id: Lenient<'a, Cow<'a, str>>,
}

/// A string that is an address.
pub(crate) fn address(raw: Option<&RawValue>) -> Lenient<'_, IpAddr> {
    lenient(raw, |r| string(Some(r)).value()?.trim().parse().ok())
}

/// A port, as a number or as the string Resolver writes.
fn port(raw: Option<&RawValue>) -> Lenient<'_, u16> {
    lenient(raw, |r| match string(Some(r)).value() {
        Some(s) => s.parse().ok(),
        None => serde_json::from_str(r.get()).ok(),
    })
}

/// Recognises and reads a Resolver query log record: `None` when the message is not one (no
/// string `query_name`, `query_type` and `query_timestamp`, no `version`, or no source).
pub fn parse(message: &str) -> Option<ResolverQuery<'_>> {
    if !message.trim_start().starts_with('{') {
        return None;
    }
    let m: Members<'_> = serde_json::from_str(message).ok()?;
    let query_name = m.text("query_name")?;
    if m.text("query_type").is_none()
        || m.text("query_timestamp").is_none()
        || m.get("version").is_none()
        || (m.get("srcaddr").is_none() && m.get("srcids").is_none())
    {
        return None;
    }
    let ids = Members::of(m.get("srcids"));
    let id = |k: &str| ids.as_ref().map_or(Lenient::Absent, |i| keyword(i.get(k)));
    Some(ResolverQuery {
        version: keyword(m.get("version")),
        account_id: keyword(m.get("account_id")),
        region: keyword(m.get("region")),
        vpc_id: keyword(m.get("vpc_id")),
        query_timestamp: string(m.get("query_timestamp")),
        query_name,
        query_type: keyword(m.get("query_type")),
        query_class: keyword(m.get("query_class")),
        rcode: keyword(m.get("rcode")),
        answers: array(m.get("answers"))
            .into_iter()
            .filter_map(|a| Members::of(Some(a)))
            .map(|a| Answer {
                data: keyword(a.get("Rdata")),
                kind: keyword(a.get("Type")),
                class: keyword(a.get("Class")),
            })
            .collect(),
        srcaddr: address(m.get("srcaddr")),
        srcport: port(m.get("srcport")),
        transport: keyword(m.get("transport")),
        instance: id("instance"),
        resolver_endpoint: id("resolver-endpoint"),
        firewall_rule_action: keyword(m.get("firewall_rule_action")),
        firewall_rule_group_id: keyword(m.get("firewall_rule_group_id")),
        firewall_domain_list_id: keyword(m.get("firewall_domain_list_id")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/resolver")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn both_samples_read() {
        let text = fixture("awsdocs-resolver-query-log-2020.ndjson");
        let q = parse(text.trim_end()).expect("a query");
        assert_eq!(q.query_name, "api.example.com.");
        assert_eq!(q.query_type.value().as_deref(), Some("A"));
        assert_eq!(q.rcode.value().as_deref(), Some("NOERROR"));
        assert_eq!(q.srcaddr, Lenient::Value("192.0.2.15".parse().unwrap()));
        assert_eq!(q.srcport, Lenient::Value(50637));
        assert_eq!(
            q.resolver_endpoint.value().as_deref(),
            Some("rslvr-out-2345678dfghexample")
        );
        assert_eq!(q.answers.len(), 4);
        assert_eq!(
            q.answers[0].data.value().as_deref(),
            Some("192.0.2e.44"),
            "not an address, as published"
        );
        assert_eq!(q.firewall_rule_action, Lenient::Absent);

        let text = fixture("awsdocs-resolver-query-log-2021-firewall.ndjson");
        let q = parse(text.trim_end()).expect("a query");
        assert_eq!(q.version.value().as_deref(), Some("1.100000"));
        assert_eq!(q.query_type.value().as_deref(), Some("PTR"));
        assert_eq!(q.firewall_rule_action.value().as_deref(), Some("BLOCK"));
        assert_eq!(
            q.firewall_domain_list_id.value().as_deref(),
            Some("rslvr-fdl-01234567890abcdef")
        );
        assert_eq!(q.instance.value().as_deref(), Some("i-0d15cd0d3example"));
        assert_eq!(q.resolver_endpoint, Lenient::Absent);
    }

    #[test]
    fn other_json_is_not_a_query() {
        for m in [
            r#"{"eventVersion":"1.08","eventName":"ConsoleLogin"}"#,
            r#"{"query_name":"a.","query_type":"A","query_timestamp":"2020-07-27T16:32:20Z","srcaddr":"1.2.3.4"}"#,
            r#"{"query_name":1,"query_type":"A","query_timestamp":"x","version":"1","srcaddr":"1.2.3.4"}"#,
            "2 123 eni-1 - - - - - - - 1 2 - NODATA",
        ] {
            assert!(parse(m).is_none(), "{m}");
        }
        let q = parse(r#"{"version":"1","query_name":"a.","query_type":"A","query_timestamp":"t","srcaddr":"nope","srcport":70000,"answers":"x"}"#).unwrap();
        assert_eq!(q.srcaddr, Lenient::Invalid(r#""nope""#));
        assert_eq!(q.srcport, Lenient::Invalid("70000"));
        assert!(q.answers.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_values_never_panic(
            values in proptest::collection::vec(prop_oneof![
                Just(serde_json::json!(null)), Just(serde_json::json!(7)), Just(serde_json::json!([{"Rdata": 1}])),
                "[ -~]{0,12}".prop_map(serde_json::Value::String), Just(serde_json::json!({"instance": []})),
            ], 6),
        ) {
            let m = serde_json::json!({
                "version": values[0], "query_name": "x.", "query_type": "A", "query_timestamp": "2020-07-27T16:32:20Z",
                "srcaddr": values[1], "srcport": values[2], "answers": values[3], "srcids": values[4], "rcode": values[5],
            });
            let text = m.to_string();
            let q = parse(&text);
            prop_assert!(q.is_some());
        }
    }
}
