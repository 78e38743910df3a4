//! Typed configuration, parsed once at cold start from environment variables.
//! Every default lives in [`defaults`]; every error names the variable to fix.

use std::fmt;

/// The defaults, in one place. The README's configuration table mirrors this module.
pub mod defaults {
    /// Daily indices are `<prefix>-YYYY.MM.DD`; `cwl` matches the console-generated function.
    pub const INDEX_PREFIX: &str = "cwl";
    /// 5 MiB: half the 10 MiB HTTP payload limit of the smallest OpenSearch Service
    /// instance types (t2/t3 small and medium), leaving room for one oversized document.
    pub const BULK_MAX_BYTES: usize = 5 * 1024 * 1024;
    /// 16 MiB of decompressed envelope. CloudWatch Logs batches at most 1 MiB of events;
    /// JSON escaping in the envelope can more than double that, so 16x leaves a wide margin
    /// while refusing a gzip bomb long before it can exhaust a 128 MB function.
    pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
    /// Raw messages are kept only where they are the document's only content.
    pub const RAW_MESSAGE: super::RawMessage = super::RawMessage::Auto;
}

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

/// How documents are built and batched. Shared by the Lambda function and the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `INDEX_PREFIX`: the part of the daily index name before `-YYYY.MM.DD`.
    pub index_prefix: String,
    /// `RAW_MESSAGE`: `auto` or `always`.
    pub raw_message: RawMessage,
    /// `BULK_MAX_BYTES`: the largest `_bulk` request body, before compression.
    pub bulk_max_bytes: usize,
    /// `MAX_PAYLOAD_BYTES`: the largest decompressed CloudWatch Logs envelope accepted.
    pub max_payload_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            index_prefix: defaults::INDEX_PREFIX.to_owned(),
            raw_message: defaults::RAW_MESSAGE,
            bulk_max_bytes: defaults::BULK_MAX_BYTES,
            max_payload_bytes: defaults::MAX_PAYLOAD_BYTES,
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
        if let Some(v) = get("BULK_MAX_BYTES") {
            config.bulk_max_bytes = parse_bytes("BULK_MAX_BYTES", &v, MIN_BULK_MAX_BYTES)?;
        }
        if let Some(v) = get("MAX_PAYLOAD_BYTES") {
            config.max_payload_bytes = parse_bytes("MAX_PAYLOAD_BYTES", &v, 1024 * 1024)?;
        }
        Ok(config)
    }
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
            ("BULK_MAX_BYTES", "2MiB"),
            ("MAX_PAYLOAD_BYTES", "4194304"),
        ])
        .unwrap();
        assert_eq!(c.index_prefix, "audit");
        assert_eq!(c.raw_message, RawMessage::Always);
        assert_eq!(c.bulk_max_bytes, 2 * 1024 * 1024);
        assert_eq!(c.max_payload_bytes, 4_194_304);
    }

    #[test]
    fn blank_values_take_the_default() {
        assert_eq!(from(&[("INDEX_PREFIX", "  ")]).unwrap().index_prefix, "cwl");
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("INDEX_PREFIX", "Audit"),
            ("INDEX_PREFIX", "_x"),
            ("INDEX_PREFIX", "a,b"),
            ("RAW_MESSAGE", "sometimes"),
            ("BULK_MAX_BYTES", "lots"),
            ("BULK_MAX_BYTES", "1000"),
            ("MAX_PAYLOAD_BYTES", "-1"),
        ] {
            let err = from(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }
}
