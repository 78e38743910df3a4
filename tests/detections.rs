//! Detection rules on real records: Panther's labelled rule tests as positives and
//! negatives (precision and recall per rule, printed), hand-made cases for the rules
//! Panther has no tests for, and the country rule with the GeoIP test databases.

mod common;

use std::collections::{BTreeMap, HashMap};

use cwl_indexer::config::SignalsConfig;
use cwl_indexer::ingest::{Message, classify};
use cwl_indexer::signals::RuleSet;
use cwl_indexer::signals::{Enrichment, Signals};
use serde_json::{Value, json};

fn rules() -> RuleSet {
    RuleSet::load(
        None,
        HashMap::from([("allowed_countries".into(), vec!["US".into(), "IL".into()])]),
    )
    .unwrap()
}

/// Rule ids matched by `record`, each evaluated on its own (bursts need a sequence).
fn matched(rules: &RuleSet, record: &Value) -> Vec<String> {
    let text = record.to_string();
    let Message::CloudTrail(r) = classify(&text) else {
        return Vec::new();
    };
    let mut bursts = BTreeMap::new();
    rules
        .evaluate(&r, None, &mut bursts)
        .into_iter()
        .map(|r| r.id.clone())
        .collect()
}

#[test]
fn precision_and_recall_on_panther_labelled_records() {
    let labelled: Vec<Value> =
        serde_json::from_slice(&std::fs::read(common::fixtures().join("detections/panther-labelled.json")).unwrap())
            .unwrap();
    let mut rules = rules();
    // A burst needs five refusals; one labelled record at a time tests the condition itself.
    rules = RuleSet::load(
        Some(("test", &{
            let default: Value = serde_json::from_str(cwl_indexer::signals::DEFAULT_RULES).unwrap();
            let mut burst = default["rules"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == "access-denied-burst")
                .unwrap()
                .clone();
            burst.as_object_mut().unwrap().remove("burst");
            json!({"rules": [burst]}).to_string()
        })),
        HashMap::from([("allowed_countries".into(), vec!["US".into()])]),
    )
    .unwrap_or(rules);
    let mut table: BTreeMap<String, [usize; 4]> = BTreeMap::new(); // tp, fp, fn, tn
    let mut misses = Vec::new();
    for row in &labelled {
        let rule = row["rule"].as_str().unwrap();
        let expected = row["expected"].as_bool().unwrap();
        let got = matched(&rules, &row["record"]).iter().any(|r| r == rule);
        let cell = table.entry(rule.to_owned()).or_default();
        match (expected, got) {
            (true, true) => cell[0] += 1,
            (false, true) => cell[1] += 1,
            (true, false) => cell[2] += 1,
            (false, false) => cell[3] += 1,
        }
        if expected != got {
            misses.push(format!(
                "{rule}: {} ({}): expected {expected}",
                row["test"], row["panther_rule"]
            ));
        }
    }
    eprintln!("\n| rule | labelled | TP | FP | FN | TN | precision | recall |\n|---|---|---|---|---|---|---|---|");
    let (mut tp_all, mut fp_all, mut fn_all) = (0, 0, 0);
    for (rule, [tp, fp, fnn, tn]) in &table {
        let p = if tp + fp == 0 {
            1.0
        } else {
            *tp as f64 / (tp + fp) as f64
        };
        let r = if tp + fnn == 0 {
            1.0
        } else {
            *tp as f64 / (tp + fnn) as f64
        };
        eprintln!(
            "| {rule} | {} | {tp} | {fp} | {fnn} | {tn} | {p:.2} | {r:.2} |",
            tp + fp + fnn + tn
        );
        tp_all += tp;
        fp_all += fp;
        fn_all += fnn;
    }
    eprintln!(
        "misses (the labels follow Panther's own rule, whose intent can differ):\n  {}",
        misses.join("\n  ")
    );
    let precision = tp_all as f64 / (tp_all + fp_all) as f64;
    let recall = tp_all as f64 / (tp_all + fn_all) as f64;
    eprintln!(
        "overall: precision {precision:.2}, recall {recall:.2} over {} labelled records",
        labelled.len()
    );
    assert!(table.len() >= 10, "every mapped rule has labels");
    // Floors at today's figures (0.78 and 1.00), so that a rule edit that loses matches or
    // adds noise fails here. The disagreements left are deliberate: CIS counts any root use
    // (Panther ignores read-only and IdP-directory logins), the issue asks for every trust
    // policy change (Panther only external trust), and "new user without MFA" needs state.
    assert!(
        precision >= 0.75 && recall >= 0.95,
        "precision {precision:.2}, recall {recall:.2}"
    );
}

fn event(name: &str, source: &str, extra: Value) -> Value {
    let mut r = json!({"eventVersion": "1.08", "eventName": name, "eventSource": source,
                       "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice"}});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[test]
fn rules_without_panther_tests_on_hand_made_cases() {
    let rules = rules();
    let has = |r: &Value, id: &str| matched(&rules, r).iter().any(|m| m == id);
    let sg = |cidr: &str, v6: &str| {
        event(
            "AuthorizeSecurityGroupIngress",
            "ec2.amazonaws.com",
            json!({"requestParameters": {"groupId": "sg-1",
            "ipPermissions": {"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": cidr}]}, "ipv6Ranges": {"items": [{"cidrIpv6": v6}]}}]}}}),
        )
    };
    assert!(has(&sg("0.0.0.0/0", "2001:db8::/32"), "security-group-open-to-world"));
    assert!(has(&sg("10.0.0.0/8", "::/0"), "security-group-open-to-world"));
    assert!(!has(&sg("10.0.0.0/8", "2001:db8::/32"), "security-group-open-to-world"));
    let mut failed = sg("0.0.0.0/0", "::/0");
    failed["errorCode"] = json!("Client.UnauthorizedOperation");
    assert!(
        !has(&failed, "security-group-open-to-world"),
        "a refused attempt opened nothing"
    );

    assert!(has(
        &event("DeleteDetector", "guardduty.amazonaws.com", json!({})),
        "guardduty-disabled"
    ));
    assert!(has(
        &event(
            "UpdateDetector",
            "guardduty.amazonaws.com",
            json!({"requestParameters": {"detectorId": "d", "enable": false}})
        ),
        "guardduty-disabled"
    ));
    assert!(!has(
        &event(
            "UpdateDetector",
            "guardduty.amazonaws.com",
            json!({"requestParameters": {"detectorId": "d", "enable": true}})
        ),
        "guardduty-disabled"
    ));

    let acl = |grantee: &str| {
        event(
            "PutBucketAcl",
            "s3.amazonaws.com",
            json!({"requestParameters": {"bucketName": "b",
        "AccessControlPolicy": {"AccessControlList": {"Grant": [{"Grantee": {"URI": grantee}, "Permission": "READ"}]}}}}),
        )
    };
    assert!(has(
        &acl("http://acs.amazonaws.com/groups/global/AllUsers"),
        "s3-bucket-made-public"
    ));
    assert!(!has(
        &acl("http://acs.amazonaws.com/groups/s3/LogDelivery"),
        "s3-bucket-made-public"
    ));
    let policy = |principal: Value| {
        event(
            "PutBucketPolicy",
            "s3.amazonaws.com",
            json!({"requestParameters": {"bucketName": "b",
        "bucketPolicy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject"}]}}}),
        )
    };
    assert!(has(&policy(json!("*")), "s3-bucket-made-public"));
    assert!(has(&policy(json!({"AWS": "*"})), "s3-bucket-made-public"));
    assert!(!has(
        &policy(json!({"AWS": "arn:aws:iam::111122223333:root"})),
        "s3-bucket-made-public"
    ));

    let mut key = event(
        "CreateAccessKey",
        "iam.amazonaws.com",
        json!({"requestParameters": {"userName": "bob"}}),
    );
    assert!(has(&key, "iam-access-key-for-another-user"));
    key["requestParameters"]["userName"] = json!("alice");
    assert!(!has(&key, "iam-access-key-for-another-user"));
}

#[test]
fn the_country_rule_uses_the_geoip_database() {
    let geo = common::fixtures().join("geo");
    let config = SignalsConfig {
        geoip_db: Some(geo.join("city-subset.mmdb")),
        allowed_countries: vec!["US".into(), "IL".into()],
        ..SignalsConfig::default()
    };
    let enrichment = Enrichment::load(&config).unwrap();
    let expected: Value = serde_json::from_slice(&std::fs::read(geo.join("expected.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (ip, facts) in expected.as_object().unwrap() {
        let Some(country) = facts["city"]["country_code"].as_str() else {
            continue;
        };
        let record = json!({"eventVersion": "1.08", "eventName": "GetObject", "eventSource": "s3.amazonaws.com", "sourceIPAddress": ip}).to_string();
        let Message::CloudTrail(r) = classify(&record) else {
            panic!()
        };
        let findings = enrichment.examine(&r, &mut Signals::default());
        let flagged = findings.rules.iter().any(|m| m.id == "unexpected-country");
        assert_eq!(flagged, !["US", "IL"].contains(&country), "{ip} in {country}");
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

#[tokio::test]
async fn documents_in_the_node_carry_source_and_signal_fields() {
    use common::node::{self, Pipeline};
    let prefix = node::unique_prefix("signals");
    let _cleanup = node::Cleanup(prefix.clone());
    let geo = common::fixtures().join("geo");
    let signals = SignalsConfig {
        geoip_db: Some(geo.join("city-subset.mmdb")),
        geoip_asn_db: Some(geo.join("asn-subset.mmdb")),
        allowed_countries: vec!["US".into(), "IL".into()],
        ..SignalsConfig::default()
    };
    let mut pipeline = Pipeline::new(node::config(&prefix, &node::url()), None);
    pipeline.indexer = pipeline.indexer.with_enrichment(Enrichment::load(&signals).unwrap());
    let mut matched = 0;
    for name in ["root-activity.json", "console-login-failure.json", "all-records-3.json"] {
        let event = serde_json::from_slice(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap();
        let (summary, result) = pipeline.invoke(&event, None).await;
        result.unwrap();
        assert_eq!(summary.delivery.dead_lettered, 0, "{name}");
        matched += summary.signals;
    }
    assert!(matched > 10, "{matched}");
    node::refresh(&prefix).await;
    let pattern = format!("{prefix}-*");
    let mapping = node::call(
        reqwest::Method::GET,
        &format!("{pattern}/_mapping/field/source.geo.location"),
        None,
    )
    .await;
    let types: Vec<&str> = mapping
        .as_object()
        .unwrap()
        .values()
        .filter_map(|m| m["mappings"]["source.geo.location"]["mapping"]["location"]["type"].as_str())
        .collect();
    assert!(
        !types.is_empty() && types.iter().all(|t| *t == "geo_point"),
        "{mapping}"
    );
    assert!(node::count(&pattern, "_exists_:source.geo.country_iso_code").await > 5);
    assert!(node::count(&pattern, "_exists_:source.as.number").await > 0);
    assert!(node::count(&pattern, "signal.rules:root-activity").await >= 5);
    assert!(node::count(&pattern, "signal.severity:high OR signal.severity:critical").await >= 5);
    // A geo query on the mapped point: calls made within 10 km of one that has a location.
    let one = node::search(
        &pattern,
        json!({"size": 1, "query": {"exists": {"field": "source.geo.location"}}}),
    )
    .await;
    let at = one["hits"]["hits"][0]["_source"]["source"]["geo"]["location"].clone();
    assert!(at["lat"].is_number(), "{one}");
    let near = node::search(
        &pattern,
        json!({"size": 0, "query": {"geo_distance": {"distance": "10km", "source.geo.location": at}}}),
    )
    .await;
    assert!(near["hits"]["total"]["value"].as_u64().unwrap() >= 1, "{near}");
}
