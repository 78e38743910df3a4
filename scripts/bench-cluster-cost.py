#!/usr/bin/env python3
"""Cluster cost: what the documents cost the cluster to store and to index, ours against the console's.

    python3 scripts/bench-cluster-cost.py --url URL --cli BIN [--rounds N] [--projections]

Run by scripts/bench-cluster-cost.sh (which starts the node and builds the payloads); see BENCHMARKS.md.
The end-to-end workload (target/bench/payloads/e2e/*.json: 8 realistic 1 MB CloudWatch batches, 4,932
CloudTrail records) is turned into bulk bodies twice:

  ours     `cwl-indexer replay --dry-run` (detections and GeoIP on, as deployed), into the indexer's
           own template (`cwl-indexer setup`, 0 replicas), prefix cwl-benchcost
  console  the console's Node.js function (scripts/bench-node-console.js --body: its documents, `@message`
           kept, `index` actions with the log event id), no template, dynamic mapping as the function
           gets, index console-benchcost-YYYY.MM.DD; any `_type` is stripped (OpenSearch 2 refuses it)

Each round, per variant: delete the variant's indices, post its bodies one at a time over one
connection, uncompressed (the console function does not compress; ours would be gzip in production,
which only moves CPU), and time that (wall clock, first byte sent to last answer); count the documents
the node rejects (bulk item errors, by reason); refresh, force-merge to one segment, then read the
primaries' store bytes, document count and the node's own indexing time (`indexing.index_time_in_millis`).
Rounds alternate the variants so each ratio comes from one stretch of the machine.

--projections adds variants that are *not* the indexer's output yet, to see where issue 15 lands
before src/ implements it: `ours-no-json` (our documents without `@json`, as FULL_TEXT_SUBTREES=false
would write them), `ours-projected` (that, plus the promoted fields of notes/promoted-fields.md,
event.outcome and user.name, into a template with their mappings and the ECS and Security Analytics
aliases of notes/security-analytics-fields.md; installing that template proves the alias set is valid)
and `ours-projected-lean` (the same with the promoted copies left out of `_source`, as `@json` is).

--levers adds our documents into variants of the installed template, one storage lever each, to
measure what it buys (BENCHMARKS.md "Cluster cost", levers): the template as the node composes it
(`_simulate_index`), changed as LEVERS says, under a pattern of its own (priority 150). The workload
repeats each record about 3 times (the 1,557 records cycled, new ids and times), which a sort that puts
the copies side by side rewards more than real traffic would: `distinct` and `distinct-no-sort` are
the first copy of each record only (1,345 documents), shipped template and unsorted.

Writes target/bench/cluster-cost.json and prints the markdown table. Targets (issue 15): ours
<= 750 B/doc with promoted fields and aliases; ours' indexing time <= 0.25x the console's, same run.
"""

import argparse
import collections
import copy
import http.client
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "bench")
WORK = os.path.join(BENCH, "cluster-cost")
PREFIX = "cwl-benchcost"
TARGET_BYTES = 750
TARGET_RATIO = 0.25


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(ROOT, "scripts", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Node:
    """One keep-alive HTTP connection to the node."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1"):
            sys.exit(f"bench-cluster-cost.py: {url}: a local node over plain HTTP is expected (scripts/opensearch.sh)")
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 9200, timeout=600)

    def call(self, method, path, body=None, ndjson=False, ok=(200, 201)):
        headers = {"Content-Type": "application/x-ndjson" if ndjson else "application/json"}
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


def run(cmd, env=None, stdout=None):
    full = dict(os.environ, **(env or {}))
    return subprocess.run(cmd, env=full, stdout=stdout, check=True, cwd=ROOT)


def our_bodies(cli, files, full_text, prefix=PREFIX):
    """`replay --dry-run` writes the bodies; a dry run does not know the cluster, so FULL_TEXT_SUBTREES
    is given as `auto` resolves it for this node (from the flavor setup recorded in the template)."""
    env = {"INDEX_PREFIX": prefix, "AUTH": "none", "DETECTIONS": "true", "RUST_LOG": "warn",
           "FULL_TEXT_SUBTREES": "true" if full_text else "false",
           "GEOIP_DB": os.path.join(ROOT, "fixtures/geo/city-subset.mmdb"),
           "GEOIP_ASN_DB": os.path.join(ROOT, "fixtures/geo/asn-subset.mmdb")}
    out = []
    for f in files:
        path = os.path.join(WORK, prefix + "-" + os.path.basename(f).replace(".json", ".ndjson"))
        with open(path, "wb") as fh:
            run([cli, "replay", "--dry-run", f], env=env, stdout=fh)
        with open(path, "rb") as fh:
            out.append(fh.read())
    return out


def console_bodies(files):
    out = []
    for f in files:
        path = os.path.join(WORK, "console-" + os.path.basename(f).replace(".json", ".ndjson"))
        run(["node", os.path.join(ROOT, "scripts", "bench-node-console.js"), f, "--body", path],
            stdout=subprocess.DEVNULL)
        lines = open(path, "rb").read().split(b"\n")
        body = []
        for i in range(0, len(lines) - 1, 2):
            action = json.loads(lines[i])
            (verb, meta), = action.items()
            meta.pop("_type", None)
            meta["_index"] = meta["_index"].replace("cwl-", "console-benchcost-", 1)
            body += [json.dumps({verb: meta}, separators=(",", ":")).encode(), lines[i + 1]]
        out.append(b"\n".join(body) + b"\n")
    return out


def retarget(bodies, new_prefix, edit=None):
    """Our bodies into `<new_prefix>-...` indices, each document passed through `edit`."""
    out = []
    for body in bodies:
        lines = body.split(b"\n")
        res = []
        for i in range(0, len(lines) - 1, 2):
            action = json.loads(lines[i])
            meta = action["create"]
            meta["_index"] = new_prefix + meta["_index"][len(PREFIX):]
            doc = lines[i + 1]
            if edit:
                doc = json.dumps(edit(json.loads(doc)), separators=(",", ":"), ensure_ascii=False).encode()
            res += [json.dumps(action, separators=(",", ":")).encode(), doc]
        out.append(b"\n".join(res) + b"\n")
    return out


# ---------------------------------------------------------------------------------------------
# Projections: issue 15's documents and template, built from the notes, before src/ writes them.

class Projection:
    def __init__(self):
        self.pf = load_script("promoted-fields")
        self.oracle = load_script("oracle-promoted")
        self.promoted = []  # (source path, type)
        with open(os.path.join(ROOT, "notes", "promoted-fields.md"), encoding="utf-8") as f:
            for line in f:
                m = self.pf.ROW.match(line.strip())
                if m:
                    self.promoted.append((m.group(2), m.group(4)))
        with open(os.path.join(os.path.dirname(ROOT), "shared", "opensearch-security-analytics",
                               "cloudtrail_logtype.json"), encoding="utf-8") as f:
            self.logtype = json.load(f)["mappings"]

    @staticmethod
    def convert(t, v):
        if t == "long":
            return int(v)
        if t == "boolean":
            return v if isinstance(v, bool) else v == "true"
        return v

    def edit(self, doc):
        doc.pop("@json", None)
        if "eventVersion" not in doc and not ("eventSource" in doc and "eventName" in doc):
            return doc
        copies = {}
        for src, t in self.promoted:
            parts = src.split(".")
            tree = doc.get(parts[0])
            if not isinstance(tree, dict):
                continue
            vals = []
            for v in self.pf.values_at(tree, parts[1:]):
                for x in _flatten(v):
                    if x is not None and self.pf.fits(t, x) and not (isinstance(x, str) and len(x) > 1024):
                        vals.append(self.convert(t, x))
            if vals:
                node = copies
                for p in parts[:-1]:
                    node = node.setdefault(p, {})
                node[parts[-1]] = vals[0] if len(vals) == 1 else vals
        if copies:
            doc["aws"] = {"cloudtrail": copies}
        doc["event"] = {"outcome": self.oracle.outcome(doc)}
        name = self.oracle.user_name(doc)
        if name is not None:
            doc["user"] = {"name": name}
        return doc

    def template(self, installed, pattern):
        t = copy.deepcopy(installed)
        t["index_patterns"] = [pattern]
        t["priority"] = 150
        props = t["template"]["mappings"]["properties"]
        kw = {"type": "keyword", "ignore_above": 1024}
        types = {"keyword": kw, "long": {"type": "long", "ignore_malformed": True}, "boolean": {"type": "boolean"},
                 "ip": {"type": "ip", "ignore_malformed": True}}
        obj = lambda: {"type": "object", "dynamic": False, "properties": {}}  # noqa: E731

        def put(root, path, mapping):
            node = root
            for p in path[:-1]:
                node = node["properties"].setdefault(p, obj())
            if path[-1] in node["properties"]:
                raise RuntimeError(f"{'.'.join(path)} mapped twice")
            node["properties"][path[-1]] = mapping

        top = {"properties": props}
        for src, ty in self.promoted:
            put(top, ["aws", "cloudtrail"] + src.split("."), types[ty])
        alias = lambda target: {"type": "alias", "path": target}  # noqa: E731
        for name, target in [("event.action", "eventName"), ("event.provider", "eventSource"),
                             ("event.id", "eventID"), ("cloud.region", "awsRegion"),
                             ("cloud.account.id", "recipientAccountId"), ("user_agent.original", "userAgent")]:
            put(top, name.split("."), alias(target))
        put(top, ["event", "outcome"], kw)
        put(top, ["user", "name"], kw)
        props["source"]["properties"]["address"] = alias("sourceIPAddress")
        promoted = {src for src, _ in self.promoted}
        corrections = self.pf.SA_CORRECTIONS
        seen = set()
        for m in self.logtype:
            raw, ecs = m["raw_field"].replace("[]", ""), m["ecs"]
            raw = corrections.get(raw, raw)
            if ecs in seen:
                continue  # the log type names responseElements.ConsoleLogin with publiclyAccessible's name
            seen.add(ecs)
            if raw in promoted:
                target = "aws.cloudtrail." + raw
            elif raw == "eventTime":
                target = "@timestamp"
            else:
                target = raw  # a concrete top-level field, or the flat_object root responseElements
            put(top, ecs.split("."), alias(target))
        return t


# ---------------------------------------------------------------------------------------------
# Levers: one storage change each to the installed template, measured against it.

def _field(template, path):
    node = {"properties": template["mappings"]["properties"]}
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _sort(fields):
    def edit(t):
        index = t["settings"]["index"]
        if fields:
            index["sort"] = {"field": fields, "order": ["asc"] * len(fields)}
        else:
            index.pop("sort", None)
    return edit


def _set(paths, **mapping):
    def edit(t):
        for p in paths:
            _field(t, p).update(mapping)
    return edit


def _caller_fields(t):
    """The caller's keywords but the sort field userIdentity.arn (a sort field needs doc values)."""
    ui = _field(t, "userIdentity")["properties"]
    return [f"userIdentity.{k}" for k, f in ui.items() if f.get("type") == "keyword" and k != "arn"] + ["userAgent", "sourceIPAddress"]


LEVERS = [
    # (name, what it changes, edit of the composed template)
    ("lever-no-sort", "no index sort (the template before it)", _sort(None)),
    ("lever-sort-source-name", "index sort on eventSource, eventName only", _sort(["eventSource", "eventName"])),
    ("lever-codec-default", "index.codec default (LZ4) instead of best_compression",
     lambda t: t["settings"]["index"].update({"codec": "default"})),
    ("lever-errormessage-docs", "errorMessage index_options docs (no positions)", _set(["errorMessage"], index_options="docs")),
    ("lever-ids-unindexed", "@id and requestID index: false", _set(["@id", "requestID"], index=False)),
    ("lever-caller-no-doc-values", "doc_values: false on the userIdentity keywords (but arn), userAgent, sourceIPAddress",
     lambda t: _set(_caller_fields(t), doc_values=False)(t)),
    ("lever-promoted-out-of-source", "promoted copies (aws.*) out of _source",
     lambda t: t["mappings"]["_source"]["excludes"].extend(["aws", "aws.*"])),
    ("lever-aed-unindexed", "additionalEventData unindexed (enabled: false)",
     lambda t: _field(t, "additionalEventData").clear() or _field(t, "additionalEventData").update(type="object", enabled=False)),
]


def distinct(bodies):
    """The first document of each record: ours without the copies the workload's cycling makes
    (equal but for their ids and times)."""
    seen, out = set(), []
    for body in bodies:
        lines, keep = body.split(b"\n"), []
        for i in range(0, len(lines) - 1, 2):
            doc = json.loads(lines[i + 1])
            for k in ("@id", "@timestamp", "eventID", "eventTime", "requestID", "sharedEventID"):
                doc.pop(k, None)
            key = json.dumps(doc, sort_keys=True)
            if key not in seen:
                seen.add(key)
                keep += [lines[i], lines[i + 1]]
        out.append(b"\n".join(keep) + b"\n")
    return out


def lever_variants(node, ours):
    composed = node.call("POST", f"/_index_template/_simulate_index/{PREFIX}-2026.01.01")["template"]
    composed.pop("aliases", None)
    out = []
    for name, _, edit in LEVERS:
        t = copy.deepcopy(composed)
        edit(t)
        prefix = PREFIX.replace("-", "") + name.replace("-", "")
        node.call("PUT", f"/_index_template/{prefix}", {"index_patterns": [f"{prefix}-*"], "priority": 150, "template": t})
        out.append((name, f"{prefix}-*", retarget(ours, prefix)))
    few = distinct(ours)
    out.append(("distinct", f"{PREFIX}-2*", few))
    nosort = PREFIX.replace("-", "") + LEVERS[0][0].replace("-", "")
    out.append(("distinct-no-sort", f"{nosort}-*", retarget(few, nosort)))
    return out


def _flatten(v):
    if isinstance(v, list):
        for x in v:
            yield from _flatten(x)
    else:
        yield v


# ---------------------------------------------------------------------------------------------

def reason_of(error):
    """A bulk item error without its per-document details: "Limit of total fields [1000] ...", field names cut."""
    text = error.get("reason") or error.get("type") or "?"
    text = text.split(" in document with id")[0]
    keep = "Limit of total fields" in text  # the limit itself is the point
    return text if keep else re.sub(r"\[[^\]]*\]", "[…]", text)


def warm_up(node, variants):
    """One batch of each variant into throwaway indices: the node's JIT and caches, not measured."""
    for name, pattern, bodies in variants:
        first = bodies[0].replace(pattern[:-1].encode(), pattern[:-1].encode() + b"warmup-")
        node.call("POST", "/_bulk", first, ndjson=True)
        node.call("DELETE", f"/{pattern[:-1]}warmup-*", ok=(200, 404))


def measure(node, name, pattern, bodies):
    node.call("DELETE", f"/{pattern}", ok=(200, 404))
    rejected = collections.Counter()
    t0 = time.perf_counter()
    for body in bodies:
        answer = node.call("POST", "/_bulk", body, ndjson=True)
        if answer.get("errors"):
            for item in answer["items"]:
                (_, r), = item.items()
                if "error" in r:
                    rejected[reason_of(r["error"])] += 1
    wall = time.perf_counter() - t0
    node.call("POST", f"/{pattern}/_refresh")
    t1 = time.perf_counter()
    node.call("POST", f"/{pattern}/_forcemerge?max_num_segments=1")
    merge = time.perf_counter() - t1
    node.call("POST", f"/{pattern}/_refresh")
    stats = node.call("GET", f"/{pattern}/_stats/store,docs,indexing,segments")["_all"]["primaries"]
    return {
        "variant": name,
        "documents": stats["docs"]["count"],
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(rejected.most_common()),
        "store_bytes": stats["store"]["size_in_bytes"],
        "segments": stats["segments"]["count"],
        "index_wall_ms": round(wall * 1000, 1),
        "node_index_time_ms": stats["indexing"]["index_time_in_millis"],
        "forcemerge_ms": round(merge * 1000, 1),
        "body_bytes": sum(len(b) for b in bodies),
    }


def mmm(xs, fmt="{:.2f}"):
    xs = sorted(xs)
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(xs[0])}–{fmt.format(xs[-1])})"


def table(result):
    rounds = result["rounds"]
    names = result["variants"]
    lines = [
        f"{result['events']:,} CloudTrail records (the {result['batches']} end-to-end batches), one node, "
        f"{len(rounds)} round(s); after refresh and a force-merge to one segment. Store = primaries' "
        "`store.size_in_bytes`; indexing = wall time of posting the bodies one at a time (uncompressed), "
        "median (min–max); node = the node's `indexing.index_time_in_millis`.\n",
        "| documents | indexed | rejected by the node | store | B/doc | indexing time s | node indexing s | bulk body |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        rs = [r[n] for r in rounds]
        last = rs[-1]
        lost = f"{last['rejected']:,} ({100 * last['rejected'] / result['events']:.1f}%)"
        lines.append(
            f"| {n} | {last['documents']:,} | {lost} | {last['store_bytes'] / 1e6:.2f} MB "
            f"| {mmm([r['store_bytes'] / r['documents'] for r in rs], '{:.0f}')} "
            f"| {mmm([r['index_wall_ms'] / 1000 for r in rs])} | {mmm([r['node_index_time_ms'] / 1000 for r in rs])} "
            f"| {last['body_bytes'] / 1e6:.2f} MB |")
    lines.append("")
    lines.append("| target | documents | figure | met? |")
    lines.append("|---|---|---|---|")
    for n in [n for n in names if n.startswith("ours")]:
        bpd = [r[n]["store_bytes"] / r[n]["documents"] for r in rounds]
        ratios = [r[n]["index_wall_ms"] / r["console"]["index_wall_ms"] for r in rounds]
        ok_b, ok_r = statistics.median(bpd) <= TARGET_BYTES, statistics.median(ratios) <= TARGET_RATIO
        lines.append(f"| ≤ {TARGET_BYTES} B/doc (with promoted fields and aliases) | {n} | {mmm(bpd, '{:.0f}')} B/doc "
                     f"| {'**met**' if ok_b else '**missed**'} |")
        lines.append(f"| indexing time ≤ {TARGET_RATIO}× the console's, same run | {n} | {mmm(ratios)}× "
                     f"| {'**met**' if ok_r else '**missed**'} |")
    levers = [n for n in names if n.startswith("lever-")]
    if levers:
        what = {name: text for name, text, _ in LEVERS}
        lines += ["", "Levers: our documents into the installed template with one change each, same rounds; "
                  "Δ and time ratio against `ours` in the same round.", "",
                  "| lever | B/doc | Δ B/doc | indexing time s | time ÷ ours |", "|---|---|---|---|---|"]
        for n in levers:
            bpd = [r[n]["store_bytes"] / r[n]["documents"] for r in rounds]
            delta = [r[n]["store_bytes"] / r[n]["documents"] - r["ours"]["store_bytes"] / r["ours"]["documents"] for r in rounds]
            ratio = [r[n]["index_wall_ms"] / r["ours"]["index_wall_ms"] for r in rounds]
            lines.append(f"| {what.get(n, n)} | {mmm(bpd, '{:.0f}')} | {mmm(delta, '{:+.0f}')} "
                         f"| {mmm([r[n]['index_wall_ms'] / 1000 for r in rounds])} | {mmm(ratio)} |")
    for n in names:
        reasons = rounds[-1][n]["rejected_by_reason"]
        if reasons:
            lines.append("")
            lines.append(f"Rejected {n} documents, by reason: " + "; ".join(f"{k} ×{v}" for k, v in reasons.items()) + ".")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--cli", required=True, help="the cwl-indexer binary (only writes the bodies: debug is fine)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--projections", action="store_true", help="also the not-yet-implemented documents of issue 15")
    ap.add_argument("--levers", action="store_true", help="also our documents under one storage lever each")
    ap.add_argument("--payloads", default=os.path.join(BENCH, "payloads", "e2e"))
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    files = sorted(os.path.join(args.payloads, f) for f in os.listdir(args.payloads) if f.endswith(".json"))
    if not files:
        sys.exit(f"bench-cluster-cost.py: no batches in {args.payloads} (scripts/bench-payloads.py makes them)")
    node = Node(args.url)
    run([args.cli, "--endpoint", args.url, "setup", "--index-replicas", "0", "--retention-days", "0"],
        env={"INDEX_PREFIX": PREFIX, "AUTH": "none", "RUST_LOG": "warn"}, stdout=subprocess.DEVNULL)
    installed = node.call("GET", f"/_index_template/cwl-indexer-{PREFIX}")["index_templates"][0]["index_template"]
    auto_full_text = installed["_meta"]["flavor"] == "disabled"
    ours = our_bodies(args.cli, files, auto_full_text)
    console = console_bodies(files)
    events = sum(b.count(b"\n") for b in ours) // 2
    # `-2*`: the daily indices only, not the other variants' `<PREFIX>-nojson-*`.
    variants = [("ours", f"{PREFIX}-2*", ours), ("console", "console-benchcost-*", console)]
    if not auto_full_text:
        # The trade-off FULL_TEXT_SUBTREES=true buys: the same documents with their @json copies,
        # into the same template under a prefix of their own.
        full = PREFIX.replace("-", "") + "ft"
        run([args.cli, "--endpoint", args.url, "setup", "--index-replicas", "0", "--retention-days", "0"],
            env={"INDEX_PREFIX": full, "AUTH": "none", "RUST_LOG": "warn"}, stdout=subprocess.DEVNULL)
        variants.append(("ours-full-text", f"{full}-2*", our_bodies(args.cli, files, True, full)))
    if args.projections:
        proj = Projection()
        installed = node.call("GET", f"/_index_template/cwl-indexer-{PREFIX}")["index_templates"][0]["index_template"]
        node.call("PUT", f"/_index_template/{PREFIX}proj", proj.template(installed, f"{PREFIX}proj-*"))
        lean = proj.template(installed, f"{PREFIX}lean-*")
        lean["template"]["mappings"]["_source"]["excludes"] += ["aws.*"]
        node.call("PUT", f"/_index_template/{PREFIX}lean", lean)
        projected = retarget(ours, f"{PREFIX}proj", proj.edit)
        variants += [("ours-no-json", f"{PREFIX}-nojson-*", retarget(ours, f"{PREFIX}-nojson", lambda d: (d.pop("@json", None), d)[1])),
                     ("ours-projected", f"{PREFIX}proj-*", projected),
                     ("ours-projected-lean", f"{PREFIX}lean-*",
                      [b.replace(f'"_index":"{PREFIX}proj-'.encode(), f'"_index":"{PREFIX}lean-'.encode()) for b in projected])]
    if args.levers:
        variants += lever_variants(node, ours)
    warm_up(node, variants)
    rounds = []
    try:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            got = {}
            for name, pattern, bodies in order:
                got[name] = measure(node, name, pattern, bodies)
                g = got[name]
                print(f"round {r + 1} {name:15} {g['documents']:5} docs, {g['rejected']:4} rejected, "
                      f"{g['store_bytes'] / g['documents']:6.0f} B/doc, indexing {g['index_wall_ms'] / 1000:6.2f} s "
                      f"(node {g['node_index_time_ms'] / 1000:.2f} s)", file=sys.stderr)
            rounds.append(got)
    finally:
        for _, pattern, _ in variants:
            node.call("DELETE", f"/{pattern}", ok=(200, 404))
        if args.projections:
            for t in ("proj", "lean"):
                node.call("DELETE", f"/_index_template/{PREFIX}{t}", ok=(200, 404))
        if args.levers:
            for name, _, _ in LEVERS:
                node.call("DELETE", f"/_index_template/{PREFIX.replace('-', '')}{name.replace('-', '')}", ok=(200, 404))
    result = {"events": events, "batches": len(files), "variants": [v[0] for v in variants], "rounds": rounds}
    with open(os.path.join(BENCH, "cluster-cost.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(table(result))


if __name__ == "__main__":
    main()
