//! `cwl-indexer`: the command line over the same library code the Lambda function runs.
//! `replay` drives Lambda event files through the handler; `decode` shows an envelope.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use cwl_indexer::bulk::BulkChunk;
use cwl_indexer::envelope::{self, Envelope};
use cwl_indexer::handler::{CloudWatchLogsEvent, Indexer, Sink, WriterSink};
use cwl_indexer::{Config, Summary};

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
}

impl ConfigArgs {
    fn load(&self) -> Result<Config> {
        let flags = [
            ("INDEX_PREFIX", &self.index_prefix),
            ("RAW_MESSAGE", &self.raw_message),
            ("BULK_MAX_BYTES", &self.bulk_max_bytes),
            ("MAX_PAYLOAD_BYTES", &self.max_payload_bytes),
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
    /// Run Lambda event files (the files `sam local invoke -e` takes) through the handler.
    Replay {
        /// Build the bulk bodies and print them instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print what would be indexed per index instead of the NDJSON.
        #[arg(long, requires = "dry_run")]
        summary: bool,
        /// Lambda event files: {"awslogs":{"data":"..."}}.
        #[arg(required = true)]
        events: Vec<PathBuf>,
    },
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
            if !dry_run {
                bail!("replay needs --dry-run: sending to OpenSearch is not built yet");
            }
            let indexer = Indexer::new(config);
            if summary {
                rt.block_on(replay_summary(&indexer, &events))
            } else {
                rt.block_on(replay_ndjson(&indexer, &events))
            }
        }
        Command::Decode { event } => decode(&config, &event),
    }
}

fn read_event(path: &Path) -> Result<CloudWatchLogsEvent> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a CloudWatch Logs Lambda event", path.display()))
}

async fn replay_ndjson(indexer: &Indexer, paths: &[PathBuf]) -> Result<()> {
    let mut sink = WriterSink(BufWriter::new(std::io::stdout().lock()));
    for path in paths {
        let event = read_event(path)?;
        let summary = indexer
            .process(&event, &mut sink)
            .await
            .with_context(|| format!("{}", path.display()))?;
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

    async fn send(&mut self, chunk: &BulkChunk, _envelope: &Envelope<'_>) -> Result<(), Self::Error> {
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
        let s = indexer
            .process(&event, &mut sink)
            .await
            .with_context(|| format!("{}", path.display()))?;
        log_summary(path, &s);
        total.events_in += s.events_in;
        total.cloudtrail += s.cloudtrail;
        total.other_json += s.other_json;
        total.text += s.text;
        total.invalid += s.invalid;
        total.chunks += s.chunks;
        total.bulk_bytes += s.bulk_bytes;
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
        total.bulk_bytes
    )?;
    Ok(())
}

fn log_summary(path: &Path, s: &Summary) {
    tracing::info!(
        file = %path.display(),
        message_type = s.message_type,
        events_in = s.events_in,
        cloudtrail = s.cloudtrail,
        other_json = s.other_json,
        text = s.text,
        invalid = s.invalid,
        chunks = s.chunks,
        bulk_bytes = s.bulk_bytes,
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
