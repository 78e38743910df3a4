#!/usr/bin/env bash
# The body gzip, backend against backend (criterion, benches/gzip.rs): the as-deployed transform's
# `_bulk` bodies for the three workloads, compressed by what ships and by each candidate.
#
#   scripts/bench-gzip.sh          (BENCH_QUICK=1: fewer, shorter samples)
#
# Samples land in target/criterion/gzip-<workload>/<backend>/new/sample.json, the bytes on the
# wire in target/bench/gzip-sizes.json; scripts/bench-report.py writes the table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 scripts/bench-payloads.py target/bench/payloads >/dev/null
rm -rf target/criterion/gzip-{realistic,small,large} target/bench/gzip-sizes.json
cargo bench --locked --bench gzip -- --noplot
