#!/usr/bin/env bash
# Instruction counts (valgrind --tool=callgrind, Ir) per batch for the floor and the transforms of
# benches/transform.rs: the same ratios as the criterion timings, but immune to this shared machine's
# noise. Needs valgrind (apt-get install valgrind); skipped without it.
#
#   scripts/bench-instructions.sh        (BENCH_ITERS=3 runs of each; run after bench-transform.sh)
#
# Each bench runs BENCH_ITERS times in one process (BENCH_COUNT=<workload>/<bench>:<n>, no criterion
# loop); the count of a run with n=0 (setup only) is subtracted. Writes target/bench/instructions.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v valgrind >/dev/null; then
  echo "valgrind not found: instruction counts skipped" >&2
  exit 0
fi
n=${BENCH_ITERS:-3}
bin=$(cargo bench --locked --bench transform --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "transform" and m.get("executable"): print(m["executable"])')
ir() {
  BENCH_COUNT="$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --bench 2>&1 >/dev/null |
    awk '/Collected/ { if ($NF > v) v = $NF } END { print v }'
}
out=target/bench/instructions.json
echo "{" >"$out"
sep=
for w in realistic small large; do
  base=$(ir "$w/none:0")
  for b in floor transform-signals-off transform-signals-on transform-signals-on-gzip transform-signals-all; do
    t=$(ir "$w/$b:$n")
    printf '%s"%s/%s": %s\n' "$sep" "$w" "$b" "$(((t - base) / n))" >>"$out"
    sep=,
    echo "$w/$b: $(((t - base) / n)) instructions per batch" >&2
  done
done
echo "}" >>"$out"
