#!/usr/bin/env bash
# Transform throughput (criterion, benches/transform.rs): floor, gunzip, transform with the security
# signals off and on, and on + body gzip, on the three workloads of scripts/bench-payloads.py.
#
#   scripts/bench-transform.sh          (BENCH_QUICK=1: fewer, shorter samples)
#
# Then the console Node.js function's transform (scripts/bench-node-console.js) on the same payloads.
# Criterion's raw samples land in target/criterion/<workload>/<bench>/new/sample.json; the table with
# medians, min-max and ratios is written by scripts/bench-report.py. Figures are only comparable
# within one run: the machine is shared and noisy, so read the ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 scripts/bench-payloads.py target/bench/payloads >/dev/null
# Drop last run's samples so that the report never mixes runs.
rm -rf target/criterion/{realistic,small,large}
cargo bench --locked --bench transform -- --noplot
# The console's Node.js function's transform on the same workloads, right after, for the cost
# comparison (skipped without node).
if command -v node >/dev/null; then
  {
    echo "{"
    sep=
    for w in realistic small large; do
      printf '%s"%s": %s\n' "$sep" "$w" "$(node scripts/bench-node-console.js "target/bench/payloads/$w.json" 30)"
      sep=,
    done
    echo "}"
  } >target/bench/node-console.json
else
  echo "node not found: the Node.js comparison is skipped" >&2
  rm -f target/bench/node-console.json
fi
