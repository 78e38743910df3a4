#!/usr/bin/env bash
# Fuzzing cwl-indexer with libFuzzer (cargo-fuzz layout under fuzz/). See fuzz/README.md.
#
#   scripts/fuzz.sh seed                 rebuild fuzz/corpus/<target>/ from fixtures/
#   scripts/fuzz.sh build                build the fuzz targets
#   scripts/fuzz.sh run TARGET [SECS]    fuzz one target (default FUZZ_SECONDS, 1800 s)
#   scripts/fuzz.sh all [SECS]           fuzz every target in turn, SECS each
#   scripts/fuzz.sh smoke                CI: regressions, seeds and mutations on stable (about a
#                                        minute after `make test`); FUZZ_SMOKE_SECONDS=45 adds
#                                        45 s of libFuzzer per target (nightly)
#   scripts/fuzz.sh repro TARGET FILE    run one input and print the panic and backtrace
#   scripts/fuzz.sh tmin TARGET FILE     minimise a crashing input
#
# Builds with `cargo fuzz` when it is installed, otherwise with plain `cargo +nightly` and the
# same coverage flags (CI does not spend minutes installing cargo-fuzz). Runs one job at a time
# under `nice`: the machine is shared. The working corpus (fuzz/work/<target>/) and crashes
# (fuzz/artifacts/<target>/) are git-ignored; fuzz/corpus/ holds only the committed seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(envelope transform)
FUZZ_SECONDS=${FUZZ_SECONDS:-1800}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR=fuzz/target/$TRIPLE/release
# Per-target libFuzzer options: inputs up to 64 KiB for the envelope (enough for a batch of
# a dozen records), 32 KiB for one message.
declare -A MAX_LEN=([envelope]=65536 [transform]=32768)

log() { echo "fuzz.sh: $*" >&2; }

check_target() {
  local t
  for t in "${TARGETS[@]}"; do [[ $1 == "$t" ]] && return 0; done
  log "unknown target '$1' (targets: ${TARGETS[*]})"
  exit 2
}

cmd_seed() {
  python3 - <<'PY'
"""Seed corpus from fixtures/: one file per input, named after its content's hash."""
import base64, glob, gzip, hashlib, json, os, shutil

ENV_MAX, MSG_MAX, RECORDS = 65536, 32768, 300
out = {t: os.path.join("fuzz", "corpus", t) for t in ("envelope", "transform")}
for d in out.values():
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    limit = ENV_MAX if target == "envelope" else MSG_MAX
    if len(data) > limit:
        return
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out[target], name), "wb") as f:
        f.write(data)

def compact(envelope):
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)

def encode(text):
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()

messages = []
for path in sorted(glob.glob("fixtures/*.json") + glob.glob("fixtures/broken/*.json")):
    raw = open(path, "rb").read()
    try:
        data = json.loads(raw)["awslogs"]["data"]
    except Exception:
        put("envelope", raw)  # not a Lambda event at all: still bytes to try
        continue
    put("envelope", data)  # the awslogs.data text, as delivered (small fixtures only)
    try:
        decoded = gzip.decompress(base64.b64decode(data))
        if len(decoded) > 4 * ENV_MAX:
            continue  # the gzip bomb: its data string is the seed
        envelope = json.loads(decoded)
    except Exception:
        continue  # a broken fixture: its data string is the seed
    put("envelope", decoded)  # the decompressed envelope (small fixtures only)
    events = envelope.get("logEvents") or []
    messages += [e.get("message", "") for e in events]
    # Every fixture also as a small envelope, a few events long, both decompressed (for the
    # structure-aware path) and encoded (for the awslogs.data path).
    for n in (1, 3):
        small = dict(envelope, logEvents=events[:n])
        put("envelope", compact(small))
        put("envelope", encode(compact(small)))

# transform: every non-CloudTrail or odd message of the fixtures...
records = [l.rstrip("\n") for l in open("fixtures/cloudtrail-records.ndjson", encoding="utf-8")]
known = set(records)
for m in messages:
    if m not in known:
        put("transform", m)
# ...and a few hundred diverse records: the first of each (eventSource, eventName), then the
# largest and smallest ones, up to RECORDS.
seen, picked = set(), []
for line in records:
    try:
        r = json.loads(line)
        key = (str(r.get("eventSource")), str(r.get("eventName")))
    except Exception:
        key = ("?", line[:40])
    if key not in seen:
        seen.add(key)
        picked.append(line)
by_size = sorted(records, key=len)
for line in picked[:RECORDS] + by_size[:20] + by_size[-40:]:
    put("transform", line)

for t, d in out.items():
    files = os.listdir(d)
    print(f"fuzz/corpus/{t}: {len(files)} seeds, {sum(os.path.getsize(os.path.join(d, f)) for f in files)} bytes")
PY
}

# The flags cargo-fuzz 0.13 passes to rustc for `--sanitizer none`, for builds without it.
coverage_rustflags() {
  echo "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4" \
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table" \
    "-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cllvm-args=-simplifycfg-branch-fold-threshold=0" \
    "-Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
}

# fuzz/Cargo.lock is not committed: it starts as a copy of the main Cargo.lock, so the fuzz
# build uses exactly the versions the main build does (and can share its target/), and cargo
# adds libfuzzer-sys to it.
sync_lock() {
  cp Cargo.lock fuzz/Cargo.lock
}

cmd_build() {
  sync_lock
  if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    log "installing the $TOOLCHAIN toolchain"
    rustup toolchain install "$TOOLCHAIN" --profile minimal
  fi
  if cargo fuzz --version >/dev/null 2>&1; then
    nice -n 10 cargo "+$TOOLCHAIN" fuzz build --sanitizer none --debug-assertions
  else
    log "cargo-fuzz not installed: building with cargo +$TOOLCHAIN and the same flags"
    RUSTFLAGS="$(coverage_rustflags)" nice -n 10 cargo "+$TOOLCHAIN" build --release \
      --manifest-path fuzz/Cargo.toml --target "$TRIPLE" --bins
  fi
}

# The bug names of fuzz/regressions/open.txt, comma-separated: reported and not fixed yet.
open_bugs() {
  [[ -f fuzz/regressions/open.txt ]] || return 0
  sed 's/#.*//' fuzz/regressions/open.txt | awk 'NF >= 2 { print $2 }' | sort -u | paste -sd, -
}

# run_target TARGET SECONDS [extra libFuzzer options]
run_target() {
  local t=$1 secs=$2
  shift 2
  check_target "$t"
  # A long run goes on past the open bugs (the harness checks around them) unless
  # CWL_FUZZ_TOLERATE is set, even to nothing.
  export CWL_FUZZ_TOLERATE="${CWL_FUZZ_TOLERATE-$(open_bugs)}"
  log "tolerating open bugs: ${CWL_FUZZ_TOLERATE:-none}"
  local work=fuzz/work/$t arts=fuzz/artifacts/$t
  mkdir -p "$work" "$arts"
  local dict=()
  [[ -f fuzz/dict/json.dict ]] && dict=(-dict=fuzz/dict/json.dict)
  log "fuzzing $t for $secs s (working corpus $work, seeds fuzz/corpus/$t)"
  # One process, one job (no -jobs/-fork: the machine is shared, and -jobs=1 would only move
  # the output to ./fuzz-0.log). New inputs go to $work only.
  nice -n 10 "$BIN_DIR/$t" "$work" "fuzz/corpus/$t" \
    -max_total_time="$secs" -max_len="${MAX_LEN[$t]}" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$arts/" "${dict[@]}" "$@"
}

# The CI smoke test (stable, no libFuzzer): regressions, seeds and a fixed number of mutations
# of each seed through the same oracles (fuzz/tests/replay.rs). It shares target/ with the main
# build, so after `make test` only the crate itself and a few dependencies are compiled.
# With FUZZ_SMOKE_SECONDS > 0 (and nightly), each target is then also fuzzed that long.
cmd_smoke() {
  local secs=${FUZZ_SMOKE_SECONDS:-0} t
  sync_lock
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target} nice -n 10 cargo test --manifest-path fuzz/Cargo.toml \
    --no-default-features --test replay -- --nocapture
  ((secs > 0)) || return 0
  cmd_build
  export CWL_FUZZ_TOLERATE="${CWL_FUZZ_TOLERATE-$(open_bugs)}"
  for t in "${TARGETS[@]}"; do
    # A fresh working corpus each time: the smoke run starts from the committed seeds.
    rm -rf "fuzz/work/smoke-$t"
    mkdir -p "fuzz/work/smoke-$t" "fuzz/artifacts/$t"
    log "$t: $secs s of fuzzing from the seeds (tolerating: ${CWL_FUZZ_TOLERATE:-none})"
    if ! nice -n 10 "$BIN_DIR/$t" "fuzz/work/smoke-$t" "fuzz/corpus/$t" -max_total_time="$secs" \
      -max_len="${MAX_LEN[$t]}" -rss_limit_mb=2048 -timeout=10 -dict=fuzz/dict/json.dict \
      -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"fuzz/work/smoke-$t.log" 2>&1; then
      tail -n 40 "fuzz/work/smoke-$t.log"
      log "$t: the smoke run found a crash (in fuzz/artifacts/$t/)"
      exit 1
    fi
    grep -E '^#[0-9]+ +DONE|^stat::' "fuzz/work/smoke-$t.log" || true
  done
}

cmd_repro() {
  local t=$1 f=$2
  check_target "$t"
  RUST_BACKTRACE=1 "$BIN_DIR/$t" -runs=1 "$f"
}

cmd_tmin() {
  local t=$1 f=$2
  check_target "$t"
  nice -n 10 "$BIN_DIR/$t" -minimize_crash=1 -max_total_time=120 -runs=100000 \
    -exact_artifact_path="$f.min" "$f" || true
  ls -l "$f.min"
}

case ${1:-} in
  seed) cmd_seed ;;
  build) cmd_build ;;
  run)
    [[ $# -ge 2 ]] || { log "usage: $0 run TARGET [SECONDS]"; exit 2; }
    cmd_build
    run_target "$2" "${3:-$FUZZ_SECONDS}"
    ;;
  all)
    cmd_build
    for t in "${TARGETS[@]}"; do run_target "$t" "${2:-$FUZZ_SECONDS}"; done
    ;;
  smoke) cmd_smoke ;;
  repro) cmd_repro "$2" "$3" ;;
  tmin) cmd_tmin "$2" "$3" ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
