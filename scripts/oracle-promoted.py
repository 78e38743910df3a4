#!/usr/bin/env python3
"""Expected terms buckets of the promoted-field dashboards (issue 15, part 5), computed from the fixtures.

    python3 scripts/oracle-promoted.py [--set dashboards|records] [--json FILE]
    python3 scripts/oracle-promoted.py --set dashboards --check URL [--index PATTERN]

An oracle independent of the crate, in the manner of tests/dashboards.rs:

  --set dashboards  (default) every fixtures/*.json Lambda event, decoded (base64, gzip), classified and
                    deduplicated exactly as tests/dashboards.rs `model()` does: a message is a CloudTrail
                    record when it is a JSON object with eventVersion, or with eventSource and eventName;
                    a document's _id is <recipientAccountId>:<eventID> (or the log event id), its day the
                    parsed eventTime (or the log event timestamp); the first document per (day, _id) wins.
                    This is the set the Rust dashboards test indexes.
  --set records     the 1,557 records of fixtures/cloudtrail-records.ndjson, one document each.

For each visualization (a query and a terms aggregation with an optional sub-aggregation), prints every
bucket in the order a terms aggregation returns them (count descending, then key ascending) with its
sub-buckets. The promoted fields' values follow notes/promoted-fields.md: the value at the source path,
arrays transparent, only if it fits the field's type (keyword: strings of at most 1,024 characters,
numbers, booleans); computed fields follow notes/security-analytics-fields.md:

  event.outcome  failure when errorCode is a non-empty string or responseElements.ConsoleLogin is
                 "Failure", else success (CloudTrail records only)
  user.name      userIdentity.userName, else the last /-segment of userIdentity.arn (the rules'
                 @principal_name)

With --check URL, the same documents must already be in the cluster (e.g. `cwl-indexer replay fixtures/*.json`
into a fresh prefix): every bucket's count is compared with a count query the cluster answers today,
a `term` on the raw path (flat_object answers `requestParameters.bucketName:x`) instead of the promoted
field, which does not exist yet. Exits non-zero on any difference.
"""

import argparse
import base64
import collections
import datetime
import glob
import gzip
import json
import os
import re
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SURROGATE = re.compile("[\ud800-\udfff]")
ASSUME = ["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"]

# Each visualization: a title, a filter (a predicate on the record, and the Lucene query the saved
# object would carry), the terms field and an optional sub-aggregation field.
VISUALIZATIONS = [
    ("Top S3 buckets and the calls on them", "", None,
     "aws.cloudtrail.requestParameters.bucketName", "eventName"),
    ("Roles assumed, and by whom (caller ARN)", "eventName:(AssumeRole OR AssumeRoleWithSAML OR AssumeRoleWithWebIdentity)",
     lambda r: r.get("eventName") in ASSUME, "aws.cloudtrail.requestParameters.roleArn", "userIdentity.arn"),
    ("Roles assumed, and by whom (service)", "eventName:(AssumeRole OR AssumeRoleWithSAML OR AssumeRoleWithWebIdentity)",
     lambda r: r.get("eventName") in ASSUME, "aws.cloudtrail.requestParameters.roleArn", "userIdentity.invokedBy"),
    ("Roles assumed, and by whom (user.name)", "eventName:(AssumeRole OR AssumeRoleWithSAML OR AssumeRoleWithWebIdentity)",
     lambda r: r.get("eventName") in ASSUME, "aws.cloudtrail.requestParameters.roleArn", "user.name"),
    ("Instance types launched", "eventName:RunInstances AND event.outcome:success",
     lambda r: r.get("eventName") == "RunInstances" and outcome(r) == "success",
     "aws.cloudtrail.requestParameters.instanceType", None),
    ("Instance types requested (failed launches too)", "eventName:RunInstances",
     lambda r: r.get("eventName") == "RunInstances", "aws.cloudtrail.requestParameters.instanceType", None),
    ("KMS keys accessed", "eventSource:kms.amazonaws.com",
     lambda r: r.get("eventSource") == "kms.amazonaws.com", "aws.cloudtrail.requestParameters.keyId", "eventName"),
    ("Secrets accessed", "eventSource:secretsmanager.amazonaws.com",
     lambda r: r.get("eventSource") == "secretsmanager.amazonaws.com", "aws.cloudtrail.requestParameters.secretId",
     "eventName"),
    ("Failures by principal", "event.outcome:failure",
     lambda r: outcome(r) == "failure", "userIdentity.arn", "errorCode"),
    ("Failures by principal (user.name)", "event.outcome:failure",
     lambda r: outcome(r) == "failure", "user.name", None),
]


def event_time(s):
    """eventTime as the README specifies: RFC 3339, or YYYY-MM-DD[T ]HH:MM:SS[.fff] as UTC, years 1000-9999."""
    if not isinstance(s, str):
        return None
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", s)
    if not m:
        return None
    try:
        t = datetime.datetime(*map(int, m.groups()[:6]), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    tz = m.group(8)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t -= sign * datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return t if 1000 <= t.year <= 9999 else None


def classify(message):
    """The record of a message, or None (text, other JSON, or what the crate cannot parse: lone
    surrogate escapes, which serde_json refuses, and nesting deeper than 100 levels)."""
    try:
        value = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or _has_surrogate(value) or _depth(value) > 100:
        return None
    if "eventVersion" in value or ("eventSource" in value and "eventName" in value):
        return value
    return None


def _depth(v):
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _has_surrogate(v):
    if isinstance(v, str):
        return SURROGATE.search(v) is not None
    if isinstance(v, dict):
        return any(_has_surrogate(k) or _has_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_surrogate(x) for x in v)
    return False


def dashboards_docs():
    docs, seen = [], set()
    for path in sorted(glob.glob(os.path.join(ROOT, "fixtures", "*.json"))):
        with open(path, encoding="utf-8") as f:
            event = json.load(f)
        envelope = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
        if envelope.get("messageType") != "DATA_MESSAGE":
            continue
        for ev in envelope["logEvents"]:
            record = classify(ev["message"])
            t = event_time(record.get("eventTime")) if record else None
            if t is None:
                ms = ev["timestamp"]
                try:
                    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
                    if not 1000 <= t.year <= 9999:
                        raise ValueError
                except (ValueError, OverflowError, OSError):
                    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
            doc_id = None
            if record:
                eid = record.get("eventID")
                if isinstance(eid, str) and eid:
                    acct = record.get("recipientAccountId")
                    doc_id = f"{acct}:{eid}" if isinstance(acct, str) and acct else eid
                    if len(doc_id.encode()) > 512:
                        doc_id = None
            doc_id = doc_id or ev["id"]
            key = (t.date(), doc_id)
            if key in seen:
                continue
            seen.add(key)
            docs.append(record)
    return [d for d in docs if d is not None], len(docs)


def records_docs():
    with open(os.path.join(ROOT, "fixtures", "cloudtrail-records.ndjson"), encoding="utf-8") as f:
        docs = [classify(line) for line in f if line.strip()]
    return [d for d in docs if d is not None], len(docs)


def promoted_types():
    types = {}
    row = re.compile(r"^\|\s*\d+\s*\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*(\w+)\s*\|")
    with open(os.path.join(ROOT, "notes", "promoted-fields.md"), encoding="utf-8") as f:
        for line in f:
            m = row.match(line.strip())
            if m:
                types[m.group(2)] = (m.group(1), m.group(3))
    return types


PROMOTED = promoted_types()


def values_at(tree, parts):
    if not parts:
        return [tree]
    if isinstance(tree, list):
        return [x for item in tree for x in values_at(item, parts)]
    if isinstance(tree, dict) and parts[0] in tree:
        return values_at(tree[parts[0]], parts[1:])
    return []


def keyword_terms(values):
    """The terms a keyword field indexes for these JSON values (ignore_above 1024; objects and null none)."""
    out = set()
    for v in values:
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, list):
                out |= keyword_terms([x])
            elif isinstance(x, bool):
                out.add("true" if x else "false")
            elif isinstance(x, (int, float)):
                out.add(json.dumps(x))
            elif isinstance(x, str) and len(x) <= 1024:
                out.add(x)
    return out


def outcome(r):
    code = r.get("errorCode")
    if isinstance(code, str) and code:
        return "failure"
    re_ = r.get("responseElements")
    if isinstance(re_, dict) and re_.get("ConsoleLogin") == "Failure":
        return "failure"
    return "success"


def user_name(r):
    ui = r.get("userIdentity")
    if not isinstance(ui, dict):
        return None
    if isinstance(ui.get("userName"), str):
        return ui["userName"]
    arn = ui.get("arn")
    if not isinstance(arn, str):
        return None
    last = arn.rsplit("/", 1)[-1]
    return last if last and ":" not in last else None


def terms(r, field):
    if field == "event.outcome":
        return {outcome(r)}
    if field == "user.name":
        n = user_name(r)
        return {n} if n is not None and len(n) <= 1024 else set()
    if field in PROMOTED:
        source, t = PROMOTED[field]
        assert t == "keyword", f"{field}: the oracle handles keyword fields only"
        parts = source.split(".")
        return keyword_terms(values_at(r.get(parts[0]), parts[1:])) if isinstance(r.get(parts[0]), dict) else set()
    parts = field.split(".")
    return keyword_terms(values_at(r, parts))


def buckets(docs, field, sub):
    count = collections.Counter()
    subs = collections.defaultdict(collections.Counter)
    for r in docs:
        for k in terms(r, field):
            count[k] += 1
            if sub:
                for s in terms(r, sub):
                    subs[k][s] += 1
    order = sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"key": k, "doc_count": n,
             **({"sub": [{"key": s, "doc_count": m} for s, m in sorted(subs[k].items(), key=lambda kv: (-kv[1], kv[0]))]}
                if sub else {})} for k, n in order]


def compute(docs):
    out = []
    for title, query, pred, field, sub in VISUALIZATIONS:
        selected = [r for r in docs if pred is None or pred(r)]
        out.append({"title": title, "query": query, "field": field, "sub_field": sub,
                    "matching_documents": len(selected),
                    "documents_with_a_term": sum(1 for r in selected if terms(r, field)),
                    "buckets": buckets(selected, field, sub)})
    return out


# ---------------------------------------------------------------------------------------------
# --check: the same counts from the cluster, through the raw paths it answers today.

def raw_path(field):
    if field in PROMOTED:
        return PROMOTED[field][0]
    return field


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def clause(field, value):
    """A filter for `field = value` that today's mapping answers (computed fields spelled out)."""
    if field == "event.outcome":
        failure = {"bool": {"should": [
            {"bool": {"filter": [{"exists": {"field": "errorCode"}}],
                      "must_not": [{"term": {"errorCode": ""}}]}},
            {"term": {"responseElements.ConsoleLogin": "Failure"}}], "minimum_should_match": 1}}
        return failure if value == "failure" else {"bool": {"must_not": [failure]}}
    if field == "user.name":
        return None  # derived from two fields; checked through its parts only (see below)
    return {"term": {raw_path(field): value}}


def query_filter(title):
    """The visualization's query as filters today's mapping answers."""
    if title.startswith("Instance types launched"):
        return [{"term": {"eventName": "RunInstances"}}, clause("event.outcome", "success")]
    if title.startswith("Instance types requested"):
        return [{"term": {"eventName": "RunInstances"}}]
    if title.startswith("Roles assumed"):
        return [{"terms": {"eventName": ASSUME}}]
    if title == "KMS keys accessed":
        return [{"term": {"eventSource": "kms.amazonaws.com"}}]
    if title == "Secrets accessed":
        return [{"term": {"eventSource": "secretsmanager.amazonaws.com"}}]
    if title.startswith("Failures"):
        return [clause("event.outcome", "failure")]
    assert title.startswith("Top S3 buckets"), f"no filter for {title}"
    return []


def check(url, index, results):
    total_bad = 0
    # Only CloudTrail documents: `eventVersion` or both eventSource and eventName exist on every one.
    cloudtrail = {"bool": {"should": [{"exists": {"field": "eventVersion"}},
                                      {"bool": {"filter": [{"exists": {"field": "eventSource"}},
                                                           {"exists": {"field": "eventName"}}]}}],
                           "minimum_should_match": 1}}
    for v in results:
        if v["field"] == "user.name" or v["sub_field"] == "user.name":
            print(f"skip  {v['title']}: user.name is computed from two fields; its parts are checked elsewhere")
            continue
        bad = 0
        base = [cloudtrail] + query_filter(v["title"])
        n = post(f"{url}/{index}/_count", {"query": {"bool": {"filter": base}}})["count"]
        if n != v["matching_documents"]:
            print(f"DIFF  {v['title']}: {n} matching documents in the cluster, oracle {v['matching_documents']}")
            bad += 1
        for b in v["buckets"]:
            q = base + [clause(v["field"], b["key"])]
            got = post(f"{url}/{index}/_count", {"query": {"bool": {"filter": q}}})["count"]
            if got != b["doc_count"]:
                print(f"DIFF  {v['title']}: {b['key']}: cluster {got}, oracle {b['doc_count']}")
                bad += 1
            for s in b.get("sub", []):
                got = post(f"{url}/{index}/_count",
                           {"query": {"bool": {"filter": q + [clause(v["sub_field"], s["key"])]}}})["count"]
                if got != s["doc_count"]:
                    print(f"DIFF  {v['title']}: {b['key']} / {s['key']}: cluster {got}, oracle {s['doc_count']}")
                    bad += 1
        # Completeness: no bucket is missing from the oracle. Keyword fields: the cluster's own
        # terms aggregation. flat_object paths: documents where the raw path exists, against the
        # documents the oracle gives a term (they differ only by values the shape check leaves out).
        raw = raw_path(v["field"])
        if raw == v["field"]:
            agg = post(f"{url}/{index}/_search", {"size": 0, "query": {"bool": {"filter": base}},
                                                   "aggs": {"b": {"terms": {"field": raw, "size": 10000}}}})
            got = sorted((b["key"], b["doc_count"]) for b in agg["aggregations"]["b"]["buckets"])
            want = sorted((b["key"], b["doc_count"]) for b in v["buckets"])
            if got != want:
                print(f"DIFF  {v['title']}: the cluster's terms on {raw} differ: {sorted(set(got) ^ set(want))[:5]}")
                bad += 1
        else:
            n = post(f"{url}/{index}/_count", {"query": {"bool": {"filter": base + [{"exists": {"field": raw}}]}}})["count"]
            with_term = v["documents_with_a_term"]
            if n != with_term:
                print(f"note  {v['title']}: {n} documents hold {raw}, {with_term} get a promoted value "
                      f"({n - with_term} left out by the shape check)")
        checked = len(v["buckets"]) + sum(len(b.get("sub", [])) for b in v["buckets"])
        print(f"{'ok  ' if not bad else 'FAIL'}  {v['title']}: {v['matching_documents']} documents, "
              f"{len(v['buckets'])} buckets and {checked - len(v['buckets'])} sub-buckets checked, {bad} differ")
        total_bad += bad
    return total_bad


def markdown(name, total, cloudtrail, results, top):
    print(f"Fixture set `{name}`: {total} documents, {cloudtrail} of them CloudTrail records.\n")
    for v in results:
        print(f"### {v['title']}\n")
        print(f"Query `{v['query'] or '(none)'}`: {v['matching_documents']} documents; terms on `{v['field']}`"
              + (f", sub-terms on `{v['sub_field']}`" if v["sub_field"] else "")
              + f"; {len(v['buckets'])} buckets" + (f" (first {top} shown)" if len(v["buckets"]) > top else "") + ".\n")
        print("| key | documents |" + (" sub-buckets |" if v["sub_field"] else ""))
        print("|---|---|" + ("---|" if v["sub_field"] else ""))
        for b in v["buckets"][:top]:
            subs = ", ".join(f"{s['key']} {s['doc_count']}" for s in b.get("sub", []))
            print(f"| `{b['key']}` | {b['doc_count']} |" + (f" {subs} |" if v["sub_field"] else ""))
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=["dashboards", "records"], default="dashboards")
    ap.add_argument("--json", help="also write the buckets as JSON to this file")
    ap.add_argument("--top", type=int, default=15, help="buckets shown per visualization in the markdown (15)")
    ap.add_argument("--check", metavar="URL", help="compare every count with the cluster at URL")
    ap.add_argument("--index", default="cwl-*", help="with --check: the index pattern holding the set (cwl-*)")
    args = ap.parse_args()
    docs, total = dashboards_docs() if args.set == "dashboards" else records_docs()
    results = compute(docs)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"set": args.set, "documents": total, "cloudtrail_records": len(docs), "visualizations": results},
                      f, indent=1, ensure_ascii=False)
            f.write("\n")
    if args.check:
        sys.exit(1 if check(args.check.rstrip("/"), args.index, results) else 0)
    markdown(args.set, total, len(docs), results, args.top)


if __name__ == "__main__":
    main()
