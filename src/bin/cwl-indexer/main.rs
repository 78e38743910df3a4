//! `cwl-indexer`: the command line over the same library code the Lambda function runs,
//! wired by the same [`cwl_indexer::wire`]. `replay` drives Lambda event files through the
//! function's dispatch, `report` reads back what landed, `decode` shows an envelope,
//! `backfill` indexes CloudTrail's S3 files, `setup` and `redrive` tend the cluster, `rules`
//! lists, tests and checks the Sigma rules.

mod backfill;
mod replay;
mod report;
mod rules;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Parser, Subcommand};
use cwl_indexer::config::AuthConfig;
use cwl_indexer::deliver::OpenSearch;
use cwl_indexer::{Aws, Config, Indexer, Wired};

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
        /// Lambda event files: CloudWatch Logs ({"awslogs":{"data":"..."}}), Kinesis, SQS,
        /// SNS or S3 notification events (S3 needs S3_ENDPOINT_URL or AWS credentials).
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
    /// with the same documents and _ids as the function; resumable through --state. Or, with
    /// --batch-operations, write their manifest and create an S3 Batch Operations job for them.
    Backfill(backfill::BackfillArgs),
    /// Print the decoded CloudWatch Logs envelope of a Lambda event file.
    Decode {
        /// A Lambda event file.
        event: PathBuf,
    },
    /// The Sigma detection rules: bundled, plus SIGMA_RULES, minus DISABLED_RULES.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Every rule: id, level, whether it is enabled, source, title, author, link.
    List,
    /// Which record matched which rule: Lambda event files (through the function's dispatch)
    /// or NDJSON CloudTrail records (one invocation per file).
    Test {
        /// Lambda event files or NDJSON record files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate user rules (a .yml file or a directory): fails with the file, line and reason
    /// of a rule that cannot compile (unknown modifier, bad condition, bad regex).
    Check {
        /// A .yml file or a directory of them.
        path: PathBuf,
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
        } => rt.block_on(async {
            let files = events
                .iter()
                .map(|p| replay::EventFile::read(p))
                .collect::<Result<Vec<_>>>()?;
            let reads_s3 = files.iter().any(replay::EventFile::reads_s3);
            let mut config = config;
            if dry_run {
                // A dry run sends nothing anywhere: no alerts either.
                config.signals.alert_topic_arn = None;
            }
            let (indexer, opensearch) = wire(config, reads_s3).await?;
            match (dry_run, summary) {
                (true, true) => replay::summary(&indexer, &files).await,
                (true, false) => replay::ndjson(&indexer, &files).await,
                (false, _) => {
                    let mut sink = cluster(opensearch.as_ref())?;
                    replay::replay(&indexer, &files, &mut sink, replay::Output::Cluster)
                        .await
                        .map(|_| ())
                }
            }
        }),
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
            let prefix = config.index_prefix.clone();
            let (_, opensearch) = wire(config, false).await?;
            let report = cwl_indexer::deliver::cluster::run(
                cluster(opensearch.as_ref())?,
                &prefix,
                &setup,
                Duration::from_secs(30),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }),
        Command::Redrive { dry_run } => rt.block_on(async {
            let mut config = config;
            // The original delivery published the alert for these events already.
            config.signals.alert_topic_arn = None;
            let (indexer, opensearch) = wire(config, false).await?;
            let report = cwl_indexer::ops::redrive(
                cluster(opensearch.as_ref())?,
                &indexer,
                dry_run,
                Duration::from_secs(30),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }),
        Command::Report { top } => rt.block_on(async {
            let prefix = config.index_prefix.clone();
            let (_, opensearch) = wire(config, false).await?;
            report::report(cluster(opensearch.as_ref())?, &prefix, top).await
        }),
        Command::Decode { event } => replay::decode(&config, &event),
        Command::Backfill(args) if args.batch_operations => rt.block_on(async {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
            let region = sdk
                .region()
                .map(ToString::to_string)
                .ok_or_else(|| anyhow!("--batch-operations needs a region (AWS_REGION or a profile's): the job's"))?;
            let store = cwl_indexer::ingest::TrailStore::from_sdk_config(&sdk, config.s3_endpoint.as_ref());
            let jobs = cwl_indexer::ops::BatchJobs::from_sdk_config(&sdk, args.s3_control_endpoint());
            backfill::batch_operations(args, &store, &jobs, &region).await
        }),
        Command::Rules { command } => match command {
            RulesCommand::List => rules::list(&rules::load(&config)?),
            RulesCommand::Check { path } => rules::check_rules(&path),
            RulesCommand::Test { files } => rt.block_on(async {
                let mut config = config;
                // Testing rules sends nothing anywhere: no cluster, no alerts.
                config.sink = None;
                config.signals.alert_topic_arn = None;
                config.signals.detections = true;
                let (indexer, _) = wire(config, false).await?;
                rules::test(&indexer, &files).await
            }),
        },
        Command::Backfill(args) => rt.block_on(async {
            let mut config = config;
            if args.dry_run {
                config.sink = None;
                config.signals.alert_topic_arn = None;
            }
            let (indexer, opensearch) = wire(config, true).await?;
            backfill::run(args, &indexer, opensearch.as_ref()).await
        }),
    }
}

/// The indexer and the cluster client, wired as the function wires them, with AWS
/// credentials from aws-config's full chain (environment, profiles, SSO, container and
/// instance roles), which a laptop needs and Lambda does not. The chain is only asked when
/// something needs it: SigV4 to the cluster, SNS alerts, or S3 (`reads_s3`).
async fn wire(config: Config, reads_s3: bool) -> Result<(Indexer, Option<OpenSearch>)> {
    let sigv4 = matches!(config.sink.as_ref().map(|s| &s.auth), Some(AuthConfig::SigV4 { .. }));
    let aws = if sigv4 || reads_s3 || config.signals.alert_topic_arn.is_some() {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        Aws {
            region: sdk.region().map(ToString::to_string),
            credentials: sdk.credentials_provider(),
        }
    } else {
        Aws::default()
    };
    let Wired { indexer, opensearch } = cwl_indexer::wire(config, &aws)?;
    Ok((indexer, opensearch))
}

/// The cluster client, or the error that says how to name one.
fn cluster(opensearch: Option<&OpenSearch>) -> Result<&OpenSearch> {
    opensearch.ok_or_else(|| anyhow!("no cluster: pass --endpoint URL (or set OPENSEARCH_ENDPOINT), or use --dry-run"))
}
