//! Stage 5: the OpenSearch sink. Sends bulk chunks over one reused HTTPS client (gzip, SigV4
//! or basic auth), retries what is retryable until the deadline, splits on 413, writes what
//! fails for good to the dead-letter index, and runs the cluster setup once.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use flate2::{Compression, write::GzEncoder};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::auth::{Auth, AuthError};
use crate::bulk::{BulkChunk, Target};
use crate::config::{Config, SetupConfig, SinkConfig};
use crate::document::{self, DocKind, Origin, write_json_str};
use crate::envelope::LogEvent;
use crate::handler::{Batch, Delivery, Sink};
use crate::response::{self, BulkVerdict, ItemOutcome};
use crate::retry::RetryPolicy;
use crate::setup;
use crate::template;

/// Why delivery failed; the invocation fails and Lambda retries the whole payload, which
/// the idempotent `_id`s make safe.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The cluster refused the request in a way retrying now will not fix (403, 400, ...).
    #[error("cluster refused the bulk request: HTTP {status}: {reason}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Error type and reason, or the start of the body.
        reason: String,
    },
    /// Retryable failures outlasted the attempt budget.
    #[error("{items} items still failing after {attempts} attempts: {reason}")]
    RetriesExhausted {
        /// Items not delivered.
        items: usize,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// Too close to the Lambda deadline to try again.
    #[error("stopped before the Lambda deadline with {items} items undelivered: {reason}")]
    Deadline {
        /// Items not delivered.
        items: usize,
        /// The last failure, if any.
        reason: String,
    },
    /// The dead-letter write itself failed for some items.
    #[error("dead-letter write failed for {items} items: {reason}")]
    DeadLetter {
        /// Dead letters not written.
        items: usize,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An item's action line could not be read back (a bug, never input).
    #[error("cannot read back a bulk action line: {0}")]
    ActionLine(#[from] serde_json::Error),
}

/// An item that failed for good, on its way to the dead-letter index.
#[derive(Debug)]
struct DeadLetter {
    event: usize,
    kind: DocKind,
    target: Target,
    status: u16,
    error_type: String,
    reason: String,
    attempts: u32,
}

/// The OpenSearch (or Elasticsearch) cluster, with its client built once at cold start.
#[derive(Debug)]
pub struct OpenSearch {
    client: reqwest::Client,
    endpoint: Url,
    bulk_url: Url,
    auth: Auth,
    gzip: bool,
    retry: RetryPolicy,
    prefix: String,
    documents: Config,
    setup: SetupConfig,
    setup_done: tokio::sync::OnceCell<setup::Report>,
    last_setup_failure: Mutex<Option<Instant>>,
}

/// The response fields the sink reads; everything else stays on the server.
const BULK_FILTER: &str =
    "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by";

/// After a failed setup, the next write tries again only after this long.
const SETUP_RETRY_AFTER: Duration = Duration::from_secs(60);

impl OpenSearch {
    /// A sink for `config`, writing documents built as `documents` says (its index prefix,
    /// raw-message setting). Makes no network call.
    pub fn new(config: &SinkConfig, auth: Auth, documents: &Config) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("cwl-indexer/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_keepalive(Duration::from_secs(30))
            // Our retry loop is the only one, so every attempt is counted and bounded by the
            // deadline; reqwest would otherwise re-send some failed requests on its own.
            .retry(reqwest::retry::never())
            // https_only is not set: http is allowed for loopback only, by the config.
            .build()?;
        let mut bulk_url = config
            .endpoint
            .join("_bulk")
            .unwrap_or_else(|_| config.endpoint.clone());
        bulk_url.set_query(Some(BULK_FILTER));
        Ok(Self {
            client,
            endpoint: config.endpoint.clone(),
            bulk_url,
            auth,
            gzip: config.gzip,
            retry: config.retry,
            prefix: documents.index_prefix.clone(),
            documents: Config {
                sink: None,
                ..documents.clone()
            },
            setup: config.setup.clone(),
            setup_done: tokio::sync::OnceCell::new(),
            last_setup_failure: Mutex::new(None),
        })
    }

    /// The cluster's base URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends one request; returns status and body. `path` is relative to the endpoint.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), RequestError> {
        let url = self.endpoint.join(path).map_err(|e| RequestError::Url(e.to_string()))?;
        let (status, body, _) = self
            .send(method, url, "application/json", body.unwrap_or_default(), timeout)
            .await?;
        Ok((status, body))
    }

    /// Sends a request to any URL (OpenSearch Dashboards, say) with the same client and
    /// authentication, and extra headers; the body is sent as is.
    pub async fn request_url(
        &self,
        method: Method,
        url: Url,
        content_type: HeaderValue,
        extra: HeaderMap,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), RequestError> {
        let (status, body, _) = self
            .send_with(method, url, content_type, extra, body, false, timeout)
            .await?;
        Ok((status, body))
    }

    /// Sends `body` (gzip-compressed if configured and non-empty), signed over the bytes
    /// actually sent. Returns status, body and the number of bytes on the wire.
    async fn send(
        &self,
        method: Method,
        url: Url,
        content_type: &'static str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>, usize), RequestError> {
        let content_type = HeaderValue::from_static(content_type);
        self.send_with(method, url, content_type, HeaderMap::new(), body, self.gzip, timeout)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        method: Method,
        url: Url,
        content_type: HeaderValue,
        mut headers: HeaderMap,
        body: &[u8],
        gzip_body: bool,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>, usize), RequestError> {
        let payload = if gzip_body && !body.is_empty() {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip(body)
        } else {
            body.to_vec()
        };
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, content_type);
        }
        self.auth
            .apply(method.as_str(), url.as_str(), &mut headers, &payload)
            .await?;
        let wire = payload.len();
        let response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(payload)
            .timeout(timeout)
            .send()
            .await
            .map_err(RequestError::from_reqwest)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(RequestError::from_reqwest)?;
        Ok((status, bytes.to_vec(), wire))
    }

    /// Runs the cluster setup (templates, retention) at most once per container, on the
    /// first write: no network call at cold start. A failure is logged and tried again on
    /// a later write (after a pause), never blocking delivery.
    async fn ensure_setup(&self, deadline: Option<Instant>) {
        if !self.setup.install || self.setup_done.initialized() {
            return;
        }
        if let Ok(last) = self.last_setup_failure.lock()
            && last.is_some_and(|t| t.elapsed() < SETUP_RETRY_AFTER)
        {
            return;
        }
        let timeout = self
            .retry
            .attempt_timeout(Instant::now(), deadline)
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_secs(10));
        let run = || setup::run(self, &self.prefix, &self.setup, timeout);
        match self.setup_done.get_or_try_init(run).await {
            Ok(report) => {
                tracing::info!(report = %serde_json::to_string(report).unwrap_or_default(), "cluster setup done")
            }
            Err(e) => {
                tracing::error!(error = %e, "cluster setup failed; documents are sent anyway, setup is retried later");
                if let Ok(mut last) = self.last_setup_failure.lock() {
                    *last = Some(Instant::now());
                }
            }
        }
    }

    /// Delivers one chunk: retries, 413 splits, dead letters. Errors mean some item is
    /// neither indexed nor dead-lettered.
    async fn deliver(&self, chunk: &BulkChunk, batch: &Batch<'_>, delivery: &mut Delivery) -> Result<(), SinkError> {
        self.ensure_setup(batch.deadline).await;
        let mut dead = Vec::new();
        let mut result = self.deliver_with_splits(chunk, batch, delivery, &mut dead).await;
        // Duplicate keys deep inside a record make OpenSearch refuse it ("Duplicate field").
        // Finding them up front would cost a second parse of every record; instead the few
        // refused ones are re-encoded with the last value of each key, as JSON.parse keeps
        // it, and sent once more.
        let (repairable, mut dead): (Vec<_>, Vec<_>) = dead.into_iter().partition(|d| {
            d.kind == DocKind::CloudTrail
                && d.error_type.ends_with("parsing_exception")
                && d.reason.contains("Duplicate field")
        });
        if result.is_ok() && !repairable.is_empty() {
            let mut repaired = BulkChunk::default();
            for d in repairable {
                match batch.envelope.log_events.get(d.event).and_then(|e| deduplicated(e)) {
                    Some(event) => repaired.push_item(d.event, d.kind, |out| {
                        document::write_item(out, &self.documents, &origin(batch), &event);
                    }),
                    None => dead.push(d),
                }
            }
            delivery.repaired += repaired.items().len();
            result = self.deliver_with_splits(&repaired, batch, delivery, &mut dead).await;
        } else {
            dead.extend(repairable);
        }
        // Dead letters found before a failure are written anyway: fewer events for the
        // retried invocation to get wrong again.
        if !dead.is_empty() {
            self.write_dead_letters(&dead, batch, delivery).await?;
        }
        result
    }

    /// Delivers a chunk, then the halves 413 answers split it into.
    async fn deliver_with_splits(
        &self,
        chunk: &BulkChunk,
        batch: &Batch<'_>,
        delivery: &mut Delivery,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<(), SinkError> {
        let mut halves = Vec::new();
        self.deliver_chunk(chunk, batch, delivery, Some(dead), &mut halves)
            .await?;
        while let Some(half) = halves.pop() {
            self.deliver_chunk(&half, batch, delivery, Some(dead), &mut halves)
                .await?;
        }
        Ok(())
    }

    /// One chunk's retry loop. Items that fail for good go to `dead` (or, for the dead-letter
    /// write itself, `dead` is `None` and they fail the call); 413 pushes two halves.
    async fn deliver_chunk(
        &self,
        first: &BulkChunk,
        batch: &Batch<'_>,
        delivery: &mut Delivery,
        mut dead: Option<&mut Vec<DeadLetter>>,
        halves: &mut Vec<BulkChunk>,
    ) -> Result<(), SinkError> {
        let mut retry_chunk: Option<BulkChunk> = None;
        // Carried over from the body this one was split from: one budget per item.
        let mut attempts = first.items().iter().map(|i| i.attempts).max().unwrap_or(0);
        loop {
            let current = retry_chunk.as_ref().unwrap_or(first);
            let pending = current.items().len();
            let Some(timeout) = self.retry.attempt_timeout(Instant::now(), batch.deadline) else {
                return Err(SinkError::Deadline {
                    items: pending,
                    reason: "no time left for another attempt".into(),
                });
            };
            attempts += 1;
            delivery.requests += 1;
            delivery.bulk_bytes += current.body().len();
            let verdict = match self
                .send(
                    Method::POST,
                    self.bulk_url.clone(),
                    "application/x-ndjson",
                    current.body(),
                    timeout,
                )
                .await
            {
                Ok((status, body, wire)) => {
                    delivery.wire_bytes += wire;
                    response::classify(status.as_u16(), &body, pending)
                }
                Err(RequestError::Auth(e)) => return Err(e.into()),
                Err(e) => BulkVerdict::RetryAll { reason: e.to_string() },
            };
            let (retry, reason): (Vec<usize>, String) = match verdict {
                BulkVerdict::Items(outcomes) => {
                    let mut retry = Vec::new();
                    let mut reason = String::new();
                    for (i, (item, outcome)) in current.items().iter().zip(outcomes).enumerate() {
                        match outcome {
                            ItemOutcome::Indexed => delivery.indexed += 1,
                            ItemOutcome::AlreadyPresent => delivery.duplicates += 1,
                            ItemOutcome::Retry { status, error_type } => {
                                reason = format!("item HTTP {status} {error_type}");
                                retry.push(i);
                            }
                            ItemOutcome::Failed {
                                status,
                                error_type,
                                reason: why,
                            } => {
                                let Some(dead) = dead.as_deref_mut() else {
                                    return Err(SinkError::DeadLetter {
                                        items: 1,
                                        reason: format!("HTTP {status} {error_type}: {why}"),
                                    });
                                };
                                dead.push(DeadLetter {
                                    event: item.event,
                                    kind: item.kind,
                                    target: current.target(item)?,
                                    status,
                                    error_type,
                                    reason: why,
                                    attempts,
                                });
                            }
                        }
                    }
                    (retry, reason)
                }
                BulkVerdict::RetryAll { reason } => ((0..pending).collect(), reason),
                BulkVerdict::TooLarge => {
                    if pending == 1 {
                        let item = &current.items()[0];
                        let too_large = || format!("a single document of {} bytes", item.range.len());
                        let Some(dead) = dead.as_deref_mut() else {
                            return Err(SinkError::DeadLetter {
                                items: 1,
                                reason: format!("HTTP 413 for {}", too_large()),
                            });
                        };
                        dead.push(DeadLetter {
                            event: item.event,
                            kind: item.kind,
                            target: current.target(item)?,
                            status: 413,
                            error_type: "request_entity_too_large".into(),
                            reason: format!("the cluster refused {}", too_large()),
                            attempts,
                        });
                    } else {
                        delivery.splits += 1;
                        let (left, right) = current.items().split_at(pending / 2);
                        for part in [right, left] {
                            let mut half = BulkChunk::with_capacity(current.body().len() / 2 + 1);
                            half.copy_items(current, part);
                            half.set_attempts(attempts);
                            halves.push(half);
                        }
                    }
                    return Ok(());
                }
                BulkVerdict::Fatal { status, reason } => return Err(SinkError::Rejected { status, reason }),
            };
            if retry.is_empty() {
                return Ok(());
            }
            delivery.retried += retry.len();
            let pause = self.retry.backoff(attempts, fastrand::f64());
            if !self.retry.may_retry(attempts, pause, Instant::now(), batch.deadline) {
                return Err(if attempts >= self.retry.max_attempts {
                    SinkError::RetriesExhausted {
                        items: retry.len(),
                        attempts,
                        reason,
                    }
                } else {
                    SinkError::Deadline {
                        items: retry.len(),
                        reason,
                    }
                });
            }
            tracing::warn!(items = retry.len(), attempts, pause_ms = pause.as_millis() as u64, %reason, "retrying");
            tokio::time::sleep(pause).await;
            if retry.len() < pending {
                let mut next = BulkChunk::with_capacity(current.body().len());
                next.copy_items(current, retry.iter().map(|&i| &current.items()[i]));
                next.set_attempts(attempts);
                retry_chunk = Some(next);
            }
        }
    }

    /// Writes dead letters to `<prefix>-deadletter-<the original index's date>` with the
    /// original `_id`, so a redelivered failure is one dead letter, not two.
    async fn write_dead_letters(
        &self,
        dead: &[DeadLetter],
        batch: &Batch<'_>,
        delivery: &mut Delivery,
    ) -> Result<(), SinkError> {
        let now = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let dlq_prefix = template::deadletter_prefix(&self.prefix);
        let mut chunk = BulkChunk::default();
        for d in dead {
            let event = batch.envelope.log_events.get(d.event);
            let date = d
                .target
                .index
                .strip_prefix(&self.prefix)
                .and_then(|s| s.strip_prefix('-'))
                .unwrap_or("unknown");
            chunk.push_item(d.event, DocKind::Invalid, |out| {
                out.extend_from_slice(br#"{"create":{"_index":"#);
                write_json_str(out, &format!("{dlq_prefix}-{date}"));
                out.extend_from_slice(br#","_id":"#);
                write_json_str(out, &d.target.id);
                out.extend_from_slice(b"}}\n{\"@timestamp\":");
                write_json_str(out, &now);
                out.extend_from_slice(br#","message":"#);
                write_json_str(out, event.map_or("", |e| &e.message));
                let _ = write!(out, r#","error":{{"status":{},"type":"#, d.status);
                write_json_str(out, &d.error_type);
                out.extend_from_slice(br#","reason":"#);
                write_json_str(out, &d.reason);
                out.extend_from_slice(br#"},"original":{"index":"#);
                write_json_str(out, &d.target.index);
                out.extend_from_slice(br#","id":"#);
                write_json_str(out, &d.target.id);
                out.extend_from_slice(br#"},"@id":"#);
                write_json_str(out, event.map_or("", |e| &e.id));
                out.extend_from_slice(br#","@owner":"#);
                write_json_str(out, &batch.envelope.owner);
                out.extend_from_slice(br#","@log_group":"#);
                write_json_str(out, &batch.envelope.log_group);
                out.extend_from_slice(br#","@log_stream":"#);
                write_json_str(out, &batch.envelope.log_stream);
                let timestamp = event.map_or(0, |e| e.timestamp);
                let _ = writeln!(out, r#","timestamp":{timestamp},"attempts":{}}}"#, d.attempts);
            });
        }
        let mut counts = Delivery::default();
        let mut halves = Vec::new();
        let result = async {
            self.deliver_chunk(&chunk, batch, &mut counts, None, &mut halves)
                .await?;
            while let Some(half) = halves.pop() {
                self.deliver_chunk(&half, batch, &mut counts, None, &mut halves).await?;
            }
            Ok::<(), SinkError>(())
        }
        .await;
        delivery.requests += counts.requests;
        delivery.bulk_bytes += counts.bulk_bytes;
        delivery.wire_bytes += counts.wire_bytes;
        delivery.retried += counts.retried;
        // A dead letter already present (409) was written by an earlier delivery.
        delivery.dead_lettered += counts.indexed + counts.duplicates;
        for d in dead {
            tracing::warn!(
                index = d.target.index,
                id = d.target.id,
                status = d.status,
                error_type = d.error_type,
                reason = d.reason,
                "dead-lettered"
            );
        }
        result.map_err(|e| SinkError::DeadLetter {
            items: dead.len() - counts.indexed - counts.duplicates,
            reason: e.to_string(),
        })
    }
}

impl Sink for &OpenSearch {
    type Error = SinkError;

    async fn send(&mut self, chunk: &BulkChunk, batch: &Batch<'_>, delivery: &mut Delivery) -> Result<(), Self::Error> {
        self.deliver(chunk, batch, delivery).await
    }
}

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Signing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Connection refused or reset, DNS, TLS, timeout: no HTTP answer.
    #[error("{0}")]
    Transport(String),
    /// An HTTP answer that is an error.
    #[error("HTTP {status}: {reason}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Error type and reason.
        reason: String,
    },
    /// A URL could not be built.
    #[error("bad URL: {0}")]
    Url(String),
}

impl RequestError {
    /// The whole cause chain on one line: reqwest's own message is often just "error sending
    /// request", with the useful part (connection refused, certificate) in its sources.
    fn from_reqwest(e: reqwest::Error) -> Self {
        let mut message = if e.is_timeout() {
            "timed out".to_owned()
        } else {
            e.to_string()
        };
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::Transport(message)
    }
}

fn origin<'a>(batch: &'a Batch<'_>) -> Origin<'a> {
    Origin {
        owner: &batch.envelope.owner,
        log_group: &batch.envelope.log_group,
        log_stream: &batch.envelope.log_stream,
    }
}

/// The event with its message re-serialised through `serde_json::Value`, which keeps the
/// last of duplicate keys at every depth. `None` if it cannot be (a number beyond `f64`).
fn deduplicated(event: &LogEvent<'_>) -> Option<LogEvent<'static>> {
    let value: Value = serde_json::from_str(&event.message).ok()?;
    Some(LogEvent {
        id: event.id.clone().into_owned().into(),
        timestamp: event.timestamp,
        message: value.to_string().into(),
    })
}

/// Gzips a request body as the sink sends it (level 1). Public for the benches, which
/// report what compressing the body costs and saves.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    // Level 1: CloudTrail NDJSON still shrinks about 8x, at a fraction of level 6's CPU.
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 6), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}
