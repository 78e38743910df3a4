//! Typed configuration, parsed once at cold start from environment variables.
//! Every default lives in [`defaults`]; every error names the variable to fix.

use std::fmt;
use std::time::Duration;

use url::Url;

pub(crate) mod flow_logs;

pub use flow_logs::{DEFAULT_FORMAT, FlowConfigError, FlowFormat, FlowLogConfig};

/// How bad a match is: a rule's level, and `ALERT_MIN_SEVERITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Investigate.
    Medium,
    /// Act now.
    High,
    /// Act now, and wake someone up.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_ascii_lowercase())).ok()
    }
}

/// How retries are paced and bounded (`MAX_ATTEMPTS`, `RETRY_*`, `DEADLINE_MARGIN_MS`,
/// `REQUEST_TIMEOUT_MS`). The decisions made with it are in `deliver::retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff's ceiling; each further attempt doubles it.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max_backoff: Duration,
    /// Attempts per bulk request, the first included. With the 413 split, each half gets
    /// its own budget; the deadline bounds the total.
    pub max_attempts: u32,
    /// Time kept free before the Lambda deadline to log, write the dead letter and return.
    pub deadline_margin: Duration,
    /// The longest one HTTP attempt may take (capped further by the deadline).
    pub request_timeout: Duration,
}

/// The defaults, in one place. The README's configuration table mirrors this module.
pub mod defaults {
    /// Daily indices are `<prefix>-YYYY.MM.DD`; `cwl` matches the console-generated function.
    pub const INDEX_PREFIX: &str = "cwl";
    /// `FLOW_LOG_GROUPS`: log groups whose text records are VPC flow logs (comma-separated
    /// globs). AWS's console suggests names with "flow" in them.
    pub const FLOW_LOG_GROUPS: &str = "*flow*";
    /// 5 MiB: half the 10 MiB HTTP payload limit of the smallest OpenSearch Service
    /// instance types (t2/t3 small and medium), leaving room for one oversized document.
    pub const BULK_MAX_BYTES: usize = 5 * 1024 * 1024;
    /// 16 MiB of decompressed envelope. CloudWatch Logs batches at most 1 MiB of events;
    /// JSON escaping in the envelope can more than double that, so 16x leaves a wide margin
    /// while refusing a gzip bomb long before it can exhaust a 128 MB function.
    pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
    /// `MAX_TRAIL_FILE_BYTES`: a CloudTrail S3 file's largest decompressed size. CloudTrail
    /// cuts its files every few minutes; even busy accounts stay well under this.
    pub const MAX_TRAIL_FILE_BYTES: usize = 256 * 1024 * 1024;
    /// Raw messages are kept only where they are the document's only content.
    pub const RAW_MESSAGE: super::RawMessage = super::RawMessage::Auto;
    /// `@json` text copies only where the cluster cannot index the subtrees themselves.
    pub const FULL_TEXT_SUBTREES: super::FullText = super::FullText::Auto;
    /// First retry's backoff ceiling.
    pub const RETRY_BASE_MS: u64 = 200;
    /// Largest backoff ceiling.
    pub const RETRY_MAX_BACKOFF_MS: u64 = 5_000;
    /// Attempts per bulk request (1 + 7 retries).
    pub const MAX_ATTEMPTS: u32 = 8;
    /// Kept free before the Lambda deadline: enough to write dead letters, log and return.
    pub const DEADLINE_MARGIN_MS: u64 = 2_000;
    /// One HTTP attempt's timeout, before the deadline caps it.
    pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
    /// The SigV4 service name of OpenSearch Service domains.
    pub const SIGV4_SERVICE: &str = "es";
    /// Days an index is kept: CloudTrail's own Event history keeps 90.
    pub const RETENTION_DAYS: u32 = 90;
    /// `DISABLED_RULES`: rules off unless the variable says otherwise. SigmaHQ's "AWS STS
    /// AssumeRole Misuse" matches every call made with an assumed role (two thirds of the
    /// shared records): it stays searchable by switching it back on (`DISABLED_RULES=none`).
    pub const DISABLED_RULES: &[&str] = &["905d389b-b853-46d0-9d3d-dea0d3a3cd49"];
}

/// The log type families whose daily indices may be kept for a time of their own, and the
/// variable that sets it: `(family, variable)`. A family not set follows `RETENTION_DAYS`.
/// The families are the index writers' (`<prefix>-<family>-*`); a test in `deliver::setup`
/// checks the two lists agree.
pub const FAMILY_RETENTION_VARS: [(&str, &str); 4] = [
    ("vpcflow", "VPCFLOW_RETENTION_DAYS"),
    ("guardduty", "GUARDDUTY_RETENTION_DAYS"),
    ("resolver", "RESOLVER_RETENTION_DAYS"),
    ("waf", "WAF_RETENTION_DAYS"),
];

/// The smallest accepted `BULK_MAX_BYTES`: one CloudWatch log event (256 KiB) plus headroom,
/// so that a bulk body cap below the size of a single event is refused at start.
pub const MIN_BULK_MAX_BYTES: usize = 64 * 1024;

/// When a document keeps the original log event text as `@message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMessage {
    /// Only when the message is not an expanded CloudTrail record (plain text, other JSON,
    /// records that failed to parse). A CloudTrail document already holds every field of its
    /// record, so a second copy would double storage for no new information.
    Auto,
    /// On every document, CloudTrail records included (about twice the storage).
    Always,
}

impl RawMessage {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
}

impl fmt::Display for RawMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "always",
        })
    }
}

/// The type of the OpenSearch Serverless collection (`AOSS_COLLECTION_TYPE`), required with
/// `SIGV4_SERVICE=aoss`: it decides how documents are addressed and what setup installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    /// A search collection: custom `_id`s and `create`, as on a domain (each event once).
    Search,
    /// A time-series collection: no custom `_id`, so `index` actions and possible duplicates.
    #[serde(rename = "timeseries")]
    TimeSeries,
}

impl CollectionType {
    /// The lower-case name, as `AOSS_COLLECTION_TYPE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::TimeSeries => "timeseries",
        }
    }

    /// Parses `search` or `timeseries`, in any case (CloudFormation spells them upper-case).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "search" => Some(Self::Search),
            "timeseries" => Some(Self::TimeSeries),
            _ => None,
        }
    }
}

/// How each document's bulk action line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BulkAction {
    /// `create` with the deterministic `_id`: a redelivered event is answered 409 and stays
    /// one document. Domains, self-managed clusters and Serverless search collections.
    #[default]
    CreateWithId,
    /// `index` without `_id`, the collection assigning one: what OpenSearch Serverless
    /// time-series collections accept. A redelivered event becomes a second document.
    IndexWithoutId,
}

/// Whether a CloudTrail document carries `@json.<field>`, the JSON text of each free-form
/// subtree, for token-level full-text search inside its values (`FULL_TEXT_SUBTREES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullText {
    /// Off where the cluster indexes the subtrees themselves (`flat_object`, `flattened`), on
    /// where it cannot (they are stored unindexed there) or is not known yet.
    Auto,
    /// Always (`true`): about a sixth more storage and a third of the transform's CPU.
    On,
    /// Never (`false`).
    Off,
}

impl FullText {
    fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "true" => Some(Self::On),
            "false" => Some(Self::Off),
            _ => None,
        }
    }

    /// Whether documents get the text copies, given whether the cluster indexes free-form
    /// subtrees (`None`: not known, as in a dry run or before setup could ask).
    pub fn enabled(self, subtrees_indexed: Option<bool>) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto => !subtrees_indexed.unwrap_or(false),
        }
    }
}

/// A secret string: shown as `***` by `Debug`, so a logged configuration leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests to the cluster are authenticated (`AUTH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// AWS SigV4 with the function's (or the CLI's) AWS credentials.
    SigV4 {
        /// `OPENSEARCH_REGION`, else `AWS_REGION`: never parsed from the hostname.
        region: String,
        /// `SIGV4_SERVICE`: `es` for OpenSearch Service, `aoss` for OpenSearch Serverless.
        service: String,
    },
    /// HTTP basic auth (`BASIC_AUTH_USER`, `BASIC_AUTH_PASSWORD`), for fine-grained access
    /// control's internal users and self-managed clusters.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// No authentication, for a local node.
    None,
}

/// Where and how documents are sent. Absent when `OPENSEARCH_ENDPOINT` is unset (dry runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// `OPENSEARCH_ENDPOINT`: the cluster's base URL.
    pub endpoint: Url,
    /// `AUTH` and its variables.
    pub auth: AuthConfig,
    /// `COMPRESSION`: gzip request bodies (`gzip`, the default) or not (`none`).
    pub gzip: bool,
    /// `RETRY_BASE_MS`, `RETRY_MAX_BACKOFF_MS`, `MAX_ATTEMPTS`, `DEADLINE_MARGIN_MS`, `REQUEST_TIMEOUT_MS`.
    pub retry: RetryPolicy,
    /// What the first write of each container installs.
    pub setup: SetupConfig,
}

/// Cluster setup: index templates and retention, run by the function on its first write and
/// by `cwl-indexer setup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupConfig {
    /// `INSTALL_TEMPLATE`: install the templates and the retention policy (`true`).
    pub install: bool,
    /// `INDEX_REPLICAS`: replicas per daily index, set in the template; unset leaves the
    /// cluster's default (1). `0` suits a single-node domain, whose replicas could never be
    /// assigned but would still count against its shard limit.
    pub index_replicas: Option<u32>,
    /// `RETENTION_DAYS`: delete indices this many days after creation (`90`, CloudTrail's
    /// own Event history); `0` installs no retention policy.
    pub retention_days: u32,
    /// `VPCFLOW_RETENTION_DAYS`, `GUARDDUTY_RETENTION_DAYS`, `RESOLVER_RETENTION_DAYS`,
    /// `WAF_RETENTION_DAYS`: the families given a retention of their own, `(family, days)`, in
    /// [`FAMILY_RETENTION_VARS`] order; `0` keeps that family's indices until deleted by hand.
    /// The others follow `retention_days`.
    pub family_retention_days: Vec<(&'static str, u32)>,
    /// `WARM_AFTER_DAYS`: move indices to UltraWarm after this many days (unset: never).
    pub warm_after_days: Option<u32>,
    /// `DASHBOARDS_URL`: also import the saved objects (index pattern, visualizations,
    /// searches, the "CloudTrail audit" dashboard) into OpenSearch Dashboards.
    pub dashboards: Option<Url>,
    /// `SIGV4_SERVICE=aoss` and its `AOSS_COLLECTION_TYPE`: an OpenSearch Serverless
    /// collection, where setup skips what Serverless lacks (version probe, plugin listing,
    /// ISM, replicas, the Dashboards import). `None` for a domain or any other cluster.
    pub serverless: Option<CollectionType>,
}

impl SetupConfig {
    /// The days `family`'s indices are kept: its own setting, or `retention_days`.
    pub fn retention_days_of(&self, family: &str) -> u32 {
        self.family_retention_days
            .iter()
            .find(|(f, _)| *f == family)
            .map_or(self.retention_days, |(_, days)| *days)
    }

    /// Whether any index is to be deleted at some point: then setup looks for ISM or ILM.
    pub fn any_retention(&self) -> bool {
        self.retention_days > 0 || self.family_retention_days.iter().any(|(_, days)| *days > 0)
    }
}

impl Default for SetupConfig {
    fn default() -> Self {
        Self {
            install: true,
            index_replicas: None,
            retention_days: defaults::RETENTION_DAYS,
            family_retention_days: Vec::new(),
            warm_after_days: None,
            dashboards: None,
            serverless: None,
        }
    }
}

/// How documents are built and batched. Shared by the Lambda function and the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `INDEX_PREFIX`: the part of the daily index name before `-YYYY.MM.DD`.
    pub index_prefix: String,
    /// `RAW_MESSAGE`: `auto` or `always`.
    pub raw_message: RawMessage,
    /// `create` with `_id`s, or `index` without them (`AOSS_COLLECTION_TYPE=timeseries`).
    /// Set from the sink's [`SetupConfig::serverless`] when parsed from the environment.
    pub bulk_action: BulkAction,
    /// `FULL_TEXT_SUBTREES`: `auto`, `true` or `false`.
    pub full_text_subtrees: FullText,
    /// `BULK_MAX_BYTES`: the largest `_bulk` request body, before compression.
    pub bulk_max_bytes: usize,
    /// `MAX_PAYLOAD_BYTES`: the largest decompressed CloudWatch Logs envelope accepted.
    pub max_payload_bytes: usize,
    /// `MAX_TRAIL_FILE_BYTES`: the largest decompressed CloudTrail S3 file accepted.
    pub max_trail_file_bytes: usize,
    /// `S3_ENDPOINT_URL`: a non-default S3 endpoint (tests, S3-compatible stores); path-style.
    pub s3_endpoint: Option<Url>,
    /// Delivery settings; `None` without `OPENSEARCH_ENDPOINT`.
    pub sink: Option<SinkConfig>,
    /// Enrichment, detections and alerts.
    pub signals: SignalsConfig,
    /// `FLOW_LOG_GROUPS` and `FLOW_LOG_FORMATS`: which log groups hold VPC flow logs, in
    /// which format.
    pub flow_logs: FlowLogConfig,
}

/// Security signals at ingest: GeoIP databases, detection rules, alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalsConfig {
    /// `GEOIP_DB`: a MaxMind-format country or city database (`.mmdb`).
    pub geoip_db: Option<std::path::PathBuf>,
    /// `GEOIP_ASN_DB`: a MaxMind-format ASN database.
    pub geoip_asn_db: Option<std::path::PathBuf>,
    /// `SIGMA_RULES`: a Sigma rule file (`.yml`) or a directory of them, added to the bundled
    /// rules (a rule with a bundled rule's `id` replaces it).
    pub sigma_rules: Option<std::path::PathBuf>,
    /// `DISABLED_RULES`: rule ids (or names) switched off; `none` for none.
    pub disabled_rules: Vec<String>,
    /// `DETECTIONS`: evaluate the rules (`true`).
    pub detections: bool,
    /// `ALLOWED_COUNTRIES`: ISO codes, comma-separated, for the country rule.
    pub allowed_countries: Vec<String>,
    /// `ALERT_TOPIC_ARN`: the SNS topic for alerts (none: no alerts).
    pub alert_topic_arn: Option<String>,
    /// `ALERT_MIN_SEVERITY`: `low`, `medium`, `high` (default) or `critical`.
    pub alert_min_severity: Severity,
    /// `SNS_ENDPOINT_URL`: a non-default SNS endpoint (a VPC endpoint, tests).
    pub sns_endpoint: Option<Url>,
    /// `DASHBOARDS_URL`: OpenSearch Dashboards, for alert links and the saved objects.
    pub dashboards_url: Option<Url>,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            geoip_db: None,
            geoip_asn_db: None,
            sigma_rules: None,
            disabled_rules: defaults::DISABLED_RULES.iter().map(|s| (*s).to_owned()).collect(),
            detections: true,
            allowed_countries: Vec::new(),
            alert_topic_arn: None,
            alert_min_severity: Severity::High,
            sns_endpoint: None,
            dashboards_url: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            index_prefix: defaults::INDEX_PREFIX.to_owned(),
            raw_message: defaults::RAW_MESSAGE,
            bulk_action: BulkAction::CreateWithId,
            full_text_subtrees: defaults::FULL_TEXT_SUBTREES,
            bulk_max_bytes: defaults::BULK_MAX_BYTES,
            max_payload_bytes: defaults::MAX_PAYLOAD_BYTES,
            max_trail_file_bytes: defaults::MAX_TRAIL_FILE_BYTES,
            s3_endpoint: None,
            sink: None,
            signals: SignalsConfig::default(),
            flow_logs: FlowLogConfig::default(),
        }
    }
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable (or the CLI flag's variable) to fix.
    pub var: &'static str,
    /// The value that was refused.
    pub value: String,
    /// Why it was refused, and what is expected instead.
    pub reason: String,
}

impl ConfigError {
    fn new(var: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            var,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Reads the process environment. Unset or empty variables take their default.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so the CLI can layer its flags over the
    /// environment and tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = Self::default();
        if let Some(v) = get("INDEX_PREFIX") {
            validate_index_prefix(&v)?;
            config.index_prefix = v;
        }
        if let Some(v) = get("RAW_MESSAGE") {
            config.raw_message =
                RawMessage::parse(&v).ok_or_else(|| ConfigError::new("RAW_MESSAGE", &v, "expected auto or always"))?;
        }
        if let Some(v) = get("FULL_TEXT_SUBTREES") {
            config.full_text_subtrees = FullText::parse(&v)
                .ok_or_else(|| ConfigError::new("FULL_TEXT_SUBTREES", &v, "expected auto, true or false"))?;
        }
        if let Some(v) = get("BULK_MAX_BYTES") {
            config.bulk_max_bytes = parse_bytes("BULK_MAX_BYTES", &v, MIN_BULK_MAX_BYTES)?;
        }
        if let Some(v) = get("MAX_PAYLOAD_BYTES") {
            config.max_payload_bytes = parse_bytes("MAX_PAYLOAD_BYTES", &v, 1024 * 1024)?;
        }
        if let Some(v) = get("MAX_TRAIL_FILE_BYTES") {
            config.max_trail_file_bytes = parse_bytes("MAX_TRAIL_FILE_BYTES", &v, 1024 * 1024)?;
        }
        if let Some(v) = get("OPENSEARCH_ENDPOINT") {
            let sink = sink_config(&v, &get)?;
            if sink.setup.serverless == Some(CollectionType::TimeSeries) {
                config.bulk_action = BulkAction::IndexWithoutId;
            }
            config.sink = Some(sink);
        }
        let signals = &mut config.signals;
        signals.geoip_db = get("GEOIP_DB").map(Into::into);
        signals.geoip_asn_db = get("GEOIP_ASN_DB").map(Into::into);
        if let Some(v) = get("RULES_FILE") {
            return Err(ConfigError::new(
                "RULES_FILE",
                &v,
                "the JSON rule format is gone: write the rules in Sigma and set SIGMA_RULES to the file or directory",
            ));
        }
        signals.sigma_rules = get("SIGMA_RULES").map(|v| v.trim().into());
        if let Some(v) = get("DISABLED_RULES") {
            signals.disabled_rules = if v.trim().eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
        }
        if let Some(v) = get("DETECTIONS") {
            signals.detections = parse_bool("DETECTIONS", &v)?;
        }
        signals.allowed_countries = get("ALLOWED_COUNTRIES")
            .map(|v| {
                v.split(',')
                    .map(|c| c.trim().to_ascii_uppercase())
                    .filter(|c| !c.is_empty())
                    .map(|c| {
                        if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                            Ok(c)
                        } else {
                            Err(ConfigError::new(
                                "ALLOWED_COUNTRIES",
                                &v,
                                "expected ISO 3166-1 alpha-2 codes, like US,IL",
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        signals.alert_topic_arn = get("ALERT_TOPIC_ARN").map(|v| v.trim().to_owned());
        if let Some(v) = get("ALERT_MIN_SEVERITY") {
            signals.alert_min_severity = Severity::parse(&v)
                .ok_or_else(|| ConfigError::new("ALERT_MIN_SEVERITY", &v, "expected low, medium, high or critical"))?;
        }
        let url = |var: &'static str| -> Result<Option<Url>, ConfigError> {
            get(var)
                .map(|v| Url::parse(v.trim()).map_err(|e| ConfigError::new(var, &v, format!("not a URL: {e}"))))
                .transpose()
        };
        signals.sns_endpoint = url("SNS_ENDPOINT_URL")?;
        config.s3_endpoint = url("S3_ENDPOINT_URL")?;
        signals.dashboards_url = url("DASHBOARDS_URL")?;
        config.flow_logs = FlowLogConfig::from_lookup(&lookup).map_err(|e| {
            let var = e.var();
            ConfigError::new(var, &lookup(var).unwrap_or_default(), e.to_string())
        })?;
        Ok(config)
    }
}

fn sink_config(endpoint: &str, get: &impl Fn(&str) -> Option<String>) -> Result<SinkConfig, ConfigError> {
    let endpoint = parse_endpoint(endpoint)?;
    let auth = match get("AUTH")
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("sigv4") => {
            let region = get("OPENSEARCH_REGION").or_else(|| get("AWS_REGION")).ok_or_else(|| {
                ConfigError::new(
                    "AWS_REGION",
                    "",
                    "AUTH=sigv4 needs a region: set OPENSEARCH_REGION or AWS_REGION",
                )
            })?;
            let service = get("SIGV4_SERVICE").unwrap_or_else(|| defaults::SIGV4_SERVICE.to_owned());
            if service != "es" && service != "aoss" {
                return Err(ConfigError::new("SIGV4_SERVICE", &service, "expected es or aoss"));
            }
            AuthConfig::SigV4 {
                region: region.trim().to_owned(),
                service,
            }
        }
        Some("basic") => {
            let user = get("BASIC_AUTH_USER")
                .ok_or_else(|| ConfigError::new("BASIC_AUTH_USER", "", "AUTH=basic needs a user name"))?;
            let password = get("BASIC_AUTH_PASSWORD")
                .ok_or_else(|| ConfigError::new("BASIC_AUTH_PASSWORD", "", "AUTH=basic needs a password"))?;
            AuthConfig::Basic {
                user,
                password: Secret::new(password),
            }
        }
        Some("none") => AuthConfig::None,
        Some(other) => return Err(ConfigError::new("AUTH", other, "expected sigv4, basic or none")),
    };
    // Plain http is only accepted for loopback (see parse_endpoint), where nothing crosses
    // a network: credentials may go there, for a local node with its security plugin on.

    let serverless = collection_type(&auth, get("AOSS_COLLECTION_TYPE"))?;

    let gzip = match get("COMPRESSION").as_deref().map(str::trim) {
        None | Some("gzip") => true,
        Some("none") => false,
        Some(other) => return Err(ConfigError::new("COMPRESSION", other, "expected gzip or none")),
    };
    let millis = |var: &'static str, default: u64, min: u64| -> Result<Duration, ConfigError> {
        get(var)
            .map_or(Ok(default), |v| parse_number(var, &v, min))
            .map(Duration::from_millis)
    };
    let retry = RetryPolicy {
        base: millis("RETRY_BASE_MS", defaults::RETRY_BASE_MS, 1)?,
        max_backoff: millis("RETRY_MAX_BACKOFF_MS", defaults::RETRY_MAX_BACKOFF_MS, 1)?,
        max_attempts: match get("MAX_ATTEMPTS") {
            None => defaults::MAX_ATTEMPTS,
            Some(v) => u32::try_from(parse_number("MAX_ATTEMPTS", &v, 1)?)
                .map_err(|_| ConfigError::new("MAX_ATTEMPTS", &v, "too large"))?,
        },
        deadline_margin: millis("DEADLINE_MARGIN_MS", defaults::DEADLINE_MARGIN_MS, 0)?,
        request_timeout: millis("REQUEST_TIMEOUT_MS", defaults::REQUEST_TIMEOUT_MS, 100)?,
    };
    let install = match get("INSTALL_TEMPLATE").as_deref().map(str::trim) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(ConfigError::new("INSTALL_TEMPLATE", other, "expected true or false")),
    };
    let count = |var: &'static str| -> Result<Option<u32>, ConfigError> {
        get(var)
            .map(|v| u32::try_from(parse_number(var, &v, 0)?).map_err(|_| ConfigError::new(var, &v, "too large")))
            .transpose()
    };
    let setup = SetupConfig {
        install,
        index_replicas: count("INDEX_REPLICAS")?,
        retention_days: count("RETENTION_DAYS")?.unwrap_or(defaults::RETENTION_DAYS),
        family_retention_days: FAMILY_RETENTION_VARS
            .iter()
            .filter_map(|(family, var)| count(var).map(|days| days.map(|d| (*family, d))).transpose())
            .collect::<Result<_, _>>()?,
        warm_after_days: count("WARM_AFTER_DAYS")?,
        dashboards: get("DASHBOARDS_URL")
            .map(|v| {
                Url::parse(v.trim()).map_err(|e| ConfigError::new("DASHBOARDS_URL", &v, format!("not a URL: {e}")))
            })
            .transpose()?,
        serverless,
    };
    Ok(SinkConfig {
        endpoint,
        auth,
        gzip,
        retry,
        setup,
    })
}

/// `AOSS_COLLECTION_TYPE`: required with `SIGV4_SERVICE=aoss` (a time-series collection
/// refuses the `_id`s a search collection needs, so guessing would break one or the other),
/// and refused anywhere else, where it would silently change nothing a user meant it to.
fn collection_type(auth: &AuthConfig, value: Option<String>) -> Result<Option<CollectionType>, ConfigError> {
    const VAR: &str = "AOSS_COLLECTION_TYPE";
    let aoss = matches!(auth, AuthConfig::SigV4 { service, .. } if service == "aoss");
    match (aoss, value) {
        (true, None) => Err(ConfigError::new(
            VAR,
            "",
            "SIGV4_SERVICE=aoss needs the collection's type: search (each event once, by _id) \
             or timeseries (no _id: a redelivered batch can be indexed twice)",
        )),
        (true, Some(v)) => CollectionType::parse(&v)
            .map(Some)
            .ok_or_else(|| ConfigError::new(VAR, &v, "expected search or timeseries")),
        (false, None) => Ok(None),
        (false, Some(v)) => Err(ConfigError::new(
            VAR,
            &v,
            "only applies to OpenSearch Serverless (AUTH=sigv4 with SIGV4_SERVICE=aoss); unset it for a domain",
        )),
    }
}

/// Any https URL (AWS domain, VPC endpoint, custom domain, China regions); http only on a
/// loopback address. A path prefix is kept (a cluster behind a reverse proxy); query,
/// fragment and credentials in the URL are refused.
fn parse_endpoint(value: &str) -> Result<Url, ConfigError> {
    let bad = |reason: &str| ConfigError::new("OPENSEARCH_ENDPOINT", value, reason);
    let mut url = Url::parse(value.trim()).map_err(|e| bad(&format!("not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad("the URL has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(bad("use https: plain http is only accepted for a loopback address")),
        _ => return Err(bad("expected an https:// URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "do not put credentials in the URL; use AUTH=basic and BASIC_AUTH_PASSWORD",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("the URL must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(var, value, "expected true or false")),
    }
}

fn parse_number(var: &'static str, value: &str, min: u64) -> Result<u64, ConfigError> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(var, value, "expected a whole number"))?;
    if n < min {
        return Err(ConfigError::new(var, value, format!("must be at least {min}")));
    }
    Ok(n)
}

/// Parses a byte count: a plain integer, or one with a `KiB`/`MiB` suffix.
fn parse_bytes(var: &'static str, value: &str, min: usize) -> Result<usize, ConfigError> {
    let v = value.trim();
    let (digits, unit) = if let Some(d) = v.strip_suffix("MiB") {
        (d, 1024 * 1024)
    } else if let Some(d) = v.strip_suffix("KiB") {
        (d, 1024)
    } else {
        (v, 1)
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(var, value, "expected a byte count such as 5242880 or 5MiB"))?;
    let bytes = n
        .checked_mul(unit)
        .ok_or_else(|| ConfigError::new(var, value, "too large"))?;
    if bytes < min {
        return Err(ConfigError::new(var, value, format!("must be at least {min} bytes")));
    }
    Ok(bytes)
}

/// OpenSearch index names are lowercase, at most 255 bytes, and exclude a few characters.
/// The prefix is checked here so that a bad deployment fails at start, not on every write.
fn validate_index_prefix(prefix: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| Err(ConfigError::new("INDEX_PREFIX", prefix, reason));
    if prefix.len() > 200 {
        return bad("must be at most 200 bytes, leaving room for the date");
    }
    if prefix.starts_with(['-', '_', '+', '.']) {
        return bad("must not start with -, _, + or .");
    }
    if prefix.chars().any(|c| c.is_uppercase()) {
        return bad("must be lowercase");
    }
    if let Some(c) = prefix.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        ) || c.is_control()
    }) {
        return bad(&format!("must not contain {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn empty_environment_gives_defaults() {
        assert_eq!(from(&[]).unwrap(), Config::default());
        assert_eq!(Config::default().index_prefix, "cwl");
        assert_eq!(Config::default().bulk_max_bytes, 5_242_880);
    }

    #[test]
    fn values_are_parsed() {
        let c = from(&[
            ("INDEX_PREFIX", "audit"),
            ("RAW_MESSAGE", "Always"),
            ("FULL_TEXT_SUBTREES", "False"),
            ("BULK_MAX_BYTES", "2MiB"),
            ("MAX_PAYLOAD_BYTES", "4194304"),
        ])
        .unwrap();
        assert_eq!(c.index_prefix, "audit");
        assert_eq!(c.raw_message, RawMessage::Always);
        assert_eq!(c.full_text_subtrees, FullText::Off);
        assert!(!FullText::Auto.enabled(Some(true)) && FullText::Auto.enabled(Some(false)));
        assert!(FullText::Auto.enabled(None) && FullText::On.enabled(Some(true)));
        assert_eq!(c.bulk_max_bytes, 2 * 1024 * 1024);
        assert_eq!(c.max_payload_bytes, 4_194_304);
    }

    #[test]
    fn each_family_may_have_its_own_retention() {
        let endpoint = ("OPENSEARCH_ENDPOINT", "https://search-x.us-east-1.es.amazonaws.com");
        let setup = |pairs: &[(&str, &str)]| {
            let mut all = vec![endpoint, ("AWS_REGION", "us-east-1")];
            all.extend_from_slice(pairs);
            from(&all).map(|c| c.sink.unwrap().setup)
        };
        let s = setup(&[
            ("RETENTION_DAYS", "90"),
            ("VPCFLOW_RETENTION_DAYS", "14"),
            ("GUARDDUTY_RETENTION_DAYS", "365"),
            ("WAF_RETENTION_DAYS", "0"),
            ("RESOLVER_RETENTION_DAYS", " "),
        ])
        .unwrap();
        assert_eq!(
            s.family_retention_days,
            vec![("vpcflow", 14), ("guardduty", 365), ("waf", 0)]
        );
        assert_eq!(
            ["vpcflow", "guardduty", "resolver", "waf"].map(|f| s.retention_days_of(f)),
            [14, 365, 90, 0],
            "blank: RETENTION_DAYS"
        );
        assert!(s.any_retention());
        let none = setup(&[("RETENTION_DAYS", "0"), ("WAF_RETENTION_DAYS", "0")]).unwrap();
        assert!(!none.any_retention());
        let one = setup(&[("RETENTION_DAYS", "0"), ("GUARDDUTY_RETENTION_DAYS", "30")]).unwrap();
        assert!(one.any_retention() && one.retention_days_of("vpcflow") == 0);
        assert_eq!(setup(&[]).unwrap().family_retention_days, Vec::new());
        for (var, value) in [
            ("VPCFLOW_RETENTION_DAYS", "two weeks"),
            ("GUARDDUTY_RETENTION_DAYS", "-1"),
            ("RESOLVER_RETENTION_DAYS", "99999999999"),
            ("WAF_RETENTION_DAYS", "1.5"),
        ] {
            let e = setup(&[(var, value)]).unwrap_err();
            assert_eq!((e.var, e.value.as_str()), (var, value), "{e}");
        }
    }

    #[test]
    fn blank_values_take_the_default() {
        assert_eq!(from(&[("INDEX_PREFIX", "  ")]).unwrap().index_prefix, "cwl");
    }

    #[test]
    fn sink_settings_are_parsed() {
        let c = from(&[
            ("OPENSEARCH_ENDPOINT", "https://search-x.eu-west-1.es.amazonaws.com"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        let sink = c.sink.unwrap();
        assert_eq!(sink.endpoint.as_str(), "https://search-x.eu-west-1.es.amazonaws.com/");
        assert_eq!(
            sink.auth,
            AuthConfig::SigV4 {
                region: "eu-west-1".into(),
                service: "es".into()
            }
        );
        assert!(sink.gzip && sink.setup.install);
        assert_eq!(sink.setup.retention_days, 90);
        assert_eq!(sink.setup.warm_after_days, None);
        assert_eq!(sink.retry.max_attempts, 8);

        // The region never comes from the hostname; OPENSEARCH_REGION wins over AWS_REGION.
        let c = from(&[
            ("OPENSEARCH_ENDPOINT", "https://logs.example.cn/opensearch"),
            ("AWS_REGION", "eu-west-1"),
            ("OPENSEARCH_REGION", "cn-north-1"),
            ("SIGV4_SERVICE", "aoss"),
            ("AOSS_COLLECTION_TYPE", "search"),
            ("COMPRESSION", "none"),
        ])
        .unwrap();
        let sink = c.sink.unwrap();
        assert_eq!(sink.endpoint.as_str(), "https://logs.example.cn/opensearch/");
        assert_eq!(
            sink.auth,
            AuthConfig::SigV4 {
                region: "cn-north-1".into(),
                service: "aoss".into()
            }
        );
        assert!(!sink.gzip);

        let c = from(&[("OPENSEARCH_ENDPOINT", "http://127.0.0.1:9200"), ("AUTH", "none")]).unwrap();
        assert_eq!(c.sink.unwrap().auth, AuthConfig::None);
    }

    #[test]
    fn serverless_collection_types() {
        let aoss = |kind: Option<&str>| {
            let mut pairs = vec![
                ("OPENSEARCH_ENDPOINT", "https://abc123.eu-west-1.aoss.amazonaws.com"),
                ("AWS_REGION", "eu-west-1"),
                ("SIGV4_SERVICE", "aoss"),
            ];
            pairs.extend(kind.map(|k| ("AOSS_COLLECTION_TYPE", k)));
            from(&pairs)
        };
        let c = aoss(Some("search")).unwrap();
        assert_eq!(c.sink.unwrap().setup.serverless, Some(CollectionType::Search));
        assert_eq!(c.bulk_action, BulkAction::CreateWithId, "search collections keep _ids");
        // CloudFormation's spelling is accepted too.
        for spelling in ["timeseries", "TIMESERIES", " TimeSeries "] {
            let c = aoss(Some(spelling)).unwrap();
            assert_eq!(c.sink.unwrap().setup.serverless, Some(CollectionType::TimeSeries));
            assert_eq!(c.bulk_action, BulkAction::IndexWithoutId);
        }

        // Missing (or blank, as an unset CloudFormation value renders) stops the cold start.
        for missing in [None, Some(""), Some("  ")] {
            let err = aoss(missing).unwrap_err();
            assert_eq!(err.var, "AOSS_COLLECTION_TYPE", "{missing:?}");
            assert!(
                err.to_string()
                    .starts_with("AOSS_COLLECTION_TYPE=\"\": SIGV4_SERVICE=aoss needs"),
                "{err}"
            );
            assert!(
                err.reason.contains("search") && err.reason.contains("timeseries"),
                "{err}"
            );
        }
        for bad in ["vectorsearch", "time-series", "yes"] {
            let err = aoss(Some(bad)).unwrap_err();
            assert_eq!((err.var, err.value.as_str()), ("AOSS_COLLECTION_TYPE", bad));
            assert_eq!(err.reason, "expected search or timeseries");
        }

        // Anywhere but Serverless it is refused: it would silently change nothing.
        let domain = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![
                ("OPENSEARCH_ENDPOINT", "https://search-x.eu-west-1.es.amazonaws.com"),
                ("AWS_REGION", "eu-west-1"),
                ("AOSS_COLLECTION_TYPE", "timeseries"),
            ];
            pairs.extend_from_slice(extra);
            from(&pairs)
        };
        for extra in [&[][..], &[("SIGV4_SERVICE", "es")], &[("AUTH", "none")]] {
            let err = domain(extra).unwrap_err();
            assert_eq!(err.var, "AOSS_COLLECTION_TYPE", "{extra:?}");
            assert!(err.reason.contains("SIGV4_SERVICE=aoss"), "{err}");
        }
        // Blank on a domain (what the template renders there) is unset: today's behaviour.
        let c = from(&[
            ("OPENSEARCH_ENDPOINT", "https://search-x.eu-west-1.es.amazonaws.com"),
            ("AWS_REGION", "eu-west-1"),
            ("AOSS_COLLECTION_TYPE", ""),
        ])
        .unwrap();
        assert_eq!(c.bulk_action, BulkAction::CreateWithId);
        assert_eq!(c.sink.unwrap().setup.serverless, None);
    }

    #[test]
    fn basic_auth_password_never_prints() {
        let c = from(&[
            ("OPENSEARCH_ENDPOINT", "https://h"),
            ("AUTH", "basic"),
            ("BASIC_AUTH_USER", "indexer"),
            ("BASIC_AUTH_PASSWORD", "hunter2-secret"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("indexer"));
    }

    #[test]
    fn bad_sink_settings_name_the_variable() {
        for (pairs, var) in [
            (vec![("OPENSEARCH_ENDPOINT", "https://h")], "AWS_REGION"),
            (
                vec![("OPENSEARCH_ENDPOINT", "http://search.example.com"), ("AUTH", "none")],
                "OPENSEARCH_ENDPOINT",
            ),
            (
                vec![("OPENSEARCH_ENDPOINT", "https://u:p@h"), ("AUTH", "none")],
                "OPENSEARCH_ENDPOINT",
            ),
            (
                vec![("OPENSEARCH_ENDPOINT", "ftp://h"), ("AUTH", "none")],
                "OPENSEARCH_ENDPOINT",
            ),
            (vec![("OPENSEARCH_ENDPOINT", "not a url")], "OPENSEARCH_ENDPOINT"),
            (vec![("OPENSEARCH_ENDPOINT", "https://h"), ("AUTH", "magic")], "AUTH"),
            (
                vec![("OPENSEARCH_ENDPOINT", "https://h"), ("AUTH", "basic")],
                "BASIC_AUTH_USER",
            ),
            (
                vec![
                    ("OPENSEARCH_ENDPOINT", "https://h"),
                    ("AUTH", "none"),
                    ("MAX_ATTEMPTS", "0"),
                ],
                "MAX_ATTEMPTS",
            ),
            (
                vec![
                    ("OPENSEARCH_ENDPOINT", "https://h"),
                    ("AUTH", "none"),
                    ("COMPRESSION", "br"),
                ],
                "COMPRESSION",
            ),
            (
                vec![
                    ("OPENSEARCH_ENDPOINT", "https://h"),
                    ("AWS_REGION", "r"),
                    ("SIGV4_SERVICE", "s3"),
                ],
                "SIGV4_SERVICE",
            ),
        ] {
            let err = from(&pairs).unwrap_err();
            assert_eq!(err.var, var, "{pairs:?}: {err}");
        }
    }

    #[test]
    fn signal_settings_are_parsed() {
        let c = from(&[
            ("GEOIP_DB", "/opt/geo/city.mmdb"),
            ("ALLOWED_COUNTRIES", "us, il"),
            ("ALERT_TOPIC_ARN", "arn:aws:sns:eu-west-1:111122223333:alerts"),
            ("ALERT_MIN_SEVERITY", "Medium"),
            ("DASHBOARDS_URL", "https://search.example.com/_dashboards"),
        ])
        .unwrap();
        let s = &c.signals;
        assert_eq!(s.geoip_db.as_deref(), Some(std::path::Path::new("/opt/geo/city.mmdb")));
        assert_eq!(s.allowed_countries, vec!["US", "IL"]);
        assert_eq!(s.alert_min_severity, Severity::Medium);
        assert!(s.detections);
        assert_eq!(s.disabled_rules, defaults::DISABLED_RULES);
        let c = from(&[("SIGMA_RULES", "/opt/rules"), ("DISABLED_RULES", "a, b,")]).unwrap();
        assert_eq!(
            c.signals.sigma_rules.as_deref(),
            Some(std::path::Path::new("/opt/rules"))
        );
        assert_eq!(c.signals.disabled_rules, ["a", "b"]);
        assert!(
            from(&[("DISABLED_RULES", "None")])
                .unwrap()
                .signals
                .disabled_rules
                .is_empty()
        );
        for (var, value) in [
            ("RULES_FILE", "/opt/rules.json"),
            ("ALLOWED_COUNTRIES", "USA"),
            ("ALERT_MIN_SEVERITY", "urgent"),
            ("DETECTIONS", "yes"),
            ("DASHBOARDS_URL", "not a url"),
        ] {
            assert_eq!(from(&[(var, value)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("INDEX_PREFIX", "Audit"),
            ("INDEX_PREFIX", "_x"),
            ("INDEX_PREFIX", "a,b"),
            ("RAW_MESSAGE", "sometimes"),
            ("FULL_TEXT_SUBTREES", "yes"),
            ("BULK_MAX_BYTES", "lots"),
            ("BULK_MAX_BYTES", "1000"),
            ("MAX_PAYLOAD_BYTES", "-1"),
        ] {
            let err = from(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn flow_log_variables_are_read_once_and_errors_name_them() {
        let formats = r#"{"/aws/vpc/flowlogs/prod": "${version} ${srcaddr} ${dstaddr}"}"#;
        let config = Config::from_lookup(|name| match name {
            "FLOW_LOG_GROUPS" => Some("/vpc/*,other".into()),
            "FLOW_LOG_FORMATS" => Some(formats.into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.flow_logs.format_for("/aws/vpc/flowlogs/prod").unwrap().len(), 3);
        assert_eq!(
            config.flow_logs.format_for("/vpc/a").unwrap().len(),
            14,
            "the default format"
        );
        assert!(config.flow_logs.format_for("aws-cloudtrail-logs").is_none());
        assert!(
            Config::default().flow_logs.format_for("/aws/vpc/flow-logs").is_some(),
            "*flow* by default"
        );
        for (var, value) in [
            ("FLOW_LOG_GROUPS", "a b"),
            ("FLOW_LOG_FORMATS", "[1]"),
            ("FLOW_LOG_FORMATS", r#"{"g": "${version} ${Bad}"}"#),
        ] {
            let e = Config::from_lookup(|name| (name == var).then(|| value.to_owned())).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert_eq!(e.value, value);
        }
    }
}
