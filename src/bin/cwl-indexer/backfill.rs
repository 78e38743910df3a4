//! `backfill`: index CloudTrail's own S3 files (a trail bucket's history) with the same
//! documents and `_id`s the function writes, with bounded concurrency, a progress bar and a
//! resumable state file; or, with `--batch-operations`, have an S3 Batch Operations job do it.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use cwl_indexer::deliver::OpenSearch;
use cwl_indexer::indexer::{HandlerError, ObjectOutcome};
use cwl_indexer::ingest::{self, KeyKind, TrailStore};
use cwl_indexer::ops::{BatchJobs, JobSpec};
use cwl_indexer::pipeline::WriterSink;
use cwl_indexer::{Indexer, Sink, Summary};
use futures_util::StreamExt as _;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// When to draw the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// When stderr is a terminal (indicatif draws only on one).
    Auto,
    /// Never.
    Never,
}

/// The `backfill` command's arguments.
#[derive(Args, Debug)]
pub struct BackfillArgs {
    /// Where the files are: s3://BUCKET/PREFIX, e.g.
    /// s3://trail-bucket/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/ (several allowed).
    #[arg(required = true)]
    urls: Vec<String>,
    /// Only files delivered on or after this date (YYYY-MM-DD, from the key's path).
    #[arg(long)]
    since: Option<String>,
    /// Only files delivered on or before this date (YYYY-MM-DD, from the key's path).
    #[arg(long)]
    until: Option<String>,
    /// Files read and indexed at the same time.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// The state file: one finished s3:// URL per line, appended and synced as each file is
    /// done; a rerun skips them.
    #[arg(long, default_value = "cwl-indexer-backfill.state")]
    state: PathBuf,
    /// Read and count files, events and bytes without indexing (and without the state file).
    #[arg(long)]
    pub dry_run: bool,
    /// Draw the progress bar (files, events, bytes) on stderr.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Read nothing here: write the files' CSV manifest to --manifest-bucket and create an S3
    /// Batch Operations job that invokes the function once per file (--dry-run: the manifest only).
    #[arg(long, requires = "manifest_bucket")]
    pub batch_operations: bool,
    /// With --batch-operations: the stack's BatchOperationsBucketName (manifests under
    /// cwl-indexer/manifests/, completion reports under cwl-indexer/reports/).
    #[arg(long, requires = "batch_operations")]
    manifest_bucket: Option<String>,
    /// With --batch-operations: the role the job assumes (the stack's BatchOperationsRoleArn output).
    #[arg(long, requires = "batch_operations")]
    role_arn: Option<String>,
    /// With --batch-operations: the function the job invokes (the stack's function, its ARN).
    #[arg(long, requires = "batch_operations")]
    function_arn: Option<String>,
    /// With --batch-operations: the job's priority among the account's jobs (higher first).
    #[arg(long, default_value_t = 10, requires = "batch_operations")]
    priority: i32,
    /// With --batch-operations: send S3 Control requests to this URL as given (an
    /// S3-compatible or test server), instead of https://ACCOUNT.s3-control.REGION.amazonaws.com.
    #[arg(long, requires = "batch_operations")]
    s3_control_endpoint: Option<url::Url>,
}

impl BackfillArgs {
    /// `--s3-control-endpoint`, if given.
    pub fn s3_control_endpoint(&self) -> Option<&url::Url> {
        self.s3_control_endpoint.as_ref()
    }
}

/// One file to read.
struct Todo {
    bucket: String,
    key: String,
    size: u64,
}

/// The finished keys: read at start, appended (and synced) as files finish.
struct State {
    done: HashSet<String>,
    file: Option<File>,
}

impl State {
    fn open(path: &Path, write: bool) -> Result<Self> {
        let mut done = HashSet::new();
        match File::open(path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.with_context(|| format!("reading {}", path.display()))?;
                    // A line cut by a kill has no newline and is no URL we wrote whole;
                    // it matches nothing, so that file is simply read again.
                    if !line.is_empty() {
                        done.insert(line);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let file = if write {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            // A previous run killed mid-line: start on a fresh line.
            if f.metadata()?.len() > 0 && !ends_with_newline(path)? {
                f.write_all(b"\n")?;
            }
            Some(f)
        } else {
            None
        };
        Ok(Self { done, file })
    }

    fn finished(&mut self, url: &str) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.write_all(format!("{url}\n").as_bytes())?;
            // Synced before the file counts as done: a crash never records an unfinished file.
            f.sync_data()?;
        }
        Ok(())
    }
}

fn ends_with_newline(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn validate_date(flag: &str, date: Option<&String>) -> Result<()> {
    if let Some(d) = date {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| anyhow!("--{flag} {d:?}: expected YYYY-MM-DD: {e}"))?;
    }
    Ok(())
}

/// Runs the back-fill. `opensearch` is `None` for a dry run.
pub async fn run(args: BackfillArgs, indexer: &Indexer, opensearch: Option<&OpenSearch>) -> Result<()> {
    validate_date("since", args.since.as_ref())?;
    validate_date("until", args.until.as_ref())?;
    let store = indexer.trail_store().ok_or_else(|| {
        anyhow!(
            "backfill needs an S3 client: AWS credentials and a region (AWS_REGION or a profile's), or S3_ENDPOINT_URL"
        )
    })?;
    let mut state = State::open(&args.state, !args.dry_run)?;

    // List first: the bar needs a length, and the filters need only the keys.
    let listed = select(&args, store, &state.done).await?;
    let (todo, skipped_done, mut skipped_other, skipped_dates) = (
        listed.todo,
        listed.skipped_done,
        listed.skipped_other,
        listed.skipped_dates,
    );
    let bar = progress_bar(args.progress, todo.len());
    let total_bytes: u64 = todo.iter().map(|t| t.size).sum();
    bar.set_message(format!("0 events, 0 B of {}", HumanBytes(total_bytes)));
    let started = Instant::now();
    let (mut total, mut bytes, mut files, mut failures) = (Summary::default(), 0u64, 0usize, 0usize);
    let concurrency = usize::from(args.concurrency);
    let mut results = futures_util::stream::iter(todo)
        .map(|t| async move {
            let url = format!("s3://{}/{}", t.bucket, t.key);
            tracing::info!(url, "reading");
            let (summary, result) = match opensearch {
                Some(os) => {
                    let mut sink = os;
                    process(indexer, &t, &mut sink).await
                }
                None => process(indexer, &t, &mut WriterSink(std::io::sink())).await,
            };
            (url, t.size, summary, result)
        })
        .buffer_unordered(concurrency);
    while let Some((url, size, summary, result)) = results.next().await {
        total.absorb(&summary);
        match result {
            Ok(ObjectOutcome::Read { compressed }) => {
                bytes += compressed;
                files += 1;
                state.finished(&url)?;
                tracing::info!(
                    url,
                    events = summary.events_in,
                    indexed = summary.delivery.indexed,
                    "done"
                );
            }
            Ok(ObjectOutcome::Skipped(_)) => skipped_other += 1,
            Err(e) => {
                failures += 1;
                bytes += size;
                bar.suspend(|| tracing::error!(url, error = %e, "file failed: not recorded, a rerun retries it"));
            }
        }
        // Message first: one redraw per file, with counts that agree with the position.
        bar.set_message(format!(
            "{} events, {} of {}",
            total.events_in,
            HumanBytes(bytes),
            HumanBytes(total_bytes)
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let d = &total.delivery;
    println!(
        "{files} files read ({} compressed, {} decompressed) in {:.1} s, {} events: {} indexed, {} already present, {} dead-lettered{}; skipped: {skipped_done} already done, {skipped_dates} outside the dates, {skipped_other} not CloudTrail log files; {failures} failed",
        HumanBytes(bytes),
        HumanBytes(total.payload_bytes as u64),
        started.elapsed().as_secs_f64(),
        total.events_in,
        d.indexed,
        d.duplicates,
        d.dead_lettered,
        if args.dry_run { " (dry run: nothing sent)" } else { "" },
    );
    if failures > 0 {
        bail!("{failures} files failed (see the log); rerun the same command to retry them");
    }
    Ok(())
}

/// The files to read: the trail files under the URLs, within the dates, not yet done.
struct Listed {
    todo: Vec<Todo>,
    skipped_done: usize,
    skipped_other: usize,
    skipped_dates: usize,
}

async fn select(args: &BackfillArgs, store: &TrailStore, done: &HashSet<String>) -> Result<Listed> {
    let (mut todo, mut skipped_done, mut skipped_other, mut skipped_dates) = (Vec::new(), 0usize, 0usize, 0usize);
    for url in &args.urls {
        let (bucket, prefix) =
            ingest::parse_s3_url(url).ok_or_else(|| anyhow!("{url:?}: expected s3://BUCKET/PREFIX"))?;
        for object in store.list(bucket, prefix).await? {
            let date = match ingest::classify_key(&object.key) {
                KeyKind::Trail(t) => t.date,
                KeyKind::Digest | KeyKind::Other => {
                    tracing::info!(bucket, key = object.key, "not a CloudTrail log file: skipped");
                    skipped_other += 1;
                    continue;
                }
            };
            if args.since.as_ref().is_some_and(|s| date < *s) || args.until.as_ref().is_some_and(|u| date > *u) {
                skipped_dates += 1;
                continue;
            }
            if done.contains(&format!("s3://{bucket}/{}", object.key)) {
                skipped_done += 1;
                continue;
            }
            todo.push(Todo {
                bucket: bucket.to_owned(),
                key: object.key,
                size: object.size,
            });
        }
    }
    Ok(Listed {
        todo,
        skipped_done,
        skipped_other,
        skipped_dates,
    })
}

/// `backfill --batch-operations`: lists the files as the back-fill does, writes their CSV
/// manifest to the manifest bucket and, unless `--dry-run`, creates the job that has S3
/// Batch Operations invoke the function once per file.
pub async fn batch_operations(args: BackfillArgs, store: &TrailStore, jobs: &BatchJobs, region: &str) -> Result<()> {
    validate_date("since", args.since.as_ref())?;
    validate_date("until", args.until.as_ref())?;
    let manifest_bucket = args.manifest_bucket.as_deref().unwrap_or_default();
    let job = if args.dry_run {
        None
    } else {
        let (Some(role), Some(function)) = (args.role_arn.as_deref(), args.function_arn.as_deref()) else {
            bail!(
                "--batch-operations needs --role-arn (the stack's BatchOperationsRoleArn) and --function-arn, or --dry-run"
            );
        };
        let account = cwl_indexer::ops::account_of_arn(role)
            .ok_or_else(|| anyhow!("--role-arn {role:?}: expected arn:aws:iam::ACCOUNT:role/NAME"))?;
        Some((role, function, account))
    };
    let listed = select(&args, store, &HashSet::new()).await?;
    if listed.todo.is_empty() {
        bail!(
            "no CloudTrail log files under {} (within the dates): no manifest written",
            args.urls.join(" ")
        );
    }
    let csv: String = listed
        .todo
        .iter()
        .map(|t| cwl_indexer::ops::manifest_csv(&t.bucket, [t.key.as_str()]))
        .collect();
    let key = cwl_indexer::ops::manifest_key(&csv);
    let bytes: u64 = listed.todo.iter().map(|t| t.size).sum();
    let etag = store.put(manifest_bucket, &key, csv.into_bytes(), "text/csv").await?;
    println!(
        "manifest: s3://{manifest_bucket}/{key} ({} files, {} compressed; skipped: {} outside the dates, {} not CloudTrail log files)",
        listed.todo.len(),
        HumanBytes(bytes),
        listed.skipped_dates,
        listed.skipped_other
    );
    let Some((role_arn, function_arn, account)) = job else {
        println!("dry run: no job created (rerun without --dry-run, with --role-arn and --function-arn, to create it)");
        return Ok(());
    };
    let spec = JobSpec {
        account_id: account.to_owned(),
        role_arn: role_arn.to_owned(),
        function_arn: function_arn.to_owned(),
        bucket: manifest_bucket.to_owned(),
        key,
        etag,
        priority: args.priority,
    };
    let id = jobs.create(&spec).await?;
    println!("job: {id}");
    println!("follow it: aws s3control describe-job --account-id {account} --job-id {id} --region {region}");
    println!(
        "completion report: s3://{manifest_bucket}/{}/job-{id}/",
        cwl_indexer::ops::REPORT_PREFIX
    );
    Ok(())
}

async fn process<S: Sink>(indexer: &Indexer, t: &Todo, sink: &mut S) -> (Summary, Result<ObjectOutcome, HandlerError>) {
    indexer.process_object(&t.bucket, &t.key, sink, None).await
}

fn progress_bar(progress: Progress, files: usize) -> ProgressBar {
    let show = match progress {
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let bar = ProgressBar::with_draw_target(
        Some(files as u64),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} files, {msg} (eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_survives_a_line_cut_by_a_kill() {
        let dir = std::env::temp_dir().join(format!("cwl-backfill-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        std::fs::write(&path, "s3://b/one\ns3://b/tw").unwrap();
        let mut state = State::open(&path, true).unwrap();
        assert!(state.done.contains("s3://b/one"));
        // The cut line matches no key we would write whole: that file is read again.
        assert!(!state.done.contains("s3://b/two"));
        state.finished("s3://b/two").unwrap();
        let again = State::open(&path, false).unwrap();
        assert!(again.done.contains("s3://b/one") && again.done.contains("s3://b/two"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "s3://b/one\ns3://b/tw\ns3://b/two\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dates_must_be_days() {
        assert!(validate_date("since", Some(&"2024-02-29".to_owned())).is_ok());
        assert!(validate_date("since", Some(&"2024-02-30".to_owned())).is_err());
        assert!(validate_date("until", Some(&"2024/02/01".to_owned())).is_err());
        assert!(validate_date("until", None).is_ok());
    }
}
