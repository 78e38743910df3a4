#!/usr/bin/env bash
# Peak memory: peak RSS (VmHWM, the whole process since exec) of target/release/bootstrap serving
# the largest payloads CloudWatch Logs can send, through the local runtime API of
# scripts/bench-lambda.py, indexing into a real OpenSearch node.
#
#   OPENSEARCH_PORT=9282 scripts/bench-memory.sh    (starts and stops a node unless OPENSEARCH_URL answers)
#
# Payloads (scripts/bench-payloads.py): realistic.json, one 1 MB batch; async-limit.json, the
# worst case under Lambda's 256 KB asynchronous event limit (6.9 MB decompressed). Each with the
# default BULK_MAX_BYTES (5 MiB) and with the smallest (64 KiB, many chunks): peak memory must not
# grow with the number of chunks. The deployed configuration (gzip, detections, GeoIP).
# Writes target/bench/memory.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z ${OPENSEARCH_URL:-} ]]; then
  exec scripts/with-opensearch.sh "$0" "$@"
fi
cargo build --release --locked --bin bootstrap
python3 scripts/bench-payloads.py target/bench/payloads >/dev/null
bin=target/release/bootstrap
p=target/bench/payloads
env=(--env OPENSEARCH_ENDPOINT="$OPENSEARCH_URL" --env AUTH=none --env COMPRESSION=gzip --env INDEX_REPLICAS=0
  --env DETECTIONS=true --env GEOIP_DB="$PWD/fixtures/geo/city-subset.mmdb"
  --env GEOIP_ASN_DB="$PWD/fixtures/geo/asn-subset.mmdb" --env MAX_PAYLOAD_BYTES=16777216)
cleanup() { curl -s -o /dev/null -X DELETE "$OPENSEARCH_URL/cwl-benchmem-*" || true; }
trap cleanup EXIT
cases=(
  "realistic-1MB realistic.json 5242880 1"
  "realistic-1MB-64KiB-chunks realistic.json 65536 1"
  "realistic-1MB-x5-warm realistic.json 5242880 5"
  "async-limit-6.9MB async-limit.json 5242880 1"
  "async-limit-6.9MB-64KiB-chunks async-limit.json 65536 1"
)
out=target/bench/memory.json
echo "{" >"$out"
n=0
for c in "${cases[@]}"; do
  read -r name file bulk repeat <<<"$c"
  n=$((n + 1))
  cleanup
  result=$(python3 scripts/bench-lambda.py memory --binary "$bin" --event "$p/$file" --repeat "$repeat" "${env[@]}" \
    --env INDEX_PREFIX="cwl-benchmem-$n" --env BULK_MAX_BYTES="$bulk")
  [[ $n -gt 1 ]] && echo "," >>"$out"
  printf '"%s": %s' "$name" "$result" >>"$out"
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); r=d["responses"][-1]
print("%-32s peak RSS %6.1f MiB (after init %.1f); %d events, %d chunks, %d indexed, %d B decompressed" % (sys.argv[1],
      d["vm_hwm_kib"] / 1024, d["vm_hwm_after_init_kib"] / 1024, r["events_in"], r["chunks"], r["indexed"], r["payload_bytes"]))' "$name" "$result"
done
echo "}" >>"$out"
