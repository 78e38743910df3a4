"""The security properties of template.yaml, asserted so that a later edit cannot widen access
without failing `make test`.

    .venv-sam/bin/python -m pytest -q tests/template_security.py     (make template-test)

The template is read with PyYAML and a loader that turns CloudFormation's short tags (!Ref,
!Sub, !If, ...) into their long forms ({"Ref": ...}, {"Fn::Sub": ...}), so the assertions see
exactly what CloudFormation sees. Conditions are not evaluated: wherever a value is
`Fn::If [cond, a, b]`, both `a` and `b` must be safe, because a parameter can select either.

`render()` also evaluates the template for chosen parameters, as CloudFormation would: the
Conditions, the Rules, each resource's Condition and every Fn::If. The mode tests render
DashboardsAuth=none, cognito and internal (public and in a VPC), check each mode's resources,
that no Ref, GetAtt or ${...} points at a resource the mode does not create, and that the Rules
refuse the combinations that cannot work.

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
DOMAIN_RESOURCE = {"Fn::Sub": "arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/${DomainName}/*"}
COGNITO_USERS_ROLE = {"Fn::GetAtt": ["DashboardsAuthenticatedRole", "Arn"]}
# The actions of the AWS managed AmazonOpenSearchServiceCognitoAccess policy (v2), by resource.
COGNITO_IDP_ACTIONS = {
    "cognito-idp:DescribeUserPool",
    "cognito-idp:CreateUserPoolClient",
    "cognito-idp:DeleteUserPoolClient",
    "cognito-idp:UpdateUserPoolClient",
    "cognito-idp:DescribeUserPoolClient",
    "cognito-idp:AdminInitiateAuth",
    "cognito-idp:AdminUserGlobalSignOut",
    "cognito-idp:ListUserPoolClients",
}
COGNITO_IDENTITY_ACTIONS = {
    "cognito-identity:DescribeIdentityPool",
    "cognito-identity:UpdateIdentityPool",
    "cognito-identity:GetIdentityPoolRoles",
}
IDENTITY_POOL_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:cognito-identity:${AWS::Region}:${AWS::AccountId}:identitypool/${DashboardsIdentityPool}"
}
COLLECTION_ARN = {"Fn::GetAtt": ["Collection", "Arn"]}
SERVERLESS_RESOURCES = ("CollectionEncryptionPolicy", "CollectionNetworkPolicy", "Collection", "CollectionDataAccessPolicy")
FUNCTION_COLLECTION_PERMISSIONS = {"aoss:DescribeCollectionItems", "aoss:CreateCollectionItems", "aoss:UpdateCollectionItems"}
FUNCTION_INDEX_PERMISSIONS = {"aoss:DescribeIndex", "aoss:CreateIndex", "aoss:UpdateIndex", "aoss:ReadDocument", "aoss:WriteDocument"}
COGNITO_RESOURCES = (
    "DashboardsUserPool",
    "DashboardsUserPoolDomain",
    "DashboardsIdentityPool",
    "DashboardsAuthenticatedRole",
    "DashboardsIdentityPoolRoles",
    "DashboardsCognitoRole",
)


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


def statements_under(policy, path=()):
    """(statement, conditions) for every statement a policy can hold: the Fn::If branches taken
    to reach it, as "Cond" for a true branch and "!Cond" for a false one."""
    if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
        cond, a, b = policy["Fn::If"]
        yield from statements_under(a, path + (cond,))
        yield from statements_under(b, path + ("!" + cond,))
        return
    if policy == NO_VALUE:
        return
    if isinstance(policy, str):
        policy = json.loads(policy)
    items = policy["Statement"]
    for item in items if isinstance(items, list) else [items]:
        yield from _statement_items(item, path)


def _statement_items(item, path):
    if isinstance(item, dict) and set(item) == {"Fn::If"}:
        cond, a, b = item["Fn::If"]
        yield from _statement_items(a, path + (cond,))
        yield from _statement_items(b, path + ("!" + cond,))
    elif item != NO_VALUE:
        yield item, path


def condition_requires(t, name, required):
    """Whether condition `name` is true only when `required` is (through Fn::And and Condition)."""
    if name == required:
        return True
    expr = t["Conditions"][name]
    if "Condition" in expr:
        return condition_requires(t, expr["Condition"], required)
    if "Fn::And" in expr:
        return any("Condition" in part and condition_requires(t, part["Condition"], required) for part in expr["Fn::And"])
    return False


# ------------------------------------------------------------------------------------------------
# Rendering the template for given parameters, as CloudFormation evaluates it
# ------------------------------------------------------------------------------------------------
PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "cwl-indexer",
    "AWS::URLSuffix": "amazonaws.com",
}
_DROP = object()


def parameter_values(t, overrides):
    """Every parameter's value: its Default unless overridden, checked against its constraints
    (so that a test cannot render a combination `sam deploy` would refuse)."""
    unknown = set(overrides) - set(t["Parameters"])
    assert not unknown, f"no such parameters: {unknown}"
    values = {}
    for name, spec in t["Parameters"].items():
        value = overrides.get(name, spec.get("Default", ""))
        items = str(value).split(",") if spec["Type"] == "CommaDelimitedList" else [value]
        for item in items:
            text = str(item)
            if "AllowedValues" in spec:
                assert text in {str(v) for v in spec["AllowedValues"]}, f"{name}={text!r} is not allowed"
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], text), f"{name}={text!r} fails its pattern"
            if spec["Type"] == "Number":
                assert spec.get("MinValue", float("-inf")) <= float(text) <= spec.get("MaxValue", float("inf")), name
        values[name] = items if spec["Type"] == "CommaDelimitedList" else value
    return values


class Rendered:
    """The template as CloudFormation sees it for one set of parameters."""

    def __init__(self, t, **overrides):
        self.source = t
        self.params = parameter_values(t, overrides)
        self._conditions = {}
        self.resources = {
            name: self.resolve(r) for name, r in t["Resources"].items() if "Condition" not in r or self.condition(r["Condition"])
        }
        self.outputs = {
            name: self.resolve(o) for name, o in t["Outputs"].items() if "Condition" not in o or self.condition(o["Condition"])
        }

    # -- conditions and rules
    def operand(self, x):
        if isinstance(x, dict) and "Ref" in x:
            return self.params[x["Ref"]] if x["Ref"] in self.params else PSEUDO[x["Ref"]]
        if isinstance(x, dict) and "Fn::Join" in x:
            delimiter, items = x["Fn::Join"]
            items = self.operand(items) if isinstance(items, dict) else [self.operand(i) for i in items]
            return delimiter.join(str(i) for i in items)
        if isinstance(x, dict):
            return self.truth(x)
        return x

    def truth(self, expr):
        (fn, args), = expr.items()
        if fn == "Fn::Equals":
            a, b = (self.operand(v) for v in args)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn == "Fn::And":
            return all(self.truth(a) for a in args)
        if fn == "Fn::Or":
            return any(self.truth(a) for a in args)
        if fn == "Condition":
            return self.condition(args)
        raise NotImplementedError(fn)

    def condition(self, name):
        if name not in self._conditions:
            self._conditions[name] = self.truth(self.source["Conditions"][name])
        return self._conditions[name]

    def refused_by(self):
        """The AssertDescription of every Rule assertion these parameters fail."""
        failed = []
        for rule in self.source.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
                continue
            failed += [a["AssertDescription"] for a in rule["Assertions"] if not self.truth(a["Assert"])]
        return failed

    # -- values
    def resolve(self, node):
        if isinstance(node, dict) and set(node) == {"Fn::If"}:
            cond, a, b = node["Fn::If"]
            return self.resolve(a if self.condition(cond) else b)
        if node == NO_VALUE:
            return _DROP
        if isinstance(node, dict):
            out = {k: self.resolve(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not _DROP}
        if isinstance(node, list):
            return [v for v in (self.resolve(i) for i in node) if v is not _DROP]
        return node

    def of_type(self, type_):
        return {n: r for n, r in self.resources.items() if r["Type"] == type_}

    def as_template(self):
        """The rendering in the template's own shape, for the check_* functions; `_values` holds
        the parameters' values (values_of() answers with them)."""
        t = {k: v for k, v in self.source.items() if k not in ("Resources", "Outputs")}
        return {**t, "Resources": self.resources, "Outputs": self.outputs, "_values": self.params}

    def dangling_references(self):
        """Ref, GetAtt, DependsOn and ${...} that name neither a parameter, a pseudo parameter nor
        a resource this rendering creates: CloudFormation refuses such a template."""
        known = set(self.resources) | set(self.params) | set(PSEUDO)
        found = []

        def walk(node, where):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "Ref" and isinstance(v, str) and v not in known:
                        found.append((where, v))
                    elif k == "Fn::GetAtt" and v[0] not in known:
                        found.append((where, v[0]))
                    elif k == "Fn::Sub":
                        text, local = (v, {}) if isinstance(v, str) else v
                        for name in re.findall(r"\$\{([^!][^}.]*)(?:\.[^}]*)?\}", text):
                            if name not in known and name not in local:
                                found.append((where, name))
                        walk(local, where)
                    else:
                        walk(v, f"{where}.{k}")
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, f"{where}[{i}]")

        for name, r in self.resources.items():
            for dep in as_list(r.get("DependsOn", [])):
                if dep not in self.resources:
                    found.append((name, dep))
            walk(r, name)
        walk(self.outputs, "Outputs")
        return found


# ------------------------------------------------------------------------------------------------
# The checks, as functions of a template, so the mutation tests can run them on broken copies
# ------------------------------------------------------------------------------------------------
def is_star(principal):
    return principal == "*" or (isinstance(principal, dict) and any("*" in as_list(v) for v in principal.values()))


def check_no_unconditioned_star_principal(t):
    """No Allow to Principal "*" without a Condition, but for one statement: internal users of a
    VPC domain, whose unsigned requests fine-grained access control then authenticates."""
    for where, doc in all_policy_documents(t):
        for s, path in statements_under(resolved_json(doc)):
            if is_star(s.get("Principal")) and s.get("Effect") == "Allow" and not s.get("Condition"):
                assert _internal_users_behind_a_vpc(t, where, s, path), (
                    f"{where}: Allow to Principal * without a Condition: {s}"
                )


def _internal_users_behind_a_vpc(t, where, s, path):
    if s.get("Sid") != "DashboardsInternalUsersInVpc" or not where.endswith("Domain.Properties.AccessPolicies"):
        return False
    if actions(s) & {"es:ESHttpDelete", "es:ESHttp*", "es:*", "*"}:
        return False
    domain = _domain(t)
    if "_values" not in t:
        # The template: the statement exists only when the domain is in a VPC and has internal users.
        guards = [c for c in path if not c.startswith("!")]
        return any(condition_requires(t, c, "DomainInVpc") and condition_requires(t, c, "InternalAuth") for c in guards)
    # A rendering: the domain really is in a VPC, behind fine-grained access control.
    fgac = domain.get("AdvancedSecurityOptions", {})
    return (
        "VPCOptions" in domain
        and fgac.get("Enabled") is True
        and fgac.get("InternalUserDatabaseEnabled") is True
        and fgac.get("AnonymousAuthEnabled") is False
    )


def values_of(t, value):
    """The values a property can take: a literal (each Fn::If branch), or a parameter's
    AllowedValues; in a rendering, the parameter's value."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in t["Parameters"]:
        if "_values" in t:
            return [str(t["_values"][value["Ref"]])]
        return [str(v) for v in t["Parameters"][value["Ref"]].get("AllowedValues", [])]
    return [str(v) for v in branches(value)]


def domain_arn_text(t):
    return "arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/${DomainName}/*"


def check_domain_settings(t):
    _, domain = one(t, "AWS::OpenSearchService::Domain")
    p = domain["Properties"]
    assert p["EncryptionAtRestOptions"]["Enabled"] is True, "encryption at rest"
    assert p["NodeToNodeEncryptionOptions"]["Enabled"] is True, "node-to-node encryption"
    assert p["DomainEndpointOptions"]["EnforceHTTPS"] is True, "HTTPS only"
    assert p["DomainEndpointOptions"]["TLSSecurityPolicy"] in TLS12_POLICIES, "TLS 1.2 or later"
    for fgac in branches(p.get("AdvancedSecurityOptions", NO_VALUE)):
        assert fgac.get("AnonymousAuthEnabled") is not True, "no anonymous access under fine-grained access control"


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
        elif who == COGNITO_USERS_ROLE:
            # Signed-in Cognito users: every HTTP method on this domain, as AWS documents it.
            assert actions(s) == {"es:ESHttp*"} and "Condition" not in s, s
        elif who == "*" and "Condition" not in s:
            # Internal users of a VPC domain (check_no_unconditioned_star_principal checks when).
            assert s.get("Sid") == "DashboardsInternalUsersInVpc", f"unconditioned anonymous access: {s}"
            assert not actions(s) & {"es:ESHttpDelete", "es:ESHttp*"}, s
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
    es_statements, aoss_statements = [], []
    for policy in role["Policies"]:
        for p in branches(policy):
            for s in statements(p["PolicyDocument"]):
                assert s["Effect"] == "Allow", s
                acts = actions(s)
                for a in acts:
                    assert a != "*" and not a.endswith(":*"), f"wildcard action {a}"
                if any(a.startswith("aoss:") for a in acts):
                    # Serverless: reaching the data plane of this collection; the data access
                    # policy (check_serverless) says what the role may do there.
                    aoss_statements.append(s)
                    assert acts == {"aoss:APIAccessAll"}, f"aoss:APIAccessAll only: {acts}"
                    assert as_list(s["Resource"]) == [COLLECTION_ARN], f"this collection only: {s['Resource']}"
                    continue
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
    assert es_statements or aoss_statements, "the function may write to the domain or the collection"
    if "_values" not in t:
        for policy in role["Policies"]:
            guard = policy.get("Fn::If", [None])[0] if isinstance(policy, dict) else None
            names = [p["PolicyName"] for p in branches(policy)]
            if "opensearch-write" in names:
                assert policy["Fn::If"][1:] == [NO_VALUE, policy["Fn::If"][2]] and guard == "UseServerless", "no es:* with Serverless"
            if "opensearch-serverless-api" in names:
                assert guard == "UseServerless" and policy["Fn::If"][2] == NO_VALUE, "aoss only with Serverless"


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
    """Every log group the function subscribes to (the trail's, the flow log's, the findings')
    may invoke it, each scoped by this account and that group's ARN, and nothing else may."""
    perms = resources(t, "AWS::Lambda::Permission")
    assert set(perms) <= {"IndexerInvokePermission", "FlowLogInvokePermission", "FindingsInvokePermission"}, sorted(perms)
    expected = {
        "IndexerInvokePermission": [
            {"Fn::GetAtt": ["TrailLogGroup", "Arn"]},
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${ExistingLogGroupName}:*"},
        ],
        "FlowLogInvokePermission": [{"Fn::GetAtt": ["FlowLogGroup", "Arn"]}],
        "FindingsInvokePermission": [{"Fn::GetAtt": ["FindingsLogGroup", "Arn"]}],
    }
    for name, perm in perms.items():
        p = perm["Properties"]
        assert p["Action"] == "lambda:InvokeFunction", name
        assert p["Principal"] == "logs.amazonaws.com", name
        assert p.get("SourceAccount") == {"Ref": "AWS::AccountId"}, f"{name}: scoped by account"
        assert list(branches(p.get("SourceArn"))) == expected[name], f"{name}: scoped by the log group's ARN"
        assert p["FunctionName"] == {"Fn::GetAtt": ["Indexer", "Arn"]}, name
    subs = resources(t, "AWS::Logs::SubscriptionFilter")
    to_stream = {"FlowLogStreamSubscription", "FindingsStreamSubscription"}
    assert set(subs) <= {"TrailSubscription", "FlowLogSubscription", "FindingsSubscription"} | to_stream, sorted(subs)
    for name, sub in subs.items():
        if name in to_stream:
            # LogTypesThroughStream: into the central stream, through the role CloudWatch Logs
            # assumes for it (which may put into that stream only).
            assert sub["Properties"]["DestinationArn"] == {"Fn::GetAtt": ["CentralStream", "Arn"]}, name
            assert sub["Properties"]["RoleArn"] == {"Fn::GetAtt": ["CentralLogsRole", "Arn"]}, name
            continue
        assert sub["Properties"]["DestinationArn"] == {"Fn::GetAtt": ["Indexer", "Arn"]}, name
    assert subs["FlowLogSubscription"]["Properties"]["LogGroupName"] == {"Ref": "FlowLogGroup"}
    assert subs["FlowLogSubscription"]["DependsOn"] == "FlowLogInvokePermission"
    assert subs["FindingsSubscription"]["Properties"]["LogGroupName"] == {"Ref": "FindingsLogGroup"}
    assert subs["FindingsSubscription"]["DependsOn"] == "FindingsInvokePermission"


def check_logtypes(t):
    """The flow log and the findings rule: each writes only into its own log group, the flow
    log in the format the function is told, the rule only GuardDuty findings."""
    r = t["Resources"]
    for name, condition in [("FlowLogGroup", "CreateFlowLog"), ("FlowLogRole", "CreateFlowLog"), ("FlowLog", "CreateFlowLog"),
                            ("FindingsLogGroup", "GuardDutyFindings"), ("FindingsRule", "GuardDutyFindings"),
                            ("FindingsLogGroupPolicy", "GuardDutyFindings")]:
        assert r[name].get("Condition") == condition, f"{name} is optional"
    trust = r["FlowLogRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1 and trust[0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    condition = trust[0].get("Condition", {}).get("StringEquals", {})
    assert condition.get("aws:SourceAccount") == {"Ref": "AWS::AccountId"}, "confused deputy"
    policies = r["FlowLogRole"]["Properties"]["Policies"]
    assert len(policies) == 1 and "ManagedPolicyArns" not in r["FlowLogRole"]["Properties"]
    for st in policies[0]["PolicyDocument"]["Statement"]:
        assert set(st["Action"]) <= {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}
        for arn in st["Resource"]:
            assert arn == {"Fn::GetAtt": ["FlowLogGroup", "Arn"]} or (
                isinstance(arn, dict) and "${FlowLogGroup}" in arn.get("Fn::Sub", "")
            ), arn
    fl = r["FlowLog"]["Properties"]
    assert fl["ResourceType"] == "VPC" and fl["ResourceId"] == {"Ref": "FlowLogVpcId"}
    assert fl["LogGroupName"] == {"Ref": "FlowLogGroup"} and fl["LogDestinationType"] == "cloud-watch-logs"
    fmt = {"Fn::FindInMap": ["FlowLogs", "Format", "Fields"]}
    assert fl["LogFormat"] == fmt
    _, fn = function(t)
    env = fn["Properties"]["Environment"]["Variables"]["FLOW_LOG_FORMATS"]
    sub = env["Fn::If"][1]["Fn::Sub"]
    assert sub[0] == '{"/aws/vpc/flowlogs/${AWS::StackName}": "${Format}"}' and sub[1]["Format"] == fmt, "the function reads the flow log's format"
    assert r["FlowLogGroup"]["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/vpc/flowlogs/${AWS::StackName}"}
    fields = t["Mappings"]["FlowLogs"]["Format"]["Fields"].split()
    assert fields[:14] == "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}".split()
    assert all(re.fullmatch(r"\$\{[a-z0-9-]+\}", f) for f in fields) and len(set(fields)) == len(fields)

    rule = r["FindingsRule"]["Properties"]
    assert rule["EventPattern"] == {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}
    assert [x["Arn"] for x in rule["Targets"]] == [{"Fn::GetAtt": ["FindingsLogGroup", "Arn"]}]
    assert r["FindingsLogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"].startswith("/aws/events/"), "EventBridge writes only there"
    doc_sub = r["FindingsLogGroupPolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"]
    doc = json.loads(doc_sub[0])
    assert doc_sub[1] == {"GroupArn": {"Fn::GetAtt": ["FindingsLogGroup", "Arn"]}, "RuleArn": {"Fn::GetAtt": ["FindingsRule", "Arn"]}}
    (st,) = doc["Statement"]
    assert set(st["Principal"]["Service"]) == {"events.amazonaws.com", "delivery.logs.amazonaws.com"}
    assert set(st["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert st["Resource"] == "${GroupArn}", "this group only"
    assert st.get("Condition") == {"ArnEquals": {"aws:SourceArn": "${RuleArn}"}}, "this rule only"


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
    metrics = (ROOT / "src" / "ops" / "metrics.rs").read_text()
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


def check_cognito(t):
    """DashboardsAuth=cognito: admin-created users with MFA and a strong password, threat
    protection on its plan, an identity pool without guests whose only role trusts only its
    signed-in users, and the OpenSearch role confined to these pools."""
    r = t["Resources"]
    rendered = "_values" in t
    present = [n for n in COGNITO_RESOURCES if n in r]
    if not present:  # a rendering without DashboardsAuth=cognito
        assert "DashboardsAdminUser" not in r
        assert "Domain" not in r or "CognitoOptions" not in _domain(t)
        return
    assert present == list(COGNITO_RESOURCES), f"Cognito resources: {present}"
    if not rendered:
        for name in COGNITO_RESOURCES:
            assert r[name].get("Condition") == "CognitoAuth", f"{name} only with DashboardsAuth=cognito"

    pool = r["DashboardsUserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True, "no self sign-up"
    mfa = values_of(t, pool.get("MfaConfiguration", "OFF"))
    assert mfa and set(mfa) <= {"ON", "OPTIONAL"}, f"MFA must be required or optional, never off: {mfa}"
    assert "SOFTWARE_TOKEN_MFA" in pool.get("EnabledMfas", []), "TOTP is the second factor"
    if not rendered:
        assert t["Parameters"]["DashboardsMfa"]["Default"] == "ON", "MFA required unless chosen otherwise"
    password = pool["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 14, password
    for key in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"):
        assert password[key] is True, key
    assert 1 <= password["TemporaryPasswordValidityDays"] <= 7, password
    modes = values_of(t, pool["UserPoolAddOns"]["AdvancedSecurityMode"])
    assert set(modes) <= {"ENFORCED", "AUDIT", "OFF"}, modes
    if rendered:
        assert pool["UserPoolTier"] == ("ESSENTIALS" if modes == ["OFF"] else "PLUS"), "threat protection needs Plus"
    else:
        assert "ENFORCED" in modes and t["Parameters"]["DashboardsThreatProtection"]["Default"] == "ENFORCED", (
            f"threat protection enforced unless chosen otherwise: {modes}"
        )
        assert pool["UserPoolTier"] == {"Fn::If": ["CognitoThreatProtection", "PLUS", "ESSENTIALS"]}, (
            f"threat protection needs the Plus plan: {pool['UserPoolTier']}"
        )
        assert t["Conditions"]["CognitoThreatProtection"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DashboardsThreatProtection"}, "OFF"]}]}
    assert r["DashboardsUserPoolDomain"]["Properties"]["UserPoolId"] == {"Ref": "DashboardsUserPool"}

    ids = r["DashboardsIdentityPool"]["Properties"]
    assert ids["AllowUnauthenticatedIdentities"] is False, "no guest identities"
    assert "CognitoIdentityProviders" not in ids, "OpenSearch adds its own app client; a listed one would remove it"
    attachment = r["DashboardsIdentityPoolRoles"]["Properties"]
    assert attachment["IdentityPoolId"] == {"Ref": "DashboardsIdentityPool"}
    assert attachment["Roles"] == {"authenticated": COGNITO_USERS_ROLE}, "the authenticated role only"
    assert "RoleMappings" not in attachment

    users = r["DashboardsAuthenticatedRole"]["Properties"]
    assert not users.get("Policies") and not users.get("ManagedPolicyArns"), "its only grant is the domain's policy"
    (trust,) = statements(users["AssumeRolePolicyDocument"])
    assert trust["Effect"] == "Allow" and actions(trust) == {"sts:AssumeRoleWithWebIdentity"}, trust
    assert trust["Principal"] == {"Federated": "cognito-identity.amazonaws.com"}, f"only Cognito identity: {trust}"
    condition = trust.get("Condition", {})
    assert condition.get("StringEquals", {}).get("cognito-identity.amazonaws.com:aud") == {"Ref": "DashboardsIdentityPool"}, (
        f"only this identity pool: {trust}"
    )
    assert condition.get("ForAnyValue:StringLike", {}).get("cognito-identity.amazonaws.com:amr") == "authenticated", (
        f"only signed-in users: {trust}"
    )

    service = r["DashboardsCognitoRole"]["Properties"]
    assert not service.get("ManagedPolicyArns"), "the managed policy's actions, confined here"
    (trust,) = statements(service["AssumeRolePolicyDocument"])
    assert trust["Effect"] == "Allow" and actions(trust) == {"sts:AssumeRole"}, trust
    assert trust["Principal"] == {"Service": "opensearchservice.amazonaws.com"}, f"OpenSearch Service only: {trust}"
    granted = set()
    for policy in service["Policies"]:
        for s in statements(policy["PolicyDocument"]):
            assert s["Effect"] == "Allow", s
            acts, where = actions(s), as_list(s["Resource"])
            if acts <= COGNITO_IDP_ACTIONS:
                assert where == [{"Fn::GetAtt": ["DashboardsUserPool", "Arn"]}], f"this user pool only: {s}"
            elif acts <= COGNITO_IDENTITY_ACTIONS:
                assert where == [IDENTITY_POOL_ARN], f"this identity pool only: {s}"
            elif acts == {"cognito-identity:SetIdentityPoolRoles"}:
                assert where == ["*"], s  # no resource-level permissions exist for it
            elif acts == {"iam:PassRole"}:
                assert where == [COGNITO_USERS_ROLE], f"passes the authenticated role only: {s}"
                assert s.get("Condition") == {"StringEquals": {"iam:PassedToService": "cognito-identity.amazonaws.com"}}, s
            else:
                raise AssertionError(f"unexpected permission for the Cognito role: {s}")
            granted |= acts
    wanted = COGNITO_IDP_ACTIONS | COGNITO_IDENTITY_ACTIONS | {"cognito-identity:SetIdentityPoolRoles", "iam:PassRole"}
    assert granted == wanted, f"what OpenSearch needs to configure the pools: missing {wanted - granted}"

    domain = _domain(t)
    cognito = list(branches(domain.get("CognitoOptions", NO_VALUE)))
    assert cognito == [
        {
            "Enabled": True,
            "UserPoolId": {"Ref": "DashboardsUserPool"},
            "IdentityPoolId": {"Ref": "DashboardsIdentityPool"},
            "RoleArn": {"Fn::GetAtt": ["DashboardsCognitoRole", "Arn"]},
        }
    ], cognito
    if not rendered:
        assert domain["CognitoOptions"].get("Fn::If", [None])[0] == "CognitoAuth", "only with DashboardsAuth=cognito"
    tags = [tag for b in branches(domain.get("Tags", NO_VALUE)) for tag in b]
    assert any("${DashboardsUserPoolDomain}" in json.dumps(tag) for tag in tags), "the domain waits for the sign-in domain"
    assert any(s["Principal"] == {"AWS": COGNITO_USERS_ROLE} for s in statements(domain["AccessPolicies"])), (
        "signed-in users may use the domain"
    )

    if "DashboardsAdminUser" in r:
        admin = r["DashboardsAdminUser"]
        if not rendered:
            assert admin.get("Condition") == "CreateDashboardsAdmin"
        u = admin["Properties"]
        assert u["UserPoolId"] == {"Ref": "DashboardsUserPool"} and u["Username"] == {"Ref": "DashboardsAdminEmail"}
        assert u.get("DesiredDeliveryMediums") == ["EMAIL"] and u.get("MessageAction") != "SUPPRESS", (
            "Cognito emails the temporary password"
        )
        assert not [k for k in u if "password" in k.lower()], "no password in the template"


SECRET_REF = re.compile(r"\{\{resolve:secretsmanager:\$\{(\w+)\}:SecretString:(\w+)\}\}")


def check_secrets(t):
    """No secret is a parameter or sits in the template: every property named *password is a
    Secrets Manager dynamic reference to a secret the stack generates."""
    for name in t["Parameters"]:
        assert not re.search(r"pass(word)?|secret", name, re.I), f"parameter {name}: secrets are never parameters"
    secrets = {n: r for n, r in t["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"}
    for name, secret in secrets.items():
        p = secret["Properties"]
        assert "SecretString" not in p and "GenerateSecretString" in p, f"{name}: generated, never written down"

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if re.search(r"password$", k, re.I):
                    for value in branches(v):
                        m = SECRET_REF.fullmatch(sub_text(value) or "")
                        assert m and m.group(1) in secrets, f"{where}.{k}: plain-text password {value!r}"
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(t["Resources"], "Resources")
    for name, output in t["Outputs"].items():
        assert "resolve:secretsmanager" not in json.dumps(output), f"output {name} would show a secret"


def check_fine_grained_access(t):
    """DashboardsAuth=internal: fine-grained access control, its internal user database, no
    anonymous access, the master user from the generated secret."""
    r = t["Resources"]
    if "Domain" not in r:
        return
    domain = _domain(t)
    options = list(branches(domain.get("AdvancedSecurityOptions", NO_VALUE)))
    if "_values" not in t:
        guard = domain.get("AdvancedSecurityOptions", {}).get("Fn::If", [None])[0]
        assert guard == "InternalAuth", "only with DashboardsAuth=internal"
        assert r["DashboardsMasterUser"].get("Condition") == "InternalAuth"
        assert options, "DashboardsAuth=internal turns on fine-grained access control"
    for o in options:
        assert o["Enabled"] is True and o["InternalUserDatabaseEnabled"] is True, o
        assert o["AnonymousAuthEnabled"] is False, "every request needs a user or a mapped IAM role"
        master = o["MasterUserOptions"]
        assert "MasterUserARN" not in master, "the master user is internal"
        for key, field in (("MasterUserName", "username"), ("MasterUserPassword", "password")):
            m = SECRET_REF.fullmatch(sub_text(master[key]) or "")
            assert m and m.group(2) == field, f"{key} from the generated secret: {master[key]!r}"
            secret = r[m.group(1)]
            assert secret["Type"] == "AWS::SecretsManager::Secret"
            generated = secret["Properties"]["GenerateSecretString"]
            assert generated["GenerateStringKey"] == "password"
            assert set(json.loads(generated["SecretStringTemplate"])) == {"username"}
            assert generated["PasswordLength"] >= 16 and generated["RequireEachIncludedType"] is True, (
                f"a long password with every kind of character: {generated}"
            )


def _json_policies(value):
    """Each JSON document an OpenSearch Serverless policy can be (placeholders kept)."""
    return [json.loads(sub_text(v)) for v in branches(value)]


def check_serverless(t):
    """ServerlessCollection: the collection and its policies, matched to it by name; the data
    access policy names only the function's role and the admin principal, never *; the function
    cannot delete; retention only where AWS supports it (time-series collections)."""
    r = t["Resources"]
    rendered = "_values" in t
    present = [n for n in SERVERLESS_RESOURCES if n in r]
    if not present:  # a rendering without ServerlessCollection
        assert "CollectionRetentionPolicy" not in r
        return
    assert present == list(SERVERLESS_RESOURCES), present
    assert "Domain" not in r or not rendered, "no domain beside the collection"
    if not rendered:
        for name in SERVERLESS_RESOURCES:
            assert r[name].get("Condition") == "UseServerless", name
        assert {"Fn::Not": [{"Condition": "UseServerless"}]} in t["Conditions"]["CreateDomain"]["Fn::And"], (
            "no domain is created beside the collection"
        )
    collection_rule = ["collection/${DomainName}"]

    collection = r["Collection"]
    assert collection["Properties"]["Name"] == {"Ref": "DomainName"}
    assert set(values_of(t, collection["Properties"]["Type"])) <= {"SEARCH", "TIMESERIES"}
    assert {"CollectionEncryptionPolicy", "CollectionNetworkPolicy"} <= set(as_list(collection.get("DependsOn", []))), (
        "the collection is created after its encryption and network policies"
    )
    # Policy names: at most 32 characters, with the longest DomainName.
    longest = max(int(n) for n in re.findall(r"\{\d+,(\d+)\}", t["Parameters"]["DomainName"]["AllowedPattern"])) + 1
    for name in ("CollectionEncryptionPolicy", "CollectionNetworkPolicy", "CollectionDataAccessPolicy", "CollectionRetentionPolicy"):
        if name in r:
            text = sub_text(r[name]["Properties"]["Name"])
            assert len(text.replace("${DomainName}", "x" * longest)) <= 32, f"{name}: {text}"

    enc = r["CollectionEncryptionPolicy"]["Properties"]
    assert enc["Type"] == "encryption"
    for doc in _json_policies(enc["Policy"]):
        assert doc["Rules"] == [{"ResourceType": "collection", "Resource": collection_rule}], doc
        assert doc.get("AWSOwnedKey") is True or doc.get("KmsARN"), "encrypted at rest"

    net = r["CollectionNetworkPolicy"]["Properties"]
    assert net["Type"] == "network"
    for doc in _json_policies(net["Policy"]):
        for entry in doc:
            assert sorted(rule["ResourceType"] for rule in entry["Rules"]) == ["collection", "dashboard"], entry
            assert all(rule["Resource"] == collection_rule for rule in entry["Rules"]), f"this collection only: {entry}"
            if entry["AllowFromPublic"] is False:
                assert entry["SourceVPCEs"] == ["${ServerlessVpcEndpointId}"], entry
            else:
                assert entry["AllowFromPublic"] is True and "SourceVPCEs" not in entry, entry
    if not rendered:
        assert net["Policy"]["Fn::If"][0] == "ServerlessPrivate", "the VPC endpoint when one is given"
        assert json.loads(sub_text(net["Policy"]["Fn::If"][1]))[0]["AllowFromPublic"] is False, (
            "with ServerlessVpcEndpointId, nothing from the public network"
        )

    data = r["CollectionDataAccessPolicy"]["Properties"]
    assert data["Type"] == "data"
    saw_function = False
    for doc in _json_policies(data["Policy"]):
        for entry in doc:
            principals = entry["Principal"]
            assert principals and not [p for p in principals if "*" in p], f"no wildcard principal: {entry}"
            assert set(principals) <= {"${FunctionRole.Arn}", "${AdminPrincipalArn}"}, f"unexpected principal: {principals}"
            for rule in entry["Rules"]:
                perms = set(rule["Permission"])
                assert not [p for p in perms if p.endswith("*")], f"no wildcard permission: {rule}"
                if rule["ResourceType"] == "collection":
                    assert rule["Resource"] == collection_rule, rule
                else:
                    assert rule["ResourceType"] == "index", rule
                    assert all(res.startswith("index/${DomainName}/") for res in rule["Resource"]), f"this collection only: {rule}"
            if principals == ["${FunctionRole.Arn}"]:
                saw_function = True
                by_type = {rule["ResourceType"]: rule for rule in entry["Rules"]}
                assert set(by_type) == {"collection", "index"}, entry
                assert set(by_type["collection"]["Permission"]) == FUNCTION_COLLECTION_PERMISSIONS, by_type["collection"]
                assert set(by_type["index"]["Permission"]) == FUNCTION_INDEX_PERMISSIONS, f"never delete: {by_type['index']}"
                assert by_type["index"]["Resource"] == ["index/${DomainName}/${IndexPrefix}-*"], "its own indices only"
            else:
                assert principals == ["${AdminPrincipalArn}"], f"the function and the admin each on their own: {principals}"
    assert saw_function, "the function's role may write"
    if not rendered:
        with_admin, without = data["Policy"]["Fn::If"][1:]
        assert data["Policy"]["Fn::If"][0] == "HasAdmin"
        assert "${AdminPrincipalArn}" not in sub_text(without), "no empty principal without AdminPrincipalArn"

    if "CollectionRetentionPolicy" in r or not rendered:
        life = r["CollectionRetentionPolicy"]
        if not rendered:
            assert condition_requires(t, life["Condition"], "ServerlessTimeSeries"), "search collections take no lifecycle policy"
            assert t["Conditions"]["ServerlessTimeSeries"]["Fn::And"][1] == {"Fn::Equals": [{"Ref": "ServerlessCollectionType"}, "TIMESERIES"]}
        assert life["Properties"]["Type"] == "retention"
        (doc,) = _json_policies(life["Properties"]["Policy"])
        assert doc["Rules"] == [
            {"ResourceType": "index", "Resource": ["index/${DomainName}/${IndexPrefix}-*"], "MinIndexRetention": "${IndexRetentionDays}d"}
        ], doc
        days = t["Parameters"]["IndexRetentionDays"]
        assert days.get("MinValue") == 0 and days.get("MaxValue") == 3650, "lifecycle policies take 24h to 3650d"

    _, fn = function(t)
    env = fn["Properties"]["Environment"]["Variables"]
    if rendered:
        assert env["SIGV4_SERVICE"] == "aoss" and env["OPENSEARCH_ENDPOINT"] == {"Fn::GetAtt": ["Collection", "CollectionEndpoint"]}
        assert env.get("AOSS_COLLECTION_TYPE") == t["_values"]["ServerlessCollectionType"].lower()
        assert env["RETENTION_DAYS"] == "0" and env["DASHBOARDS_URL"] == "" and env["INDEX_REPLICAS"] == ""
    else:
        assert env["SIGV4_SERVICE"] == {"Fn::If": ["UseServerless", "aoss", "es"]}, f"SIGV4_SERVICE: {env['SIGV4_SERVICE']}"
        assert env["OPENSEARCH_ENDPOINT"]["Fn::If"][:2] == ["UseServerless", {"Fn::GetAtt": ["Collection", "CollectionEndpoint"]}], (
            f"the collection's endpoint on Serverless: {env['OPENSEARCH_ENDPOINT']}"
        )
        assert env.get("AOSS_COLLECTION_TYPE") == {"Fn::If": ["ServerlessTimeSeries", "timeseries", {"Fn::If": ["UseServerless", "search", ""]}]}, (
            f"AOSS_COLLECTION_TYPE search or timeseries on Serverless: {env.get('AOSS_COLLECTION_TYPE')}"
        )
        for var, value in (("RETENTION_DAYS", "0"), ("DASHBOARDS_URL", ""), ("INDEX_REPLICAS", "")):
            assert env[var].get("Fn::If", [None, None])[:2] == ["UseServerless", value], f"{var} on Serverless: {env[var]}"


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
    check_logtypes(t)
    check_log_retention(t)
    check_alarms(t)
    check_central_account(t)
    check_trail_files(t)
    check_cognito(t)
    check_secrets(t)
    check_fine_grained_access(t)
    check_serverless(t)
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


def test_flow_log_and_findings_rule_are_least_privilege(template):
    check_logtypes(template)


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
    "FLOW_LOG_GROUPS": "its default `*flow*` matches the flow-log group the stack creates "
    "(/aws/vpc/flowlogs/<stack>); set it for flow-log groups named otherwise",
    "RULES_FILE": "the retired JSON rule format: config.rs reads it only to refuse it with a message to use "
    "SIGMA_RULES (the template sets SIGMA_RULES)",
}


def test_environment_covers_every_variable_the_function_reads(template):
    """Every variable src/config.rs (and src/config/) reads is set by the template, or listed in LEFT_UNSET."""
    _, fn = function(template)
    env = fn["Properties"]["Environment"]["Variables"]
    source = "\n".join(p.read_text() for p in [ROOT / "src" / "config.rs", *sorted((ROOT / "src" / "config").glob("*.rs"))])
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
    # The single-node default domain gets INDEX_REPLICAS=0; Serverless manages replicas itself.
    assert env["INDEX_REPLICAS"] == {
        "Fn::If": ["UseServerless", "", {"Fn::If": ["ReplicasAuto", {"Fn::If": ["SingleNodeDomain", "0", ""]}, {"Ref": "IndexReplicas"}]}]
    }


def test_full_text_subtrees_is_the_deployers_choice(template):
    """FullTextSubtrees (default auto) reaches FULL_TEXT_SUBTREES, and every value it allows is one
    src/config.rs accepts (FullText::parse), and the other way round."""
    _, fn = function(template)
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["FULL_TEXT_SUBTREES"] == {"Ref": "FullTextSubtrees"}
    assert template["Parameters"]["FullTextSubtrees"]["Default"] == "auto"
    source = (ROOT / "src" / "config.rs").read_text()
    parse = re.search(r"impl FullText \{\s*fn parse.*?\n    \}", source, re.S)
    assert parse, "FullText::parse not found in src/config.rs"
    accepted = set(re.findall(r'"([a-z]+)" => Some', parse.group(0)))
    assert accepted == {"auto", "true", "false"}
    assert set(values_of(template, env["FULL_TEXT_SUBTREES"])) == accepted


@pytest.mark.parametrize(
    "name, mutate",
    [
        ("es:* for the function", lambda t: _policy(t, "opensearch-write")[0].__setitem__("Action", "es:*")),
        ("ESHttpDelete for the function", lambda t: _policy(t, "opensearch-write")[0]["Action"].append("es:ESHttpDelete")),
        ("function on every domain", lambda t: _policy(t, "opensearch-write")[0].__setitem__("Resource", "*")),
        ("Principal * without condition", lambda t: _domain_statement(t, "DashboardsFromAllowedCidr").pop("Condition")),
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
        ("flow log role writes anywhere", lambda t: t["Resources"]["FlowLogRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0].__setitem__("Resource", ["*"])),
        ("flow log role for any account", lambda t: t["Resources"]["FlowLogRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].pop("Condition")),
        ("flow log in another format", lambda t: t["Resources"]["FlowLog"]["Properties"].__setitem__("LogFormat", "${version} ${srcaddr}")),
        ("findings group open to any rule", lambda t: t["Resources"]["FindingsLogGroupPolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"].__setitem__(0, t["Resources"]["FindingsLogGroupPolicy"]["Properties"]["PolicyDocument"]["Fn::Sub"][0].replace(', "Condition": {"ArnEquals": {"aws:SourceArn": "${RuleArn}"}}', ""))),
        ("rule for every event", lambda t: t["Resources"]["FindingsRule"]["Properties"].__setitem__("EventPattern", {"source": [{"prefix": ""}]})),
        ("flow log permission for any group", lambda t: t["Resources"]["FlowLogInvokePermission"]["Properties"].__setitem__("SourceArn", "*")),
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
        # DashboardsAuth=cognito
        ("wildcard principal for Cognito users", lambda t: _domain_statement(t, "DashboardsCognitoUsers").__setitem__("Principal", {"AWS": "*"})),
        ("Cognito users on every domain", lambda t: _domain_statement(t, "DashboardsCognitoUsers").__setitem__("Resource", "*")),
        ("Cognito users get es:*", lambda t: _domain_statement(t, "DashboardsCognitoUsers").__setitem__("Action", "es:*")),
        ("users' role trusted by any identity provider", lambda t: _trust(t, "DashboardsAuthenticatedRole").__setitem__("Principal", {"Federated": "*"})),
        ("users' role trusted by any principal", lambda t: _trust(t, "DashboardsAuthenticatedRole").__setitem__("Principal", "*")),
        ("users' role for any identity pool", lambda t: _trust(t, "DashboardsAuthenticatedRole")["Condition"].pop("StringEquals")),
        ("users' role for guests", lambda t: _trust(t, "DashboardsAuthenticatedRole")["Condition"]["ForAnyValue:StringLike"].__setitem__("cognito-identity.amazonaws.com:amr", "unauthenticated")),
        ("users' role with its own grants", lambda t: t["Resources"]["DashboardsAuthenticatedRole"]["Properties"].__setitem__("ManagedPolicyArns", ["arn:aws:iam::aws:policy/AmazonOpenSearchServiceFullAccess"])),
        ("guest identities", lambda t: t["Resources"]["DashboardsIdentityPool"]["Properties"].__setitem__("AllowUnauthenticatedIdentities", True)),
        ("a guest role", lambda t: t["Resources"]["DashboardsIdentityPoolRoles"]["Properties"]["Roles"].__setitem__("unauthenticated", COGNITO_USERS_ROLE)),
        ("self sign-up", lambda t: _user_pool(t)["AdminCreateUserConfig"].__setitem__("AllowAdminCreateUserOnly", False)),
        ("no MFA option", lambda t: _user_pool(t).pop("MfaConfiguration")),
        ("MFA off", lambda t: _user_pool(t).__setitem__("MfaConfiguration", "OFF")),
        ("MFA parameter allows OFF", lambda t: t["Parameters"]["DashboardsMfa"]["AllowedValues"].append("OFF")),
        ("MFA optional by default", lambda t: t["Parameters"]["DashboardsMfa"].__setitem__("Default", "OPTIONAL")),
        ("no TOTP factor", lambda t: _user_pool(t).__setitem__("EnabledMfas", [])),
        ("short passwords", lambda t: _user_pool(t)["Policies"]["PasswordPolicy"].__setitem__("MinimumLength", 8)),
        ("passwords without symbols", lambda t: _user_pool(t)["Policies"]["PasswordPolicy"].__setitem__("RequireSymbols", False)),
        ("threat protection never on", lambda t: _user_pool(t)["UserPoolAddOns"].__setitem__("AdvancedSecurityMode", "OFF")),
        ("threat protection without its plan", lambda t: _user_pool(t).__setitem__("UserPoolTier", "ESSENTIALS")),
        ("OpenSearch role on every user pool", lambda t: _cognito_role_statements(t)[0].__setitem__("Resource", "*")),
        ("OpenSearch role on every identity pool", lambda t: _cognito_role_statements(t)[1].__setitem__("Resource", "*")),
        ("OpenSearch role passes any role", lambda t: _cognito_role_statements(t)[3].__setitem__("Resource", "*")),
        ("OpenSearch role passes roles to anyone", lambda t: _cognito_role_statements(t)[3].pop("Condition")),
        ("OpenSearch role may delete pools", lambda t: _cognito_role_statements(t)[0]["Action"].append("cognito-idp:DeleteUserPool")),
        ("OpenSearch role trusted by any principal", lambda t: _trust(t, "DashboardsCognitoRole").__setitem__("Principal", {"AWS": "*"})),
        ("OpenSearch role with the managed policy", lambda t: t["Resources"]["DashboardsCognitoRole"]["Properties"].__setitem__("ManagedPolicyArns", ["arn:aws:iam::aws:policy/AmazonOpenSearchServiceCognitoAccess"])),
        ("no CognitoOptions", lambda t: _domain(t).pop("CognitoOptions")),
        ("domain does not wait for the sign-in domain", lambda t: _domain(t).pop("Tags")),
        ("first user's password suppressed", lambda t: t["Resources"]["DashboardsAdminUser"]["Properties"].__setitem__("MessageAction", "SUPPRESS")),
        # DashboardsAuth=internal
        ("plain-text master password", lambda t: _master_user(t).__setitem__("MasterUserPassword", "Correct-Horse-Battery-9")),
        ("master password from a parameter", lambda t: (t["Parameters"].__setitem__("MasterPassword", {"Type": "String", "NoEcho": True}), _master_user(t).__setitem__("MasterUserPassword", {"Ref": "MasterPassword"}))),
        ("master password from another secret", lambda t: _master_user(t).__setitem__("MasterUserPassword", {"Fn::Sub": "{{resolve:secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:x:SecretString:password}}"})),
        ("master user name in clear", lambda t: _master_user(t).__setitem__("MasterUserName", "admin")),
        ("a written-down secret", lambda t: t["Resources"]["DashboardsMasterUser"]["Properties"].__setitem__("SecretString", '{"username":"a","password":"b"}')),
        ("a short generated password", lambda t: t["Resources"]["DashboardsMasterUser"]["Properties"]["GenerateSecretString"].__setitem__("PasswordLength", 8)),
        ("anonymous access under FGAC", lambda t: _fgac(t).__setitem__("AnonymousAuthEnabled", True)),
        ("FGAC without its user database", lambda t: _fgac(t).__setitem__("InternalUserDatabaseEnabled", False)),
        ("FGAC in every mode", lambda t: _domain(t).__setitem__("AdvancedSecurityOptions", _fgac(t))),
        ("internal users open to the internet", lambda t: _guard(t, "DashboardsInternalUsersInVpc").__setitem__(0, "InternalAuth")),
        ("internal users may DELETE", lambda t: _domain_statement(t, "DashboardsInternalUsersInVpc")["Action"].append("es:ESHttpDelete")),
        ("an output shows the password", lambda t: t["Outputs"]["DashboardsMasterUserSecretArn"].__setitem__("Value", {"Fn::Sub": "{{resolve:secretsmanager:${DashboardsMasterUser}:SecretString:password}}"})),
        # ServerlessCollection
        ("wildcard principal in the data access policy", lambda t: _data_access_edit(t, lambda p: p.replace('"Principal":["${FunctionRole.Arn}"]', '"Principal":["*"]'))),
        ("an account-wide principal in the data access policy", lambda t: _data_access_edit(t, lambda p: p.replace("${AdminPrincipalArn}", "arn:aws:iam::123456789012:root"))),
        ("the function may delete indices", lambda t: _data_access_edit(t, lambda p: p.replace('"aoss:ReadDocument","aoss:WriteDocument"]}],"Principal":["${FunctionRole.Arn}"]', '"aoss:ReadDocument","aoss:WriteDocument","aoss:DeleteIndex"]}],"Principal":["${FunctionRole.Arn}"]'))),
        ("the function gets aoss:*", lambda t: _data_access_edit(t, lambda p: p.replace('"Permission":["aoss:DescribeIndex","aoss:CreateIndex","aoss:UpdateIndex","aoss:ReadDocument","aoss:WriteDocument"]', '"Permission":["aoss:*"]'))),
        ("the function on every index", lambda t: _data_access_edit(t, lambda p: p.replace("index/${DomainName}/${IndexPrefix}-*", "index/${DomainName}/*"))),
        ("the admin on every collection", lambda t: _data_access_edit(t, lambda p: p.replace('"Resource":["index/${DomainName}/*"]', '"Resource":["index/*/*"]'))),
        ("an empty admin principal", lambda t: t["Resources"]["CollectionDataAccessPolicy"]["Properties"]["Policy"]["Fn::If"].__setitem__(2, t["Resources"]["CollectionDataAccessPolicy"]["Properties"]["Policy"]["Fn::If"][1])),
        ("aoss on every collection", lambda t: _policy(t, "opensearch-serverless-api")[0].__setitem__("Resource", "*")),
        ("aoss:* for the function", lambda t: _policy(t, "opensearch-serverless-api")[0].__setitem__("Action", "aoss:*")),
        ("aoss permissions with a domain", lambda t: _function_policy_if(t, "opensearch-serverless-api").__setitem__(0, "CreateDomain")),
        ("es permissions on Serverless", lambda t: _function_policy_if(t, "opensearch-write").__setitem__(0, "CreateDomain")),
        ("a domain beside the collection", lambda t: t["Conditions"].__setitem__("CreateDomain", {"Fn::And": [{"Fn::Equals": [{"Ref": "ExistingDomainEndpoint"}, ""]}, {"Fn::Equals": ["a", "a"]}]})),
        ("a public network policy despite the VPC endpoint", lambda t: t["Resources"]["CollectionNetworkPolicy"]["Properties"]["Policy"]["Fn::If"].__setitem__(1, t["Resources"]["CollectionNetworkPolicy"]["Properties"]["Policy"]["Fn::If"][2])),
        ("the network policy for every collection", lambda t: _sub_edit(t["Resources"]["CollectionNetworkPolicy"]["Properties"]["Policy"]["Fn::If"], 2, lambda p: p.replace("collection/${DomainName}", "collection/*"))),
        ("encryption for another collection", lambda t: t["Resources"]["CollectionEncryptionPolicy"]["Properties"].__setitem__("Policy", {"Fn::Sub": '{"Rules":[{"ResourceType":"collection","Resource":["collection/other"]}],"AWSOwnedKey":true}'})),
        ("the collection before its encryption policy", lambda t: t["Resources"]["Collection"].__setitem__("DependsOn", ["CollectionNetworkPolicy"])),
        ("retention on a search collection", lambda t: t["Conditions"].__setitem__("ServerlessRetention", {"Fn::And": [{"Condition": "UseServerless"}, {"Fn::Not": [{"Fn::Equals": [{"Ref": "IndexRetentionDays"}, 0]}]}]})),
        ("retention longer than AWS allows", lambda t: t["Parameters"]["IndexRetentionDays"].pop("MaxValue")),
        ("the function signs for es on Serverless", lambda t: _env(t).__setitem__("SIGV4_SERVICE", "es")),
        ("no collection type for the function", lambda t: _env(t).pop("AOSS_COLLECTION_TYPE")),
        ("ISM on Serverless", lambda t: _env(t).__setitem__("RETENTION_DAYS", {"Ref": "IndexRetentionDays"})),
        ("the function writes to the domain on Serverless", lambda t: _env(t)["OPENSEARCH_ENDPOINT"]["Fn::If"].__setitem__(1, {"Fn::Sub": "https://${Domain.DomainEndpoint}"})),
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


def _env(t):
    return t["Resources"]["Indexer"]["Properties"]["Environment"]["Variables"]


def _function_policy_if(t, name):
    for policy in t["Resources"]["FunctionRole"]["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Fn::If" in policy and name in [p["PolicyName"] for p in branches(policy)]:
            return policy["Fn::If"]
    raise AssertionError(f"no conditional policy {name}")


def _sub_edit(holder, key, edit):
    holder[key] = {"Fn::Sub": edit(sub_text(holder[key]))}


def _data_access_edit(t, edit):
    branches_ = t["Resources"]["CollectionDataAccessPolicy"]["Properties"]["Policy"]["Fn::If"]
    for i in (1, 2):
        _sub_edit(branches_, i, edit)


def _domain_statement(t, sid):
    for s, _ in statements_under(_domain(t)["AccessPolicies"]):
        if s.get("Sid") == sid:
            return s
    raise AssertionError(f"no statement {sid}")


def _guard(t, sid):
    """The Fn::If arguments [condition, statement, NoValue] around statement `sid`."""
    for item in _domain_statements(t):
        if isinstance(item, dict) and "Fn::If" in item and item["Fn::If"][1].get("Sid") == sid:
            return item["Fn::If"]
    raise AssertionError(f"no conditional statement {sid}")


def _trust(t, role):
    return t["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]


def _user_pool(t):
    return t["Resources"]["DashboardsUserPool"]["Properties"]


def _cognito_role_statements(t):
    return t["Resources"]["DashboardsCognitoRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _fgac(t):
    return _domain(t)["AdvancedSecurityOptions"]["Fn::If"][1]


def _master_user(t):
    return _fgac(t)["MasterUserOptions"]


def test_the_checks_pass_on_the_template_itself(template):
    check_all(template)


# ------------------------------------------------------------------------------------------------
# Each sign-in mode, rendered
# ------------------------------------------------------------------------------------------------
ADMIN = "arn:aws:iam::123456789012:role/SecurityAdmin"
SUBNETS = "subnet-0123456789abcdef0,subnet-0fedcba9876543210"
MODES = {
    "none": {},
    "none, admin and CIDR": dict(AdminPrincipalArn=ADMIN, AllowedCidr="203.0.113.7/32"),
    "cognito": dict(DashboardsAuth="cognito", DashboardsAdminEmail="secops@example.com", AdminPrincipalArn=ADMIN),
    "cognito, MFA optional, no threat protection": dict(
        DashboardsAuth="cognito", DashboardsMfa="OPTIONAL", DashboardsThreatProtection="OFF", DashboardsDomainPrefix="acme-audit"
    ),
    "internal, public from a CIDR": dict(DashboardsAuth="internal", AllowedCidr="203.0.113.0/24"),
    "internal, in a VPC": dict(DashboardsAuth="internal", SubnetIds=SUBNETS, SecurityGroupIds="sg-0123456789abcdef0"),
    "an existing domain": dict(
        ExistingDomainEndpoint="https://search-audit-abc.eu-west-1.es.amazonaws.com",
        ExistingDomainArn="arn:aws:es:eu-west-1:123456789012:domain/audit",
    ),
    "serverless, search": dict(ServerlessCollection="true"),
    "serverless, time series, VPC endpoint, admin": dict(
        ServerlessCollection="true",
        ServerlessCollectionType="TIMESERIES",
        ServerlessVpcEndpointId="vpce-0123456789abcdef0",
        AdminPrincipalArn=ADMIN,
        IndexRetentionDays=30,
    ),
    "serverless, time series kept forever": dict(ServerlessCollection="true", ServerlessCollectionType="TIMESERIES", IndexRetentionDays=0),
    "flow log and findings to the function": dict(FlowLogVpcId="vpc-0123456789abcdef0", GuardDutyFindings="true"),
    "central account, flow log and findings through the stream": dict(
        CentralAccount="true", MemberAccountIds="111122223333", FlowLogVpcId="vpc-0123456789abcdef0",
        GuardDutyFindings="true", LogTypesThroughStream="true",
        KmsKeyArn="arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
    ),
    "batch operations": dict(TrailFilesBucketName="acme-trail", BatchOperationsBucketName="acme-batch"),
    "serverless, batch operations": dict(ServerlessCollection="true", TrailFilesBucketName="acme-trail", BatchOperationsBucketName="acme-batch"),
}


def render(template, mode):
    return Rendered(template, **MODES[mode])


def sids(rendered):
    return [s.get("Sid") for s in statements(rendered.resources["Domain"]["Properties"]["AccessPolicies"])]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_renders_whole_and_passes_the_checks(template, mode):
    """What CloudFormation would create for the mode: no Rule refuses it, no reference points at a
    resource it does not create, and the security checks hold on exactly that."""
    r = render(template, mode)
    assert r.refused_by() == []
    assert r.dangling_references() == []
    t = r.as_template()
    checks = [check_no_unconditioned_star_principal, check_function_role, check_cognito, check_secrets, check_fine_grained_access, check_serverless]
    if "Domain" in r.resources:
        checks += [check_domain_settings, check_domain_access_policy]
    for check in checks:
        check(t)
    # One backend, and the function signs for it.
    backends = [n for n in ("Domain", "Collection") if n in r.resources]
    env = r.resources["Indexer"]["Properties"]["Environment"]["Variables"]
    if mode == "an existing domain":
        assert backends == [] and env["OPENSEARCH_ENDPOINT"] == {"Ref": "ExistingDomainEndpoint"}
    else:
        assert len(backends) == 1, backends
    assert env["SIGV4_SERVICE"] == ("aoss" if "Collection" in r.resources else "es")
    assert env["AOSS_COLLECTION_TYPE"] == ("" if "Collection" not in r.resources else r.params["ServerlessCollectionType"].lower())
    # The Batch Operations role exists exactly when its bucket is named, whatever the backend.
    batch = "BatchOperationsBucketName" in MODES[mode]
    assert ("BatchOperationsRole" in r.resources) == batch == ("BatchOperationsRoleArn" in r.outputs), mode


def test_default_is_todays_domain(template):
    """DashboardsAuth defaults to none, and then nothing of Cognito or FGAC exists."""
    assert template["Parameters"]["DashboardsAuth"]["Default"] == "none"
    r = render(template, "none")
    for name in COGNITO_RESOURCES + ("DashboardsAdminUser", "DashboardsMasterUser"):
        assert name not in r.resources, name
    d = r.resources["Domain"]["Properties"]
    assert not {"CognitoOptions", "AdvancedSecurityOptions", "Tags"} & set(d)
    assert sids(r) == ["IndexerWrites"]
    assert sids(render(template, "none, admin and CIDR")) == ["IndexerWrites", "AdminAllMethods", "DashboardsFromAllowedCidr"]
    assert not {"DashboardsUserPoolId", "DashboardsSignInDomain", "DashboardsMasterUserSecretArn"} & set(r.outputs)


def test_cognito_mode(template):
    r = render(template, "cognito")
    d = r.resources["Domain"]["Properties"]
    assert d["CognitoOptions"]["Enabled"] is True and "AdvancedSecurityOptions" not in d
    assert sids(r) == ["IndexerWrites", "AdminAllMethods", "DashboardsCognitoUsers"]
    pool = r.resources["DashboardsUserPool"]["Properties"]
    assert r.params["DashboardsMfa"] == "ON" and pool["MfaConfiguration"] == {"Ref": "DashboardsMfa"}
    assert r.params["DashboardsThreatProtection"] == "ENFORCED" and pool["UserPoolTier"] == "PLUS"
    # The default sign-in prefix, as CloudFormation would form it, is a valid one.
    prefix = r.resources["DashboardsUserPoolDomain"]["Properties"]["Domain"]["Fn::Sub"]
    prefix = prefix.replace("${DomainName}", r.params["DomainName"]).replace("${AWS::AccountId}", PSEUDO["AWS::AccountId"])
    assert re.fullmatch(template["Parameters"]["DashboardsDomainPrefix"]["AllowedPattern"], prefix), prefix
    assert not re.search("aws|amazon|cognito", prefix), f"Cognito refuses prefixes with reserved words: {prefix}"
    assert r.resources["DashboardsAdminUser"]["Properties"]["Username"] == {"Ref": "DashboardsAdminEmail"}
    assert "DashboardsMasterUser" not in r.resources
    assert {"DashboardsUserPoolId", "DashboardsSignInDomain"} <= set(r.outputs)
    assert "DashboardsMasterUserSecretArn" not in r.outputs


def test_cognito_without_threat_protection_is_on_the_essentials_plan(template):
    r = render(template, "cognito, MFA optional, no threat protection")
    pool = r.resources["DashboardsUserPool"]["Properties"]
    assert pool["UserPoolTier"] == "ESSENTIALS" and r.params["DashboardsThreatProtection"] == "OFF"
    assert r.params["DashboardsMfa"] == "OPTIONAL" and pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert r.resources["DashboardsUserPoolDomain"]["Properties"]["Domain"] == {"Ref": "DashboardsDomainPrefix"}
    assert "DashboardsAdminUser" not in r.resources, "no DashboardsAdminEmail, no user"


def test_internal_mode_from_a_cidr(template):
    r = render(template, "internal, public from a CIDR")
    d = r.resources["Domain"]["Properties"]
    fgac = d["AdvancedSecurityOptions"]
    assert (fgac["Enabled"], fgac["InternalUserDatabaseEnabled"], fgac["AnonymousAuthEnabled"]) == (True, True, False)
    assert fgac["MasterUserOptions"] == {
        "MasterUserName": {"Fn::Sub": "{{resolve:secretsmanager:${DashboardsMasterUser}:SecretString:username}}"},
        "MasterUserPassword": {"Fn::Sub": "{{resolve:secretsmanager:${DashboardsMasterUser}:SecretString:password}}"},
    }
    # What fine-grained access control requires, in this mode as in every other.
    assert d["EncryptionAtRestOptions"]["Enabled"] is True and d["NodeToNodeEncryptionOptions"]["Enabled"] is True
    assert d["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert "CognitoOptions" not in d and "VPCOptions" not in d
    assert sids(r) == ["IndexerWrites", "DashboardsFromAllowedCidr"], "users sign in from AllowedCidr only"
    assert r.outputs["DashboardsMasterUserSecretArn"]["Value"] == {"Ref": "DashboardsMasterUser"}, "the ARN, not the value"


def test_internal_mode_in_a_vpc(template):
    r = render(template, "internal, in a VPC")
    d = r.resources["Domain"]["Properties"]
    assert d["VPCOptions"]["SubnetIds"] == {"Ref": "SubnetIds"}
    assert sids(r) == ["IndexerWrites", "DashboardsInternalUsersInVpc"]
    open_statement = statements(d["AccessPolicies"])
    open_statement = [s for s in open_statement if s["Sid"] == "DashboardsInternalUsersInVpc"][0]
    assert open_statement["Principal"] == {"AWS": "*"} and "Condition" not in open_statement
    assert d["AdvancedSecurityOptions"]["AnonymousAuthEnabled"] is False, "FGAC authenticates what the policy lets in"


def test_the_unconditioned_statement_exists_only_for_internal_users_in_a_vpc(template):
    """Of all the modes, only a VPC domain with internal users gets Principal * without a Condition."""
    for mode in MODES:
        r = render(template, mode)
        if "Domain" not in r.resources:
            continue
        open_ = [s for s in statements(r.resources["Domain"]["Properties"]["AccessPolicies"]) if is_star(s["Principal"]) and "Condition" not in s]
        assert bool(open_) == (mode == "internal, in a VPC"), mode


REFUSED = {
    "internal users from anywhere": (dict(DashboardsAuth="internal"), "DashboardsAuth=internal needs AllowedCidr"),
    "cognito on a domain the stack does not create": (
        dict(
            DashboardsAuth="cognito",
            ExistingDomainEndpoint="https://search-x.eu-west-1.es.amazonaws.com",
            ExistingDomainArn="arn:aws:es:eu-west-1:123456789012:domain/audit",
        ),
        "DashboardsAuth configures the domain this stack creates",
    ),
    "a first user without cognito": (dict(DashboardsAdminEmail="secops@example.com"), "it needs DashboardsAuth=cognito"),
    "cognito on a Serverless collection": (dict(ServerlessCollection="true", DashboardsAuth="cognito"), "DashboardsAuth is for a domain"),
    "a collection and an existing domain": (
        dict(
            ServerlessCollection="true",
            ExistingDomainEndpoint="https://search-x.eu-west-1.es.amazonaws.com",
            ExistingDomainArn="arn:aws:es:eu-west-1:123456789012:domain/audit",
        ),
        "leave ExistingDomainEndpoint empty",
    ),
    "a VPC endpoint without a collection": (dict(ServerlessVpcEndpointId="vpce-0123456789abcdef0"), "it needs ServerlessCollection=true"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_rules_refuse_what_cannot_work(template, case):
    params, message = REFUSED[case]
    refused = Rendered(template, **params).refused_by()
    assert any(message in m for m in refused), refused


def test_parameters_that_would_not_deploy_are_refused_by_the_renderer(template):
    """The renderer applies AllowedValues and patterns, so the mode tests cannot use values that
    `sam deploy` would refuse."""
    for bad in (dict(DashboardsAuth="saml"), dict(DashboardsMfa="OFF"), dict(DashboardsDomainPrefix="Not_Valid")):
        with pytest.raises(AssertionError):
            Rendered(template, **bad)


def test_the_rendering_finds_a_dangling_reference(template):
    """A property that names a conditional resource outside its condition is caught."""
    broken = copy.deepcopy(template)
    broken["Resources"]["Domain"]["Properties"]["CognitoOptions"] = broken["Resources"]["Domain"]["Properties"]["CognitoOptions"]["Fn::If"][1]
    assert ("Domain", "DashboardsUserPool") in [(w.split(".")[0], n) for w, n in Rendered(broken).dangling_references()]


# ------------------------------------------------------------------------------------------------
# OpenSearch Serverless, rendered. Nothing here reached a real collection (no AWS account): these
# are the resources and policies CloudFormation would be given.
# ------------------------------------------------------------------------------------------------
def _rendered_json(r, resource):
    """A rendered policy's JSON with its ${...} filled in as CloudFormation would (names only)."""
    text = sub_text(r.resources[resource]["Properties"]["Policy"])
    for name, value in r.params.items():
        text = text.replace("${%s}" % name, str(value))
    return json.loads(text)


def test_serverless_search_collection(template):
    r = render(template, "serverless, search")
    for name in ("Domain", "DomainLogGroup", "DomainLogPolicy", "CollectionRetentionPolicy"):
        assert name not in r.resources, name
    assert r.resources["Collection"]["Properties"]["Type"] == {"Ref": "ServerlessCollectionType"}
    assert r.params["ServerlessCollectionType"] == "SEARCH", "search by default: _ids, each event once"
    env = r.resources["Indexer"]["Properties"]["Environment"]["Variables"]
    assert (env["SIGV4_SERVICE"], env["AOSS_COLLECTION_TYPE"], env["RETENTION_DAYS"]) == ("aoss", "search", "0")
    assert env["OPENSEARCH_ENDPOINT"] == {"Fn::GetAtt": ["Collection", "CollectionEndpoint"]}
    assert env["OPENSEARCH_REGION"] == {"Ref": "AWS::Region"}
    policies = [p["PolicyName"] for p in r.resources["FunctionRole"]["Properties"]["Policies"]]
    assert "opensearch-serverless-api" in policies and "opensearch-write" not in policies
    (network,) = _rendered_json(r, "CollectionNetworkPolicy")
    assert network["AllowFromPublic"] is True and "SourceVPCEs" not in network
    data = _rendered_json(r, "CollectionDataAccessPolicy")
    assert [entry["Principal"] for entry in data] == [["${FunctionRole.Arn}"]], "the function only, without an admin"
    assert r.outputs["DomainEndpoint"]["Value"] == {"Fn::GetAtt": ["Collection", "CollectionEndpoint"]}
    assert r.outputs["DashboardsUrl"]["Value"] == {"Fn::GetAtt": ["Collection", "DashboardEndpoint"]}
    assert r.outputs["CollectionArn"]["Value"] == COLLECTION_ARN


def test_serverless_time_series_collection_behind_a_vpc_endpoint(template):
    r = render(template, "serverless, time series, VPC endpoint, admin")
    env = r.resources["Indexer"]["Properties"]["Environment"]["Variables"]
    assert env["AOSS_COLLECTION_TYPE"] == "timeseries"
    (network,) = _rendered_json(r, "CollectionNetworkPolicy")
    assert network["AllowFromPublic"] is False and network["SourceVPCEs"] == ["vpce-0123456789abcdef0"]
    data = _rendered_json(r, "CollectionDataAccessPolicy")
    assert [entry["Principal"] for entry in data] == [["${FunctionRole.Arn}"], [ADMIN]]
    (retention,) = _rendered_json(r, "CollectionRetentionPolicy")["Rules"]
    assert retention == {"ResourceType": "index", "Resource": ["index/cwl-indexer/cwl-*"], "MinIndexRetention": "30d"}


def test_serverless_time_series_kept_forever_has_no_lifecycle_policy(template):
    r = render(template, "serverless, time series kept forever")
    assert "CollectionRetentionPolicy" not in r.resources


def test_domains_have_no_serverless_resources(template):
    for mode in ("none", "cognito", "internal, in a VPC", "an existing domain"):
        r = render(template, mode)
        for name in SERVERLESS_RESOURCES + ("CollectionRetentionPolicy",):
            assert name not in r.resources, (mode, name)
        assert "CollectionArn" not in r.outputs


FAMILY_RETENTION = {
    "VPCFLOW_RETENTION_DAYS": "VpcFlowIndexRetentionDays",
    "GUARDDUTY_RETENTION_DAYS": "GuardDutyIndexRetentionDays",
    "RESOLVER_RETENTION_DAYS": "ResolverIndexRetentionDays",
    "WAF_RETENTION_DAYS": "WafIndexRetentionDays",
}


def test_each_family_retention_is_a_parameter_left_to_the_domain(template):
    """Each family's retention comes from its parameter on a domain, and is left unset on
    Serverless (no ISM there: the collection's lifecycle policy keeps every index alike)."""
    _, fn = function(template)
    env = fn["Properties"]["Environment"]["Variables"]
    for var, param in FAMILY_RETENTION.items():
        assert env[var] == {"Fn::If": ["UseServerless", "", {"Ref": param}]}, var
        spec = template["Parameters"][param]
        assert spec["Default"] == "", f"{param}: unset follows IndexRetentionDays"
        pattern = re.compile(spec["AllowedPattern"])
        for ok in ("", "0", "7", "90", "365", "3650"):
            assert pattern.match(ok), (param, ok)
        for bad in ("3651", "-1", "1.5", "90d", "10000"):
            assert not pattern.match(bad), (param, bad)


LOGTYPE_SUBSCRIPTIONS = {
    "FlowLogGroup": ("FlowLogSubscription", "FlowLogInvokePermission", "FlowLogStreamSubscription"),
    "FindingsLogGroup": ("FindingsSubscription", "FindingsInvokePermission", "FindingsStreamSubscription"),
}


@pytest.mark.parametrize("mode", ["flow log and findings to the function", "central account, flow log and findings through the stream"])
def test_the_flow_log_and_findings_groups_go_to_the_function_or_to_the_central_stream(template, mode):
    """Each of the stack's log type groups has exactly one subscription: to the function (with
    its invoke permission) or, with LogTypesThroughStream, to the central stream (no permission
    to invoke the function from that group, the stream's own role), encrypted like the trail's."""
    r = render(template, mode)
    assert r.refused_by() == [] and r.dangling_references() == []
    via_stream = "through the stream" in mode
    for group, (to_function, permission, to_stream) in LOGTYPE_SUBSCRIPTIONS.items():
        assert group in r.resources
        assert (to_function in r.resources) == (permission in r.resources) == (not via_stream), (group, mode)
        assert (to_stream in r.resources) == via_stream, (group, mode)
        sub = r.resources[to_stream if via_stream else to_function]["Properties"]
        assert sub["LogGroupName"] == {"Ref": group}
        if via_stream:
            assert sub["DestinationArn"] == {"Fn::GetAtt": ["CentralStream", "Arn"]}
            assert sub["RoleArn"] == {"Fn::GetAtt": ["CentralLogsRole", "Arn"]}
        else:
            assert sub["DestinationArn"] == {"Fn::GetAtt": ["Indexer", "Arn"]} and "RoleArn" not in sub
        # The same optional customer managed key as the trail's log group.
        kms = r.resources[group]["Properties"].get("KmsKeyId")
        assert kms == r.resources["TrailLogGroup"]["Properties"].get("KmsKeyId"), group
        assert kms == ({"Ref": "KmsKeyArn"} if "KmsKeyArn" in MODES[mode] else None), (group, kms)
    if via_stream:
        # The role trusts only log groups of this account and the members, and puts only into the stream.
        role = r.resources["CentralLogsRole"]["Properties"]
        (policy,) = role["Policies"]
        (st,) = policy["PolicyDocument"]["Statement"]
        assert set(st["Action"]) == {"kinesis:PutRecord", "kinesis:PutRecords"} and st["Resource"] == {"Fn::GetAtt": ["CentralStream", "Arn"]}


def test_log_types_through_the_stream_needs_the_central_account(template):
    r = Rendered(template, FlowLogVpcId="vpc-0123456789abcdef0", LogTypesThroughStream="true")
    (refused,) = r.refused_by()
    assert refused.startswith("LogTypesThroughStream subscribes the log groups to the central stream"), refused
