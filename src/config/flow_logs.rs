//! `FLOW_LOG_GROUPS` and `FLOW_LOG_FORMATS`: which log groups hold VPC flow logs and in which
//! format, each format string compiled once at cold start into its field list. Reading a record
//! against a format is stage 2's job (`ingest::vpcflow`).

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

/// The default format: the 14 version-2 fields, in AWS's order. CloudWatch Logs delivery has no
/// header line, so a parser must be told the format; this one applies where none is configured.
pub const DEFAULT_FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

/// `FLOW_LOG_GROUPS` when it is not set.
pub const DEFAULT_FLOW_LOG_GROUPS: &str = super::defaults::FLOW_LOG_GROUPS;

/// A field AWS documents for flow log records ("Flow log records", available fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Known {
    /// `version`.
    Version,
    /// `account-id`: the owner of the interface, or `unknown` for some AWS-managed ones.
    AccountId,
    /// `interface-id`.
    InterfaceId,
    /// `srcaddr`.
    SrcAddr,
    /// `dstaddr`.
    DstAddr,
    /// `srcport`.
    SrcPort,
    /// `dstport`.
    DstPort,
    /// `protocol`: the IANA protocol number.
    Protocol,
    /// `packets`.
    Packets,
    /// `bytes`.
    Bytes,
    /// `start`: Unix seconds of the first packet in the aggregation interval.
    Start,
    /// `end`: Unix seconds of the last packet.
    End,
    /// `action`: `ACCEPT` or `REJECT`.
    Action,
    /// `log-status`: `OK`, `NODATA` or `SKIPDATA`.
    LogStatus,
    /// `vpc-id` (v3).
    VpcId,
    /// `subnet-id` (v3).
    SubnetId,
    /// `instance-id` (v3).
    InstanceId,
    /// `tcp-flags` (v3): the OR of the flags seen during the aggregation interval.
    TcpFlags,
    /// `type` (v3): `IPv4`, `IPv6` or `EFA`.
    Type,
    /// `pkt-srcaddr` (v3): the packet-level source, behind a NAT gateway for example.
    PktSrcAddr,
    /// `pkt-dstaddr` (v3).
    PktDstAddr,
    /// `region` (v4).
    Region,
    /// `az-id` (v4).
    AzId,
    /// `sublocation-type` (v4): `wavelength`, `outpost` or `localzone`.
    SublocationType,
    /// `sublocation-id` (v4).
    SublocationId,
    /// `pkt-src-aws-service` (v5): the AWS IP range subset of `pkt-srcaddr`.
    PktSrcAwsService,
    /// `pkt-dst-aws-service` (v5).
    PktDstAwsService,
    /// `flow-direction` (v5): `ingress` or `egress`.
    FlowDirection,
    /// `traffic-path` (v5): the path egress traffic takes, 1 to 8.
    TrafficPath,
    /// `ecs-cluster-arn` (v7).
    EcsClusterArn,
    /// `ecs-cluster-name` (v7).
    EcsClusterName,
    /// `ecs-container-instance-arn` (v7).
    EcsContainerInstanceArn,
    /// `ecs-container-instance-id` (v7).
    EcsContainerInstanceId,
    /// `ecs-container-id` (v7).
    EcsContainerId,
    /// `ecs-second-container-id` (v7).
    EcsSecondContainerId,
    /// `ecs-service-name` (v7).
    EcsServiceName,
    /// `ecs-task-definition-arn` (v7).
    EcsTaskDefinitionArn,
    /// `ecs-task-arn` (v7).
    EcsTaskArn,
    /// `ecs-task-id` (v7).
    EcsTaskId,
    /// `reject-reason` (v8): why traffic was rejected (`BPA`: VPC Block Public Access).
    RejectReason,
}

/// Every documented field: its name in a format string, and the version that introduced it.
pub(crate) const KNOWN: [(&str, Known, u8); 40] = [
    ("version", Known::Version, 2),
    ("account-id", Known::AccountId, 2),
    ("interface-id", Known::InterfaceId, 2),
    ("srcaddr", Known::SrcAddr, 2),
    ("dstaddr", Known::DstAddr, 2),
    ("srcport", Known::SrcPort, 2),
    ("dstport", Known::DstPort, 2),
    ("protocol", Known::Protocol, 2),
    ("packets", Known::Packets, 2),
    ("bytes", Known::Bytes, 2),
    ("start", Known::Start, 2),
    ("end", Known::End, 2),
    ("action", Known::Action, 2),
    ("log-status", Known::LogStatus, 2),
    ("vpc-id", Known::VpcId, 3),
    ("subnet-id", Known::SubnetId, 3),
    ("instance-id", Known::InstanceId, 3),
    ("tcp-flags", Known::TcpFlags, 3),
    ("type", Known::Type, 3),
    ("pkt-srcaddr", Known::PktSrcAddr, 3),
    ("pkt-dstaddr", Known::PktDstAddr, 3),
    ("region", Known::Region, 4),
    ("az-id", Known::AzId, 4),
    ("sublocation-type", Known::SublocationType, 4),
    ("sublocation-id", Known::SublocationId, 4),
    ("pkt-src-aws-service", Known::PktSrcAwsService, 5),
    ("pkt-dst-aws-service", Known::PktDstAwsService, 5),
    ("flow-direction", Known::FlowDirection, 5),
    ("traffic-path", Known::TrafficPath, 5),
    ("ecs-cluster-arn", Known::EcsClusterArn, 7),
    ("ecs-cluster-name", Known::EcsClusterName, 7),
    ("ecs-container-instance-arn", Known::EcsContainerInstanceArn, 7),
    ("ecs-container-instance-id", Known::EcsContainerInstanceId, 7),
    ("ecs-container-id", Known::EcsContainerId, 7),
    ("ecs-second-container-id", Known::EcsSecondContainerId, 7),
    ("ecs-service-name", Known::EcsServiceName, 7),
    ("ecs-task-definition-arn", Known::EcsTaskDefinitionArn, 7),
    ("ecs-task-arn", Known::EcsTaskArn, 7),
    ("ecs-task-id", Known::EcsTaskId, 7),
    ("reject-reason", Known::RejectReason, 8),
];

impl Known {
    /// The field's name in a format string.
    pub fn name(self) -> &'static str {
        KNOWN.iter().find(|(_, k, _)| *k == self).map_or("", |(n, _, _)| n)
    }

    /// The flow log version that introduced the field.
    pub fn version(self) -> u8 {
        KNOWN.iter().find(|(_, k, _)| *k == self).map_or(0, |(_, _, v)| *v)
    }

    /// The field a format-string name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        KNOWN.iter().find(|(n, _, _)| *n == name).map(|(_, k, _)| *k)
    }
}

/// One field of a format: documented, or a name this version of the indexer does not know
/// (AWS adds fields), kept as text under `aws.vpcflow.extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowField {
    /// A documented field.
    Known(Known),
    /// Any other `[a-z0-9-]` name.
    Other(String),
}

impl FlowField {
    /// The name in a format string.
    pub fn name(&self) -> &str {
        match self {
            Self::Known(k) => k.name(),
            Self::Other(name) => name,
        }
    }
}

/// Why a format string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// No fields at all.
    #[error("the format names no fields")]
    Empty,
    /// A token that is neither `${name}` nor `name` with a lower-case `[a-z0-9-]` name.
    #[error("field {position} ({token:?}) is not ${{name}} with a lower-case name of letters, digits and '-'")]
    BadToken {
        /// The token as written.
        token: String,
        /// Its 1-based position.
        position: usize,
    },
    /// A field named twice: its two values could not both be kept.
    #[error("field {field:?} is named twice")]
    Duplicate {
        /// The field.
        field: String,
    },
}

/// A flow log format compiled once (at cold start) into its field list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFormat {
    fields: Vec<FlowField>,
}

/// The fields of [`DEFAULT_FORMAT`].
const DEFAULT_FIELDS: [Known; 14] = [
    Known::Version,
    Known::AccountId,
    Known::InterfaceId,
    Known::SrcAddr,
    Known::DstAddr,
    Known::SrcPort,
    Known::DstPort,
    Known::Protocol,
    Known::Packets,
    Known::Bytes,
    Known::Start,
    Known::End,
    Known::Action,
    Known::LogStatus,
];

impl Default for FlowFormat {
    fn default() -> Self {
        Self::default_v2()
    }
}

impl FlowFormat {
    /// The default (version 2) format.
    pub fn default_v2() -> Self {
        Self {
            fields: DEFAULT_FIELDS.iter().map(|k| FlowField::Known(*k)).collect(),
        }
    }

    /// Compiles a format string: fields separated by whitespace, each written `${name}` (as AWS
    /// takes it) or `name` (as an S3 header line names it).
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let mut fields: Vec<FlowField> = Vec::new();
        for (i, token) in text.split_ascii_whitespace().enumerate() {
            let name = token
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .unwrap_or(token);
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(FormatError::BadToken {
                    token: token.to_owned(),
                    position: i + 1,
                });
            }
            if fields.iter().any(|f| f.name() == name) {
                return Err(FormatError::Duplicate { field: name.to_owned() });
            }
            fields.push(Known::from_name(name).map_or_else(|| FlowField::Other(name.to_owned()), FlowField::Known));
        }
        if fields.is_empty() {
            return Err(FormatError::Empty);
        }
        Ok(Self { fields })
    }

    /// The fields, in record order.
    pub fn fields(&self) -> &[FlowField] {
        &self.fields
    }

    /// How many fields a record of this format has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Never true: a format has at least one field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The version AWS writes in `version` for this format: the highest among its documented
    /// fields.
    pub fn version(&self) -> u8 {
        self.fields
            .iter()
            .filter_map(|f| match f {
                FlowField::Known(k) => Some(k.version()),
                FlowField::Other(_) => None,
            })
            .max()
            .unwrap_or(2)
    }

    /// The format as AWS takes it (`LogFormat`): `${version} ${account-id} ...`.
    pub fn to_aws(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("${{{}}}", f.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A log group name or glob: `*` matches any run of characters (`/` included), `?` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    /// A glob over log group names, which are 1 to 512 of `a-zA-Z0-9_-/.#`; anything else is
    /// refused, to catch a JSON array or a quoted list given where a comma list was expected.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("an empty log group name or glob".into());
        }
        if pattern.len() > 512 {
            return Err(format!("{pattern:?} is longer than a log group name can be"));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_-/.#*?".contains(*c)))
        {
            return Err(format!(
                "{pattern:?} has {c:?}, which no log group name has (allowed: a-z A-Z 0-9 _ - / . #, and * ?)"
            ));
        }
        Ok(Self {
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        !self.pattern.contains(['*', '?'])
    }

    /// Matches a whole log group name (case matters, as it does for log group names).
    pub fn matches(&self, name: &str) -> bool {
        let (p, s) = (self.pattern.as_bytes(), name.as_bytes());
        let (mut pi, mut si) = (0, 0);
        // Where the last `*` was, and where in `name` it started matching: on a mismatch the
        // star takes one more byte. Linear in practice, quadratic at worst.
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == s[si] => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|c| *c == b'*')
    }
}

/// A flow-log configuration variable that cannot be used; each names the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowConfigError {
    /// `FLOW_LOG_GROUPS` holds something that is not a comma-separated list of globs.
    #[error("FLOW_LOG_GROUPS={value:?}: {reason}")]
    Groups {
        /// The variable's value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// `FLOW_LOG_FORMATS` is not a JSON object of strings.
    #[error("FLOW_LOG_FORMATS is not a JSON object from log group name or glob to format string: {reason}")]
    FormatsJson {
        /// What the JSON parser or the shape check said.
        reason: String,
    },
    /// A key of `FLOW_LOG_FORMATS` is not a log group name or glob.
    #[error("FLOW_LOG_FORMATS key {key:?}: {reason}")]
    FormatsKey {
        /// The key.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// A format string of `FLOW_LOG_FORMATS` does not compile.
    #[error("FLOW_LOG_FORMATS[{key:?}]: {error}")]
    Format {
        /// The log group name or glob it is given for.
        key: String,
        /// Why it does not compile.
        error: FormatError,
    },
}

impl FlowConfigError {
    /// The environment variable to fix.
    pub fn var(&self) -> &'static str {
        match self {
            Self::Groups { .. } => "FLOW_LOG_GROUPS",
            Self::FormatsJson { .. } | Self::FormatsKey { .. } | Self::Format { .. } => "FLOW_LOG_FORMATS",
        }
    }
}

/// Which log groups hold flow logs, and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLogConfig {
    groups: Vec<Glob>,
    /// Exact names first, then globs in the order written: the first match wins.
    formats: Vec<(Glob, FlowFormat)>,
    default: FlowFormat,
}

impl Default for FlowLogConfig {
    fn default() -> Self {
        Self {
            groups: DEFAULT_FLOW_LOG_GROUPS
                .split(',')
                .filter_map(|g| Glob::new(g).ok())
                .collect(),
            formats: Vec::new(),
            default: FlowFormat::default_v2(),
        }
    }
}

/// The members of a JSON object in document order, duplicates included (serde_json's `Map`
/// sorts its keys, and the order of globs decides which one wins).
struct Ordered(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    members.push(entry);
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl FlowLogConfig {
    /// Reads `FLOW_LOG_GROUPS` (comma-separated globs, default `*flow*`; empty for none) and
    /// `FLOW_LOG_FORMATS` (a JSON object from log group name or glob to format string) through
    /// `lookup`, once, at cold start.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FlowConfigError> {
        let groups_value = lookup("FLOW_LOG_GROUPS").unwrap_or_else(|| DEFAULT_FLOW_LOG_GROUPS.to_owned());
        let groups = groups_value
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| {
                Glob::new(g).map_err(|reason| FlowConfigError::Groups {
                    value: groups_value.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut formats = Vec::new();
        if let Some(json) = lookup("FLOW_LOG_FORMATS").filter(|v| !v.trim().is_empty()) {
            let Ordered(members) =
                serde_json::from_str(&json).map_err(|e| FlowConfigError::FormatsJson { reason: e.to_string() })?;
            for (i, (key, value)) in members.iter().enumerate() {
                if members[..i].iter().any(|(k, _)| k == key) {
                    return Err(FlowConfigError::FormatsKey {
                        key: key.clone(),
                        reason: "given twice".into(),
                    });
                }
                let glob = Glob::new(key).map_err(|reason| FlowConfigError::FormatsKey {
                    key: key.clone(),
                    reason,
                })?;
                let serde_json::Value::String(text) = value else {
                    return Err(FlowConfigError::FormatsJson {
                        reason: format!("the value for {key:?} is {value}, not a format string"),
                    });
                };
                let format = FlowFormat::parse(text).map_err(|error| FlowConfigError::Format {
                    key: key.clone(),
                    error,
                })?;
                formats.push((glob, format));
            }
            // Stable: exact names before globs, each kind in the order written.
            formats.sort_by_key(|(g, _)| !g.is_literal());
        }
        Ok(Self {
            groups,
            formats,
            default: FlowFormat::default_v2(),
        })
    }

    /// The globs of `FLOW_LOG_GROUPS`.
    pub fn groups(&self) -> &[Glob] {
        &self.groups
    }

    /// The format of a log group's records, when the configuration says it holds flow logs: its
    /// `FLOW_LOG_FORMATS` entry (which makes it a flow-log group), else the default format if
    /// `FLOW_LOG_GROUPS` names it. Called once per envelope, not per record.
    pub fn format_for(&self, log_group: &str) -> Option<&FlowFormat> {
        if let Some((_, format)) = self.formats.iter().find(|(g, _)| g.matches(log_group)) {
            return Some(format);
        }
        self.groups
            .iter()
            .any(|g| g.matches(log_group))
            .then_some(&self.default)
    }

    /// The default format.
    pub fn default_format(&self) -> &FlowFormat {
        &self.default
    }
}
