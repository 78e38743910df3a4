#!/usr/bin/env python3
"""Generate dashboards/cloudtrail-audit.ndjson and dashboards/logtypes.ndjson, the OpenSearch
Dashboards saved objects (CloudTrail; VPC flow logs and GuardDuty findings).

Usage: python3 scripts/make-dashboards.py [--stdout | --stdout-logtypes]

The saved-objects format stores visState, panelsJSON and searchSourceJSON as JSON *strings*
inside JSON, which is unreadable and easy to break by hand; this script keeps the objects as
a readable spec and writes one object per line, deterministically. `tests/dashboards.rs`
checks that the committed file is exactly this script's output, validates its structure and
runs every visualization's aggregation and every saved search's query against a real node.

Invariants the `setup` command and the tests rely on (see dashboards/README.md):
- The index pattern `cwl-1*,...,cwl-9*` (the daily CloudTrail indices, not the log type
  families' nor the dead letters') appears exactly once in the file: as the title of the
  index-pattern object. Retargeting another INDEX_PREFIX is one substitution of that title;
  dashboards/logtypes.ndjson names `cwl-vpcflow-*`, `cwl-guardduty-*`, `cwl-resolver-*` and `cwl-waf-*`
  once each, likewise.
- Ids are stable and prefix-independent, so re-importing with overwrite=true replaces the
  objects instead of duplicating them.
- Queries are Lucene syntax (`language: lucene`): Dashboards sends them as `query_string`
  queries, the same queries the README documents and the tests run.
- There is one saved search per bundled Sigma rule that alerts (rules/sigma/sigmahq and
  rules/sigma/cwl-indexer; a correlation's base rules never alert on their own), generated from
  the rule files: adding a rule there and re-running this script adds its search. The searches of
  cwl-indexer's own rules are panels of the "Security signals" dashboard, SigmaHQ's of the
  "Security signals: SigmaHQ rules" dashboard.
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "dashboards", "cloudtrail-audit.ndjson")
LOGTYPES_OUT = os.path.join(ROOT, "dashboards", "logtypes.ndjson")
RULE_DIRS = [os.path.join(ROOT, "rules", "sigma", d) for d in ("sigmahq", "cwl-indexer")]

INDEX_PATTERN_ID = "cwl-indexer-index-pattern"
# The only place the CloudTrail index pattern is named: the daily indices `cwl-YYYY.MM.DD`,
# whose names go on with a year's first digit, so that neither the log type families
# (`cwl-vpcflow-*`, ...) nor the dead letters (`cwl-deadletter-*`) match. The index template
# has the same patterns (`index::document_patterns`).
INDEX_PATTERN_TITLE = ",".join(f"cwl-{d}*" for d in range(1, 10))
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

# The latest migration of each type in OpenSearch Dashboards 1.x-3.x (forked from Kibana
# 7.10.2): objects at these versions are imported as they are, without running migrations.
MIGRATION = {"index-pattern": "7.6.0", "visualization": "7.10.0", "search": "7.9.3", "dashboard": "7.9.3"}

# Queries, each defined once and shared by the saved search and the visualization using it.
ROOT_ACTIVITY = "userIdentity.type:Root AND NOT _exists_:userIdentity.invokedBy AND NOT eventType:AwsServiceEvent"
FAILED_CONSOLE_LOGINS = "eventName:ConsoleLogin AND responseElements.ConsoleLogin:Failure"
UNAUTHORIZED_CALLS = "errorCode:(AccessDenied* OR *UnauthorizedOperation)"
TRAIL_TAMPERING = "eventName:(StopLogging OR DeleteTrail OR UpdateTrail OR PutEventSelectors)"
SECURITY_GROUP_CHANGES = (
    "eventName:(AuthorizeSecurityGroupIngress OR AuthorizeSecurityGroupEgress OR RevokeSecurityGroupIngress"
    " OR RevokeSecurityGroupEgress OR CreateSecurityGroup OR DeleteSecurityGroup OR ModifySecurityGroupRules)"
)
HAS_ERROR = "_exists_:errorCode"
ROLES_ASSUMED = "eventName:(AssumeRole OR AssumeRoleWithSAML OR AssumeRoleWithWebIdentity)"
INSTANCES_LAUNCHED = "eventName:RunInstances AND event.outcome:success"
KMS_CALLS = "eventSource:kms.amazonaws.com"
SECRETS_CALLS = "eventSource:secretsmanager.amazonaws.com"
FAILURES = "event.outcome:failure"
# Documents at least one detection rule matched (`signal.rules`, written at ingest).
SIGNALS = "_exists_:signal.rules"

# Saved-search ids use the rule's `name` (ours: plain words), else its `id` (a UUID): both
# lowercase letters, digits and inner hyphens.
RULE_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SEVERITIES = ["low", "medium", "high", "critical"]
# Sigma levels; `informational` counts as low (as the indexer's signal.severity does).
LEVELS = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}


def rule_query(rule_id):
    return f'signal.rules:"{rule_id}"'


def load_rules():
    """The bundled Sigma rules that alert, in load order (file by file, sorted, as build.rs lists
    them): id, name, title, level, origin, description. A correlation's base rules are left out
    unless the correlation sets `generate: true`."""
    import yaml

    rules, silent, seen = [], set(), set()
    for directory in RULE_DIRS:
        origin = os.path.basename(directory)
        for name in sorted(f for f in os.listdir(directory) if f.endswith(".yml")):
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if not doc:
                        continue
                    correlation = doc.get("correlation")
                    if correlation and not correlation.get("generate", False):
                        silent.update(correlation.get("rules", []))
                    key = doc.get("name") or doc["id"]
                    where = os.path.relpath(path, ROOT)
                    if not RULE_KEY.match(key) or key in seen:
                        sys.exit(f"{where}: rule {key!r} is not a unique plain name or id")
                    seen.add(key)
                    rules.append({
                        "id": doc["id"],
                        "key": key,
                        "title": doc["title"],
                        "level": LEVELS[doc.get("level", "low")],
                        "origin": origin,
                        "file": where,
                        "description": " ".join(str(doc.get("description", doc["title"])).split()),
                    })
    return [r for r in rules if r["id"] not in silent]


def minify(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def search_source(query, with_index=True):
    source = {"query": {"query": query, "language": "lucene"}, "filter": []}
    if with_index:
        source["indexRefName"] = INDEX_REF
    return {"searchSourceJSON": minify(source)}


def index_ref(pattern_id=INDEX_PATTERN_ID):
    return [{"name": INDEX_REF, "type": "index-pattern", "id": pattern_id}]


# Aggregations, in the visState form the visualize editor saves.


def count():
    return {"id": "1", "enabled": True, "type": "count", "params": {}, "schema": "metric"}


def terms(agg_id, field, size, schema, label):
    return {
        "id": agg_id,
        "enabled": True,
        "type": "terms",
        "params": {
            "field": field,
            "orderBy": "1",
            "order": "desc",
            "size": size,
            "otherBucket": False,
            "otherBucketLabel": "Other",
            "missingBucket": False,
            "missingBucketLabel": "Missing",
            "customLabel": label,
        },
        "schema": schema,
    }


def date_histogram(agg_id):
    return {
        "id": agg_id,
        "enabled": True,
        "type": "date_histogram",
        "params": {
            "field": "@timestamp",
            "useNormalizedOpenSearchInterval": True,
            "scaleMetricValues": False,
            "interval": "auto",
            "drop_partials": False,
            "min_doc_count": 1,
            "extended_bounds": {},
            "customLabel": "@timestamp",
        },
        "schema": "segment",
    }


def geohash_grid(agg_id, field):
    """Geohash cells for a coordinate map. With autoPrecision, Dashboards picks the precision
    from the map's zoom (2 at the initial zoom 2), limits the cells to a collar around the
    visible map (isFilteredByCollar) and places each marker at its cell's geo_centroid."""
    return {
        "id": agg_id,
        "enabled": True,
        "type": "geohash_grid",
        "params": {
            "field": field,
            "autoPrecision": True,
            "precision": 2,
            "useGeocentroid": True,
            "isFilteredByCollar": True,
        },
        "schema": "segment",
    }


# Chart parameters, per visualization type.


def xy_params(chart, series, horizontal=False, mode="normal"):
    return {
        "type": chart,
        "grid": {"categoryLines": False},
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": "left" if horizontal else "bottom",
                "show": True,
                "style": {},
                "scale": {"type": "linear"},
                "labels": {"show": True, "filter": not horizontal, "truncate": 200 if horizontal else 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": "bottom" if horizontal else "left",
                "show": True,
                "style": {},
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                "title": {"text": "Events"},
            }
        ],
        "seriesParams": [
            {
                "show": True,
                "type": series,
                "mode": mode,
                "data": {"label": "Events", "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "interpolate": "linear",
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": False},
        "thresholdLine": {"show": False, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
    }


def pie_params():
    return {
        "type": "pie",
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "isDonut": True,
        "labels": {"show": False, "values": True, "last_level": True, "truncate": 100},
    }


def table_params():
    return {
        "perPage": 10,
        "showPartialRows": False,
        "showMetricsAtAllLevels": False,
        "sort": {"columnIndex": None, "direction": None},
        "showTotal": False,
        "totalFunc": "sum",
        "percentageCol": "",
    }


def tile_map_params():
    # wms: the stringified default of the visualization:tileMap:WMSdefaults setting (off): the
    # base map comes from the maps service Dashboards is configured with.
    return {
        "colorSchema": "Yellow to Red",
        "mapType": "Scaled Circle Markers",
        "isDesaturated": True,
        "addTooltip": True,
        "heatClusterSize": 1.5,
        "legendPosition": "bottomright",
        "mapZoom": 2,
        "mapCenter": [0, 0],
        "wms": {"enabled": False, "options": {"format": "image/png", "transparent": True}},
    }


VIS_PARAMS = {
    "histogram": lambda: xy_params("histogram", "histogram"),
    "stacked_histogram": lambda: xy_params("histogram", "histogram", mode="stacked"),
    "horizontal_bar": lambda: xy_params("histogram", "histogram", horizontal=True),
    "line": lambda: xy_params("line", "line"),
    "pie": pie_params,
    "table": table_params,
    "tile_map": tile_map_params,
}
# The visState type of each kind above (a stacked bar chart is a histogram).
VIS_TYPE = {"stacked_histogram": "histogram"}


def sum_of(field, label):
    """A sum metric (agg id "1", where count() would be), for bytes charts."""
    return {"id": "1", "enabled": True, "type": "sum", "params": {"field": field, "customLabel": label}, "schema": "metric"}


def visualization(vis_id, title, description, vis_type, aggs, query="", pattern_id=INDEX_PATTERN_ID, metric=None):
    vis_state = {
        "title": title,
        "type": VIS_TYPE.get(vis_type, vis_type),
        "aggs": [metric or count()] + aggs,
        "params": VIS_PARAMS[vis_type](),
    }
    return {
        "id": vis_id,
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": description,
            "visState": minify(vis_state),
            "uiStateJSON": "{}",
            "version": 1,
            "kibanaSavedObjectMeta": search_source(query),
        },
        "references": index_ref(pattern_id),
    }


SEARCH_COLUMNS = ["eventName", "eventSource", "userIdentity.arn", "sourceIPAddress", "awsRegion", "errorCode"]
SIGNAL_COLUMNS = [
    "signal.titles",
    "signal.severity",
    "threat.technique.id",
    "eventName",
    "userIdentity.arn",
    "sourceIPAddress",
    "source.geo.country_name",
    "source.as.organization.name",
]


def saved_search(search_id, title, description, query, columns=SEARCH_COLUMNS):
    return {
        "id": search_id,
        "type": "search",
        "attributes": {
            "title": title,
            "description": description,
            "hits": 0,
            "columns": list(columns),
            "sort": [["@timestamp", "desc"]],
            "version": 1,
            "kibanaSavedObjectMeta": search_source(query),
        },
        "references": index_ref(),
    }


def dashboard(dash_id, title, description, layout):
    """`layout` is a list of (object, width, height) in reading order, on the 48-column grid."""
    panels, references = [], []
    x = y = row_height = 0
    for i, (obj, w, h) in enumerate(layout):
        if x + w > 48:
            x, y, row_height = 0, y + row_height, 0
        panel_index = str(i + 1)
        panels.append(
            {
                "version": "7.9.3",
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": panel_index},
                "panelIndex": panel_index,
                "embeddableConfig": {},
                "panelRefName": f"panel_{i}",
            }
        )
        references.append({"name": f"panel_{i}", "type": obj["type"], "id": obj["id"]})
        x += w
        row_height = max(row_height, h)
    return {
        "id": dash_id,
        "type": "dashboard",
        "attributes": {
            "title": title,
            "description": description,
            "hits": 0,
            "panelsJSON": minify(panels),
            "optionsJSON": minify({"hidePanelTitles": False, "useMargins": True}),
            "timeRestore": False,
            "version": 1,
            "kibanaSavedObjectMeta": search_source("", with_index=False),
        },
        "references": references,
    }


def objects():
    index_pattern = {
        "id": INDEX_PATTERN_ID,
        "type": "index-pattern",
        "attributes": {"title": INDEX_PATTERN_TITLE, "timeFieldName": "@timestamp"},
        "references": [],
    }
    by_event_name = visualization(
        "cwl-indexer-events-by-event-name",
        "CloudTrail: events by eventName",
        "The 20 most frequent API calls (eventName).",
        "histogram",
        [terms("2", "eventName", 20, "segment", "eventName")],
    )
    errors_over_time = visualization(
        "cwl-indexer-error-codes-over-time",
        "CloudTrail: errorCode over time",
        "Events that carry an errorCode, per interval, one line per errorCode (top 10 per interval).",
        "line",
        [date_histogram("2"), terms("3", "errorCode", 10, "group", "errorCode")],
        HAS_ERROR,
    )
    principals = visualization(
        "cwl-indexer-top-principals",
        "CloudTrail: top principals",
        "The 20 principals (userIdentity.arn) making the most calls.",
        "table",
        [terms("2", "userIdentity.arn", 20, "bucket", "userIdentity.arn")],
    )
    addresses = visualization(
        "cwl-indexer-top-source-addresses",
        "CloudTrail: top source addresses",
        "The 20 most frequent sourceIPAddress values: IP addresses, and service names for calls AWS makes.",
        "table",
        [terms("2", "sourceIPAddress", 20, "bucket", "sourceIPAddress")],
    )
    regions = visualization(
        "cwl-indexer-events-by-region",
        "CloudTrail: events by awsRegion",
        "Events per region (top 20).",
        "pie",
        [terms("2", "awsRegion", 20, "segment", "awsRegion")],
    )
    sources = visualization(
        "cwl-indexer-events-by-event-source",
        "CloudTrail: events by eventSource",
        "Events per AWS service endpoint (eventSource, top 20).",
        "horizontal_bar",
        [terms("2", "eventSource", 20, "segment", "eventSource")],
    )
    failed_logins_over_time = visualization(
        "cwl-indexer-failed-console-logins-over-time",
        "CloudTrail: failed console logins over time",
        "ConsoleLogin events whose responseElements.ConsoleLogin is Failure, per interval.",
        "histogram",
        [date_histogram("2")],
        FAILED_CONSOLE_LOGINS,
    )
    root = saved_search(
        "cwl-indexer-root-activity",
        "CloudTrail: root user activity",
        "Calls made with the account's root user, as CIS AWS Foundations 3.3 defines them: "
        "userIdentity.type Root, not invoked by an AWS service (userIdentity.invokedBy absent) "
        "and not an AwsServiceEvent.",
        ROOT_ACTIVITY,
    )
    failed_logins = saved_search(
        "cwl-indexer-failed-console-logins",
        "CloudTrail: failed console logins",
        "ConsoleLogin events whose responseElements.ConsoleLogin is Failure.",
        FAILED_CONSOLE_LOGINS,
        ["userIdentity.type", "userIdentity.arn", "userIdentity.userName", "sourceIPAddress", "userAgent", "errorMessage"],
    )
    unauthorized = saved_search(
        "cwl-indexer-unauthorized-calls",
        "CloudTrail: AccessDenied and UnauthorizedOperation",
        "Calls refused for lack of permission, as CIS AWS Foundations 3.1 defines them: errorCode "
        "starting with AccessDenied (AccessDenied, AccessDeniedException) or ending with "
        "UnauthorizedOperation (UnauthorizedOperation, Client.UnauthorizedOperation).",
        UNAUTHORIZED_CALLS,
        ["eventName", "eventSource", "errorCode", "errorMessage", "userIdentity.arn", "sourceIPAddress"],
    )
    tampering = saved_search(
        "cwl-indexer-trail-tampering",
        "CloudTrail: trail tampering",
        "Calls that stop, delete or reconfigure a trail: StopLogging, DeleteTrail, UpdateTrail, "
        "PutEventSelectors (failed attempts included).",
        TRAIL_TAMPERING,
        ["eventName", "requestParameters.name", "userIdentity.arn", "sourceIPAddress", "awsRegion", "errorCode"],
    )
    security_groups = saved_search(
        "cwl-indexer-security-group-changes",
        "CloudTrail: security group changes",
        "Security groups created, deleted, or their rules changed (failed attempts included).",
        SECURITY_GROUP_CHANGES,
        ["eventName", "requestParameters.groupId", "userIdentity.arn", "sourceIPAddress", "awsRegion", "errorCode"],
    )
    audit = dashboard(
        "cwl-indexer-cloudtrail-audit",
        "CloudTrail audit",
        "Who did what, when and from where: the cwl-indexer CloudTrail charts and alert searches.",
        [
            (by_event_name, 24, 15),
            (errors_over_time, 24, 15),
            (failed_logins_over_time, 24, 12),
            (sources, 24, 12),
            (principals, 24, 15),
            (addresses, 12, 15),
            (regions, 12, 15),
            (root, 24, 15),
            (failed_logins, 24, 15),
            (unauthorized, 24, 15),
            (tampering, 24, 15),
            (security_groups, 48, 15),
        ],
    )
    # What schema v2 made possible: aggregations on the promoted subtree fields (aws.cloudtrail.*)
    # and on the computed event.outcome (README "What gets indexed").
    s3_buckets = visualization(
        "cwl-indexer-top-s3-buckets",
        "CloudTrail: top S3 buckets and the calls on them",
        "The 20 buckets named in the most calls (requestParameters.bucketName), with the 10 most frequent calls on each.",
        "table",
        [
            terms("2", "aws.cloudtrail.requestParameters.bucketName", 20, "bucket", "bucket"),
            terms("3", "eventName", 10, "bucket", "eventName"),
        ],
    )
    roles_assumed = visualization(
        "cwl-indexer-roles-assumed",
        "CloudTrail: roles assumed, and by whom",
        "AssumeRole, AssumeRoleWithSAML and AssumeRoleWithWebIdentity calls: the 20 roles assumed most "
        "(requestParameters.roleArn), with the 10 callers (userIdentity.arn) assuming each.",
        "table",
        [
            terms("2", "aws.cloudtrail.requestParameters.roleArn", 20, "bucket", "role"),
            terms("3", "userIdentity.arn", 10, "bucket", "caller"),
        ],
        ROLES_ASSUMED,
    )
    instance_types = visualization(
        "cwl-indexer-instance-types-launched",
        "CloudTrail: instance types launched",
        "Successful RunInstances calls per instance type (requestParameters.instanceType): unexpected "
        "large or GPU types are a sign of cryptomining.",
        "horizontal_bar",
        [terms("2", "aws.cloudtrail.requestParameters.instanceType", 20, "segment", "instanceType")],
        INSTANCES_LAUNCHED,
    )
    kms_keys = visualization(
        "cwl-indexer-kms-keys-accessed",
        "CloudTrail: KMS keys accessed",
        "KMS calls per key (requestParameters.keyId, top 20), with the calls made on each.",
        "table",
        [
            terms("2", "aws.cloudtrail.requestParameters.keyId", 20, "bucket", "keyId"),
            terms("3", "eventName", 10, "bucket", "eventName"),
        ],
        KMS_CALLS,
    )
    secrets = visualization(
        "cwl-indexer-secrets-accessed",
        "CloudTrail: secrets accessed",
        "Secrets Manager calls per secret (requestParameters.secretId, top 20), with the calls made on each.",
        "table",
        [
            terms("2", "aws.cloudtrail.requestParameters.secretId", 20, "bucket", "secretId"),
            terms("3", "eventName", 10, "bucket", "eventName"),
        ],
        SECRETS_CALLS,
    )
    failures = visualization(
        "cwl-indexer-failures-by-principal",
        "CloudTrail: failures by principal",
        "Failed calls and console logins (event.outcome failure) per principal (userIdentity.arn, top 20), "
        "with their errorCode.",
        "table",
        [
            terms("2", "userIdentity.arn", 20, "bucket", "principal"),
            terms("3", "errorCode", 10, "bucket", "errorCode"),
        ],
        FAILURES,
    )
    resources = dashboard(
        "cwl-indexer-cloudtrail-resources",
        "CloudTrail resources",
        "Which buckets, roles, instance types, keys and secrets were touched, and who failed: charts on "
        "the promoted fields (aws.cloudtrail.*) and event.outcome, in daily indices created by cwl-indexer "
        "0.2 or later.",
        [
            (s3_buckets, 24, 15),
            (roles_assumed, 24, 15),
            (instance_types, 16, 15),
            (kms_keys, 16, 15),
            (secrets, 16, 15),
            (failures, 48, 15),
        ],
    )
    # What the indexer adds at ingest (GeoIP enrichment and detection rules), on a dashboard of
    # its own: "CloudTrail audit" needs no configuration, these panels stay empty without a
    # GeoIP database (GEOIP_DB) or with DETECTIONS=false.
    locations = visualization(
        "cwl-indexer-source-locations-map",
        "CloudTrail: where calls come from",
        "Calls per location of their source address (source.geo.location, from the GeoIP city "
        "database), in geohash cells that follow the map's zoom.",
        "tile_map",
        [geohash_grid("2", "source.geo.location")],
    )
    countries = visualization(
        "cwl-indexer-source-countries",
        "CloudTrail: calls by country",
        "Calls per country of their source address (source.geo.country_name, top 20); also "
        "filled by country-only GeoIP databases, which have no coordinates for the map.",
        "table",
        [terms("2", "source.geo.country_name", 20, "bucket", "country")],
    )
    signals_over_time = visualization(
        "cwl-indexer-signals-over-time",
        "Security signals over time",
        "Documents matched by a detection rule, per interval, stacked by rule title (signal.titles, "
        "top 20 per interval). A document matched by two rules counts once in each.",
        "stacked_histogram",
        [date_histogram("2"), terms("3", "signal.titles", 20, "group", "rule")],
        SIGNALS,
    )
    by_severity = visualization(
        "cwl-indexer-signals-by-severity",
        "Security signals by severity",
        "Documents matched by a detection rule, by the highest severity among their rules (signal.severity).",
        "pie",
        [terms("2", "signal.severity", len(SEVERITIES), "segment", "severity")],
        SIGNALS,
    )
    by_technique = visualization(
        "cwl-indexer-signals-by-tactic-and-technique",
        "Security signals by tactic and technique",
        "Documents matched by a detection rule, by MITRE ATT&CK tactic (threat.tactic.name) and "
        "technique (threat.technique.id, top 20 per tactic), from the matched rules' tags. A "
        "document whose rules name two tactics counts under both.",
        "table",
        [terms("2", "threat.tactic.name", 14, "bucket", "tactic"), terms("3", "threat.technique.id", 20, "bucket", "technique")],
        SIGNALS,
    )
    all_signals = saved_search(
        "cwl-indexer-signals",
        "Security signals: all",
        "Every document a detection rule matched, newest first.",
        SIGNALS,
        SIGNAL_COLUMNS,
    )
    per_rule = []
    for rule in load_rules():
        per_rule.append(
            (
                rule,
                saved_search(
                    f"cwl-indexer-signal-{rule['key']}",
                    f"Security signal: {rule['title']}",
                    f"{rule['description']} Sigma rule {rule['id']} ({rule['file']}), level {rule['level']}.",
                    rule_query(rule["id"]),
                    ["eventName", "userIdentity.arn", "sourceIPAddress", "source.geo.country_name", "awsRegion", "signal.titles"],
                ),
            )
        )
    signals = dashboard(
        "cwl-indexer-security-signals",
        "Security signals",
        "What the detection rules matched at ingest, and where calls come from: needs the indexer's "
        "GeoIP database (GEOIP_DB) for the map and countries, and detections on (the default) for the rest.",
        [
            (signals_over_time, 32, 15),
            (by_severity, 16, 15),
            (by_technique, 48, 15),
            (locations, 32, 20),
            (countries, 16, 20),
            (all_signals, 48, 15),
        ]
        + [(search, 24, 12) for rule, search in per_rule if rule["origin"] == "cwl-indexer"],
    )
    sigmahq = dashboard(
        "cwl-indexer-sigmahq-signals",
        "Security signals: SigmaHQ rules",
        "One saved search per bundled SigmaHQ CloudTrail rule (Detection Rule License 1.1: each "
        "search's description names the rule file; `cwl-indexer rules list` its author and source).",
        [(search, 24, 12) for rule, search in per_rule if rule["origin"] == "sigmahq"],
    )
    return [
        index_pattern,
        by_event_name,
        errors_over_time,
        principals,
        addresses,
        regions,
        sources,
        failed_logins_over_time,
        root,
        failed_logins,
        unauthorized,
        tampering,
        security_groups,
        audit,
        locations,
        countries,
        signals_over_time,
        by_severity,
        by_technique,
        all_signals,
        *(search for _, search in per_rule),
        signals,
        s3_buckets,
        roles_assumed,
        instance_types,
        kms_keys,
        secrets,
        failures,
        resources,
        sigmahq,
    ]


# The log type families. Each has its own index pattern (`cwl-vpcflow-*`, `cwl-guardduty-*`),
# named once as its title, which `setup` retargets like the CloudTrail one.
VPCFLOW_PATTERN_ID = "cwl-indexer-vpcflow-index-pattern"
GUARDDUTY_PATTERN_ID = "cwl-indexer-guardduty-index-pattern"
REJECTED = "event.action:reject"


def family_pattern(pattern_id, title):
    """A family's index pattern: its title names its indices, once, for `setup` to retarget."""
    return {
        "id": pattern_id,
        "type": "index-pattern",
        "attributes": {"title": title, "timeFieldName": "@timestamp"},
        "references": [],
    }


def logtype_objects():
    flows = family_pattern(VPCFLOW_PATTERN_ID, "cwl-vpcflow-*")
    findings = family_pattern(GUARDDUTY_PATTERN_ID, "cwl-guardduty-*")
    bytes_sum = sum_of("source.bytes", "Bytes")
    bytes_over_time = visualization(
        "cwl-indexer-vpcflow-bytes-over-time",
        "VPC flows: bytes over time",
        "Bytes sent (source.bytes), summed per interval of the flows' start.",
        "histogram",
        [date_histogram("2")],
        pattern_id=VPCFLOW_PATTERN_ID,
        metric=bytes_sum,
    )
    top_talkers = visualization(
        "cwl-indexer-vpcflow-top-talkers",
        "VPC flows: top talkers",
        "The 10 source addresses that sent the most bytes.",
        "table",
        [terms("2", "source.ip", 10, "bucket", "source.ip")],
        pattern_id=VPCFLOW_PATTERN_ID,
        metric=bytes_sum,
    )
    rejected_by_port = visualization(
        "cwl-indexer-vpcflow-rejected-by-port",
        "VPC flows: rejected by destination port",
        "Rejected flows (event.action:reject) per destination port: what is knocking.",
        "horizontal_bar",
        [terms("2", "destination.port", 20, "segment", "destination.port")],
        query=REJECTED,
        pattern_id=VPCFLOW_PATTERN_ID,
    )
    remote_map = visualization(
        "cwl-indexer-vpcflow-remote-map",
        "VPC flows: map of remote addresses",
        "Where public source addresses are (GeoIP, enriched at ingest; private addresses have none).",
        "tile_map",
        [geohash_grid("2", "source.geo.location")],
        pattern_id=VPCFLOW_PATTERN_ID,
    )
    by_direction = visualization(
        "cwl-indexer-vpcflow-by-direction",
        "VPC flows: traffic by direction",
        "Bytes by flow-direction (ingress/egress; formats from version 5 have it).",
        "pie",
        [terms("2", "network.direction", 5, "segment", "network.direction")],
        pattern_id=VPCFLOW_PATTERN_ID,
        metric=bytes_sum,
    )
    severity_over_time = visualization(
        "cwl-indexer-guardduty-severity-over-time",
        "GuardDuty: findings by severity over time",
        "Finding versions per interval of updatedAt, by severity label (GuardDuty's bands).",
        "stacked_histogram",
        [date_histogram("2"), terms("3", "finding.severity_label", 4, "group", "severity")],
        pattern_id=GUARDDUTY_PATTERN_ID,
    )
    top_types = visualization(
        "cwl-indexer-guardduty-top-types",
        "GuardDuty: top finding types",
        "The 20 most frequent finding types.",
        "horizontal_bar",
        [terms("2", "finding.type", 20, "segment", "finding.type")],
        pattern_id=GUARDDUTY_PATTERN_ID,
    )
    resources = visualization(
        "cwl-indexer-guardduty-resources",
        "GuardDuty: affected resources",
        "The 20 resources (instance, access key, bucket...) with the most finding versions.",
        "table",
        [terms("2", "finding.resource.id", 20, "bucket", "finding.resource.id")],
        pattern_id=GUARDDUTY_PATTERN_ID,
    )
    actors_map = visualization(
        "cwl-indexer-guardduty-actors-map",
        "GuardDuty: map of actors",
        "Where the remote actors of findings are (the first remote address, GeoIP at ingest).",
        "tile_map",
        [geohash_grid("2", "source.geo.location")],
        pattern_id=GUARDDUTY_PATTERN_ID,
    )
    flows_dash = dashboard(
        "cwl-indexer-vpcflow-dashboard",
        "VPC flow logs",
        "Bytes, talkers, rejections, remote addresses and direction of VPC flow logs.",
        [(bytes_over_time, 48, 12), (top_talkers, 24, 15), (rejected_by_port, 24, 15),
         (remote_map, 24, 15), (by_direction, 24, 15)],
    )
    findings_dash = dashboard(
        "cwl-indexer-guardduty-dashboard",
        "GuardDuty findings",
        "Finding versions by severity, type, resource and actor.",
        [(severity_over_time, 48, 12), (top_types, 24, 15), (resources, 24, 15), (actors_map, 48, 15)],
    )
    return [flows, findings, bytes_over_time, top_talkers, rejected_by_port, remote_map, by_direction,
            severity_over_time, top_types, resources, actors_map, flows_dash, findings_dash]


# Route 53 Resolver query logs and WAF logs, in logtypes.ndjson after the flows and findings.
RESOLVER_PATTERN_ID = "cwl-indexer-resolver-index-pattern"
WAF_PATTERN_ID = "cwl-indexer-waf-index-pattern"


def resolver_waf_objects():
    queries = family_pattern(RESOLVER_PATTERN_ID, "cwl-resolver-*")
    requests = family_pattern(WAF_PATTERN_ID, "cwl-waf-*")
    queries_over_time = visualization(
        "cwl-indexer-resolver-queries-over-time",
        "Resolver: queries over time",
        "DNS queries per interval of query_timestamp.",
        "histogram",
        [date_histogram("2")],
        pattern_id=RESOLVER_PATTERN_ID,
    )
    top_names = visualization(
        "cwl-indexer-resolver-top-names",
        "Resolver: top query names",
        "The 20 most queried names (dns.question.name, with the final dot).",
        "table",
        [terms("2", "dns.question.name", 20, "bucket", "dns.question.name")],
        pattern_id=RESOLVER_PATTERN_ID,
    )
    response_codes = visualization(
        "cwl-indexer-resolver-response-codes",
        "Resolver: response codes",
        "Queries by response code (NOERROR, NXDOMAIN, SERVFAIL...): a rise in NXDOMAIN can be DGA malware.",
        "pie",
        [terms("2", "dns.response_code", 10, "segment", "dns.response_code")],
        pattern_id=RESOLVER_PATTERN_ID,
    )
    top_sources = visualization(
        "cwl-indexer-resolver-top-sources",
        "Resolver: top querying addresses",
        "The 20 source addresses (instances, resolver endpoints) that asked the most.",
        "table",
        [terms("2", "source.ip", 20, "bucket", "source.ip")],
        pattern_id=RESOLVER_PATTERN_ID,
    )
    firewall = visualization(
        "cwl-indexer-resolver-firewall-actions",
        "Resolver: DNS Firewall actions",
        "Queries DNS Firewall matched, by its action (ALERT, BLOCK, ALLOW).",
        "pie",
        [terms("2", "aws.route53.firewall.rule_action", 5, "segment", "firewall action")],
        pattern_id=RESOLVER_PATTERN_ID,
    )
    actions_over_time = visualization(
        "cwl-indexer-waf-actions-over-time",
        "WAF: requests by action over time",
        "Requests per interval of their timestamp, by action (allow, block, count, captcha, challenge).",
        "stacked_histogram",
        [date_histogram("2"), terms("3", "event.action", 5, "group", "action")],
        pattern_id=WAF_PATTERN_ID,
    )
    terminating_rules = visualization(
        "cwl-indexer-waf-terminating-rules",
        "WAF: top terminating rules",
        "The 20 rules that decided the most requests (Default_Action: no rule matched).",
        "horizontal_bar",
        [terms("2", "aws.waf.terminating_rule_id", 20, "segment", "terminating rule")],
        pattern_id=WAF_PATTERN_ID,
    )
    top_clients = visualization(
        "cwl-indexer-waf-top-clients",
        "WAF: top client addresses",
        "The 20 client addresses with the most requests.",
        "table",
        [terms("2", "source.ip", 20, "bucket", "source.ip")],
        pattern_id=WAF_PATTERN_ID,
    )
    countries = visualization(
        "cwl-indexer-waf-countries",
        "WAF: requests by country",
        "Requests by the client's country as WAF itself reports it (aws.waf.country).",
        "pie",
        [terms("2", "aws.waf.country", 20, "segment", "country")],
        pattern_id=WAF_PATTERN_ID,
    )
    top_uris = visualization(
        "cwl-indexer-waf-top-uris",
        "WAF: top URIs",
        "The 20 most requested paths (url.path).",
        "table",
        [terms("2", "url.path", 20, "bucket", "url.path")],
        pattern_id=WAF_PATTERN_ID,
    )
    clients_map = visualization(
        "cwl-indexer-waf-clients-map",
        "WAF: map of clients",
        "Where client addresses are (GeoIP, enriched at ingest).",
        "tile_map",
        [geohash_grid("2", "source.geo.location")],
        pattern_id=WAF_PATTERN_ID,
    )
    resolver_dash = dashboard(
        "cwl-indexer-resolver-dashboard",
        "Route 53 Resolver queries",
        "DNS queries over time, by name, response code, source and DNS Firewall action.",
        [(queries_over_time, 48, 12), (top_names, 24, 15), (response_codes, 24, 15),
         (top_sources, 24, 15), (firewall, 24, 15)],
    )
    waf_dash = dashboard(
        "cwl-indexer-waf-dashboard",
        "WAF requests",
        "WAF requests by action over time, terminating rule, client, country and URI.",
        [(actions_over_time, 48, 12), (terminating_rules, 24, 15), (top_clients, 24, 15),
         (countries, 24, 15), (top_uris, 24, 15), (clients_map, 48, 15)],
    )
    return [queries, requests, queries_over_time, top_names, response_codes, top_sources, firewall,
            actions_over_time, terminating_rules, top_clients, countries, top_uris, clients_map,
            resolver_dash, waf_dash]


def render(objs=None):
    out = []
    for obj in objects() if objs is None else objs:
        obj = dict(obj, migrationVersion={obj["type"]: MIGRATION[obj["type"]]})
        out.append(minify(obj) + "\n")
    return "".join(out)


def main(argv):
    text = render()
    logtypes = render(logtype_objects() + resolver_waf_objects())
    if argv[1:] == ["--stdout"]:
        sys.stdout.write(text)
    elif argv[1:] == ["--stdout-logtypes"]:
        sys.stdout.write(logtypes)
    elif argv[1:]:
        sys.exit(__doc__)
    else:
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        for path, content in [(OUT, text), (LOGTYPES_OUT, logtypes)]:
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(content)
            print(f"wrote {os.path.relpath(path, ROOT)}: {content.count(chr(10))} objects", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
