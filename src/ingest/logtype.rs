//! Stage 2's one decision: what log type a message is, made once per message into a
//! [`LogType`] that the document writer matches in one place. Each family reads its records in
//! its own file (`record`, `vpcflow`, `guardduty`, `resolver`, `waf`).

use crate::config::{FlowFormat, FlowLogConfig};
use crate::ingest::guardduty::{self, Finding, FindingError};
use crate::ingest::record::{self, Message, Record, RecordError};
use crate::ingest::resolver::{self, ResolverQuery};
use crate::ingest::vpcflow::{FlowError, FlowRecord};
use crate::ingest::waf::{self, WafLog};

/// What a log event's message is, read into borrowed fields.
// One value per message, matched as soon as it is made and never stored: boxing the large
// variants (a flow record's cells) would add an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum LogType<'a> {
    /// A CloudTrail record, expanded into top-level document fields.
    CloudTrail(Record<'a>),
    /// A VPC flow log record, or one that does not split into its format's fields (kept with
    /// `@message` and `@parse_error` in the flow index).
    VpcFlow(Result<FlowRecord<'a>, FlowError>),
    /// A GuardDuty finding (EventBridge event or bare), or a finding event that cannot be read.
    GuardDuty(Result<Finding<'a>, FindingError>),
    /// A Route 53 Resolver query log record.
    Resolver(ResolverQuery<'a>),
    /// An AWS WAF log record.
    Waf(WafLog<'a>),
    /// Other valid JSON, kept as `@message`.
    OtherJson,
    /// Other text, kept as `@message`.
    Text,
    /// Looked like a JSON object but failed to parse.
    Invalid(RecordError),
}

/// Classifies one message. `format` is the envelope's flow log format
/// ([`FlowLogConfig::format_for`] of its log group, looked up once per envelope).
///
/// Order: flow records first (a JSON message is refused at its first byte), then the
/// CloudTrail classifier, which parses a CloudTrail record once; only JSON that is not
/// CloudTrail is tried as a GuardDuty finding, a Resolver query, then a WAF request, and a
/// message that failed to parse is a GuardDuty finding's only if it says it is one.
pub fn classify_event<'a>(flows: &'a FlowLogConfig, format: Option<&'a FlowFormat>, message: &'a str) -> LogType<'a> {
    if let Some(flow) = flows.recognise(format, message) {
        return LogType::VpcFlow(flow);
    }
    match record::classify(message) {
        Message::CloudTrail(r) => LogType::CloudTrail(r),
        Message::Text => LogType::Text,
        Message::Invalid(e) => match guardduty::parse(message) {
            Some(Err(finding_error)) => LogType::GuardDuty(Err(finding_error)),
            _ => LogType::Invalid(e),
        },
        Message::OtherJson => {
            if let Some(finding) = guardduty::parse(message) {
                LogType::GuardDuty(finding)
            } else if let Some(query) = resolver::parse(message) {
                LogType::Resolver(query)
            } else if let Some(request) = waf::parse(message) {
                LogType::Waf(request)
            } else {
                LogType::OtherJson
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(group_format: Option<&FlowFormat>, message: &str) -> &'static str {
        let flows = FlowLogConfig::default();
        match classify_event(&flows, group_format, message) {
            LogType::CloudTrail(_) => "cloudtrail",
            LogType::VpcFlow(Ok(_)) => "vpcflow",
            LogType::VpcFlow(Err(_)) => "vpcflow-error",
            LogType::GuardDuty(Ok(_)) => "guardduty",
            LogType::GuardDuty(Err(_)) => "guardduty-error",
            LogType::Resolver(_) => "resolver",
            LogType::Waf(_) => "waf",
            LogType::OtherJson => "other_json",
            LogType::Text => "text",
            LogType::Invalid(_) => "invalid",
        }
    }

    fn fixture(path: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn each_family_is_recognised_and_nothing_else_is() {
        let flow = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
        assert_eq!(
            kind(None, flow),
            "vpcflow",
            "a plausible default-format record anywhere"
        );
        let default = FlowFormat::default_v2();
        assert_eq!(
            kind(Some(&default), "2 1 eni-1 a b"),
            "vpcflow-error",
            "in a flow-log group"
        );
        assert_eq!(kind(None, "2 1 eni-1 a b"), "text", "elsewhere");
        let ct = r#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"e"}"#;
        assert_eq!(kind(Some(&default), ct), "cloudtrail", "JSON is never a flow record");
        let events = fixture("guardduty/events.ndjson");
        for line in events.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let message = event["message"].as_str().unwrap();
            assert!(kind(None, message).starts_with("guardduty"), "{message}");
        }
        assert_eq!(
            kind(None, r#"{"detail-type":"GuardDuty Finding","detail":{"id":"x""#),
            "guardduty-error"
        );
        assert_eq!(kind(None, r#"{"eventVersion":"1.08","a":"#), "invalid");
        assert_eq!(kind(None, r#"{"level":"info","msg":"hello"}"#), "other_json");
        assert_eq!(kind(None, "hello world"), "text");
    }

    #[test]
    fn resolver_and_waf_samples_are_recognised() {
        let resolver = fixture("resolver/awsdocs-resolver-query-log-2020.ndjson");
        assert_eq!(kind(None, resolver.lines().next().unwrap()), "resolver");
        let waf = fixture("waf/otel-valid_log.json");
        assert_eq!(kind(None, waf.trim()), "waf");
    }
}
