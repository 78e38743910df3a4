#!/usr/bin/env python3
"""A loopback shim in front of cargo-lambda's Lambda runtime API emulator.

    python3 scripts/runtime-api-shim.py --upstream 127.0.0.1:9300 [--port 0] [--timeout-ms 300000]

Prints "listening on 127.0.0.1:<port>" on stdout once it accepts connections, then forwards
every request to the emulator unchanged, and every answer back unchanged but one header.

Why: `cargo lambda watch` (1.9.x) answers `GET .../runtime/invocation/next` with the constant
`Lambda-Runtime-Deadline-Ms: 600000`, where the runtime API (and real Lambda) send the deadline
as an absolute time, in Unix milliseconds. lambda_runtime reads it as 1970-01-01T00:10:00Z: a
deadline already past, which cwl-indexer ignores (with a warning), so under the bare emulator it
runs with no deadline at all and its deadline handling (DEADLINE_MARGIN_MS, capped attempts) is
never exercised. The shim rewrites that header to `now + --timeout-ms` (the function's Timeout in
template.yaml), which is what Lambda sends.

Only loopback: it listens on 127.0.0.1 and refuses an upstream that is not a loopback address.
Standard library only. Long polls (`/next` waits for an invocation) are forwarded without a
timeout, one thread per connection.
"""

import argparse
import http.client
import http.server
import ipaddress
import socket
import sys
import time

DEADLINE_HEADER = "lambda-runtime-deadline-ms"
# Hop-by-hop headers are the proxy's own business; Content-Length is recomputed.
SKIP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
}


class Shim(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runtime-api-shim"

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self):
        body = self._body()
        upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in SKIP}
            headers["Host"] = f"{self.server.upstream_host}:{self.server.upstream_port}"
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                lname = name.lower()
                if lname in SKIP:
                    continue
                if lname == DEADLINE_HEADER:
                    value = str(int(time.time() * 1000) + self.server.timeout_ms)
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError as e:
            self.send_error(502, f"upstream {self.server.upstream_host}:{self.server.upstream_port}: {e}")
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("runtime-api-shim: " + (fmt % args) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of `cargo lambda watch` (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on, on 127.0.0.1 (0: any free port)")
    parser.add_argument("--timeout-ms", type=int, default=300_000, help="the function's timeout (template.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args()

    host, _, port = args.upstream.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        parser.error(f"--upstream must be a loopback address, not {host}")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Shim)
    server.daemon_threads = True
    server.upstream_host, server.upstream_port = host, int(port)
    server.timeout_ms = args.timeout_ms
    server.verbose = args.verbose
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
