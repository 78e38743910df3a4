#!/usr/bin/env bash
# Run a command against a healthy OpenSearch node:
#
#   scripts/with-opensearch.sh CMD [ARGS...]
#
# Calls `scripts/opensearch.sh start` (which reuses a node that is already running, or the cluster
# at OPENSEARCH_URL when one answers there), exports OPENSEARCH_URL pointing at it, runs CMD, and on
# exit (success, failure, Ctrl-C or TERM) stops the node only if this call started it. Exits with
# CMD's exit code (130/143 when interrupted).
#
# Every setting of scripts/opensearch.sh applies (OPENSEARCH_VERSION, OPENSEARCH_PORT, ...).
# "Started by this call" comes from OPENSEARCH_STARTED_FILE: opensearch.sh writes "started" into
# that file as soon as it launches a node, or "reused" when it reuses one.
#
# Two concurrent calls share a node: the one that started it stops it when its CMD ends,
# even if the other is still using it. Start one beforehand (scripts/opensearch.sh start) to avoid that.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -eq 0 ]]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

marker=$(mktemp "${TMPDIR:-/tmp}/with-opensearch.XXXXXX")

# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
  trap - EXIT INT TERM
  if [[ $(cat "$marker" 2>/dev/null) == started ]]; then
    "$here/opensearch.sh" stop || echo "with-opensearch.sh: warning: could not stop the node" >&2
  fi
  rm -f "$marker"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

OPENSEARCH_URL=$(OPENSEARCH_STARTED_FILE=$marker "$here/opensearch.sh" start)
export OPENSEARCH_URL

status=0
"$@" || status=$?
exit "$status"
