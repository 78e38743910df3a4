//! Stage 1: from the subscription payload (`base64(gzip(json))`) to a borrowed
//! CloudWatch Logs envelope, through a decompressed-size cap.

use std::borrow::Cow;
use std::io::Read;

use base64::Engine as _;
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

/// Why a payload could not be turned into an envelope. The whole payload is unusable, so
/// the caller fails the invocation and Lambda retries it, then hands it to its on-failure
/// destination: nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// `awslogs.data` is not standard, padded base64.
    #[error("awslogs.data is not valid base64: {0}")]
    Base64(base64::DecodeError),
    /// The decoded bytes are not a gzip stream (bad magic, header or deflate data).
    #[error("awslogs.data is not gzip data: {0}")]
    Gzip(std::io::Error),
    /// The gzip stream ends before its trailer.
    #[error("awslogs.data is a truncated gzip stream ({decompressed} bytes decompressed before the end)")]
    Truncated {
        /// How much had been decompressed when the input ran out.
        decompressed: usize,
    },
    /// Decompression would exceed the cap: a gzip bomb, or a cap set too low.
    #[error("decompressed payload exceeds MAX_PAYLOAD_BYTES={cap} ({compressed} compressed bytes); refusing it")]
    TooLarge {
        /// The configured cap.
        cap: usize,
        /// The size of the compressed input.
        compressed: usize,
    },
    /// The decompressed bytes are not a CloudWatch Logs envelope.
    #[error("decompressed payload is not a CloudWatch Logs envelope: {0}")]
    Json(serde_json::Error),
    /// A `messageType` other than `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    #[error("unknown messageType {0:?}")]
    UnknownMessageType(String),
}

// Each variant's message already includes its cause, so the cause is not also reported
// as a `source()` (which would print it twice in a one-line error chain).
impl From<base64::DecodeError> for EnvelopeError {
    fn from(e: base64::DecodeError) -> Self {
        Self::Base64(e)
    }
}

impl From<serde_json::Error> for EnvelopeError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

/// The event CloudWatch Logs sends to a subscribed Lambda function (and what the CLI reads
/// from an event file).
///
/// `aws_lambda_events::cloudwatch_logs::LogsEvent` decodes `data` inside its own
/// `Deserialize` with no decompressed-size cap, so we take the base64 text as it is and
/// decode it through [`envelope::decode_payload`].
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CloudWatchLogsEvent {
    /// The subscription payload.
    pub awslogs: AwsLogs,
}

/// `awslogs` of a [`CloudWatchLogsEvent`].
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AwsLogs {
    /// `base64(gzip(envelope JSON))`.
    pub data: String,
}

/// `messageType` of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Log events to index.
    Data,
    /// CloudWatch Logs checking that the destination is reachable: produces nothing.
    Control,
}

/// A decoded CloudWatch Logs subscription envelope, borrowing from the decompressed bytes.
///
/// Strings without escapes borrow; messages (JSON inside a JSON string, so always escaped)
/// are unescaped once, here, and never copied again.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    /// `DATA_MESSAGE` or `CONTROL_MESSAGE`, as sent.
    #[serde(borrow)]
    pub message_type: Cow<'a, str>,
    /// The AWS account that owns the log group (`CloudwatchLogs` in control messages).
    #[serde(borrow)]
    pub owner: Cow<'a, str>,
    /// The log group's name.
    #[serde(borrow)]
    pub log_group: Cow<'a, str>,
    /// The log stream's name, for CloudTrail `<account>_CloudTrail_<region>`.
    #[serde(borrow)]
    pub log_stream: Cow<'a, str>,
    /// The subscription filters that matched.
    #[serde(borrow, default)]
    pub subscription_filters: Vec<Cow<'a, str>>,
    /// `ACCOUNT_LEVEL_POLICY` when an account-level subscription policy delivered the batch.
    #[serde(borrow, default)]
    pub policy_level: Option<Cow<'a, str>>,
    /// The log events, in delivery order.
    #[serde(borrow)]
    pub log_events: Vec<LogEvent<'a>>,
}

/// One CloudWatch Logs event.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEvent<'a> {
    /// CloudWatch's unique id of the event (a 56-digit number as a string).
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Ingestion-side timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// The log line: for CloudTrail, one JSON record.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
}

impl Envelope<'_> {
    /// The parsed `messageType`.
    pub fn kind(&self) -> Result<MessageType, EnvelopeError> {
        match self.message_type.as_ref() {
            "DATA_MESSAGE" => Ok(MessageType::Data),
            "CONTROL_MESSAGE" => Ok(MessageType::Control),
            other => Err(EnvelopeError::UnknownMessageType(other.to_owned())),
        }
    }
}

/// Decodes `awslogs.data` into `out` (cleared first): base64, then gunzip through `cap`.
///
/// `out` is the caller's buffer so a warm container reuses one allocation across calls.
pub fn decode_payload(data: &str, cap: usize, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
    let compressed = base64::engine::general_purpose::STANDARD.decode(data.trim_ascii())?;
    gunzip_capped(&compressed, cap, out)
}

/// Gunzips `compressed` into `out`, refusing to produce more than `cap` bytes.
///
/// The reader is limited to `cap + 1` bytes, so a bomb costs at most `cap` of memory and
/// the time to inflate it, never more. Concatenated gzip members are accepted, as `gzip -d`
/// accepts them.
pub fn gunzip_capped(compressed: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
    out.clear();
    // CloudTrail JSON compresses about 10:1; reserving that much avoids most regrowth.
    out.reserve(compressed.len().saturating_mul(10).min(cap));
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = MultiGzDecoder::new(compressed).take(limit);
    match reader.read_to_end(out) {
        Ok(_) if out.len() > cap => Err(EnvelopeError::TooLarge {
            cap,
            compressed: compressed.len(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(EnvelopeError::Truncated {
            decompressed: out.len(),
        }),
        Err(e) => Err(EnvelopeError::Gzip(e)),
    }
}

/// Parses decompressed bytes into an envelope that borrows from them.
pub fn parse_envelope(json: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let envelope: Envelope<'_> = serde_json::from_slice(json)?;
    envelope.kind()?;
    Ok(envelope)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    /// Gzip + standard base64, as CloudWatch Logs encodes `awslogs.data`.
    pub(crate) fn encode(json: &[u8]) -> String {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(json).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    const DATA: &str = r#"{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"CloudTrail/logs","logStream":"111122223333_CloudTrail_us-east-1","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1700000000000,"message":"{\"eventVersion\":\"1.08\"}"},{"id":"2","timestamp":1700000000001,"message":"plain"}]}"#;

    #[test]
    fn decodes_a_data_message() {
        let mut buf = Vec::new();
        decode_payload(&encode(DATA.as_bytes()), 1 << 20, &mut buf).unwrap();
        let env = parse_envelope(&buf).unwrap();
        assert_eq!(env.kind().unwrap(), MessageType::Data);
        assert_eq!(env.owner, "111122223333");
        assert_eq!(env.log_group, "CloudTrail/logs");
        assert_eq!(env.log_stream, "111122223333_CloudTrail_us-east-1");
        assert_eq!(env.subscription_filters, vec!["f"]);
        assert_eq!(env.policy_level, None);
        assert_eq!(env.log_events.len(), 2);
        assert_eq!(env.log_events[0].message, r#"{"eventVersion":"1.08"}"#);
        assert_eq!(env.log_events[1].timestamp, 1_700_000_000_001);
        // Unescaped strings borrow from the decompressed buffer.
        assert!(matches!(env.log_group, Cow::Borrowed(_)));
    }

    #[test]
    fn reads_policy_level() {
        let json = DATA.replace(r#""logEvents""#, r#""policyLevel":"ACCOUNT_LEVEL_POLICY","logEvents""#);
        let env = parse_envelope(json.as_bytes()).unwrap();
        assert_eq!(env.policy_level.as_deref(), Some("ACCOUNT_LEVEL_POLICY"));
    }

    #[test]
    fn control_message_is_recognised() {
        let json = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1700000000000,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#;
        assert_eq!(
            parse_envelope(json.as_bytes()).unwrap().kind().unwrap(),
            MessageType::Control
        );
    }

    #[test]
    fn bad_base64_is_refused() {
        let err = decode_payload("not base64!", 1 << 20, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, EnvelopeError::Base64(_)), "{err}");
    }

    #[test]
    fn non_gzip_is_refused() {
        let data = base64::engine::general_purpose::STANDARD.encode(b"{\"plain\":\"json\"}");
        let err = decode_payload(&data, 1 << 20, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, EnvelopeError::Gzip(_)), "{err}");
    }

    #[test]
    fn truncated_gzip_is_refused() {
        let full = base64::engine::general_purpose::STANDARD
            .decode(encode(DATA.as_bytes()))
            .unwrap();
        for cut in [11, full.len() / 2, full.len() - 4] {
            let data = base64::engine::general_purpose::STANDARD.encode(&full[..cut]);
            let err = decode_payload(&data, 1 << 20, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, EnvelopeError::Truncated { .. }), "cut {cut}: {err}");
        }
    }

    #[test]
    fn gzip_bomb_is_refused_within_the_cap() {
        // 64 MiB of zeros compresses to about 64 KiB.
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        let mut out = Vec::new();
        let err = gunzip_capped(&bomb, 1 << 20, &mut out).unwrap_err();
        assert!(matches!(err, EnvelopeError::TooLarge { cap: 1048576, .. }), "{err}");
        assert!(out.len() <= (1 << 20) + 1);
        assert!(err.to_string().contains("MAX_PAYLOAD_BYTES"));
    }

    #[test]
    fn payload_exactly_at_the_cap_is_accepted() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&[b' '; 1000]).unwrap();
        let mut out = Vec::new();
        gunzip_capped(&gz.finish().unwrap(), 1000, &mut out).unwrap();
        assert_eq!(out.len(), 1000);
    }

    #[test]
    fn non_envelope_json_is_refused() {
        for json in [
            r#"{"hello":"world"}"#,
            r#"[1,2,3]"#,
            r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":{}}"#,
            r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":"x","message":"m"}]}"#,
        ] {
            let err = parse_envelope(json.as_bytes()).unwrap_err();
            assert!(matches!(err, EnvelopeError::Json(_)), "{json}: {err}");
        }
    }

    #[test]
    fn unknown_message_type_is_refused() {
        let json = DATA.replace("DATA_MESSAGE", "SOMETHING_ELSE");
        let err = parse_envelope(json.as_bytes()).unwrap_err();
        assert!(matches!(err, EnvelopeError::UnknownMessageType(_)), "{err}");
    }
}
