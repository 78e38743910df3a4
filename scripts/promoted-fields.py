#!/usr/bin/env python3
"""Which subfields of CloudTrail's free-form subtrees are worth promoting to typed, aggregatable fields.

    python3 scripts/promoted-fields.py [--records FILE] [--sigma DIR] [--sa FILE] [--min N] [--all]
    python3 scripts/promoted-fields.py --curated notes/promoted-fields.md

Counts every subfield path of requestParameters, responseElements, additionalEventData and
serviceEventDetails in the record corpus (default fixtures/cloudtrail-records.ndjson, the verbatim copy
of ../shared/cloudtrail-samples/records.ndjson, 1,557 records), the fields the Sigma rules
(../shared/sigma/aws-cloudtrail/*.yml) and our own rules (rules/default.json) test, and the fields of
OpenSearch Security Analytics' CloudTrail log type (../shared/opensearch-security-analytics/
cloudtrail_logtype.json), and prints a ranked markdown table: per path, how many records hold it,
the shapes seen (string, number, bool, null, object, array of scalars, array of objects, empty array),
distinct values, and which rules and log-type fields name it.

Paths are dotted, with arrays transparent, as flat_object addresses them: the CIDRs of an
AuthorizeSecurityGroupIngress are requestParameters.ipPermissions.items.ipRanges.items.cidrIp.
A subtree that is not an object (a JSON string, as re-exported records sometimes hold) is counted
as "<subtree> (not an object)" and not looked into: the indexer wraps it, it promotes nothing.

With --curated FILE, reads the table of FILE (rows `| n | source path | promoted name | type | multi |
why |`), and for each curated field prints how many records would get a value and how many values
would be left out because their shape does not fit the declared type (the shape check the encoder
applies: such a value is not promoted and the document is still indexed). Exits non-zero when a
curated path is never seen and is not named by any rule or log-type field (a typo, most likely), or
when the table has fewer than 40 fields.
"""

import argparse
import collections
import glob
import json
import os
import re
import sys

import yaml  # PyYAML: present on the machine; pip install pyyaml elsewhere

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SUBTREES = ("requestParameters", "responseElements", "additionalEventData", "serviceEventDetails")
# Keyword-like types accept any scalar (the template's keywords take numbers and booleans too);
# long, boolean, ip and date are stricter, as the mapping would be.
TYPES = ("keyword", "long", "boolean", "ip", "date")


def shape(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "object"
    if not v:
        return "array(empty)"
    inner = {shape(x) for x in v}
    if inner <= {"string", "number", "bool", "null"}:
        return "array(scalar)"
    if inner <= {"object", "null"}:
        return "array(object)"
    return "array(mixed)"


def leaves(v, path, out):
    """(path, value) for every value under `v`, arrays transparent; objects and arrays included."""
    out.append((path, v))
    if isinstance(v, dict):
        for k, x in v.items():
            leaves(x, f"{path}.{k}", out)
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)):
                # The array itself is recorded once at `path`; its elements' children share paths.
                sub = []
                leaves(x, path, sub)
                out.extend(sub[1:])


class PathStats:
    def __init__(self):
        self.records = 0  # records holding a non-null value at the path
        self.shapes = collections.Counter()  # shape -> records
        self.values = collections.Counter()  # scalar values (capped) -> occurrences
        self.events = collections.Counter()  # eventName -> records

    def scalars(self):
        return sum(self.values.values())


def count_records(path):
    stats = collections.defaultdict(PathStats)
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for rec in records:
        if not isinstance(rec, dict):
            continue
        for top in SUBTREES:
            if top not in rec or rec[top] is None:
                continue
            tree = rec[top]
            if not isinstance(tree, dict):
                stats[f"{top} (not an object)"].records += 1
                stats[f"{top} (not an object)"].shapes[shape(tree)] += 1
                continue
            seen = collections.defaultdict(set)
            found = []
            leaves(tree, top, found)
            for p, v in found[1:]:
                if v is None:
                    continue
                seen[p].add(shape(v))
                s = stats[p]
                for x in v if isinstance(v, list) else [v]:
                    if isinstance(x, (str, int, float, bool)):
                        s.values[json.dumps(x)[:200]] += 1
            for p, shapes in seen.items():
                s = stats[p]
                s.records += 1
                s.events[str(rec.get("eventName"))] += 1
                for sh in shapes:
                    s.shapes[sh] += 1
    return records, stats


def sigma_fields(directory):
    """field -> set of rule files, for every field a Sigma rule's detection tests."""
    out = collections.defaultdict(set)

    def walk(node, rule):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "condition":
                    continue
                if isinstance(v, (dict, list)) and not _is_values(v):
                    # A named selection (or a list of them): its keys are fields.
                    walk(v, rule)
                else:
                    out[k.split("|")[0]].add(rule)
        elif isinstance(node, list):
            for x in node:
                walk(x, rule)

    for f in sorted(glob.glob(os.path.join(directory, "*.yml"))):
        with open(f, encoding="utf-8") as fh:
            rule = yaml.safe_load(fh)
        for name, sel in (rule.get("detection") or {}).items():
            if name in ("condition", "timeframe"):
                continue
            walk(sel, os.path.basename(f))
    return out


def _is_values(v):
    """A list of scalars (the values of one field), not a list of selections."""
    return isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v)


def own_rule_fields(path):
    out = collections.defaultdict(set)

    def walk(node, rule):
        if isinstance(node, dict):
            if isinstance(node.get("field"), str):
                out[node["field"]].add(rule)
            for v in node.values():
                walk(v, rule)
        elif isinstance(node, list):
            for x in node:
                walk(x, rule)

    with open(path, encoding="utf-8") as f:
        for r in json.load(f)["rules"]:
            walk(r.get("when"), r["id"])
    return out


# Log-type paths that are not where CloudTrail writes the value (AWS's "CloudTrail userIdentity
# element" page): SA's raw path on the left, the record's path on the right.
SA_CORRECTIONS = {
    "userIdentity.webIdFederationData.federatedProvider":
        "userIdentity.sessionContext.webIdFederationData.federatedProvider",
}


def sa_fields(path):
    """raw_field -> ecs name, with SA_CORRECTIONS applied (the corrected path also listed)."""
    with open(path, encoding="utf-8") as f:
        out = {m["raw_field"]: m.get("ecs") for m in json.load(f)["mappings"]}
    for wrong, right in SA_CORRECTIONS.items():
        if wrong in out:
            out[right] = out[wrong]
    return out


def in_subtree(field):
    return field.split(".")[0] in SUBTREES


def fmt_shapes(s):
    return ", ".join(f"{k} {v}" for k, v in sorted(s.shapes.items(), key=lambda kv: -kv[1]))


def ranked(args, records, stats, sigma, own, sa):
    named = {f for f in list(sigma) + list(own) + list(sa) if in_subtree(f) and "." in f}
    rows = []
    for p, s in stats.items():
        if s.records >= args.min or p in named or args.all:
            rows.append(p)
    for p in named:
        if p not in stats:
            rows.append(p)
    rows.sort(key=lambda p: (-stats[p].records if p in stats else 0, p))
    print(f"Records: {len(records)} from {os.path.relpath(args.records, ROOT)}; "
          f"Sigma rules: {len({r for rs in sigma.values() for r in rs})}; "
          f"Security Analytics fields: {len(sa)}; paths seen under the four subtrees: {len(stats)}.\n")
    print("Subtree-level references (a whole subtree, not a path): "
          + "; ".join(f"`{f}`: {', '.join(sorted(sigma.get(f, set()) | own.get(f, set())) or 'SA ' + str(sa.get(f)))}"
                      for f in sorted(set(sigma) | set(own) | set(sa)) if f in SUBTREES) + "\n")
    print("| # | path | records | shapes (records) | distinct | top values | Sigma | ours | SA |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(rows, 1):
        s = stats.get(p, PathStats())
        top = ", ".join(f"{v[:40]}×{n}" for v, n in s.values.most_common(2))
        print(f"| {i} | `{p}` | {s.records} | {fmt_shapes(s) or '(never seen)'} | {len(s.values)} | {top} "
              f"| {len(sigma.get(p, ()))} | {len(own.get(p, ()))} | {'yes' if p in sa else ''} |")


ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|(.*)\|\s*$")


def fits(t, v):
    """Whether one scalar `v` fits type `t` the way the encoder's shape check will decide."""
    if isinstance(v, (dict, list)) or v is None:
        return False
    if t == "keyword":
        return True
    if t == "long":
        return isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, str) and re.fullmatch(r"-?\d{1,18}", v))
    if t == "boolean":
        return isinstance(v, bool) or v in ("true", "false")
    if t == "ip":
        import ipaddress
        try:
            ipaddress.ip_address(v if isinstance(v, str) else "")
            return True
        except ValueError:
            return False
    if t == "date":
        return isinstance(v, str) and re.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2})?", v) is not None
    raise ValueError(t)


def values_at(tree, parts):
    """Every value at a dotted path, arrays transparent (a list value is returned as one value)."""
    if not parts:
        return [tree]
    if isinstance(tree, list):
        return [x for item in tree for x in values_at(item, parts)]
    if isinstance(tree, dict) and parts[0] in tree:
        return values_at(tree[parts[0]], parts[1:])
    return []


def curated(args, records, stats, sigma, own, sa):
    rows = []
    with open(args.curated, encoding="utf-8") as f:
        for line in f:
            m = ROW.match(line.strip())
            if m:
                rows.append(m.groups())
    problems = []
    names = set()
    seen_paths = set()
    total_ok = total_bad = 0
    print(f"Curated fields in {os.path.relpath(args.curated, ROOT)}: {len(rows)}\n")
    print("| # | source path | type | records with a value | values promoted | values refused (shape) | Sigma | ours | SA |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, src, name, t, multi, _ in rows:
        if t not in TYPES:
            problems.append(f"{src}: type {t} is not one of {TYPES}")
            continue
        if name in names:
            problems.append(f"{name}: promoted twice")
        names.add(name)
        parts = src.split(".")
        with_value, ok, bad = 0, 0, 0
        for rec in records:
            if not isinstance(rec, dict) or not isinstance(rec.get(parts[0]), dict):
                continue
            got = False
            for v in values_at(rec[parts[0]], parts[1:]):
                items = v if isinstance(v, list) else [v]
                for x in items:
                    if x is None:
                        continue
                    if fits(t, x):
                        ok += 1
                        got = True
                    else:
                        bad += 1
                if isinstance(v, list) and multi != "yes" and len(v) > 1:
                    problems.append(f"{src}: an array of {len(v)} in a record, but not marked multi-valued")
            with_value += got
        total_ok += ok
        total_bad += bad
        if with_value:
            seen_paths.add(src)
        if not name == "aws.cloudtrail." + src:
            problems.append(f"{src}: promoted as {name}, not aws.cloudtrail.{src}")
        if with_value == 0 and src not in sigma and src not in own and src not in sa:
            problems.append(f"{src}: never seen in the records and named by no rule or log-type field")
        print(f"| {n} | `{src}` | {t} | {with_value} | {ok} | {bad} | {len(sigma.get(src, ()))} "
              f"| {len(own.get(src, ()))} | {'yes' if src in sa else ''} |")
    for a in names:
        for b in names:
            if b.startswith(a + "."):
                problems.append(f"{a} is a prefix of {b}: a field and an object cannot share a path")
    print(f"\n{len(rows)} fields: {sum(1 for r in rows if r[1] in seen_paths)} seen in the records; "
          f"{total_ok} values promoted, {total_bad} left out by the shape check.")
    if len(rows) < 40:
        problems.append(f"only {len(rows)} curated fields; issue 15 asks for at least 40")
    if args.rust:
        rust(rows)
    if problems:
        print("\nProblems:", *sorted(set(problems)), sep="\n- ")
        return 1
    return 0


def rust(rows):
    """The curated table as the Rust const of the draft."""
    kinds = {"keyword": "Keyword", "long": "Long", "boolean": "Boolean", "ip": "Ip", "date": "Date"}
    print("\n```rust")
    print("pub const PROMOTED: &[(&str, Promote)] = &[")
    for _, src, _, t, _, _ in rows:
        print(f'    ("{src}", Promote::{kinds[t]}),')
    print("];")
    print("```")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", default=os.path.join(ROOT, "fixtures", "cloudtrail-records.ndjson"))
    ap.add_argument("--sigma", default=os.path.join(SHARED, "sigma", "aws-cloudtrail"))
    ap.add_argument("--rules", default=os.path.join(ROOT, "rules", "default.json"))
    ap.add_argument("--sa", default=os.path.join(SHARED, "opensearch-security-analytics", "cloudtrail_logtype.json"))
    ap.add_argument("--min", type=int, default=5, help="least records for an unreferenced path to be listed (5)")
    ap.add_argument("--all", action="store_true", help="list every path")
    ap.add_argument("--curated", help="check the curated table of this markdown file instead")
    ap.add_argument("--rust", action="store_true", help="with --curated: also print the table as a Rust const")
    args = ap.parse_args()
    for p in (args.records, args.sigma, args.sa):
        if not os.path.exists(p):
            sys.exit(f"promoted-fields.py: {p} not found (the shared material lives in ../shared)")
    records, stats = count_records(args.records)
    sigma = sigma_fields(args.sigma)
    own = own_rule_fields(args.rules)
    sa = sa_fields(args.sa)
    if args.curated:
        sys.exit(curated(args, records, stats, sigma, own, sa))
    ranked(args, records, stats, sigma, own, sa)


if __name__ == "__main__":
    main()
