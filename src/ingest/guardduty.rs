//! Stage 2 for GuardDuty findings: a finding as EventBridge delivers it to a log group (the
//! `detail-type: GuardDuty Finding` event, the finding in `detail`) or bare, parsed into borrowed
//! typed fields. A value of the wrong shape is kept as its JSON text, never an error.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::value::RawValue;

pub use crate::ingest::lenient::{Lenient, text_of};
use crate::ingest::lenient::{Members, array, boolean, integer, keyword, lenient, number, string};

use crate::ingest::MAX_ID_BYTES;

/// Why a message that is a GuardDuty finding event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FindingError {
    /// Not valid JSON (a truncated or damaged event).
    #[error("GuardDuty finding is not valid JSON: {0}")]
    Json(serde_json::Error),
    /// A `GuardDuty Finding` event whose `detail` is not a finding.
    #[error("GuardDuty Finding event whose detail is not a finding: {0}")]
    NotAFinding(&'static str),
}

/// The EventBridge event around a finding. Its `id` is not a finding identity: the same id can
/// carry different findings (the shared samples' envelopes all have one), so nothing dedupes on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBridge<'a> {
    /// `id`.
    pub id: Option<Cow<'a, str>>,
    /// `source`: `aws.guardduty`.
    pub source: Option<Cow<'a, str>>,
    /// `account`.
    pub account: Option<Cow<'a, str>>,
    /// `region`.
    pub region: Option<Cow<'a, str>>,
    /// `time`.
    pub time: Option<Cow<'a, str>>,
}

/// The resource a finding is about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource<'a> {
    /// `resourceType`: `Instance`, `AccessKey`, `S3Bucket`, `EKSCluster`, ...
    pub resource_type: Lenient<'a, Cow<'a, str>>,
    /// `instanceDetails.instanceId`.
    pub instance_id: Lenient<'a, Cow<'a, str>>,
    /// `instanceDetails.instanceType`.
    pub instance_type: Lenient<'a, Cow<'a, str>>,
    /// `accessKeyDetails.accessKeyId`.
    pub access_key_id: Lenient<'a, Cow<'a, str>>,
    /// `accessKeyDetails.principalId`.
    pub principal_id: Lenient<'a, Cow<'a, str>>,
    /// `accessKeyDetails.userName`.
    pub user_name: Lenient<'a, Cow<'a, str>>,
    /// `accessKeyDetails.userType`.
    pub user_type: Lenient<'a, Cow<'a, str>>,
    /// `s3BucketDetails[].name`.
    pub bucket_names: Vec<Cow<'a, str>>,
    /// `eksClusterDetails.name`.
    pub eks_cluster_name: Lenient<'a, Cow<'a, str>>,
    /// `ecsClusterDetails.name`.
    pub ecs_cluster_name: Lenient<'a, Cow<'a, str>>,
    /// `lambdaDetails.functionName`.
    pub lambda_function_name: Lenient<'a, Cow<'a, str>>,
    /// `rdsDbInstanceDetails.dbInstanceIdentifier`.
    pub rds_db_instance_id: Lenient<'a, Cow<'a, str>>,
    /// The JSON text of `resource` when it is not an object.
    pub invalid: Option<&'a str>,
}

impl<'a> Resource<'a> {
    fn read(raw: Option<&'a RawValue>) -> Self {
        let Some(r) = Members::of(raw) else {
            return Self {
                invalid: raw.filter(|r| r.get() != "null").map(RawValue::get),
                ..Self::default()
            };
        };
        let instance = Members::of(r.get("instanceDetails"));
        let key = Members::of(r.get("accessKeyDetails"));
        let of = |m: &Option<Members<'a>>, k: &str| m.as_ref().map_or(Lenient::Absent, |m| keyword(m.get(k)));
        let named = |object: &str, k: &str| of(&Members::of(r.get(object)), k);
        Self {
            resource_type: keyword(r.get("resourceType")),
            instance_id: of(&instance, "instanceId"),
            instance_type: of(&instance, "instanceType"),
            access_key_id: of(&key, "accessKeyId"),
            principal_id: of(&key, "principalId"),
            user_name: of(&key, "userName"),
            user_type: of(&key, "userType"),
            bucket_names: array(r.get("s3BucketDetails"))
                .into_iter()
                .filter_map(|b| Members::of(Some(b))?.text("name"))
                .collect(),
            eks_cluster_name: named("eksClusterDetails", "name"),
            ecs_cluster_name: named("ecsClusterDetails", "name"),
            lambda_function_name: named("lambdaDetails", "functionName"),
            rds_db_instance_id: named("rdsDbInstanceDetails", "dbInstanceIdentifier"),
            invalid: None,
        }
    }

    /// The affected resource's identifiers, for "affected resources": those its
    /// `resourceType` names (the instance of an `Instance` finding, the key of an `AccessKey`
    /// one, ...), or every identifier given when the type names none of them. GuardDuty's
    /// sample findings carry details of other kinds too, which this keeps out.
    pub fn ids(&self) -> Vec<&str> {
        let one = text_of;
        let by_type: Vec<&str> = match self.resource_type.as_ref().map(|c| c.as_ref()) {
            Some("Instance") => one(&self.instance_id).into_iter().collect(),
            Some("AccessKey") => one(&self.access_key_id).into_iter().collect(),
            Some("S3Bucket") => self.bucket_names.iter().map(|b| b.as_ref()).collect(),
            Some("EKSCluster") => one(&self.eks_cluster_name).into_iter().collect(),
            Some("ECSCluster") => one(&self.ecs_cluster_name).into_iter().collect(),
            Some("Lambda") => one(&self.lambda_function_name).into_iter().collect(),
            Some("RDSDBInstance") => one(&self.rds_db_instance_id).into_iter().collect(),
            _ => Vec::new(),
        };
        if !by_type.is_empty() {
            return by_type;
        }
        let mut all: Vec<&str> = [
            &self.instance_id,
            &self.access_key_id,
            &self.eks_cluster_name,
            &self.ecs_cluster_name,
            &self.lambda_function_name,
            &self.rds_db_instance_id,
        ]
        .into_iter()
        .filter_map(text_of)
        .collect();
        all.extend(self.bucket_names.iter().map(|b| b.as_ref()));
        all
    }
}

/// A remote address of a finding's action, with what GuardDuty says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor<'a> {
    /// `ipAddressV4` (or `ipAddressV6`).
    pub ip: IpAddr,
    /// `country.countryName`.
    pub country_name: Lenient<'a, Cow<'a, str>>,
    /// `city.cityName`.
    pub city_name: Lenient<'a, Cow<'a, str>>,
    /// `organization.asn`, as text.
    pub asn: Lenient<'a, Cow<'a, str>>,
    /// `organization.asnOrg`.
    pub asn_org: Lenient<'a, Cow<'a, str>>,
    /// `organization.org`.
    pub org: Lenient<'a, Cow<'a, str>>,
    /// `organization.isp`.
    pub isp: Lenient<'a, Cow<'a, str>>,
    /// `geoLocation`: `(lat, lon)`.
    pub location: Lenient<'a, (f64, f64)>,
}

/// The `service` part of a finding: what GuardDuty saw, how often, and from where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Service<'a> {
    /// `count`: how many times GuardDuty saw the activity.
    pub count: Lenient<'a, i64>,
    /// `eventFirstSeen`.
    pub event_first_seen: Lenient<'a, Cow<'a, str>>,
    /// `eventLastSeen`.
    pub event_last_seen: Lenient<'a, Cow<'a, str>>,
    /// `action.actionType`: `NETWORK_CONNECTION`, `AWS_API_CALL`, `PORT_PROBE`, `DNS_REQUEST`, ...
    pub action_type: Lenient<'a, Cow<'a, str>>,
    /// `action.networkConnectionAction.connectionDirection`.
    pub connection_direction: Lenient<'a, Cow<'a, str>>,
    /// `resourceRole`.
    pub resource_role: Lenient<'a, Cow<'a, str>>,
    /// `detectorId`.
    pub detector_id: Lenient<'a, Cow<'a, str>>,
    /// `featureName`.
    pub feature_name: Lenient<'a, Cow<'a, str>>,
    /// `archived`.
    pub archived: Lenient<'a, bool>,
    /// `additionalInfo.sample` is `true`: a finding made by "Generate sample findings".
    pub sample: bool,
    /// The distinct remote addresses of the action, in order: `remoteIpDetails` of every
    /// action kind (`networkConnectionAction`, `awsApiCallAction`, `kubernetesApiCallAction`,
    /// `rdsLoginAttemptAction`, ...) and of each of `portProbeAction.portProbeDetails`.
    pub actors: Vec<Actor<'a>>,
    /// The JSON text of remote addresses that are not IP addresses.
    pub invalid_ips: Vec<&'a str>,
    /// The JSON text of `service` when it is not an object.
    pub invalid: Option<&'a str>,
}

fn actor(details: Option<&RawValue>) -> Option<Result<Actor<'_>, &str>> {
    let d = Members::of(details)?;
    let raw = d.get("ipAddressV4").or_else(|| d.get("ipAddressV6"))?;
    let Some(ip) = string(Some(raw)).value().and_then(|s| s.trim().parse::<IpAddr>().ok()) else {
        return Some(Err(raw.get()));
    };
    let org = Members::of(d.get("organization"));
    let of = |k: &str| org.as_ref().map_or(Lenient::Absent, |o| keyword(o.get(k)));
    let location = match Members::of(d.get("geoLocation")) {
        Some(g) => match (number(g.get("lat")), number(g.get("lon"))) {
            (Lenient::Value(lat), Lenient::Value(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Lenient::Value((lat, lon))
            }
            _ => d
                .get("geoLocation")
                .map_or(Lenient::Absent, |r| Lenient::Invalid(r.get())),
        },
        None => lenient(d.get("geoLocation"), |_| None),
    };
    Some(Ok(Actor {
        ip,
        country_name: Members::of(d.get("country")).map_or(Lenient::Absent, |c| keyword(c.get("countryName"))),
        city_name: Members::of(d.get("city")).map_or(Lenient::Absent, |c| keyword(c.get("cityName"))),
        asn: of("asn"),
        asn_org: of("asnOrg"),
        org: of("org"),
        isp: of("isp"),
        location,
    }))
}

impl<'a> Service<'a> {
    fn read(raw: Option<&'a RawValue>) -> Self {
        let Some(s) = Members::of(raw) else {
            return Self {
                invalid: raw.filter(|r| r.get() != "null").map(RawValue::get),
                ..Self::default()
            };
        };
        let action = Members::of(s.get("action"));
        let mut service = Self {
            count: integer(s.get("count")),
            event_first_seen: string(s.get("eventFirstSeen")),
            event_last_seen: string(s.get("eventLastSeen")),
            action_type: action
                .as_ref()
                .map_or(Lenient::Absent, |a| keyword(a.get("actionType"))),
            connection_direction: action
                .as_ref()
                .and_then(|a| Members::of(a.get("networkConnectionAction")))
                .map_or(Lenient::Absent, |n| keyword(n.get("connectionDirection"))),
            resource_role: keyword(s.get("resourceRole")),
            detector_id: keyword(s.get("detectorId")),
            feature_name: keyword(s.get("featureName")),
            archived: boolean(s.get("archived")),
            sample: Members::of(s.get("additionalInfo"))
                .and_then(|i| i.get("sample"))
                .is_some_and(|v| v.get() == "true"),
            ..Self::default()
        };
        for (_, kind) in action.iter().flat_map(|a| a.0.iter()) {
            let Some(kind) = Members::of(Some(*kind)) else { continue };
            let details = std::iter::once(kind.get("remoteIpDetails")).chain(
                array(kind.get("portProbeDetails"))
                    .into_iter()
                    .map(|p| Members::of(Some(p)).and_then(|p| p.get("remoteIpDetails"))),
            );
            for found in details.filter_map(actor) {
                match found {
                    Ok(a) if !service.actors.iter().any(|b| b.ip == a.ip) => service.actors.push(a),
                    Ok(_) => {}
                    Err(raw) => service.invalid_ips.push(raw),
                }
            }
        }
        service
    }
}

/// A GuardDuty finding, borrowing from the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding<'a> {
    /// The EventBridge event it came in, if it came in one.
    pub envelope: Option<EventBridge<'a>>,
    /// `id`.
    pub id: Cow<'a, str>,
    /// `type`: `ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact`.
    pub finding_type: Cow<'a, str>,
    /// `severity`, 1.0 to 10.0.
    pub severity: Lenient<'a, f64>,
    /// `schemaVersion`.
    pub schema_version: Lenient<'a, Cow<'a, str>>,
    /// `accountId`.
    pub account_id: Lenient<'a, Cow<'a, str>>,
    /// `region`.
    pub region: Lenient<'a, Cow<'a, str>>,
    /// `partition`.
    pub partition: Lenient<'a, Cow<'a, str>>,
    /// `arn`.
    pub arn: Lenient<'a, Cow<'a, str>>,
    /// `title`.
    pub title: Lenient<'a, Cow<'a, str>>,
    /// `description`.
    pub description: Lenient<'a, Cow<'a, str>>,
    /// `createdAt`.
    pub created_at: Lenient<'a, Cow<'a, str>>,
    /// `updatedAt`: each update of a finding is a new version of it.
    pub updated_at: Lenient<'a, Cow<'a, str>>,
    /// `resource`.
    pub resource: Resource<'a>,
    /// `service`.
    pub service: Service<'a>,
}

/// A finding's own fields, as far as they make it one: `id` and `type` strings, a `severity`,
/// and a mark of GuardDuty (`schemaVersion`, a GuardDuty `arn`, or `service.serviceName`).
/// CloudTrail records, the other JSON of a central logging account, have none of these.
fn is_finding(m: &Members<'_>) -> bool {
    let service_name = Members::of(m.get("service")).and_then(|s| s.text("serviceName"));
    m.text("id").is_some()
        && m.text("type").is_some()
        && m.get("severity").is_some_and(|s| s.get() != "null")
        && (m.get("schemaVersion").is_some()
            || m.text("arn").is_some_and(|a| a.contains(":guardduty:"))
            || service_name.as_deref() == Some("guardduty"))
}

fn read_finding<'a>(m: &Members<'a>, envelope: Option<EventBridge<'a>>) -> Finding<'a> {
    Finding {
        envelope,
        id: m.text("id").unwrap_or_default(),
        finding_type: m.text("type").unwrap_or_default(),
        severity: number(m.get("severity")),
        schema_version: keyword(m.get("schemaVersion")),
        account_id: keyword(m.get("accountId")),
        region: keyword(m.get("region")),
        partition: keyword(m.get("partition")),
        arn: keyword(m.get("arn")),
        title: string(m.get("title")),
        description: string(m.get("description")),
        created_at: string(m.get("createdAt")),
        updated_at: string(m.get("updatedAt")),
        resource: Resource::read(m.get("resource")),
        service: Service::read(m.get("service")),
    }
}

/// Recognises and reads a GuardDuty finding: `None` when the message is not one (the
/// caller goes on classifying it), an error when it is one that cannot be read (the caller
/// keeps it with `@message` and `@parse_error`).
///
/// Accepted: an EventBridge event with `detail-type: GuardDuty Finding`; an event without
/// `detail-type` (as some tools store them) whose `detail` is a finding; a bare finding.
pub fn parse(message: &str) -> Option<Result<Finding<'_>, FindingError>> {
    if !message.trim_start().starts_with('{') {
        return None;
    }
    let top: Members<'_> = match serde_json::from_str(message) {
        Ok(m) => m,
        // Damaged JSON is a finding's only if it says so; otherwise another classifier keeps it.
        Err(e) if message.contains(r#""GuardDuty Finding""#) || message.contains(r#""aws.guardduty""#) => {
            return Some(Err(FindingError::Json(e)));
        }
        Err(_) => return None,
    };
    let envelope = || EventBridge {
        id: top.text("id"),
        source: top.text("source"),
        account: top.text("account"),
        region: top.text("region"),
        time: top.text("time"),
    };
    let detail = Members::of(top.get("detail"));
    match top.text("detail-type").as_deref() {
        Some("GuardDuty Finding") => Some(match detail {
            Some(d) if is_finding(&d) => Ok(read_finding(&d, Some(envelope()))),
            Some(_) => Err(FindingError::NotAFinding("no string id and type, or no severity")),
            None => Err(FindingError::NotAFinding("detail is not an object")),
        }),
        Some(_) => None,
        None => match detail {
            Some(d) if is_finding(&d) && top.text("source").is_none_or(|s| s == "aws.guardduty") => {
                Some(Ok(read_finding(&d, Some(envelope()))))
            }
            _ => is_finding(&top).then(|| Ok(read_finding(&top, None))),
        },
    }
}

impl Finding<'_> {
    /// `<finding id>:<updatedAt>`: each update of a finding is kept once, and a redelivery (or the
    /// same finding bare and in its EventBridge event) duplicates nothing. `None` without a string
    /// `updatedAt`, or when the id would be too long; then the log event's id is used.
    pub fn doc_id(&self) -> Option<String> {
        let updated = self.updated_at.as_ref()?;
        let id = format!("{}:{updated}", self.id);
        (!self.id.is_empty() && id.len() <= MAX_ID_BYTES).then_some(id)
    }

    /// The account: the finding's `accountId`, else its event's `account`.
    pub fn account(&self) -> Option<&str> {
        self.account_id
            .as_ref()
            .or_else(|| self.envelope.as_ref()?.account.as_ref())
            .map(|c| c.as_ref())
    }

    /// The region: the finding's, else its event's.
    pub fn region_name(&self) -> Option<&str> {
        self.region
            .as_ref()
            .or_else(|| self.envelope.as_ref()?.region.as_ref())
            .map(|c| c.as_ref())
    }

    /// The severity label, by GuardDuty's bands.
    pub fn label(&self) -> Option<SeverityLabel> {
        self.severity.value().and_then(SeverityLabel::of)
    }
}

/// A finding type split into its parts: `ThreatPurpose:ResourceTypeAffected/ThreatFamilyName`,
/// then optionally `.DetectionMechanism` and `!Artifact` (GuardDuty finding format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingType<'t> {
    /// `Recon`, `UnauthorizedAccess`, `CryptoCurrency`, ...
    pub threat_purpose: &'t str,
    /// `EC2`, `IAMUser`, `S3`, `Kubernetes`, `Runtime`, ...
    pub resource_type_affected: &'t str,
    /// `PortProbeUnprotectedPort`, `BitcoinTool`, ...
    pub threat_family: &'t str,
    /// `B`, `Custom`, `Tcp`, `OutsideAWS`, ...
    pub detection_mechanism: Option<&'t str>,
    /// `DNS`, ...
    pub artifact: Option<&'t str>,
}

impl<'t> FindingType<'t> {
    /// Splits a type; `None` when it does not have the `Purpose:Resource/Family` form.
    pub fn parse(t: &'t str) -> Option<Self> {
        let (threat_purpose, rest) = t.split_once(':')?;
        let (resource_type_affected, rest) = rest.split_once('/')?;
        let (rest, artifact) = match rest.split_once('!') {
            Some((rest, artifact)) => (rest, Some(artifact)),
            None => (rest, None),
        };
        let (threat_family, detection_mechanism) = match rest.split_once('.') {
            Some((family, mechanism)) => (family, Some(mechanism)),
            None => (rest, None),
        };
        let nonempty = |s: &str| !s.is_empty();
        (nonempty(threat_purpose) && nonempty(resource_type_affected) && nonempty(threat_family)).then_some(Self {
            threat_purpose,
            resource_type_affected,
            threat_family,
            detection_mechanism: detection_mechanism.filter(|s| nonempty(s)),
            artifact: artifact.filter(|s| nonempty(s)),
        })
    }
}

/// GuardDuty's severity levels ("Severity levels of GuardDuty findings"): Low 1.0-3.9,
/// Medium 4.0-6.9, High 7.0-8.9, Critical 9.0-10.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeverityLabel {
    /// 1.0 to 3.9 (and the reserved 0 to 1, which no finding has).
    Low,
    /// 4.0 to 6.9.
    Medium,
    /// 7.0 to 8.9.
    High,
    /// 9.0 to 10.0: an attack sequence.
    Critical,
}

impl SeverityLabel {
    /// The label of a severity value; `None` outside 0 to 10.
    pub fn of(severity: f64) -> Option<Self> {
        if !(0.0..=10.0).contains(&severity) {
            return None;
        }
        Some(if severity >= 9.0 {
            Self::Critical
        } else if severity >= 7.0 {
            Self::High
        } else if severity >= 4.0 {
            Self::Medium
        } else {
            Self::Low
        })
    }

    /// `low`, `medium`, `high` or `critical`, as `ALERT_MIN_SEVERITY` names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/guardduty")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn ok(message: &str) -> Finding<'_> {
        parse(message).expect("a finding").expect("readable")
    }

    #[test]
    fn raw_and_wrapped_samples_read_the_same() {
        let wrapped = fixture("aws-samples-automated-response-wrapped.ndjson");
        let names = ["ec2", "iam", "s3"];
        for (line, name) in wrapped.lines().zip(names) {
            let raw = fixture(&format!("aws-samples-automated-response-guardduty_{name}_event.json"));
            let (bare, boxed) = (ok(&raw), ok(line));
            assert!(bare.envelope.is_none());
            let envelope = boxed.envelope.clone().unwrap();
            assert_eq!(envelope.source.as_deref(), Some("aws.guardduty"));
            assert_eq!(envelope.id.as_deref(), Some("cd2d702e-ab31-411b-9344-793ce56b1bc7"));
            assert_eq!(
                Finding {
                    envelope: None,
                    ..boxed.clone()
                },
                bare,
                "{name}"
            );
            assert_eq!(bare.doc_id(), boxed.doc_id(), "the same _id either way");
        }
    }

    #[test]
    fn the_ec2_sample_in_detail() {
        let f_text = fixture("aws-samples-automated-response-guardduty_ec2_event.json");
        let f = ok(&f_text);
        assert_eq!(f.id, "16afba5c5c43e07c9e3e5e2e544e95df");
        assert_eq!(f.finding_type, "Canary:EC2/Stateless.IntegTest");
        assert_eq!(f.severity, Lenient::Value(5.0));
        assert_eq!(f.label(), Some(SeverityLabel::Medium));
        assert_eq!(f.account(), Some("123456789012"));
        assert_eq!(f.region_name(), Some("us-east-1"));
        assert_eq!(f.updated_at.value().as_deref(), Some("2017-10-31T23:16:23.824Z"));
        assert_eq!(
            f.doc_id().as_deref(),
            Some("16afba5c5c43e07c9e3e5e2e544e95df:2017-10-31T23:16:23.824Z")
        );
        assert_eq!(f.resource.resource_type.value().as_deref(), Some("Instance"));
        assert_eq!(f.resource.ids(), ["i-05746eb48123455e0"]);
        assert_eq!(f.resource.instance_type.value().as_deref(), Some("t2.micro"));
        let s = &f.service;
        assert_eq!(s.count, Lenient::Value(1));
        assert_eq!(s.action_type.value().as_deref(), Some("NETWORK_CONNECTION"));
        assert_eq!(s.connection_direction.value().as_deref(), Some("OUTBOUND"));
        assert_eq!(s.event_first_seen.value().as_deref(), Some("2017-10-31T23:16:23Z"));
        assert_eq!(s.archived, Lenient::Value(false));
        assert!(!s.sample);
        assert_eq!(s.actors.len(), 1);
        let a = &s.actors[0];
        assert_eq!(a.ip, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(a.asn.value().as_deref(), Some("-1"), "a number as text");
        assert_eq!(a.country_name.value().as_deref(), Some("United States"));
        assert_eq!(a.location, Lenient::Value((0.0, 0.0)));
    }

    #[test]
    fn resources_and_actors_of_other_kinds() {
        let iam_text = fixture("aws-samples-automated-response-guardduty_iam_event.json");
        let iam = ok(&iam_text);
        assert_eq!(
            iam.resource.ids(),
            ["GeneratedFindingAccessKeyId"],
            "not the sample's instance"
        );
        assert_eq!(
            iam.resource.user_name.value().as_deref(),
            Some("GeneratedFindingUserName")
        );
        assert!(iam.service.sample);
        assert_eq!(iam.service.actors[0].asn.value().as_deref(), Some("-1"));
        let s3_text = fixture("aws-samples-automated-response-guardduty_s3_event.json");
        let s3 = ok(&s3_text);
        assert_eq!(s3.resource.ids(), ["bucketName"]);
        assert_eq!(s3.resource.bucket_names, ["bucketName"]);
        assert_eq!(s3.service.archived, Lenient::Value(true));
        let ssh_text = fixture("aws-samples-waf-acl-gd2acl_test_event.json");
        let ssh = ok(&ssh_text);
        assert!(ssh.envelope.is_some(), "a partial event: region and detail only");
        assert_eq!(ssh.account(), None);
        assert_eq!(ssh.region_name(), Some("us-east-1"));
        assert_eq!(ssh.finding_type, "UnauthorizedAccess:EC2/SSHBruteForce");
        assert_eq!(ssh.label(), Some(SeverityLabel::Low));
        assert_eq!(ssh.service.actors[0].ip.to_string(), "198.51.100.0");

        let probe = r#"{"schemaVersion":"2.0","id":"p","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2019-10-24T21:23:59.078Z","service":{"serviceName":"guardduty","action":{"actionType":"PORT_PROBE","portProbeAction":{"portProbeDetails":[{"remoteIpDetails":{"ipAddressV4":"211.44.226.158"}},{"remoteIpDetails":{"ipAddressV4":"112.175.127.179"}},{"remoteIpDetails":{"ipAddressV4":"211.44.226.158"}},{"remoteIpDetails":{"ipAddressV4":"not-an-ip"}},{"remoteIpDetails":{"ipAddressV6":"2001:db8::1"}}]}}}}"#;
        let p = ok(probe);
        let ips: Vec<String> = p.service.actors.iter().map(|a| a.ip.to_string()).collect();
        assert_eq!(
            ips,
            ["211.44.226.158", "112.175.127.179", "2001:db8::1"],
            "distinct, in order"
        );
        assert_eq!(p.service.invalid_ips, [r#""not-an-ip""#]);
    }

    #[test]
    fn every_shared_finding_is_recognised() {
        let mut n = 0;
        for name in [
            "panther-guardduty-rule-tests.ndjson",
            "aws-samples-automated-response-wrapped.ndjson",
        ] {
            for line in fixture(name).lines() {
                let f = ok(line);
                assert!(!f.id.is_empty() && f.severity.value().is_some(), "{line}");
                assert!(FindingType::parse(&f.finding_type).is_some(), "{}", f.finding_type);
                n += 1;
            }
        }
        assert_eq!(n, 11 + 3);
        let panther = fixture("panther-guardduty-rule-tests.ndjson");
        let first = ok(panther.lines().next().unwrap());
        assert_eq!(first.label(), Some(SeverityLabel::Critical));
        assert_eq!(first.resource.resource_type.value().as_deref(), Some("AttackSequence"));
        assert!(first.resource.ids().is_empty());
        assert_eq!(first.service.feature_name.value().as_deref(), Some("Correlation"));
        let hand_written = ok(panther.lines().nth(8).unwrap());
        assert_eq!(hand_written.resource.resource_type, Lenient::Absent);
        assert_eq!(
            hand_written.resource.ids(),
            ["i-0abc123def456"],
            "no type: every id given"
        );
    }

    #[test]
    fn types_split_into_their_parts() {
        let t = |s| FindingType::parse(s);
        assert_eq!(
            t("CryptoCurrency:EC2/BitcoinTool.B!DNS"),
            Some(FindingType {
                threat_purpose: "CryptoCurrency",
                resource_type_affected: "EC2",
                threat_family: "BitcoinTool",
                detection_mechanism: Some("B"),
                artifact: Some("DNS")
            })
        );
        let recon = t("Recon:IAMUser/MaliciousIPCaller.Custom").unwrap();
        assert_eq!(
            (recon.threat_family, recon.detection_mechanism, recon.artifact),
            ("MaliciousIPCaller", Some("Custom"), None)
        );
        let seq = t("AttackSequence:IAM/CompromisedCredentials").unwrap();
        assert_eq!(
            (seq.threat_family, seq.detection_mechanism),
            ("CompromisedCredentials", None)
        );
        let trojan = t("Trojan:EC2/DGADomainRequest.C!DNS").unwrap();
        assert_eq!((trojan.detection_mechanism, trojan.artifact), (Some("C"), Some("DNS")));
        let outside = t("UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS").unwrap();
        assert_eq!(outside.detection_mechanism, Some("OutsideAWS"));
        for bad in [
            "",
            "Recon",
            "Recon:EC2",
            ":EC2/X",
            "Recon:/X",
            "Recon:EC2/",
            "Recon:EC2/.B",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn severity_bands_follow_guardduty() {
        for (s, label) in [
            (0.0, Some(SeverityLabel::Low)),
            (1.0, Some(SeverityLabel::Low)),
            (3.9, Some(SeverityLabel::Low)),
            (3.95, Some(SeverityLabel::Low)),
            (4.0, Some(SeverityLabel::Medium)),
            (6.9, Some(SeverityLabel::Medium)),
            (7.0, Some(SeverityLabel::High)),
            (8.9, Some(SeverityLabel::High)),
            (9.0, Some(SeverityLabel::Critical)),
            (10.0, Some(SeverityLabel::Critical)),
            (10.1, None),
            (-1.0, None),
            (f64::NAN, None),
        ] {
            assert_eq!(SeverityLabel::of(s), label, "{s}");
        }
        assert!(SeverityLabel::Critical > SeverityLabel::High);
        assert_eq!(SeverityLabel::High.as_str(), "high");
    }

    #[test]
    fn what_is_and_is_not_a_finding() {
        for not_ours in [
            "2 123456789010 eni-1 - - - - - - - 1 2 - NODATA",
            r#"{"eventVersion":"1.08","eventName":"ConsoleLogin","eventID":"x"}"#,
            r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","source":"aws.s3","detail":{"eventVersion":"1.08"}}"#,
            r#"{"id":"x","type":"y","severity":5}"#,
            r#"{"source":"aws.securityhub","detail":{"schemaVersion":"2.0","id":"x","type":"A:B/C","severity":5}}"#,
            r#"{"eventVersion": "1.08", "truncated"#,
            "[]",
        ] {
            assert!(parse(not_ours).is_none(), "{not_ours}");
        }
        for (broken, needle) in [
            (
                r#"{"detail-type":"GuardDuty Finding","detail":{"id":"x""#,
                "not valid JSON",
            ),
            (
                r#"{"detail-type":"GuardDuty Finding","detail":"gone"}"#,
                "detail is not an object",
            ),
            (
                r#"{"detail-type":"GuardDuty Finding","detail":{"id":"x"}}"#,
                "no string id and type",
            ),
            (r#"{"source":"aws.guardduty","detail":{"id":1}"#, "not valid JSON"),
        ] {
            let err = parse(broken).expect("ours").expect_err("unreadable");
            assert!(err.to_string().contains(needle), "{broken}: {err}");
        }
    }

    #[test]
    fn wrong_shapes_are_kept_as_json_text() {
        let m = r#"{"schemaVersion":2,"id":"x\"y","type":"A:B/C","severity":"8","updatedAt":1700000000,"accountId":123,"resource":"i-1","service":{"serviceName":"guardduty","count":"many","archived":"False","eventFirstSeen":{"at":1},"action":{"actionType":["X"],"networkConnectionAction":{"remoteIpDetails":{"ipAddressV4":"1.2.3.4","geoLocation":{"lat":91,"lon":0},"organization":{"asn":{"n":1}}}}}}}"#;
        let f = ok(m);
        assert_eq!(f.id, "x\"y", "unescaped");
        assert_eq!(f.schema_version, Lenient::Value(Cow::Borrowed("2")));
        assert_eq!(f.severity, Lenient::Invalid(r#""8""#));
        assert_eq!(f.label(), None);
        assert_eq!(f.updated_at, Lenient::Invalid("1700000000"));
        assert_eq!(f.doc_id(), None, "no usable updatedAt");
        assert_eq!(f.account(), Some("123"));
        assert_eq!(f.resource.invalid, Some(r#""i-1""#));
        assert_eq!(f.service.count, Lenient::Invalid(r#""many""#));
        assert_eq!(f.service.archived, Lenient::Invalid(r#""False""#));
        assert_eq!(f.service.event_first_seen, Lenient::Invalid(r#"{"at":1}"#));
        assert_eq!(f.service.action_type, Lenient::Invalid(r#"["X"]"#));
        let a = &f.service.actors[0];
        assert_eq!(a.location, Lenient::Invalid(r#"{"lat":91,"lon":0}"#));
        assert_eq!(a.asn, Lenient::Invalid(r#"{"n":1}"#));
        let long = format!(
            r#"{{"schemaVersion":"2.0","id":"{}","type":"A:B/C","severity":1,"updatedAt":"2020-01-01T00:00:00Z"}}"#,
            "x".repeat(500)
        );
        assert_eq!(ok(&long).doc_id(), None, "over 512 bytes");
    }

    #[test]
    fn deep_nesting_is_read_around() {
        // A CloudWatch event holds at most 256 KB: about 128,000 levels.
        let deep = format!(
            r#"{{"detail-type":"GuardDuty Finding","detail":{{"schemaVersion":"2.0","id":"d","type":"A:B/C","severity":1,"service":{}{}}}}}"#,
            "[".repeat(120_000),
            "]".repeat(120_000)
        );
        let f = ok(&deep);
        assert_eq!(f.service.invalid.map(str::len), Some(240_000));
        let unbalanced = format!(
            r#"{{"detail-type":"GuardDuty Finding","detail":{}"#,
            "[".repeat(120_000)
        );
        assert!(matches!(parse(&unbalanced), Some(Err(FindingError::Json(_)))));
    }

    /// Random JSON of the shapes findings have, keys drawn from theirs.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let keys = prop_oneof![
            Just("id"),
            Just("type"),
            Just("severity"),
            Just("schemaVersion"),
            Just("updatedAt"),
            Just("resource"),
            Just("service"),
            Just("action"),
            Just("remoteIpDetails"),
            Just("ipAddressV4"),
            Just("portProbeDetails"),
            Just("instanceDetails"),
            Just("instanceId"),
            Just("resourceType"),
            Just("geoLocation"),
            Just("lat"),
            Just("lon"),
            Just("organization"),
            Just("asn"),
            Just("count"),
            Just("serviceName"),
            Just("detail"),
            Just("detail-type"),
            Just("s3BucketDetails"),
            Just("name"),
            Just("additionalInfo"),
            Just("sample"),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            proptest::bool::ANY.prop_map(Value::Bool),
            (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
            proptest::num::i64::ANY.prop_map(|i| serde_json::json!(i)),
            prop_oneof![
                Just("guardduty".to_owned()),
                Just("GuardDuty Finding".to_owned()),
                Just("1.2.3.4".to_owned()),
                Just("2017-10-31T23:16:23.824Z".to_owned()),
                Just("Recon:EC2/PortProbe.B!DNS".to_owned()),
                "[ -~\u{e9}\"\\\\]{0,12}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((keys.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random finding-like JSON never panics; whatever is a finding has its id and type.
        #[test]
        fn random_findings_never_panic(v in json_value(), wrap in 0u8..3) {
            let v = match wrap {
                0 => v,
                1 => serde_json::json!({"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "detail": v}),
                _ => serde_json::json!({"schemaVersion": "2.0", "id": "f", "type": "A:B/C", "severity": 5, "service": v, "resource": v}),
            };
            let text = v.to_string();
            if let Some(Ok(f)) = parse(&text) {
                prop_assert!(!f.id.is_empty() || wrap != 2);
                let _ = (f.doc_id(), f.label(), f.resource.ids(), FindingType::parse(&f.finding_type));
            }
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            let _ = parse(&pretty);
        }

        /// Any text: never a panic.
        #[test]
        fn any_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse(&s);
            let _ = parse(&format!("{{\"detail-type\":\"GuardDuty Finding\",{s}"));
        }
    }
}
