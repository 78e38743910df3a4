//! `make load` (not part of `make test`: `#[ignore]`): LOAD_INVOCATIONS (32) concurrent
//! invocations of distinct realistic CloudWatch Logs batches (scripts/bench-payloads.py, about
//! 650 events each) through the real handler (`Indexer::dispatch`, the function's entry point)
//! into one node started with a tiny write queue, so that the node itself rejects items
//! (`429 rejected_execution_exception`). A pass-through fault proxy (no fault planned) records
//! each `_bulk` item's `_id`, for the retries per item. At the end it proves every event is in
//! its daily index exactly once and nothing was dead-lettered; invocations that failed (retries
//! out before their deadline) are redelivered, as Lambda would, until they land. Bounded to
//! 5 minutes; prints the figures BENCHMARKS.md quotes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::fault_proxy::FaultProxy;
use common::node;
use cwl_indexer::config::{RetryPolicy, defaults};
use cwl_indexer::pipeline::Delivery;
use cwl_indexer::{CloudWatchLogsEvent, Indexer};
use serde_json::{Value, json};

const BOUND: Duration = Duration::from_secs(300);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The node's write thread pool, summed over its nodes: (rejected, completed).
async fn write_pool() -> (u64, u64) {
    let stats = node::call(reqwest::Method::GET, "_nodes/stats/thread_pool", None).await;
    stats["nodes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| &n["thread_pool"]["write"])
        .fold((0, 0), |(r, c), w| {
            (
                r + w["rejected"].as_u64().unwrap_or(0),
                c + w["completed"].as_u64().unwrap_or(0),
            )
        })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "make load: needs a node started with OPENSEARCH_SETTINGS=\"thread_pool.write.size=1 thread_pool.write.queue_size=2\""]
async fn concurrent_invocations_against_a_throttling_node_lose_and_duplicate_nothing() {
    let started = Instant::now();
    let invocations: usize = env_or("LOAD_INVOCATIONS", 32);
    let deadline_s: u64 = env_or("LOAD_DEADLINE_S", 30);

    // The node must be the throttling one, or the run proves nothing.
    let settings = node::call(reqwest::Method::GET, "_nodes/settings?flat_settings=true", None).await;
    let queue: BTreeSet<String> = settings["nodes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| {
            n["settings"]["thread_pool.write.queue_size"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        queue,
        BTreeSet::from(["2".to_owned()]),
        "start the node with OPENSEARCH_SETTINGS=\"thread_pool.write.size=1 thread_pool.write.queue_size=2\" (make load does)"
    );

    // Distinct realistic batches: E2E_BATCHES of them, each with its own eventIDs.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load-payloads");
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-payloads.py"))
        .arg(&dir)
        .env("E2E_BATCHES", invocations.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let payloads: Vec<String> = (0..invocations)
        .map(|b| std::fs::read_to_string(dir.join(format!("e2e/{b:02}.json"))).unwrap())
        .collect();

    let prefix = node::unique_prefix("load");
    let _cleanup = node::Cleanup(prefix.clone());
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut events = 0usize;
    for p in &payloads {
        let event: CloudWatchLogsEvent = serde_json::from_str(p).unwrap();
        for (index, id) in common::expected_ids(&prefix, &event).await {
            expected.entry(index).or_default().insert(id);
        }
    }
    let documents: usize = expected.values().map(BTreeSet::len).sum();

    // The function's own retry policy (MAX_ATTEMPTS 8, backoff 200 ms doubling to 5 s, full
    // jitter), and a deadline per invocation shorter than Lambda's 300 s so the run is bounded.
    let proxy = FaultProxy::start(&node::url());
    proxy.quiet(true);
    let mut config = node::config(&prefix, &proxy.url());
    config.sink.as_mut().unwrap().retry = RetryPolicy {
        base: Duration::from_millis(defaults::RETRY_BASE_MS),
        max_backoff: Duration::from_millis(defaults::RETRY_MAX_BACKOFF_MS),
        max_attempts: defaults::MAX_ATTEMPTS,
        deadline_margin: Duration::from_millis(defaults::DEADLINE_MARGIN_MS),
        request_timeout: Duration::from_millis(defaults::REQUEST_TIMEOUT_MS),
    };
    let pipeline = node::Pipeline::new(config, None);
    let indexer: &Indexer = &pipeline.indexer;
    let opensearch = &pipeline.opensearch;
    // The templates are installed by the first writes, as a deployed function's first
    // invocations do: inside round 1's time.
    let (rejected_before, _) = write_pool().await;

    let run = |i: usize| {
        let payload = &payloads[i];
        async move {
            let t0 = Instant::now();
            let mut sink = opensearch;
            let deadline = Instant::now() + Duration::from_secs(deadline_s);
            let done = indexer.dispatch(payload, &mut sink, Some(deadline)).await.unwrap();
            (i, t0.elapsed(), done)
        }
    };

    // Round 1: every invocation at once.
    let t_round = Instant::now();
    let first = futures_util::future::join_all((0..invocations).map(run)).await;
    let round_secs = t_round.elapsed().as_secs_f64();
    let mut times: Vec<f64> = first.iter().map(|(_, t, _)| t.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let mut total = Delivery::default();
    let mut failed: Vec<usize> = Vec::new();
    for (i, _, done) in &first {
        total += done.summary.delivery;
        events += done.summary.events_in;
        if let Err(e) = &done.result {
            eprintln!("load: invocation {i} failed (Lambda retries it): {e}");
            failed.push(*i);
        }
    }
    let failed_first = failed.len();
    let indexed_first = total.indexed;

    // Redeliveries, as Lambda's retries of a failed asynchronous invocation would, until all land.
    let mut redeliveries = 0;
    while !failed.is_empty() {
        assert!(started.elapsed() < BOUND, "not landed within {BOUND:?}: {failed:?}");
        redeliveries += failed.len();
        let again = futures_util::future::join_all(failed.iter().map(|&i| run(i))).await;
        failed.clear();
        for (i, _, done) in again {
            total += done.summary.delivery;
            if done.result.is_err() {
                failed.push(i);
            }
        }
    }
    let total_secs = t_round.elapsed().as_secs_f64();
    let (indexed, duplicates, retried, dead) = (total.indexed, total.duplicates, total.retried, total.dead_lettered);
    let (rejected_after, _) = write_pool().await;

    // Every event in its daily index exactly once: per index, the count is the expected one and
    // every expected _id is there (an `ids` query per slice), so nothing is missing or extra.
    node::refresh(&prefix).await;
    for (index, ids) in &expected {
        assert_eq!(node::count(index, "*").await, ids.len() as u64, "{index}");
        let ids: Vec<&String> = ids.iter().collect();
        for slice in ids.chunks(5000) {
            let found = node::call(
                reqwest::Method::POST,
                &format!("{index}/_count"),
                Some(json!({"query": {"ids": {"values": slice}}})),
            )
            .await;
            assert_eq!(found["count"].as_u64(), Some(slice.len() as u64), "{index}");
        }
    }
    assert_eq!(
        node::count(&format!("{prefix}-*"), "*").await,
        documents as u64,
        "nothing outside the expected indices"
    );
    assert_eq!(dead, 0, "nothing dead-lettered for a transient rejection");
    assert_eq!(node::count(&format!("{prefix}-deadletter-*"), "*").await, 0);
    // A request the node carried out after the client had given up on it (timed out at the
    // deadline) counts as neither: its documents answer 409 on the redelivery instead.
    assert!(
        indexed <= documents && indexed + duplicates >= documents,
        "{indexed} indexed, {duplicates} already present, {documents} documents"
    );

    // Retries per item, from what the proxy saw: sends of each _id beyond the first, across
    // redeliveries (a redelivered invocation sends its whole batch again; the landed part 409s).
    let mut sends: BTreeMap<String, u32> = BTreeMap::new();
    let mut bulk_requests = 0;
    for seen in proxy.requests().iter().filter(|r| r.path.contains("_bulk")) {
        bulk_requests += 1;
        for id in &seen.ids {
            *sends.entry(id.clone()).or_default() += 1;
        }
    }
    let mut per_item: Vec<f64> = sends.values().map(|&n| f64::from(n - 1)).collect();
    per_item.sort_by(f64::total_cmp);
    let node_rejected = rejected_after - rejected_before;
    assert!(
        node_rejected > 0 && retried > 0,
        "the node itself rejected: {node_rejected} tasks, {retried} item retries"
    );
    let figures: Value = json!({
        "invocations": invocations,
        "events": events,
        "documents": documents,
        "deadline_s_per_invocation": deadline_s,
        "round_1_seconds": round_secs,
        "indexed_round_1": indexed_first,
        "indexed_per_second_round_1": (indexed_first as f64 / round_secs).round(),
        "seconds_until_all_landed": total_secs,
        "events_per_second_until_all_landed": (events as f64 / total_secs).round(),
        "invocations_failed_round_1": failed_first,
        "redeliveries": redeliveries,
        "bulk_requests": bulk_requests,
        "item_retries": retried,
        "already_present_on_redelivery": duplicates,
        "retries_per_item_median": percentile(&per_item, 50.0),
        "retries_per_item_p99": percentile(&per_item, 99.0),
        "retries_per_item_max": per_item.last().copied().unwrap_or(0.0),
        "items_retried_at_least_once": per_item.iter().filter(|&&n| n > 0.0).count(),
        "invocation_seconds_median": percentile(&times, 50.0),
        "invocation_seconds_p99": percentile(&times, 99.0),
        "node_thread_pool_write_rejected": node_rejected,
        "dead_lettered": dead,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    println!("load: {}", serde_json::to_string_pretty(&figures).unwrap());
}
