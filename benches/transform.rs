//! Transform throughput: one CloudWatch Logs batch through decode, gunzip, parse, map and
//! bulk encoding, per core, against the floor of gunzip + parsing every message into
//! `IgnoredAny`. `make bench` (scripts/bench-transform.sh) turns the samples into ratios.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwl_indexer::config::SignalsConfig;
use cwl_indexer::index::BulkChunk;
use cwl_indexer::ingest as envelope;
use cwl_indexer::pipeline::{Batch, Delivery};
use cwl_indexer::signals::Enrichment;
use cwl_indexer::{CloudWatchLogsEvent, Indexer, Sink};
use cwl_indexer::{Config, deliver as sink};
use serde::de::IgnoredAny;

/// The workloads scripts/bench-payloads.py writes: one 1 MB CloudWatch batch each.
const WORKLOADS: [&str; 3] = ["realistic", "small", "large"];

/// Counts body bytes and, if `gzip`, compresses each body as the OpenSearch sink does.
struct BenchSink {
    gzip: bool,
    body: usize,
    wire: usize,
}

impl Sink for BenchSink {
    type Error = std::convert::Infallible;

    async fn send(&mut self, chunk: &BulkChunk, _: &Batch<'_>, _: &mut Delivery) -> Result<(), Self::Error> {
        self.body += chunk.body().len();
        self.wire += if self.gzip {
            black_box(sink::gzip(chunk.body())).len()
        } else {
            black_box(chunk.body()).len()
        };
        Ok(())
    }
}

fn payload_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("BENCH_PAYLOADS").map_or_else(|| root.join("target/bench/payloads"), PathBuf::from);
    if !dir.join("manifest.json").exists() {
        // A fresh clone: build the workloads from the committed fixtures.
        let status = std::process::Command::new("python3")
            .arg(root.join("scripts/bench-payloads.py"))
            .arg(&dir)
            .status()
            .expect("python3 runs scripts/bench-payloads.py");
        assert!(status.success(), "scripts/bench-payloads.py failed");
    }
    dir
}

fn load(dir: &std::path::Path, name: &str) -> CloudWatchLogsEvent {
    let bytes = std::fs::read(dir.join(format!("{name}.json"))).expect("workload file");
    serde_json::from_slice(&bytes).expect("a Lambda event")
}

/// The indexer as deployed with security signals: GeoIP (the fixture databases) and the
/// bundled Sigma rules with the country allow-list, minus the default `DISABLED_RULES`
/// (`every_rule`: none disabled, SigmaHQ's AssumeRole Misuse included).
fn with_signals(every_rule: bool) -> Indexer {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut signals = SignalsConfig {
        geoip_db: Some(root.join("fixtures/geo/city-subset.mmdb")),
        geoip_asn_db: Some(root.join("fixtures/geo/asn-subset.mmdb")),
        allowed_countries: vec!["US".into(), "IL".into()],
        ..SignalsConfig::default()
    };
    if every_rule {
        signals.disabled_rules.clear();
    }
    let config = Config {
        signals,
        ..Config::default()
    };
    let enrichment = Enrichment::load(&config.signals).expect("fixture databases and rules load");
    eprintln!("signals on: {} rules", enrichment.rules.len());
    Indexer::new(config).with_enrichment(enrichment)
}

fn without_signals() -> Indexer {
    let mut config = Config::default();
    config.signals.detections = false;
    Indexer::new(config)
}

/// Runs one event through `indexer` into a [`BenchSink`]; returns (body, wire) bytes.
fn transform(
    rt: &tokio::runtime::Runtime,
    indexer: &Indexer,
    event: &CloudWatchLogsEvent,
    gzip: bool,
) -> (usize, usize) {
    let mut sink = BenchSink { gzip, body: 0, wire: 0 };
    let (summary, result) = rt.block_on(indexer.process(event, &mut sink, None));
    assert!(result.is_ok() && summary.failed == 0, "the workload transforms cleanly");
    (sink.body, sink.wire)
}

/// The floor: base64 + gunzip through the same cap, the envelope, every message into `IgnoredAny`.
fn floor(event: &CloudWatchLogsEvent, buf: &mut Vec<u8>) -> usize {
    envelope::decode_payload(&event.awslogs.data, Config::default().max_payload_bytes, buf).expect("decodes");
    let env = envelope::parse_envelope(buf).expect("an envelope");
    for e in &env.log_events {
        let _: IgnoredAny = serde_json::from_str(&e.message).expect("JSON messages");
    }
    env.log_events.len()
}

/// `BENCH_COUNT=<workload>/<bench>:<n>`: run only that bench, `n` times, for `perf stat`.
fn count_only(workload: &str) -> Option<(String, usize)> {
    let spec = std::env::var("BENCH_COUNT").ok()?;
    let (target, n) = spec.rsplit_once(':')?;
    let (w, bench) = target.split_once('/')?;
    (w == workload).then(|| (bench.to_owned(), n.parse().unwrap_or(0)))
}

fn config(c: Criterion) -> Criterion {
    if std::env::var_os("BENCH_QUICK").is_some() {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
    }
}

fn benches(c: &mut Criterion) {
    let dir = payload_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let (off, on, all) = (without_signals(), with_signals(false), with_signals(true));
    let mut sizes = serde_json::Map::new();
    for name in WORKLOADS {
        let event = load(&dir, name);
        let mut buf = Vec::new();
        let events = floor(&event, &mut buf);
        let decompressed = buf.len();
        let (body, wire) = transform(&rt, &on, &event, true);
        sizes.insert(
            name.into(),
            serde_json::json!({"events": events, "decompressed_bytes": decompressed,
                "compressed_bytes": event.awslogs.data.len() / 4 * 3, "body_bytes": body, "gzip_body_bytes": wire}),
        );
        if std::env::var_os("BENCH_COUNT").is_some() {
            let Some((bench, n)) = count_only(name) else { continue };
            // Instruction counting (scripts/bench-transform.sh, under `perf stat`): run one
            // bench a fixed number of times, without criterion's timing loop.
            for _ in 0..n {
                match bench.as_str() {
                    "floor" => {
                        black_box(floor(&event, &mut buf));
                    }
                    "transform-signals-off" => {
                        black_box(transform(&rt, &off, &event, false));
                    }
                    "transform-signals-on" => {
                        black_box(transform(&rt, &on, &event, false));
                    }
                    "transform-signals-on-gzip" => {
                        black_box(transform(&rt, &on, &event, true));
                    }
                    "transform-signals-all" => {
                        black_box(transform(&rt, &all, &event, false));
                    }
                    _ => {}
                }
            }
            continue;
        }
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(decompressed as u64));
        // Floor and transforms run back to back, so that each ratio comes from one stretch of
        // this noisy machine.
        g.bench_function("floor", |b| b.iter(|| floor(black_box(&event), &mut buf)));
        g.bench_function("gunzip", |b| {
            b.iter(|| {
                envelope::decode_payload(black_box(&event.awslogs.data), usize::MAX, &mut buf).expect("decodes");
            })
        });
        g.bench_function("transform-signals-off", |b| {
            b.iter(|| transform(&rt, &off, black_box(&event), false))
        });
        g.bench_function("transform-signals-on", |b| {
            b.iter(|| transform(&rt, &on, black_box(&event), false))
        });
        g.bench_function("transform-signals-on-gzip", |b| {
            b.iter(|| transform(&rt, &on, black_box(&event), true))
        });
        g.bench_function("transform-signals-all", |b| {
            b.iter(|| transform(&rt, &all, black_box(&event), false))
        });
        g.finish();
    }
    if std::env::var_os("BENCH_COUNT").is_some() {
        return;
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/transform-sizes.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&sizes).expect("JSON")).expect("writes the sizes");
}

criterion_group! {
    name = transform_benches;
    config = config(Criterion::default());
    targets = benches
}
criterion_main!(transform_benches);
