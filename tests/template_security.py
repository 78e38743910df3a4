"""The security properties of template.yaml, asserted so that a later edit cannot widen access
without failing `make test`.

    .venv-sam/bin/python -m pytest -q tests/template_security.py     (make template-test)

The template is read with PyYAML and a loader that turns CloudFormation's short tags (!Ref,
!Sub, !If, ...) into their long forms ({"Ref": ...}, {"Fn::Sub": ...}), so the assertions see
exactly what CloudFormation sees. Conditions are not evaluated: wherever a value is
`Fn::If [cond, a, b]`, both `a` and `b` must be safe, because a parameter can select either.

The last tests mutate a copy of the template (an es:* here, a Principal "*" there) and check
that the assertions catch each change: a check that passes on everything proves nothing.
"""

import copy
import ipaddress
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

INDEXER_ACTIONS = {"es:ESHttpPost", "es:ESHttpPut", "es:ESHttpGet", "es:ESHttpHead"}
STREAM_READ_ACTIONS = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
    "kinesis:SubscribeToShard",
}
STREAM_ARN = {"Fn::GetAtt": ["CentralStream", "Arn"]}
TRAIL_FILES_QUEUE_ARN = {"Fn::GetAtt": ["TrailFilesQueue", "Arn"]}
TRAIL_FILES_OBJECTS = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${TrailFilesBucketName}/AWSLogs/*"}
BATCH_BUCKET = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}"}
BATCH_MANIFESTS = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}/cwl-indexer/manifests/*"}
BATCH_REPORTS = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}/cwl-indexer/reports/*"}
TLS12_POLICIES = {"Policy-Min-TLS-1-2-2019-07", "Policy-Min-TLS-1-2-PFS-2023-10"}
NO_VALUE = {"Ref": "AWS::NoValue"}


# ------------------------------------------------------------------------------------------------
# Reading the template
# ------------------------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader, tag_suffix, node):
    name = tag_suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Ref":
        return {"Ref": value}
    if name == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    if name == "Condition":
        return {"Condition": value}
    return {f"Fn::{name}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path=TEMPLATE):
    return yaml.load(path.read_text(), Loader=CfnLoader)


@pytest.fixture(scope="module")
def template():
    return load()


def resources(t, type_):
    return {name: r for name, r in t["Resources"].items() if r["Type"] == type_}


def one(t, type_):
    found = resources(t, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def branches(value):
    """Every value `value` can take once conditions are chosen (Fn::If expanded, NoValue dropped)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, a, b = value["Fn::If"]
        for side in (a, b):
            yield from branches(side)
    elif value != NO_VALUE:
        yield value


def statements(policy):
    """Every statement a policy document can hold, whatever the conditions."""
    for doc in branches(policy):
        if isinstance(doc, str):  # JSON string (AWS::Logs::ResourcePolicy)
            doc = json.loads(doc)
        items = doc["Statement"]
        for item in items if isinstance(items, list) else [items]:
            for statement in branches(item):
                yield statement


def as_list(value):
    return value if isinstance(value, list) else [value]


def actions(statement):
    return set(as_list(statement.get("Action", [])))


def sub_text(value):
    """The text of a Fn::Sub (string or [string, vars]) or a plain string; None otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def all_policy_documents(t):
    """(where, document) for every policy the template holds, found wherever they live."""
    docs = []

    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("PolicyDocument", "AssumeRolePolicyDocument", "AccessPolicies", "DestinationPolicy"):
                    docs.append((f"{where}.{key}", value))
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(t["Resources"], "Resources")
    return docs


def resolved_json(doc):
    """A ResourcePolicy's document may be a Fn::Sub of JSON: parse it with placeholders kept."""
    text = sub_text(doc)
    if text is not None and text.lstrip().startswith("{"):
        return json.loads(text)
    return doc


# ------------------------------------------------------------------------------------------------
# The checks, as functions of a template, so the mutation tests can run them on broken copies
# ------------------------------------------------------------------------------------------------
def check_no_unconditioned_star_principal(t):
    for where, doc in all_policy_documents(t):
        for s in statements(resolved_json(doc)):
            principal = s.get("Principal")
            star = principal == "*" or (
                isinstance(principal, dict) and any("*" in as_list(v) for v in principal.values())
            )
            if star and s.get("Effect") == "Allow":
                assert s.get("Condition"), f"{where}: Allow to Principal * without a Condition: {s}"


def domain_arn_text(t):
    return "arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/${DomainName}/*"


def check_domain_settings(t):
    _, domain = one(t, "AWS::OpenSearchService::Domain")
    p = domain["Properties"]
    assert p["EncryptionAtRestOptions"]["Enabled"] is True, "encryption at rest"
    assert p["NodeToNodeEncryptionOptions"]["Enabled"] is True, "node-to-node encryption"
    assert p["DomainEndpointOptions"]["EnforceHTTPS"] is True, "HTTPS only"
    assert p["DomainEndpointOptions"]["TLSSecurityPolicy"] in TLS12_POLICIES, "TLS 1.2 or later"
    assert "AdvancedSecurityOptions" not in p or p["AdvancedSecurityOptions"].get("AnonymousAuthEnabled") is not True


def check_domain_access_policy(t):
    _, domain = one(t, "AWS::OpenSearchService::Domain")
    params = t["Parameters"]
    found_indexer = False
    for s in statements(domain["Properties"]["AccessPolicies"]):
        assert s["Effect"] == "Allow", s
        # Only this domain, and only HTTP actions.
        for resource in as_list(s["Resource"]):
            assert sub_text(resource) == domain_arn_text(t), f"resource outside the domain: {resource}"
        for action in actions(s):
            assert action.startswith("es:ESHttp"), f"not an HTTP action: {action}"
        principal = s["Principal"]
        assert isinstance(principal, dict) and set(principal) == {"AWS"}, s
        who = principal["AWS"]
        if who == {"Fn::GetAtt": ["FunctionRole", "Arn"]}:
            found_indexer = True
            assert actions(s) == INDEXER_ACTIONS, f"the function gets exactly {INDEXER_ACTIONS}: {s}"
            assert "Condition" not in s
        elif who == {"Ref": "AdminPrincipalArn"}:
            pattern = re.compile(params["AdminPrincipalArn"]["AllowedPattern"])
            for bad in ("*", "arn:aws:iam::*:root", "arn:aws:iam::123456789012:*", "123456789012"):
                assert not pattern.match(bad), f"AdminPrincipalArn accepts {bad!r}"
            assert pattern.match("arn:aws:iam::123456789012:role/Admin")
        elif who == "*":
            # Anonymous only from AllowedCidr, which may not be wider than a /16, and never DELETE.
            assert s["Condition"] == {"IpAddress": {"aws:SourceIp": {"Ref": "AllowedCidr"}}}, s
            assert "es:ESHttpDelete" not in actions(s) and "es:ESHttp*" not in actions(s), s
            check_cidr_pattern(params["AllowedCidr"]["AllowedPattern"])
        else:
            raise AssertionError(f"unexpected principal in the domain's access policy: {who}")
    assert found_indexer, "the function's role is allowed in the access policy"


def check_cidr_pattern(pattern):
    cidr = re.compile(pattern)
    for good in ("", "203.0.113.7/32", "198.51.100.0/24", "10.1.0.0/16"):
        assert cidr.match(good), f"AllowedCidr should accept {good!r}"
    for bad in ("0.0.0.0/0", "0.0.0.0/1", "10.0.0.0/8", "203.0.113.7", "*", "::/0", "1.2.3.4/33", "300.1.1.1/32"):
        assert not cidr.match(bad), f"AllowedCidr should refuse {bad!r}"
    for prefix in range(0, 33):
        accepted = bool(cidr.match(f"10.0.0.0/{prefix}"))
        assert accepted == (prefix >= 16), f"/{prefix}"
        if accepted:
            ipaddress.ip_network(f"10.0.0.0/{prefix}", strict=False)


def function(t):
    return one(t, "AWS::Serverless::Function")


def function_role(t):
    _, fn = function(t)
    role_ref = fn["Properties"]["Role"]
    assert role_ref == {"Fn::GetAtt": ["FunctionRole", "Arn"]}, "the function has the template's own role"
    return t["Resources"]["FunctionRole"]


def check_function_role(t):
    role = function_role(t)["Properties"]
    assert not role.get("ManagedPolicyArns"), "no managed policies: every permission is listed here"
    assume = list(statements(role["AssumeRolePolicyDocument"]))
    assert [s["Principal"] for s in assume] == [{"Service": "lambda.amazonaws.com"}]
    es_statements = []
    for policy in role["Policies"]:
        for p in branches(policy):
            for s in statements(p["PolicyDocument"]):
                assert s["Effect"] == "Allow", s
                acts = actions(s)
                for a in acts:
                    assert a != "*" and not a.endswith(":*"), f"wildcard action {a}"
                es = {a for a in acts if a.lower().startswith("es:")}
                if es:
                    es_statements.append(s)
                    assert acts == INDEXER_ACTIONS, f"es actions must be exactly {INDEXER_ACTIONS}: {acts}"
                    for resource in branches(s["Resource"]):
                        text = sub_text(resource)
                        if text is None:  # bring your own domain: Join [ExistingDomainArn, "/*"]
                            assert resource == {"Fn::Join": ["", [{"Ref": "ExistingDomainArn"}, "/*"]]}, resource
                        else:
                            assert text == domain_arn_text(t), f"es resource outside the domain: {text}"
                    continue
                resources_ = [r for res in as_list(s["Resource"]) for r in branches(res)]
                if "*" in resources_:
                    assert acts <= {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}, (
                        f"Resource * only for the ENI Describe calls, not {acts}"
                    )
                elif acts & {"logs:CreateLogStream", "logs:PutLogEvents"}:
                    assert acts == {"logs:CreateLogStream", "logs:PutLogEvents"}
                    assert resources_ == [{"Fn::Sub": "${FunctionLogGroup.Arn}"}], resources_
                elif "sns:Publish" in acts:
                    assert acts == {"sns:Publish"}
                    assert resources_ == [{"Ref": "AlertTopic"}, {"Fn::Sub": "${AlertTopicArn}"}], resources_
                elif "sqs:SendMessage" in acts:
                    assert acts == {"sqs:SendMessage"}
                    assert resources_ == [{"Fn::GetAtt": ["FailureQueue", "Arn"]}]
                elif any(a.startswith("s3:") for a in acts):
                    assert acts == {"s3:GetObject"}, f"the function only reads trail files: {acts}"
                    assert resources_ == [TRAIL_FILES_OBJECTS], f"CloudTrail's prefix of that bucket only: {resources_}"
                elif any(a.startswith("sqs:") for a in acts):
                    assert acts <= {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}, acts
                    assert resources_ == [TRAIL_FILES_QUEUE_ARN], f"the trail files queue only: {resources_}"
                elif any(a.startswith("kinesis:") for a in acts):
                    assert acts <= STREAM_READ_ACTIONS, f"the function only reads the stream: {acts}"
                    assert resources_ == [STREAM_ARN], f"the central stream only: {resources_}"
                else:
                    assert all(a.startswith("ec2:") for a in acts), f"unexpected permission {acts}"
    assert es_statements, "the function may write to the domain"


def check_bucket(t):
    name, bucket = one(t, "AWS::S3::Bucket")
    p = bucket["Properties"]
    block = p["PublicAccessBlockConfiguration"]
    for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert block[key] is True, key
    rules = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    for default in branches(rules[0]["ServerSideEncryptionByDefault"]):
        assert default["SSEAlgorithm"] in ("AES256", "aws:kms"), default
    assert p["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    _, policy = one(t, "AWS::S3::BucketPolicy")
    assert policy["Properties"]["Bucket"] == {"Ref": name}
    stmts = list(statements(policy["Properties"]["PolicyDocument"]))
    bucket_resources = [{"Fn::GetAtt": [name, "Arn"]}, {"Fn::Sub": f"${{{name}.Arn}}/*"}]
    tls = [
        s
        for s in stmts
        if s["Effect"] == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        and s["Principal"] == "*"
        and actions(s) == {"s3:*"}
    ]
    assert tls, "a Deny of every request without TLS"
    assert all(r in as_list(tls[0]["Resource"]) for r in bucket_resources), "on the bucket and its objects"
    for s in stmts:
        if s["Effect"] == "Allow":
            assert s["Principal"] == {"Service": "cloudtrail.amazonaws.com"}, s
            assert actions(s) <= {"s3:GetBucketAcl", "s3:PutObject"}, s
            assert "aws:SourceArn" in s["Condition"]["StringEquals"], "only for this stack's trail"


def check_trail(t):
    _, trail = one(t, "AWS::CloudTrail::Trail")
    p = trail["Properties"]
    assert p["IsMultiRegionTrail"] is True
    assert p["EnableLogFileValidation"] is True
    assert p["IsLogging"] is True
    assert p["CloudWatchLogsLogGroupArn"] == {"Fn::GetAtt": ["TrailLogGroup", "Arn"]}
    # The bucket policy names this trail (by the name the template gives it).
    assert p["TrailName"] == {"Ref": "AWS::StackName"}


def check_subscription_permission(t):
    _, perm = one(t, "AWS::Lambda::Permission")
    p = perm["Properties"]
    assert p["Action"] == "lambda:InvokeFunction"
    assert p["Principal"] == "logs.amazonaws.com"
    assert p.get("SourceAccount") == {"Ref": "AWS::AccountId"}, "scoped by account"
    arns = list(branches(p.get("SourceArn")))
    assert arns == [
        {"Fn::GetAtt": ["TrailLogGroup", "Arn"]},
        {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${ExistingLogGroupName}:*"},
    ], "scoped by the log group's ARN"
    assert p["FunctionName"] == {"Fn::GetAtt": ["Indexer", "Arn"]}
    _, sub = one(t, "AWS::Logs::SubscriptionFilter")
    assert sub["Properties"]["DestinationArn"] == {"Fn::GetAtt": ["Indexer", "Arn"]}


def check_log_retention(t):
    groups = resources(t, "AWS::Logs::LogGroup")
    assert len(groups) >= 3
    for name, group in groups.items():
        assert "RetentionInDays" in group["Properties"], f"{name} keeps logs forever"
    _, fn = function(t)
    logging = fn["Properties"]["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    assert logging["LogGroup"] == {"Ref": "FunctionLogGroup"}, "the function logs to a group with retention"


def check_alarms(t):
    """Loss is never silent: alarms on dead letters (the function's EMF metric), errors, throttles
    and the failure queue, each on the right metric of this stack's function or queue, each
    firing on the first bad period and notifying AlarmTopicArn when it is given."""
    alarms = resources(t, "AWS::CloudWatch::Alarm")
    indexer = [{"Name": "FunctionName", "Value": {"Ref": "Indexer"}}]
    want = {
        ("cwl-indexer", "DeadLettered"): indexer,
        ("AWS/Lambda", "Errors"): indexer,
        ("AWS/Lambda", "Throttles"): indexer,
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailureQueue", "QueueName"]}}
        ],
    }
    topic = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], NO_VALUE]}
    for key, dimensions in want.items():
        on_metric = [(n, a["Properties"]) for n, a in alarms.items() if (a["Properties"]["Namespace"], a["Properties"]["MetricName"]) == key]
        matching = [(n, p) for n, p in on_metric if p["Dimensions"] == dimensions]
        assert matching, f"no alarm on {key} of {dimensions}; found {[p['Dimensions'] for _, p in on_metric]}"
        name, p = matching[0]
        assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanThreshold", 0), f"{name}: must fire on > 0"
        assert p["EvaluationPeriods"] == 1 and p["Period"] <= 300, f"{name}: must fire on the first bad 5 minutes"
        assert p.get("TreatMissingData") == "notBreaching", f"{name}: no traffic is not an alarm"
        assert p.get("AlarmActions") == topic, f"{name}: must notify AlarmTopicArn when given"
    # The metric the alarm reads is the one the function writes.
    metrics = (ROOT / "src" / "metrics.rs").read_text()
    assert 'NAMESPACE: &str = "cwl-indexer"' in metrics and '"DeadLettered"' in metrics


def check_central_account(t):
    """The central account's stream, destination, CloudWatch Logs role and event source mapping."""
    r = t["Resources"]
    for name in ("CentralStream", "CentralLogsRole", "CentralDestination", "CentralStreamMapping"):
        assert r[name].get("Condition") == "CentralAccount", f"{name} only with CentralAccount"
    enc = r["CentralStream"]["Properties"]["StreamEncryption"]
    assert enc["EncryptionType"] == "KMS" and enc["KeyId"], "the stream is encrypted"
    role = r["CentralLogsRole"]["Properties"]
    assert not role.get("ManagedPolicyArns")
    (assume,) = statements(role["AssumeRolePolicyDocument"])
    assert assume["Principal"] == {"Service": "logs.amazonaws.com"}, assume
    arns = assume.get("Condition", {}).get("StringLike", {}).get("aws:SourceArn")
    assert arns and "Fn::Split" in arns and "MemberAccountIds" in json.dumps(arns), "only the member accounts' log groups"
    for policy in role["Policies"]:
        for s in statements(policy["PolicyDocument"]):
            assert s["Effect"] == "Allow"
            assert actions(s) == {"kinesis:PutRecord", "kinesis:PutRecords"}, s
            assert as_list(s["Resource"]) == [STREAM_ARN], s
    dest = r["CentralDestination"]["Properties"]
    assert dest["TargetArn"] == STREAM_ARN and dest["RoleArn"] == {"Fn::GetAtt": ["CentralLogsRole", "Arn"]}
    text, variables = dest["DestinationPolicy"]["Fn::Sub"]
    assert variables["Members"] == {"Fn::Join": ['","', {"Ref": "MemberAccountIds"}]}
    for s in json.loads(text)["Statement"]:
        assert s["Principal"] == {"AWS": ["${Members}"]}, f"members only: {s}"
        assert actions(s) == {"logs:PutSubscriptionFilter"}, s
        assert s["Resource"].endswith(":destination:${AWS::StackName}-cwl-indexer"), s
    esm = r["CentralStreamMapping"]["Properties"]
    assert esm["EventSourceArn"] == STREAM_ARN
    assert esm["FunctionName"] == {"Ref": "Indexer"}
    assert esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "partial batch failures"
    assert esm["BisectBatchOnFunctionError"] == {"Ref": "KinesisBisectOnError"}
    assert esm["ParallelizationFactor"] == {"Ref": "KinesisParallelizationFactor"}
    assert esm["BatchSize"] == {"Ref": "KinesisBatchSize"}
    assert esm["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    assert esm["MaximumRetryAttempts"] >= 0, "a poison record does not block its shard forever"


def check_trail_files(t):
    """The trail-files queue: encrypted, dead-lettered, only the named bucket may send, batch item failures."""
    r = t["Resources"]
    for name in ("TrailFilesQueue", "TrailFilesDeadLetterQueue", "TrailFilesQueuePolicy", "TrailFilesMapping"):
        assert r[name].get("Condition") == "TrailFileNotifications", name
    for name in ("TrailFilesQueue", "TrailFilesDeadLetterQueue"):
        assert r[name]["Properties"].get("SqsManagedSseEnabled") is True, f"{name} is encrypted"
    queue = r["TrailFilesQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["TrailFilesDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * function(t)[1]["Properties"]["Timeout"], "6 x the function's timeout"
    for s in statements(r["TrailFilesQueuePolicy"]["Properties"]["PolicyDocument"]):
        assert s["Principal"] == {"Service": "s3.amazonaws.com"}, s
        assert actions(s) == {"sqs:SendMessage"}, s
        assert s["Resource"] == TRAIL_FILES_QUEUE_ARN, s
        source = s.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")
        assert source == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${TrailFilesBucketName}"}, f"that bucket only: {s}"
    esm = r["TrailFilesMapping"]["Properties"]
    assert esm["EventSourceArn"] == TRAIL_FILES_QUEUE_ARN and esm["FunctionName"] == {"Ref": "Indexer"}
    assert esm.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "partial batch failures"
    alarm = r["TrailFilesDeadLetterAlarm"]
    assert alarm.get("Condition") == "TrailFileNotifications"
    assert alarm["Properties"]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["TrailFilesDeadLetterQueue", "QueueName"]}}
    ], "dead-lettered notifications are files not indexed: alarmed"


def check_batch_operations(t):
    """The role S3 Batch Operations assumes: only that service, only when BatchOperationsBucketName
    is set, and only invoke this function, read the manifests and write the reports under
    cwl-indexer/ of that bucket. The trail files are read by the function, never by this role."""
    r = t["Resources"]
    params = t["Parameters"]
    assert t["Conditions"]["BatchOperations"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BatchOperationsBucketName"}, ""]}]}
    param = params["BatchOperationsBucketName"]
    assert param["Default"] == "", "off unless a bucket is named"
    bucket = re.compile(param["AllowedPattern"])
    for good in ("", "my-batch-bucket", "cwl.indexer.batch"):
        assert bucket.match(good), f"BatchOperationsBucketName should accept {good!r}"
    for bad in ("*", "a", "bucket/prefix", "Bucket", "arn:aws:s3:::bucket", "b*"):
        assert not bucket.match(bad), f"BatchOperationsBucketName should refuse {bad!r}"
    # The function can only read TrailFilesBucketName's files: a job needs that bucket named.
    rule = t.get("Rules", {}).get("BatchOperationsNeedTrailFilesBucket")
    assert rule, "a Rule refuses BatchOperationsBucketName without TrailFilesBucketName"
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BatchOperationsBucketName"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "TrailFilesBucketName"}, ""]}]}
    roles = {n: x for n, x in resources(t, "AWS::IAM::Role").items() if n == "BatchOperationsRole"}
    assert roles, "the Batch Operations role exists"
    role = roles["BatchOperationsRole"]
    assert role.get("Condition") == "BatchOperations", "only with BatchOperationsBucketName"
    p = role["Properties"]
    assert not p.get("ManagedPolicyArns"), "no managed policies"
    (assume,) = statements(p["AssumeRolePolicyDocument"])
    assert assume["Effect"] == "Allow" and assume["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}, assume
    assert actions(assume) == {"sts:AssumeRole"}, assume
    granted = []
    for policy in p["Policies"]:
        for s_ in statements(policy["PolicyDocument"]):
            assert s_["Effect"] == "Allow" and "NotAction" not in s_ and "NotResource" not in s_, s_
            res = [x for r_ in as_list(s_["Resource"]) for x in branches(r_)]
            for a in actions(s_):
                granted.append((a, json.dumps(res, sort_keys=True)))
                if a == "lambda:InvokeFunction":
                    assert res == [{"Fn::GetAtt": ["Indexer", "Arn"]}], f"this function only: {res}"
                elif a in ("s3:GetObject", "s3:GetObjectVersion"):
                    assert res == [BATCH_MANIFESTS], f"{a}: the manifests prefix only: {res}"
                elif a == "s3:PutObject":
                    assert res == [BATCH_REPORTS], f"{a}: the reports prefix only: {res}"
                elif a == "s3:GetBucketLocation":
                    assert res == [BATCH_BUCKET], f"{a}: that bucket only: {res}"
                else:
                    raise AssertionError(f"the Batch Operations role may not {a}")
    assert {a for a, _ in granted} == {"lambda:InvokeFunction", "s3:GetObject", "s3:GetObjectVersion",
                                        "s3:PutObject", "s3:GetBucketLocation"}, granted
    out = t["Outputs"].get("BatchOperationsRoleArn")
    assert out, "the role's ARN is an output (backfill --batch-operations needs it)"
    assert out.get("Condition") == "BatchOperations" and out["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}


def check_all(t):
    check_no_unconditioned_star_principal(t)
    check_domain_settings(t)
    check_domain_access_policy(t)
    check_function_role(t)
    check_bucket(t)
    check_trail(t)
    check_subscription_permission(t)
    check_log_retention(t)
    check_alarms(t)
    check_central_account(t)
    check_trail_files(t)
    check_batch_operations(t)


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------
def test_alarms_watch_loss_errors_and_throttles(template):
    check_alarms(template)


def test_no_allow_to_star_without_a_condition(template):
    check_no_unconditioned_star_principal(template)


def test_domain_encryption_https_and_tls12(template):
    check_domain_settings(template)


def test_domain_access_policy(template):
    check_domain_access_policy(template)


def test_function_role_is_least_privilege(template):
    check_function_role(template)


def test_trail_bucket_is_private_and_tls_only(template):
    check_bucket(template)


def test_trail(template):
    check_trail(template)


def test_subscription_permission_is_scoped(template):
    check_subscription_permission(template)


def test_batch_operations_role_is_least_privilege(template):
    check_batch_operations(template)


def test_every_log_group_has_a_retention(template):
    check_log_retention(template)


def test_function_runtime_and_defaults(template):
    _, fn = function(template)
    p = fn["Properties"]
    params = template["Parameters"]
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Metadata"]["BuildProperties"]["Binary"] == "bootstrap"
    assert p["Runtime"] == "provided.al2023" and p["Handler"] == "bootstrap"
    assert p["Architectures"] == [{"Ref": "Architecture"}] and params["Architecture"]["Default"] == "arm64"
    assert p["MemorySize"] == {"Ref": "MemorySize"} and params["MemorySize"]["Default"] == 128
    assert "ReservedConcurrentExecutions" in p
    on_failure = p["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
    assert params["EngineVersion"]["Default"] == "OpenSearch_2.19"


def test_timeout_fits_the_retry_budget(template):
    """Timeout >= MAX_ATTEMPTS x REQUEST_TIMEOUT + every backoff ceiling + DEADLINE_MARGIN."""
    _, fn = function(template)
    env = fn["Properties"]["Environment"]["Variables"]
    attempts = int(env["MAX_ATTEMPTS"])
    request = int(env["REQUEST_TIMEOUT_MS"])
    base, cap = int(env["RETRY_BASE_MS"]), int(env["RETRY_MAX_BACKOFF_MS"])
    margin = int(env["DEADLINE_MARGIN_MS"])
    pauses = sum(min(base * 2**i, cap) for i in range(attempts - 1))
    budget_ms = attempts * request + pauses + margin
    assert budget_ms == 258_200, budget_ms  # the sum the template's comment shows
    assert fn["Properties"]["Timeout"] * 1000 >= budget_ms
    assert fn["Properties"]["Timeout"] <= 900


# Variables the function reads that the stack deliberately leaves unset, each with its reason.
# A new variable in src/config.rs must either be set in template.yaml (Indexer, Environment)
# or be listed here with the reason the stack does not set it.
LEFT_UNSET = {
    "BASIC_AUTH_USER": "the stack authenticates with SigV4 and the function's role: no secret in the environment",
    "BASIC_AUTH_PASSWORD": "the stack authenticates with SigV4 and the function's role: no secret in the environment",
    "SNS_ENDPOINT_URL": "SNS's regional endpoint is right; in a VPC without NAT, an SNS interface endpoint with "
    "private DNS (its default) makes that same name resolve to it",
    "S3_ENDPOINT_URL": "S3's regional endpoint is right (a gateway endpoint needs no other name); the variable "
    "exists for tests against a local S3 server",
}


def test_environment_covers_every_variable_the_function_reads(template):
    """Every variable src/config.rs reads is set by the template, or listed in LEFT_UNSET."""
    _, fn = function(template)
    env = fn["Properties"]["Environment"]["Variables"]
    source = (ROOT / "src" / "config.rs").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AUTH|COMPRESSION|DETECTIONS)"', source))
    read = {v for v in read if not v.startswith("AWS_")}  # set by Lambda itself
    missing = read - set(LEFT_UNSET) - set(env)
    assert not missing, (
        f"src/config.rs reads {sorted(missing)}, which template.yaml does not set: add them to the "
        "Indexer's Environment (with a parameter where a user should choose), or to LEFT_UNSET "
        "in tests/template_security.py with the reason"
    )
    assert not (set(env) & set(LEFT_UNSET))
    assert env["AUTH"] == "sigv4"
    # The single-node default domain gets INDEX_REPLICAS=0.
    assert env["INDEX_REPLICAS"] == {"Fn::If": ["ReplicasAuto", {"Fn::If": ["SingleNodeDomain", "0", ""]}, {"Ref": "IndexReplicas"}]}


@pytest.mark.parametrize(
    "name, mutate",
    [
        ("es:* for the function", lambda t: t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].__setitem__("Action", "es:*")),
        ("ESHttpDelete for the function", lambda t: t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Action"].append("es:ESHttpDelete")),
        ("function on every domain", lambda t: t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].__setitem__("Resource", "*")),
        ("Principal * without condition", lambda t: _domain_statements(t)[2]["Fn::If"][1].pop("Condition")),
        ("open domain statement", lambda t: _domain_statements(t).append({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:ESHttpGet", "Resource": "*"})),
        ("function gets DELETE on the domain", lambda t: _domain_statements(t)[0]["Action"].append("es:ESHttpDelete")),
        ("CIDR may be 0.0.0.0/0", lambda t: t["Parameters"]["AllowedCidr"].__setitem__("AllowedPattern", "^.*$")),
        ("admin may be *", lambda t: t["Parameters"]["AdminPrincipalArn"].__setitem__("AllowedPattern", "^.*$")),
        ("no encryption at rest", lambda t: _domain(t)["EncryptionAtRestOptions"].__setitem__("Enabled", False)),
        ("no node-to-node", lambda t: _domain(t)["NodeToNodeEncryptionOptions"].__setitem__("Enabled", False)),
        ("TLS 1.0", lambda t: _domain(t)["DomainEndpointOptions"].__setitem__("TLSSecurityPolicy", "Policy-Min-TLS-1-0-2019-07")),
        ("HTTP allowed", lambda t: _domain(t)["DomainEndpointOptions"].__setitem__("EnforceHTTPS", False)),
        ("public bucket", lambda t: t["Resources"]["TrailBucket"]["Properties"]["PublicAccessBlockConfiguration"].__setitem__("RestrictPublicBuckets", False)),
        ("no TLS-only statement", lambda t: t["Resources"]["TrailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].pop(0)),
        ("permission without account", lambda t: t["Resources"]["IndexerInvokePermission"]["Properties"].pop("SourceAccount")),
        ("permission without source ARN", lambda t: t["Resources"]["IndexerInvokePermission"]["Properties"].__setitem__("SourceArn", "*")),
        ("log group without retention", lambda t: t["Resources"]["FunctionLogGroup"]["Properties"].pop("RetentionInDays")),
        ("no dead-letter alarm", lambda t: t["Resources"].pop("DeadLetteredAlarm")),
        ("alarm on another function", lambda t: t["Resources"]["ErrorsAlarm"]["Properties"]["Dimensions"][0].__setitem__("Value", "other")),
        ("silent alarm", lambda t: t["Resources"]["ThrottlesAlarm"]["Properties"].pop("AlarmActions")),
        ("kinesis:* for the function", lambda t: _stream_read(t).__setitem__("Action", "kinesis:*")),
        ("the function reads every stream", lambda t: _stream_read(t).__setitem__("Resource", "*")),
        ("the function may put records", lambda t: _stream_read(t)["Action"].append("kinesis:PutRecord")),
        ("logs role puts anywhere", lambda t: t["Resources"]["CentralLogsRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].__setitem__("Resource", "*")),
        ("logs role for any source", lambda t: t["Resources"]["CentralLogsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].pop("Condition")),
        ("destination open to all", lambda t: t["Resources"]["CentralDestination"]["Properties"]["DestinationPolicy"]["Fn::Sub"].__setitem__(0, t["Resources"]["CentralDestination"]["Properties"]["DestinationPolicy"]["Fn::Sub"][0].replace('["${Members}"]', '"*"'))),
        ("no batch item failures", lambda t: t["Resources"]["CentralStreamMapping"]["Properties"].pop("FunctionResponseTypes")),
        ("unencrypted stream", lambda t: t["Resources"]["CentralStream"]["Properties"]["StreamEncryption"].__setitem__("EncryptionType", "NONE")),
        ("the function reads the whole bucket", lambda t: _policy(t, "read-trail-files")[0].__setitem__("Resource", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${TrailFilesBucketName}/*"})),
        ("the function may write trail files", lambda t: _policy(t, "read-trail-files")[0].__setitem__("Action", ["s3:GetObject", "s3:PutObject"])),
        ("the function reads every queue", lambda t: _policy(t, "read-trail-files")[1].__setitem__("Resource", "*")),
        ("any bucket may notify", lambda t: t["Resources"]["TrailFilesQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0].pop("Condition")),
        ("unencrypted trail files queue", lambda t: t["Resources"]["TrailFilesQueue"]["Properties"].pop("SqsManagedSseEnabled")),
        ("trail files without batch item failures", lambda t: t["Resources"]["TrailFilesMapping"]["Properties"].pop("FunctionResponseTypes")),
        ("batch role invokes every function", lambda t: _batch_policy(t, "invoke-indexer")[0].__setitem__("Resource", "*")),
        ("batch role may update the function", lambda t: _batch_policy(t, "invoke-indexer")[0].__setitem__("Action", ["lambda:InvokeFunction", "lambda:UpdateFunctionCode"])),
        ("batch role reads the whole bucket", lambda t: _batch_policy(t, "manifests-and-reports")[0].__setitem__("Resource", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BatchOperationsBucketName}/*"})),
        ("batch role reads the trail files", lambda t: _batch_policy(t, "manifests-and-reports").append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": TRAIL_FILES_OBJECTS})),
        ("batch role overwrites manifests", lambda t: _batch_policy(t, "manifests-and-reports")[1].__setitem__("Resource", BATCH_MANIFESTS)),
        ("batch role may delete reports", lambda t: _batch_policy(t, "manifests-and-reports")[1].__setitem__("Action", ["s3:PutObject", "s3:DeleteObject"])),
        ("batch role s3:*", lambda t: _batch_policy(t, "manifests-and-reports")[2].__setitem__("Action", "s3:*")),
        ("batch role for any service", lambda t: t["Resources"]["BatchOperationsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].__setitem__("Principal", {"Service": "lambda.amazonaws.com"})),
        ("batch role for anyone", lambda t: t["Resources"]["BatchOperationsRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].__setitem__("Principal", {"AWS": "*"})),
        ("batch role always created", lambda t: t["Resources"]["BatchOperationsRole"].pop("Condition")),
        ("batch bucket may be anything", lambda t: t["Parameters"]["BatchOperationsBucketName"].__setitem__("AllowedPattern", "^.*$")),
        ("batch jobs without the trail files bucket", lambda t: t["Rules"].pop("BatchOperationsNeedTrailFilesBucket")),
        ("no batch role output", lambda t: t["Outputs"].pop("BatchOperationsRoleArn")),
        ("managed admin policy", lambda t: t["Resources"]["FunctionRole"]["Properties"].__setitem__("ManagedPolicyArns", ["arn:aws:iam::aws:policy/AdministratorAccess"])),
    ],
)
def test_the_checks_catch_a_widened_template(template, name, mutate):
    broken = copy.deepcopy(template)
    mutate(broken)
    with pytest.raises(AssertionError):
        check_all(broken)


def test_every_checkov_skip_says_why():
    """`# checkov:skip=CKV_..:reason` inside a resource: each with a reason of a sentence or more."""
    lines = TEMPLATE.read_text().splitlines()
    skips = [(n, l) for n, l in enumerate(lines, 1) if "checkov:skip" in l]
    assert skips, "no skips? then drop this test"
    for n, line in skips:
        # Indented as a resource's attributes (Type, Properties): inside its scope, where checkov reads it.
        m = re.fullmatch(r"    # checkov:skip=(CKV2?_AWS_\d+):(.+)", line)
        assert m, f"template.yaml:{n}: not `    # checkov:skip=CKV_AWS_N:reason` in a resource: {line.strip()}"
        assert len(m.group(2).split()) >= 8, f"template.yaml:{n}: {m.group(1)} needs a real reason"


def _domain(t):
    return t["Resources"]["Domain"]["Properties"]


def _policy(t, name):
    for policy in t["Resources"]["FunctionRole"]["Properties"]["Policies"]:
        for p in branches(policy):
            if p["PolicyName"] == name:
                return p["PolicyDocument"]["Statement"]
    raise AssertionError(f"no {name} policy")


def _batch_policy(t, name):
    for p in t["Resources"]["BatchOperationsRole"]["Properties"]["Policies"]:
        if p["PolicyName"] == name:
            return p["PolicyDocument"]["Statement"]
    raise AssertionError(f"no {name} policy")


def _stream_read(t):
    for policy in t["Resources"]["FunctionRole"]["Properties"]["Policies"]:
        for p in branches(policy):
            if p["PolicyName"] == "read-central-stream":
                return p["PolicyDocument"]["Statement"][0]
    raise AssertionError("no read-central-stream policy")


def _domain_statements(t):
    return _domain(t)["AccessPolicies"]["Statement"]


def test_the_checks_pass_on_the_template_itself(template):
    check_all(template)
