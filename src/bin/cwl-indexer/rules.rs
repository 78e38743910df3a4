//! `rules`: the Sigma rules for detection engineers. `list` shows every rule the function would
//! load (bundled and `SIGMA_RULES`) and whether it is on; `test` runs them over Lambda event
//! files (through the function's dispatch, as `replay`) or NDJSON records; `check` validates rules.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cwl_indexer::handler::{Source, events::Incoming};
use cwl_indexer::index::BulkChunk;
use cwl_indexer::ingest::{Message, classify};
use cwl_indexer::pipeline::{Batch, Delivery};
use cwl_indexer::signals::{Enrichment, RuleSet, Signals, check, read_rules};
use cwl_indexer::{Config, Indexer, Sink};
use serde_json::Value;

/// `rules list`: one line per rule, tab-separated: id, level, enabled, source, title, author,
/// link (DRL 1.1: the SigmaHQ rules are shown with their author and source link).
pub fn list(rules: &RuleSet) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "id\tlevel\tenabled\tsource\ttitle\tauthor\tlink")?;
    for r in rules.catalogue() {
        let enabled = r
            .disabled
            .as_ref()
            .map_or_else(|| "yes".to_owned(), |why| format!("no ({why})"));
        let source = match r.origin {
            cwl_indexer::signals::Origin::User => format!("user:{}", r.file),
            o => o.as_str().to_owned(),
        };
        writeln!(
            out,
            "{}\t{}\t{enabled}\t{source}\t{}\t{}\t{}",
            r.id,
            r.level.as_str(),
            r.title,
            r.author,
            r.source
        )?;
    }
    let on = rules.catalogue().iter().filter(|r| r.disabled.is_none()).count();
    eprintln!("{} rules, {on} enabled", rules.catalogue().len());
    Ok(())
}

/// `rules check DIR`: compiles the rules at `path` after the bundled ones, as the function
/// would at cold start; fails with the file, line and reason of the first problem.
pub fn check_rules(path: &Path) -> Result<()> {
    let files = read_rules(path)?;
    let n = files.len();
    let rules = check(files)?;
    let users = rules
        .catalogue()
        .iter()
        .filter(|r| r.origin == cwl_indexer::signals::Origin::User)
        .count();
    println!("ok: {users} rules in {n} files compile");
    Ok(())
}

/// Collects the documents the dispatch writes, to read their `signal` back.
#[derive(Default)]
struct Documents(Vec<Value>);

impl Sink for Documents {
    type Error = serde_json::Error;

    async fn send(
        &mut self,
        chunk: &BulkChunk,
        _batch: &Batch<'_>,
        _delivery: &mut Delivery,
    ) -> Result<(), Self::Error> {
        for item in chunk.items() {
            let text = &chunk.body()[item.range.clone()];
            // An item is the action line then the document line.
            if let Some(doc) = text.split(|b| *b == b'\n').nth(1) {
                self.0.push(serde_json::from_slice(doc)?);
            }
        }
        Ok(())
    }
}

/// `rules test FILE...`: which record matched which rule. A Lambda event file goes through the
/// function's dispatch (one invocation per file); any other file is NDJSON CloudTrail records
/// (one per line, the file one invocation). Prints `where  eventName  rule-name  level  title  id`.
pub async fn test(indexer: &Indexer, files: &[PathBuf]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let (mut records, mut matched) = (0usize, 0usize);
    for path in files {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let is_event = serde_json::from_str::<Incoming<'_>>(&text)
            .ok()
            .is_some_and(|i| Source::of(&i).is_some());
        if is_event {
            let mut docs = Documents::default();
            let done = indexer
                .dispatch(&text, &mut docs, None)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            done.result.with_context(|| format!("{}", path.display()))?;
            for doc in &docs.0 {
                records += 1;
                let ids = doc["signal"]["rules"].as_array().cloned().unwrap_or_default();
                matched += usize::from(!ids.is_empty());
                for id in ids.iter().filter_map(Value::as_str) {
                    let Some(r) = indexer.enrichment().rules.rule(id) else {
                        continue;
                    };
                    writeln!(
                        out,
                        "{}:{}\t{}\t{}\t{}\t{}\t{id}",
                        path.display(),
                        doc["@id"].as_str().unwrap_or("-"),
                        doc["eventName"].as_str().unwrap_or("-"),
                        r.name,
                        r.level.as_str(),
                        r.title,
                    )?;
                }
            }
        } else {
            let mut signals = Signals::default();
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let record = match classify(line) {
                    Message::CloudTrail(r) => r,
                    Message::Invalid(e) => bail!("{}:{}: not a JSON record: {e}", path.display(), n + 1),
                    _ => bail!(
                        "{}:{}: not a CloudTrail record (nor is the file a Lambda event)",
                        path.display(),
                        n + 1
                    ),
                };
                records += 1;
                let findings = indexer.enrichment().examine(&record, &mut signals);
                matched += usize::from(!findings.rules.is_empty());
                let event_name = record
                    .fields
                    .iter()
                    .find(|f| f.key == "eventName")
                    .and_then(|f| serde_json::from_str::<String>(f.value.get()).ok())
                    .unwrap_or_else(|| "-".into());
                for r in &findings.rules {
                    writeln!(
                        out,
                        "{}:{}\t{event_name}\t{}\t{}\t{}\t{}",
                        path.display(),
                        n + 1,
                        r.name,
                        r.level.as_str(),
                        r.title,
                        r.id
                    )?;
                }
            }
        }
    }
    eprintln!("{records} records, {matched} matched a rule");
    Ok(())
}

/// The rules the configuration names, loaded as the function loads them.
pub fn load(config: &Config) -> Result<RuleSet> {
    let mut signals = config.signals.clone();
    signals.detections = true;
    signals.geoip_db = None;
    signals.geoip_asn_db = None;
    Ok(Enrichment::load(&signals)?.rules)
}
