#!/usr/bin/env bash
# Cluster cost: the end-to-end batches (scripts/bench-payloads.py, 4,932 CloudTrail records) indexed into
# fresh indices of one local node, once as cwl-indexer's documents and once as the console Node.js
# function's (dynamic mapping, @message kept); then refresh, force-merge to one segment, primary store
# bytes per document, indexing time, documents the node rejects. scripts/bench-cluster-cost.py does the
# work; this script starts the node (scripts/with-opensearch.sh, stopped at the end unless it was running
# or OPENSEARCH_URL answers) and makes the inputs.
#
#   OPENSEARCH_PORT=9282 scripts/bench-cluster-cost.sh      (BENCH_ROUNDS=3; BENCH_QUICK=1: 1)
#   CWL_INDEXER=target/debug/cwl-indexer scripts/bench-cluster-cost.sh
#   CLUSTER_COST_PROJECTIONS=1 scripts/bench-cluster-cost.sh   (also issue 15's projected documents)
#   CLUSTER_COST_LEVERS=1 scripts/bench-cluster-cost.sh        (also one storage lever at a time)
#
# The binary only writes the bulk bodies (`replay --dry-run`), so its build profile does not change the
# figures: CWL_INDEXER picks one; by default the release CLI is built, as bench-e2e.sh does.
# Needs node (the console function's transform). Writes target/bench/cluster-cost.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z ${OPENSEARCH_URL:-} ]]; then
  exec scripts/with-opensearch.sh "$0" "$@"
fi
rounds=${BENCH_ROUNDS:-$([[ -n ${BENCH_QUICK:-} ]] && echo 1 || echo 3)}
cli=${CWL_INDEXER:-}
if [[ -z $cli ]]; then
  cargo build --release --locked --bin cwl-indexer
  cli=target/release/cwl-indexer
fi
[[ -x $cli ]] || { echo "bench-cluster-cost.sh: $cli is not an executable" >&2; exit 1; }
command -v node >/dev/null || { echo "bench-cluster-cost.sh: node is needed for the console function's documents" >&2; exit 1; }
python3 scripts/bench-payloads.py target/bench/payloads >/dev/null
args=(--url "$OPENSEARCH_URL" --cli "$cli" --rounds "$rounds")
[[ -n ${CLUSTER_COST_PROJECTIONS:-} ]] && args+=(--projections)
[[ -n ${CLUSTER_COST_LEVERS:-} ]] && args+=(--levers)
python3 scripts/bench-cluster-cost.py "${args[@]}"
