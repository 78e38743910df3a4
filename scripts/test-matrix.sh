#!/usr/bin/env bash
# `make test-matrix`: the integration suite against every engine version we support, each
# on a node of its own (scripts/opensearch.sh), then a results table.
#   MATRIX="opensearch:1.3.20 opensearch:2.19.6 opensearch:3.6.0 elasticsearch:7.10.2" (default)
set -uo pipefail
cd "$(dirname "$0")/.."
matrix=${MATRIX:-"opensearch:1.3.20 opensearch:2.19.6 opensearch:3.6.0 elasticsearch:7.10.2"}
tests=(--test opensearch --test faults --test bad_input --test sigv4 --test secrets --test dashboards)
bash scripts/venv.sh >/dev/null
cargo test --locked --no-run "${tests[@]}" >/dev/null 2>&1 || cargo test --locked --no-run "${tests[@]}"
# Ports away from the default 9200 (transport ports are HTTP + 100).
port=${MATRIX_PORT:-9271}
results=()
for entry in $matrix; do
  dist=${entry%%:*}; version=${entry#*:}
  log=target/test-matrix-$dist-$version.log
  echo "== $dist $version (port $port), log: $log" >&2
  started=$(date +%s)
  if OPENSEARCH_DIST=$dist OPENSEARCH_VERSION=$version OPENSEARCH_PORT=$port OPENSEARCH_URL= \
      scripts/with-opensearch.sh cargo test --locked --no-fail-fast "${tests[@]}" >"$log" 2>&1; then
    verdict=pass
  else
    verdict=FAIL
  fi
  passed=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}')
  failed=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
  results+=("| $dist $version | $verdict | $passed passed, $failed failed | $(( $(date +%s) - started )) s |")
  port=$((port + 1))
done
echo
echo "| engine | result | tests | time |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAIL
