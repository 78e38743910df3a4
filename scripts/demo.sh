#!/usr/bin/env bash
# `make demo`: index every fixture into OpenSearch through the same handler the Lambda runs,
# then read back what landed. Uses OPENSEARCH_ENDPOINT (with its AUTH) when set; otherwise
# starts a local node with scripts/opensearch.sh (no Docker needed) and leaves it running
# for you to explore: `make stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/cwl-indexer
fixtures=$(ls fixtures/*.json | grep -v batch-limit.json)

if [ -z "${OPENSEARCH_ENDPOINT:-}" ]; then
  OPENSEARCH_ENDPOINT=$(scripts/opensearch.sh start)
  export OPENSEARCH_ENDPOINT AUTH=none
  # A single node cannot place replicas; they would only count against its shard limit.
  export INDEX_REPLICAS="${INDEX_REPLICAS:-0}"
  started_here=1
fi
echo "== replaying $(echo "$fixtures" | wc -l) fixture files into $OPENSEARCH_ENDPOINT" >&2
# shellcheck disable=SC2086
"$bin" replay $fixtures
echo "== replaying them again: every event is already present, nothing is duplicated" >&2
# shellcheck disable=SC2086
"$bin" replay $fixtures
echo "== what OpenSearch holds" >&2
"$bin" report
if [ -n "${started_here:-}" ]; then
  echo "== OpenSearch is still running at $OPENSEARCH_ENDPOINT; 'make stop' stops it" >&2
fi
