//! Stage 3 for VPC Flow Logs: one flow record becomes one bulk item in `<prefix>-vpcflow-YYYY.MM.DD`
//! (the day of `start`), `_id` the log event id, with ECS-style typed fields; the field table its
//! template is built from, so that a value of the wrong shape goes to `@unindexed`, never refused.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::index::family::{self, EventMeta, FieldType, GeoLookup, Obj, Unindexed};
use crate::ingest::vpcflow::{self, Cell, FlowError, FlowRecord};

/// The family's part of index names: `<prefix>-vpcflow-YYYY.MM.DD`.
pub const FAMILY: &str = "vpcflow";

/// `event.dataset` of every flow document.
pub const DATASET: &str = "aws.vpcflow";

/// Every field a flow document can have besides the common `@` fields, with its mapping.
/// Unknown format fields go under `aws.vpcflow.extra.<name>` as keywords (mapped dynamically).
pub const VPCFLOW_FIELDS: &[(&str, FieldType)] = &[
    ("event.kind", FieldType::Keyword),
    ("event.dataset", FieldType::Keyword),
    ("event.category", FieldType::Keyword),
    ("event.type", FieldType::Keyword),
    ("event.action", FieldType::Keyword),
    ("event.outcome", FieldType::Keyword),
    ("event.start", FieldType::Date),
    ("event.end", FieldType::Date),
    ("event.duration", FieldType::Long),
    ("source.ip", FieldType::Ip),
    ("source.port", FieldType::Long),
    ("source.packets", FieldType::Long),
    ("source.bytes", FieldType::Long),
    ("source.geo.country_iso_code", FieldType::Keyword),
    ("source.geo.country_name", FieldType::Keyword),
    ("source.geo.location", FieldType::GeoPoint),
    ("source.as.number", FieldType::Long),
    ("source.as.organization.name", FieldType::Keyword),
    ("destination.ip", FieldType::Ip),
    ("destination.port", FieldType::Long),
    ("destination.geo.country_iso_code", FieldType::Keyword),
    ("destination.geo.country_name", FieldType::Keyword),
    ("destination.geo.location", FieldType::GeoPoint),
    ("destination.as.number", FieldType::Long),
    ("destination.as.organization.name", FieldType::Keyword),
    ("network.transport", FieldType::Keyword),
    ("network.iana_number", FieldType::Keyword),
    ("network.type", FieldType::Keyword),
    ("network.direction", FieldType::Keyword),
    ("cloud.provider", FieldType::Keyword),
    ("cloud.account.id", FieldType::Keyword),
    ("cloud.region", FieldType::Keyword),
    ("cloud.instance.id", FieldType::Keyword),
    ("related.ip", FieldType::Ip),
    ("aws.vpcflow.version", FieldType::Long),
    ("aws.vpcflow.interface_id", FieldType::Keyword),
    ("aws.vpcflow.action", FieldType::Keyword),
    ("aws.vpcflow.log_status", FieldType::Keyword),
    ("aws.vpcflow.no_data", FieldType::Boolean),
    ("aws.vpcflow.vpc_id", FieldType::Keyword),
    ("aws.vpcflow.subnet_id", FieldType::Keyword),
    ("aws.vpcflow.instance_id", FieldType::Keyword),
    ("aws.vpcflow.tcp_flags", FieldType::Long),
    ("aws.vpcflow.tcp_flags_array", FieldType::Keyword),
    ("aws.vpcflow.type", FieldType::Keyword),
    ("aws.vpcflow.pkt_srcaddr", FieldType::Ip),
    ("aws.vpcflow.pkt_dstaddr", FieldType::Ip),
    ("aws.vpcflow.region", FieldType::Keyword),
    ("aws.vpcflow.az_id", FieldType::Keyword),
    ("aws.vpcflow.sublocation_type", FieldType::Keyword),
    ("aws.vpcflow.sublocation_id", FieldType::Keyword),
    ("aws.vpcflow.pkt_src_aws_service", FieldType::Keyword),
    ("aws.vpcflow.pkt_dst_aws_service", FieldType::Keyword),
    ("aws.vpcflow.flow_direction", FieldType::Keyword),
    ("aws.vpcflow.traffic_path", FieldType::Long),
    ("aws.vpcflow.traffic_path_name", FieldType::Keyword),
    ("aws.vpcflow.reject_reason", FieldType::Keyword),
    ("aws.vpcflow.ecs.cluster_arn", FieldType::Keyword),
    ("aws.vpcflow.ecs.cluster_name", FieldType::Keyword),
    ("aws.vpcflow.ecs.container_instance_arn", FieldType::Keyword),
    ("aws.vpcflow.ecs.container_instance_id", FieldType::Keyword),
    ("aws.vpcflow.ecs.container_id", FieldType::Keyword),
    ("aws.vpcflow.ecs.second_container_id", FieldType::Keyword),
    ("aws.vpcflow.ecs.service_name", FieldType::Keyword),
    ("aws.vpcflow.ecs.task_definition_arn", FieldType::Keyword),
    ("aws.vpcflow.ecs.task_arn", FieldType::Keyword),
    ("aws.vpcflow.ecs.task_id", FieldType::Keyword),
];

/// Where unknown format fields go, as keywords.
#[cfg(test)]
pub const EXTRA_PREFIX: &str = "aws.vpcflow.extra.";

/// The composable template of `<prefix>-vpcflow-*`: [`VPCFLOW_FIELDS`], and `aws.vpcflow.extra`
/// mapping every (string) child as a keyword, so a field AWS adds later is searchable once a
/// `FLOW_LOG_FORMATS` entry names it.
pub fn vpcflow_template(prefix: &str, replicas: Option<u32>, lifecycle: Option<&str>) -> Value {
    let mut t = family::family_template(prefix, FAMILY, VPCFLOW_FIELDS, replicas, lifecycle);
    let mappings = &mut t["template"]["mappings"];
    mappings["properties"]["aws"]["properties"]["vpcflow"]["properties"]["extra"] =
        json!({"type": "object", "dynamic": true});
    mappings["dynamic_templates"] = json!([{"vpcflow_extra_fields": {
        "path_match": "aws.vpcflow.extra.*",
        "match_mapping_type": "string",
        "mapping": {"type": "keyword", "ignore_above": 1024}
    }}]);
    t
}

/// What a flow item turned out to be, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowOutcome {
    /// A record with traffic.
    Flow,
    /// A `NODATA` or `SKIPDATA` record, kept and flagged.
    NoData,
    /// A record that did not split into its format's fields, kept with `@parse_error`.
    Invalid,
}

fn long<'a, T: Copy + Into<i64>>(
    obj: &mut Obj<'_>,
    kept: &mut Unindexed<'a>,
    key: &str,
    path: &'static str,
    cell: Cell<'a, T>,
) {
    match cell {
        Cell::Value(v) => obj.num(key, v.into()),
        Cell::Invalid(raw) => kept.text(path, raw),
        Cell::Absent => {}
    }
}

fn ip<'a>(obj: &mut Obj<'_>, kept: &mut Unindexed<'a>, key: &str, path: &'static str, cell: Cell<'a, IpAddr>) {
    match cell {
        Cell::Value(addr) => obj.ip(key, &addr),
        Cell::Invalid(raw) => kept.text(path, raw),
        Cell::Absent => {}
    }
}

/// One side of the flow, `source` or `destination`, with GeoIP facts for its address.
fn endpoint<'a>(
    doc: &mut Obj<'_>,
    kept: &mut Unindexed<'a>,
    side: &'static str,
    addr: Cell<'a, IpAddr>,
    port: Cell<'a, u16>,
    counters: Option<(Cell<'a, i64>, Cell<'a, i64>)>,
    geo: Option<GeoLookup<'_>>,
) {
    let (ip_path, port_path) = if side == "source" {
        ("source.ip", "source.port")
    } else {
        ("destination.ip", "destination.port")
    };
    let mut obj = doc.child(side);
    ip(&mut obj, kept, "ip", ip_path, addr);
    long(&mut obj, kept, "port", port_path, port);
    if let Some((packets, bytes)) = counters {
        long(&mut obj, kept, "packets", "source.packets", packets);
        long(&mut obj, kept, "bytes", "source.bytes", bytes);
    }
    if let (Some(lookup), Cell::Value(addr)) = (geo, addr)
        && let Some(facts) = lookup(addr)
    {
        obj.geo_facts(&facts);
    }
}

/// Appends the action line and the document line of one flow log event. `parsed` is what
/// [`vpcflow::FlowLogConfig::recognise`] gave; a record that did not parse is kept with
/// `@message` and `@parse_error` in the same family's index, dated by the log event. `@message`
/// is kept on parsed records too when `keep_message` (`RAW_MESSAGE=always`). `geo` enriches
/// public addresses.
#[allow(clippy::too_many_arguments)]
pub fn write_flow_item(
    out: &mut Vec<u8>,
    prefix: &str,
    meta: &EventMeta<'_>,
    message: &str,
    parsed: &Result<FlowRecord<'_>, FlowError>,
    keep_message: bool,
    geo: Option<GeoLookup<'_>>,
) -> FlowOutcome {
    let record = parsed.as_ref().ok();
    let start = record.and_then(|r| r.start.value()).and_then(family::time_from_seconds);
    let time = meta.time_or_logged(start);
    let message = (keep_message || record.is_none()).then_some(message);
    let mut doc = family::open_item(out, prefix, FAMILY, meta, meta.doc_id, &time, message);
    let r = match parsed {
        Ok(r) => r,
        Err(e) => {
            doc.str("@parse_error", &e.to_string());
            family::event(&mut doc, "event", DATASET, None);
            return FlowOutcome::Invalid;
        }
    };
    let mut kept = Unindexed::default();
    let action = r.action_kind();
    {
        let mut event = family::event(&mut doc, "event", DATASET, Some("network"));
        if let Some(a) = action {
            event.strs("type", ["connection", a.event_type()]);
            event.str("action", a.as_str());
            event.str("outcome", a.outcome());
        }
        let end = r.end.value().and_then(family::time_from_seconds);
        if let Some(t) = &start {
            event.time("start", t);
        }
        if let Some(t) = &end {
            event.time("end", t);
        }
        // Nanoseconds, as ECS has it; an interval too long for a long (centuries) has none.
        if let (Some(s), Some(e)) = (r.start.value(), r.end.value())
            && let Some(ns) = e
                .checked_sub(s)
                .filter(|d| *d >= 0)
                .and_then(|d| d.checked_mul(1_000_000_000))
        {
            event.num("duration", ns);
        }
        for (cell, path) in [(r.start, "event.start"), (r.end, "event.end")] {
            if let Some(raw) = cell.invalid() {
                kept.text(path, raw);
            }
        }
    }
    endpoint(
        &mut doc,
        &mut kept,
        "source",
        r.srcaddr,
        r.srcport,
        Some((r.packets, r.bytes)),
        geo,
    );
    endpoint(&mut doc, &mut kept, "destination", r.dstaddr, r.dstport, None, geo);
    {
        let mut network = doc.child("network");
        match r.protocol {
            Cell::Value(n) => {
                network.opt_str("transport", vpcflow::protocol_name(n));
                network.str("iana_number", &n.to_string());
            }
            Cell::Invalid(raw) => kept.text("network.iana_number", raw),
            Cell::Absent => {}
        }
        network.opt_str(
            "type",
            match r.traffic_type {
                Some("IPv4") => Some("ipv4"),
                Some("IPv6") => Some("ipv6"),
                Some("EFA") => Some("efa"),
                _ => None,
            },
        );
        network.opt_str(
            "direction",
            r.flow_direction.filter(|d| matches!(*d, "ingress" | "egress")),
        );
    }
    {
        let mut cloud = doc.child("cloud");
        cloud.str("provider", "aws");
        if let Some(account) = r.account_id {
            cloud.child("account").str("id", account);
        }
        cloud.opt_str("region", r.region);
        if let Some(instance) = r.instance_id {
            cloud.child("instance").str("id", instance);
        }
    }
    {
        let mut related: Vec<IpAddr> = Vec::with_capacity(4);
        for addr in [r.srcaddr, r.dstaddr, r.pkt_srcaddr, r.pkt_dstaddr]
            .iter()
            .filter_map(Cell::value)
        {
            if !related.contains(&addr) {
                related.push(addr);
            }
        }
        doc.child("related").ips("ip", &related);
    }
    {
        let mut aws = doc.child("aws");
        let mut flow = aws.child("vpcflow");
        long(&mut flow, &mut kept, "version", "aws.vpcflow.version", r.version);
        flow.opt_str("interface_id", r.interface_id);
        flow.opt_str("action", r.action);
        flow.opt_str("log_status", r.log_status);
        if r.log_status.is_some() {
            flow.bool("no_data", r.is_no_data());
        }
        flow.opt_str("vpc_id", r.vpc_id);
        flow.opt_str("subnet_id", r.subnet_id);
        flow.opt_str("instance_id", r.instance_id);
        long(&mut flow, &mut kept, "tcp_flags", "aws.vpcflow.tcp_flags", r.tcp_flags);
        if let Cell::Value(bits) = r.tcp_flags {
            flow.strs("tcp_flags_array", vpcflow::tcp_flag_names(bits));
        }
        flow.opt_str("type", r.traffic_type);
        ip(
            &mut flow,
            &mut kept,
            "pkt_srcaddr",
            "aws.vpcflow.pkt_srcaddr",
            r.pkt_srcaddr,
        );
        ip(
            &mut flow,
            &mut kept,
            "pkt_dstaddr",
            "aws.vpcflow.pkt_dstaddr",
            r.pkt_dstaddr,
        );
        flow.opt_str("region", r.region);
        flow.opt_str("az_id", r.az_id);
        flow.opt_str("sublocation_type", r.sublocation_type);
        flow.opt_str("sublocation_id", r.sublocation_id);
        flow.opt_str("pkt_src_aws_service", r.pkt_src_aws_service);
        flow.opt_str("pkt_dst_aws_service", r.pkt_dst_aws_service);
        flow.opt_str("flow_direction", r.flow_direction);
        long(
            &mut flow,
            &mut kept,
            "traffic_path",
            "aws.vpcflow.traffic_path",
            r.traffic_path,
        );
        flow.opt_str(
            "traffic_path_name",
            r.traffic_path.value().and_then(vpcflow::traffic_path_name),
        );
        flow.opt_str("reject_reason", r.reject_reason);
        {
            let e = &r.ecs;
            let mut ecs = flow.child("ecs");
            ecs.opt_str("cluster_arn", e.cluster_arn);
            ecs.opt_str("cluster_name", e.cluster_name);
            ecs.opt_str("container_instance_arn", e.container_instance_arn);
            ecs.opt_str("container_instance_id", e.container_instance_id);
            ecs.opt_str("container_id", e.container_id);
            ecs.opt_str("second_container_id", e.second_container_id);
            ecs.opt_str("service_name", e.service_name);
            ecs.opt_str("task_definition_arn", e.task_definition_arn);
            ecs.opt_str("task_arn", e.task_arn);
            ecs.opt_str("task_id", e.task_id);
        }
        let mut extra = flow.child("extra");
        for (name, value) in &r.other {
            extra.str(name, value);
        }
    }
    kept.write(&mut doc);
    drop(doc);
    if r.is_no_data() {
        FlowOutcome::NoData
    } else {
        FlowOutcome::Flow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FlowFormat, FlowLogConfig};
    use crate::index::family::GeoFacts;
    use crate::index::family::testing::{check_document, check_table, split_item};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    const META: EventMeta<'static> = EventMeta {
        id: "36900001000000000000000000000000000000000000000000000000",
        doc_id: "36900001000000000000000000000000000000000000000000000000",
        timestamp_ms: 1_700_000_000_000,
        owner: "123456789010",
        log_group: "/aws/vpc/flowlogs",
        log_stream: "eni-1235b8ca123456789-all",
        with_id: true,
    };

    fn item(format: &FlowFormat, line: &str, keep: bool, geo: Option<GeoLookup<'_>>) -> (FlowOutcome, Value, Value) {
        let parsed = format.parse_record(line);
        let mut outcome = None;
        let write = |out: &mut Vec<u8>| outcome = Some(write_flow_item(out, "cwl", &META, line, &parsed, keep, geo));
        let (action, doc) = crate::index::family::testing::checked_item(write, VPCFLOW_FIELDS, &[EXTRA_PREFIX]);
        (outcome.expect("written"), action, doc)
    }

    const SSH: &str = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";

    #[test]
    fn the_table_is_consistent_and_the_template_maps_it() {
        check_table(VPCFLOW_FIELDS);
        let t = vpcflow_template("cwl", None, None);
        assert_eq!(t["index_patterns"], json!(["cwl-vpcflow-*"]));
        let p = &t["template"]["mappings"]["properties"];
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(p["source"]["properties"]["port"]["type"], "long");
        assert_eq!(p["source"]["properties"]["bytes"]["type"], "long");
        assert_eq!(p["event"]["properties"]["start"]["type"], "date");
        assert_eq!(p["network"]["properties"]["transport"]["type"], "keyword");
        assert_eq!(
            p["aws"]["properties"]["vpcflow"]["properties"]["pkt_srcaddr"]["type"],
            "ip"
        );
        assert_eq!(
            p["aws"]["properties"]["vpcflow"]["properties"]["extra"]["dynamic"],
            true
        );
        assert_eq!(p["@timestamp"]["type"], "date");
        assert_eq!(
            t["template"]["mappings"]["dynamic_templates"][0]["vpcflow_extra_fields"]["path_match"],
            "aws.vpcflow.extra.*"
        );
    }

    #[test]
    fn a_default_record_becomes_ecs_fields() {
        let (outcome, action, doc) = item(&FlowFormat::default_v2(), SSH, false, None);
        assert_eq!(outcome, FlowOutcome::Flow);
        assert_eq!(
            action,
            json!({"create": {"_index": "cwl-vpcflow-2014.12.14", "_id": META.doc_id}})
        );
        assert_eq!(
            doc,
            json!({
                "@id": META.id,
                "@timestamp": "2014-12-14T04:06:50.000Z",
                "@owner": "123456789010",
                "@log_group": "/aws/vpc/flowlogs",
                "@log_stream": "eni-1235b8ca123456789-all",
                "event": {
                    "kind": "event", "dataset": "aws.vpcflow", "category": ["network"],
                    "type": ["connection", "allowed"], "action": "accept", "outcome": "success",
                    "start": "2014-12-14T04:06:50.000Z", "end": "2014-12-14T04:07:50.000Z",
                    "duration": 60_000_000_000u64
                },
                "source": {"ip": "172.31.16.139", "port": 20641, "packets": 20, "bytes": 4249},
                "destination": {"ip": "172.31.16.21", "port": 22},
                "network": {"transport": "tcp", "iana_number": "6"},
                "cloud": {"provider": "aws", "account": {"id": "123456789010"}},
                "related": {"ip": ["172.31.16.139", "172.31.16.21"]},
                "aws": {"vpcflow": {
                    "version": 2, "interface_id": "eni-1235b8ca123456789", "action": "ACCEPT",
                    "log_status": "OK", "no_data": false
                }}
            })
        );
        let (_, _, doc) = item(&FlowFormat::default_v2(), SSH, true, None);
        assert_eq!(doc["@message"], SSH, "RAW_MESSAGE=always keeps the line");
    }

    #[test]
    fn nodata_is_kept_flagged_and_without_a_parse_error() {
        let line = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";
        let (outcome, action, doc) = item(&FlowFormat::default_v2(), line, false, None);
        assert_eq!(outcome, FlowOutcome::NoData);
        assert_eq!(action["create"]["_index"], "cwl-vpcflow-2015.05.10");
        assert!(doc.get("@parse_error").is_none() && doc.get("@message").is_none());
        assert!(doc.get("source").is_none() && doc.get("destination").is_none() && doc.get("related").is_none());
        assert_eq!(doc["aws"]["vpcflow"]["no_data"], true);
        assert_eq!(doc["aws"]["vpcflow"]["log_status"], "NODATA");
        assert!(doc["event"].get("action").is_none() && doc["event"].get("outcome").is_none());
        assert_eq!(doc["event"]["start"], "2015-05-10T18:01:16.000Z");
    }

    #[test]
    fn a_wrong_field_count_is_kept_with_its_message_and_error() {
        let line = "2 123456789010 eni-1 10.0.0.1";
        let (outcome, action, doc) = item(&FlowFormat::default_v2(), line, false, None);
        assert_eq!(outcome, FlowOutcome::Invalid);
        assert_eq!(
            action["create"]["_index"], "cwl-vpcflow-2023.11.14",
            "the log event's day"
        );
        assert_eq!(action["create"]["_id"], META.doc_id);
        assert_eq!(doc["@message"], line);
        assert_eq!(
            doc["@parse_error"],
            "the record has 4 space-separated fields where its format has 14"
        );
        assert_eq!(doc["event"], json!({"kind": "event", "dataset": "aws.vpcflow"}));
    }

    #[test]
    fn wrong_shapes_go_to_unindexed_and_the_rest_is_indexed() {
        let line = "2 1 eni-1 10.0.0.999 ::1 http 70000 tcp 5 18446744073709551615 soon 1418530070 ACCEPT OK";
        let (_, action, doc) = item(&FlowFormat::default_v2(), line, false, None);
        assert_eq!(action["create"]["_index"], "cwl-vpcflow-2023.11.14", "no usable start");
        assert_eq!(
            doc["@unindexed"],
            json!({
                "event.start": "soon",
                "source.ip": "10.0.0.999",
                "source.port": "http",
                "source.bytes": "18446744073709551615",
                "destination.port": "70000",
                "network.iana_number": "tcp"
            })
        );
        assert_eq!(doc["source"], json!({"packets": 5}));
        assert_eq!(doc["destination"], json!({"ip": "::1"}));
        assert_eq!(doc["event"]["end"], "2014-12-14T04:07:50.000Z");
        assert!(doc["event"].get("duration").is_none());
    }

    #[test]
    fn extreme_times_never_overflow() {
        let line = "2 1 eni-1 - - - - - - - 0 253402300799 - NODATA";
        let (_, action, doc) = item(&FlowFormat::default_v2(), line, false, None);
        assert_eq!(action["create"]["_index"], "cwl-vpcflow-1970.01.01");
        assert_eq!(doc["event"]["end"], "9999-12-31T23:59:59.000Z");
        assert!(
            doc["event"].get("duration").is_none(),
            "too long for a long in nanoseconds"
        );
        let (_, _, doc) = item(
            &FlowFormat::default_v2(),
            "2 1 eni-1 - - - - - - - 70 60 - NODATA",
            false,
            None,
        );
        assert!(doc["event"].get("duration").is_none(), "end before start");
    }

    #[test]
    fn version_5_fields_are_all_written() {
        let format = FlowFormat::parse("${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start} ${end} ${type} ${packets} ${bytes} ${account-id} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${action} ${tcp-flags} ${pkt-srcaddr} ${pkt-dstaddr} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${traffic-path} ${flow-direction} ${log-status} ${reject-reason} ${encryption-status}").unwrap();
        let line = "5 10.0.0.71 52.95.128.179 34210 80 6 1616729292 1616729349 IPv4 7 471 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 outpost op-1 REJECT 3 10.0.0.71 52.95.128.179 - S3 8 egress OK BPA 1";
        let geo = |ip: IpAddr| {
            (ip.to_string() == "52.95.128.179").then(|| GeoFacts {
                country_iso_code: Some("AU".into()),
                country_name: Some("Australia".into()),
                location: Some((-33.86, 151.2)),
                as_number: Some(16509),
                as_organization: Some("Amazon.com, Inc.".into()),
            })
        };
        let (_, _, doc) = item(&format, line, false, Some(&geo));
        assert_eq!(
            doc["aws"]["vpcflow"],
            json!({
                "version": 5, "interface_id": "eni-1235b8ca123456789", "action": "REJECT",
                "log_status": "OK", "no_data": false, "vpc_id": "vpc-abcdefab012345678",
                "subnet_id": "subnet-aaaaaaaa012345678", "instance_id": "i-0c50d5961bcb2d47b",
                "tcp_flags": 3, "tcp_flags_array": ["FIN", "SYN"], "type": "IPv4",
                "pkt_srcaddr": "10.0.0.71", "pkt_dstaddr": "52.95.128.179", "region": "ap-southeast-2",
                "az_id": "apse2-az3", "sublocation_type": "outpost", "sublocation_id": "op-1",
                "pkt_dst_aws_service": "S3", "flow_direction": "egress", "traffic_path": 8,
                "traffic_path_name": "internet-gateway", "reject_reason": "BPA",
                "extra": {"encryption-status": "1"}
            })
        );
        assert_eq!(doc["event"]["type"], json!(["connection", "denied"]));
        assert_eq!(
            (&doc["event"]["action"], &doc["event"]["outcome"]),
            (&json!("reject"), &json!("failure"))
        );
        assert_eq!(
            doc["network"],
            json!({"transport": "tcp", "iana_number": "6", "type": "ipv4", "direction": "egress"})
        );
        assert_eq!(
            doc["cloud"],
            json!({"provider": "aws", "account": {"id": "123456789012"}, "region": "ap-southeast-2", "instance": {"id": "i-0c50d5961bcb2d47b"}})
        );
        assert!(doc["source"].get("geo").is_none(), "private: no lookup result");
        assert_eq!(
            doc["destination"],
            json!({"ip": "52.95.128.179", "port": 80,
                   "geo": {"country_iso_code": "AU", "country_name": "Australia", "location": {"lat": -33.86, "lon": 151.2}},
                   "as": {"number": 16509, "organization": {"name": "Amazon.com, Inc."}}})
        );
        assert_eq!(doc["related"]["ip"], json!(["10.0.0.71", "52.95.128.179"]));
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

    fn events(family: &str) -> Vec<Event> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/{family}/events.ndjson"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn expected(family: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/{family}/expected.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The fixtures' `FLOW_LOG_FORMATS`, as their README gives it.
    fn fixture_config() -> FlowLogConfig {
        let formats = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vpcflow/FLOW_LOG_FORMATS.json"),
        )
        .unwrap();
        FlowLogConfig::from_lookup(|name| (name == "FLOW_LOG_FORMATS").then(|| formats.clone())).unwrap()
    }

    /// Indexes every flow event of the fixtures as the handler will (first `_id` wins, as
    /// `create` does), and returns the documents.
    fn indexed() -> Vec<(String, Value)> {
        let config = fixture_config();
        let mut seen = BTreeSet::new();
        let mut docs = Vec::new();
        for e in events("vpcflow") {
            let format = config.format_for(&e.group);
            let Some(parsed) = config.recognise(format, &e.message) else {
                continue;
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
            write_flow_item(&mut out, "cwl", &meta, &e.message, &parsed, false, None);
            let (action, doc) = split_item(&out);
            check_document(&doc, VPCFLOW_FIELDS, &[EXTRA_PREFIX]).unwrap_or_else(|err| panic!("{}: {err}", e.fixture));
            let id = action["create"]["_id"].as_str().unwrap().to_owned();
            if seen.insert(id) {
                docs.push((action["create"]["_index"].as_str().unwrap().to_owned(), doc));
            }
        }
        docs
    }

    #[test]
    fn the_fixtures_aggregate_to_the_oracle() {
        let docs = indexed();
        let expected = expected("vpcflow");
        let by = |key: fn(&Value) -> Option<String>, value: fn(&Value) -> u64| {
            let mut m: BTreeMap<String, u64> = BTreeMap::new();
            for (_, d) in &docs {
                if let Some(k) = key(d) {
                    *m.entry(k).or_default() += value(d);
                }
            }
            serde_json::to_value(m).unwrap()
        };
        let bytes = |d: &Value| d["source"]["bytes"].as_u64().unwrap_or(0);
        let one = |_: &Value| 1;
        assert_eq!(json!(docs.len()), expected["documents"]);
        assert_eq!(
            json!(docs.iter().filter(|(_, d)| d.get("@parse_error").is_some()).count()),
            expected["parse_errors"]
        );
        assert_eq!(
            json!(
                docs.iter()
                    .filter(|(_, d)| d["aws"]["vpcflow"]["no_data"] == true)
                    .count()
            ),
            expected["no_data"]
        );
        let mut indices: BTreeMap<String, u64> = BTreeMap::new();
        for (index, _) in &docs {
            *indices.entry(index.clone()).or_default() += 1;
        }
        assert_eq!(serde_json::to_value(indices).unwrap(), expected["documents_by_index"]);
        assert_eq!(
            by(|d| d["@timestamp"].as_str().map(|t| t[..10].to_owned()), bytes),
            expected["bytes_by_day"]
        );
        assert_eq!(
            by(|d| d["source"]["ip"].as_str().map(str::to_owned), bytes),
            expected["bytes_by_source_ip"]
        );
        assert_eq!(
            by(|d| d["source"]["ip"].as_str().map(str::to_owned), one),
            expected["flows_by_source_ip"]
        );
        assert_eq!(
            by(
                |d| {
                    let port = d["destination"]["port"].as_u64();
                    port.filter(|_| d["event"]["action"] == "reject").map(|p| p.to_string())
                },
                one
            ),
            expected["rejected_by_destination_port"]
        );
        assert_eq!(
            by(|d| d["network"]["direction"].as_str().map(str::to_owned), bytes),
            expected["bytes_by_direction"]
        );
        assert_eq!(
            by(|d| d["network"]["transport"].as_str().map(str::to_owned), one),
            expected["flows_by_transport"]
        );
        assert_eq!(
            by(|d| d["event"]["action"].as_str().map(str::to_owned), one),
            expected["flows_by_action"]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any line in a flow-log group becomes exactly one item whose document fits the
        /// template, and keeps the line when it does not parse: never a panic, never lost.
        #[test]
        fn any_line_becomes_one_fitting_document(
            words in proptest::collection::vec(
                prop_oneof!["-", "[0-9]{1,20}", "[!-~]{1,10}", "(10|172|192)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}", "ACCEPT|REJECT|OK|NODATA|SKIPDATA"],
                10..18,
            ),
            custom in proptest::bool::ANY,
        ) {
            let line = words.join(" ");
            let format = if custom {
                FlowFormat::parse("${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start} ${end} ${tcp-flags} ${traffic-path} ${pkt-srcaddr} ${flow-direction} ${type} ${future}").unwrap()
            } else {
                FlowFormat::default_v2()
            };
            let mut out = Vec::new();
            let parsed = format.parse_record(&line);
            write_flow_item(&mut out, "cwl", &META, &line, &parsed, false, None);
            let (action, doc) = split_item(&out);
            prop_assert!(action["create"]["_index"].as_str().unwrap().starts_with("cwl-vpcflow-"));
            if let Err(e) = check_document(&doc, VPCFLOW_FIELDS, &[EXTRA_PREFIX]) {
                prop_assert!(false, "{}: {}", e, doc);
            }
            if parsed.is_err() {
                prop_assert_eq!(doc["@message"].as_str(), Some(line.as_str()));
                prop_assert!(doc["@parse_error"].is_string());
            }
        }
    }
}
