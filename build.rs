//! Build script: lists the bundled Sigma rule files (`rules/sigma/sigmahq`, `rules/sigma/cwl-indexer`)
//! as a generated module of `include_str!`s, so a rule file added to either folder is compiled
//! into the binary without a hand-kept list.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut out = String::from(
        "/// Bundled rule files: (path in the repository, text).\npub const BUNDLED: &[(&str, &str)] = &[\n",
    );
    for dir in ["rules/sigma/sigmahq", "rules/sigma/cwl-indexer"] {
        println!("cargo:rerun-if-changed={dir}");
        for file in yml_files(&root.join(dir)) {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .expect("rule file names are UTF-8");
            let _ = writeln!(
                out,
                "    ({:?}, include_str!({:?})),",
                format!("{dir}/{name}"),
                file.display().to_string()
            );
        }
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled_rules.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// The `.yml` files directly in `dir`, sorted (the order rules are loaded in).
fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the bundled rule folders exist")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}
