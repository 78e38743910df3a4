//! The fuzz smoke test CI runs, on stable and without libFuzzer: every saved regression and
//! every seed of both targets through the same harness and oracles the fuzzers use, then a
//! fixed number of deterministic mutations of each seed (byte flips, insertions of
//! dictionary tokens, truncations, splices): blind, but it exercises the error paths the
//! seeds alone do not reach.
//!
//! `FUZZ_SMOKE_MUTATIONS` (default 16) sets the mutations per seed. Regressions listed in
//! `fuzz/regressions/open.txt` are bugs reported and not fixed yet: they are run and
//! reported, but do not fail the test (a listed one that passes is reported as fixed), and
//! the mutation run tolerates them as a long fuzzing run does (`CWL_FUZZ_TOLERATE`).

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 2] = [
    ("envelope", cwl_indexer_fuzz::envelope),
    ("transform", cwl_indexer_fuzz::transform),
];

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

/// Runs `target` on `input`; the panic message if it panicked.
fn run(target: Target, input: &[u8]) -> Option<String> {
    panic::catch_unwind(AssertUnwindSafe(|| target(input))).err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned())
    })
}

/// The lines of fuzz/regressions/open.txt: `<target>/<file> <bug>` (the bug's name for
/// `CWL_FUZZ_TOLERATE`); comments start with `#`.
fn open_bugs() -> Vec<(String, String)> {
    std::fs::read_to_string(fuzz_dir().join("regressions/open.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut words = l.split('#').next().unwrap_or("").split_whitespace();
            Some((words.next()?.to_owned(), words.next().unwrap_or("").to_owned()))
        })
        .collect()
}

/// Keeps the panic hook quiet while expected-to-panic inputs run; restores it after.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let out = f();
    panic::set_hook(hook);
    out
}

#[test]
fn regressions_and_seeds_pass() {
    let open = open_bugs();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (name, target) in TARGETS {
        for path in files(&fuzz_dir().join("regressions").join(name)) {
            let id = format!("{name}/{}", path.file_name().unwrap().to_string_lossy());
            let input = std::fs::read(&path).unwrap();
            runs += 1;
            let result = quietly(|| run(target, &input));
            match (result, open.iter().any(|(file, _)| *file == id)) {
                (None, false) => {}
                (None, true) => eprintln!("FIXED: regression {id} passes now: remove it from regressions/open.txt"),
                (Some(msg), true) => eprintln!("open bug (listed in regressions/open.txt): {id}: {}", first_line(&msg)),
                (Some(msg), false) => failures.push(format!("regression {id}: {msg}")),
            }
        }
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !seeds.is_empty(),
            "no seeds in fuzz/corpus/{name}: run scripts/fuzz.sh seed"
        );
        for path in seeds {
            runs += 1;
            if let Some(msg) = quietly(|| run(target, &std::fs::read(&path).unwrap())) {
                failures.push(format!("seed {name}/{}: {msg}", path.display()));
            }
        }
    }
    eprintln!("{runs} regression and seed inputs run");
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mutated_seeds_pass() {
    let per_seed: usize = std::env::var("FUZZ_SMOKE_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let dict = dictionary();
    cwl_indexer_fuzz::tolerate(&open_bugs().into_iter().map(|(_, bug)| bug).collect::<Vec<_>>());
    let mut failures = Vec::new();
    let mut runs = 0;
    for (name, target) in TARGETS {
        let seeds: Vec<Vec<u8>> = files(&fuzz_dir().join("corpus").join(name))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (i, seed) in seeds.iter().enumerate() {
            for _ in 0..per_seed {
                let other = &seeds[rng.below(seeds.len())];
                let input = mutate(&mut rng, seed, other, &dict);
                runs += 1;
                if let Some(msg) = quietly(|| run(target, &input)) {
                    // Kept for a human: the exact input, as a file next to the artifacts.
                    let dir = fuzz_dir().join("artifacts").join(name);
                    std::fs::create_dir_all(&dir).unwrap();
                    let file = dir.join(format!("smoke-crash-{i}-{runs}"));
                    std::fs::write(&file, &input).unwrap();
                    failures.push(format!("{name}: {} ({})", first_line(&msg), file.display()));
                }
            }
        }
    }
    eprintln!("{runs} mutated inputs run");
    assert!(
        failures.is_empty(),
        "{} mutated inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The tokens of fuzz/dict/json.dict, unescaped.
fn dictionary() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(fuzz_dir().join("dict/json.dict")).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with('"') && l.ends_with('"') && l.len() >= 2)
        .map(|l| unescape(&l[1..l.len() - 1]))
        .collect()
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'x' && i + 3 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// xorshift64*: deterministic, so a smoke failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// One to four libFuzzer-style mutations of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !dict.is_empty() => {
                let i = rng.below(v.len() + 1);
                let tok = &dict[rng.below(dict.len())];
                v.splice(i..i, tok.iter().copied());
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below(16.min(v.len() - i));
                v.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                let (i, j) = (rng.below(v.len() + 1), rng.below(other.len()));
                let n = 1 + rng.below(64.min(other.len() - j));
                v.splice(i..i, other[j..j + n].iter().copied());
            }
            5 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'\n', 0xff][rng.below(10)];
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
        }
    }
    v
}

#[test]
fn lone_surrogate_scanner() {
    use cwl_indexer_fuzz::lone_surrogate;
    for ok in [
        r#"{"a":"\ud83d\ude00"}"#,
        r#"{"a":"\\ud800"}"#,
        r#"{"\u00e9":"x\u0041"}"#,
        r#"[1e400,"\uDBFF\uDFFF"]"#,
    ] {
        assert_eq!(lone_surrogate(ok.as_bytes()), None, "{ok}");
    }
    for bad in [
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00x"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        r#"{"a":"\ud800\n"}"#,
        r#"{"\ud800":1}"#,
    ] {
        assert!(lone_surrogate(bad.as_bytes()).is_some(), "{bad}");
    }
}
