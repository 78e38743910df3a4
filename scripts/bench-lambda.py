#!/usr/bin/env python3
"""Drives the `bootstrap` binary through a local Lambda runtime API, for the cold-start and memory benches.

    python3 scripts/bench-lambda.py coldstart --binary B [--runs 30] [--env K=V ...]
    python3 scripts/bench-lambda.py memory --binary B --event FILE [--repeat N] [--env K=V ...]

The runtime API here is the part of it the function's loop uses, on 127.0.0.1, in this process:
`GET /2018-06-01/runtime/invocation/next` hands out an invocation (with the headers Lambda sends:
request id, absolute deadline, function ARN, trace id), `POST .../invocation/<id>/response|error` takes
its answer. Standard library only.

coldstart: per run, the clock starts just before the binary is spawned (fork + exec included) and stops
when its first `next` request arrives: config parsing, credential loading, client construction, GeoIP
and rules loading all happen before that. The process is then killed. Prints JSON with every run's ms.

memory: serves FILE as the payload of REPEAT invocations in a row, then reads the process's peak resident
set (VmHWM in /proc/<pid>/status, the whole process, since exec) while it waits on the next `next`, and
its VmHWM at the first `next` (after init, before any invocation). Prints JSON with both, in KiB, and each
invocation's response (the handler's summary).
"""

import argparse
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

PREFIX = "/2018-06-01/runtime/invocation/"


class State:
    def __init__(self, payloads):
        self.payloads = list(payloads)  # bodies still to hand out
        self.lock = threading.Lock()
        self.first_next = None  # perf_counter_ns of the first `next`
        self.first_next_event = threading.Event()
        self.responses = []
        self.done = threading.Event()  # every payload answered and the next `next` arrived
        self.hwm_at_first_next = None
        self.pid = None
        self.serial = 0


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def make_handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.startswith(PREFIX + "next"):
                return self.reply(404, b"{}")
            with state.lock:
                if state.first_next is None:
                    state.first_next = time.perf_counter_ns()
                    if state.pid:
                        state.hwm_at_first_next = vm_hwm_kib(state.pid)
                    state.first_next_event.set()
                payload = state.payloads.pop(0) if state.payloads else None
                state.serial += 1
                serial = state.serial
            if payload is None:
                state.done.set()
                # Hold the long poll until the process is killed, as Lambda would freeze it.
                time.sleep(3600)
                return
            deadline = int(time.time() * 1000) + 300_000
            self.reply(200, payload, {
                "Lambda-Runtime-Aws-Request-Id": f"bench-{serial}",
                "Lambda-Runtime-Deadline-Ms": str(deadline),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:111122223333:function:cwl-indexer",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            })

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            if self.path.startswith(PREFIX) and (self.path.endswith("/response") or self.path.endswith("/error")):
                kind = self.path.rsplit("/", 1)[1]
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = body.decode(errors="replace")
                state.responses.append({"kind": kind, "body": parsed})
                return self.reply(202, b'{"status":"OK"}')
            if self.path.startswith("/2018-06-01/runtime/init/error"):
                state.responses.append({"kind": "init-error", "body": body.decode(errors="replace")})
                state.first_next_event.set()
                state.done.set()
                return self.reply(202, b'{"status":"OK"}')
            self.reply(404, b"{}")

        def reply(self, code, body, headers=None):
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

    return Handler


def serve(state):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def environment(port, extra):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "cwl-indexer",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cwl-indexer",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "RUST_LOG": "warn",
    }
    for kv in extra:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def spawn(binary, env):
    return subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop(proc):
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    return err.decode(errors="replace")


def coldstart(args):
    times = []
    for _ in range(args.runs):
        state = State([])
        server = serve(state)
        env = environment(server.server_address[1], args.env)
        t0 = time.perf_counter_ns()
        proc = spawn(args.binary, env)
        ok = state.first_next_event.wait(10)
        err = stop(proc)
        server.shutdown()
        if not ok or state.first_next is None or state.responses:
            sys.exit(f"bootstrap never asked for an invocation: {state.responses} {err[-2000:]}")
        times.append((state.first_next - t0) / 1e6)
    print(json.dumps({"runs": times, "median_ms": statistics.median(times), "min_ms": min(times),
                      "max_ms": max(times)}))


def memory(args):
    with open(args.event, "rb") as f:
        payload = f.read()
    state = State([payload] * args.repeat)
    server = serve(state)
    env = environment(server.server_address[1], args.env)
    proc = spawn(args.binary, env)
    state.pid = proc.pid
    finished = state.done.wait(args.timeout)
    hwm = vm_hwm_kib(proc.pid) if finished else None
    err = stop(proc)
    server.shutdown()
    errors = [r for r in state.responses if r["kind"] != "response"]
    if not finished or errors or len(state.responses) != args.repeat:
        sys.exit(f"invocations failed: {json.dumps(state.responses)[:2000]} {err[-2000:]}")
    print(json.dumps({"vm_hwm_kib": hwm, "vm_hwm_after_init_kib": state.hwm_at_first_next,
                      "responses": [r["body"] for r in state.responses]}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("coldstart")
    c.add_argument("--runs", type=int, default=30)
    m = sub.add_parser("memory")
    m.add_argument("--event", required=True)
    m.add_argument("--repeat", type=int, default=1)
    m.add_argument("--timeout", type=float, default=300)
    for s in (c, m):
        s.add_argument("--binary", required=True)
        s.add_argument("--env", action="append", default=[], metavar="K=V")
    args = p.parse_args()
    (coldstart if args.cmd == "coldstart" else memory)(args)


if __name__ == "__main__":
    main()
