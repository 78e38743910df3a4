//! What identifies a CloudTrail event whichever way it arrives: the `_id` made of its
//! account and `eventID`, and its `eventTime`, read in every form the samples use.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

/// OpenSearch's limit on an `_id`, in bytes.
pub const MAX_ID_BYTES: usize = 512;

pub(crate) fn id_parts<'r>(account: Option<&'r str>, event_id: Option<&'r str>) -> Option<(Option<&'r str>, &'r str)> {
    let id = event_id.filter(|id| !id.is_empty())?;
    let account = account.filter(|a| !a.is_empty());
    let len = account.map_or(0, |a| a.len() + 1) + id.len();
    (len <= MAX_ID_BYTES).then_some((account, id))
}

/// The `_id` [`write_document`] gives a CloudTrail record with this `recipientAccountId` and
/// `eventID`, or `None` when they make no usable id (then the log event's id is used). The S3
/// path sets its log event ids with it, so both paths give a record the same `_id` and `@id`.
pub fn cloudtrail_doc_id(account: Option<&str>, event_id: Option<&str>) -> Option<String> {
    id_parts(account, event_id).map(|(account, id)| match account {
        Some(account) => format!("{account}:{id}"),
        None => id.to_owned(),
    })
}

/// Parses `eventTime` as UTC. Accepts RFC 3339 (`2024-01-02T03:04:05Z`, with fractions or
/// an offset), and the offset-less `2024-01-02 03:04:05[.fff]` that re-exported records
/// use. Years outside 1000..=9999 are refused so every index name has a four-digit year.
pub fn parse_event_time(s: &str) -> Option<DateTime<Utc>> {
    let time = fast_event_time(s.as_bytes())
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)))
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|t| t.and_utc())
        })?;
    (1000..=9999).contains(&time.year()).then_some(time)
}

/// CloudTrail's own form, `YYYY-MM-DDTHH:MM:SSZ`, without going through a format parser.
fn fast_event_time(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    Some(date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_in_the_odd_forms_of_the_samples() {
        for (input, expected) in [
            ("2024-01-02T03:04:05Z", Some("2024-01-02T03:04:05.000Z")),
            ("2024-01-02T03:04:05.678Z", Some("2024-01-02T03:04:05.678Z")),
            ("2024-01-02T05:04:05+02:00", Some("2024-01-02T03:04:05.000Z")),
            ("2022-12-11 19:42:55", Some("2022-12-11T19:42:55.000Z")),
            ("2025-01-20 16:52:14.000000000", Some("2025-01-20T16:52:14.000Z")),
            ("2024-01-01 00:00:00.000", Some("2024-01-01T00:00:00.000Z")),
            ("2014-03-06T21: 22: 54Z", None),
            ("2024-02-30T00:00:00Z", None),
            ("0999-01-01T00:00:00Z", None),
            ("...", None),
            ("", None),
        ] {
            let got = parse_event_time(input).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            assert_eq!(got.as_deref(), expected, "{input}");
        }
    }
}
