//! Stage 3 for GuardDuty findings: one finding version becomes one bulk item in
//! `<prefix>-guardduty-YYYY.MM.DD` (the day of `updatedAt`), `_id` `<finding id>:<updatedAt>`, with
//! typed fields; the field table its template is built from. The latest version of a finding is
//! a search collapsed on `finding.id`, sorted by `finding.updated_at` descending.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::Value;

use crate::index::family::{self, EventMeta, FieldType, GeoLookup, Unindexed, date, kw};
use crate::ingest::guardduty::{self, Finding, FindingError, FindingType, Lenient, SeverityLabel};

/// The family's part of index names: `<prefix>-guardduty-YYYY.MM.DD`.
pub const FAMILY: &str = "guardduty";

/// `event.dataset` of every finding document.
pub const DATASET: &str = "aws.guardduty";

/// Every field a finding document can have besides the common `@` fields, with its mapping.
pub const GUARDDUTY_FIELDS: &[(&str, FieldType)] = &[
    ("event.kind", FieldType::Keyword),
    ("event.dataset", FieldType::Keyword),
    ("event.severity", FieldType::Long),
    ("event.created", FieldType::Date),
    ("event.start", FieldType::Date),
    ("event.end", FieldType::Date),
    ("finding.id", FieldType::Keyword),
    ("finding.arn", FieldType::Keyword),
    ("finding.type", FieldType::Keyword),
    ("finding.threat_purpose", FieldType::Keyword),
    ("finding.resource_type_affected", FieldType::Keyword),
    ("finding.threat_family", FieldType::Keyword),
    ("finding.detection_mechanism", FieldType::Keyword),
    ("finding.artifact", FieldType::Keyword),
    ("finding.severity", FieldType::Float),
    ("finding.severity_label", FieldType::Keyword),
    ("finding.title", FieldType::Text),
    ("finding.description", FieldType::Text),
    ("finding.schema_version", FieldType::Keyword),
    ("finding.partition", FieldType::Keyword),
    ("finding.created_at", FieldType::Date),
    ("finding.updated_at", FieldType::Date),
    ("finding.sample", FieldType::Boolean),
    ("finding.resource.type", FieldType::Keyword),
    ("finding.resource.id", FieldType::Keyword),
    ("finding.resource.instance_id", FieldType::Keyword),
    ("finding.resource.instance_type", FieldType::Keyword),
    ("finding.resource.access_key_id", FieldType::Keyword),
    ("finding.resource.principal_id", FieldType::Keyword),
    ("finding.resource.user_name", FieldType::Keyword),
    ("finding.resource.user_type", FieldType::Keyword),
    ("finding.resource.bucket_names", FieldType::Keyword),
    ("finding.resource.eks_cluster_name", FieldType::Keyword),
    ("finding.resource.ecs_cluster_name", FieldType::Keyword),
    ("finding.resource.lambda_function_name", FieldType::Keyword),
    ("finding.resource.rds_db_instance_id", FieldType::Keyword),
    ("finding.service.count", FieldType::Long),
    ("finding.service.event_first_seen", FieldType::Date),
    ("finding.service.event_last_seen", FieldType::Date),
    ("finding.service.action_type", FieldType::Keyword),
    ("finding.service.connection_direction", FieldType::Keyword),
    ("finding.service.resource_role", FieldType::Keyword),
    ("finding.service.detector_id", FieldType::Keyword),
    ("finding.service.feature_name", FieldType::Keyword),
    ("finding.service.archived", FieldType::Boolean),
    ("finding.actor.ip", FieldType::Ip),
    ("finding.actor.country_name", FieldType::Keyword),
    ("finding.actor.city_name", FieldType::Keyword),
    ("finding.actor.asn", FieldType::Keyword),
    ("finding.actor.asn_org", FieldType::Keyword),
    ("finding.actor.org", FieldType::Keyword),
    ("finding.actor.isp", FieldType::Keyword),
    ("finding.actor.location", FieldType::GeoPoint),
    ("source.ip", FieldType::Ip),
    ("source.geo.country_iso_code", FieldType::Keyword),
    ("source.geo.country_name", FieldType::Keyword),
    ("source.geo.location", FieldType::GeoPoint),
    ("source.as.number", FieldType::Long),
    ("source.as.organization.name", FieldType::Keyword),
    ("related.ip", FieldType::Ip),
    ("cloud.provider", FieldType::Keyword),
    ("cloud.account.id", FieldType::Keyword),
    ("cloud.region", FieldType::Keyword),
    ("cloud.instance.id", FieldType::Keyword),
];

/// The composable template of `<prefix>-guardduty-*`, from [`GUARDDUTY_FIELDS`].
pub fn guardduty_template(prefix: &str, replicas: Option<u32>, lifecycle: Option<&str>) -> Value {
    family::family_template(prefix, FAMILY, GUARDDUTY_FIELDS, replicas, lifecycle)
}

/// What the alert path needs of a finding: one SNS message per invocation lists the findings at
/// or above `ALERT_MIN_SEVERITY`.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingSummary {
    /// `finding.id`.
    pub id: String,
    /// `finding.type`.
    pub finding_type: String,
    /// `finding.title`.
    pub title: Option<String>,
    /// `finding.severity`.
    pub severity: Option<f64>,
    /// `finding.severity_label`.
    pub label: Option<SeverityLabel>,
    /// `cloud.account.id`.
    pub account: Option<String>,
    /// `cloud.region`.
    pub region: Option<String>,
    /// The first remote address of the action.
    pub actor_ip: Option<IpAddr>,
    /// `finding.resource.id`.
    pub resource_ids: Vec<String>,
    /// `updatedAt`, as written.
    pub updated_at: Option<String>,
    /// A sample finding ("Generate sample findings").
    pub sample: bool,
    /// The document's index.
    pub index: String,
    /// The document's `_id`.
    pub doc_id: String,
}

/// What a finding item turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum FindingOutcome {
    /// A finding, indexed with its fields.
    Finding(Box<FindingSummary>),
    /// A finding event that could not be read, kept with `@parse_error`.
    Invalid,
}

fn time_of(l: &Lenient<'_, Cow<'_, str>>) -> Option<chrono::DateTime<chrono::Utc>> {
    l.as_ref().and_then(|v| crate::ingest::parse_event_time(v))
}

/// Appends the action line and the document line of one finding event. `parsed` is what
/// [`guardduty::parse`] gave. `@message` is always kept: the document holds the fields that
/// are searched and charted, the message the whole finding (evidence, additional info), which
/// is too irregular to map. `geo` enriches the first remote address as `source.geo`/`source.as`.
pub fn write_finding_item(
    out: &mut Vec<u8>,
    prefix: &str,
    meta: &EventMeta<'_>,
    message: &str,
    parsed: &Result<Finding<'_>, FindingError>,
    geo: Option<GeoLookup<'_>>,
) -> FindingOutcome {
    let f = match parsed {
        Ok(f) => f,
        Err(e) => {
            let time = meta.time_or_logged(None);
            let mut doc = family::open_item(out, prefix, FAMILY, meta, meta.doc_id, &time, Some(message));
            doc.str("@parse_error", &e.to_string());
            doc.child("event").str("dataset", DATASET);
            return FindingOutcome::Invalid;
        }
    };
    let updated = time_of(&f.updated_at);
    let time = meta.time_or_logged(updated);
    let doc_id = f.doc_id();
    let doc_id = doc_id.as_deref().unwrap_or(meta.doc_id);
    let mut kept = Unindexed::default();
    let label = f.label();
    let first_actor = f.service.actors.first();
    let mut doc = family::open_item(out, prefix, FAMILY, meta, doc_id, &time, Some(message));
    {
        let mut event = family::event(&mut doc, "alert", DATASET, None);
        if let (Some(_), Some(s)) = (label, f.severity.value()) {
            // ECS `event.severity` is a long: the floor keeps each value in its band's range.
            event.num("severity", s.floor() as i64);
        }
        if let Some(t) = time_of(&f.created_at) {
            event.time("created", &t);
        }
        if let Some(t) = time_of(&f.service.event_first_seen) {
            event.time("start", &t);
        }
        if let Some(t) = time_of(&f.service.event_last_seen) {
            event.time("end", &t);
        }
    }
    {
        let mut finding = doc.child("finding");
        finding.str("id", &f.id);
        kw(&mut finding, &mut kept, "arn", "finding.arn", &f.arn);
        finding.str("type", &f.finding_type);
        if let Some(t) = FindingType::parse(&f.finding_type) {
            finding.str("threat_purpose", t.threat_purpose);
            finding.str("resource_type_affected", t.resource_type_affected);
            finding.str("threat_family", t.threat_family);
            finding.opt_str("detection_mechanism", t.detection_mechanism);
            finding.opt_str("artifact", t.artifact);
        }
        match &f.severity {
            Lenient::Value(s) => finding.num("severity", s),
            Lenient::Invalid(raw) => kept.json("finding.severity", raw),
            Lenient::Absent => {}
        }
        finding.opt_str("severity_label", label.map(SeverityLabel::as_str));
        kw(&mut finding, &mut kept, "title", "finding.title", &f.title);
        kw(
            &mut finding,
            &mut kept,
            "description",
            "finding.description",
            &f.description,
        );
        kw(
            &mut finding,
            &mut kept,
            "schema_version",
            "finding.schema_version",
            &f.schema_version,
        );
        kw(&mut finding, &mut kept, "partition", "finding.partition", &f.partition);
        date(
            &mut finding,
            &mut kept,
            "created_at",
            "finding.created_at",
            &f.created_at,
        );
        date(
            &mut finding,
            &mut kept,
            "updated_at",
            "finding.updated_at",
            &f.updated_at,
        );
        if f.service.sample {
            finding.bool("sample", true);
        }
        {
            let r = &f.resource;
            let mut resource = finding.child("resource");
            kw(
                &mut resource,
                &mut kept,
                "type",
                "finding.resource.type",
                &r.resource_type,
            );
            resource.strs("id", r.ids());
            kw(
                &mut resource,
                &mut kept,
                "instance_id",
                "finding.resource.instance_id",
                &r.instance_id,
            );
            kw(
                &mut resource,
                &mut kept,
                "instance_type",
                "finding.resource.instance_type",
                &r.instance_type,
            );
            kw(
                &mut resource,
                &mut kept,
                "access_key_id",
                "finding.resource.access_key_id",
                &r.access_key_id,
            );
            kw(
                &mut resource,
                &mut kept,
                "principal_id",
                "finding.resource.principal_id",
                &r.principal_id,
            );
            kw(
                &mut resource,
                &mut kept,
                "user_name",
                "finding.resource.user_name",
                &r.user_name,
            );
            kw(
                &mut resource,
                &mut kept,
                "user_type",
                "finding.resource.user_type",
                &r.user_type,
            );
            resource.strs("bucket_names", r.bucket_names.iter().map(|b| b.as_ref()));
            kw(
                &mut resource,
                &mut kept,
                "eks_cluster_name",
                "finding.resource.eks_cluster_name",
                &r.eks_cluster_name,
            );
            kw(
                &mut resource,
                &mut kept,
                "ecs_cluster_name",
                "finding.resource.ecs_cluster_name",
                &r.ecs_cluster_name,
            );
            kw(
                &mut resource,
                &mut kept,
                "lambda_function_name",
                "finding.resource.lambda_function_name",
                &r.lambda_function_name,
            );
            kw(
                &mut resource,
                &mut kept,
                "rds_db_instance_id",
                "finding.resource.rds_db_instance_id",
                &r.rds_db_instance_id,
            );
            if let Some(raw) = r.invalid {
                kept.json("finding.resource", raw);
            }
        }
        {
            let s = &f.service;
            let mut service = finding.child("service");
            family::long(&mut service, &mut kept, "count", "finding.service.count", &s.count);
            date(
                &mut service,
                &mut kept,
                "event_first_seen",
                "finding.service.event_first_seen",
                &s.event_first_seen,
            );
            date(
                &mut service,
                &mut kept,
                "event_last_seen",
                "finding.service.event_last_seen",
                &s.event_last_seen,
            );
            kw(
                &mut service,
                &mut kept,
                "action_type",
                "finding.service.action_type",
                &s.action_type,
            );
            kw(
                &mut service,
                &mut kept,
                "connection_direction",
                "finding.service.connection_direction",
                &s.connection_direction,
            );
            kw(
                &mut service,
                &mut kept,
                "resource_role",
                "finding.service.resource_role",
                &s.resource_role,
            );
            kw(
                &mut service,
                &mut kept,
                "detector_id",
                "finding.service.detector_id",
                &s.detector_id,
            );
            kw(
                &mut service,
                &mut kept,
                "feature_name",
                "finding.service.feature_name",
                &s.feature_name,
            );
            match &s.archived {
                Lenient::Value(b) => service.bool("archived", *b),
                Lenient::Invalid(raw) => kept.json("finding.service.archived", raw),
                Lenient::Absent => {}
            }
            if let Some(raw) = s.invalid {
                kept.json("finding.service", raw);
            }
        }
        let ips: Vec<IpAddr> = f.service.actors.iter().map(|a| a.ip).collect();
        {
            let mut actor = finding.child("actor");
            actor.ips("ip", &ips);
            if let Some(a) = first_actor {
                kw(
                    &mut actor,
                    &mut kept,
                    "country_name",
                    "finding.actor.country_name",
                    &a.country_name,
                );
                kw(
                    &mut actor,
                    &mut kept,
                    "city_name",
                    "finding.actor.city_name",
                    &a.city_name,
                );
                kw(&mut actor, &mut kept, "asn", "finding.actor.asn", &a.asn);
                kw(&mut actor, &mut kept, "asn_org", "finding.actor.asn_org", &a.asn_org);
                kw(&mut actor, &mut kept, "org", "finding.actor.org", &a.org);
                kw(&mut actor, &mut kept, "isp", "finding.actor.isp", &a.isp);
                match &a.location {
                    Lenient::Value(point) => actor.geo_point("location", *point),
                    Lenient::Invalid(raw) => kept.json("finding.actor.location", raw),
                    Lenient::Absent => {}
                }
            }
            for raw in &f.service.invalid_ips {
                kept.json("finding.actor.ip", raw);
            }
        }
    }
    if let Some(a) = first_actor {
        family::ip_with_geo(&mut doc.child("source"), &a.ip, geo);
    }
    {
        let ips: Vec<IpAddr> = f.service.actors.iter().map(|a| a.ip).collect();
        doc.child("related").ips("ip", &ips);
    }
    {
        let mut cloud = doc.child("cloud");
        cloud.str("provider", "aws");
        if let Some(account) = f.account() {
            cloud.child("account").str("id", account);
        }
        cloud.opt_str("region", f.region_name());
        // Only for instance findings: sample findings of other kinds carry placeholder instances.
        if guardduty::text_of(&f.resource.resource_type) == Some("Instance")
            && let Some(instance) = guardduty::text_of(&f.resource.instance_id)
        {
            cloud.child("instance").str("id", instance);
        }
    }
    kept.write(&mut doc);
    drop(doc);
    FindingOutcome::Finding(Box::new(FindingSummary {
        id: f.id.to_string(),
        finding_type: f.finding_type.to_string(),
        title: f.title.value().map(Cow::into_owned),
        severity: f.severity.value(),
        label,
        account: f.account().map(str::to_owned),
        region: f.region_name().map(str::to_owned),
        actor_ip: first_actor.map(|a| a.ip),
        resource_ids: f.resource.ids().into_iter().map(str::to_owned).collect(),
        updated_at: f.updated_at.value().map(Cow::into_owned),
        sample: f.service.sample,
        index: family::index_name(prefix, FAMILY, &time),
        doc_id: doc_id.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::family::GeoFacts;
    use crate::index::family::testing::{check_document, check_table, split_item};
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::{BTreeMap, BTreeSet};

    const META: EventMeta<'static> = EventMeta {
        id: "36900002000000000000000000000000000000000000000000000000",
        doc_id: "36900002000000000000000000000000000000000000000000000000",
        timestamp_ms: 1_700_000_000_000,
        owner: "123456789012",
        log_group: "/aws/events/guardduty",
        log_stream: "guardduty-findings",
        with_id: true,
    };

    fn fixture(name: &str) -> String {
        crate::index::family::testing::fixture(&format!("guardduty/{name}"))
    }

    fn item(message: &str, geo: Option<GeoLookup<'_>>) -> (FindingOutcome, Value, Value) {
        let parsed = guardduty::parse(message).expect("a finding");
        let mut outcome = None;
        let write = |out: &mut Vec<u8>| outcome = Some(write_finding_item(out, "cwl", &META, message, &parsed, geo));
        let (action, doc) = crate::index::family::testing::checked_item(write, GUARDDUTY_FIELDS, &[]);
        (outcome.expect("written"), action, doc)
    }

    #[test]
    fn the_table_is_consistent_and_the_template_maps_it() {
        check_table(GUARDDUTY_FIELDS);
        let t = guardduty_template("cwl", Some(0), None);
        assert_eq!(t["index_patterns"], json!(["cwl-guardduty-*"]));
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(p["finding"]["properties"]["severity"]["type"], "float");
        assert_eq!(p["finding"]["properties"]["updated_at"]["type"], "date");
        assert_eq!(
            p["finding"]["properties"]["resource"]["properties"]["id"]["type"],
            "keyword"
        );
        assert_eq!(
            p["finding"]["properties"]["actor"]["properties"]["location"]["type"],
            "geo_point"
        );
        assert_eq!(
            p["finding"]["properties"]["title"]["fields"]["keyword"]["type"],
            "keyword"
        );
        assert_eq!(p["event"]["properties"]["severity"]["type"], "long");
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
    }

    #[test]
    fn a_wrapped_finding_becomes_a_typed_document() {
        let line = fixture("aws-samples-automated-response-wrapped.ndjson")
            .lines()
            .next()
            .unwrap()
            .to_owned();
        let geo = |ip: IpAddr| {
            (ip.to_string() == "0.0.0.0").then(|| GeoFacts {
                country_iso_code: Some("US".into()),
                ..GeoFacts::default()
            })
        };
        let (outcome, action, doc) = item(&line, Some(&geo));
        assert_eq!(
            action,
            json!({"create": {"_index": "cwl-guardduty-2017.10.31", "_id": "16afba5c5c43e07c9e3e5e2e544e95df:2017-10-31T23:16:23.824Z"}})
        );
        assert_eq!(doc["@message"], line.as_str());
        assert_eq!(doc["@timestamp"], "2017-10-31T23:16:23.824Z");
        assert_eq!(
            doc["event"],
            json!({"kind": "alert", "dataset": "aws.guardduty", "severity": 5, "created": "2017-10-31T23:16:23.824Z",
                   "start": "2017-10-31T23:16:23.000Z", "end": "2017-10-31T23:16:23.000Z"})
        );
        let finding = &doc["finding"];
        assert_eq!(
            (
                &finding["threat_purpose"],
                &finding["resource_type_affected"],
                &finding["threat_family"],
                &finding["detection_mechanism"]
            ),
            (
                &json!("Canary"),
                &json!("EC2"),
                &json!("Stateless"),
                &json!("IntegTest")
            )
        );
        assert_eq!(
            (&finding["severity"], &finding["severity_label"]),
            (&json!(5), &json!("medium"))
        );
        assert_eq!(
            finding["resource"],
            json!({"type": "Instance", "id": ["i-05746eb48123455e0"], "instance_id": "i-05746eb48123455e0", "instance_type": "t2.micro"})
        );
        assert_eq!(
            finding["service"],
            json!({"count": 1, "event_first_seen": "2017-10-31T23:16:23.000Z", "event_last_seen": "2017-10-31T23:16:23.000Z",
                   "action_type": "NETWORK_CONNECTION", "connection_direction": "OUTBOUND", "resource_role": "TARGET",
                   "detector_id": "3caf4e0aaa46ce4ccbcef949a8785353", "archived": false})
        );
        assert_eq!(
            finding["actor"],
            json!({"ip": ["0.0.0.0"], "country_name": "United States", "city_name": "GeneratedFindingCityName",
                   "asn": "-1", "org": "GeneratedFindingORG", "isp": "GeneratedFindingISP", "location": {"lat": 0, "lon": 0}})
        );
        assert_eq!(
            doc["source"],
            json!({"ip": "0.0.0.0", "geo": {"country_iso_code": "US"}})
        );
        assert_eq!(
            doc["cloud"],
            json!({"provider": "aws", "account": {"id": "123456789012"}, "region": "us-east-1", "instance": {"id": "i-05746eb48123455e0"}})
        );
        let FindingOutcome::Finding(summary) = outcome else {
            panic!("a finding")
        };
        assert_eq!(summary.index, "cwl-guardduty-2017.10.31");
        assert_eq!(
            summary.doc_id,
            "16afba5c5c43e07c9e3e5e2e544e95df:2017-10-31T23:16:23.824Z"
        );
        assert_eq!(summary.label, Some(SeverityLabel::Medium));
        assert_eq!(summary.actor_ip.map(|ip| ip.to_string()).as_deref(), Some("0.0.0.0"));
        assert_eq!(summary.resource_ids, ["i-05746eb48123455e0"]);
    }

    #[test]
    fn pretty_printed_findings_stay_on_one_line() {
        let raw = fixture("aws-samples-automated-response-guardduty_s3_event.json");
        assert!(raw.contains('\n'));
        let (_, _, doc) = item(&raw, None);
        assert_eq!(doc["finding"]["resource"]["bucket_names"], json!(["bucketName"]));
        assert_eq!(doc["finding"]["sample"], true);
        assert_eq!(doc["finding"]["service"]["archived"], true);
        assert_eq!(doc["@message"], raw.as_str(), "kept as it came");
    }

    #[test]
    fn unreadable_findings_are_kept_with_the_reason() {
        let broken = r#"{"detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{"id":"x""#;
        let parsed = guardduty::parse(broken).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            write_finding_item(&mut out, "cwl", &META, broken, &parsed, None),
            FindingOutcome::Invalid
        );
        let (action, doc) = split_item(&out);
        assert_eq!(action["create"]["_index"], "cwl-guardduty-2023.11.14");
        assert_eq!(action["create"]["_id"], META.doc_id);
        assert_eq!(doc["@message"], broken);
        assert!(doc["@parse_error"].as_str().unwrap().contains("not valid JSON"));
    }

    #[test]
    fn wrong_shapes_go_to_unindexed() {
        let m = r#"{"schemaVersion":2,"id":"x","type":"A:B/C","severity":"8","updatedAt":"later","createdAt":7,"accountId":123,"title":["t"],"resource":"i-1","service":{"serviceName":"guardduty","count":"many","archived":"False","eventFirstSeen":{"at":1},"action":{"actionType":["X"],"networkConnectionAction":{"remoteIpDetails":{"ipAddressV4":"1.2.3.4","geoLocation":{"lat":91,"lon":0}}},"awsApiCallAction":{"remoteIpDetails":{"ipAddressV4":"999.1.1.1"}}}}}"#;
        let (outcome, action, doc) = item(m, None);
        assert_eq!(
            action["create"]["_index"], "cwl-guardduty-2023.11.14",
            "updatedAt unusable"
        );
        assert_eq!(
            action["create"]["_id"], "x:later",
            "but it is the finding version's identity"
        );
        assert_eq!(
            doc["@unindexed"],
            json!({
                "finding.severity": "8",
                "finding.title": ["t"],
                "finding.created_at": 7,
                "finding.updated_at": "later",
                "finding.resource": "i-1",
                "finding.service.count": "many",
                "finding.service.event_first_seen": {"at": 1},
                "finding.service.action_type": ["X"],
                "finding.service.archived": "False",
                "finding.actor.location": {"lat": 91, "lon": 0},
                "finding.actor.ip": "999.1.1.1"
            })
        );
        assert_eq!(doc["finding"]["schema_version"], "2");
        assert_eq!(doc["cloud"]["account"]["id"], "123");
        assert!(doc["event"].get("severity").is_none());
        let FindingOutcome::Finding(summary) = outcome else {
            panic!()
        };
        assert_eq!((summary.severity, summary.label), (None, None));
    }

    #[test]
    fn deep_or_surrogate_values_stay_storable() {
        let deep = format!(
            r#"{{"detail-type":"GuardDuty Finding","detail":{{"schemaVersion":"2.0","id":"d","type":"A:B/C","severity":1,"updatedAt":"2020-01-01T00:00:00Z","title":"\ud800","service":{}{}}}}}"#,
            "[".repeat(120_000),
            "]".repeat(120_000)
        );
        let (_, _, doc) = item(&deep, None);
        let kept = &doc["@unindexed"];
        assert_eq!(kept["finding.title"], r#""\ud800""#, "a lone surrogate, as text");
        assert!(
            kept["finding.service"].as_str().is_some_and(|s| s.len() == 240_000),
            "as text"
        );
        assert_eq!(doc["finding"]["id"], "d");
    }

    /// One decoded log event of the fixtures, as `scripts/make-logtype-fixtures.py` lists them.
    #[derive(serde::Deserialize)]
    struct Event {
        fixture: String,
        owner: String,
        group: String,
        stream: String,
        id: String,
        timestamp: i64,
        message: String,
    }

    fn indexed() -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/guardduty/events.ndjson");
        let mut seen = BTreeSet::new();
        let mut docs = Vec::new();
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let e: Event = serde_json::from_str(line).unwrap();
            let Some(parsed) = guardduty::parse(&e.message) else {
                panic!("{}: not recognised: {}", e.fixture, e.message)
            };
            let meta = EventMeta {
                id: &e.id,
                doc_id: &e.id,
                timestamp_ms: e.timestamp,
                owner: &e.owner,
                log_group: &e.group,
                log_stream: &e.stream,
                with_id: true,
            };
            let mut out = Vec::new();
            write_finding_item(&mut out, "cwl", &meta, &e.message, &parsed, None);
            let (action, doc) = split_item(&out);
            check_document(&doc, GUARDDUTY_FIELDS, &[]).unwrap_or_else(|err| panic!("{}: {err}", e.fixture));
            if seen.insert(action["create"]["_id"].as_str().unwrap().to_owned()) {
                docs.push(doc);
            }
        }
        docs
    }

    #[test]
    fn the_fixtures_aggregate_to_the_oracle() {
        let docs = indexed();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/guardduty/expected.json");
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let count = |key: &dyn Fn(&Value) -> Vec<String>| {
            let mut m: BTreeMap<String, u64> = BTreeMap::new();
            for d in &docs {
                for k in key(d) {
                    *m.entry(k).or_default() += 1;
                }
            }
            serde_json::to_value(m).unwrap()
        };
        let s = |v: &Value| v.as_str().map(str::to_owned).into_iter().collect::<Vec<_>>();
        assert_eq!(json!(docs.len()), expected["documents"]);
        assert_eq!(
            count(&|d| s(&d["finding"]["severity_label"])),
            expected["findings_by_severity_label"]
        );
        assert_eq!(
            count(&|d| {
                let day = d["@timestamp"].as_str().unwrap()[..10].to_owned();
                s(&d["finding"]["severity_label"])
                    .into_iter()
                    .map(|l| format!("{day} {l}"))
                    .collect()
            }),
            expected["findings_by_day_and_severity_label"]
        );
        assert_eq!(count(&|d| s(&d["finding"]["type"])), expected["findings_by_type"]);
        assert_eq!(
            count(&|d| s(&d["finding"]["threat_purpose"])),
            expected["findings_by_threat_purpose"]
        );
        assert_eq!(
            count(&|d| s(&d["finding"]["resource"]["type"])),
            expected["findings_by_resource_type"]
        );
        assert_eq!(
            count(&|d| d["finding"]["resource"]["id"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(s)
                .collect()),
            expected["findings_by_resource_id"]
        );
        assert_eq!(count(&|d| s(&d["source"]["ip"])), expected["findings_by_actor_ip"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Findings with random values in their typed places: one item, fitting the template,
        /// never a panic.
        #[test]
        fn random_values_never_break_the_document(
            severity in prop_oneof![Just(json!(null)), (-5.0f64..15.0).prop_map(|f| json!(f)), "[ -~]{0,5}".prop_map(|s| json!(s)), Just(json!([1])), Just(json!({"a": 1}))],
            updated in prop_oneof![Just(json!("2020-02-14T18:12:22.316Z")), Just(json!("2025-02-25 20:40:06.721")), "[ -~]{0,25}".prop_map(|s| json!(s)), Just(json!(12)), Just(json!(null))],
            ip in prop_oneof![Just(json!("203.0.113.9")), Just(json!("2001:db8::2")), "[0-9.:a-f]{0,20}".prop_map(|s| json!(s)), Just(json!(1))],
            count in prop_oneof![Just(json!(3)), Just(json!(-1)), Just(json!(1.5)), Just(json!("x")), Just(json!(u64::MAX))],
            text in "[ -~\u{e9}\n\t]{0,30}",
        ) {
            let m = json!({
                "schemaVersion": "2.0", "id": text.clone(), "type": text.clone(), "severity": severity,
                "updatedAt": updated, "title": text.clone(), "accountId": count.clone(),
                "resource": {"resourceType": text.clone(), "instanceDetails": {"instanceId": count.clone()}, "s3BucketDetails": [{"name": text.clone()}, {"name": 5}]},
                "service": {"serviceName": "guardduty", "count": count.clone(), "eventLastSeen": text.clone(),
                            "action": {"portProbeAction": {"portProbeDetails": [{"remoteIpDetails": {"ipAddressV4": ip, "geoLocation": {"lat": count.clone(), "lon": 0}}}]}}}
            });
            let message = m.to_string();
            let Some(parsed) = guardduty::parse(&message) else {
                // Only a finding without a severity is not recognised as one.
                prop_assert!(m["severity"].is_null(), "not recognised: {}", message);
                return Ok(());
            };
            let mut out = Vec::new();
            write_finding_item(&mut out, "cwl", &META, &message, &parsed, None);
            let (action, doc) = split_item(&out);
            prop_assert!(action["create"]["_index"].as_str().unwrap().starts_with("cwl-guardduty-"));
            if let Err(e) = check_document(&doc, GUARDDUTY_FIELDS, &[]) {
                prop_assert!(false, "{}: {}", e, doc);
            }
            prop_assert_eq!(doc["@message"].as_str(), Some(message.as_str()));
        }
    }
}
