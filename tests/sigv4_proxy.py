#!/usr/bin/env python3
"""SigV4-verifying reverse proxy for integration tests.

Sits in front of a plain-HTTP OpenSearch node (no security plugin), checks the
AWS Signature Version 4 of every request against credentials taken from the
environment, answers 403 (with an AWS-like JSON body) when the signature does
not verify, and forwards verified requests to the node untouched.

The signature is recomputed with botocore, an implementation independent of
the Rust `aws-sigv4` crate the indexer uses, so a test that passes through this
proxy proves the indexer signs the way AWS checks.

Usage:
    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... [AWS_SESSION_TOKEN=...] \\
    .venv/bin/python tests/sigv4_proxy.py --upstream http://127.0.0.1:9200 \\
        --region eu-west-1 --service es --port 0

The first line on stdout is exactly `listening on http://127.0.0.1:<port>`
(flushed); nothing else is ever written to stdout. One line per request goes
to stderr: method, path, status and verdict. Secrets, session tokens and
signatures are never logged.

`GET /__sigv4_proxy/stats` (not verified, not forwarded, not counted) returns
`{"verified": n, "rejected": m}`. Every other request counts as exactly one of
the two: "verified" once its signature checked out (whatever the upstream then
answered, including a 502 if the upstream is down), "rejected" when the proxy
answered it itself with a 4xx/5xx before forwarding (bad signature, missing
auth, malformed framing, oversized body...).

How verification follows AWS (and where botocore needed help)
--------------------------------------------------------------
* The Authorization header is parsed (`AWS4-HMAC-SHA256 Credential=AKID/
  yyyymmdd/region/service/aws4_request, SignedHeaders=a;b, Signature=hex`).
  Access key id, region, service, terminator and scope date (== date part of
  X-Amz-Date) are checked; `host` and `x-amz-date` must be signed; a configured
  session token must be sent in `x-amz-security-token`, equal and signed (and a
  token is refused when none is configured); X-Amz-Date must be within
  --max-skew-seconds (default 900 = AWS's 15 minutes) of the proxy's clock.
* `x-amz-content-sha256`, when present, must equal the hex SHA-256 of the body
  bytes exactly as received (so `UNSIGNED-PAYLOAD` and the aws-chunked
  `STREAMING-...` modes are refused). For service `aoss` the header is required.
* The canonical request is computed by botocore's `SigV4Auth.canonical_request`
  (then `string_to_sign`, `signature`) on an `AWSRequest` holding the method,
  `http://<Host as received><path as received>`, the body bytes as received
  (possibly gzip; never decoded) and ONLY the headers named in SignedHeaders,
  with their received values; `context["timestamp"]` = X-Amz-Date. botocore's
  `add_auth` is never called. Two botocore behaviours are adjusted:
  1. Header set: `SigV4Auth.headers_to_sign` drops every header in
     `botocore.auth.SIGNED_HEADERS_BLACKLIST` (user-agent, expect, connection,
     transfer-encoding, keep-alive, te, trailer, upgrade, x-amzn-trace-id,
     traceparent, tracestate, baggage, proxy-*). AWS itself signs whatever the
     client lists in SignedHeaders. A client that legitimately signs e.g.
     user-agent would be rejected by stock botocore, so the verifier uses a
     subclass whose `headers_to_sign` returns exactly the headers it was given
     (which are exactly the SignedHeaders), lower-cased; everything else
     (trimming, multi-value joining, sorting, path normalisation and double
     encoding, payload hash, key derivation) is botocore's own code. The
     SignedHeaders string botocore derives must also equal the one received,
     which rejects non-canonical lists (unsorted, upper case, duplicates).
  2. Query string: given a URL, botocore's `_canonical_query_string_url` only
     splits on `&` and sorts; it does NOT re-encode (botocore itself always
     signs from `params`). AWS canonicalises what it receives: every name and
     value is percent-decoded and re-encoded with the strict RFC 3986 set
     (unreserved `A-Za-z0-9-_.~` kept, everything else `%XX`). So the verifier
     decodes the received query into (name, value) pairs and hands them to
     botocore as `request.params`, which makes botocore use its strict
     `_canonical_query_string_params` encoder. E.g. a raw
     `filter_path=items.*.error` is canonicalised as `items.%2A.error`. A raw
     `+` is taken as a literal plus (`%2B`), as RFC 3986 and smithy-rs#4227
     say; aws-sigv4 1.6.4 still canonicalises it as a space (`%20`), so a
     request with a raw `+` in its query is rejected here: percent-encode `+`
     (`%2B`) or space (`%20`) in query strings. Empty `&&` segments are
     ignored.
* Signatures are compared with `hmac.compare_digest`.

Request bodies: read by Content-Length. `Transfer-Encoding: chunked` requests
are accepted and de-chunked (chunk extensions and trailers are discarded); the
signature and x-amz-content-sha256 are checked against the de-chunked bytes and
the body is forwarded with a Content-Length. Any other transfer coding gets
501, both Content-Length and Transfer-Encoding gets 400, an invalid
Content-Length gets 400, a body over --max-body-bytes gets 413 (those close
the connection). A request with neither header has an empty body (RFC 9112),
so 411 is never needed. Only header-based auth is supported (presigned URLs
are refused).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import signal
import sys
import threading
import urllib.parse

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"sigv4_proxy: cannot import botocore ({exc}); "
        "run `bash scripts/venv.sh` and use .venv/bin/python\n"
    )
    sys.exit(3)

STATS_PATH = "/__sigv4_proxy/stats"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details."
)
MSG_BAD_TOKEN = "The security token included in the request is invalid."

# Hop-by-hop headers (RFC 9110 7.6.1) plus a few that the proxy recomputes.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


class _ExactHeadersSigV4Auth(SigV4Auth):
    """botocore's SigV4Auth, except that the signed header set is exactly the
    headers on the request (the verifier puts only the SignedHeaders there).

    Stock `headers_to_sign` silently drops SIGNED_HEADERS_BLACKLIST entries
    (user-agent, expect, ...), which AWS does not do when verifying: a client
    that signed one of them would otherwise be rejected here but accepted by
    AWS. The verifier always sets a Host header, so botocore's host-from-URL
    fallback is not needed.
    """

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


class Rejection(Exception):
    """A request that fails verification: becomes a 403 (or `status`)."""

    def __init__(self, reason, message, status=403, extra=None):
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status
        self.extra = extra or {}

    def body(self):
        doc = {"message": self.message, "reason": self.reason}
        doc.update(self.extra)
        return json.dumps(doc).encode()


def _fmt(ts):
    return ts.strftime(AMZ_DATE_FORMAT)


def split_target(target):
    """Split a request-target into (path, query) without decoding anything."""
    if target.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(target)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
    if not target.startswith("/"):
        raise Rejection("bad-request-target", f"unsupported request target {target[:80]!r}", status=400)
    path, _, query = target.partition("?")
    return path, query


def decoded_query_pairs(query):
    """The received query as percent-decoded (name, value) pairs.

    `+` stays a literal plus; `&&` / leading / trailing empty segments are
    skipped. Raises Rejection if a decoded name or value is not UTF-8.
    """
    pairs = []
    for segment in query.split("&"):
        if not segment:
            continue
        name, _, value = segment.partition("=")
        try:
            pairs.append(
                (
                    urllib.parse.unquote_to_bytes(name).decode("utf-8"),
                    urllib.parse.unquote_to_bytes(value).decode("utf-8"),
                )
            )
        except UnicodeDecodeError:
            raise Rejection("bad-query", "query string is not percent-encoded UTF-8") from None
    return pairs


class Verifier:
    """Verifies SigV4 header authentication the way AWS does, using botocore."""

    def __init__(self, access_key, secret_key, session_token, region, service, max_skew_seconds=900):
        self.access_key = access_key
        self.session_token = session_token or None
        self.region = region
        self.service = service
        self.max_skew = _dt.timedelta(seconds=max_skew_seconds)
        self.credentials = Credentials(access_key, secret_key, self.session_token)

    def verify(self, method, target, headers, body, now=None):
        """Raise Rejection unless the request carries a valid signature.

        method: request method; target: the request-target exactly as received
        (path and query, still percent-encoded); headers: list of (name, value)
        as received, duplicates included; body: the body bytes as received.
        """
        now = now or _dt.datetime.now(_dt.timezone.utc)
        by_name = {}
        for name, value in headers:
            by_name.setdefault(name.lower(), []).append(value)

        path, query = split_target(target)

        # --- Authorization header -------------------------------------------
        auth_values = by_name.get("authorization", [])
        if not auth_values:
            if re.search(r"(^|&)X-Amz-(Signature|Credential)=", query, re.I):
                raise Rejection("presigned-url", "Query-string (presigned URL) authentication is not supported by this proxy.")
            raise Rejection("missing-authorization", "Missing Authentication Token")
        if len(auth_values) > 1:
            raise Rejection("multiple-authorization", "Only one Authorization header is allowed.")
        auth = auth_values[0].strip()
        algorithm, _, rest = auth.partition(" ")
        if algorithm != "AWS4-HMAC-SHA256":
            raise Rejection("bad-algorithm", "Authorization header must use the AWS4-HMAC-SHA256 algorithm.")
        fields = {}
        for component in rest.split(","):
            key, eq, value = component.strip().partition("=")
            if not eq or key in fields:
                raise Rejection("malformed-authorization", f"Malformed Authorization header component {key[:40]!r}.")
            fields[key] = value.strip()
        missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
        if missing:
            raise Rejection(
                "malformed-authorization",
                " ".join(f"Authorization header requires '{k}' parameter." for k in missing),
            )
        extra_keys = sorted(set(fields) - {"Credential", "SignedHeaders", "Signature"})
        if extra_keys:
            raise Rejection("malformed-authorization", f"Unexpected Authorization parameters {extra_keys}.")

        # --- credential scope -----------------------------------------------
        scope = fields["Credential"].split("/")
        if len(scope) != 5:
            raise Rejection("malformed-credential", "Credential must have the form AKID/yyyymmdd/region/service/aws4_request.")
        akid, scope_date, scope_region, scope_service, terminator = scope
        if not hmac.compare_digest(akid.encode(), self.access_key.encode()):
            raise Rejection("unknown-access-key", MSG_BAD_TOKEN)
        if terminator != "aws4_request":
            raise Rejection("bad-terminator", "Credential should be scoped with a valid terminator: 'aws4_request'.")
        if scope_region != self.region:
            raise Rejection(
                "wrong-region",
                f"Credential should be scoped to a valid region. (got {scope_region!r}, expected {self.region!r})",
            )
        if scope_service != self.service:
            raise Rejection("wrong-service", f"Credential should be scoped to correct service: '{self.service}'.")

        # --- X-Amz-Date ------------------------------------------------------
        dates = by_name.get("x-amz-date", [])
        if len(dates) != 1 or not AMZ_DATE_RE.match(dates[0].strip()):
            raise Rejection("bad-x-amz-date", "Requests must carry exactly one X-Amz-Date header in yyyymmddTHHMMSSZ form.")
        amz_date = dates[0].strip()
        try:
            ts = _dt.datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            raise Rejection("bad-x-amz-date", f"X-Amz-Date {amz_date!r} is not a valid date.") from None
        if scope_date != amz_date[:8]:
            raise Rejection(
                "scope-date-mismatch",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
            )
        if ts < now - self.max_skew:
            raise Rejection(
                "signature-expired",
                f"Signature expired: {amz_date} is now earlier than {_fmt(now - self.max_skew)} "
                f"({_fmt(now)} - {self.max_skew.total_seconds() / 60:g} min.)",
            )
        if ts > now + self.max_skew:
            raise Rejection(
                "signature-not-yet-current",
                f"Signature not yet current: {amz_date} is still later than {_fmt(now + self.max_skew)} "
                f"({_fmt(now)} + {self.max_skew.total_seconds() / 60:g} min.)",
            )

        # --- signed headers --------------------------------------------------
        signed_header_string = fields["SignedHeaders"]
        signed = signed_header_string.split(";")
        if any(not h for h in signed):
            raise Rejection("malformed-signed-headers", "SignedHeaders must be a ';'-separated list of header names.")
        for required in ("host", "x-amz-date"):
            if required not in signed:
                raise Rejection("unsigned-required-header", f"'{required}' must be a signed header.")
        absent = [h for h in signed if h.lower() not in by_name]
        if absent:
            raise Rejection("signed-header-missing", f"Signed header(s) {absent} not present in the request.")
        host_values = by_name.get("host", [])
        if len(host_values) != 1 or not HOST_RE.match(host_values[0].strip()):
            raise Rejection("bad-host", "Exactly one well-formed Host header is required.")
        host = host_values[0].strip()

        # --- session token ---------------------------------------------------
        tokens = by_name.get("x-amz-security-token", [])
        if self.session_token is not None:
            if len(tokens) != 1 or not hmac.compare_digest(tokens[0].strip().encode(), self.session_token.encode()):
                raise Rejection("bad-security-token", MSG_BAD_TOKEN)
            if "x-amz-security-token" not in signed:
                raise Rejection("unsigned-security-token", "'x-amz-security-token' must be a signed header.")
        elif tokens:
            raise Rejection("unexpected-security-token", MSG_BAD_TOKEN + " (the proxy has no session token configured)")

        # --- payload hash ----------------------------------------------------
        body_sha = hashlib.sha256(body).hexdigest()
        content_sha = by_name.get("x-amz-content-sha256", [])
        if self.service == "aoss" and not content_sha:
            raise Rejection("missing-content-sha256", "Requests to 'aoss' must carry an x-amz-content-sha256 header.")
        if content_sha:
            if len(content_sha) != 1 or content_sha[0].strip() != body_sha:
                raise Rejection(
                    "content-sha256-mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    extra={"computed_content_sha256": body_sha},
                )

        # --- recompute with botocore ----------------------------------------
        pairs = decoded_query_pairs(query)
        url = f"http://{host}{path}" + (f"?{query}" if pairs else "")
        request = AWSRequest(method=method, url=url, data=body, params=pairs)
        signed_lower = {h.lower() for h in signed}
        for name, value in headers:
            if name.lower() in signed_lower:
                request.headers[name] = value
        request.context["timestamp"] = amz_date
        signer = _ExactHeadersSigV4Auth(self.credentials, self.service, self.region)
        canonical_request = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical_request)
        expected = signer.signature(string_to_sign, request)
        canonical_signed = signer.signed_headers(signer.headers_to_sign(request))

        provided = fields["Signature"]
        if canonical_signed != signed_header_string:
            raise Rejection(
                "non-canonical-signed-headers",
                MSG_MISMATCH + f" (SignedHeaders must be lower-case, sorted and unique: expected '{canonical_signed}')",
                extra=self._debug(canonical_request, string_to_sign),
            )
        if not hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace")):
            raise Rejection("signature-mismatch", MSG_MISMATCH, extra=self._debug(canonical_request, string_to_sign))

    def _debug(self, canonical_request, string_to_sign):
        # Like AWS, show what the server computed (helps debug a signer); the
        # session token value is redacted. Never written to the log.
        if self.session_token:
            canonical_request = canonical_request.replace(self.session_token, "<redacted>")
        return {"canonical_request": canonical_request, "string_to_sign": string_to_sign}


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.verified = 0
        self.rejected = 0

    def add(self, verified):
        with self._lock:
            if verified:
                self.verified += 1
            else:
                self.rejected += 1

    def snapshot(self):
        with self._lock:
            return {"verified": self.verified, "rejected": self.rejected}


def _log(line):
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _loggable_target(target):
    path, sep, query = target.partition("?")
    if sep:
        query = re.sub(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&]*", r"\1<redacted>", query)
        if len(query) > 200:
            query = query[:200] + "..."
    return path + sep + query


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigv4-proxy/1"
    timeout = 300  # idle keep-alive connections are dropped after this

    # Configured by make_server().
    verifier: Verifier
    stats: Stats
    upstream: urllib.parse.SplitResult
    upstream_timeout: float
    max_body_bytes: int

    def log_message(self, format, *args):  # noqa: A002 - base-class signature
        pass  # one line per request is written by _log_request instead

    def _log_request(self, status, verdict):
        _log(f"sigv4-proxy: {self.command} {_loggable_target(self.path)} -> {status} {verdict}")

    # --- helpers --------------------------------------------------------------
    def _send_simple(self, status, body, content_type="application/json", close=False):
        self._response_started = True
        self.send_response_only(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", self.date_time_string())
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _count(self, verified):
        self._counted = True
        self.stats.add(verified)

    def _reject(self, rej, close=False):
        self._count(False)
        self._send_simple(rej.status, rej.body(), close=close)
        self._log_request(rej.status, f"rejected ({rej.reason})")

    def _read_body(self):
        """The body bytes exactly as received (de-chunked). Raises Rejection;
        on framing errors the connection must be closed (body not consumed)."""
        te = [v.strip().lower() for v in self.headers.get_all("Transfer-Encoding", [])]
        cl = self.headers.get_all("Content-Length", [])
        if te:
            if cl:
                raise Rejection("bad-framing", "Both Content-Length and Transfer-Encoding sent.", status=400)
            if te != ["chunked"]:
                raise Rejection("unsupported-transfer-encoding", f"Transfer-Encoding {te} not supported.", status=501)
            return self._read_chunked()
        if not cl:
            return b""
        if len(set(v.strip() for v in cl)) != 1 or not cl[0].strip().isdigit():
            raise Rejection("bad-content-length", "Invalid Content-Length.", status=400)
        length = int(cl[0].strip())
        if length > self.max_body_bytes:
            raise Rejection("body-too-large", f"Request body over {self.max_body_bytes} bytes.", status=413)
        body = self.rfile.read(length)
        if len(body) != length:
            raise Rejection("short-body", "Connection closed before the whole body arrived.", status=400)
        return body

    def _read_chunked(self):
        chunks = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise Rejection("bad-chunk", "Malformed chunk size line.", status=400)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Rejection("bad-chunk", "Malformed chunk size.", status=400) from None
            if size < 0:
                raise Rejection("bad-chunk", "Malformed chunk size.", status=400)
            if size == 0:
                break
            total += size
            if total > self.max_body_bytes:
                raise Rejection("body-too-large", f"Request body over {self.max_body_bytes} bytes.", status=413)
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.read(2) != b"\r\n":
                raise Rejection("bad-chunk", "Truncated or malformed chunk.", status=400)
            chunks.append(data)
        while True:  # trailer section, discarded
            line = self.rfile.readline(8192)
            if not line.endswith(b"\n"):
                raise Rejection("bad-chunk", "Malformed chunked trailer.", status=400)
            if line in (b"\r\n", b"\n"):
                break
        return b"".join(chunks)

    # --- request handling -----------------------------------------------------
    def _handle(self):
        if self.command == "GET" and self.path.partition("?")[0] == STATS_PATH:
            self._send_simple(200, json.dumps(self.stats.snapshot()).encode())
            self._log_request(200, "stats")
            return
        try:
            body = self._read_body()
        except Rejection as rej:
            self._reject(rej, close=True)
            return
        headers = list(self.headers.items())
        try:
            self.verifier.verify(self.command, self.path, headers, body)
        except Rejection as rej:
            self._reject(rej)
            return
        self._count(True)
        self._forward(headers, body)

    def _forward(self, headers, body):
        path, query = split_target(self.path)
        target = self.upstream.path.rstrip("/") + path + (f"?{query}" if query else "")
        connection_tokens = set()
        for value in self.headers.get_all("Connection", []):
            connection_tokens.update(t.strip().lower() for t in value.split(","))
        drop = HOP_BY_HOP | connection_tokens | {"host", "content-length", "expect"}
        had_body_framing = "Content-Length" in self.headers or "Transfer-Encoding" in self.headers
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port or 80, timeout=self.upstream_timeout)
        try:
            conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.upstream.netloc)
            for name, value in headers:
                if name.lower() not in drop:
                    conn.putheader(name, value)
            if body or had_body_framing:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            resp_headers = resp.getheaders()
            status, reason = resp.status, resp.reason
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            doc = {"message": f"sigv4-proxy: upstream request failed: {type(exc).__name__}: {exc}"}
            self._send_simple(502, json.dumps(doc).encode())
            self._log_request(502, "verified (upstream error)")
            return
        conn.close()

        resp_tokens = set()
        for name, value in resp_headers:
            if name.lower() == "connection":
                resp_tokens.update(t.strip().lower() for t in value.split(","))
        resp_drop = HOP_BY_HOP | resp_tokens | {"content-length"}
        self._response_started = True
        self.send_response_only(status, reason)
        upstream_length = None
        for name, value in resp_headers:
            lname = name.lower()
            if lname == "content-length":
                upstream_length = value
            if lname not in resp_drop:
                self.send_header(name, value)
        if status in (204, 304) or status < 200:
            pass
        elif self.command == "HEAD":
            self.send_header("Content-Length", upstream_length if upstream_length is not None else "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)
        self._log_request(status, "verified")

    def handle_one_request(self):
        # Same as the base class, but dispatches every method to _handle.
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._response_started = self._counted = False
            try:
                self._handle()
            except (OSError, TimeoutError):
                raise
            except Exception as exc:  # a proxy bug: answer 500, never hang the client
                _log(f"sigv4-proxy: internal error: {type(exc).__name__}: {exc}")
                if not self._counted:
                    self._count(False)
                if not self._response_started:
                    doc = {"message": f"sigv4-proxy internal error: {type(exc).__name__}"}
                    self._send_simple(500, json.dumps(doc).encode(), close=True)
                self.close_connection = True
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True


def make_server(upstream, region, service, access_key, secret_key, session_token=None,
                port=0, max_skew_seconds=900, max_body_bytes=100 * 1024 * 1024, upstream_timeout=60.0):
    parsed = urllib.parse.urlsplit(upstream)
    if parsed.scheme != "http" or not parsed.hostname:
        raise ValueError(f"--upstream must be an http:// URL, got {upstream!r}")
    handler = type(
        "ConfiguredProxyHandler",
        (ProxyHandler,),
        {
            "verifier": Verifier(access_key, secret_key, session_token, region, service, max_skew_seconds),
            "stats": Stats(),
            "upstream": parsed,
            "upstream_timeout": upstream_timeout,
            "max_body_bytes": max_body_bytes,
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="plain-HTTP OpenSearch URL, e.g. http://127.0.0.1:9200")
    parser.add_argument("--region", required=True)
    parser.add_argument("--service", default="es", help="es (managed domains) or aoss (serverless)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--max-skew-seconds", type=int, default=900)
    parser.add_argument("--max-body-bytes", type=int, default=100 * 1024 * 1024)
    parser.add_argument("--upstream-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    access_key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        parser.error("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set in the environment")
    try:
        server = make_server(
            args.upstream, args.region, args.service, access_key, secret_key,
            os.environ.get("AWS_SESSION_TOKEN") or None, args.port,
            args.max_skew_seconds, args.max_body_bytes, args.upstream_timeout,
        )
    except ValueError as exc:
        parser.error(str(exc))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = server.server_address[1]
    sys.stdout.write(f"listening on http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    _log(
        f"sigv4-proxy: verifying service={args.service} region={args.region} "
        f"session_token={'yes' if os.environ.get('AWS_SESSION_TOKEN') else 'no'}, upstream {args.upstream}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
