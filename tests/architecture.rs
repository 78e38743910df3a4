//! Our ArchUnit: reads `src/**/*.rs`, collects every `crate::<module>` and `super::<module>`
//! reference, and fails when a stage uses a later stage, when modules form a cycle, or when
//! a module outside `handler/` (and `main.rs`) names Lambda's types. Each failure names the
//! file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules in the order data flows: a module may use only the ones
/// before it. `config` and `schema` are what every stage reads; `pipeline` holds what the
/// stages after `index` share (`Sink`, `Batch`, `Delivery`, `Summary`); `indexer` runs the
/// stages; `handler` adapts it to Lambda; `wiring` builds it all from the configuration.
const ORDER: &[&str] = &[
    "config", "schema", "ingest", "signals", "index", "pipeline", "deliver", "indexer", "ops", "handler", "wiring",
];

/// Crates that are Lambda's types: only `handler/` and the `bootstrap` binary may name them.
const LAMBDA_CRATES: &[&str] = &["lambda_runtime", "aws_lambda_events"];

/// Files allowed to name Lambda's crates.
fn may_know_lambda(file: &str) -> bool {
    file.starts_with("handler/") || file == "main.rs"
}

/// One reference from a module to another, where it is written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: Vec<String>,
    to: Vec<String>,
    file: String,
    line: usize,
}

/// A module's path from its file: `ingest/envelope.rs` is `[ingest, envelope]`,
/// `ingest/mod.rs` is `[ingest]`, `lib.rs` is `[]`.
fn module_of(file: &str) -> Vec<String> {
    let trimmed = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The module a path names, resolved to the most specific file that exists: `crate::a::b`
/// is `[a, b]` if `a/b.rs` (or `a/b/mod.rs`) is a file, else `[a]` (a name re-exported by
/// `a`'s `mod.rs`).
fn resolve(modules: &BTreeSet<Vec<String>>, base: &[String], names: &[&str]) -> Vec<String> {
    let mut target = base.to_vec();
    for name in names {
        let mut next = target.clone();
        next.push((*name).to_owned());
        if modules.contains(&next) {
            target = next;
        } else {
            break;
        }
    }
    target
}

/// Code without comments: line comments (`//`, `///`, `//!`) are dropped, so doc links are
/// not dependencies. String contents are kept; a `//` inside a string only hides the rest
/// of its own line.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let code = match line.find("//") {
                Some(at) if !line[..at].contains('"') => &line[..at],
                _ => line,
            };
            (i + 1, code.to_owned())
        })
        .collect()
}

/// The identifiers after `prefix` at each place it stands in `line`: `crate::a::b::C` gives
/// `[a, b, C]`; `crate::a::{self, b::X, c}` gives `[a]`, `[a, b, X]` and `[a, c]`.
fn paths_after<'l>(line: &'l str, prefix: &str) -> Vec<Vec<&'l str>> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut path = Vec::new();
        let mut cursor = rest;
        loop {
            let end = cursor
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(cursor.len());
            if end > 0 {
                path.push(&cursor[..end]);
                cursor = &cursor[end..];
            }
            if let Some(after) = cursor.strip_prefix("::") {
                if let Some(group) = after.strip_prefix('{') {
                    let close = group.find('}').unwrap_or(group.len());
                    for item in group[..close].split(',') {
                        let mut sub = path.clone();
                        sub.extend(
                            item.trim()
                                .split("::")
                                .map(str::trim)
                                .filter(|s| !s.is_empty() && *s != "self"),
                        );
                        out.push(sub);
                    }
                    path.clear();
                    break;
                }
                cursor = after;
                continue;
            }
            break;
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

/// Every module-to-module reference in `files` (path relative to `src/` → text).
fn edges(files: &BTreeMap<String, String>) -> Vec<Edge> {
    let modules: BTreeSet<Vec<String>> = files.keys().map(|f| module_of(f)).collect();
    // One edge per target and line, however many names a `use` group takes from it.
    let mut out = BTreeSet::new();
    for (file, text) in files {
        let from = module_of(file);
        let is_facade = file.ends_with("mod.rs") || file == "lib.rs";
        // `super` of `a/b.rs` is `a`; of `a/mod.rs` it is the crate root.
        let parent: Vec<String> = if is_facade {
            from[..from.len().saturating_sub(1)].to_vec()
        } else {
            from[..from.len() - 1].to_vec()
        };
        for (line_no, line) in code_lines(text) {
            let mut targets = Vec::new();
            for path in paths_after(&line, "crate::") {
                targets.push(resolve(&modules, &[], &path));
            }
            for path in paths_after(&line, "super::") {
                targets.push(resolve(&modules, &parent, &path));
            }
            for to in targets {
                // A folder's mod.rs owns its children: its `mod` and `pub use` lines are
                // structure, not dependencies.
                let own_child = is_facade && to.len() > from.len() && to.starts_with(&from);
                if to.is_empty() || to == from || own_child {
                    continue;
                }
                out.insert(Edge {
                    from: from.clone(),
                    to,
                    file: file.clone(),
                    line: line_no,
                });
            }
        }
    }
    out.into_iter().collect()
}

fn rank(stage: &str) -> Option<usize> {
    ORDER.iter().position(|s| *s == stage)
}

/// The violations in `files`, one line each: a stage using a later one (or one not in
/// [`ORDER`]), a cycle of modules, Lambda's types outside the handler.
fn violations(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    let all = edges(files);
    for e in &all {
        let (Some(from), Some(to)) = (e.from.first(), e.to.first()) else {
            continue;
        };
        if from == to {
            continue;
        }
        match (rank(from), rank(to)) {
            (Some(a), Some(b)) if b < a => {}
            (Some(_), Some(_)) => found.push(format!(
                "src/{}:{}: `{from}` uses `{}`, a later stage",
                e.file,
                e.line,
                e.to.join("::")
            )),
            _ => found.push(format!(
                "src/{}:{}: `{from}` → `{to}`: a top-level module missing from ORDER",
                e.file, e.line
            )),
        }
    }
    found.extend(cycles(&all));
    for (file, text) in files {
        if may_know_lambda(file) {
            continue;
        }
        for (line_no, line) in code_lines(text) {
            for krate in LAMBDA_CRATES {
                if line.contains(krate) {
                    found.push(format!("src/{file}:{line_no}: `{krate}` outside handler/"));
                }
            }
        }
    }
    found
}

/// Cycles among modules, each reported once with the reference that closes it.
fn cycles(all: &[Edge]) -> Vec<String> {
    let mut graph: BTreeMap<&[String], Vec<&Edge>> = BTreeMap::new();
    for e in all {
        graph.entry(&e.from).or_default().push(e);
    }
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first from `start`, looking for a path back to it.
        let mut stack: Vec<(&[String], Vec<&Edge>)> = vec![(start, Vec::new())];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for e in graph.get(node).map(Vec::as_slice).unwrap_or_default() {
                let mut next = path.clone();
                next.push(*e);
                if e.to.as_slice() == *start {
                    let ring: Vec<String> = next.iter().map(|e| e.from.join("::")).collect();
                    let mut key = ring.clone();
                    key.sort();
                    if found.iter().all(|(k, _): &(Vec<String>, String)| *k != key) {
                        let close = next
                            .last()
                            .map_or(String::new(), |e| format!("src/{}:{}", e.file, e.line));
                        found.insert((
                            key,
                            format!("{close}: cycle {} → {}", ring.join(" → "), start.join("::")),
                        ));
                    }
                } else if seen.insert(e.to.clone()) {
                    stack.push((&e.to, next));
                }
            }
        }
    }
    found.into_iter().map(|(_, message)| message).collect()
}

/// The library's sources (the binaries under `src/bin/` are outside it, and `main.rs` is
/// read only for the Lambda rule).
fn sources(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            if path.is_dir() {
                if rel != "bin" {
                    walk(&path, root, out);
                }
            } else if rel.ends_with(".rs") {
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn stages_use_only_earlier_stages_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = sources(&src);
    let main = files.remove("main.rs").expect("src/main.rs");
    let found = violations(&files);
    assert!(found.is_empty(), "architecture violations:\n{}", found.join("\n"));
    // Every top-level module is in ORDER, and every stage in ORDER exists.
    let tops: BTreeSet<String> = files.keys().filter_map(|f| module_of(f).first().cloned()).collect();
    let ordered: BTreeSet<String> = ORDER.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(tops, ordered, "src/ top-level modules and ORDER differ");
    // The function's binary is the other place allowed to know Lambda.
    assert!(main.contains("lambda_runtime"));
    // Sanity: the walk saw real references, so an empty result means something.
    assert!(
        edges(&files).len() > 50,
        "too few references found: is the parser blind?"
    );
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files.iter().map(|(f, t)| ((*f).to_owned(), (*t).to_owned())).collect()
}

#[test]
fn a_later_stage_import_is_caught_with_its_file_and_line() {
    let files = tree(&[
        ("lib.rs", "pub mod ingest;\npub mod deliver;\n"),
        ("ingest/mod.rs", "mod envelope;\npub use envelope::Envelope;\n"),
        (
            "ingest/envelope.rs",
            "//! A doc link to [`crate::deliver`] is fine.\nuse std::io;\nuse crate::deliver::{self, OpenSearch};\n",
        ),
        ("deliver/mod.rs", "pub(crate) mod sink;\n"),
        ("deliver/sink.rs", "use crate::ingest::Envelope;\n"),
    ]);
    let found = violations(&files);
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("src/ingest/envelope.rs:3:") && v.contains("a later stage")),
        "{found:?}"
    );
    // Only the code line counts, not the doc link on line 1, and deliver → ingest is fine.
    assert_eq!(
        found.iter().filter(|v| v.contains("a later stage")).count(),
        1,
        "{found:?}"
    );
}

#[test]
fn a_cycle_inside_a_folder_is_caught() {
    let files = tree(&[
        (
            "deliver/mod.rs",
            "pub(crate) mod client;\npub(crate) mod setup;\npub use client::Client;\n",
        ),
        ("deliver/client.rs", "use super::setup::Report;\n"),
        ("deliver/setup.rs", "fn run(c: &super::client::Client) {}\n"),
    ]);
    let found = violations(&files);
    assert!(
        found
            .iter()
            .any(|v| v.contains("cycle") && v.contains("deliver::client") && v.contains("deliver::setup")),
        "{found:?}"
    );
    // The facade's own `pub use` of its child is no edge: no cycle with mod.rs.
    assert!(!found.iter().any(|v| v.contains("cycle deliver →")), "{found:?}");
}

#[test]
fn groups_nested_paths_and_lambda_types_are_read() {
    assert_eq!(
        paths_after("use crate::index::{self, BulkChunk, template::Flavor};", "crate::"),
        vec![
            vec!["index"],
            vec!["index", "BulkChunk"],
            vec!["index", "template", "Flavor"]
        ]
    );
    assert_eq!(
        paths_after("x = mycrate::a; y = crate::b::c(1)", "crate::"),
        vec![vec!["b", "c"]]
    );
    let files = tree(&[
        ("ops/metrics.rs", "fn f(_: lambda_runtime::Context) {}\n"),
        ("handler/mod.rs", "use lambda_runtime::LambdaEvent;\n"),
    ]);
    assert_eq!(
        violations(&files),
        vec!["src/ops/metrics.rs:1: `lambda_runtime` outside handler/".to_owned()]
    );
}
