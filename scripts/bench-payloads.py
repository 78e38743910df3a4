#!/usr/bin/env python3
"""Builds the benchmark workloads as Lambda event files, from the committed fixtures only.

    python3 scripts/bench-payloads.py [OUT_DIR]     (default: target/bench/payloads)

Every workload is a CloudWatch Logs subscription event, {"awslogs":{"data": base64(gzip(envelope))}},
filled the way CloudWatch Logs fills a batch: message bytes + 26 per event, at most 1,048,576.

  realistic.json    the records of fixtures/cloudtrail-records.ndjson (from ../shared/cloudtrail-samples),
                    in order, cycled, up to one 1 MB batch
  small.json        only the records under 1,000 bytes, up to one 1 MB batch
  large.json        the 32.8 KB RunInstances record of fixtures/runinstances-large.json, repeated to 1 MB
  async-limit.json  the worst case Lambda's 256 KB asynchronous event limit lets through: the
                    RunInstances record repeated (it compresses best, so most bytes fit) until the
                    event file reaches 262,144 bytes or the envelope MAX_PAYLOAD_BYTES (16 MiB)
  e2e/NN.json       E2E_BATCHES (default 8) distinct realistic 1 MB batches, for bench-e2e.sh

Every record gets its own eventID (so no two documents share an _id, within or across files) and an
eventTime on one day (2026-01-15, as live traffic lands in one daily index); everything else is the
record as delivered. Deterministic: the same fixtures give the same bytes. manifest.json lists each
file's events, decompressed envelope bytes, gzip bytes and event file bytes.
"""

import base64
import gzip
import json
import os
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_LIMIT = 1_048_576  # CloudWatch Logs' batch size: sum of (message bytes + 26)
EVENT_OVERHEAD = 26
ASYNC_LIMIT = 262_144  # Lambda's asynchronous invocation payload limit (256 KB)
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024  # cwl-indexer's default decompressed-envelope cap
DAY_MS = 1_768_435_200_000  # 2026-01-15T00:00:00Z
NS = uuid.UUID("6f1c3a52-8d1e-4c1e-9f0e-2b1d5f0a7c11")


def minify(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def records():
    with open(os.path.join(ROOT, "fixtures", "cloudtrail-records.ndjson"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def runinstances():
    with open(os.path.join(ROOT, "fixtures", "runinstances-large.json"), encoding="utf-8") as f:
        envelope = json.loads(gzip.decompress(base64.b64decode(json.load(f)["awslogs"]["data"])))
    # The fixture holds the 32.8 KB record and the 256 KB one; the first is the RunInstances-like one.
    return json.loads(envelope["logEvents"][0]["message"])


class Serial:
    """Hands out eventIDs and timestamps, unique across every file of one run."""

    def __init__(self):
        self.n = 0

    def stamp(self, record, workload):
        self.n += 1
        rec = dict(record)
        rec["eventID"] = str(uuid.uuid5(NS, f"{workload}:{self.n}"))
        ms = DAY_MS + (self.n * 37) % 86_400_000
        rec["eventTime"] = f"2026-01-15T{ms // 3_600_000 % 24:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}Z"
        return ms, minify(rec)


def event_file(messages, stream=0):
    """(Lambda event bytes, envelope bytes, gzip bytes) for (timestamp, message) pairs. Log event ids
    are 56 digits, unique across the files of a run (`stream` numbers the file), as CloudWatch's are:
    the console function's documents (bench-cluster-cost.py) use them as `_id`."""
    envelope = {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": "aws-cloudtrail-logs-111122223333-3ad2f6c1",
        "logStream": "111122223333_CloudTrail_us-east-1",
        "subscriptionFilters": ["cwl-indexer"],
        "logEvents": [
            {"id": f"37{stream:04d}{n:050d}", "timestamp": ts, "message": msg} for n, (ts, msg) in enumerate(messages)
        ],
    }
    raw = minify(envelope).encode()
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    event = (minify({"awslogs": {"data": base64.b64encode(gz).decode()}}) + "\n").encode()
    return event, raw, gz


def fill(source, serial, workload, limit=BATCH_LIMIT):
    """Messages from `source` (cycled) while the batch stays within `limit`."""
    out, size, i = [], 0, 0
    while True:
        ts, msg = serial.stamp(source[i % len(source)], workload)
        cost = len(msg.encode()) + EVENT_OVERHEAD
        if size + cost > limit:
            return out
        out.append((ts, msg))
        size += cost
        i += 1


def async_worst(record, serial):
    """The most decompressed bytes an event under ASYNC_LIMIT (and the cap) can carry."""
    one = len(serial.stamp(record, "probe")[1]) + 60
    lo, hi = 1, MAX_PAYLOAD_BYTES // one
    best = None
    while lo <= hi:  # the event file grows with the count: bisect on it
        mid = (lo + hi) // 2
        s = Serial()
        s.n = 10_000_000  # IDs apart from the other workloads'
        msgs = [s.stamp(record, "async") for _ in range(mid)]
        event, raw, gz = event_file(msgs)
        if len(event) <= ASYNC_LIMIT and len(raw) <= MAX_PAYLOAD_BYTES:
            best, lo = (event, raw, gz, mid), mid + 1
        else:
            hi = mid - 1
    return best


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "bench", "payloads")
    os.makedirs(os.path.join(out, "e2e"), exist_ok=True)
    recs = records()
    big = runinstances()
    serial = Serial()
    manifest = {}

    def write(name, messages=None, built=None, stream=0):
        event, raw, gz = built if built else event_file(messages, stream)
        with open(os.path.join(out, name), "wb") as f:
            f.write(event)
        count = raw.count(b'"message":')
        manifest[name] = {"events": count, "envelope_bytes": len(raw), "gzip_bytes": len(gz), "event_bytes": len(event)}

    write("realistic.json", fill(recs, serial, "realistic"), stream=1)
    write("small.json", fill([r for r in recs if len(minify(r).encode()) < 1000], serial, "small"), stream=2)
    write("large.json", fill([big], serial, "large"), stream=3)
    event, raw, gz, _ = async_worst(big, serial)
    write("async-limit.json", built=(event, raw, gz))
    for b in range(int(os.environ.get("E2E_BATCHES", "8"))):
        write(f"e2e/{b:02d}.json", fill(recs[(b * 97) % len(recs):] + recs[: (b * 97) % len(recs)], serial, f"e2e{b}"),
              stream=10 + b)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    for name, m in sorted(manifest.items()):
        if not name.startswith("e2e/"):
            print(f"{name:18} {m['events']:6} events {m['envelope_bytes']:>10} B envelope "
                  f"{m['gzip_bytes']:>8} B gzip {m['event_bytes']:>8} B event")


if __name__ == "__main__":
    main()
