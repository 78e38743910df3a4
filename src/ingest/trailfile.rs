//! Stage 1, S3 edition: a CloudTrail log file (`{"Records":[...]}`, gzip) streamed through a
//! decompressed-size cap and split into per-record raw slices, presented as an [`Envelope`]
//! so the rest of the journey (documents, bulk, sink) is the one CloudWatch Logs takes.

use std::borrow::Cow;
use std::io::Write;

use flate2::write::MultiGzDecoder;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ingest::envelope::{Envelope, LogEvent};

/// Why a CloudTrail file could not be read. The whole file is unusable: the caller fails
/// the invocation (or the queue message), so it is retried and then kept by the queue's
/// dead-letter queue; the back-fill leaves it out of its state file.
#[derive(Debug, thiserror::Error)]
pub enum TrailFileError {
    /// The bytes are not a gzip stream.
    #[error("{key}: not gzip data: {source}")]
    Gzip {
        /// The object's key.
        key: String,
        /// The decoder's complaint.
        source: std::io::Error,
    },
    /// Decompression would exceed the cap.
    #[error("{key}: decompressed file exceeds MAX_TRAIL_FILE_BYTES={cap}; refusing it")]
    TooLarge {
        /// The object's key.
        key: String,
        /// The configured cap.
        cap: usize,
    },
    /// The gzip stream ends before its trailer.
    #[error("{key}: truncated gzip stream")]
    Truncated {
        /// The object's key.
        key: String,
    },
    /// The decompressed bytes are not `{"Records":[...]}`.
    #[error("{key}: not a CloudTrail file ({{\"Records\":[...]}}): {source}")]
    Json {
        /// The object's key.
        key: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

/// What a key in a trail bucket holds, from its path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind<'k> {
    /// A CloudTrail log file: `.../AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<name>.json.gz`.
    Trail(TrailKey<'k>),
    /// A digest file (`CloudTrail-Digest`): integrity data, no events.
    Digest,
    /// Anything else (Insights, Config, other services' logs, folders).
    Other,
}

/// The parts of a CloudTrail log file's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailKey<'k> {
    /// The account the records were delivered for.
    pub account: &'k str,
    /// The region.
    pub region: &'k str,
    /// The delivery date, `YYYY-MM-DD` (ordered like dates, so `--since`/`--until` compare strings).
    pub date: String,
}

/// Classifies an S3 key by its path: only CloudTrail log files are read.
pub fn classify_key(key: &str) -> KeyKind<'_> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.contains(&"CloudTrail-Digest") {
        return KeyKind::Digest;
    }
    if !key.ends_with(".json.gz") {
        return KeyKind::Other;
    }
    // ... <account> / CloudTrail / <region> / YYYY / MM / DD / <file>
    let Some(at) = parts.iter().position(|p| *p == "CloudTrail") else {
        return KeyKind::Other;
    };
    if at == 0 || parts.len() != at + 6 {
        return KeyKind::Other;
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (account, region, y, m, d) = (
        parts[at - 1],
        parts[at + 1],
        parts[at + 2],
        parts[at + 3],
        parts[at + 4],
    );
    if !digits(account, 12) || region.is_empty() || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return KeyKind::Other;
    }
    KeyKind::Trail(TrailKey {
        account,
        region,
        date: format!("{y}-{m}-{d}"),
    })
}

/// Decompresses a CloudTrail file fed in pieces (an S3 body as it arrives) into one buffer,
/// refusing to hold more than `cap` bytes: the compressed object is never held whole.
pub struct Gunzip<'b> {
    decoder: MultiGzDecoder<Capped<'b>>,
    key: &'b str,
}

impl std::fmt::Debug for Gunzip<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gunzip").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A `Write` into a `Vec` that fails once `cap` would be exceeded.
struct Capped<'b> {
    out: &'b mut Vec<u8>,
    cap: usize,
}

impl Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.cap {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "over the cap"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'b> Gunzip<'b> {
    /// A decoder writing into `out` (cleared first), at most `cap` bytes, for `key`.
    pub fn new(key: &'b str, out: &'b mut Vec<u8>, cap: usize) -> Self {
        out.clear();
        Self {
            decoder: MultiGzDecoder::new(Capped { out, cap }),
            key,
        }
    }

    /// Feeds the next piece of compressed bytes.
    pub fn feed(&mut self, compressed: &[u8]) -> Result<(), TrailFileError> {
        self.decoder.write_all(compressed).map_err(|e| self.error(e))
    }

    /// Ends the stream: a missing trailer is an error.
    pub fn finish(mut self) -> Result<(), TrailFileError> {
        self.decoder.try_finish().map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> TrailFileError {
        let key = self.key.to_owned();
        match e.kind() {
            std::io::ErrorKind::FileTooLarge => TrailFileError::TooLarge {
                key,
                cap: self.decoder.get_ref().cap,
            },
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::WriteZero => TrailFileError::Truncated { key },
            _ => TrailFileError::Gzip { key, source: e },
        }
    }
}

/// Decompresses a whole gzip object held in memory (fixtures, tests, local files).
pub fn gunzip(key: &str, compressed: &[u8], cap: usize, out: &mut Vec<u8>) -> Result<(), TrailFileError> {
    let mut g = Gunzip::new(key, out, cap);
    g.feed(compressed)?;
    g.finish()
}

#[derive(Deserialize)]
struct File<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

/// The fields a record's `@id` and timestamp come from.
#[derive(Deserialize)]
struct Ids<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(rename = "recipientAccountId", borrow, default)]
    recipient_account_id: Option<Cow<'a, str>>,
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<Cow<'a, str>>,
}

/// Where an S3 file's documents say they come from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'s> {
    /// The bucket: becomes `@log_group`.
    pub bucket: &'s str,
    /// The key: becomes `@log_stream`.
    pub key: &'s str,
    /// The account in the key's path: becomes `@owner` (the record's `recipientAccountId`
    /// when the key does not say).
    pub account: Option<&'s str>,
}

/// Splits a decompressed CloudTrail file into an envelope of one log event per record,
/// each message the record's raw JSON slice (no value tree is built).
///
/// `@owner` is the account (`recipientAccountId`), `@log_group` the bucket, `@log_stream`
/// the key, and each event's id (`@id`) the record's `_id`, `<recipientAccountId>:<eventID>`:
/// the same document id the CloudWatch Logs path gives the same record.
pub fn parse<'a>(json: &'a [u8], source: Source<'a>) -> Result<Envelope<'a>, TrailFileError> {
    let file: File<'a> = serde_json::from_slice(json).map_err(|e| TrailFileError::Json {
        key: source.key.to_owned(),
        source: e,
    })?;
    let mut owner = source.account.map(Cow::Borrowed);
    let log_events = file
        .records
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let ids: Option<Ids<'a>> = serde_json::from_str(raw.get()).ok();
            let (id, timestamp) = match &ids {
                Some(ids) => {
                    if owner.is_none() {
                        owner = ids.recipient_account_id.clone().filter(|a| !a.is_empty());
                    }
                    // No usable eventID: a position in the file, stable across re-reads.
                    let id = super::event_id::cloudtrail_doc_id(
                        ids.recipient_account_id.as_deref(),
                        ids.event_id.as_deref(),
                    )
                    .unwrap_or_else(|| format!("{}#{i}", source.key));
                    let ts = ids
                        .event_time
                        .as_deref()
                        .and_then(super::event_id::parse_event_time)
                        .map_or(0, |t| t.timestamp_millis());
                    (id, ts)
                }
                None => (format!("{}#{i}", source.key), 0),
            };
            LogEvent {
                id: Cow::Owned(id),
                timestamp,
                message: Cow::Borrowed(raw.get()),
            }
        })
        .collect();
    Ok(Envelope {
        message_type: Cow::Borrowed("DATA_MESSAGE"),
        owner: owner.unwrap_or(Cow::Borrowed("")),
        log_group: Cow::Borrowed(source.bucket),
        log_stream: Cow::Borrowed(source.key),
        subscription_filters: Vec::new(),
        policy_level: None,
        log_events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/06/111122223333_CloudTrail_us-east-1_20240506T0000Z_abc.json.gz";

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn keys_are_classified_by_path() {
        assert_eq!(
            classify_key(KEY),
            KeyKind::Trail(TrailKey {
                account: "111122223333",
                region: "us-east-1",
                date: "2024-05-06".into()
            })
        );
        let org = format!("prefix/AWSLogs/o-abc123/{KEY}").replace("AWSLogs/o-abc123/AWSLogs/", "AWSLogs/o-abc123/");
        assert!(matches!(classify_key(&org), KeyKind::Trail(_)), "{org}");
        assert_eq!(
            classify_key(
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/06/x_CloudTrail-Digest_us-east-1_x.json.gz"
            ),
            KeyKind::Digest
        );
        for other in [
            "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/05/06/x.json.gz",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/06/",
            "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/x.json.gz",
            "AWSLogs/1111/CloudTrail/us-east-1/2024/05/06/x.json.gz",
            "notes.txt",
            "CloudTrail/us-east-1/2024/05/06/x.json.gz",
        ] {
            assert_eq!(classify_key(other), KeyKind::Other, "{other}");
        }
    }

    #[test]
    fn records_become_log_events_with_the_cloudtrail_id() {
        let json = br#"{"Records":[{"eventVersion":"1.08","eventID":"e1","recipientAccountId":"111122223333","eventTime":"2024-05-06T07:08:09Z"},
            {"eventVersion":"1.08","eventTime":"2024-05-06T07:08:10Z"}, 7]}"#;
        let env = parse(
            json,
            Source {
                bucket: "b",
                key: KEY,
                account: None,
            },
        )
        .unwrap();
        assert_eq!(env.owner, "111122223333");
        assert_eq!((env.log_group.as_ref(), env.log_stream.as_ref()), ("b", KEY));
        assert_eq!(env.log_events.len(), 3);
        assert_eq!(env.log_events[0].id, "111122223333:e1");
        assert_eq!(env.log_events[0].timestamp, 1_714_979_289_000);
        assert!(
            env.log_events[0]
                .message
                .starts_with(r#"{"eventVersion":"1.08","eventID":"e1""#)
        );
        assert_eq!(env.log_events[1].id, format!("{KEY}#1"));
        assert_eq!(env.log_events[2].message, "7");
        assert!(matches!(env.log_events[0].message, Cow::Borrowed(_)));
    }

    #[test]
    fn not_a_trail_file_is_an_error() {
        let source = Source {
            bucket: "b",
            key: "k",
            account: Some("1"),
        };
        for json in [&b"{}"[..], b"[1]", br#"{"Records":{}}"#, b"{\"Records\":[1,"] {
            assert!(matches!(parse(json, source), Err(TrailFileError::Json { .. })));
        }
    }

    #[test]
    fn streamed_gunzip_matches_and_caps() {
        let json = br#"{"Records":[]}"#.repeat(1000);
        let compressed = gz(&json);
        let mut out = Vec::new();
        let mut g = Gunzip::new("k", &mut out, 1 << 20);
        for piece in compressed.chunks(7) {
            g.feed(piece).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(out, json);

        let err = gunzip("k", &compressed, 100, &mut out).unwrap_err();
        assert!(matches!(err, TrailFileError::TooLarge { cap: 100, .. }), "{err}");
        assert!(out.len() <= 100);
        let err = gunzip("k", &compressed[..compressed.len() / 2], 1 << 20, &mut out).unwrap_err();
        assert!(matches!(err, TrailFileError::Truncated { .. }), "{err}");
        let err = gunzip("k", b"plain text, not gzip", 1 << 20, &mut out).unwrap_err();
        assert!(matches!(err, TrailFileError::Gzip { .. }), "{err}");
    }
}
