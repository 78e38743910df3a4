#!/usr/bin/env python3
"""Regenerate fixtures/vpcflow/ and fixtures/guardduty/ from ../shared/log-samples/.

Usage: python3 scripts/make-logtype-fixtures.py [--samples ../shared/log-samples]

Copies the samples the parsers are tested on (byte for byte), builds CloudWatch Logs `awslogs`
events from them the way make-fixtures.py does (its Fixtures helper: gzip mtime 0, base64,
deterministic event ids), a Kinesis event mixing CloudTrail, flow and GuardDuty envelopes,
`events.ndjson` (every decoded log event, what the Rust tests read), `FLOW_LOG_FORMATS.json`
(the configuration the flow fixtures need) and `expected.json`: the dashboards' aggregations,
computed here from the decoded fixtures without the crate, with the dedupe the `_id`s imply.
It also rewrites the log-types section of fixtures/README.md.
"""

import argparse
import base64
import collections
import datetime
import fnmatch
import gzip
import importlib.util
import ipaddress
import json
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures")
VPC = os.path.join(OUT, "vpcflow")
GD = os.path.join(OUT, "guardduty")
RESOLVER = os.path.join(OUT, "resolver")
WAF = os.path.join(OUT, "waf")
FALLBACK_MS = 1_700_000_000_000
PREFIX = "cwl"
BEGIN, END = "<!-- logtypes:begin -->", "<!-- logtypes:end -->"

spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(ROOT, "scripts", "make-fixtures.py"))
mf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mf)

DEFAULT_FIELDS = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
                  "start end action log-status").split()

# Where each flow sample goes: (fixture, sample, log group, owner, log stream). Groups under
# /aws/vpc/flowlogs/ get their format from FLOW_LOG_FORMATS; /central/network/eni-traffic
# matches neither FLOW_LOG_GROUPS' default *flow* nor a format: its records are recognised by shape.
FLOW = [
    ("awsdocs-v2-default.json", "awsdocs-v2-default.log", "/aws/vpc/flowlogs", "123456789010", "eni-1235b8ca123456789-all"),
    ("clo-v2-default.json", "clo-v2-default.log", "/central/network/eni-traffic", "123456789012", "eni-09656c86b9be083a6-all"),
    ("awsdocs-v3-tcp-flags.json", "awsdocs-v3-tcp-flags.log", "/aws/vpc/flowlogs/v3-tcp-flags", "123456789010", "eni-1235b8ca123456789-all"),
    ("awsdocs-nat-gateway-eni.json", "awsdocs-nat-gateway-eni.log", "/aws/vpc/flowlogs/nat-gateway", "123456789010", "eni-1235b8ca123456789-all"),
    ("awsdocs-nat-instance-eni.json", "awsdocs-nat-instance-eni.log", "/aws/vpc/flowlogs/nat-instance", "123456789010", "eni-1111aaaa2222bbbb3-all"),
    ("awsdocs-v3-transit-gateway.json", "awsdocs-v3-transit-gateway.log", "/aws/vpc/flowlogs/v3-transit-gateway", "123456789010", "eni-33333333333333333-all"),
    ("awsdocs-v5-service-traffic-path.json", "awsdocs-v5-service-traffic-path.log", "/aws/vpc/flowlogs/v5-service", "123456789012", "eni-1235b8ca123456789-all"),
    ("otel-ecs-fields.json", "otel-ecs-fields.log", "/aws/vpc/flowlogs/v7-ecs", "123456789012", "eni-0abc1234def567890-all"),
]
# The NAT samples share a format: one glob entry covers both groups.
FORMAT_KEYS = {
    "awsdocs-v3-tcp-flags.format": "/aws/vpc/flowlogs/v3-tcp-flags",
    "awsdocs-nat-gateway-eni.format": "/aws/vpc/flowlogs/nat-*",
    "awsdocs-v3-transit-gateway.format": "/aws/vpc/flowlogs/v3-transit-gateway",
    "awsdocs-v5-service-traffic-path.format": "/aws/vpc/flowlogs/v5-service",
    "otel-ecs-fields.format": "/aws/vpc/flowlogs/v7-ecs",
}

GUARDDUTY_GROUP = "/aws/events/guardduty"
IANA = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}

LICENCES = {
    "awsdocs": "awsdocs/amazon-vpc-user-guide @ a1298ce (CC-BY-SA-4.0; sample code MIT-0): © Amazon.com, Inc. or its affiliates",
    "clo": "aws-solutions/centralized-logging-with-opensearch @ fa9ef4e (Apache-2.0)",
    "otel": "open-telemetry/opentelemetry-collector-contrib (Apache-2.0)",
}


def copy(src_dir, names, dst):
    for name in names:
        shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst, name))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def decode(data):
    return json.loads(gzip.decompress(base64.b64decode(data)))


def seconds(v):
    return int(v) if v is not None and re.fullmatch(r"\+?[0-9]+", v) and int(v) <= 253_402_300_799 else None


def utc_day(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


def flow_timestamp_ms(fields, message):
    values = message.split(" ")
    rec = dict(zip(fields, values)) if len(values) == len(fields) else {}
    t = seconds(rec.get("end")) or seconds(rec.get("start"))
    return t * 1000 if t else FALLBACK_MS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", default=os.path.join(ROOT, "..", "shared", "log-samples"))
    args = parser.parse_args()
    samples = os.path.abspath(args.samples)
    for d in (VPC, GD, RESOLVER, WAF):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)

    # Raw copies, byte for byte.
    vpc_src = os.path.join(samples, "vpc-flow")
    copy(vpc_src, sorted(n for n in os.listdir(vpc_src) if n.endswith((".log", ".format"))), VPC)
    copy(os.path.join(vpc_src, "cwl-subscription"), ["otel-valid_vpc_flow_cw.json"], VPC)
    gd_src = os.path.join(samples, "guardduty")
    for sub in ("finding", "eventbridge", "panther-normalized"):
        copy(os.path.join(gd_src, sub), sorted(os.listdir(os.path.join(gd_src, sub))), GD)

    copy(os.path.join(samples, "route53-resolver"), sorted(n for n in os.listdir(os.path.join(samples, "route53-resolver"))
                                                          if n.endswith(".ndjson")), RESOLVER)
    copy(os.path.join(samples, "waf"), sorted(os.listdir(os.path.join(samples, "waf"))), WAF)

    formats = {}
    for name, key in FORMAT_KEYS.items():
        fields = read(os.path.join(VPC, name)).split()
        formats[key] = " ".join("${" + f + "}" for f in fields)
    with open(os.path.join(VPC, "FLOW_LOG_FORMATS.json"), "w") as f:
        json.dump(formats, f, indent=1)
        f.write("\n")

    fx = mf.Fixtures()
    fx.serial = 900  # event ids 36000901..., apart from the CloudTrail fixtures' 360000xx...
    for fixture, sample, group, owner, stream in FLOW:
        lines = read(os.path.join(VPC, sample)).splitlines()
        fields = flow_fields(group, formats)
        fx.event(f"vpcflow/{fixture}", f"`{sample}` in `{group}`", lines, [sample.split("-")[0]] * len(lines),
                 owner=owner, group=group, stream=stream,
                 timestamps=[flow_timestamp_ms(fields or DEFAULT_FIELDS, l) for l in lines])
    # The OTel subscription payload is already an envelope: only compressed and encoded here.
    raw = read(os.path.join(VPC, "otel-valid_vpc_flow_cw.json")).encode()
    with open(os.path.join(VPC, "otel-valid_vpc_flow_cw.awslogs.json"), "w") as f:
        json.dump({"awslogs": {"data": base64.b64encode(gzip.compress(raw, mtime=0)).decode()}}, f)
        f.write("\n")

    fx.serial = 950
    bare = [mf.minify(json.loads(read(os.path.join(GD, f"aws-samples-automated-response-guardduty_{n}_event.json"))))
            for n in ("ec2", "iam", "s3")]
    panther = read(os.path.join(GD, "panther-guardduty-rule-tests.ndjson")).splitlines()
    wrapped = read(os.path.join(GD, "aws-samples-automated-response-wrapped.ndjson")).splitlines()
    partial = [mf.minify(json.loads(read(os.path.join(GD, "aws-samples-waf-acl-gd2acl_test_event.json"))))]
    for fixture, what, messages, sources in [
        ("findings-bare.json", "bare findings: the three aws-samples findings (compacted) and Panther's eleven",
         bare + panther, ["aws-samples"] * 3 + ["panther"] * len(panther)),
        ("findings-eventbridge.json", "EventBridge `GuardDuty Finding` events: the three wrapped aws-samples findings "
         "(the same versions as in findings-bare.json) and the partial gd2acl event (compacted)",
         wrapped + partial, ["aws-samples"] * 4),
    ]:
        fx.event(f"guardduty/{fixture}", what, messages, sources, owner="123456789012", group=GUARDDUTY_GROUP,
                 stream="guardduty-findings", timestamps=[finding_timestamp_ms(m) for m in messages])

    fx.serial = 970
    queries = [l for n in sorted(os.listdir(RESOLVER)) for l in read(os.path.join(RESOLVER, n)).splitlines() if l.strip()]
    fx.event("resolver/queries.json", "the two Route 53 Resolver query log records (2020 A query, 2021 DNS Firewall block)",
             queries, ["awsdocs-resolver"] * len(queries), owner="111122223333", group="/aws/route53/resolver-query-logs",
             stream="vpc-7example_i-0d15cd0d3example",
             timestamps=[int(parse_time(json.loads(q)["query_timestamp"]).timestamp() * 1000) for q in queries])
    fx.serial = 980
    waf, sources = [], []
    for n, src in [("awsdocs-logging-examples.ndjson", "awsdocs-waf"), ("clo-waf-appsync.log", "clo"),
                   ("otel-valid_log.json", "otel")]:
        for l in read(os.path.join(WAF, n)).splitlines():
            if l.strip():
                waf.append(l)
                sources.append(src)
    fx.event("waf/requests.json", "the nine WAF log records (docs examples, AppSync, CloudFront)", waf, sources,
             owner="123456789012", group="aws-waf-logs-central", stream="us-east-1_hello-world_0",
             timestamps=[json.loads(l)["timestamp"] for l in waf])

    write_kinesis()
    flow_events = write_events("vpcflow", [f"vpcflow/{f[0]}" for f in FLOW] + ["vpcflow/otel-valid_vpc_flow_cw.awslogs.json"],
                               lambda env: flow_fields(env["logGroup"], formats) is not None or env["logGroup"].startswith("/central/"))
    gd_events = write_events("guardduty", ["guardduty/findings-bare.json", "guardduty/findings-eventbridge.json"],
                             lambda env: env["logGroup"] == GUARDDUTY_GROUP)
    write_expected(VPC, flow_oracle(flow_events, formats))
    write_expected(GD, guardduty_oracle(gd_events))
    write_expected(RESOLVER, resolver_oracle(records_of("resolver/queries.json")))
    write_expected(WAF, waf_oracle(records_of("waf/requests.json")))
    write_readme(fx.rows, formats)


def flow_fields(group, formats):
    """The field list the configuration gives a group (exact names first, then globs in
    order, then *flow*), or None when only a record's shape can tell."""
    if group in formats:
        return formats[group].replace("${", "").replace("}", "").split()
    for key, fmt in formats.items():
        if fnmatch.fnmatchcase(group, key):
            return fmt.replace("${", "").replace("}", "").split()
    return DEFAULT_FIELDS if fnmatch.fnmatchcase(group, "*flow*") else None


def finding_of(message):
    obj = json.loads(message)
    if isinstance(obj.get("detail"), dict) and obj.get("detail-type", "GuardDuty Finding") == "GuardDuty Finding":
        return obj["detail"]
    return obj


def finding_timestamp_ms(message):
    t = parse_time(finding_of(message).get("updatedAt"))
    return int(t.timestamp() * 1000) if t else FALLBACK_MS


def parse_time(s):
    if not isinstance(s, str):
        return None
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?", s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    t = datetime.datetime(y, mo, d, h, mi, sec, frac, datetime.timezone.utc)
    tz = m.group(8)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t -= sign * datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return t


def write_kinesis():
    """A Kinesis batch of three CloudWatch Logs envelopes: CloudTrail, flow records, GuardDuty
    findings. The flow and GuardDuty envelopes are those of their own fixtures: indexing both
    is a redelivery, and must add nothing."""
    def data_of(name):
        with open(os.path.join(OUT, name)) as f:
            return json.load(f)["awslogs"]["data"]

    names = ["multi-region-111122223333-us-east-1.json", "vpcflow/awsdocs-v2-default.json",
             "guardduty/findings-eventbridge.json"]
    records = [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"mixed-{n}",
                    "sequenceNumber": f"4959100000000000000000000000000000000000000000000000000{n}",
                    "data": data_of(name), "approximateArrivalTimestamp": 1705277200.5 + n},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"shardId-000000000001:4959100000000000000000000000000000000000000000000000000{n}",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::111122223333:role/cwl-indexer",
        "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:111122223333:stream/cwl-indexer",
    } for n, name in enumerate(names)]
    with open(os.path.join(VPC, "kinesis-mixed.json"), "w") as f:
        json.dump({"Records": records}, f, indent=1)
        f.write("\n")


def envelopes(name):
    with open(os.path.join(OUT, name)) as f:
        event = json.load(f)
    if "awslogs" in event:
        return [decode(event["awslogs"]["data"])]
    return [decode(r["kinesis"]["data"]) for r in event["Records"]]


def write_events(family, names, wanted):
    """Every log event of the family's fixtures, the Kinesis batch's included, decoded, in
    delivery order: what the Rust tests index."""
    events = []
    for name in names + ["vpcflow/kinesis-mixed.json"]:
        for env in envelopes(name):
            if env["messageType"] != "DATA_MESSAGE" or not wanted(env):
                continue
            for e in env["logEvents"]:
                events.append({"fixture": name, "owner": env["owner"], "group": env["logGroup"],
                               "stream": env["logStream"], "id": e["id"], "timestamp": e["timestamp"],
                               "message": e["message"]})
    with open(os.path.join(OUT, family, "events.ndjson"), "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
    return events


def plausible_default(message):
    v = message.split(" ")
    if len(v) != 14 or v[0] != "2":
        return False
    r = dict(zip(DEFAULT_FIELDS, v))
    return (seconds(r["start"]) is not None and seconds(r["end"]) is not None
            and r["log-status"] in ("OK", "NODATA", "SKIPDATA") and r["action"] in ("-", "ACCEPT", "REJECT")
            and r["interface-id"].startswith("eni-"))


def ip_or_none(v):
    try:
        return str(ipaddress.ip_address(v))
    except (TypeError, ValueError):
        return None


def flow_oracle(events, formats):
    seen, docs = set(), []
    for e in events:
        msg = e["message"]
        if msg.lstrip().startswith(("{", "[")):
            continue
        fields = flow_fields(e["group"], formats)
        if fields is None:
            if not plausible_default(msg):
                continue
            fields = DEFAULT_FIELDS
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        values = msg.split(" ")
        if len(values) != len(fields):
            docs.append({"error": True, "day": utc_day(e["timestamp"])})
            continue
        r = {k: v for k, v in zip(fields, values) if v != "-"}
        start = seconds(r.get("start"))
        day = utc_day(start * 1000) if start is not None else utc_day(e["timestamp"])
        docs.append({
            "error": False, "day": day, "bytes": int(r["bytes"]) if "bytes" in r else 0,
            "src": ip_or_none(r.get("srcaddr")), "dstport": r.get("dstport"), "action": r.get("action"),
            "direction": r.get("flow-direction"), "no_data": r.get("log-status") in ("NODATA", "SKIPDATA"),
            "transport": IANA[int(r["protocol"])] if "protocol" in r else None,
        })

    def agg(key, value=lambda d: 1):
        out = collections.Counter()
        for d in docs:
            k = key(d)
            if k is not None:
                out[k] += value(d)
        return dict(sorted(out.items()))

    return {
        "documents": len(docs),
        "parse_errors": sum(d["error"] for d in docs),
        "no_data": sum(d.get("no_data", False) for d in docs),
        "documents_by_index": agg(lambda d: f"{PREFIX}-vpcflow-" + d["day"].replace("-", ".")),
        "bytes_by_day": agg(lambda d: d["day"], lambda d: d.get("bytes", 0)),
        "bytes_by_source_ip": agg(lambda d: d.get("src"), lambda d: d["bytes"]),
        "flows_by_source_ip": agg(lambda d: d.get("src")),
        "rejected_by_destination_port": agg(lambda d: d["dstport"] if d.get("action") == "REJECT" and d.get("dstport") else None),
        "bytes_by_direction": agg(lambda d: d.get("direction"), lambda d: d["bytes"]),
        "flows_by_transport": agg(lambda d: d.get("transport")),
        "flows_by_action": agg(lambda d: d["action"].lower() if d.get("action") in ("ACCEPT", "REJECT") else None),
    }


def label(severity):
    if isinstance(severity, bool) or not isinstance(severity, (int, float)) or not 0 <= severity <= 10:
        return None
    return "critical" if severity >= 9 else "high" if severity >= 7 else "medium" if severity >= 4 else "low"


def resource_ids(resource):
    if not isinstance(resource, dict):
        return []
    def get(obj, key):
        v = resource.get(obj)
        v = v.get(key) if isinstance(v, dict) else None
        return v if isinstance(v, str) else None
    one = {"Instance": [get("instanceDetails", "instanceId")], "AccessKey": [get("accessKeyDetails", "accessKeyId")],
           "EKSCluster": [get("eksClusterDetails", "name")], "ECSCluster": [get("ecsClusterDetails", "name")],
           "Lambda": [get("lambdaDetails", "functionName")], "RDSDBInstance": [get("rdsDbInstanceDetails", "dbInstanceIdentifier")]}
    buckets = [b["name"] for b in resource.get("s3BucketDetails") or [] if isinstance(b, dict) and isinstance(b.get("name"), str)]
    kind = resource.get("resourceType")
    by_type = buckets if kind == "S3Bucket" else [i for i in one.get(kind, []) if i]
    if by_type:
        return by_type
    return [i for ids in one.values() for i in ids if i] + buckets


def actor_ip(finding):
    action = (finding.get("service") or {}).get("action")
    for kind in (action or {}).values():
        if not isinstance(kind, dict):
            continue
        details = [kind.get("remoteIpDetails")] + [p.get("remoteIpDetails") for p in kind.get("portProbeDetails") or []]
        for d in details:
            if isinstance(d, dict):
                ip = ip_or_none(d.get("ipAddressV4", d.get("ipAddressV6")))
                if ip:
                    return ip
    return None


def guardduty_oracle(events):
    seen, docs = set(), []
    for e in events:
        f = finding_of(e["message"])
        updated = f.get("updatedAt")
        doc_id = f"{f['id']}:{updated}" if isinstance(updated, str) and f["id"] and len(f["id"]) + 1 + len(updated) <= 512 else e["id"]
        if doc_id in seen:
            continue
        seen.add(doc_id)
        t = parse_time(updated)
        day = t.strftime("%Y-%m-%d") if t else utc_day(e["timestamp"])
        resource = f.get("resource")
        docs.append({"day": day, "label": label(f.get("severity")), "type": f["type"],
                     "purpose": f["type"].split(":")[0] if ":" in f["type"] and "/" in f["type"] else None,
                     "rtype": resource.get("resourceType") if isinstance(resource, dict) else None,
                     "ids": resource_ids(resource), "actor": actor_ip(f)})

    def agg(keys):
        out = collections.Counter(k for d in docs for k in keys(d) if k is not None)
        return dict(sorted(out.items()))

    return {
        "documents": len(docs),
        "findings_by_severity_label": agg(lambda d: [d["label"]]),
        "findings_by_day_and_severity_label": agg(lambda d: [f"{d['day']} {d['label']}"] if d["label"] else []),
        "findings_by_type": agg(lambda d: [d["type"]]),
        "findings_by_threat_purpose": agg(lambda d: [d["purpose"]]),
        "findings_by_resource_type": agg(lambda d: [d["rtype"]]),
        "findings_by_resource_id": agg(lambda d: d["ids"]),
        "findings_by_actor_ip": agg(lambda d: [d["actor"]]),
    }


def records_of(name):
    """The records of a one-envelope fixture, parsed."""
    return [json.loads(e["message"]) for env in envelopes(name) for e in env["logEvents"]]


def counter(values):
    return dict(sorted(collections.Counter(v for v in values if v not in (None, "")).items()))


def resolver_oracle(queries):
    """The Resolver dashboard's aggregations, from the raw query log records: one document each,
    on the day of query_timestamp."""
    return {
        "documents": len(queries),
        "queries_by_day": counter(q["query_timestamp"][:10] for q in queries),
        "queries_by_name": counter(q.get("query_name") for q in queries),
        "queries_by_response_code": counter(q.get("rcode") for q in queries),
        "queries_by_source_ip": counter(q.get("srcaddr") for q in queries),
        "queries_by_firewall_action": counter(q.get("firewall_rule_action") for q in queries),
    }


def waf_oracle(requests):
    """The WAF dashboard's aggregations, from the raw WAF log records: one document each, on the
    day of timestamp; event.action is the action in lower case."""
    day = lambda r: utc_day(r["timestamp"])
    http = lambda r: r.get("httpRequest") or {}
    return {
        "documents": len(requests),
        "requests_by_day_and_action": counter(f"{day(r)} {r['action'].lower()}" for r in requests),
        "requests_by_terminating_rule": counter(r.get("terminatingRuleId") for r in requests),
        "requests_by_client_ip": counter(http(r).get("clientIp") for r in requests),
        "requests_by_country": counter(http(r).get("country") for r in requests),
        # An empty URI is what the record says, and is indexed (a bucket of its own).
        "requests_by_uri": dict(sorted(collections.Counter(
            http(r)["uri"] for r in requests if isinstance(http(r).get("uri"), str)).items())),
    }


def write_expected(path, expected):
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


def write_readme(rows, formats):
    src = {"awsdocs": "awsdocs/amazon-vpc-user-guide (CC-BY-SA-4.0)", "clo": "aws-solutions/centralized-logging-with-opensearch (Apache-2.0)",
           "otel": "open-telemetry/opentelemetry-collector-contrib (Apache-2.0)", "aws-samples": "aws-samples/* (MIT-0)",
           "panther": "panther-labs/panther-analysis (Apache-2.0)",
           "awsdocs-resolver": "awsdocs/amazon-route53-docs (CC-BY-SA-4.0)",
           "awsdocs-waf": "awsdocs/aws-waf-and-shield-advanced-developer-guide (CC-BY-SA-4.0)"}
    out = [
        BEGIN,
        "## VPC Flow Logs, GuardDuty findings, Route 53 Resolver and WAF logs (`vpcflow/`, `guardduty/`, `resolver/`, `waf/`)",
        "",
        "Generated by `python3 scripts/make-logtype-fixtures.py` from `../shared/log-samples/` (its SOURCES.md gives",
        "every file's repository, commit, path and what was changed); do not edit by hand. The `*.log`, `*.format`,",
        "`*.json` and `*.ndjson` samples are byte-identical copies. The `awslogs` events are built with make-fixtures.py's",
        "helper: envelope fields (owner, log group and stream, event ids 360009xx...) are invented; a flow event's",
        "timestamp is its record's `end` (else `start`, else 2023-11-14T22:13:20Z), a finding's its `updatedAt`, a",
        "Resolver record's its `query_timestamp` and a WAF record's its `timestamp`.",
        "",
        "| file | what it holds | events | batch bytes | records from (licence) |",
        "|---|---|---|---|---|",
    ]
    for name, what, n, batch, sources in rows:
        out.append(f"| `{name}` | {what} | {n} | {batch:,} | "
                   + ", ".join(f"{src[k]} ×{v}" for k, v in sorted(sources.items())) + " |")
    out += [
        "",
        "- `vpcflow/FLOW_LOG_FORMATS.json`: the `FLOW_LOG_FORMATS` value these fixtures need (the `.format` files",
        "  in `${field}` form; one glob covers both NAT groups). `/aws/vpc/flowlogs` takes the default format through",
        "  `FLOW_LOG_GROUPS`' default `*flow*`; `/central/network/eni-traffic` matches neither, so its records are",
        "  recognised by their default-format shape. Line 8 of `awsdocs-v3-tcp-flags.log` has two spaces in a row, as",
        "  published: it is kept with `@parse_error`.",
        "- `vpcflow/otel-valid_vpc_flow_cw.awslogs.json`: the OTel subscription payload `otel-valid_vpc_flow_cw.json`,",
        "  gzip-compressed and base64-encoded as CloudWatch Logs sends it (event ids `eventId1`, `eventId2` as published).",
        "- `vpcflow/kinesis-mixed.json`: a Kinesis event whose three records carry the envelopes of",
        "  `multi-region-111122223333-us-east-1.json` (CloudTrail), `vpcflow/awsdocs-v2-default.json` and",
        "  `guardduty/findings-eventbridge.json`: a mixed batch, and for the last two a redelivery that adds nothing.",
        "- `*/events.ndjson`: every decoded log event of the family's fixtures (the Kinesis batch's included), in order;",
        "  `*/expected.json`: the dashboards' aggregations over them (bytes by day, top talkers, rejected flows by",
        "  destination port, traffic by direction; findings by severity and day, top types, affected resources,",
        "  actors; Resolver queries by day, name, response code, source and DNS Firewall action; WAF requests by day",
        "  and action, terminating rule, client, country and URI), computed by the script from the decoded fixtures,",
        "  deduplicated by `_id` as `create` does: the oracle of the dashboards' tests on the real node.",
        "- GuardDuty `_id`s are `<finding id>:<updatedAt>`: the wrapped findings are the same versions as the bare",
        "  ones, and Panther's lines 3-8 share one id and `updatedAt` (their severities differ: 8, 8, 1, 1, 5, 5), so",
        "  the first of each indexes and the rest are answered 409.",
        "",
        "Licences: the `awsdocs-*` flow, Resolver and WAF samples are from the AWS VPC user guide, the Route 53",
        "developer guide and the AWS WAF developer guide, © Amazon.com, Inc. or its affiliates, CC-BY-SA-4.0",
        "(https://creativecommons.org/licenses/by-sa/4.0/); the copies here and the events built from them stay under",
        "CC-BY-SA-4.0 with that attribution (the 2020 Resolver record had its trailing commas removed, as SOURCES.md",
        "says; `awsdocs-resolver-query-log-2020.as-published.txt` is not copied). The EventBridge envelopes of",
        "`aws-samples-automated-response-wrapped.ndjson` follow the AWS GuardDuty user guide's template (CC-BY-SA-4.0,",
        "same attribution). `clo-*`, `otel-*` and `panther-*` are Apache-2.0 (their repositories' LICENSE files; keep",
        "them and any NOTICE with copies handed on); `aws-samples-*` findings are MIT-0. Not copied: the MozDef",
        "GuardDuty records (MPL-2.0, and renamed fields: not GuardDuty's shape).",
        END,
        "",
    ]
    section = "\n".join(out)
    path = os.path.join(OUT, "README.md")
    text = read(path)
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
