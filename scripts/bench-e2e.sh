#!/usr/bin/env bash
# End to end: events/s indexed into a real OpenSearch node by `cwl-indexer replay` from the e2e
# workload (scripts/bench-payloads.py: E2E_BATCHES realistic 1 MB batches), against the ceiling:
# the same bulk bodies, prebuilt by `replay --dry-run`, posted by one curl process over one
# connection, one request at a time (the CLI's concurrency: one batch, one chunk at a time).
#
#   OPENSEARCH_PORT=9282 scripts/bench-e2e.sh     (BENCH_ROUNDS=5; BENCH_QUICK=1: 2)
#
# Both with gzip bodies (COMPRESSION=gzip, as deployed; curl sends the same bodies gzipped at level 1,
# as the sink does) and uncompressed. The rounds alternate replay and curl on fresh indices (the
# templates stay), so that each ratio is taken from one stretch of this noisy machine. Replay is
# timed as a whole process (exec, decode, map, encode, send), curl as a whole process too.
# Writes target/bench/e2e.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z ${OPENSEARCH_URL:-} ]]; then
  exec scripts/with-opensearch.sh "$0" "$@"
fi
rounds=${BENCH_ROUNDS:-$([[ -n ${BENCH_QUICK:-} ]] && echo 2 || echo 5)}
cargo build --release --locked --bin cwl-indexer
python3 scripts/bench-payloads.py target/bench/payloads >/dev/null
cli=target/release/cwl-indexer
url=$OPENSEARCH_URL
prefix=cwl-benche2e
work=target/bench/e2e
rm -rf "$work" && mkdir -p "$work"
files=(target/bench/payloads/e2e/*.json)
export INDEX_PREFIX=$prefix AUTH=none INSTALL_TEMPLATE=false DETECTIONS=true RUST_LOG=warn
export GEOIP_DB=$PWD/fixtures/geo/city-subset.mmdb GEOIP_ASN_DB=$PWD/fixtures/geo/asn-subset.mmdb
trap 'curl -s -o /dev/null -X DELETE "$url/$prefix-*" || true' EXIT

"$cli" --endpoint "$url" setup --index-replicas 0 --retention-days 0 >/dev/null
# The ceiling's bodies: exactly what replay sends (one chunk per batch: each is under BULK_MAX_BYTES).
events=0
for f in "${files[@]}"; do
  b=$work/$(basename "$f" .json).ndjson
  "$cli" replay --dry-run "$f" >"$b"
  python3 -c 'import gzip,sys; open(sys.argv[2],"wb").write(gzip.compress(open(sys.argv[1],"rb").read(),1))' "$b" "$b.gz"
  events=$((events + $(wc -l <"$b") / 2))
done

fresh() { curl -sf -o /dev/null -X DELETE "$url/$prefix-*"; }
count() {
  curl -sf -o /dev/null -X POST "$url/$prefix-*/_refresh"
  curl -sf "$url/$prefix-*/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}
now() { date +%s%N; }

results=()
for r in $(seq "$rounds"); do
  for comp in gzip none; do
    fresh
    t0=$(now)
    line=$(COMPRESSION=$comp "$cli" --endpoint "$url" replay "${files[@]}")
    t1=$(now)
    n=$(count)
    [[ $n -eq $events ]] || { echo "replay indexed $n of $events: $line" >&2; exit 1; }
    wire=$(sed -E 's/.* \(([0-9]+) on the wire\).*/\1/' <<<"$line")
    fresh
    args=()
    for f in "${files[@]}"; do
      b=$work/$(basename "$f" .json).ndjson
      if [[ $comp == gzip ]]; then
        args+=(--next -s -o "$work/curl.out" -H 'Content-Type: application/x-ndjson' -H 'Content-Encoding: gzip' --data-binary "@$b.gz" "$url/_bulk")
      else
        args+=(--next -s -o "$work/curl.out" -H 'Content-Type: application/x-ndjson' --data-binary "@$b" "$url/_bulk")
      fi
    done
    t2=$(now)
    curl "${args[@]:1}"
    t3=$(now)
    n2=$(count)
    [[ $n2 -eq $events ]] || { echo "curl indexed $n2 of $events" >&2; exit 1; }
    results+=("{\"round\":$r,\"compression\":\"$comp\",\"events\":$events,\"replay_ns\":$((t1 - t0)),\"curl_ns\":$((t3 - t2)),\"replay_wire_bytes\":$wire}")
    python3 -c 'import sys; e,a,b=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3])
print(f"round {sys.argv[4]} {sys.argv[5]:4}: replay {e/a*1e9:7.0f} ev/s, curl {e/b*1e9:7.0f} ev/s, ratio {b/a:.2f}")' \
      "$events" "$((t1 - t0))" "$((t3 - t2))" "$r" "$comp"
  done
done
body=$(cat "$work"/*.ndjson | wc -c)
gz=$(cat "$work"/*.ndjson.gz | wc -c)
(IFS=,; printf '{"events": %s, "body_bytes": %s, "gzip_body_bytes": %s, "rounds": [%s]}\n' "$events" "$body" "$gz" "${results[*]}") >target/bench/e2e.json
