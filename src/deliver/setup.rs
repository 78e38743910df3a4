//! Cluster setup, shared by the function (lazily, on its first write) and `cwl-indexer setup`:
//! the index templates, the retention policy (ISM on OpenSearch, ILM on Elasticsearch), and
//! the Dashboards saved objects. Idempotent: what is already in place is left alone.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client as OpenSearch, RequestError};
use super::response;
use crate::config::SetupConfig;
use crate::index::{self as template, Flavor};

/// Why setup failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A request failed.
    #[error("{what}: {source}")]
    Request {
        /// What was being done.
        what: String,
        /// The failure.
        source: RequestError,
    },
    /// The cluster answered with an error.
    #[error("{what}: HTTP {status}: {reason}")]
    Refused {
        /// What was being done.
        what: String,
        /// HTTP status.
        status: u16,
        /// Error type and reason.
        reason: String,
    },
}

/// What one setup step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Did not exist; created.
    Created,
    /// Existed with other content; replaced.
    Updated,
    /// Already as wanted.
    Unchanged,
}

/// The engine behind the endpoint, as `GET /` tells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cluster {
    /// `opensearch` or `elasticsearch` (or `unknown` where `GET /` is not served, as on
    /// OpenSearch Serverless).
    pub distribution: String,
    /// The version number.
    pub version: String,
    /// How free-form subtrees are mapped there.
    #[serde(serialize_with = "flavor_name")]
    pub flavor: Flavor,
}

fn flavor_name<S: serde::Serializer>(f: &Flavor, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(f.as_str())
}

/// What happened to the retention policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Retention {
    /// An ISM (OpenSearch) or ILM (Elasticsearch) policy is in place.
    Installed {
        /// `ism` or `ilm`.
        kind: &'static str,
        /// The policy id.
        policy: String,
        /// What this run did.
        change: Change,
    },
    /// `RETENTION_DAYS=0`: indices are kept until deleted by hand.
    Disabled,
    /// The cluster has neither ISM nor ILM (the minimal OpenSearch distribution, Elasticsearch
    /// OSS): nothing installed, documents still flow.
    Unsupported {
        /// What is missing.
        reason: String,
    },
}

/// A setup step left out on purpose, and why (OpenSearch Serverless lacks it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    /// The request or setting not sent.
    pub step: &'static str,
    /// Why, and what takes its place.
    pub reason: &'static str,
}

/// Everything one setup run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The engine.
    pub cluster: Cluster,
    /// The document and dead-letter templates: (name, change).
    pub templates: Vec<(String, Change)>,
    /// The retention policy.
    pub retention: Retention,
    /// The policies of the families given a retention of their own (`VPCFLOW_RETENTION_DAYS`,
    /// ...): `(family, what happened)`; empty where none is set.
    pub family_retention: Vec<(String, Retention)>,
    /// Saved objects imported into Dashboards (none without `DASHBOARDS_URL`).
    pub dashboards_objects: Option<u64>,
    /// The steps left out (on OpenSearch Serverless; empty elsewhere).
    pub skipped: Vec<Skip>,
}

/// Why retention is not installed on OpenSearch Serverless.
pub const SERVERLESS_RETENTION: &str = "OpenSearch Serverless: retention is the collection's lifecycle policy";

/// What setup leaves out on OpenSearch Serverless, which serves none of it.
const SERVERLESS_SKIPS: [Skip; 3] = [
    Skip {
        step: "GET / (version probe)",
        reason: "OpenSearch Serverless does not identify its engine version there: the templates use the \
                 mapping every engine accepts (free-form subtrees unindexed, searchable through @json)",
    },
    Skip {
        step: "GET _cat/plugins (plugin listing)",
        reason: "OpenSearch Serverless lists no plugins, and has no ISM to look for",
    },
    Skip {
        step: "ISM/ILM retention policy",
        reason: SERVERLESS_RETENTION,
    },
];

/// The Dashboards saved objects, compiled in (`dashboards/cloudtrail-audit.ndjson`).
pub const SAVED_OBJECTS: &str = include_str!("../../dashboards/cloudtrail-audit.ndjson");

/// The log type families' saved objects (`dashboards/logtypes.ndjson`): VPC flow logs and
/// GuardDuty findings.
pub const LOGTYPE_OBJECTS: &str = include_str!("../../dashboards/logtypes.ndjson");

/// The title of the CloudTrail index pattern for `prefix`: the daily indices only
/// ([`template::document_patterns`]), comma-separated as Dashboards takes several patterns.
pub fn cloudtrail_pattern(prefix: &str) -> String {
    template::document_patterns(prefix).join(",")
}

/// The saved objects for indices under `prefix`, CloudTrail's then the families': each index
/// pattern's title is the one place the shipped files name its indices.
pub fn saved_objects(prefix: &str) -> String {
    let title = |pattern: &str| format!(r#""title":"{pattern}""#);
    let mut out = SAVED_OBJECTS.replace(&title(&cloudtrail_pattern("cwl")), &title(&cloudtrail_pattern(prefix)));
    let mut families = LOGTYPE_OBJECTS.to_owned();
    for family in ["vpcflow", "guardduty", "resolver", "waf"] {
        families = families.replace(
            &title(&format!("cwl-{family}-*")),
            &title(&format!("{prefix}-{family}-*")),
        );
    }
    out.push_str(&families);
    out
}

/// The `multipart/form-data` body Dashboards' import API takes, and its boundary.
pub fn import_body(prefix: &str) -> (String, Vec<u8>) {
    let boundary = "cwl-indexer-saved-objects-7d1c0a";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cloudtrail-audit.ndjson\"\r\nContent-Type: application/ndjson\r\n\r\n").as_bytes());
    body.extend_from_slice(saved_objects(prefix).as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary.to_owned(), body)
}

/// Imports the saved objects into Dashboards at `base` (`https://domain/_dashboards`),
/// overwriting earlier copies: idempotent. Signed like every other request.
pub async fn import_dashboards(
    os: &OpenSearch,
    base: &url::Url,
    prefix: &str,
    timeout: Duration,
) -> Result<u64, SetupError> {
    let what = "import Dashboards saved objects";
    let mut url = base.clone();
    let path = format!("{}/api/saved_objects/_import", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(Some("overwrite=true"));
    let (boundary, body) = import_body(prefix);
    let mut headers = reqwest::header::HeaderMap::new();
    // OpenSearch Dashboards and Kibana refuse writes without their anti-CSRF header.
    headers.insert("osd-xsrf", reqwest::header::HeaderValue::from_static("true"));
    headers.insert("kbn-xsrf", reqwest::header::HeaderValue::from_static("true"));
    let content_type = reqwest::header::HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}"))
        .map_err(|e| SetupError::Refused {
            what: what.into(),
            status: 0,
            reason: e.to_string(),
        })?;
    let (status, answer) = os
        .request_url(Method::POST, url, content_type, headers, &body, timeout)
        .await
        .map_err(|source| SetupError::Request {
            what: what.into(),
            source,
        })?;
    let value: Value = serde_json::from_slice(&answer).unwrap_or_default();
    if !status.is_success() || value["success"] != true {
        return Err(SetupError::Refused {
            what: what.into(),
            status: status.as_u16(),
            reason: response::describe_error(&answer),
        });
    }
    Ok(value["successCount"].as_u64().unwrap_or(0))
}

/// The policy id of `prefix`'s retention policy.
pub fn policy_id(prefix: &str) -> String {
    format!("cwl-indexer-{prefix}-retention")
}

/// The policy id of a log type family's own retention policy (`<FAMILY>_RETENTION_DAYS`).
pub fn family_policy_id(prefix: &str, family: &str) -> String {
    format!("cwl-indexer-{prefix}-{family}-retention")
}

/// The ILM policy a family's template names: its own where it has its own days, none where
/// it keeps its indices (`0`), else the shared one (none either with `RETENTION_DAYS=0`).
fn family_ilm_policy(prefix: &str, family: &str, config: &SetupConfig) -> Option<String> {
    match config.family_retention_days.iter().find(|(f, _)| *f == family) {
        Some((_, 0)) => None,
        Some(_) => Some(family_policy_id(prefix, family)),
        None => (config.retention_days > 0).then(|| policy_id(prefix)),
    }
}

struct Client<'a> {
    os: &'a OpenSearch,
    timeout: Duration,
}

impl Client<'_> {
    async fn call(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), SetupError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let (status, answer) = self
            .os
            .request(method, path, bytes.as_deref(), self.timeout)
            .await
            .map_err(|source| SetupError::Request {
                what: what.to_owned(),
                source,
            })?;
        let value =
            serde_json::from_slice(&answer).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer).into()));
        Ok((status.as_u16(), value))
    }

    async fn expect_ok(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SetupError> {
        let (status, value) = self.call(what, method, path, body).await?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(SetupError::Refused {
                what: what.to_owned(),
                status,
                reason: response::describe_error(value.to_string().as_bytes()),
            })
        }
    }
}

/// Runs the whole setup against `os` for indices under `prefix`.
pub async fn run(os: &OpenSearch, prefix: &str, config: &SetupConfig, timeout: Duration) -> Result<Report, SetupError> {
    let client = Client { os, timeout };
    if config.serverless.is_some() {
        return run_serverless(&client, prefix, config).await;
    }
    let cluster = detect(&client).await;
    let retention_kind = if config.any_retention() {
        lifecycle_support(&client, &cluster).await?
    } else {
        None
    };
    let ilm = retention_kind == Some("ilm");
    let lifecycle = (ilm && config.retention_days > 0).then(|| policy_id(prefix));
    let mut templates = put_document_templates(&client, prefix, &cluster, config, lifecycle.as_deref()).await?;
    let mut bodies = vec![(
        template::deadletter_template_name(prefix),
        template::deadletter_template(prefix, config.index_replicas, lifecycle.as_deref()),
    )];
    // One per log type family, each installed (and fingerprinted) like the dead-letter one.
    // Under ILM each family's template names its policy (its own, the shared one or none).
    let family_lifecycle = |family: &str| ilm.then(|| family_ilm_policy(prefix, family, config)).flatten();
    bodies.extend(template::family_templates_with(
        prefix,
        config.index_replicas,
        &family_lifecycle,
    ));
    for (name, body) in bodies {
        let change = put_template(&client, &name, body, &[]).await?;
        templates.push((name, change));
    }
    let retention = match (config.retention_days, retention_kind) {
        (0, _) => Retention::Disabled,
        (_, Some("ism")) => Retention::Installed {
            kind: "ism",
            policy: policy_id(prefix),
            change: put_ism_policy(&client, &policy_id(prefix), &ism_policy(prefix, config)).await?,
        },
        (_, Some(_)) => Retention::Installed {
            kind: "ilm",
            policy: policy_id(prefix),
            change: put_ilm_policy(&client, &policy_id(prefix), &ilm_policy(config)).await?,
        },
        (_, None) => Retention::Unsupported {
            reason: no_lifecycle(&cluster),
        },
    };
    let mut family_retention = Vec::new();
    for &(family, days) in &config.family_retention_days {
        let id = family_policy_id(prefix, family);
        // Kept for good, and nothing would delete it anyway: no shared ISM policy to
        // override (ILM: the family's template names no policy).
        let nothing_deletes = days == 0 && (config.retention_days == 0 || retention_kind != Some("ism"));
        let done = match retention_kind {
            _ if nothing_deletes => Retention::Disabled,
            Some("ism") => Retention::Installed {
                kind: "ism",
                change: put_ism_policy(&client, &id, &family_ism_policy(prefix, family, days, config)).await?,
                policy: id,
            },
            Some(_) => Retention::Installed {
                kind: "ilm",
                change: put_ilm_policy(&client, &id, &ilm_policy_days(days, config.warm_after_days)).await?,
                policy: id,
            },
            None => Retention::Unsupported {
                reason: no_lifecycle(&cluster),
            },
        };
        family_retention.push((family.to_owned(), done));
    }
    let dashboards_objects = match &config.dashboards {
        Some(base) => Some(import_dashboards(os, base, prefix, timeout).await?),
        None => None,
    };
    Ok(Report {
        cluster,
        templates,
        retention,
        family_retention,
        dashboards_objects,
        skipped: Vec::new(),
    })
}

/// Setup on an OpenSearch Serverless collection: only the two index templates, which it
/// accepts (`aoss:DescribeCollectionItems`, `CreateCollectionItems`, `UpdateCollectionItems`);
/// no version probe, plugin listing, ISM or Dashboards import, each reported as skipped.
async fn run_serverless(client: &Client<'_>, prefix: &str, config: &SetupConfig) -> Result<Report, SetupError> {
    let mut skipped = SERVERLESS_SKIPS.to_vec();
    if config.index_replicas.is_some() {
        skipped.push(Skip {
            step: "index.number_of_replicas (INDEX_REPLICAS)",
            reason: "OpenSearch Serverless manages replicas itself",
        });
    }
    skipped.push(Skip {
        step: "index.codec",
        reason: "OpenSearch Serverless manages storage itself; left out rather than risk a refused template",
    });
    skipped.push(Skip {
        step: "index.sort.* (sorted daily indices)",
        reason: "OpenSearch Serverless manages segments itself; left out rather than risk a refused template",
    });
    if config.dashboards.is_some() {
        skipped.push(Skip {
            step: "Dashboards saved objects import (DASHBOARDS_URL)",
            reason: "OpenSearch Serverless Dashboards is opened through the console: import \
                     dashboards/cloudtrail-audit.ndjson under Saved objects as the admin principal",
        });
    }
    let serverless_template = |mut body: Value| {
        if let Some(settings) = body["template"]["settings"].as_object_mut() {
            for key in ["index.codec", "index.sort.field", "index.sort.order"] {
                settings.remove(key);
            }
        }
        body
    };
    let mut templates = Vec::new();
    for (name, body) in [
        (
            template::template_name(prefix),
            template::document_template(prefix, Flavor::Disabled, None, None),
        ),
        (
            template::deadletter_template_name(prefix),
            template::deadletter_template(prefix, None, None),
        ),
    ] {
        let change = put_template(client, &name, serverless_template(body), &[]).await?;
        templates.push((name, change));
    }
    Ok(Report {
        cluster: Cluster {
            distribution: "opensearch-serverless".into(),
            version: "unknown".into(),
            flavor: Flavor::Disabled,
        },
        templates,
        retention: Retention::Unsupported {
            reason: SERVERLESS_RETENTION.into(),
        },
        family_retention: config
            .family_retention_days
            .iter()
            .map(|(family, _)| {
                let reason = SERVERLESS_RETENTION.into();
                ((*family).to_owned(), Retention::Unsupported { reason })
            })
            .collect(),
        dashboards_objects: None,
        skipped,
    })
}

/// The flavor of the cluster behind `os`, for a sink that does not run setup. An error only
/// when `GET /` could not be asked at all; an answer other than 200 is the flavor every engine
/// accepts, as in [`run`].
pub async fn detect_flavor(os: &OpenSearch, timeout: Duration) -> Result<Flavor, SetupError> {
    let client = Client { os, timeout };
    Ok(match client.call("GET /", Method::GET, "", None).await? {
        (200, root) => Flavor::detect(&root),
        _ => Flavor::Disabled,
    })
}

async fn detect(client: &Client<'_>) -> Cluster {
    match client.call("GET /", Method::GET, "", None).await {
        Ok((200, root)) => Cluster {
            distribution: root["version"]["distribution"]
                .as_str()
                .unwrap_or("elasticsearch")
                .to_owned(),
            version: root["version"]["number"].as_str().unwrap_or("unknown").to_owned(),
            flavor: Flavor::detect(&root),
        },
        // OpenSearch Serverless serves no `GET /`: use the mapping every engine accepts.
        _ => Cluster {
            distribution: "unknown".into(),
            version: "unknown".into(),
            flavor: Flavor::Disabled,
        },
    }
}

/// Why no retention policy can be installed on `cluster`.
fn no_lifecycle(cluster: &Cluster) -> String {
    format!(
        "{} {} has no Index State Management or Index Lifecycle Management",
        cluster.distribution, cluster.version
    )
}

/// `Some("ism")`, `Some("ilm")` or `None`, by asking for the plugin's own status endpoint.
async fn lifecycle_support(client: &Client<'_>, cluster: &Cluster) -> Result<Option<&'static str>, SetupError> {
    if cluster.distribution == "opensearch" {
        // Listing plugins is allowed on OpenSearch Service; ISM is built into every domain.
        let (status, plugins) = client
            .call(
                "list plugins",
                Method::GET,
                "_cat/plugins?format=json&h=component",
                None,
            )
            .await?;
        let has_ism = status == 200
            && plugins
                .as_array()
                .is_some_and(|p| p.iter().any(|c| c["component"] == "opensearch-index-management"));
        return Ok(has_ism.then_some("ism"));
    }
    let (status, _) = client.call("ILM status", Method::GET, "_ilm/status", None).await?;
    Ok((status == 200).then_some("ilm"))
}

/// The document template as component templates and the index template composing them; where
/// the cluster refuses component templates, the same mapping as one index template.
async fn put_document_templates(
    client: &Client<'_>,
    prefix: &str,
    cluster: &Cluster,
    config: &SetupConfig,
    lifecycle: Option<&str>,
) -> Result<Vec<(String, Change)>, SetupError> {
    let composed = template::composed_templates(prefix, cluster.flavor, config.index_replicas, lifecycle);
    let mut done = Vec::new();
    for (name, body) in composed.components {
        match put_component(client, &name, body).await {
            Ok(change) => done.push((name, change)),
            // 400/404/405/501: no component templates here (a serverless or restricted API).
            Err(SetupError::Refused { status, reason, .. })
                if done.is_empty() && matches!(status, 400 | 404 | 405 | 501) =>
            {
                tracing::warn!(
                    status,
                    reason,
                    "component templates refused: installing one index template"
                );
                let name = template::template_name(prefix);
                let body = template::document_template(prefix, cluster.flavor, config.index_replicas, lifecycle);
                let change = put_template(client, &name, body, &[]).await?;
                return Ok(vec![(name, change)]);
            }
            Err(e) => return Err(e),
        }
    }
    let name = template::template_name(prefix);
    let ours: Vec<String> = template::COMPONENTS
        .iter()
        .map(|part| template::component_name(prefix, part))
        .collect();
    let change = put_template(client, &name, composed.index_template, &ours).await?;
    done.push((name, change));
    Ok(done)
}

/// What a PUT did, given the status of the GET before it: replaced what was there, or created it.
fn written(status: u16) -> Change {
    if status == 200 {
        Change::Updated
    } else {
        Change::Created
    }
}

/// Puts a component template unless the installed one carries the same fingerprint.
async fn put_component(client: &Client<'_>, name: &str, mut body: Value) -> Result<Change, SetupError> {
    let fingerprint = fingerprint(&body);
    body["_meta"]["fingerprint"] = json!(fingerprint);
    let path = format!("_component_template/{name}");
    let what = format!("component template {name}");
    let (status, current) = client.call(&what, Method::GET, &path, None).await?;
    let installed = current["component_templates"][0]["component_template"]["_meta"]["fingerprint"].as_str();
    if status == 200 && installed == Some(fingerprint.as_str()) {
        return Ok(Change::Unchanged);
    }
    client.expect_ok(&what, Method::PUT, &path, Some(&body)).await?;
    Ok(written(status))
}

/// Puts an index template unless the installed one carries the same fingerprint. An update
/// keeps, after `ours`, every component the installed template composes that is not one of
/// `ours` (Security Analytics appends its own aliases that way; so can users).
async fn put_template(client: &Client<'_>, name: &str, mut body: Value, ours: &[String]) -> Result<Change, SetupError> {
    let fingerprint = fingerprint(&body);
    body["_meta"]["fingerprint"] = json!(fingerprint);
    let path = format!("_index_template/{name}");
    let what = format!("index template {name}");
    let (status, current) = client.call(&what, Method::GET, &path, None).await?;
    let installed = &current["index_templates"][0]["index_template"];
    if status == 200 && installed["_meta"]["fingerprint"].as_str() == Some(fingerprint.as_str()) {
        return Ok(Change::Unchanged);
    }
    let theirs = installed["composed_of"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|c| !ours.iter().any(|o| o == c));
    if let Some(composed) = body.get_mut("composed_of").and_then(Value::as_array_mut) {
        composed.extend(theirs.map(|c| json!(c)));
    }
    client.expect_ok(&what, Method::PUT, &path, Some(&body)).await?;
    Ok(written(status))
}

/// The ISM policy: optionally `warm_migration` (UltraWarm) after `warm_after_days`, then
/// delete after `retention_days`, attached to new `<prefix>-*` indices by its `ism_template`.
///
/// The policy attaches itself through `ism_template` rather than through an index setting
/// in the index template: the `policy_id` index setting is deprecated, and on a cluster
/// without ISM it would make every index creation fail.
pub fn ism_policy(prefix: &str, config: &SetupConfig) -> Value {
    ism_body(
        &format!("{prefix}-*"),
        config.retention_days,
        config.warm_after_days,
        100,
    )
}

/// The ISM policy of a family with a retention of its own: like [`ism_policy`] for
/// `<prefix>-<family>-*` after `days` (`0`: kept, never deleted), at a higher `ism_template`
/// priority, so a new family index gets it rather than the shared one.
pub fn family_ism_policy(prefix: &str, family: &str, days: u32, config: &SetupConfig) -> Value {
    ism_body(&format!("{prefix}-{family}-*"), days, config.warm_after_days, 200)
}

fn ism_body(pattern: &str, days: u32, warm_after_days: Option<u32>, priority: u32) -> Value {
    let delete = json!({"name": "delete", "actions": [{"delete": {}}], "transitions": []});
    let after = |days: u32| json!({"min_index_age": format!("{days}d")});
    let states = match warm_after_days {
        // Kept until deleted by hand: one state, nothing to move to.
        _ if days == 0 => json!([{"name": "hot", "actions": [], "transitions": []}]),
        Some(warm) if warm < days => json!([
            {"name": "hot", "actions": [], "transitions": [{"state_name": "warm", "conditions": after(warm)}]},
            {"name": "warm", "actions": [{"warm_migration": {}}],
             "transitions": [{"state_name": "delete", "conditions": after(days)}]},
            delete
        ]),
        _ => json!([
            {"name": "hot", "actions": [], "transitions": [{"state_name": "delete", "conditions": after(days)}]},
            delete
        ]),
    };
    let mut policy = json!({
        "policy": {
            "default_state": "hot",
            "states": states,
            "ism_template": [{"index_patterns": [pattern], "priority": priority}]
        }
    });
    let description = if days == 0 {
        format!("cwl-indexer: keep {pattern} indices until deleted by hand")
    } else {
        format!(
            "cwl-indexer: delete {pattern} indices {days} days after creation{}",
            warm_after_days.map_or(String::new(), |w| format!(", UltraWarm after {w} days"))
        )
    };
    let print = fingerprint(&policy);
    policy["policy"]["description"] = json!(format!("{description} [{print}]"));
    policy
}

async fn put_ism_policy(client: &Client<'_>, id: &str, body: &Value) -> Result<Change, SetupError> {
    let path = format!("_plugins/_ism/policies/{id}");
    let what = format!("ISM policy {id}");
    let (status, current) = client.call(&what, Method::GET, &path, None).await?;
    if status == 200 {
        if current["policy"]["description"] == body["policy"]["description"] {
            return Ok(Change::Unchanged);
        }
        // Optimistic concurrency: a policy is replaced only at the version read.
        let update = format!(
            "{path}?if_seq_no={}&if_primary_term={}",
            current["_seq_no"].as_u64().unwrap_or(0),
            current["_primary_term"].as_u64().unwrap_or(0)
        );
        client.expect_ok(&what, Method::PUT, &update, Some(body)).await?;
        return Ok(Change::Updated);
    }
    client.expect_ok(&what, Method::PUT, &path, Some(body)).await?;
    Ok(Change::Created)
}

/// The ILM policy, for Elasticsearch with its default distribution.
pub fn ilm_policy(config: &SetupConfig) -> Value {
    ilm_policy_days(config.retention_days, config.warm_after_days)
}

/// The ILM policy deleting after `days` (a family's own retention), warm after `warm_after_days`.
pub fn ilm_policy_days(days: u32, warm_after_days: Option<u32>) -> Value {
    let mut phases = json!({
        "delete": {"min_age": format!("{days}d"), "actions": {"delete": {}}}
    });
    if let Some(warm) = warm_after_days.filter(|w| *w < days) {
        phases["warm"] = json!({"min_age": format!("{warm}d"), "actions": {}});
    }
    let mut policy = json!({"policy": {"phases": phases}});
    let print = fingerprint(&policy);
    policy["policy"]["_meta"] = json!({"managed_by": "cwl-indexer", "fingerprint": print});
    policy
}

async fn put_ilm_policy(client: &Client<'_>, id: &str, body: &Value) -> Result<Change, SetupError> {
    let path = format!("_ilm/policy/{id}");
    let what = format!("ILM policy {id}");
    let (status, current) = client.call(&what, Method::GET, &path, None).await?;
    if status == 200 && current[id]["policy"]["_meta"]["fingerprint"] == body["policy"]["_meta"]["fingerprint"] {
        return Ok(Change::Unchanged);
    }
    client.expect_ok(&what, Method::PUT, &path, Some(body)).await?;
    Ok(written(status))
}

/// A stable 64-bit FNV-1a fingerprint of a JSON body, as 16 hex digits: installed objects
/// carry it, so an unchanged object is never rewritten (many cold starts, one write).
fn fingerprint(body: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(days: u32, warm: Option<u32>) -> SetupConfig {
        SetupConfig {
            retention_days: days,
            warm_after_days: warm,
            ..SetupConfig::default()
        }
    }

    #[test]
    fn ism_policy_deletes_after_the_retention() {
        let p = ism_policy("cwl", &config(90, None));
        let states = p["policy"]["states"].as_array().unwrap();
        assert_eq!(states.len(), 2);
        assert_eq!(states[0]["transitions"][0]["conditions"]["min_index_age"], "90d");
        assert_eq!(states[1]["actions"][0], json!({"delete": {}}));
        assert_eq!(p["policy"]["ism_template"][0]["index_patterns"], json!(["cwl-*"]));
        assert!(p["policy"]["description"].as_str().unwrap().contains("90 days"));
    }

    #[test]
    fn ism_policy_with_ultrawarm() {
        let p = ism_policy("audit", &config(365, Some(30)));
        let states = p["policy"]["states"].as_array().unwrap();
        assert_eq!(states.len(), 3);
        assert_eq!(states[0]["transitions"][0]["conditions"]["min_index_age"], "30d");
        assert_eq!(states[1]["actions"][0], json!({"warm_migration": {}}));
        assert_eq!(states[1]["transitions"][0]["conditions"]["min_index_age"], "365d");
        // A warm phase after the deletion makes no sense and is left out.
        assert_eq!(
            ism_policy("a", &config(10, Some(20)))["policy"]["states"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_family_with_its_own_retention_gets_its_own_policy_over_the_shared_one() {
        let mut c = config(90, Some(30));
        c.family_retention_days = vec![("vpcflow", 14), ("guardduty", 400), ("waf", 0)];
        // ISM: the family's pattern at a higher priority than the shared `<prefix>-*`.
        let flow = family_ism_policy("cwl", "vpcflow", 14, &c);
        assert_eq!(
            flow["policy"]["ism_template"][0]["index_patterns"],
            json!(["cwl-vpcflow-*"])
        );
        assert!(
            flow["policy"]["ism_template"][0]["priority"].as_u64()
                > ism_policy("cwl", &c)["policy"]["ism_template"][0]["priority"].as_u64()
        );
        let states = flow["policy"]["states"].as_array().unwrap();
        assert_eq!(states.len(), 2, "no warm phase after the deletion: {states:?}");
        assert_eq!(states[0]["transitions"][0]["conditions"]["min_index_age"], "14d");
        let gd = family_ism_policy("cwl", "guardduty", 400, &c);
        assert_eq!(
            gd["policy"]["states"][1]["transitions"][0]["conditions"]["min_index_age"],
            "400d"
        );
        // `0`: a policy that keeps, so the shared one cannot delete the family's indices.
        let kept = family_ism_policy("cwl", "waf", 0, &c);
        assert_eq!(
            kept["policy"]["states"],
            json!([{"name": "hot", "actions": [], "transitions": []}])
        );
        assert!(
            kept["policy"]["description"]
                .as_str()
                .unwrap()
                .contains("until deleted by hand")
        );
        assert_ne!(
            family_ism_policy("cwl", "vpcflow", 14, &c)["policy"]["description"],
            family_ism_policy("cwl", "vpcflow", 15, &c)["policy"]["description"]
        );
        // ILM: each family's template names its own policy, none, or the shared one.
        assert_eq!(
            ["vpcflow", "guardduty", "resolver", "waf"].map(|f| family_ilm_policy("cwl", f, &c)),
            [
                Some("cwl-indexer-cwl-vpcflow-retention".to_owned()),
                Some("cwl-indexer-cwl-guardduty-retention".to_owned()),
                Some(policy_id("cwl")),
                None
            ]
        );
        c.retention_days = 0;
        assert_eq!(family_ilm_policy("cwl", "resolver", &c), None, "RETENTION_DAYS=0");
        assert_eq!(
            ilm_policy_days(14, Some(30))["policy"]["phases"]["delete"]["min_age"],
            "14d"
        );
        assert!(ilm_policy_days(14, Some(30))["policy"]["phases"].get("warm").is_none());
        let lifecycle = |f: &str| family_ilm_policy("cwl", f, &c);
        let templates = template::family_templates_with("cwl", None, &lifecycle);
        let names: Vec<Option<&str>> = templates
            .iter()
            .map(|(_, t)| t["template"]["settings"]["index.lifecycle.name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                Some("cwl-indexer-cwl-vpcflow-retention"),
                Some("cwl-indexer-cwl-guardduty-retention"),
                None,
                None
            ]
        );
    }

    #[test]
    fn the_families_with_a_retention_variable_are_the_indexed_families() {
        let configured: Vec<String> = crate::config::FAMILY_RETENTION_VARS
            .iter()
            .map(|(family, var)| {
                assert_eq!(*var, format!("{}_RETENTION_DAYS", family.to_ascii_uppercase()));
                template::template_name("cwl") + "-" + family
            })
            .collect();
        let indexed: Vec<String> = template::family_templates("cwl", None, None)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(configured, indexed);
    }

    #[test]
    fn saved_objects_follow_the_prefix() {
        let objects = saved_objects("audit");
        assert_eq!(
            objects
                .matches(
                    r#""title":"audit-1*,audit-2*,audit-3*,audit-4*,audit-5*,audit-6*,audit-7*,audit-8*,audit-9*""#
                )
                .count(),
            1
        );
        assert_eq!(objects.matches(r#""title":"audit-vpcflow-*""#).count(), 1);
        assert_eq!(objects.matches(r#""title":"audit-guardduty-*""#).count(), 1);
        assert_eq!(objects.matches(r#""title":"audit-resolver-*""#).count(), 1);
        assert_eq!(objects.matches(r#""title":"audit-waf-*""#).count(), 1);
        assert!(!objects.contains(r#""title":"cwl-"#), "every pattern retargeted");
        for line in objects.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
        let (boundary, body) = import_body("cwl");
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        assert!(text.contains(&saved_objects("cwl")));
        assert_eq!(saved_objects("cwl"), format!("{SAVED_OBJECTS}{LOGTYPE_OBJECTS}"));
    }

    #[test]
    fn fingerprints_follow_the_content() {
        let a = ism_policy("cwl", &config(90, None));
        assert_eq!(a, ism_policy("cwl", &config(90, None)));
        assert_ne!(
            a["policy"]["description"],
            ism_policy("cwl", &config(91, None))["policy"]["description"]
        );
        assert_ne!(ilm_policy(&config(90, None)), ilm_policy(&config(90, Some(7))));
        assert_eq!(
            ilm_policy(&config(30, None))["policy"]["phases"]["delete"]["min_age"],
            "30d"
        );
    }
}
