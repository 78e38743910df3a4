//! Stage 6: what a `_bulk` answer means, as pure functions over status and body, tested on
//! literal responses: which items landed, which to retry, which to dead-letter.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// The fate of one bulk item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Indexed now (200/201).
    Indexed,
    /// Its `_id` was already there (409 on `create`): an earlier delivery indexed it.
    AlreadyPresent,
    /// Worth another try: 429, a full write queue (`rejected_execution_exception`, or
    /// Elasticsearch's `es_rejected_execution_exception`), 502/503/504.
    Retry {
        /// The item's status.
        status: u16,
        /// OpenSearch's error type.
        error_type: String,
    },
    /// Will fail again however often it is sent (mapping rejection, blocked index, ...):
    /// goes to the dead-letter index.
    Failed {
        /// The item's status.
        status: u16,
        /// OpenSearch's error type.
        error_type: String,
        /// OpenSearch's reason, truncated.
        reason: String,
    },
}

/// What a whole `_bulk` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkVerdict {
    /// One outcome per item, in request order.
    Items(Vec<ItemOutcome>),
    /// Nothing can be known about the items, but trying again may work (429, 502, 503, 504,
    /// or a 200 whose body is not a bulk response). Safe because actions are `create` (on a
    /// Serverless time-series collection, `index`: the documented duplicates).
    RetryAll {
        /// Why, for the logs.
        reason: String,
    },
    /// 413: the body is too large for the cluster; split it and send the halves.
    TooLarge,
    /// Will not work by retrying within this invocation (401, 403, 404, 400, 500, ...): fail
    /// the invocation so that Lambda retries it later and, in the end, keeps it.
    Fatal {
        /// The HTTP status.
        status: u16,
        /// Why, for the logs: the error type and reason, or the start of the body.
        reason: String,
    },
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    items: Vec<ItemEnvelope>,
}

/// `{"create": {...}}`: the one key is the action, whichever it is.
#[derive(Deserialize)]
struct ItemEnvelope(#[serde(with = "single_entry")] ItemResult);

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    error_type: String,
    #[serde(default)]
    reason: Option<String>,
    /// The underlying error: "failed to parse" is explained here ("Duplicate field 'a'").
    #[serde(default)]
    caused_by: Option<Box<ErrorBody>>,
}

impl ErrorBody {
    /// The reason with its causes: `failed to parse (json_parse_exception: Duplicate field 'a')`.
    fn full_reason(&self) -> String {
        let mut text = self.reason.clone().unwrap_or_default();
        let mut cause = self.caused_by.as_deref();
        while let Some(c) = cause {
            text.push_str(&format!(" ({}: {})", c.error_type, c.reason.as_deref().unwrap_or("")));
            cause = c.caused_by.as_deref();
        }
        text
    }
}

/// Request-level errors: `{"error": {"type": ..., "reason": ...}, "status": 400}`, or a string.
#[derive(Deserialize)]
struct ErrorResponse {
    error: ErrorField,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    Object(ErrorBody),
    Text(String),
}

mod single_entry {
    use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with one action key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
                let (_, value) = map
                    .next_entry::<IgnoredAny, T>()?
                    .ok_or_else(|| A::Error::custom("empty bulk item"))?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(value)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Longest reason kept from a response: enough to act on, never a whole HTML page.
const MAX_REASON: usize = 300;

/// Interprets a `_bulk` answer to a request of `expected_items` items.
pub fn classify(status: u16, body: &[u8], expected_items: usize) -> BulkVerdict {
    match status {
        200..=299 => classify_items(body, expected_items),
        413 => BulkVerdict::TooLarge,
        429 | 502 | 503 | 504 => BulkVerdict::RetryAll {
            reason: format!("HTTP {status}: {}", describe_error(body)),
        },
        _ => BulkVerdict::Fatal {
            status,
            reason: describe_error(body),
        },
    }
}

fn classify_items(body: &[u8], expected_items: usize) -> BulkVerdict {
    let response: BulkResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return BulkVerdict::RetryAll {
                reason: format!("unreadable bulk response ({e}): {}", snippet(body)),
            };
        }
    };
    if response.items.len() != expected_items {
        return BulkVerdict::RetryAll {
            reason: format!(
                "bulk response has {} items for {expected_items} sent",
                response.items.len()
            ),
        };
    }
    if !response.errors {
        // The common case: no error anywhere, no need to look at each item's error.
        return BulkVerdict::Items(
            response
                .items
                .iter()
                .map(|ItemEnvelope(i)| item_outcome(i.status, None))
                .collect(),
        );
    }
    BulkVerdict::Items(
        response
            .items
            .iter()
            .map(|ItemEnvelope(i)| item_outcome(i.status, i.error.as_ref()))
            .collect(),
    )
}

fn item_outcome(status: u16, error: Option<&ErrorBody>) -> ItemOutcome {
    let error_type = error.map(|e| e.error_type.clone()).unwrap_or_default();
    match status {
        200..=299 => ItemOutcome::Indexed,
        409 => ItemOutcome::AlreadyPresent,
        429 | 502 | 503 | 504 => ItemOutcome::Retry { status, error_type },
        _ if is_rejection(&error_type) => ItemOutcome::Retry { status, error_type },
        _ => ItemOutcome::Failed {
            status,
            error_type,
            reason: error
                .map(|e| truncate(&e.full_reason(), MAX_REASON).to_owned())
                .unwrap_or_default(),
        },
    }
}

/// A full thread pool queue: the node's back-pressure, gone once its queue drains. OpenSearch
/// 2.19 names it `rejected_execution_exception`, Elasticsearch `es_rejected_execution_exception`.
/// Retried whatever the item's status says.
fn is_rejection(error_type: &str) -> bool {
    matches!(
        error_type,
        "rejected_execution_exception" | "es_rejected_execution_exception"
    )
}

/// One line describing an error body: `type: reason` for OpenSearch errors, otherwise the
/// start of the body with whitespace collapsed (HTML error pages from proxies, say).
pub fn describe_error(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(ErrorResponse {
            error: ErrorField::Object(e),
        }) => format!("{}: {}", e.error_type, truncate(&e.full_reason(), MAX_REASON)),
        Ok(ErrorResponse {
            error: ErrorField::Text(t),
        }) => truncate(&t, MAX_REASON).to_owned(),
        Err(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => snippet(body),
        Err(_) => snippet(body),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_REASON * 4)]);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        "(empty body)".to_owned()
    } else {
        truncate(&collapsed, MAX_REASON).to_owned()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ItemOutcome::*;

    #[test]
    fn all_created() {
        let body = br#"{"took":30,"errors":false,"items":[{"create":{"_index":"cwl-2024.01.01","_id":"a","_version":1,"result":"created","status":201}},{"create":{"_index":"cwl-2024.01.01","_id":"b","status":201}}]}"#;
        assert_eq!(classify(200, body, 2), BulkVerdict::Items(vec![Indexed, Indexed]));
    }

    #[test]
    fn mixed_items_are_told_apart() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"i","_id":"1","status":201}},
            {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict, document already exists (current version [1])"}}},
            {"create":{"_index":"i","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
            {"create":{"_index":"i","_id":"4","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [requestParameters] of type [flat_object]"}}},
            {"create":{"_index":"i","_id":"5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
            {"create":{"_index":"i","_id":"6","status":403,"error":{"type":"cluster_block_exception","reason":"index [i] blocked by: [FORBIDDEN/8/index write (api)];"}}},
            {"create":{"_index":"i","_id":"7","status":500,"error":{"type":"es_rejected_execution_exception","reason":"odd status"}}}
        ]}"#;
        let BulkVerdict::Items(items) = classify(200, body, 7) else {
            panic!()
        };
        assert_eq!(items[0], Indexed);
        assert_eq!(items[1], AlreadyPresent);
        assert!(
            matches!(&items[2], Retry { status: 429, error_type } if error_type == "es_rejected_execution_exception")
        );
        assert!(
            matches!(&items[3], Failed { status: 400, error_type, reason } if error_type == "mapper_parsing_exception" && reason.contains("flat_object"))
        );
        assert!(matches!(&items[4], Retry { status: 503, .. }));
        assert!(matches!(&items[5], Failed { status: 403, error_type, .. } if error_type == "cluster_block_exception"));
        assert!(matches!(&items[6], Retry { status: 500, .. }));
    }

    /// What OpenSearch 2.19.6 answered to concurrent `_bulk` requests with
    /// `thread_pool.write.size=1 thread_pool.write.queue_size=2`, as captured from the node:
    /// HTTP 200, each item 429 `rejected_execution_exception` (the shard's write queue).
    const OPENSEARCH_2_19_FULL_QUEUE: &[u8] = br#"{"took":372,"errors":true,"items":[{"create":{"_index":"probe-0","_id":"1-1-0","status":429,"error":{"type":"rejected_execution_exception","reason":"rejected execution of org.opensearch.action.bulk.TransportShardBulkAction$2@64b4b749 on OpenSearchThreadPoolExecutor[name = cwl-indexer-local-9211/write, queue capacity = 2, org.opensearch.common.util.concurrent.OpenSearchThreadPoolExecutor@f3d199b[Running, pool size = 1, active threads = 1, queued tasks = 2, completed tasks = 103]]"}}},{"create":{"_index":"probe-0","_id":"1-1-1","status":429,"error":{"type":"rejected_execution_exception","reason":"rejected execution of org.opensearch.action.bulk.TransportShardBulkAction$2@64b4b749 on OpenSearchThreadPoolExecutor[name = cwl-indexer-local-9211/write, queue capacity = 2, org.opensearch.common.util.concurrent.OpenSearchThreadPoolExecutor@f3d199b[Running, pool size = 1, active threads = 1, queued tasks = 2, completed tasks = 103]]"}}}]}"#;

    /// The same node refusing a whole `_bulk` (its coordinating write queue), as captured: 429.
    const OPENSEARCH_2_19_REFUSED_BULK: &[u8] = br#"{"error":{"root_cause":[{"type":"rejected_execution_exception","reason":"rejected execution of org.opensearch.action.bulk.TransportBulkAction$1$2@3cd1502f on OpenSearchThreadPoolExecutor[name = cwl-indexer-local-9211/write, queue capacity = 2, org.opensearch.common.util.concurrent.OpenSearchThreadPoolExecutor@f3d199b[Running, pool size = 1, active threads = 0, queued tasks = 2, completed tasks = 41]]"}],"type":"rejected_execution_exception","reason":"rejected execution of org.opensearch.action.bulk.TransportBulkAction$1$2@3cd1502f on OpenSearchThreadPoolExecutor[name = cwl-indexer-local-9211/write, queue capacity = 2, org.opensearch.common.util.concurrent.OpenSearchThreadPoolExecutor@f3d199b[Running, pool size = 1, active threads = 0, queued tasks = 2, completed tasks = 41]]","suppressed":[{"type":"resource_already_exists_exception","reason":"index [probe-0/mZaE4C4QSNCkgrPcEL3e5w] already exists","index":"probe-0","index_uuid":"mZaE4C4QSNCkgrPcEL3e5w"},{"type":"resource_already_exists_exception","reason":"index [probe-0/mZaE4C4QSNCkgrPcEL3e5w] already exists","index":"probe-0","index_uuid":"mZaE4C4QSNCkgrPcEL3e5w"}]},"status":429}"#;

    #[test]
    fn opensearch_2_full_write_queue_is_retried() {
        let BulkVerdict::Items(items) = classify(200, OPENSEARCH_2_19_FULL_QUEUE, 2) else {
            panic!()
        };
        for item in &items {
            assert!(
                matches!(item, Retry { status: 429, error_type } if error_type == "rejected_execution_exception"),
                "{items:?}"
            );
        }
        // The name alone decides, as for Elasticsearch's: a rejection behind another status
        // (a proxy rewriting it, say) is still back-pressure, not a bad document to dead-letter.
        let other_status =
            String::from_utf8_lossy(OPENSEARCH_2_19_FULL_QUEUE).replace(r#""status":429"#, r#""status":500"#);
        let BulkVerdict::Items(items) = classify(200, other_status.as_bytes(), 2) else {
            panic!()
        };
        assert!(matches!(&items[0], Retry { status: 500, .. }), "{items:?}");
        assert!(
            matches!(classify(429, OPENSEARCH_2_19_REFUSED_BULK, 2), BulkVerdict::RetryAll { reason } if reason.starts_with("HTTP 429: rejected_execution_exception"))
        );
    }

    #[test]
    fn causes_are_part_of_the_reason() {
        let body = br#"{"errors":true,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse","caused_by":{"type":"json_parse_exception","reason":"Duplicate field 'a'"}}}}]}"#;
        let BulkVerdict::Items(items) = classify(200, body, 1) else {
            panic!()
        };
        assert!(
            matches!(&items[0], Failed { reason, .. } if reason == "failed to parse (json_parse_exception: Duplicate field 'a')"),
            "{items:?}"
        );
    }

    #[test]
    fn other_action_keys_are_read_too() {
        let body = br#"{"errors":false,"items":[{"index":{"status":200}},{"update":{"status":201}}]}"#;
        assert_eq!(classify(200, body, 2), BulkVerdict::Items(vec![Indexed, Indexed]));
    }

    #[test]
    fn request_level_statuses() {
        let es_429 = br#"{"error":{"root_cause":[],"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation [shard_detail=...]"},"status":429}"#;
        assert!(
            matches!(classify(429, es_429, 3), BulkVerdict::RetryAll { reason } if reason.contains("es_rejected_execution_exception"))
        );
        for status in [502, 503, 504] {
            assert!(
                matches!(classify(status, b"", 1), BulkVerdict::RetryAll { .. }),
                "{status}"
            );
        }
        assert_eq!(
            classify(413, br#"{"Message":"Request size exceeded 10485760 bytes"}"#, 9),
            BulkVerdict::TooLarge
        );
        let forbidden =
            br#"{"Message":"User: arn:aws:sts::1:assumed-role/x is not authorized to perform: es:ESHttpPost"}"#;
        assert!(
            matches!(classify(403, forbidden, 1), BulkVerdict::Fatal { status: 403, reason } if reason.contains("not authorized"))
        );
        let bad = br#"{"error":{"type":"illegal_argument_exception","reason":"Action/metadata line [1] contains an unknown parameter [_type]"},"status":400}"#;
        assert!(
            matches!(classify(400, bad, 1), BulkVerdict::Fatal { status: 400, reason } if reason == "illegal_argument_exception: Action/metadata line [1] contains an unknown parameter [_type]")
        );
        assert!(
            matches!(classify(500, b"{\"error\":\"boom\"}", 1), BulkVerdict::Fatal { status: 500, reason } if reason == "boom")
        );
    }

    #[test]
    fn html_and_text_bodies_never_crash() {
        let html = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>";
        assert!(
            matches!(classify(502, html, 1), BulkVerdict::RetryAll { reason } if reason.contains("502 Bad Gateway"))
        );
        assert!(matches!(classify(200, html, 1), BulkVerdict::RetryAll { reason } if reason.contains("unreadable")));
        assert!(matches!(
            classify(401, "Unauthorized \u{1F512}".as_bytes(), 1),
            BulkVerdict::Fatal { status: 401, .. }
        ));
        assert!(matches!(
            classify(200, &[0xff, 0xfe, 0x00], 1),
            BulkVerdict::RetryAll { .. }
        ));
        let huge = vec![b'x'; 1_000_000];
        let BulkVerdict::Fatal { reason, .. } = classify(400, &huge, 1) else {
            panic!()
        };
        assert!(reason.len() <= MAX_REASON);
    }

    #[test]
    fn item_count_mismatch_retries_everything() {
        let body = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert!(matches!(classify(200, body, 2), BulkVerdict::RetryAll { .. }));
    }
}
