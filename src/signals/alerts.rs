//! Alerts: one SNS message per invocation summarising the rule matches at or above a
//! severity, one entry per rule however many events matched, so a burst never floods. Each
//! entry names the Sigma title, level, ATT&CK techniques, the rule's source and, for a SigmaHQ
//! rule, its author (the Detection Rule License asks messages built from a match to keep it).

use std::collections::BTreeMap;

use aws_credential_types::provider::SharedCredentialsProvider;
use url::Url;

use crate::config::Severity;
use crate::signals::enrich::SignalMatch;

/// Why an alert could not be published.
#[derive(Debug, thiserror::Error)]
#[error("SNS publish to {topic} failed: {reason}")]
pub struct AlertError {
    /// The topic.
    pub topic: String,
    /// Why.
    pub reason: String,
}

/// Where alerts go.
#[derive(Debug, Clone)]
pub struct Alerts {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    min_severity: Severity,
    dashboards: Option<Url>,
}

/// The SNS subject and message for `matches`, or `None` if none reaches `min_severity`.
pub fn compose(
    matches: &[SignalMatch],
    min_severity: Severity,
    dashboards: Option<&Url>,
    log_group: &str,
) -> Option<(String, String)> {
    // Per rule: how many events, and the first as the example.
    let mut by_rule: BTreeMap<(std::cmp::Reverse<Severity>, &str), (usize, &SignalMatch)> = BTreeMap::new();
    for m in matches.iter().filter(|m| m.severity >= min_severity) {
        by_rule
            .entry((std::cmp::Reverse(m.severity), m.rule.as_str()))
            .and_modify(|(n, _)| *n += 1)
            .or_insert((1, m));
    }
    if by_rule.is_empty() {
        return None;
    }
    let events: usize = by_rule.values().map(|(n, _)| n).sum();
    let top = by_rule.keys().next().map_or(Severity::Low, |(s, _)| s.0);
    let subject = format!(
        "[{}] cwl-indexer: {} signal{} from {} rule{}",
        top.as_str().to_uppercase(),
        events,
        if events == 1 { "" } else { "s" },
        by_rule.len(),
        if by_rule.len() == 1 { "" } else { "s" }
    );
    // GuardDuty findings come as `guardduty:<type>` entries, grouped by finding type.
    let findings: usize = by_rule
        .iter()
        .filter(|((_, rule), _)| rule.starts_with(GUARDDUTY_RULE_PREFIX))
        .map(|(_, (n, _))| n)
        .sum();
    let mut body = match (events - findings, findings) {
        (rules, 0) => format!("{rules} CloudTrail events matched detection rules in log group {log_group}.\n"),
        (0, found) => format!(
            "{found} GuardDuty findings at or above {} in log group {log_group}.\n",
            min_severity.as_str()
        ),
        (rules, found) => format!(
            "{rules} CloudTrail events matched detection rules and {found} GuardDuty findings are at or above {} in log group {log_group}.\n",
            min_severity.as_str()
        ),
    };
    for ((severity, rule), (count, m)) in &by_rule {
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        body.push_str(&format!(
            "\n[{}] {} ({}): {count} event{}\n  first: {} by {} from {}{} at {}\n  document: {} / {}\n",
            severity.0.as_str().to_uppercase(),
            m.title,
            m.name,
            if *count == 1 { "" } else { "s" },
            dash(&m.event_name),
            dash(&m.principal),
            dash(&m.source_ip),
            m.country.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
            dash(&m.event_time),
            m.index,
            m.id,
        ));
        if !m.techniques.is_empty() {
            body.push_str(&format!("  ATT&CK: {}\n", m.techniques.join(", ")));
        }
        body.push_str(&format!("  rule: {rule} {}\n", m.source));
        if let Some(author) = &m.author {
            body.push_str(&format!("  author: {author} (SigmaHQ, Detection Rule License 1.1)\n"));
        }
        if let Some(base) = dashboards {
            body.push_str(&format!("  {}\n", discover_link(base, m)));
        }
    }
    // SNS takes subjects up to 100 characters and messages up to 256 KB.
    let subject: String = subject.chars().take(100).collect();
    if body.len() > 250_000 {
        let mut end = 250_000;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
        body.push_str("\n(truncated)\n");
    }
    Some((subject, body))
}

/// The rule id prefix of a GuardDuty finding's entry (`guardduty:<finding type>`).
pub const GUARDDUTY_RULE_PREFIX: &str = "guardduty:";

/// A Discover link showing the document, for the index pattern the dashboards ship (the
/// GuardDuty one for a finding).
pub fn discover_link(base: &Url, m: &SignalMatch) -> String {
    let pattern = if m.rule.starts_with(GUARDDUTY_RULE_PREFIX) {
        "cwl-indexer-guardduty-index-pattern"
    } else {
        "cwl-indexer-index-pattern"
    };
    let query = format!("_id:\"{}\"", m.id);
    let encoded: String = url::form_urlencoded::byte_serialize(query.replace('\'', "!'").as_bytes()).collect();
    format!(
        "{}/app/discover#/?_g=(time:(from:now-1y,to:now))&_a=(index:'{pattern}',query:(language:lucene,query:'{encoded}'))",
        base.as_str().trim_end_matches('/')
    )
}

impl Alerts {
    /// An SNS client for `topic_arn` in `region` with `credentials` (the function's role),
    /// built once at cold start without a network call. `endpoint` overrides SNS's (VPC
    /// endpoints, tests).
    pub fn new(
        topic_arn: String,
        region: String,
        credentials: SharedCredentialsProvider,
        endpoint: Option<&Url>,
        min_severity: Severity,
        dashboards: Option<Url>,
    ) -> Self {
        let mut config = aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new(region))
            .credentials_provider(credentials);
        if let Some(url) = endpoint {
            config = config.endpoint_url(url.as_str().trim_end_matches('/'));
        }
        Self {
            client: aws_sdk_sns::Client::from_conf(config.build()),
            topic_arn,
            min_severity,
            dashboards,
        }
    }

    /// Publishes the summary of `matches`, if any reaches the minimum severity; returns the
    /// SNS message id.
    pub async fn publish(&self, matches: &[SignalMatch], log_group: &str) -> Result<Option<String>, AlertError> {
        let Some((subject, message)) = compose(matches, self.min_severity, self.dashboards.as_ref(), log_group) else {
            return Ok(None);
        };
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| AlertError {
                topic: self.topic_arn.clone(),
                reason: aws_sdk_sns::error::DisplayErrorContext(e).to_string(),
            })?;
        Ok(out.message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rule: &str, severity: Severity, id: &str) -> SignalMatch {
        SignalMatch {
            // A finding's rule is its type under the GuardDuty prefix; a Sigma rule's id is not
            // its name.
            rule: if rule.starts_with(GUARDDUTY_RULE_PREFIX) {
                rule.into()
            } else {
                format!("id-{rule}")
            },
            name: rule.into(),
            title: format!("{rule} title"),
            severity,
            techniques: vec!["T1078.004".into()],
            source: format!("rules/sigma/cwl-indexer/{rule}.yml"),
            author: (rule == "root-activity").then(|| "A. Author".into()),
            principal: Some("arn:aws:iam::1:root".into()),
            source_ip: Some("81.2.69.142".into()),
            country: Some("GB".into()),
            event_name: Some("ConsoleLogin".into()),
            event_time: Some("2024-03-01T10:00:00Z".into()),
            index: "cwl-2024.03.01".into(),
            id: id.into(),
        }
    }

    #[test]
    fn one_entry_per_rule_most_severe_first() {
        let matches = vec![
            m("console-login-failure", Severity::Medium, "a"),
            m("root-activity", Severity::High, "b"),
            m("console-login-failure", Severity::Medium, "c"),
            m("root-activity", Severity::High, "d"),
            m("noise", Severity::Low, "e"),
        ];
        let base = Url::parse("https://search.example.com/_dashboards").unwrap();
        let (subject, body) = compose(&matches, Severity::Medium, Some(&base), "CloudTrail/logs").unwrap();
        assert_eq!(subject, "[HIGH] cwl-indexer: 4 signals from 2 rules");
        let root = body.find("(root-activity): 2 events").unwrap();
        let login = body.find("(console-login-failure): 2 events").unwrap();
        assert!(root < login, "{body}");
        assert!(!body.contains("noise"));
        assert!(
            body.contains("first: ConsoleLogin by arn:aws:iam::1:root from 81.2.69.142 (GB) at 2024-03-01T10:00:00Z")
        );
        assert!(body.contains("document: cwl-2024.03.01 / b"));
        assert!(body.contains("  ATT&CK: T1078.004\n"), "{body}");
        assert!(
            body.contains("  rule: id-root-activity rules/sigma/cwl-indexer/root-activity.yml\n"),
            "{body}"
        );
        assert!(
            body.contains("  author: A. Author (SigmaHQ, Detection Rule License 1.1)\n"),
            "{body}"
        );
        assert_eq!(
            body.matches("author:").count(),
            1,
            "only SigmaHQ rules name their author"
        );
        assert!(
            body.contains("https://search.example.com/_dashboards/app/discover#/?"),
            "{body}"
        );
        assert!(body.contains("_id%3A%22b%22"), "{body}");
    }

    #[test]
    fn guardduty_findings_share_the_message_and_link_to_their_index_pattern() {
        let mut finding = m(
            "guardduty:Recon:EC2/PortProbeUnprotectedPort",
            Severity::High,
            "f1:2024-05-06T07:00:00Z",
        );
        finding.index = "cwl-guardduty-2024.05.06".into();
        let matches = vec![
            finding.clone(),
            finding,
            m(
                "guardduty:Policy:S3/BucketBlockPublicAccessDisabled",
                Severity::Low,
                "f2",
            ),
            m("root-activity", Severity::High, "b"),
        ];
        let base = Url::parse("https://search.example.com/_dashboards").unwrap();
        let (subject, body) = compose(&matches, Severity::High, Some(&base), "/aws/events/guardduty").unwrap();
        assert_eq!(subject, "[HIGH] cwl-indexer: 3 signals from 2 rules");
        assert!(
            body.starts_with(
                "1 CloudTrail events matched detection rules and 2 GuardDuty findings are at or above high"
            ),
            "{body}"
        );
        assert!(
            body.contains("(guardduty:Recon:EC2/PortProbeUnprotectedPort): 2 events"),
            "{body}"
        );
        assert!(!body.contains("BucketBlockPublicAccessDisabled"), "below the threshold");
        assert!(body.contains("index:'cwl-indexer-guardduty-index-pattern'"), "{body}");
        assert!(body.contains("index:'cwl-indexer-index-pattern'"), "{body}");
        let only = compose(&matches[..2], Severity::High, None, "g").unwrap().1;
        assert!(
            only.starts_with("2 GuardDuty findings at or above high in log group g."),
            "{only}"
        );
    }

    #[test]
    fn nothing_at_or_above_the_threshold_sends_nothing() {
        assert_eq!(
            compose(&[m("x", Severity::Medium, "a")], Severity::High, None, "g"),
            None
        );
        assert_eq!(compose(&[], Severity::Low, None, "g"), None);
    }
}
