//! Stage 3 for AWS WAF logs: one web request becomes one bulk item in `<prefix>-waf-YYYY.MM.DD`
//! (the day of `timestamp`), `_id` the log event id, with ECS `url`/`http`/`source` fields and
//! `aws.waf.*`; the field table its template is built from.

use serde_json::Value;

use crate::index::family::{self, EventMeta, FieldType, GeoLookup, Unindexed, kw};
use crate::ingest::lenient::Lenient;
use crate::ingest::waf::{WafLog, WebAcl};

/// The family's part of index names: `<prefix>-waf-YYYY.MM.DD`.
pub const FAMILY: &str = "waf";

/// `event.dataset` of every WAF document.
pub const DATASET: &str = "aws.waf";

/// Every field a WAF document can have besides the common `@` fields, with its mapping.
pub const WAF_FIELDS: &[(&str, FieldType)] = &[
    ("event.kind", FieldType::Keyword),
    ("event.dataset", FieldType::Keyword),
    ("event.category", FieldType::Keyword),
    ("event.action", FieldType::Keyword),
    ("source.ip", FieldType::Ip),
    ("source.geo.country_iso_code", FieldType::Keyword),
    ("source.geo.country_name", FieldType::Keyword),
    ("source.geo.location", FieldType::GeoPoint),
    ("source.as.number", FieldType::Long),
    ("source.as.organization.name", FieldType::Keyword),
    ("url.path", FieldType::Keyword),
    ("url.query", FieldType::Keyword),
    ("url.domain", FieldType::Keyword),
    ("http.version", FieldType::Keyword),
    ("http.request.method", FieldType::Keyword),
    ("http.request.id", FieldType::Keyword),
    ("http.response.status_code", FieldType::Long),
    ("user_agent.original", FieldType::Keyword),
    ("cloud.provider", FieldType::Keyword),
    ("cloud.account.id", FieldType::Keyword),
    ("cloud.region", FieldType::Keyword),
    ("related.ip", FieldType::Ip),
    ("aws.waf.action", FieldType::Keyword),
    ("aws.waf.terminating_rule_id", FieldType::Keyword),
    ("aws.waf.terminating_rule_type", FieldType::Keyword),
    ("aws.waf.webacl_id", FieldType::Keyword),
    ("aws.waf.webacl_name", FieldType::Keyword),
    ("aws.waf.webacl_scope", FieldType::Keyword),
    ("aws.waf.http_source_name", FieldType::Keyword),
    ("aws.waf.http_source_id", FieldType::Keyword),
    ("aws.waf.country", FieldType::Keyword),
    ("aws.waf.labels", FieldType::Keyword),
    ("aws.waf.non_terminating_rule_ids", FieldType::Keyword),
    ("aws.waf.rule_group_ids", FieldType::Keyword),
    ("aws.waf.rate_based_rule_ids", FieldType::Keyword),
    ("aws.waf.ja3_fingerprint", FieldType::Keyword),
    ("aws.waf.ja4_fingerprint", FieldType::Keyword),
    ("aws.waf.format_version", FieldType::Long),
];

/// The composable template of `<prefix>-waf-*`, from [`WAF_FIELDS`].
pub fn waf_template(prefix: &str, replicas: Option<u32>, lifecycle: Option<&str>) -> Value {
    family::family_template(prefix, FAMILY, WAF_FIELDS, replicas, lifecycle)
}

/// Appends the action line and the document line of one WAF record. `@message` is kept when
/// `keep_message` (`RAW_MESSAGE=always`); `geo` enriches the client address (WAF's own country
/// code is `aws.waf.country`).
#[allow(clippy::too_many_arguments)]
pub fn write_waf_item(
    out: &mut Vec<u8>,
    prefix: &str,
    meta: &EventMeta<'_>,
    message: &str,
    w: &WafLog<'_>,
    keep_message: bool,
    geo: Option<GeoLookup<'_>>,
) {
    let time = meta.time_or_logged(w.timestamp.value().map(family::time_from_millis));
    let message = keep_message.then_some(message);
    let mut kept = Unindexed::default();
    let mut doc = family::open_item(out, prefix, FAMILY, meta, meta.doc_id, &time, message);
    if let Lenient::Invalid(raw) = &w.timestamp {
        kept.json("@timestamp", raw);
    }
    family::event(&mut doc, "event", DATASET, Some("web")).str("action", &w.action.to_ascii_lowercase());
    family::lenient_ip_with_geo(&mut doc.child("source"), &mut kept, "source.ip", &w.client_ip, geo);
    {
        let mut url = doc.child("url");
        kw(&mut url, &mut kept, "path", "url.path", &w.uri);
        if w.args.as_ref().is_some_and(|a| !a.is_empty()) {
            kw(&mut url, &mut kept, "query", "url.query", &w.args);
        }
        url.opt_str("domain", w.host.as_deref());
    }
    {
        let mut http = doc.child("http");
        if let Some(v) = w.http_version.as_ref() {
            // ECS `http.version` is the number: `1.1` of `HTTP/1.1`.
            http.str("version", v.strip_prefix("HTTP/").unwrap_or(v));
        }
        {
            let mut request = http.child("request");
            kw(&mut request, &mut kept, "method", "http.request.method", &w.http_method);
            kw(&mut request, &mut kept, "id", "http.request.id", &w.request_id);
        }
        let status = "http.response.status_code";
        family::long(
            &mut http.child("response"),
            &mut kept,
            "status_code",
            status,
            &w.response_code_sent,
        );
    }
    doc.child("user_agent").opt_str("original", w.user_agent.as_deref());
    let acl = WebAcl::parse(&w.webacl_id);
    {
        let mut cloud = doc.child("cloud");
        cloud.str("provider", "aws");
        if let Some(acl) = &acl {
            cloud.child("account").str("id", acl.account);
            cloud.str("region", acl.region);
        }
    }
    doc.child("related")
        .ips("ip", w.client_ip.as_ref().map(std::slice::from_ref).unwrap_or_default());
    {
        let mut aws = doc.child("aws");
        let mut waf = aws.child("waf");
        waf.str("action", &w.action);
        kw(
            &mut waf,
            &mut kept,
            "terminating_rule_id",
            "aws.waf.terminating_rule_id",
            &w.terminating_rule_id,
        );
        let rule_type = "aws.waf.terminating_rule_type";
        kw(
            &mut waf,
            &mut kept,
            "terminating_rule_type",
            rule_type,
            &w.terminating_rule_type,
        );
        waf.str("webacl_id", &w.webacl_id);
        if let Some(acl) = &acl {
            waf.str("webacl_name", acl.name);
            waf.str("webacl_scope", acl.scope);
        }
        kw(
            &mut waf,
            &mut kept,
            "http_source_name",
            "aws.waf.http_source_name",
            &w.http_source_name,
        );
        kw(
            &mut waf,
            &mut kept,
            "http_source_id",
            "aws.waf.http_source_id",
            &w.http_source_id,
        );
        kw(&mut waf, &mut kept, "country", "aws.waf.country", &w.country);
        waf.strs("labels", w.labels.iter().map(|l| l.as_ref()));
        waf.strs(
            "non_terminating_rule_ids",
            w.non_terminating_rule_ids.iter().map(|l| l.as_ref()),
        );
        waf.strs("rule_group_ids", w.rule_group_ids.iter().map(|l| l.as_ref()));
        waf.strs("rate_based_rule_ids", w.rate_based_rule_ids.iter().map(|l| l.as_ref()));
        kw(
            &mut waf,
            &mut kept,
            "ja3_fingerprint",
            "aws.waf.ja3_fingerprint",
            &w.ja3_fingerprint,
        );
        kw(
            &mut waf,
            &mut kept,
            "ja4_fingerprint",
            "aws.waf.ja4_fingerprint",
            &w.ja4_fingerprint,
        );
        family::long(
            &mut waf,
            &mut kept,
            "format_version",
            "aws.waf.format_version",
            &w.format_version,
        );
    }
    kept.write(&mut doc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::family::GeoFacts;
    use crate::index::family::testing::{check_document, check_table, checked_item, fixture, split_item};
    use crate::ingest::waf;
    use proptest::prelude::*;
    use serde_json::json;
    use std::net::IpAddr;

    const META: EventMeta<'static> = EventMeta {
        id: "36000981000000000000000000000000000000000000000000000000",
        doc_id: "36000981000000000000000000000000000000000000000000000000",
        timestamp_ms: 1_700_000_000_000,
        owner: "123456789012",
        log_group: "aws-waf-logs-central",
        log_stream: "us-east-1_hello-world_0",
        with_id: true,
    };

    fn item(message: &str, geo: Option<GeoLookup<'_>>) -> (Value, Value) {
        let w = waf::parse(message).expect("a WAF log");
        let write = |out: &mut Vec<u8>| write_waf_item(out, "cwl", &META, message, &w, false, geo);
        checked_item(write, WAF_FIELDS, &[])
    }

    fn lines(name: &str) -> Vec<String> {
        fixture(&format!("waf/{name}"))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_table_is_consistent() {
        check_table(WAF_FIELDS);
        let t = waf_template("cwl", None, None);
        assert_eq!(t["index_patterns"], json!(["cwl-waf-*"]));
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(
            p["aws"]["properties"]["waf"]["properties"]["terminating_rule_id"]["type"],
            "keyword"
        );
    }

    #[test]
    fn a_blocked_request() {
        let first = &lines("awsdocs-logging-examples.ndjson")[0];
        let geo = |ip: IpAddr| {
            (ip.to_string() == "1.1.1.1").then(|| GeoFacts {
                country_iso_code: Some("AU".into()),
                ..GeoFacts::default()
            })
        };
        let (action, doc) = item(first, Some(&geo));
        assert_eq!(action["create"]["_index"], "cwl-waf-2019.12.13");
        assert_eq!(doc["@timestamp"], "2019-12-13T23:40:12.771Z");
        assert_eq!(
            doc["event"],
            json!({"kind": "event", "dataset": "aws.waf", "category": ["web"], "action": "block"})
        );
        assert_eq!(
            doc["source"],
            json!({"ip": "1.1.1.1", "geo": {"country_iso_code": "AU"}})
        );
        assert_eq!(doc["url"], json!({"path": "/myUri", "domain": "localhost:1989"}));
        assert_eq!(
            doc["http"],
            json!({"version": "1.1", "request": {"method": "GET", "id": "rid"}})
        );
        assert_eq!(doc["user_agent"]["original"], "curl/7.61.1");
        assert_eq!(
            doc["cloud"],
            json!({"provider": "aws", "account": {"id": "111122223333"}, "region": "ap-southeast-2"})
        );
        let w = &doc["aws"]["waf"];
        assert_eq!(
            (
                &w["action"],
                &w["terminating_rule_id"],
                &w["webacl_name"],
                &w["webacl_scope"],
                &w["country"]
            ),
            (
                &json!("BLOCK"),
                &json!("STMTest_SQLi_XSS"),
                &json!("STMTest"),
                &json!("regional"),
                &json!("AU")
            )
        );
        assert_eq!(w["labels"], json!(["value"]));
        assert!(doc.get("@unindexed").is_none());
    }

    #[test]
    fn every_sample_fits_the_template() {
        let mut actions = Vec::new();
        for name in [
            "awsdocs-logging-examples.ndjson",
            "clo-waf-appsync.log",
            "otel-valid_log.json",
        ] {
            for line in lines(name) {
                let (action, doc) = item(&line, None);
                assert!(action["create"]["_index"].as_str().unwrap().starts_with("cwl-waf-20"));
                actions.push(doc["event"]["action"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(
            actions,
            [
                "block", "allow", "block", "block", "allow", "captcha", "allow", "allow", "allow"
            ]
        );
        let (_, captcha) = item(&lines("awsdocs-logging-examples.ndjson")[5], None);
        assert_eq!(captcha["http"]["response"]["status_code"], 405);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn random_values_fit_the_template(
            values in proptest::collection::vec(prop_oneof![
                Just(json!(null)), Just(json!(1_592_357_192_516i64)), Just(json!(i64::MAX)), Just(json!(-1)),
                Just(json!(["x"])), Just(json!({"a": 1})), "[ -~]{0,15}".prop_map(Value::String),
                Just(json!("10.0.0.1")),
            ], 8),
            arn in prop_oneof![Just("arn:aws:wafv2:us-east-1:123456789012:global/webacl/a/b".to_owned()), "[ -~]{0,30}"],
        ) {
            let m = json!({
                "timestamp": values[0], "webaclId": arn, "action": "Block", "terminatingRuleId": values[1],
                "labels": [{"name": values[2]}], "responseCodeSent": values[3], "formatVersion": values[4],
                "httpRequest": {"clientIp": values[5], "uri": values[6], "args": values[7],
                                "headers": [{"name": "host", "value": values[2]}, {"name": values[3], "value": "v"}]},
            });
            let message = m.to_string();
            let Some(w) = waf::parse(&message) else {
                return Err(TestCaseError::fail(format!("not recognised: {message}")));
            };
            let mut out = Vec::new();
            write_waf_item(&mut out, "cwl", &META, &message, &w, true, None);
            let (_, doc) = split_item(&out);
            if let Err(e) = check_document(&doc, WAF_FIELDS, &[]) {
                prop_assert!(false, "{}: {}", e, doc);
            }
        }
    }
}
