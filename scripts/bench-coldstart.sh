#!/usr/bin/env bash
# Cold start: from exec of target/release/bootstrap to its first request to the runtime API's
# `next` endpoint, against the local runtime API of scripts/bench-lambda.py (loopback, no node).
#
#   scripts/bench-coldstart.sh          (BENCH_RUNS=30 runs per configuration; BENCH_QUICK=1: 10)
#
# Two configurations: `minimal` (AUTH=none, no signals) and `deployed` (the environment
# template.yaml sets: SigV4 with the role's credentials in the environment, gzip, setup on first
# write, Dashboards URL, detections, GeoIP databases, an SNS alert topic). The endpoint is a closed
# loopback port: a network call at init would fail or stall, and shows up here.
# Also the size of the binary and of its zip -9 (target/bench/bootstrap.zip).
# Writes target/bench/coldstart.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${BENCH_RUNS:-$([[ -n ${BENCH_QUICK:-} ]] && echo 10 || echo 30)}
cargo build --release --locked --bin bootstrap
bin=target/release/bootstrap
mkdir -p target/bench
common=(--env OPENSEARCH_ENDPOINT=http://127.0.0.1:9 --env INDEX_PREFIX=cwl)
minimal=("${common[@]}" --env AUTH=none --env DETECTIONS=false)
deployed=("${common[@]}" --env AUTH=sigv4 --env OPENSEARCH_REGION=us-east-1 --env SIGV4_SERVICE=es
  --env AWS_ACCESS_KEY_ID=AKIDEXAMPLE --env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
  --env AWS_SESSION_TOKEN=bench --env COMPRESSION=gzip --env INSTALL_TEMPLATE=true --env RETENTION_DAYS=90
  --env BULK_MAX_BYTES=5242880 --env MAX_PAYLOAD_BYTES=16777216 --env MAX_ATTEMPTS=8
  --env DASHBOARDS_URL=http://127.0.0.1:9/_dashboards --env DETECTIONS=true
  --env GEOIP_DB="$PWD/fixtures/geo/city-subset.mmdb" --env GEOIP_ASN_DB="$PWD/fixtures/geo/asn-subset.mmdb"
  --env ALERT_TOPIC_ARN=arn:aws:sns:us-east-1:111122223333:cwl-indexer-alerts --env ALERT_MIN_SEVERITY=high)
# The deployment artifact's size: the binary zipped at level 9 as `bootstrap` (what Lambda takes).
python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z: z.write(sys.argv[1], "bootstrap")' \
  "$bin" target/bench/bootstrap.zip
{
  printf '{"binary_bytes": %s, "zip_bytes": %s,\n' "$(stat -c %s "$bin")" "$(stat -c %s target/bench/bootstrap.zip)"
  printf '"minimal": %s,\n' "$(python3 scripts/bench-lambda.py coldstart --binary "$bin" --runs "$runs" "${minimal[@]}")"
  printf '"deployed": %s}\n' "$(python3 scripts/bench-lambda.py coldstart --binary "$bin" --runs "$runs" "${deployed[@]}")"
} >target/bench/coldstart.json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in ("minimal", "deployed"): print("cold start %s: median %.1f ms (min %.1f, max %.1f)" % (k, d[k]["median_ms"], d[k]["min_ms"], d[k]["max_ms"]))' target/bench/coldstart.json
