"""Self-test of tests/sigv4_proxy.py. Needs no OpenSearch: a stub upstream runs
in a thread, the proxy runs as a subprocess exactly as the Rust tests start it.

    bash scripts/venv.sh && .venv/bin/python -m pytest -q tests/test_sigv4_proxy.py
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import http.client
import http.server
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import threading
import urllib.parse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = pathlib.Path(__file__).resolve().parent
PROXY = HERE / "sigv4_proxy.py"

_spec = importlib.util.spec_from_file_location("sigv4_proxy", PROXY)
sigv4_proxy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sigv4_proxy)

AKID = "AKIDPROXYSELFTEST"
SECRET = "proxy/self+test=secret"
TOKEN = "proxy-self-test-session-token//+=="
REGION = "eu-west-1"
SERVICE = "es"
CREDS = Credentials(AKID, SECRET, TOKEN)

def flip_byte(data, index=None):
    out = bytearray(data)
    out[len(out) // 2 if index is None else index] ^= 0x01
    return bytes(out)


BULK = (
    b'{"index":{"_index":"cloudtrail-2024.01.01","_id":"a/b"}}\n'
    b'{"eventName":"ConsoleLogin","eventTime":"2024-01-01T00:00:00Z"}\n'
)
GZ_BULK = gzip.compress(BULK, mtime=0)
QUERY_PARAMS = [("filter_path", "items.*.error"), ("x", "a/b")]
RAW_QUERY = "filter_path=items.*.error&x=a%2Fb"  # as OpenSearch clients send it
STUB_RESPONSE = gzip.compress(b'{"took":1,"errors":false,"items":[]}', mtime=0)


# --- stub upstream ----------------------------------------------------------


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []

    def log_message(self, *args):
        pass

    def _any(self):
        assert "Transfer-Encoding" not in self.headers, "proxy must forward with Content-Length"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append({"method": self.command, "target": self.path, "headers": dict(self.headers.items()), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("X-Stub", "yes")
        self.send_header("Content-Length", str(len(STUB_RESPONSE)))
        self.end_headers()
        self.wfile.write(STUB_RESPONSE)

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.fixture(scope="module")
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _start_proxy(upstream_port, stderr_file, extra_env=None, service=SERVICE):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, str(PROXY), "--upstream", f"http://127.0.0.1:{upstream_port}",
         "--region", REGION, "--service", service, "--port", "0"],
        stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL, env=env, text=True,
    )
    first = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(30)
    if not first or not first[0].startswith("listening on http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"proxy did not start: {first!r}")
    assert first[0].endswith("\n")
    port = int(first[0].strip().rsplit(":", 1)[1])
    return proc, port


class Proxy:
    def __init__(self, proc, port, log_path):
        self.proc, self.port, self.log_path = proc, port, log_path
        self.host = f"127.0.0.1:{port}"

    def log(self):
        return self.log_path.read_text()

    def stats(self):
        status, _, body = send(self.port, "GET", "/__sigv4_proxy/stats", [])
        assert status == 200
        return json.loads(body)


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("proxy") / "stderr.log"
    with open(log_path, "w") as log:
        proc, port = _start_proxy(upstream.server_address[1], log)
    yield Proxy(proc, port, log_path)
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


@pytest.fixture
def seen(upstream):
    _Upstream.seen.clear()
    return _Upstream.seen


# --- helpers ------------------------------------------------------------------


def send(port, method, target, headers, body=b"", conn=None):
    """Send exactly these headers (no Host/Accept-Encoding added)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders(body or None)
    resp = conn.getresponse()
    data = resp.read()
    result = (resp.status, resp.getheaders(), data)
    if own:
        conn.close()
    return result


def botocore_sign(host, method, path, params=None, body=b"", headers=(), creds=CREDS, region=REGION,
                  service=SERVICE, raw_query=None):
    """Sign with botocore's own add_auth. Returns (target, headers) to send.

    With `params`, botocore canonicalises them strictly (as it does for real
    AWS calls) and the wire query is its urlencode() of them. With `raw_query`,
    the query is baked into the URL and botocore signs it verbatim.
    """
    url = f"http://{host}{path}" + (f"?{raw_query}" if raw_query else "")
    req = AWSRequest(method=method, url=url, params=params or {}, data=body, headers=dict(headers))
    req.headers["Host"] = host
    SigV4Auth(creds, service, region).add_auth(req)
    prepared = req.prepare()
    parts = urllib.parse.urlsplit(prepared.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return target, list(prepared.headers.items())


def bulk_request(host, **kw):
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    headers.update(kw.pop("headers", {}))
    return botocore_sign(host, "POST", "/_bulk", params=QUERY_PARAMS, body=GZ_BULK, headers=headers, **kw)


def reason(body):
    return json.loads(body)["reason"]


def header(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# --- (a) forwarded ------------------------------------------------------------


def test_a_botocore_signed_gzip_bulk_is_forwarded_untouched(proxy, upstream, seen):
    target, headers = bulk_request(proxy.host)
    assert target == "/_bulk?filter_path=items.%2A.error&x=a%2Fb"
    assert header(headers, "X-Amz-Security-Token") == [TOKEN]
    status, resp_headers, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 200, body
    assert body == STUB_RESPONSE
    assert header(resp_headers, "Content-Encoding") == ["gzip"]
    assert header(resp_headers, "Content-Type") == ["application/json; charset=UTF-8"]
    assert header(resp_headers, "X-Stub") == ["yes"]
    assert len(seen) == 1
    got = seen[0]
    assert got["method"] == "POST"
    assert got["target"] == target
    assert got["body"] == GZ_BULK
    assert got["headers"]["Host"] == f"127.0.0.1:{upstream.server_address[1]}"
    assert got["headers"]["Content-Encoding"] == "gzip"
    assert got["headers"]["Content-Length"] == str(len(GZ_BULK))


def test_a_raw_unencoded_query_is_canonicalised_like_aws(proxy, seen):
    # Same signature, but the wire query carries a raw '*' as OpenSearch clients send it:
    # AWS decodes and re-encodes the query, so this must verify too.
    target, headers = bulk_request(proxy.host)
    raw_target = "/_bulk?" + RAW_QUERY
    status, _, body = send(proxy.port, "POST", raw_target, headers, GZ_BULK)
    assert status == 200, body
    assert seen[-1]["target"] == raw_target  # path and query forwarded exactly as received


def test_a_with_x_amz_content_sha256(proxy, seen):
    sha = hashlib.sha256(GZ_BULK).hexdigest()
    target, headers = bulk_request(proxy.host, headers={"X-Amz-Content-SHA256": sha})
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 200, body
    assert seen[-1]["body"] == GZ_BULK


def test_get_without_body_and_chunked_post(proxy, seen):
    target, headers = botocore_sign(proxy.host, "GET", "/_cluster/health", params=[("pretty", "")])
    assert send(proxy.port, "GET", target, headers)[0] == 200

    # A chunked request is de-chunked; signature and body hash are over the de-chunked bytes.
    target, headers = bulk_request(proxy.host)
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Transfer-Encoding", "chunked")]
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    conn.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
    for k, v in headers:
        conn.putheader(k, v)
    conn.endheaders()
    half = len(GZ_BULK) // 2
    for chunk in (GZ_BULK[:half], GZ_BULK[half:]):
        conn.send(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\nX-Trailer: t\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    resp.read()
    conn.close()
    assert seen[-1]["body"] == GZ_BULK
    assert seen[-1]["headers"]["Content-Length"] == str(len(GZ_BULK))


def test_keep_alive_connection_survives_rejections(proxy, seen):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    target, headers = bulk_request(proxy.host)
    assert send(proxy.port, "POST", target, headers, GZ_BULK, conn=conn)[0] == 200
    sock = conn.sock
    assert send(proxy.port, "POST", target, headers, flip_byte(GZ_BULK), conn=conn)[0] == 403
    assert send(proxy.port, "GET", "/", [("Host", proxy.host)], conn=conn)[0] == 403
    assert send(proxy.port, "POST", target, headers, GZ_BULK, conn=conn)[0] == 200
    assert conn.sock is sock, "the proxy closed a keep-alive connection"
    conn.close()


# --- (b)-(e) rejected -----------------------------------------------------------


def test_b_one_body_byte_changed(proxy, seen):
    target, headers = bulk_request(proxy.host)
    status, resp_headers, body = send(proxy.port, "POST", target, headers, flip_byte(GZ_BULK))
    assert status == 403
    assert header(resp_headers, "Content-Type") == ["application/json"]
    doc = json.loads(body)
    assert doc["message"].startswith("The request signature we calculated does not match the signature you provided.")
    assert doc["reason"] == "signature-mismatch"
    assert TOKEN not in doc["canonical_request"]
    assert seen == []


def test_b_body_changed_with_content_sha256(proxy, seen):
    sha = hashlib.sha256(GZ_BULK).hexdigest()
    target, headers = bulk_request(proxy.host, headers={"X-Amz-Content-SHA256": sha})
    status, _, body = send(proxy.port, "POST", target, headers, flip_byte(GZ_BULK, -1))
    assert status == 403
    assert reason(body) == "content-sha256-mismatch"
    assert seen == []


def test_b_query_or_path_changed(proxy, seen):
    target, headers = bulk_request(proxy.host)
    for other in ("/_bulk?filter_path=items.*.errors&x=a%2Fb", "/_bulk/?" + RAW_QUERY.replace("a%2Fb", "a/b%2F")):
        status, _, body = send(proxy.port, "POST", other, headers, GZ_BULK)
        assert status == 403 and reason(body) == "signature-mismatch", other
    assert seen == []


def test_c_wrong_secret(proxy, seen):
    target, headers = bulk_request(proxy.host, creds=Credentials(AKID, SECRET + "x", TOKEN))
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "signature-mismatch"
    # and a wrong access key id, a wrong session token
    target, headers = bulk_request(proxy.host, creds=Credentials("AKIDOTHER", SECRET, TOKEN))
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "unknown-access-key"
    target, headers = bulk_request(proxy.host, creds=Credentials(AKID, SECRET, TOKEN + "x"))
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "bad-security-token"
    target, headers = bulk_request(proxy.host, creds=Credentials(AKID, SECRET))
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "bad-security-token"
    assert seen == []


def test_d_wrong_region_or_service(proxy, seen):
    target, headers = bulk_request(proxy.host, region="us-east-1")
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "wrong-region"
    target, headers = bulk_request(proxy.host, service="aoss")
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "wrong-service"
    assert json.loads(body)["message"] == "Credential should be scoped to correct service: 'es'."
    assert seen == []


def test_e_missing_authorization(proxy, seen):
    target, headers = bulk_request(proxy.host)
    headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
    status, resp_headers, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403
    assert header(resp_headers, "Content-Type") == ["application/json"]
    assert json.loads(body) == {"message": "Missing Authentication Token", "reason": "missing-authorization"}
    status, _, body = send(proxy.port, "GET", "/", [("Host", proxy.host)])
    assert status == 403 and reason(body) == "missing-authorization"
    assert seen == []


def test_botocore_signing_a_raw_url_query_is_not_what_aws_accepts(proxy, seen):
    # botocore signs a query baked into the URL verbatim (no re-encoding), so a raw
    # '*' is signed as '*' where AWS canonicalises it to %2A: AWS would answer 403,
    # and so must the proxy. This is the proxy not simply agreeing with botocore.
    target, headers = botocore_sign(proxy.host, "POST", "/_bulk", body=GZ_BULK, raw_query=RAW_QUERY,
                                    headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    status, _, body = send(proxy.port, "POST", target, headers, GZ_BULK)
    assert status == 403 and reason(body) == "signature-mismatch"
    assert "filter_path=items.%2A.error&x=a%2Fb" in json.loads(body)["canonical_request"].splitlines()
    assert seen == []


# --- (f) counters ---------------------------------------------------------------


def test_f_stats_add_up(proxy, seen):
    before = proxy.stats()
    good_target, good_headers = bulk_request(proxy.host)
    bad_target, bad_headers = bulk_request(proxy.host, region="us-west-2")
    for _ in range(3):
        assert send(proxy.port, "POST", good_target, good_headers, GZ_BULK)[0] == 200
    for _ in range(2):
        assert send(proxy.port, "POST", bad_target, bad_headers, GZ_BULK)[0] == 403
    assert send(proxy.port, "GET", "/", [("Host", proxy.host)])[0] == 403
    after = proxy.stats()
    assert after == {"verified": before["verified"] + 3, "rejected": before["rejected"] + 3}
    assert proxy.stats() == after  # the stats endpoint itself is not counted
    assert len(seen) == 3  # only verified requests reached the upstream


# --- (g) an independent signer ---------------------------------------------------


def test_g_requests_aws4auth_signed_request_is_verified(proxy, seen):
    requests = pytest.importorskip("requests")
    aws4auth = pytest.importorskip("requests_aws4auth")
    auth = aws4auth.AWS4Auth(AKID, SECRET, REGION, SERVICE, session_token=TOKEN)
    url = f"http://{proxy.host}/_bulk?{RAW_QUERY}"
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    resp = requests.post(url, data=GZ_BULK, headers=headers, auth=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    assert seen[-1]["body"] == GZ_BULK
    assert seen[-1]["headers"]["x-amz-content-sha256"] == hashlib.sha256(GZ_BULK).hexdigest()
    bad = aws4auth.AWS4Auth(AKID, SECRET + "x", REGION, SERVICE, session_token=TOKEN)
    resp = requests.post(url, data=GZ_BULK, headers=headers, auth=bad, timeout=30)
    assert resp.status_code == 403


def test_g_signed_user_agent_is_verified_like_aws(proxy, seen):
    # botocore never signs user-agent (SIGNED_HEADERS_BLACKLIST); AWS verifies whatever
    # SignedHeaders lists. The proxy must accept a client that signed it.
    requests = pytest.importorskip("requests")
    aws4auth = pytest.importorskip("requests_aws4auth")
    auth = aws4auth.AWS4Auth(AKID, SECRET, REGION, SERVICE, session_token=TOKEN,
                             include_hdrs=["host", "content-type", "x-amz-*", "user-agent"])
    url = f"http://{proxy.host}/_bulk?{RAW_QUERY}"
    req = requests.Request("POST", url, data=GZ_BULK, auth=auth,
                           headers={"Content-Type": "application/x-ndjson", "User-Agent": "cwl-indexer-test/1"}).prepare()
    assert "user-agent" in req.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    with requests.Session() as s:
        resp = s.send(req, timeout=30)
    assert resp.status_code == 200, resp.text

    # The same request through a verifier built on stock botocore headers_to_sign fails.
    wire_headers = [("Host", proxy.host)] + list(req.headers.items())
    target = "/_bulk?" + RAW_QUERY
    verifier = sigv4_proxy.Verifier(AKID, SECRET, TOKEN, REGION, SERVICE)
    verifier.verify("POST", target, wire_headers, GZ_BULK)
    stock = sigv4_proxy._ExactHeadersSigV4Auth
    try:
        sigv4_proxy._ExactHeadersSigV4Auth = SigV4Auth
        with pytest.raises(sigv4_proxy.Rejection):
            verifier.verify("POST", target, wire_headers, GZ_BULK)
    finally:
        sigv4_proxy._ExactHeadersSigV4Auth = stock


# --- in-process checks of the verifier -------------------------------------------

AWS_EXAMPLE = dict(access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                   session_token=None, region="us-east-1", service="service")
AWS_EXAMPLE_NOW = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.timezone.utc)


def _aws_suite_headers(signature):
    return [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                          f"SignedHeaders=host;x-amz-date, Signature={signature}"),
    ]


@pytest.mark.parametrize("target,signature", [
    ("/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),  # get-vanilla
    ("/?Param2=value2&Param1=value1", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),  # query-order-key-case
])
def test_aws_published_sigv4_test_suite_vectors(target, signature):
    verifier = sigv4_proxy.Verifier(**AWS_EXAMPLE)
    verifier.verify("GET", target, _aws_suite_headers(signature), b"", now=AWS_EXAMPLE_NOW)
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("GET", target, _aws_suite_headers(flipped), b"", now=AWS_EXAMPLE_NOW)
    assert err.value.reason == "signature-mismatch"


def test_clock_skew_is_limited_to_15_minutes():
    verifier = sigv4_proxy.Verifier(**AWS_EXAMPLE)
    headers = _aws_suite_headers("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    verifier.verify("GET", "/", headers, b"", now=AWS_EXAMPLE_NOW + dt.timedelta(minutes=15))
    verifier.verify("GET", "/", headers, b"", now=AWS_EXAMPLE_NOW - dt.timedelta(minutes=15))
    for delta, why in ((16, "signature-expired"), (-16, "signature-not-yet-current")):
        with pytest.raises(sigv4_proxy.Rejection) as err:
            verifier.verify("GET", "/", headers, b"", now=AWS_EXAMPLE_NOW + dt.timedelta(minutes=delta))
        assert err.value.reason == why
    with pytest.raises(sigv4_proxy.Rejection) as err:  # and with the real clock
        verifier.verify("GET", "/", headers, b"")
    assert err.value.reason == "signature-expired"


def _signed_at(ts, headers, body=b"", service=SERVICE, signed=None):
    """Sign with botocore's SigV4Auth methods at a chosen time (add_auth always uses now)."""
    req = AWSRequest(method="POST", url="http://h:1/_bulk", data=body, headers=dict(headers))
    req.headers["X-Amz-Date"] = ts
    req.headers["X-Amz-Security-Token"] = TOKEN
    req.context["timestamp"] = ts
    auth = SigV4Auth(CREDS, service, REGION)
    sig = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
    signed = signed or auth.signed_headers(auth.headers_to_sign(req))
    req.headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={AKID}/{ts[:8]}/{REGION}/{service}/aws4_request, "
                                    f"SignedHeaders={signed}, Signature={sig}")
    return list(req.headers.items())


def test_scope_date_and_signed_header_rules():
    now = dt.datetime.now(dt.timezone.utc)
    ts = now.strftime("%Y%m%dT%H%M%SZ")
    verifier = sigv4_proxy.Verifier(AKID, SECRET, TOKEN, REGION, SERVICE)
    base = {"Host": "h:1", "Content-Type": "application/json"}
    verifier.verify("POST", "/_bulk", _signed_at(ts, base, b"{}"), b"{}", now=now)

    headers = _signed_at(ts, base, b"{}")
    other_day = [(k, v.replace(f"/{ts[:8]}/", "/20000101/") if k == "Authorization" else v) for k, v in headers]
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("POST", "/_bulk", other_day, b"{}", now=now)
    assert err.value.reason == "scope-date-mismatch"

    unsorted = [(k, v.replace("SignedHeaders=content-type;host", "SignedHeaders=host;content-type")
                 if k == "Authorization" else v) for k, v in headers]
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("POST", "/_bulk", unsorted, b"{}", now=now)
    assert err.value.reason == "non-canonical-signed-headers"

    no_host = [(k, v.replace("host;", "") if k == "Authorization" else v) for k, v in headers]
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("POST", "/_bulk", no_host, b"{}", now=now)
    assert err.value.reason == "unsigned-required-header"

    token_unsigned = [(k, v.replace(";x-amz-security-token", "") if k == "Authorization" else v) for k, v in headers]
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("POST", "/_bulk", token_unsigned, b"{}", now=now)
    assert err.value.reason == "unsigned-security-token"


def test_aoss_requires_x_amz_content_sha256():
    now = dt.datetime.now(dt.timezone.utc)
    ts = now.strftime("%Y%m%dT%H%M%SZ")
    verifier = sigv4_proxy.Verifier(AKID, SECRET, TOKEN, REGION, "aoss")
    base = {"Host": "h:1"}
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("POST", "/_bulk", _signed_at(ts, base, b"{}", service="aoss"), b"{}", now=now)
    assert err.value.reason == "missing-content-sha256"
    with_sha = dict(base, **{"X-Amz-Content-SHA256": hashlib.sha256(b"{}").hexdigest()})
    verifier.verify("POST", "/_bulk", _signed_at(ts, with_sha, b"{}", service="aoss"), b"{}", now=now)
    unsigned = dict(base, **{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(sigv4_proxy.Rejection) as err:
        verifier.verify("POST", "/_bulk", _signed_at(ts, unsigned, b"{}", service="aoss"), b"{}", now=now)
    assert err.value.reason == "content-sha256-mismatch"


# --- hygiene ----------------------------------------------------------------------


def test_zz_log_has_one_line_per_request_and_no_secrets(proxy):
    log = proxy.log()
    assert "POST /_bulk?filter_path=items.%2A.error&x=a%2Fb -> 200 verified" in log
    assert "-> 403 rejected (signature-mismatch)" in log
    assert "-> 403 rejected (missing-authorization)" in log
    assert SECRET not in log and TOKEN not in log
    assert "Signature=" not in log and "Traceback" not in log and "internal error" not in log


def test_proxy_refuses_to_start_without_credentials(upstream, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, str(PROXY), "--upstream", f"http://127.0.0.1:{upstream.server_address[1]}",
         "--region", REGION, "--service", SERVICE, "--port", "0"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "AWS_ACCESS_KEY_ID" in proc.stderr
