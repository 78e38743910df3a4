//! The delivery rules: each bulk chunk is sent through the [`Client`], what is retryable is
//! retried (paced by `retry`, judged by `response`) until the attempt budget or the deadline
//! runs out, a 413 splits the body in two, and what fails for good goes to the dead-letter
//! path. The cluster setup runs once, on the first write.

use std::ops::Deref;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth::{Auth, AuthError};
use super::client::{Client, RequestError};
use super::dead_letter::{self, DeadLetter};
use super::response::{self, BulkVerdict, ItemOutcome};
use super::setup;
use crate::config::{Config, FullText, RetryPolicy, SetupConfig, SinkConfig};
use crate::index::{BulkChunk, Flavor, push_repaired};
use crate::pipeline::{Batch, Delivery, Sink};

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

/// The OpenSearch (or Elasticsearch) cluster as a [`Sink`]: its [`Client`], built once at
/// cold start, and the state of delivery (retry policy, setup done). It dereferences to the
/// client, for the requests setup, redrive and the CLI make.
#[derive(Debug)]
pub struct OpenSearch {
    client: Client,
    retry: RetryPolicy,
    prefix: String,
    documents: Config,
    setup: SetupConfig,
    setup_done: tokio::sync::OnceCell<setup::Report>,
    last_setup_failure: Mutex<Option<Instant>>,
    /// The cluster's flavor when setup is off (asked once with `GET /`).
    flavor: tokio::sync::OnceCell<Flavor>,
}

/// After a failed setup, the next write tries again only after this long.
const SETUP_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Deref for OpenSearch {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl OpenSearch {
    /// A sink for `config`, writing documents built as `documents` says (its index prefix,
    /// raw-message setting). Makes no network call.
    pub fn new(config: &SinkConfig, auth: Auth, documents: &Config) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: Client::new(config, auth)?,
            retry: config.retry,
            prefix: documents.index_prefix.clone(),
            documents: Config {
                sink: None,
                ..documents.clone()
            },
            setup: config.setup.clone(),
            setup_done: tokio::sync::OnceCell::new(),
            last_setup_failure: Mutex::new(None),
            flavor: tokio::sync::OnceCell::new(),
        })
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
        let run = || setup::run(&self.client, &self.prefix, &self.setup, timeout);
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

    /// The cluster's flavor, once known: from the setup report, or (setup off) from `GET /`,
    /// asked once. Setup runs here if it has not yet, so the first envelope is encoded for
    /// the cluster it goes to.
    async fn flavor(&self, deadline: Option<Instant>) -> Option<Flavor> {
        self.ensure_setup(deadline).await;
        if let Some(report) = self.setup_done.get() {
            return Some(report.cluster.flavor);
        }
        if self.setup.install {
            // Setup failed: retried later; until then the flavor is not known.
            return None;
        }
        let timeout = self
            .retry
            .attempt_timeout(Instant::now(), deadline)
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_secs(10));
        self.flavor
            .get_or_try_init(|| setup::detect_flavor(&self.client, timeout))
            .await
            .ok()
            .copied()
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
        let (repairable, mut dead): (Vec<_>, Vec<_>) = dead.into_iter().partition(DeadLetter::is_repairable);
        if result.is_ok() && !repairable.is_empty() {
            let mut repaired = BulkChunk::default();
            // Re-encoded for the cluster, as the encoder did (rare: a clone is fine).
            let subtrees_indexed = self.flavor(batch.deadline).await.map(Flavor::indexes_subtrees);
            let documents = Config {
                full_text_subtrees: if self.documents.full_text_subtrees.enabled(subtrees_indexed) {
                    FullText::On
                } else {
                    FullText::Off
                },
                ..self.documents.clone()
            };
            for d in repairable {
                if !push_repaired(&mut repaired, &documents, batch.envelope, d.event, d.kind) {
                    dead.push(d);
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
            let verdict = match self.client.bulk(current.body(), timeout).await {
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
    /// original `_id`, so a redelivered failure is one dead letter, not two (on a time-series
    /// collection, without `_id`: there a redelivered failure is two).
    async fn write_dead_letters(
        &self,
        dead: &[DeadLetter],
        batch: &Batch<'_>,
        delivery: &mut Delivery,
    ) -> Result<(), SinkError> {
        let chunk = dead_letter::chunk(dead, batch, &self.prefix);
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
        let unwritten = dead_letter::settle(dead, &counts, delivery);
        result.map_err(|e| SinkError::DeadLetter {
            items: unwritten,
            reason: e.to_string(),
        })
    }
}

impl Sink for &OpenSearch {
    type Error = SinkError;

    async fn send(&mut self, chunk: &BulkChunk, batch: &Batch<'_>, delivery: &mut Delivery) -> Result<(), Self::Error> {
        self.deliver(chunk, batch, delivery).await
    }

    async fn subtrees_indexed(&mut self, deadline: Option<Instant>) -> Option<bool> {
        self.flavor(deadline).await.map(Flavor::indexes_subtrees)
    }
}
