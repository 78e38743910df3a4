#!/usr/bin/env bash
# Invoke the Lambda function locally with a fixture, the way Lambda runs it, without Docker:
#
#   scripts/invoke.sh fixtures/console-login-failure.json      (make invoke FIXTURE=...)
#
# Runs the debug `bootstrap` under cargo-lambda's Lambda runtime API emulator
# (`cargo lambda watch --only-lambda-apis`), sends the file with `cargo lambda invoke --data-file`,
# prints the function's response and its summary log line, and stops everything it started.
#
# Target: OPENSEARCH_ENDPOINT if set (with AUTH, default sigv4, and the rest of the function's
# variables from the environment); otherwise the local node of scripts/opensearch.sh, started if
# none answers and left running like `make demo` does (`make stop` stops it), with env.json's
# settings (AUTH=none, INDEX_REPLICAS=0). With Docker, `sam local invoke -e FILE` does the same
# (README, "Try it locally with SAM").
#
# Between the function and the emulator runs scripts/runtime-api-shim.py: cargo-lambda 1.9 sends
# the constant `Lambda-Runtime-Deadline-Ms: 600000` instead of an absolute time, a deadline long
# past, which the function ignores (it would run with no deadline at all). The shim sends
# now + the template's Timeout instead, as Lambda does.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixture=${1:-${FIXTURE:-}}
[[ -n $fixture ]] || { echo "usage: $0 FIXTURE.json   (make invoke FIXTURE=fixtures/console-login-failure.json)" >&2; exit 2; }
[[ -f $fixture ]] || { echo "invoke.sh: no such file: $fixture" >&2; exit 2; }
fixture=$(cd "$(dirname "$fixture")" && pwd)/$(basename "$fixture")
cd "$root"
log() { printf 'invoke.sh: %s\n' "$*" >&2; }

lambda_bin=$(bash scripts/tool-venv.sh lambda)
log "building bootstrap (debug)"
cargo build --quiet --bin bootstrap

# The function's environment: env.json's Indexer section, then the target.
declare -a fn_env=()
while IFS= read -r line; do fn_env+=("$line"); done < <(python3 -c '
import json, sys
for k, v in json.load(open("env.json"))["Indexer"].items():
    print(f"{k}={v}")')
if [[ -n ${OPENSEARCH_ENDPOINT:-} ]]; then
  log "target: $OPENSEARCH_ENDPOINT (AUTH=${AUTH:-sigv4})"
  fn_env+=("OPENSEARCH_ENDPOINT=$OPENSEARCH_ENDPOINT" "AUTH=${AUTH:-sigv4}")
  for var in OPENSEARCH_REGION SIGV4_SERVICE BASIC_AUTH_USER BASIC_AUTH_PASSWORD INDEX_PREFIX \
    INDEX_REPLICAS RAW_MESSAGE AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN; do
    if [[ -n ${!var:-} ]]; then fn_env+=("$var=${!var}"); fi
  done
else
  url=$(scripts/opensearch.sh start)
  log "target: the local node at $url"
  fn_env+=("OPENSEARCH_ENDPOINT=$url")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cwl-invoke.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {  # PORT PID NAME
  for _ in $(seq 1 600); do
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null; then
      return 0
    fi
    kill -0 "$2" 2>/dev/null || { log "$3 exited:"; cat "$work/$3.log" >&2; exit 1; }
    sleep 0.2
  done
  log "$3 is not listening on $1"; exit 1
}

# The emulator reads a Cargo manifest at start: an empty package keeps it off this repository's locks.
mkdir -p "$work/emulator/src"
printf '[package]\nname = "emulator"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n' >"$work/emulator/Cargo.toml"
echo 'fn main() {}' >"$work/emulator/src/main.rs"
port=$(free_port)
(cd "$work/emulator" && exec "$lambda_bin/cargo-lambda" lambda watch --only-lambda-apis \
  --invoke-address 127.0.0.1 --invoke-port "$port") >"$work/emulator.log" 2>&1 &
pids+=($!)
wait_port "$port" "$!" emulator

timeout_s=$(awk '$1 == "Timeout:" {print $2}' template.yaml)
python3 scripts/runtime-api-shim.py --upstream "127.0.0.1:$port" --timeout-ms "$((timeout_s * 1000))" \
  >"$work/shim.out" 2>"$work/shim.log" &
pids+=($!)
for _ in $(seq 1 100); do [[ -s $work/shim.out ]] && break; sleep 0.1; done
shim_port=$(awk -F: '/^listening on/ {print $NF}' "$work/shim.out")
[[ -n $shim_port ]] || { log "the shim did not start:"; cat "$work/shim.log" >&2; exit 1; }

env -i "${fn_env[@]}" \
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$shim_port/.rt" AWS_LAMBDA_FUNCTION_NAME=bootstrap \
  AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
  AWS_LAMBDA_LOG_FORMAT=JSON AWS_LAMBDA_LOG_LEVEL="${AWS_LAMBDA_LOG_LEVEL:-INFO}" \
  "$root/target/debug/bootstrap" >"$work/function.log" 2>&1 &
pids+=($!)

log "cargo lambda invoke --data-file $fixture"
status=0
"$lambda_bin/cargo-lambda" lambda invoke --invoke-address 127.0.0.1 --invoke-port "$port" \
  --data-file "$fixture" --output-format json >"$work/response.json" 2>"$work/invoke.err" || status=$?
sleep 0.2  # let the function's last log line reach its file

echo "== response"
if [[ $status -eq 0 ]]; then
  python3 -m json.tool "$work/response.json" 2>/dev/null || cat "$work/response.json"
else
  cat "$work/response.json" "$work/invoke.err"
fi
echo "== summary log line"
grep '"invocation summary"' "$work/function.log" || { echo "(none; the function's log follows)"; cat "$work/function.log"; }
exit "$status"
