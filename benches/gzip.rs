//! The body gzip, backend against backend: the `_bulk` bodies the as-deployed transform writes
//! for each workload, compressed by what ships (flate2 on zlib-rs, level 1), miniz_oxide,
//! zlib-rs direct and libdeflate, timed in one criterion run, with the bytes on the wire.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwl_indexer::config::SignalsConfig;
use cwl_indexer::index::BulkChunk;
use cwl_indexer::pipeline::{Batch, Delivery};
use cwl_indexer::signals::Enrichment;
use cwl_indexer::{CloudWatchLogsEvent, Config, Indexer, Sink};

/// The workloads scripts/bench-payloads.py writes: one 1 MB CloudWatch batch each.
const WORKLOADS: [&str; 3] = ["realistic", "small", "large"];

/// A compressor: its name and what it does to one body.
type Backend = (&'static str, fn(&[u8]) -> Vec<u8>);

/// Every backend measured, the shipped one first.
const BACKENDS: [Backend; 5] = [
    ("shipped", cwl_indexer::deliver::gzip),
    ("miniz_oxide-1", miniz),
    ("zlib-rs-1", zlib_rs_1),
    ("libdeflate-1", |b| libdeflate(b, 1)),
    ("libdeflate-2", |b| libdeflate(b, 2)),
];

/// miniz_oxide at level 1 in a gzip wrapper, as flate2's default backend writes it (what
/// the function shipped with before zlib-rs): header, raw deflate, CRC-32 and length.
fn miniz(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 6);
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=4 (fastest) OS=255 (unknown), as flate2 writes it.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(body, 1));
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    // ISIZE is the length modulo 2^32 by the format's definition.
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out
}

/// zlib-rs (the engine behind flate2's `zlib-rs` feature), level 1, gzip wrapper, one call.
fn zlib_rs_1(body: &[u8]) -> Vec<u8> {
    let config = zlib_rs::DeflateConfig {
        level: 1,
        // 15 bits of window, +16 for the gzip wrapper (zlib's convention).
        window_bits: 31,
        ..zlib_rs::DeflateConfig::default()
    };
    // The zlib bound plus the gzip header and trailer's extra 12 bytes.
    let mut out = vec![0u8; zlib_rs::compress_bound(body.len()) + 32];
    let (written, code) = zlib_rs::compress_slice(&mut out, body, config);
    assert_eq!(code, zlib_rs::ReturnCode::Ok, "zlib-rs compresses the body");
    let n = written.len();
    out.truncate(n);
    out
}

/// libdeflate through libdeflater: whole-buffer compression at `level`.
fn libdeflate(body: &[u8], level: i32) -> Vec<u8> {
    let lvl = libdeflater::CompressionLvl::new(level).expect("a valid level");
    let mut compressor = libdeflater::Compressor::new(lvl);
    let mut out = vec![0u8; compressor.gzip_compress_bound(body.len())];
    let n = compressor.gzip_compress(body, &mut out).expect("the bound is enough");
    out.truncate(n);
    out
}

/// Keeps each body the transform hands the sink.
#[derive(Default)]
struct Capture(Vec<Vec<u8>>);

impl Sink for Capture {
    type Error = std::convert::Infallible;

    async fn send(&mut self, chunk: &BulkChunk, _: &Batch<'_>, _: &mut Delivery) -> Result<(), Self::Error> {
        self.0.push(chunk.body().to_vec());
        Ok(())
    }
}

/// The bodies of one workload as deployed: GeoIP and the bundled Sigma rules on.
fn bodies(rt: &tokio::runtime::Runtime, indexer: &Indexer, name: &str) -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("BENCH_PAYLOADS").map_or_else(|| root.join("target/bench/payloads"), PathBuf::from);
    if !dir.join("manifest.json").exists() {
        let status = std::process::Command::new("python3")
            .arg(root.join("scripts/bench-payloads.py"))
            .arg(&dir)
            .status()
            .expect("python3 runs scripts/bench-payloads.py");
        assert!(status.success(), "scripts/bench-payloads.py failed");
    }
    let bytes = std::fs::read(dir.join(format!("{name}.json"))).expect("workload file");
    let event: CloudWatchLogsEvent = serde_json::from_slice(&bytes).expect("a Lambda event");
    let mut sink = Capture::default();
    let (summary, result) = rt.block_on(indexer.process(&event, &mut sink, None));
    assert!(result.is_ok() && summary.failed == 0, "the workload transforms cleanly");
    sink.0
}

fn deployed() -> Indexer {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = Config {
        signals: SignalsConfig {
            geoip_db: Some(root.join("fixtures/geo/city-subset.mmdb")),
            geoip_asn_db: Some(root.join("fixtures/geo/asn-subset.mmdb")),
            allowed_countries: vec!["US".into(), "IL".into()],
            ..SignalsConfig::default()
        },
        ..Config::default()
    };
    let enrichment = Enrichment::load(&config.signals).expect("fixture databases and rules load");
    Indexer::new(config).with_enrichment(enrichment)
}

/// Gunzips `gz` (flate2 reads every backend's output) to check a backend round-trips.
fn gunzip(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let indexer = deployed();
    // `BENCH_COUNT=<workload>/<backend>:<n>`: only that pair, n times (for callgrind).
    let only = std::env::var("BENCH_COUNT").ok();
    let mut sizes = serde_json::Map::new();
    for name in WORKLOADS {
        let bodies = bodies(&rt, &indexer, name);
        let raw: usize = bodies.iter().map(Vec::len).sum();
        for (backend, compress) in BACKENDS {
            if let Some(spec) = &only {
                if let Some((target, n)) = spec.rsplit_once(':')
                    && target == format!("{name}/{backend}")
                {
                    for _ in 0..n.parse().unwrap_or(1) {
                        for body in &bodies {
                            black_box(compress(body));
                        }
                    }
                }
                continue;
            }
            let wire: usize = bodies
                .iter()
                .map(|b| {
                    let gz = compress(b);
                    assert!(gunzip(&gz) == *b, "{backend} round-trips the {name} body");
                    gz.len()
                })
                .sum();
            eprintln!(
                "gzip-bytes {name} {backend}: {raw} -> {wire} bytes ({:.2}x)",
                raw as f64 / wire as f64
            );
            sizes.insert(
                format!("{name}/{backend}"),
                serde_json::json!({"body_bytes": raw, "wire_bytes": wire}),
            );
        }
        if only.is_some() {
            continue;
        }
        let mut g = c.benchmark_group(format!("gzip-{name}"));
        g.throughput(Throughput::Bytes(raw as u64));
        for (backend, compress) in BACKENDS {
            g.bench_function(backend, |b| {
                b.iter(|| {
                    for body in &bodies {
                        black_box(compress(black_box(body)));
                    }
                })
            });
        }
        g.finish();
    }
    if only.is_none() {
        // For scripts/bench-report.py: the bytes each backend put on the wire.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/bench/gzip-sizes.json");
        std::fs::create_dir_all(root.join("target/bench")).expect("target/bench");
        std::fs::write(&out, serde_json::Value::Object(sizes).to_string()).expect("gzip-sizes.json");
    }
}

fn config() -> Criterion {
    let c = Criterion::default();
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

criterion_group! {
    name = gzip;
    config = config();
    targets = benches
}
criterion_main!(gzip);
