#!/usr/bin/env bash
# `make bench`: every benchmark, then the report (target/bench/REPORT.md), in about 10 minutes
# (BENCH_QUICK=1: about 4; the cluster-cost part adds about a minute). Not part of `make test`: speed is measured here, never by tests.
#
#   OPENSEARCH_PORT=9282 scripts/bench.sh [transform|gzip|instructions|coldstart|memory|e2e|cluster-cost|report ...]
#
# One OpenSearch node (scripts/with-opensearch.sh: started and stopped here unless one answers at
# OPENSEARCH_URL) serves the memory, end-to-end and cluster-cost benches.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(transform gzip instructions coldstart memory e2e cluster-cost)
needs_node=
for p in "${parts[@]}"; do [[ $p == memory || $p == e2e || $p == cluster-cost ]] && needs_node=1; done
if [[ -n $needs_node && -z ${OPENSEARCH_URL:-} ]]; then
  exec "$here/with-opensearch.sh" "$0" "${parts[@]}"
fi
for p in "${parts[@]}"; do
  case $p in
    transform | gzip | instructions | coldstart | memory | e2e | cluster-cost) echo "== bench-$p" >&2; "$here/bench-$p.sh" ;;
    report) ;;
    *) echo "bench.sh: unknown part '$p'" >&2; exit 2 ;;
  esac
done
python3 "$here/bench-report.py"
