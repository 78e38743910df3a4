//! Stage 2 for VPC Flow Logs: each record split on single spaces, against its log group's
//! format (compiled once in `config::flow_logs`), into borrowed, typed fields.

use std::net::IpAddr;
use std::str::FromStr;

use crate::config::flow_logs::{FlowField, FlowFormat, FlowLogConfig, Known};

impl FlowFormat {
    /// Splits one record on single spaces, as AWS writes them, into typed fields. `-` means
    /// absent. A record whose field count is not the format's is an error: the caller keeps
    /// it with `@message` and `@parse_error`, never drops it. A value of the wrong shape (a
    /// port that is not a number) is kept as [`Cell::Invalid`], not an error.
    pub fn parse_record<'a>(&'a self, line: &'a str) -> Result<FlowRecord<'a>, FlowError> {
        // S3 text files and `aws logs` exports end lines with a terminator; it is never a value.
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Err(FlowError::Empty);
        }
        let found = line.bytes().filter(|b| *b == b' ').count() + 1;
        if found != self.len() {
            return Err(FlowError::FieldCount {
                expected: self.len(),
                found,
                double_space_at: line.find("  "),
            });
        }
        let mut record = FlowRecord::default();
        for (field, value) in self.fields().iter().zip(line.split(' ')) {
            match field {
                FlowField::Known(k) => record.set(*k, value),
                FlowField::Other(name) => {
                    if value != "-" {
                        record.other.push((name.as_str(), value));
                    }
                }
            }
        }
        Ok(record)
    }
}

/// Why a flow log record could not be split into its format's fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// An empty message.
    #[error("empty flow log record")]
    Empty,
    /// The record does not have its format's field count: a wrong `FLOW_LOG_FORMATS` entry, or
    /// a damaged record.
    #[error(
        "the record has {found} space-separated fields where its format has {expected}{}",
        double_space_hint(*.double_space_at)
    )]
    FieldCount {
        /// The format's field count.
        expected: usize,
        /// The record's.
        found: usize,
        /// Where two spaces follow each other (AWS writes one), if they do.
        double_space_at: Option<usize>,
    },
}

fn double_space_hint(at: Option<usize>) -> String {
    at.map(|i| format!(" (two spaces in a row at byte {i})"))
        .unwrap_or_default()
}

/// A field's value: absent (`-`, or not in the format), a value of the field's type, or text
/// of the wrong shape, which the document keeps under `@unindexed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cell<'a, T> {
    /// `-`, or the format does not have the field.
    #[default]
    Absent,
    /// A value of the field's type.
    Value(T),
    /// Text that is not a value of the field's type.
    Invalid(&'a str),
}

impl<'a, T: Copy> Cell<'a, T> {
    /// The value, if it is one.
    pub fn value(&self) -> Option<T> {
        match self {
            Self::Value(v) => Some(*v),
            _ => None,
        }
    }

    /// The text of the wrong shape, if that is what it holds.
    pub fn invalid(&self) -> Option<&'a str> {
        match self {
            Self::Invalid(s) => Some(s),
            _ => None,
        }
    }
}

fn cell<T: FromStr>(s: &str) -> Cell<'_, T> {
    if s == "-" {
        Cell::Absent
    } else {
        s.parse().map_or(Cell::Invalid(s), Cell::Value)
    }
}

fn text(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

/// The last second of year 9999: later `start`/`end` values cannot name a daily index.
const MAX_SECONDS: i64 = 253_402_300_799;

fn seconds(s: &str) -> Cell<'_, i64> {
    match cell::<i64>(s) {
        Cell::Value(v) if !(0..=MAX_SECONDS).contains(&v) => Cell::Invalid(s),
        other => other,
    }
}

fn count(s: &str) -> Cell<'_, i64> {
    match cell::<i64>(s) {
        Cell::Value(v) if v < 0 => Cell::Invalid(s),
        other => other,
    }
}

fn traffic_path(s: &str) -> Cell<'_, u8> {
    match cell::<u8>(s) {
        Cell::Value(v) if traffic_path_name(v).is_none() => Cell::Invalid(s),
        other => other,
    }
}

/// The ECS fields of a record (version 7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsFields<'a> {
    /// `ecs-cluster-arn`.
    pub cluster_arn: Option<&'a str>,
    /// `ecs-cluster-name`.
    pub cluster_name: Option<&'a str>,
    /// `ecs-container-instance-arn`.
    pub container_instance_arn: Option<&'a str>,
    /// `ecs-container-instance-id`.
    pub container_instance_id: Option<&'a str>,
    /// `ecs-container-id`.
    pub container_id: Option<&'a str>,
    /// `ecs-second-container-id`.
    pub second_container_id: Option<&'a str>,
    /// `ecs-service-name`.
    pub service_name: Option<&'a str>,
    /// `ecs-task-definition-arn`.
    pub task_definition_arn: Option<&'a str>,
    /// `ecs-task-arn`.
    pub task_arn: Option<&'a str>,
    /// `ecs-task-id`.
    pub task_id: Option<&'a str>,
}

/// One flow log record, borrowing from the message (and the format, for unknown names).
/// Fields the format does not have are absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowRecord<'a> {
    /// `version`.
    pub version: Cell<'a, u32>,
    /// `account-id`.
    pub account_id: Option<&'a str>,
    /// `interface-id`.
    pub interface_id: Option<&'a str>,
    /// `srcaddr`.
    pub srcaddr: Cell<'a, IpAddr>,
    /// `dstaddr`.
    pub dstaddr: Cell<'a, IpAddr>,
    /// `srcport`.
    pub srcport: Cell<'a, u16>,
    /// `dstport`.
    pub dstport: Cell<'a, u16>,
    /// `protocol`.
    pub protocol: Cell<'a, u8>,
    /// `packets` (a count: at least 0, at most what a `long` holds).
    pub packets: Cell<'a, i64>,
    /// `bytes` (likewise).
    pub bytes: Cell<'a, i64>,
    /// `start`, Unix seconds.
    pub start: Cell<'a, i64>,
    /// `end`, Unix seconds.
    pub end: Cell<'a, i64>,
    /// `action`, as written.
    pub action: Option<&'a str>,
    /// `log-status`, as written.
    pub log_status: Option<&'a str>,
    /// `vpc-id`.
    pub vpc_id: Option<&'a str>,
    /// `subnet-id`.
    pub subnet_id: Option<&'a str>,
    /// `instance-id`.
    pub instance_id: Option<&'a str>,
    /// `tcp-flags`, the bitmask.
    pub tcp_flags: Cell<'a, u16>,
    /// `type`, as written (`IPv4`, `IPv6`, `EFA`).
    pub traffic_type: Option<&'a str>,
    /// `pkt-srcaddr`.
    pub pkt_srcaddr: Cell<'a, IpAddr>,
    /// `pkt-dstaddr`.
    pub pkt_dstaddr: Cell<'a, IpAddr>,
    /// `region`.
    pub region: Option<&'a str>,
    /// `az-id`.
    pub az_id: Option<&'a str>,
    /// `sublocation-type`.
    pub sublocation_type: Option<&'a str>,
    /// `sublocation-id`.
    pub sublocation_id: Option<&'a str>,
    /// `pkt-src-aws-service`.
    pub pkt_src_aws_service: Option<&'a str>,
    /// `pkt-dst-aws-service`.
    pub pkt_dst_aws_service: Option<&'a str>,
    /// `flow-direction`, as written.
    pub flow_direction: Option<&'a str>,
    /// `traffic-path`, 1 to 8.
    pub traffic_path: Cell<'a, u8>,
    /// The ECS fields.
    pub ecs: EcsFields<'a>,
    /// `reject-reason`.
    pub reject_reason: Option<&'a str>,
    /// Fields of names this version does not know, `(name, value)`, present ones only.
    pub other: Vec<(&'a str, &'a str)>,
}

impl<'a> FlowRecord<'a> {
    fn set(&mut self, field: Known, v: &'a str) {
        match field {
            Known::Version => self.version = cell(v),
            Known::AccountId => self.account_id = text(v),
            Known::InterfaceId => self.interface_id = text(v),
            Known::SrcAddr => self.srcaddr = cell(v),
            Known::DstAddr => self.dstaddr = cell(v),
            Known::SrcPort => self.srcport = cell(v),
            Known::DstPort => self.dstport = cell(v),
            Known::Protocol => self.protocol = cell(v),
            Known::Packets => self.packets = count(v),
            Known::Bytes => self.bytes = count(v),
            Known::Start => self.start = seconds(v),
            Known::End => self.end = seconds(v),
            Known::Action => self.action = text(v),
            Known::LogStatus => self.log_status = text(v),
            Known::VpcId => self.vpc_id = text(v),
            Known::SubnetId => self.subnet_id = text(v),
            Known::InstanceId => self.instance_id = text(v),
            Known::TcpFlags => self.tcp_flags = cell(v),
            Known::Type => self.traffic_type = text(v),
            Known::PktSrcAddr => self.pkt_srcaddr = cell(v),
            Known::PktDstAddr => self.pkt_dstaddr = cell(v),
            Known::Region => self.region = text(v),
            Known::AzId => self.az_id = text(v),
            Known::SublocationType => self.sublocation_type = text(v),
            Known::SublocationId => self.sublocation_id = text(v),
            Known::PktSrcAwsService => self.pkt_src_aws_service = text(v),
            Known::PktDstAwsService => self.pkt_dst_aws_service = text(v),
            Known::FlowDirection => self.flow_direction = text(v),
            Known::TrafficPath => self.traffic_path = traffic_path(v),
            Known::EcsClusterArn => self.ecs.cluster_arn = text(v),
            Known::EcsClusterName => self.ecs.cluster_name = text(v),
            Known::EcsContainerInstanceArn => self.ecs.container_instance_arn = text(v),
            Known::EcsContainerInstanceId => self.ecs.container_instance_id = text(v),
            Known::EcsContainerId => self.ecs.container_id = text(v),
            Known::EcsSecondContainerId => self.ecs.second_container_id = text(v),
            Known::EcsServiceName => self.ecs.service_name = text(v),
            Known::EcsTaskDefinitionArn => self.ecs.task_definition_arn = text(v),
            Known::EcsTaskArn => self.ecs.task_arn = text(v),
            Known::EcsTaskId => self.ecs.task_id = text(v),
            Known::RejectReason => self.reject_reason = text(v),
        }
    }

    /// A `NODATA` or `SKIPDATA` record: no traffic, or traffic not captured, during the
    /// interval. Such records are kept and flagged; they are not parse errors.
    pub fn is_no_data(&self) -> bool {
        matches!(self.log_status, Some("NODATA" | "SKIPDATA"))
    }

    /// `action` as [`Action`], when it is one AWS documents.
    pub fn action_kind(&self) -> Option<Action> {
        match self.action? {
            "ACCEPT" => Some(Action::Accept),
            "REJECT" => Some(Action::Reject),
            _ => None,
        }
    }
}

/// A flow's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Permitted by the security groups and network ACLs.
    Accept,
    /// Not permitted.
    Reject,
}

impl Action {
    /// ECS `event.action`: `accept` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
        }
    }

    /// ECS `event.outcome`: the connection attempt succeeded, or was refused.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Accept => "success",
            Self::Reject => "failure",
        }
    }

    /// ECS `event.type` with `connection`: `allowed` or `denied`.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Accept => "allowed",
            Self::Reject => "denied",
        }
    }
}

/// TCP flag names by bit, as in the TCP header (RFC 9293). AWS documents FIN (1), SYN (2),
/// RST (4) and SYN-ACK (18 = SYN + ACK), OR-ed over the aggregation interval: 19 is SYN-ACK and
/// FIN, 3 is SYN and FIN. The other bits are named too, should they ever be set.
const TCP_FLAGS: [(u16, &str); 9] = [
    (0x001, "FIN"),
    (0x002, "SYN"),
    (0x004, "RST"),
    (0x008, "PSH"),
    (0x010, "ACK"),
    (0x020, "URG"),
    (0x040, "ECE"),
    (0x080, "CWR"),
    (0x100, "NS"),
];

/// The names of the flags set in a `tcp-flags` bitmask, lowest bit first.
pub fn tcp_flag_names(bits: u16) -> impl Iterator<Item = &'static str> {
    TCP_FLAGS
        .iter()
        .filter(move |(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
}

/// What a `traffic-path` value means, as a keyword; AWS's words in the comments.
pub fn traffic_path_name(path: u8) -> Option<&'static str> {
    Some(match path {
        // Through another resource in the same VPC.
        1 => "same-vpc",
        // Through an internet gateway or a gateway VPC endpoint.
        2 => "internet-gateway-or-gateway-endpoint",
        // Through a virtual private gateway.
        3 => "virtual-private-gateway",
        // Through an intra-region VPC peering connection.
        4 => "intra-region-peering",
        // Through an inter-region VPC peering connection.
        5 => "inter-region-peering",
        // Through a local gateway.
        6 => "local-gateway",
        // Through a gateway VPC endpoint (Nitro-based instances only).
        7 => "gateway-vpc-endpoint",
        // Through an internet gateway (Nitro-based instances only).
        8 => "internet-gateway",
        _ => return None,
    })
}

/// IANA "Assigned Internet Protocol Numbers" keywords 0..=145, lower-cased as ECS
/// `network.transport` has them; "" where IANA gives no keyword (61, 63, 68, 99, 114). 146-252
/// are unassigned, 253-254 experimental and 255 reserved.
#[rustfmt::skip]
const IANA_PROTOCOLS: [&str; 146] = [
    /*   0 */ "hopopt", "icmp", "igmp", "ggp", "ipv4", "st", "tcp", "cbt", "egp", "igp",
    /*  10 */ "bbn-rcc-mon", "nvp-ii", "pup", "argus", "emcon", "xnet", "chaos", "udp", "mux", "dcn-meas",
    /*  20 */ "hmp", "prm", "xns-idp", "trunk-1", "trunk-2", "leaf-1", "leaf-2", "rdp", "irtp", "iso-tp4",
    /*  30 */ "netblt", "mfe-nsp", "merit-inp", "dccp", "3pc", "idpr", "xtp", "ddp", "idpr-cmtp", "tp++",
    /*  40 */ "il", "ipv6", "sdrp", "ipv6-route", "ipv6-frag", "idrp", "rsvp", "gre", "dsr", "bna",
    /*  50 */ "esp", "ah", "i-nlsp", "swipe", "narp", "min-ipv4", "tlsp", "skip", "ipv6-icmp", "ipv6-nonxt",
    /*  60 */ "ipv6-opts", "", "cftp", "", "sat-expak", "kryptolan", "rvd", "ippc", "", "sat-mon",
    /*  70 */ "visa", "ipcv", "cpnx", "cphb", "wsn", "pvp", "br-sat-mon", "sun-nd", "wb-mon", "wb-expak",
    /*  80 */ "iso-ip", "vmtp", "secure-vmtp", "vines", "ttp", "nsfnet-igp", "dgp", "tcf", "eigrp", "ospfigp",
    /*  90 */ "sprite-rpc", "larp", "mtp", "ax.25", "ipip", "micp", "scc-sp", "etherip", "encap", "",
    /* 100 */ "gmtp", "ifmp", "pnni", "pim", "aris", "scps", "qnx", "a/n", "ipcomp", "snp",
    /* 110 */ "compaq-peer", "ipx-in-ip", "vrrp", "pgm", "", "l2tp", "ddx", "iatp", "stp", "srp",
    /* 120 */ "uti", "smp", "sm", "ptp", "isis", "fire", "crtp", "crudp", "sscopmce", "iplt",
    /* 130 */ "sps", "pipe", "sctp", "fc", "rsvp-e2e-ignore", "mobility-header", "udplite", "mpls-in-ip", "manet", "hip",
    /* 140 */ "shim6", "wesp", "rohc", "ethernet", "aggfrag", "nsh",
];

/// The IANA keyword of a protocol number (`tcp` for 6), when it has one.
pub fn protocol_name(number: u8) -> Option<&'static str> {
    IANA_PROTOCOLS
        .get(usize::from(number))
        .copied()
        .filter(|name| !name.is_empty())
}

/// True for a record of the default format with every value of a plausible shape: how a flow
/// log in a log group not named by `FLOW_LOG_GROUPS` is recognised. A 14-word text line that
/// happens to start with `2 ` is not enough: the times, status and action must be right too.
fn plausible_default(record: &FlowRecord<'_>) -> bool {
    record.version == Cell::Value(2)
        && record.start.value().is_some()
        && record.end.value().is_some()
        && matches!(record.log_status, Some("OK" | "NODATA" | "SKIPDATA"))
        && matches!(record.action, None | Some("ACCEPT" | "REJECT"))
        && record.interface_id.is_some_and(|i| i.starts_with("eni-"))
        && [record.srcaddr.invalid(), record.dstaddr.invalid()]
            .iter()
            .all(Option::is_none)
        && [record.srcport.invalid(), record.dstport.invalid()]
            .iter()
            .all(Option::is_none)
        && [
            record.packets.invalid(),
            record.bytes.invalid(),
            record.protocol.invalid(),
        ]
        .iter()
        .all(Option::is_none)
}

impl FlowLogConfig {
    /// Recognises a flow log record: in a flow-log group (`format`, from [`Self::format_for`]),
    /// any message that is not JSON is one, parsed or kept as an error; elsewhere, a message is
    /// one when it parses as a plausible default-format record. `None`: not a flow record (a
    /// JSON message never is, wherever it is: `*flow*` also matches `workflow` groups).
    pub fn recognise<'a>(
        &'a self,
        format: Option<&'a FlowFormat>,
        message: &'a str,
    ) -> Option<Result<FlowRecord<'a>, FlowError>> {
        if message.trim_start().starts_with(['{', '[']) {
            return None;
        }
        if let Some(format) = format {
            return Some(format.parse_record(message));
        }
        if !message.starts_with("2 ") {
            return None;
        }
        self.default_format()
            .parse_record(message)
            .ok()
            .filter(plausible_default)
            .map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flow_logs::*;
    use proptest::prelude::*;

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vpcflow")
    }

    fn read(name: &str) -> String {
        std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Every sample file with its format: `*.log` with a `*.format` sibling, else the default.
    fn samples() -> Vec<(String, FlowFormat, String)> {
        let mut names: Vec<String> = std::fs::read_dir(fixtures())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let format_file = n.replace(".log", ".format");
                let format = if fixtures().join(&format_file).exists() {
                    FlowFormat::parse(&read(&format_file)).unwrap()
                } else {
                    FlowFormat::default_v2()
                };
                let text = read(&n);
                (n, format, text)
            })
            .collect()
    }

    #[test]
    fn the_default_format_is_the_documented_one() {
        let parsed = FlowFormat::parse(DEFAULT_FORMAT).unwrap();
        assert_eq!(parsed, FlowFormat::default_v2());
        assert_eq!(parsed.len(), 14);
        assert_eq!(parsed.version(), 2);
        assert_eq!(parsed.to_aws(), DEFAULT_FORMAT);
        let bare = FlowFormat::parse(
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status",
        )
        .unwrap();
        assert_eq!(bare, parsed, "S3 header names and ${{}} names are the same fields");
        for (name, known, _) in KNOWN {
            assert_eq!(Known::from_name(name), Some(known));
            assert_eq!(known.name(), name);
        }
    }

    #[test]
    fn bad_formats_say_what_is_wrong() {
        assert_eq!(FlowFormat::parse("  "), Err(FormatError::Empty));
        assert_eq!(
            FlowFormat::parse("${version} ${Src-Addr}"),
            Err(FormatError::BadToken {
                token: "${Src-Addr}".into(),
                position: 2
            })
        );
        assert!(matches!(
            FlowFormat::parse("${version"),
            Err(FormatError::BadToken { .. })
        ));
        assert!(matches!(FlowFormat::parse("${}"), Err(FormatError::BadToken { .. })));
        assert_eq!(
            FlowFormat::parse("${srcaddr} srcaddr"),
            Err(FormatError::Duplicate {
                field: "srcaddr".into()
            })
        );
        let other = FlowFormat::parse("${version} ${encryption-status}").unwrap();
        assert_eq!(other.fields()[1], FlowField::Other("encryption-status".into()));
        assert_eq!(other.version(), 2);
    }

    #[test]
    fn every_sample_line_parses_to_its_formats_field_count() {
        let mut lines = 0;
        for (name, format, text) in samples() {
            for (n, line) in text.lines().enumerate() {
                lines += 1;
                let got = format.parse_record(line);
                if name == "awsdocs-v3-tcp-flags.log" && n == 7 {
                    // As published, with two spaces between `43638` and `10.0.0.62`.
                    let err = got.unwrap_err();
                    assert_eq!(
                        err,
                        FlowError::FieldCount {
                            expected: 21,
                            found: 22,
                            double_space_at: Some(line.find("  ").unwrap())
                        }
                    );
                    assert!(err.to_string().contains("two spaces in a row"), "{err}");
                    continue;
                }
                let record = got.unwrap_or_else(|e| panic!("{name}:{}: {e}", n + 1));
                assert_eq!(line.split(' ').count(), format.len(), "{name}:{}", n + 1);
                // Nothing of the wrong shape in AWS's own records.
                for invalid in [
                    record.srcaddr.invalid(),
                    record.dstaddr.invalid(),
                    record.pkt_srcaddr.invalid(),
                ] {
                    assert_eq!(invalid, None, "{name}:{}", n + 1);
                }
                assert_eq!(record.srcport.invalid().or(record.dstport.invalid()), None);
                assert_eq!(record.tcp_flags.invalid().or(record.traffic_path.invalid()), None);
                assert_eq!(record.start.invalid().or(record.end.invalid()), None);
                assert!(record.other.is_empty(), "{name}: every field is known");
            }
        }
        assert_eq!(lines, 7 + 8 + 4 + 2 + 4 + 2 + 17 + 1, "every line of every sample");
    }

    #[test]
    fn default_format_values() {
        let text = read("awsdocs-v2-default.log");
        let lines: Vec<&str> = text.lines().collect();
        let f = FlowFormat::default_v2();
        let ssh = f.parse_record(lines[0]).unwrap();
        assert_eq!(ssh.version, Cell::Value(2));
        assert_eq!(ssh.account_id, Some("123456789010"));
        assert_eq!(ssh.interface_id, Some("eni-1235b8ca123456789"));
        assert_eq!(ssh.srcaddr, Cell::Value("172.31.16.139".parse().unwrap()));
        assert_eq!(ssh.dstaddr, Cell::Value("172.31.16.21".parse().unwrap()));
        assert_eq!((ssh.srcport, ssh.dstport), (Cell::Value(20641), Cell::Value(22)));
        assert_eq!(ssh.protocol.value().and_then(protocol_name), Some("tcp"));
        assert_eq!((ssh.packets, ssh.bytes), (Cell::Value(20), Cell::Value(4249)));
        assert_eq!(
            (ssh.start, ssh.end),
            (Cell::Value(1_418_530_010), Cell::Value(1_418_530_070))
        );
        assert_eq!(ssh.action_kind(), Some(Action::Accept));
        assert_eq!(ssh.log_status, Some("OK"));
        assert!(!ssh.is_no_data());
        let rdp = f.parse_record(lines[1]).unwrap();
        assert_eq!(rdp.action_kind(), Some(Action::Reject));
        assert_eq!(rdp.dstport, Cell::Value(3389));
        for (line, status) in [(lines[2], "NODATA"), (lines[3], "SKIPDATA")] {
            let r = f.parse_record(line).unwrap();
            assert!(r.is_no_data());
            assert_eq!(r.log_status, Some(status));
            assert_eq!((r.srcaddr, r.packets, r.action), (Cell::Absent, Cell::Absent, None));
            assert_eq!(r.start, Cell::Value(1_431_280_876));
        }
        let ping = f.parse_record(lines[4]).unwrap();
        assert_eq!(ping.protocol.value().and_then(protocol_name), Some("icmp"));
        assert_eq!((ping.srcport, ping.dstport), (Cell::Value(0), Cell::Value(0)));
        let v6 = f.parse_record(lines[6]).unwrap();
        assert_eq!(
            v6.srcaddr,
            Cell::Value("2001:db8:1234:a100:8d6e:3477:df66:f105".parse().unwrap())
        );
    }

    #[test]
    fn custom_format_values() {
        let format = |n: &str| FlowFormat::parse(&read(n)).unwrap();
        let tcp = format("awsdocs-v3-tcp-flags.format");
        assert_eq!((tcp.len(), tcp.version()), (21, 3));
        let text = read("awsdocs-v3-tcp-flags.log");
        let flags: Vec<Option<u16>> = text
            .lines()
            .filter_map(|l| tcp.parse_record(l).ok())
            .map(|r| r.tcp_flags.value())
            .collect();
        assert_eq!(flags, [2, 18, 2, 18, 1, 1, 3].map(Some));
        let syn_ack_fin = tcp.parse_record(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(syn_ack_fin.traffic_type, Some("IPv4"));
        assert_eq!(syn_ack_fin.vpc_id, Some("vpc-abcdefab012345678"));
        assert_eq!(syn_ack_fin.subnet_id, Some("subnet-aaaaaaaa012345678"));
        assert_eq!(syn_ack_fin.instance_id, Some("i-01234567890123456"));
        assert_eq!(syn_ack_fin.pkt_srcaddr, Cell::Value("10.0.0.62".parse().unwrap()));
        // The bytes/packets order of this format is the reverse of the default's.
        assert_eq!(
            (syn_ack_fin.bytes, syn_ack_fin.packets),
            (Cell::Value(376), Cell::Value(7))
        );

        let nat = format("awsdocs-nat-gateway-eni.format");
        assert_eq!(nat.len(), 6);
        let nat_text = read("awsdocs-nat-gateway-eni.log");
        let first = nat.parse_record(nat_text.lines().next().unwrap()).unwrap();
        assert_eq!(first.instance_id, None, "requester-managed: `-`");
        assert_eq!(first.version, Cell::Absent, "the format has no version");
        assert_eq!(first.dstaddr, Cell::Value("10.0.0.220".parse().unwrap()));
        assert_eq!(first.pkt_dstaddr, Cell::Value("203.0.113.5".parse().unwrap()));

        let tgw = format("awsdocs-v3-transit-gateway.format");
        let tgw_text = read("awsdocs-v3-transit-gateway.log");
        let r = tgw.parse_record(tgw_text.lines().nth(2).unwrap()).unwrap();
        assert_eq!(r.instance_id, None);
        assert_eq!(r.srcaddr, Cell::Value("10.40.1.175".parse().unwrap()));
        assert_eq!(r.pkt_srcaddr, Cell::Value("10.20.33.164".parse().unwrap()));
        assert_eq!(r.start, Cell::Absent);

        let v5 = format("awsdocs-v5-service-traffic-path.format");
        assert_eq!((v5.len(), v5.version()), (29, 5));
        let text = read("awsdocs-v5-service-traffic-path.log");
        let lines: Vec<&str> = text.lines().collect();
        let ingress = v5.parse_record(lines[0]).unwrap();
        assert_eq!(ingress.flow_direction, Some("ingress"));
        assert_eq!(ingress.traffic_path, Cell::Absent);
        assert_eq!(ingress.pkt_src_aws_service, Some("S3"));
        assert_eq!(ingress.region, Some("ap-southeast-2"));
        assert_eq!(ingress.az_id, Some("apse2-az3"));
        assert_eq!((ingress.sublocation_type, ingress.sublocation_id), (None, None));
        let egress = v5.parse_record(lines[1]).unwrap();
        assert_eq!(egress.flow_direction, Some("egress"));
        assert_eq!(
            egress.traffic_path.value().and_then(traffic_path_name),
            Some("internet-gateway")
        );
        assert_eq!(egress.pkt_dst_aws_service, Some("S3"));

        let ecs = format("otel-ecs-fields.format");
        assert_eq!((ecs.len(), ecs.version()), (24, 7));
        let ecs_text = read("otel-ecs-fields.log");
        let r = ecs.parse_record(ecs_text.trim_end()).unwrap();
        assert_eq!(r.version, Cell::Value(5), "as published");
        assert_eq!(r.ecs.cluster_name, Some("my-cluster"));
        assert_eq!(r.ecs.task_id, Some("abcdef1234567890"));
        assert_eq!(r.ecs.second_container_id, Some("container-2"));
        assert_eq!(
            r.ecs.task_definition_arn,
            Some("arn:aws:ecs:us-east-1:123456789012:task-definition/my-task:1")
        );
    }

    #[test]
    fn flags_paths_and_protocols_decode() {
        assert_eq!(tcp_flag_names(19).collect::<Vec<_>>(), ["FIN", "SYN", "ACK"]);
        assert_eq!(tcp_flag_names(18).collect::<Vec<_>>(), ["SYN", "ACK"]);
        assert_eq!(tcp_flag_names(6).collect::<Vec<_>>(), ["SYN", "RST"]);
        assert_eq!(tcp_flag_names(0).count(), 0);
        assert_eq!(tcp_flag_names(0x1ff).count(), 9);
        assert_eq!(traffic_path_name(1), Some("same-vpc"));
        assert_eq!(traffic_path_name(0), None);
        assert_eq!(traffic_path_name(9), None);
        for (n, name) in [
            (0, Some("hopopt")),
            (1, Some("icmp")),
            (6, Some("tcp")),
            (17, Some("udp")),
            (41, Some("ipv6")),
            (47, Some("gre")),
            (50, Some("esp")),
            (51, Some("ah")),
            (58, Some("ipv6-icmp")),
            (61, None),
            (89, Some("ospfigp")),
            (112, Some("vrrp")),
            (132, Some("sctp")),
            (145, Some("nsh")),
            (146, None),
            (255, None),
        ] {
            assert_eq!(protocol_name(n), name, "{n}");
        }
        let f = FlowFormat::parse("${traffic-path} ${tcp-flags} ${start}").unwrap();
        let r = f.parse_record("9 999999 -1").unwrap();
        assert_eq!(r.traffic_path, Cell::Invalid("9"));
        assert_eq!(r.tcp_flags, Cell::Invalid("999999"));
        assert_eq!(r.start, Cell::Invalid("-1"));
    }

    #[test]
    fn wrong_shapes_are_cells_not_errors() {
        let f = FlowFormat::default_v2();
        let r = f
            .parse_record("2 1 eni-1 10.0.0.999 ::1 http 70000 tcp many 1e3 soon 1418530070 MAYBE WHAT")
            .unwrap();
        assert_eq!(r.srcaddr, Cell::Invalid("10.0.0.999"));
        assert_eq!(r.dstaddr, Cell::Value("::1".parse().unwrap()));
        assert_eq!(r.srcport, Cell::Invalid("http"));
        assert_eq!(r.dstport, Cell::Invalid("70000"));
        assert_eq!(r.protocol, Cell::Invalid("tcp"));
        assert_eq!(r.packets, Cell::Invalid("many"));
        assert_eq!(r.bytes, Cell::Invalid("1e3"));
        assert_eq!(r.start, Cell::Invalid("soon"));
        assert_eq!(r.action, Some("MAYBE"));
        assert_eq!(r.action_kind(), None);
        assert_eq!(r.log_status, Some("WHAT"));
        assert_eq!(f.parse_record(""), Err(FlowError::Empty));
        assert_eq!(f.parse_record("\r\n"), Err(FlowError::Empty));
        assert!(matches!(
            f.parse_record("2 1 eni-1"),
            Err(FlowError::FieldCount {
                expected: 14,
                found: 3,
                double_space_at: None
            })
        ));
        // A trailing newline (S3 lines) is not a value; a trailing space is an extra field.
        let line = "2 1 eni-1 - - - - - - - 1 2 - NODATA";
        assert!(f.parse_record(&format!("{line}\r\n")).is_ok());
        assert!(f.parse_record(&format!("{line} ")).is_err());
        let other = FlowFormat::parse("${version} ${future-field} ${another}").unwrap();
        let r = other.parse_record("9 abc -").unwrap();
        assert_eq!(r.other, [("future-field", "abc")]);
        assert_eq!(r.version, Cell::Value(9));
    }

    #[test]
    fn globs_match_whole_names() {
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(g("*flow*").matches("/aws/vpc/flowlogs"));
        assert!(g("*flow*").matches("flow"));
        assert!(
            g("*flow*").matches("central-workflow"),
            "a JSON message there is still not a flow record"
        );
        assert!(!g("*flow*").matches("/aws/vpc/FLOWLOGS"), "case matters");
        assert!(g("/aws/vpc/*").matches("/aws/vpc/"));
        assert!(!g("/aws/vpc/*").matches("/aws/vpc"));
        assert!(g("vpc-?-logs").matches("vpc-a-logs"));
        assert!(!g("vpc-?-logs").matches("vpc-ab-logs"));
        assert!(g("a*b*c").matches("aXbYbZc"));
        assert!(!g("a*b*c").matches("aXbYbZ"));
        assert!(g("exact").matches("exact") && !g("exact").matches("exactly"));
        assert!(g("**").matches(""));
        assert!(g("exact").is_literal() && !g("a*").is_literal());
        assert!(Glob::new("").is_err());
        assert!(Glob::new("[\"*flow*\"]").unwrap_err().contains("'['"));
        assert!(Glob::new(&"a".repeat(513)).is_err());
    }

    fn config(vars: &[(&str, &str)]) -> Result<FlowLogConfig, FlowConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        FlowLogConfig::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn configuration_decides_the_groups_and_their_formats() {
        let c = config(&[]).unwrap();
        assert_eq!(c, FlowLogConfig::default());
        assert_eq!(c.format_for("/aws/vpc/flowlogs"), Some(&FlowFormat::default_v2()));
        assert_eq!(c.format_for("aws-cloudtrail-logs-111122223333"), None);

        let tcp = "${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} ${type} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} ${bytes} ${packets} ${start} ${end} ${action} ${tcp-flags} ${log-status}";
        let formats =
            format!(r#"{{"vpc-*": "${{instance-id}} ${{srcaddr}}", "vpc-tcp": "{tcp}", "*": "${{srcaddr}}"}}"#);
        let c = config(&[
            ("FLOW_LOG_GROUPS", " /central/flows , other-*,"),
            ("FLOW_LOG_FORMATS", &formats),
        ])
        .unwrap();
        assert_eq!(
            c.groups().iter().map(Glob::as_str).collect::<Vec<_>>(),
            ["/central/flows", "other-*"]
        );
        assert_eq!(
            c.format_for("vpc-tcp").map(FlowFormat::len),
            Some(21),
            "exact name before globs"
        );
        assert_eq!(
            c.format_for("vpc-nat").map(FlowFormat::len),
            Some(2),
            "first glob in order"
        );
        assert_eq!(
            c.format_for("anything").map(FlowFormat::len),
            Some(1),
            "then the next glob"
        );

        let c = config(&[("FLOW_LOG_GROUPS", "")]).unwrap();
        assert!(c.groups().is_empty());
        assert_eq!(c.format_for("/aws/vpc/flowlogs"), None, "empty: by records only");
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        let err = config(&[("FLOW_LOG_GROUPS", "[\"*flow*\"]")]).unwrap_err();
        assert_eq!(err.var(), "FLOW_LOG_GROUPS");
        assert!(
            err.to_string().starts_with("FLOW_LOG_GROUPS=\"[\\\"*flow*\\\"]\": "),
            "{err}"
        );
        for (value, needle) in [
            ("not json", "FLOW_LOG_FORMATS is not a JSON object"),
            ("[\"x\"]", "expected a JSON object"),
            (r#"{"g": 5}"#, "the value for \"g\" is 5"),
            (r#"{"g": "${srcaddr}", "g": "${dstaddr}"}"#, "given twice"),
            (r#"{"": "${srcaddr}"}"#, "empty log group name"),
            (r#"{"g": "${srcaddr} ${SRCADDR}"}"#, "FLOW_LOG_FORMATS[\"g\"]: field 2"),
            (r#"{"g": ""}"#, "FLOW_LOG_FORMATS[\"g\"]: the format names no fields"),
        ] {
            let err = config(&[("FLOW_LOG_FORMATS", value)]).unwrap_err();
            assert_eq!(err.var(), "FLOW_LOG_FORMATS", "{value}");
            assert!(err.to_string().contains(needle), "{value}: {err}");
        }
        assert!(config(&[("FLOW_LOG_FORMATS", " ")]).is_ok(), "blank is unset");
    }

    #[test]
    fn records_are_recognised_by_group_or_by_shape() {
        let c = FlowLogConfig::default();
        let ssh = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert!(matches!(c.recognise(None, ssh), Some(Ok(_))), "by shape");
        let nodata = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";
        assert!(matches!(c.recognise(None, nodata), Some(Ok(_))));
        for not_flow in [
            "2 fast 2 furious and a few more words to reach fourteen of them here",
            "2 123456789010 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 1 1 2 ACCEPT BROKEN",
            "2 123456789010 vif-1 1.2.3.4 5.6.7.8 1 2 6 1 1 1 2 ACCEPT OK",
            "2 123456789010 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 1 1 2 ACCEPT",
            "START RequestId: 8f5a0c1e Version: $LATEST",
            r#"{"eventVersion":"1.08"}"#,
        ] {
            assert!(c.recognise(None, not_flow).is_none(), "{not_flow}");
        }
        let f = c.format_for("/aws/vpc/flowlogs");
        assert!(matches!(
            c.recognise(f, "some text"),
            Some(Err(FlowError::FieldCount { .. }))
        ));
        assert!(
            c.recognise(f, r#" {"eventVersion":"1.08"}"#).is_none(),
            "JSON is never a flow record"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any line: a record with the format's field count, or a field-count error; never a
        /// panic, never silence.
        #[test]
        fn any_line_parses_or_says_why(line in "[ -~\\t\\n\\r\u{e9}\u{1F980}-]{0,200}", custom in proptest::bool::ANY) {
            let format = if custom {
                FlowFormat::parse("${srcaddr} ${tcp-flags} ${traffic-path} ${future} ${start}").unwrap()
            } else {
                FlowFormat::default_v2()
            };
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
            match format.parse_record(&line) {
                Ok(_) => prop_assert_eq!(trimmed.split(' ').count(), format.len()),
                Err(FlowError::Empty) => prop_assert!(trimmed.is_empty()),
                Err(FlowError::FieldCount { expected, found, .. }) => {
                    prop_assert_eq!(expected, format.len());
                    prop_assert_eq!(found, trimmed.split(' ').count());
                    prop_assert_ne!(found, expected);
                }
            }
            let _ = FlowLogConfig::default().recognise(None, &line);
        }

        /// Well-formed records with random values: the right count always parses, and every
        /// value is either typed or kept as the text it was.
        #[test]
        fn records_of_the_right_count_always_parse(values in proptest::collection::vec("[!-~]{1,12}", 14)) {
            let line = values.join(" ");
            let format = FlowFormat::default_v2();
            let r = format.parse_record(&line).unwrap();
            let addr = |c: Cell<'_, IpAddr>, raw: &str| match c {
                Cell::Absent => raw == "-",
                Cell::Value(ip) => raw.parse::<IpAddr>() == Ok(ip),
                Cell::Invalid(s) => s == raw && raw.parse::<IpAddr>().is_err(),
            };
            prop_assert!(addr(r.srcaddr, &values[3]));
            prop_assert!(addr(r.dstaddr, &values[4]));
            prop_assert_eq!(r.account_id, (values[1] != "-").then_some(values[1].as_str()));
        }

        /// Wrong field counts are errors, never a record with fields dropped or shifted.
        #[test]
        fn wrong_counts_are_errors(n in 1usize..40) {
            prop_assume!(n != 14);
            let line = vec!["1"; n].join(" ");
            prop_assert!(
                matches!(
                    FlowFormat::default_v2().parse_record(&line),
                    Err(FlowError::FieldCount { expected: 14, found, .. }) if found == n
                ),
                "{} fields", n
            );
        }

        /// Globs agree with a straightforward recursive matcher.
        #[test]
        fn globs_agree_with_the_definition(pattern in "[ab*?]{0,8}", name in "[ab]{0,10}") {
            fn reference(p: &[u8], s: &[u8]) -> bool {
                match (p.first(), s.first()) {
                    (None, _) => s.is_empty(),
                    (Some(b'*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
                    (Some(b'?'), Some(_)) => reference(&p[1..], &s[1..]),
                    (Some(c), Some(d)) if c == d => reference(&p[1..], &s[1..]),
                    _ => false,
                }
            }
            prop_assume!(!pattern.is_empty());
            let glob = Glob::new(&pattern).unwrap();
            prop_assert_eq!(glob.matches(&name), reference(pattern.as_bytes(), name.as_bytes()));
        }
    }
}
