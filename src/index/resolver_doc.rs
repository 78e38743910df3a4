//! Stage 3 for Route 53 Resolver query logs: one query becomes one bulk item in
//! `<prefix>-resolver-YYYY.MM.DD` (the day of `query_timestamp`), `_id` the log event id, with
//! ECS `dns.*` fields; the field table its template is built from.

use std::net::IpAddr;

use serde_json::Value;

use crate::index::family::{self, EventMeta, FieldType, GeoLookup, Unindexed, kw};
use crate::ingest::lenient::{Lenient, text_of};
use crate::ingest::resolver::ResolverQuery;

/// The family's part of index names: `<prefix>-resolver-YYYY.MM.DD`.
pub const FAMILY: &str = "resolver";

/// `event.dataset` of every query document.
pub const DATASET: &str = "aws.route53_resolver";

/// Every field a query document can have besides the common `@` fields, with its mapping.
pub const RESOLVER_FIELDS: &[(&str, FieldType)] = &[
    ("event.kind", FieldType::Keyword),
    ("event.dataset", FieldType::Keyword),
    ("event.category", FieldType::Keyword),
    ("dns.question.name", FieldType::Keyword),
    ("dns.question.type", FieldType::Keyword),
    ("dns.question.class", FieldType::Keyword),
    ("dns.response_code", FieldType::Keyword),
    ("dns.answers.data", FieldType::Keyword),
    ("dns.answers.type", FieldType::Keyword),
    ("dns.answers.class", FieldType::Keyword),
    ("dns.resolved_ip", FieldType::Ip),
    ("source.ip", FieldType::Ip),
    ("source.port", FieldType::Long),
    ("source.geo.country_iso_code", FieldType::Keyword),
    ("source.geo.country_name", FieldType::Keyword),
    ("source.geo.location", FieldType::GeoPoint),
    ("source.as.number", FieldType::Long),
    ("source.as.organization.name", FieldType::Keyword),
    ("network.transport", FieldType::Keyword),
    ("network.protocol", FieldType::Keyword),
    ("cloud.provider", FieldType::Keyword),
    ("cloud.account.id", FieldType::Keyword),
    ("cloud.region", FieldType::Keyword),
    ("cloud.instance.id", FieldType::Keyword),
    ("related.ip", FieldType::Ip),
    ("aws.route53.version", FieldType::Keyword),
    ("aws.route53.vpc_id", FieldType::Keyword),
    ("aws.route53.srcids.instance", FieldType::Keyword),
    ("aws.route53.srcids.resolver_endpoint", FieldType::Keyword),
    ("aws.route53.firewall.rule_action", FieldType::Keyword),
    ("aws.route53.firewall.rule_group_id", FieldType::Keyword),
    ("aws.route53.firewall.domain_list_id", FieldType::Keyword),
];

/// The composable template of `<prefix>-resolver-*`, from [`RESOLVER_FIELDS`].
pub fn resolver_template(prefix: &str, replicas: Option<u32>, lifecycle: Option<&str>) -> Value {
    family::family_template(prefix, FAMILY, RESOLVER_FIELDS, replicas, lifecycle)
}

/// Appends the action line and the document line of one query. `@message` is kept when
/// `keep_message` (`RAW_MESSAGE=always`); `geo` enriches the source address.
#[allow(clippy::too_many_arguments)]
pub fn write_resolver_item(
    out: &mut Vec<u8>,
    prefix: &str,
    meta: &EventMeta<'_>,
    message: &str,
    q: &ResolverQuery<'_>,
    keep_message: bool,
    geo: Option<GeoLookup<'_>>,
) {
    let time = meta.time_or_logged(
        q.query_timestamp
            .as_ref()
            .and_then(|t| crate::ingest::parse_event_time(t)),
    );
    let message = keep_message.then_some(message);
    let mut kept = Unindexed::default();
    let mut doc = family::open_item(out, prefix, FAMILY, meta, meta.doc_id, &time, message);
    if let Lenient::Value(t) = &q.query_timestamp
        && crate::ingest::parse_event_time(t).is_none()
    {
        kept.text("@timestamp", t);
    }
    family::event(&mut doc, "event", DATASET, Some("network"));
    // Addresses of A and AAAA answers; other answers' data is a name.
    let mut resolved: Vec<IpAddr> = Vec::new();
    {
        let mut dns = doc.child("dns");
        {
            let mut question = dns.child("question");
            question.str("name", &q.query_name);
            kw(&mut question, &mut kept, "type", "dns.question.type", &q.query_type);
            kw(&mut question, &mut kept, "class", "dns.question.class", &q.query_class);
        }
        kw(&mut dns, &mut kept, "response_code", "dns.response_code", &q.rcode);
        {
            let mut answers = dns.child("answers");
            answers.strs("data", q.answers.iter().filter_map(|a| text_of(&a.data)));
            answers.strs("type", q.answers.iter().filter_map(|a| text_of(&a.kind)));
            answers.strs("class", q.answers.iter().filter_map(|a| text_of(&a.class)));
        }
        for a in &q.answers {
            let is_address = matches!(text_of(&a.kind), Some("A" | "AAAA"));
            if let (true, Lenient::Value(data)) = (is_address, &a.data) {
                match data.parse::<IpAddr>() {
                    Ok(ip) if !resolved.contains(&ip) => resolved.push(ip),
                    Ok(_) => {}
                    Err(_) => kept.text("dns.resolved_ip", data),
                }
            }
        }
        dns.ips("resolved_ip", &resolved);
    }
    {
        let mut source = doc.child("source");
        family::lenient_ip_with_geo(&mut source, &mut kept, "source.ip", &q.srcaddr, geo);
        match &q.srcport {
            Lenient::Value(port) => source.num("port", port),
            Lenient::Invalid(raw) => kept.json("source.port", raw),
            Lenient::Absent => {}
        }
    }
    {
        let mut network = doc.child("network");
        match &q.transport {
            Lenient::Value(t) => network.str("transport", &t.to_ascii_lowercase()),
            Lenient::Invalid(raw) => kept.json("network.transport", raw),
            Lenient::Absent => {}
        }
        network.str("protocol", "dns");
    }
    {
        let mut cloud = doc.child("cloud");
        cloud.str("provider", "aws");
        kw(
            &mut cloud.child("account"),
            &mut kept,
            "id",
            "cloud.account.id",
            &q.account_id,
        );
        kw(&mut cloud, &mut kept, "region", "cloud.region", &q.region);
        kw(
            &mut cloud.child("instance"),
            &mut kept,
            "id",
            "cloud.instance.id",
            &q.instance,
        );
    }
    {
        let mut related: Vec<IpAddr> = q.srcaddr.as_ref().copied().into_iter().collect();
        related.extend(resolved.iter().filter(|ip| q.srcaddr.as_ref() != Some(*ip)));
        doc.child("related").ips("ip", &related);
    }
    {
        let mut aws = doc.child("aws");
        let mut route53 = aws.child("route53");
        kw(&mut route53, &mut kept, "version", "aws.route53.version", &q.version);
        kw(&mut route53, &mut kept, "vpc_id", "aws.route53.vpc_id", &q.vpc_id);
        {
            let mut ids = route53.child("srcids");
            kw(
                &mut ids,
                &mut kept,
                "instance",
                "aws.route53.srcids.instance",
                &q.instance,
            );
            let endpoint = "aws.route53.srcids.resolver_endpoint";
            kw(&mut ids, &mut kept, "resolver_endpoint", endpoint, &q.resolver_endpoint);
        }
        let mut firewall = route53.child("firewall");
        let action = "aws.route53.firewall.rule_action";
        kw(&mut firewall, &mut kept, "rule_action", action, &q.firewall_rule_action);
        let group = "aws.route53.firewall.rule_group_id";
        kw(
            &mut firewall,
            &mut kept,
            "rule_group_id",
            group,
            &q.firewall_rule_group_id,
        );
        let list = "aws.route53.firewall.domain_list_id";
        kw(
            &mut firewall,
            &mut kept,
            "domain_list_id",
            list,
            &q.firewall_domain_list_id,
        );
    }
    kept.write(&mut doc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::family::testing::{check_document, check_table, checked_item, split_item};
    use crate::ingest::resolver;
    use proptest::prelude::*;
    use serde_json::json;

    const META: EventMeta<'static> = EventMeta {
        id: "36000971000000000000000000000000000000000000000000000000",
        doc_id: "36000971000000000000000000000000000000000000000000000000",
        timestamp_ms: 1_700_000_000_000,
        owner: "111122223333",
        log_group: "/aws/route53/resolver-query-logs",
        log_stream: "vpc-7example_i-0d15cd0d3example",
        with_id: true,
    };

    fn item(message: &str) -> (Value, Value) {
        let q = resolver::parse(message).expect("a query");
        let write = |out: &mut Vec<u8>| write_resolver_item(out, "cwl", &META, message, &q, false, None);
        checked_item(write, RESOLVER_FIELDS, &[])
    }

    fn fixture(name: &str) -> String {
        crate::index::family::testing::fixture(&format!("resolver/{name}"))
    }

    #[test]
    fn the_table_is_consistent() {
        check_table(RESOLVER_FIELDS);
        let t = resolver_template("cwl", None, None);
        assert_eq!(t["index_patterns"], json!(["cwl-resolver-*"]));
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(p["dns"]["properties"]["resolved_ip"]["type"], "ip");
        assert_eq!(
            p["dns"]["properties"]["question"]["properties"]["name"]["type"],
            "keyword"
        );
    }

    #[test]
    fn a_query_with_answers() {
        let (action, doc) = item(fixture("awsdocs-resolver-query-log-2020.ndjson").trim_end());
        assert_eq!(action["create"]["_index"], "cwl-resolver-2020.07.27");
        assert_eq!(action["create"]["_id"], META.doc_id);
        assert_eq!(doc["@timestamp"], "2020-07-27T16:32:20.000Z");
        assert_eq!(
            doc["dns"],
            json!({
                "question": {"name": "api.example.com.", "type": "A", "class": "IN"},
                "response_code": "NOERROR",
                "answers": {
                    "data": ["192.0.2e.44", "198.51.100.6", "203.0.113.8", "203.0.113.9"],
                    "type": ["A", "A", "A", "A"], "class": ["IN", "IN", "IN", "IN"]
                },
                "resolved_ip": ["198.51.100.6", "203.0.113.8", "203.0.113.9"]
            })
        );
        assert_eq!(
            doc["@unindexed"],
            json!({"dns.resolved_ip": "192.0.2e.44"}),
            "as published: not an address"
        );
        assert_eq!(doc["source"], json!({"ip": "192.0.2.15", "port": 50637}));
        assert_eq!(doc["network"], json!({"transport": "udp", "protocol": "dns"}));
        assert_eq!(
            doc["aws"]["route53"],
            json!({"version": "1.000000", "vpc_id": "vpc-7example",
                   "srcids": {"instance": "i-0d15cd0d3example", "resolver_endpoint": "rslvr-out-2345678dfghexample"}})
        );
        assert_eq!(
            doc["related"]["ip"],
            json!(["192.0.2.15", "198.51.100.6", "203.0.113.8", "203.0.113.9"])
        );
    }

    #[test]
    fn a_dns_firewall_block() {
        let (action, doc) = item(fixture("awsdocs-resolver-query-log-2021-firewall.ndjson").trim_end());
        assert_eq!(action["create"]["_index"], "cwl-resolver-2021.02.04");
        assert_eq!(doc["aws"]["route53"]["firewall"]["rule_action"], "BLOCK");
        assert_eq!(doc["dns"]["question"]["type"], "PTR");
        assert!(doc["dns"].get("resolved_ip").is_none(), "PTR data is a name");
        assert_eq!(doc["cloud"]["region"], "us-east-1");
        assert_eq!(doc["cloud"]["instance"]["id"], "i-0d15cd0d3example");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_values_fit_the_template(
            values in proptest::collection::vec(prop_oneof![
                Just(json!(null)), Just(json!(53)), Just(json!(["x"])), Just(json!({"a": 1})),
                "[ -~]{0,15}".prop_map(Value::String), Just(json!("10.0.0.1")), Just(json!("2020-07-27T16:32:20Z")),
            ], 8),
        ) {
            let m = json!({
                "version": values[0], "query_name": "x.", "query_type": "A", "query_timestamp": values[1],
                "srcaddr": values[2], "srcport": values[3], "transport": values[4], "account_id": values[5],
                "answers": [{"Rdata": values[6], "Type": "A"}, {"Rdata": values[7], "Type": values[0]}],
                "srcids": {"instance": values[7]},
            });
            let message = m.to_string();
            match resolver::parse(&message) {
                None => prop_assert!(!m["query_timestamp"].is_string()),
                Some(q) => {
                    let mut out = Vec::new();
                    write_resolver_item(&mut out, "cwl", &META, &message, &q, true, None);
                    let (_, doc) = split_item(&out);
                    if let Err(e) = check_document(&doc, RESOLVER_FIELDS, &[]) {
                        prop_assert!(false, "{}: {}", e, doc);
                    }
                }
            }
        }
    }
}
