//! `cwl-indexer`: the command line over the same library code the Lambda function runs.
//! `replay` drives Lambda event files through the handler, `report` reads back what landed,
//! `decode` shows an envelope, `backfill` indexes CloudTrail's S3 files.

#[path = "cwl-indexer/backfill.rs"]
mod backfill;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use cwl_indexer::alerts::Alerts;
use cwl_indexer::auth::Auth;
use cwl_indexer::bulk::BulkChunk;
use cwl_indexer::config::AuthConfig;
use cwl_indexer::enrich::Enrichment;
use cwl_indexer::envelope;
use cwl_indexer::handler::{Batch, CloudWatchLogsEvent, Delivery, Indexer, Sink, WriterSink};
use cwl_indexer::sink::OpenSearch;
use cwl_indexer::{Config, Summary};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(version, about = "Index CloudTrail from CloudWatch Logs into OpenSearch")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Log format on stderr: `text` or `json`.
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

/// Flags that override the environment variables of the same meaning (see the README's
/// configuration table). Unset flags fall back to the environment, then to the defaults.
#[derive(Args)]
struct ConfigArgs {
    /// Index name prefix [env: INDEX_PREFIX] [default: cwl].
    #[arg(long, global = true)]
    index_prefix: Option<String>,
    /// Keep the raw message: `auto` or `always` [env: RAW_MESSAGE] [default: auto].
    #[arg(long, global = true)]
    raw_message: Option<String>,
    /// Largest bulk body in bytes [env: BULK_MAX_BYTES] [default: 5MiB].
    #[arg(long, global = true)]
    bulk_max_bytes: Option<String>,
    /// Largest decompressed payload [env: MAX_PAYLOAD_BYTES] [default: 16MiB].
    #[arg(long, global = true)]
    max_payload_bytes: Option<String>,
    /// Cluster URL, https:// or http:// on loopback [env: OPENSEARCH_ENDPOINT].
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// `sigv4` (AWS credentials from profiles, SSO, env...), `basic` or `none` [env: AUTH] [default: sigv4].
    #[arg(long, global = true)]
    auth: Option<String>,
    /// SigV4 region [env: OPENSEARCH_REGION, then AWS_REGION].
    #[arg(long, global = true)]
    region: Option<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config> {
        let flags = [
            ("INDEX_PREFIX", &self.index_prefix),
            ("RAW_MESSAGE", &self.raw_message),
            ("BULK_MAX_BYTES", &self.bulk_max_bytes),
            ("MAX_PAYLOAD_BYTES", &self.max_payload_bytes),
            ("OPENSEARCH_ENDPOINT", &self.endpoint),
            ("AUTH", &self.auth),
            ("OPENSEARCH_REGION", &self.region),
        ];
        Ok(Config::from_lookup(|name| {
            flags
                .iter()
                .find(|(var, _)| *var == name)
                .and_then(|(_, flag)| (*flag).clone())
                .or_else(|| std::env::var(name).ok())
        })?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run Lambda event files (the files `sam local invoke -e` takes) through the handler:
    /// index them into --endpoint, or print the bulk bodies with --dry-run.
    Replay {
        /// Build the bulk bodies and print them instead of sending them.
        #[arg(long, conflicts_with = "endpoint")]
        dry_run: bool,
        /// With --dry-run: print what would be indexed per index instead of the NDJSON.
        #[arg(long, requires = "dry_run")]
        summary: bool,
        /// Lambda event files: {"awslogs":{"data":"..."}}.
        #[arg(required = true)]
        events: Vec<PathBuf>,
    },
    /// Install the index templates and the retention policy (ISM on OpenSearch, ILM on
    /// Elasticsearch) on --endpoint. Idempotent; the function does the same on its first write.
    Setup {
        /// Delete indices this many days after creation; 0 installs no policy [env: RETENTION_DAYS] [default: 90].
        #[arg(long)]
        retention_days: Option<u32>,
        /// Move indices to UltraWarm after this many days [env: WARM_AFTER_DAYS].
        #[arg(long)]
        warm_after_days: Option<u32>,
        /// Replicas per daily index [env: INDEX_REPLICAS] [default: the cluster's].
        #[arg(long)]
        index_replicas: Option<u32>,
        /// Also import the saved objects into OpenSearch Dashboards at this URL, e.g.
        /// https://DOMAIN/_dashboards [env: DASHBOARDS_URL].
        #[arg(long)]
        dashboards: Option<url::Url>,
    },
    /// Re-submit the dead letters of --endpoint through the handler, once their cause is
    /// fixed; each is deleted only after its document is read back from its index.
    Redrive {
        /// Only count the dead letters, by error type.
        #[arg(long)]
        dry_run: bool,
    },
    /// Read back from --endpoint what is indexed: documents per index, top eventNames and
    /// errorCodes, dead letters.
    Report {
        /// How many eventNames and errorCodes to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Index CloudTrail's own log files from S3 (s3://BUCKET/AWSLogs/ACCOUNT/CloudTrail/REGION/...)
    /// with the same documents and _ids as the function; resumable through --state.
    Backfill(backfill::BackfillArgs),
    /// Print the decoded CloudWatch Logs envelope of a Lambda event file.
    Decode {
        /// A Lambda event file.
        event: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain.
            eprintln!("cwl-indexer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: &str) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()));
    if format.eq_ignore_ascii_case("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> Result<()> {
    let config = cli.config.load()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Command::Replay {
            dry_run,
            summary,
            events,
        } => {
            if dry_run {
                let indexer = Indexer::new(config.clone()).with_enrichment(Enrichment::load(&config.signals)?);
                return if summary {
                    rt.block_on(replay_summary(&indexer, &events))
                } else {
                    rt.block_on(replay_ndjson(&indexer, &events))
                };
            }
            rt.block_on(async {
                let opensearch = connect(&config).await?;
                let indexer = indexer(config).await?;
                replay(indexer, &opensearch, &events).await
            })
        }
        Command::Setup {
            retention_days,
            warm_after_days,
            index_replicas,
            dashboards,
        } => rt.block_on(async {
            let mut config = config;
            let sink = config
                .sink
                .as_mut()
                .ok_or_else(|| anyhow!("no cluster: pass --endpoint URL (or set OPENSEARCH_ENDPOINT)"))?;
            let setup = &mut sink.setup;
            setup.retention_days = retention_days.unwrap_or(setup.retention_days);
            setup.warm_after_days = warm_after_days.or(setup.warm_after_days);
            setup.index_replicas = index_replicas.or(setup.index_replicas);
            setup.dashboards = dashboards.or(setup.dashboards.take());
            let setup = setup.clone();
            let opensearch = connect(&config).await?;
            let report =
                cwl_indexer::setup::run(&opensearch, &config.index_prefix, &setup, Duration::from_secs(30)).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }),
        Command::Redrive { dry_run } => rt.block_on(async {
            let opensearch = connect(&config).await?;
            let indexer = Indexer::new(config);
            let report = cwl_indexer::redrive::redrive(&opensearch, &indexer, dry_run, Duration::from_secs(30)).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }),
        Command::Report { top } => rt.block_on(async {
            let opensearch = connect(&config).await?;
            report(&opensearch, &config.index_prefix, top).await
        }),
        Command::Decode { event } => decode(&config, &event),
        Command::Backfill(args) => rt.block_on(async {
            let opensearch = if args.dry_run {
                None
            } else {
                Some(connect(&config).await?)
            };
            let indexer = indexer(config.clone()).await?;
            backfill::run(args, &config, indexer, opensearch.as_ref()).await
        }),
    }
}

/// The indexer the function would build: enrichment, rules, and SNS alerts when
/// `ALERT_TOPIC_ARN` is set (with aws-config's credentials).
async fn indexer(config: Config) -> Result<Indexer> {
    let enrichment = Enrichment::load(&config.signals)?;
    let alerts = match config.signals.alert_topic_arn.clone() {
        Some(topic) => {
            let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let region = aws
                .region()
                .map(ToString::to_string)
                .ok_or_else(|| anyhow!("ALERT_TOPIC_ARN needs AWS_REGION"))?;
            let credentials = aws
                .credentials_provider()
                .ok_or_else(|| anyhow!("ALERT_TOPIC_ARN needs AWS credentials"))?;
            let s = &config.signals;
            Some(Alerts::new(
                topic,
                region,
                credentials,
                s.sns_endpoint.as_ref(),
                s.alert_min_severity,
                s.dashboards_url.clone(),
            ))
        }
        None => None,
    };
    let mut indexer = Indexer::new(config).with_enrichment(enrichment);
    if let Some(alerts) = alerts {
        indexer = indexer.with_alerts(alerts);
    }
    Ok(indexer)
}

/// The cluster client, with SigV4 credentials from aws-config's full chain (environment,
/// profiles, SSO, container and instance roles), which a laptop needs and Lambda does not.
async fn connect(config: &Config) -> Result<OpenSearch> {
    let sink = config
        .sink
        .as_ref()
        .ok_or_else(|| anyhow!("no cluster: pass --endpoint URL (or set OPENSEARCH_ENDPOINT), or use --dry-run"))?;
    let credentials = match sink.auth {
        AuthConfig::SigV4 { .. } => aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await
            .credentials_provider(),
        _ => None,
    };
    let auth = Auth::new(&sink.auth, credentials)?;
    Ok(OpenSearch::new(sink, auth, config)?)
}

async fn replay(indexer: Indexer, opensearch: &OpenSearch, paths: &[PathBuf]) -> Result<()> {
    let mut sink = opensearch;
    let mut total = Summary::default();
    for path in paths {
        let event = read_event(path)?;
        let (s, result) = indexer.process(&event, &mut sink, None).await;
        log_summary(path, &s);
        total.absorb(&s);
        result.with_context(|| format!("{}", path.display()))?;
    }
    let d = &total.delivery;
    println!(
        "{} files, {} log events: {} indexed, {} already present, {} dead-lettered; {} requests, {} bytes sent ({} on the wire), {} item retries",
        paths.len(),
        total.events_in,
        d.indexed,
        d.duplicates,
        d.dead_lettered,
        d.requests,
        d.bulk_bytes,
        d.wire_bytes,
        d.retried
    );
    Ok(())
}

/// Documents per index, the top eventNames and errorCodes, and the dead letters, read back
/// with one refresh and one aggregation query.
async fn report(opensearch: &OpenSearch, prefix: &str, top: usize) -> Result<()> {
    let timeout = Duration::from_secs(30);
    let pattern = format!("{prefix}-*");
    let call = |method: Method, path: String, body: Option<Value>| async move {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let (status, answer) = opensearch.request(method, &path, bytes.as_deref(), timeout).await?;
        if !status.is_success() {
            bail!(
                "{path}: HTTP {status}: {}",
                cwl_indexer::response::describe_error(&answer)
            );
        }
        Ok(serde_json::from_slice::<Value>(&answer)?)
    };
    call(
        Method::POST,
        format!("{pattern}/_refresh?ignore_unavailable=true&allow_no_indices=true"),
        None,
    )
    .await?;
    let query = json!({
        "size": 0,
        "track_total_hits": true,
        "aggs": {
            "indices": {"terms": {"field": "_index", "size": 10000, "order": {"_key": "asc"}}},
            "eventName": {"terms": {"field": "eventName", "size": top}},
            "errorCode": {"terms": {"field": "errorCode", "size": top}}
        }
    });
    let answer = call(
        Method::POST,
        format!("{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
        Some(query),
    )
    .await?;
    let buckets = |name: &str| {
        answer["aggregations"][name]["buckets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let mut out = std::io::stdout().lock();
    let dead_prefix = format!("{}-", cwl_indexer::template::deadletter_prefix(prefix));
    let (mut docs, mut dead) = (0, 0);
    writeln!(out, "{:<36} {:>10}", "index", "documents")?;
    for b in buckets("indices") {
        let (index, count) = (b["key"].as_str().unwrap_or(""), b["doc_count"].as_u64().unwrap_or(0));
        if index.starts_with(&dead_prefix) {
            dead += count;
        } else {
            docs += count;
        }
        writeln!(out, "{index:<36} {count:>10}")?;
    }
    writeln!(out, "{docs} documents, {dead} dead letters\n")?;
    for name in ["eventName", "errorCode"] {
        writeln!(out, "top {name}")?;
        for b in buckets(name) {
            writeln!(out, "  {:<44} {:>8}", b["key"].as_str().unwrap_or(""), b["doc_count"])?;
        }
    }
    Ok(())
}

fn read_event(path: &Path) -> Result<CloudWatchLogsEvent> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a CloudWatch Logs Lambda event", path.display()))
}

async fn replay_ndjson(indexer: &Indexer, paths: &[PathBuf]) -> Result<()> {
    let mut sink = WriterSink(BufWriter::new(std::io::stdout().lock()));
    for path in paths {
        let event = read_event(path)?;
        let (summary, result) = indexer.process(&event, &mut sink, None).await;
        result.with_context(|| format!("{}", path.display()))?;
        log_summary(path, &summary);
    }
    sink.0.flush()?;
    Ok(())
}

/// Counts documents and bytes per index, reading each item's action line back.
#[derive(Default)]
struct CountingSink {
    per_index: BTreeMap<String, (usize, usize)>,
}

impl Sink for CountingSink {
    type Error = serde_json::Error;

    async fn send(
        &mut self,
        chunk: &BulkChunk,
        _batch: &Batch<'_>,
        _delivery: &mut Delivery,
    ) -> Result<(), Self::Error> {
        for item in chunk.items() {
            let entry = self.per_index.entry(chunk.target(item)?.index).or_default();
            entry.0 += 1;
            entry.1 += item.range.len();
        }
        Ok(())
    }
}

async fn replay_summary(indexer: &Indexer, paths: &[PathBuf]) -> Result<()> {
    let mut sink = CountingSink::default();
    let mut total = Summary::default();
    for path in paths {
        let event = read_event(path)?;
        let (s, result) = indexer.process(&event, &mut sink, None).await;
        result.with_context(|| format!("{}", path.display()))?;
        log_summary(path, &s);
        total.absorb(&s);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<32} {:>10} {:>12}", "index", "documents", "bulk bytes")?;
    for (index, (docs, bytes)) in &sink.per_index {
        writeln!(out, "{index:<32} {docs:>10} {bytes:>12}")?;
    }
    writeln!(
        out,
        "{} files, {} log events: {} CloudTrail, {} other JSON, {} text, {} unparseable; {} bulk bodies, {} bytes",
        paths.len(),
        total.events_in,
        total.cloudtrail,
        total.other_json,
        total.text,
        total.invalid,
        total.chunks,
        total.built_bytes
    )?;
    Ok(())
}

fn log_summary(path: &Path, s: &Summary) {
    tracing::info!(
        file = %path.display(),
        message_type = s.message_type,
        events_in = s.events_in,
        indexed = s.delivery.indexed,
        already_present = s.delivery.duplicates,
        dead_lettered = s.delivery.dead_lettered,
        failed = s.failed,
        chunks = s.chunks,
        built_bytes = s.built_bytes,
        millis = s.millis,
        "replayed"
    );
}

fn decode(config: &Config, path: &Path) -> Result<()> {
    let event = read_event(path)?;
    let mut payload = Vec::new();
    envelope::decode_payload(&event.awslogs.data, config.max_payload_bytes, &mut payload)
        .with_context(|| format!("{}", path.display()))?;
    envelope::parse_envelope(&payload).with_context(|| format!("{}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&payload)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    Ok(())
}
