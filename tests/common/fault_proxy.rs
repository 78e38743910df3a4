//! A fault-injecting HTTP/1.1 proxy for integration tests: it forwards everything to a real OpenSearch node and
//! injects the faults a test plans (error answers, rejected items, resets, delays, lost responses) into `_bulk`
//! requests, so tests can check that the indexer loses and duplicates nothing.
#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Request heads larger than this are refused (431): a guard against garbage, not a real limit.
const MAX_HEAD: usize = 64 * 1024;
/// Headers per request that the parser accepts.
const MAX_HEADERS: usize = 128;
/// Bodies larger than this are refused (413) instead of being buffered: tests never send that much.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// How long the proxy waits for the node; generous, since it only exists so that a hung node fails the test.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);
/// The `reason` of the fake failed items spliced into bulk responses.
const FAKE_REASON: &str = "injected by fault proxy";

/// A fault-injecting proxy in front of a real OpenSearch node, running on its own thread and tokio runtime.
///
/// Faults only ever apply to `_bulk` requests; everything else, and every bulk request without a fault, goes to
/// the node and its real answer comes back. Dropping the proxy closes the listener and every open connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping this sender tells the accept loop to stop.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the proxy does to one `_bulk` request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Do not forward; answer with this status and body (e.g. 503 + JSON, 429, 500, or 502 + an HTML page).
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Forward the bulk request WITHOUT the items at these 0-based positions (remove their action+source line pairs
    /// from the body), then splice fake failed items into the real response at those positions, with this
    /// status and error type (e.g. 429 + "es_rejected_execution_exception", or 400 + "mapper_parsing_exception"),
    /// and set "errors": true. Positions beyond the item count are ignored.
    ///
    /// A gzip-compressed body is forwarded decompressed. If every item is rejected, nothing is forwarded (the node
    /// refuses an empty bulk) and the proxy answers 200 with only the fake items. If the body cannot be parsed as
    /// bulk NDJSON, or the node does not answer 200 with one item per forwarded item, the request or response is
    /// relayed unchanged (and the proxy logs why).
    RejectItems {
        positions: Vec<usize>,
        status: u16,
        error_type: &'static str,
    },
    /// Answer 413 (Request Entity Too Large, body like AWS's: `{"Message":"Request size exceeded 10485760 bytes"}`)
    /// if the request body (as received, i.e. compressed if compressed) is larger than this many bytes; forward
    /// otherwise.
    TooLargeOver(usize),
    /// Read the headers and about half of the body, then drop the connection without answering
    /// (the client sees a connection reset / incomplete message). Not forwarded.
    ResetMidBody,
    /// Forward, but wait this long before relaying the response (the node HAS indexed the items).
    Delay(Duration),
    /// Forward to the node, then drop the connection instead of relaying the response
    /// (the items are indexed but the client never learns it: the duplicate-on-retry case).
    DropResponse,
}

impl Fault {
    /// The variant's name, as recorded in [`Seen::fault`].
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Pass => "Pass",
            Fault::Respond { .. } => "Respond",
            Fault::RejectItems { .. } => "RejectItems",
            Fault::TooLargeOver(_) => "TooLargeOver",
            Fault::ResetMidBody => "ResetMidBody",
            Fault::Delay(_) => "Delay",
            Fault::DropResponse => "DropResponse",
        }
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request target as received: path and query string, e.g. `/_bulk?refresh=true`.
    pub path: String,
    /// The name of the applied fault's variant (`"RejectItems"`, `"Delay"`, ...); `"Pass"` for none.
    pub fault: String,
    /// The size of the request body as received (compressed if compressed, de-chunked if chunked). For
    /// `ResetMidBody`, the bytes the proxy had read when it dropped the connection.
    pub body_bytes: usize,
    /// Bulk items (action lines) in the request; 0 for non-bulk requests, for bodies that are not valid bulk
    /// NDJSON, and for `ResetMidBody` (the body is never read in full).
    pub items: usize,
    /// The status sent back to the client; `None` if the connection was dropped (or the request is in flight).
    pub status: Option<u16>,
    /// The `_id` of each bulk item, in order (empty for an item without one, and when `items` is 0).
    pub ids: Vec<String>,
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream` (e.g. "http://127.0.0.1:9200") on a background thread with its own
    /// tokio runtime (so it works from both #[test] and #[tokio::test] functions), and returns once it listens.
    ///
    /// Panics if it cannot set itself up (no free port, no runtime): there is no test to run without it.
    pub fn start(upstream: &str) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fault proxy: cannot build a tokio runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fault proxy: cannot bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fault proxy: no local address");
        listener
            .set_nonblocking(true)
            .expect("fault proxy: cannot make the listener non-blocking");

        // The tokio listener and the client register with the proxy's own runtime, not the caller's (if any),
        // so that they keep working whatever the test does with its runtime.
        let (listener, client) = {
            let _context = runtime.enter();
            let listener = TcpListener::from_std(listener).expect("fault proxy: cannot register the listener");
            let client = reqwest::Client::builder()
                .no_proxy()
                .http1_only()
                // Each request reaches the node at most once, so the node's view matches what `requests()` says.
                .retry(reqwest::retry::never())
                .timeout(UPSTREAM_TIMEOUT)
                .build()
                .expect("fault proxy: cannot build the HTTP client");
            (listener, client)
        };

        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            port: addr.port(),
            state: Mutex::new(State::default()),
        });
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    runtime.block_on(accept_loop(listener, shared, stop));
                    // Dropping the runtime cancels the connection tasks, which closes their sockets.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                }
            })
            .expect("fault proxy: cannot spawn its thread");
        FaultProxy {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// "http://127.0.0.1:<port>"
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults applied to successive `_bulk` requests (any path ending in `/_bulk`, with or without query string), one
    /// per request, in order; when the queue is empty, requests pass. Non-bulk requests always pass.
    ///
    /// Replaces whatever is still queued. While an [`always`](Self::always) fault is set, the queue is not consumed.
    pub fn plan(&self, faults: Vec<Fault>) {
        self.shared.lock().plan = faults.into();
    }

    /// A fault applied to EVERY bulk request until cleared (used for "cluster always returns 503"); `None` clears.
    pub fn always(&self, fault: Option<Fault>) {
        self.shared.lock().always = fault;
    }

    /// Stops (or resumes) the log line the proxy prints for each request.
    pub fn quiet(&self, quiet: bool) {
        self.shared.lock().quiet = quiet;
    }

    /// What the proxy saw, in order: one record per request.
    ///
    /// A request is recorded once its body has been read (or, for `ResetMidBody`, abandoned); its status is filled
    /// in just before the answer is written, so it is known by the time the client has the response.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().seen.clone()
    }
}

impl Drop for FaultProxy {
    /// Shuts the listener and runtime down.
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the proxy thread has been printed already; panicking again in drop would only abort.
            let _ = thread.join();
        }
    }
}

/// State shared by the handle and the connection tasks.
struct Shared {
    /// The node's base URL, without a trailing slash.
    upstream: String,
    client: reqwest::Client,
    /// Only for log lines, to tell proxies apart when tests run in parallel.
    port: u16,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    plan: VecDeque<Fault>,
    always: Option<Fault>,
    seen: Vec<Seen>,
    /// No log line per request (a load test's thousands of them).
    quiet: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data behind: keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_fault(&self) -> Fault {
        let mut state = self.lock();
        match &state.always {
            Some(fault) => fault.clone(),
            None => state.plan.pop_front().unwrap_or(Fault::Pass),
        }
    }

    fn record(&self, seen: Seen) -> usize {
        let mut state = self.lock();
        state.seen.push(seen);
        state.seen.len() - 1
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(seen) = self.lock().seen.get_mut(index) {
            seen.status = Some(status);
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            // Fires when the handle drops the sender.
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(Arc::clone(&shared), stream));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    eprintln!("fault-proxy :{}: accept failed: {e}", shared.port);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Serves the requests of one client connection, in order, until the client closes it or a fault drops it.
async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        buf: Vec::with_capacity(16 * 1024),
    };
    loop {
        let head = match conn.read_head().await {
            Ok(Incoming::Request(head)) => head,
            Ok(Incoming::Malformed(status, why)) => {
                eprintln!(
                    "fault-proxy :{}: malformed request ({why}): answered {status}",
                    shared.port
                );
                let _ = write_reply(&mut conn.stream, &Reply::text(status, why), false, true).await;
                return;
            }
            Ok(Incoming::Eof) | Err(_) => return,
        };
        if !serve_one(&shared, &mut conn, head).await {
            return;
        }
    }
}

/// What happened to a request, for the log line.
struct Log<'a> {
    port: u16,
    head: &'a Head,
    fault: &'a Fault,
    body_bytes: usize,
    items: usize,
    quiet: bool,
}

impl Log<'_> {
    fn print(&self, outcome: fmt::Arguments<'_>, note: &str) {
        if self.quiet {
            return;
        }
        let sep = if note.is_empty() { "" } else { ": " };
        eprintln!(
            "fault-proxy :{} {} {} [{} B, {} items] {} -> {outcome}{sep}{note}",
            self.port,
            self.head.method,
            self.head.path,
            self.body_bytes,
            self.items,
            self.fault.name()
        );
    }
}

/// Serves one request whose head has been read; returns whether the connection can carry another one.
async fn serve_one(shared: &Shared, conn: &mut Conn, head: Head) -> bool {
    let bulk = is_bulk(&head.path);
    let fault = if bulk { shared.next_fault() } else { Fault::Pass };
    let mut log = Log {
        port: shared.port,
        head: &head,
        fault: &fault,
        body_bytes: 0,
        items: 0,
        quiet: shared.lock().quiet,
    };
    let seen = |body_bytes, ids: Vec<String>, status| Seen {
        method: head.method.clone(),
        path: head.path.clone(),
        fault: fault.name().to_string(),
        body_bytes,
        items: ids.len(),
        status,
        ids,
    };

    let framing = match head.framing() {
        Ok(framing) => framing,
        Err((status, why)) => {
            shared.record(seen(0, Vec::new(), Some(status)));
            log.print(format_args!("{status}"), why);
            let _ = write_reply(&mut conn.stream, &Reply::text(status, why), false, true).await;
            return false;
        }
    };
    if head.expects_continue() && !matches!(framing, Framing::Empty) {
        // curl waits (a while) for this before sending large bodies; hyper never asks.
        if conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return false;
        }
    }

    if let Fault::ResetMidBody = fault {
        log.body_bytes = conn.read_part_of_body(&framing).await;
        shared.record(seen(log.body_bytes, Vec::new(), None));
        log.print(format_args!("connection reset"), "");
        conn.reset();
        return false;
    }

    let body = match conn.read_body(&framing).await {
        Ok(body) => body,
        Err(e) => {
            // Only a broken framing deserves an answer; a vanished client gets none.
            let status = (e.kind() == io::ErrorKind::InvalidData).then_some(400);
            shared.record(seen(conn.buf.len(), Vec::new(), status));
            let note = format!("reading the body: {e}");
            match status {
                Some(status) => {
                    log.print(format_args!("{status}"), &note);
                    let _ = write_reply(&mut conn.stream, &Reply::text(status, "bad request body"), false, true).await;
                }
                None => log.print(format_args!("connection lost"), &note),
            }
            return false;
        }
    };
    log.body_bytes = body.len();
    let mut ids = Vec::new();
    if bulk {
        ids = decode_body(&head, &body)
            .ok()
            .and_then(|ndjson| {
                parse_bulk(&ndjson)
                    .ok()
                    .map(|items| items.into_iter().map(|i| i.id.unwrap_or_default()).collect())
            })
            .unwrap_or_default();
        log.items = ids.len();
    }
    let index = shared.record(seen(log.body_bytes, ids, None));

    match apply(shared, &head, body, &framing, &fault).await {
        Outcome::Reply(reply, note) => {
            shared.set_status(index, reply.status);
            log.print(format_args!("{}", reply.status), &note);
            let close = head.wants_close();
            write_reply(&mut conn.stream, &reply, head.method == "HEAD", close)
                .await
                .is_ok()
                && !close
        }
        Outcome::Drop(note) => {
            log.print(format_args!("response dropped"), &note);
            conn.reset();
            false
        }
    }
}

/// The result of applying a fault to a fully read request.
enum Outcome {
    /// Send this, plus a note for the log line (empty if nothing is worth saying).
    Reply(Reply, String),
    /// Drop the connection without answering.
    Drop(String),
}

async fn apply(shared: &Shared, head: &Head, body: Vec<u8>, framing: &Framing, fault: &Fault) -> Outcome {
    let has_body = !matches!(framing, Framing::Empty);
    match fault {
        Fault::Pass => Outcome::Reply(forward(shared, head, body, has_body, false).await, String::new()),
        Fault::Respond {
            status,
            content_type,
            body,
        } => Outcome::Reply(
            Reply::new(*status, content_type, body.clone().into_bytes()),
            String::new(),
        ),
        Fault::RejectItems {
            positions,
            status,
            error_type,
        } => reject_items(shared, head, body, positions, *status, error_type).await,
        Fault::TooLargeOver(limit) if body.len() > *limit => {
            let message = format!(r#"{{"Message":"Request size exceeded {limit} bytes"}}"#);
            Outcome::Reply(Reply::new(413, "application/json", message.into_bytes()), String::new())
        }
        Fault::TooLargeOver(_) => Outcome::Reply(forward(shared, head, body, has_body, false).await, String::new()),
        Fault::Delay(delay) => {
            let reply = forward(shared, head, body, has_body, false).await;
            tokio::time::sleep(*delay).await;
            Outcome::Reply(reply, String::new())
        }
        Fault::DropResponse => {
            let reply = forward(shared, head, body, has_body, false).await;
            Outcome::Drop(format!("the node answered {}", reply.status))
        }
        // serve_one handles it before reading the body; should it ever get here, it still must not be forwarded.
        Fault::ResetMidBody => Outcome::Drop("not forwarded".to_string()),
    }
}

async fn reject_items(
    shared: &Shared,
    head: &Head,
    body: Vec<u8>,
    positions: &[usize],
    status: u16,
    error_type: &str,
) -> Outcome {
    let ndjson = match decode_body(head, &body) {
        Ok(ndjson) => ndjson,
        Err(why) => return pass_instead(shared, head, body, &why).await,
    };
    let items = match parse_bulk(&ndjson) {
        Ok(items) => items,
        Err(why) => return pass_instead(shared, head, body, &format!("not bulk NDJSON: {why}")).await,
    };
    let rejected: BTreeSet<usize> = positions.iter().copied().filter(|&p| p < items.len()).collect();
    if rejected.is_empty() {
        return pass_instead(shared, head, body, "no position within the items").await;
    }
    let path_index = index_from_path(&head.path);
    let fakes: Vec<Option<String>> = (0..items.len())
        .map(|i| {
            rejected
                .contains(&i)
                .then(|| fake_item(&items[i], path_index, status, error_type))
        })
        .collect();

    if rejected.len() == items.len() {
        let all = fakes.into_iter().flatten().collect::<Vec<_>>().join(",");
        let body = format!(r#"{{"took":0,"errors":true,"items":[{all}]}}"#);
        let reply = Reply::new(200, "application/json; charset=UTF-8", body.into_bytes());
        return Outcome::Reply(reply, "every item rejected: not forwarded".to_string());
    }

    let mut kept = Vec::with_capacity(ndjson.len());
    for (_, item) in items.iter().enumerate().filter(|(i, _)| !rejected.contains(i)) {
        item.write_to(&mut kept);
    }
    let mut reply = forward(shared, head, kept, true, true).await;
    if reply.status != 200 {
        let note = format!("the node answered {}: relayed without fake items", reply.status);
        return Outcome::Reply(reply, note);
    }
    match splice(&reply.body, &fakes) {
        Ok(spliced) => {
            reply.body = spliced;
            Outcome::Reply(reply, format!("rejected {rejected:?}"))
        }
        Err(why) => Outcome::Reply(reply, format!("response relayed without fake items: {why}")),
    }
}

/// Forwards a RejectItems request unchanged when it cannot be edited, saying why in the log.
async fn pass_instead(shared: &Shared, head: &Head, body: Vec<u8>, why: &str) -> Outcome {
    let reply = forward(shared, head, body, true, false).await;
    Outcome::Reply(reply, format!("forwarded unchanged: {why}"))
}

/// Sends the request to the node and returns its answer; an unreachable node becomes a 502 from the proxy.
///
/// `decoded` says the body is no longer what the client sent (it was decompressed and edited), so its
/// `Content-Encoding` must not be forwarded.
async fn forward(shared: &Shared, head: &Head, body: Vec<u8>, has_body: bool, decoded: bool) -> Reply {
    let url = format!("{}{}", shared.upstream, origin_form(&head.path));
    let Ok(method) = reqwest::Method::from_bytes(head.method.as_bytes()) else {
        return Reply::text(400, "fault proxy: invalid method");
    };
    let connection_tokens = head.connection_tokens();
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &head.headers {
        let skip = is_hop_by_hop(name)
            || connection_tokens.iter().any(|token| token == name)
            // reqwest sets these itself, for the body it actually sends.
            || name == "host"
            || name == "content-length"
            // So that the node answers uncompressed and the proxy can relay (and splice) responses as they are.
            || name == "accept-encoding"
            // The proxy already said "100 Continue" itself, if asked to.
            || name == "expect"
            || (decoded && name == "content-encoding");
        if skip {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let mut request = shared.client.request(method, &url).headers(headers);
    if has_body {
        request = request.body(body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Reply::text(502, &format!("fault proxy: {url}: {}", error_chain(&e))),
    };
    let status = response.status().as_u16();
    let head_request = head.method == "HEAD";
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            // The proxy writes its own Content-Length for the body it relays, except for HEAD, whose answer
            // has no body but announces the length of the GET one.
            !is_hop_by_hop(name) && (name != "content-length" || head_request)
        })
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    match response.bytes().await {
        Ok(body) => Reply {
            status,
            headers,
            body: body.to_vec(),
        },
        Err(e) => Reply::text(
            502,
            &format!("fault proxy: {url}: reading the response: {}", error_chain(&e)),
        ),
    }
}

/// The error and its sources on one line: reqwest's own message alone rarely says what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Whether the request target's path (before any query string) ends in `/_bulk`.
fn is_bulk(target: &str) -> bool {
    target.split(['?', '#']).next().unwrap_or("").ends_with("/_bulk")
}

/// The index of `/<index>/_bulk`, the default for action lines that name none.
fn index_from_path(target: &str) -> Option<&str> {
    let path = origin_form(target).split('?').next().unwrap_or("");
    match path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
        [index, "_bulk"] if !index.is_empty() => Some(index),
        _ => None,
    }
}

/// The path and query of a request target, also when a client sent the absolute form (`http://host/path`).
fn origin_form(target: &str) -> &str {
    match target.split_once("://") {
        Some((_, rest)) if !target.starts_with('/') => rest.find('/').map_or("/", |slash| &rest[slash..]),
        _ => target,
    }
}

/// The request body as NDJSON text: decompressed if the client gzipped it.
fn decode_body<'a>(head: &Head, body: &'a [u8]) -> Result<Cow<'a, [u8]>, String> {
    let encoding = head
        .header("content-encoding")
        .map(|value| String::from_utf8_lossy(value).trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(Cow::Borrowed(body)),
        "gzip" | "x-gzip" => {
            let mut plain = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY));
            // One byte over the limit is enough to know a gzip bomb is one.
            flate2::read::MultiGzDecoder::new(body)
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|e| format!("cannot gunzip the body: {e}"))?;
            if plain.len() > MAX_BODY {
                return Err("the body decompresses to too much for the fault proxy".to_string());
            }
            Ok(Cow::Owned(plain))
        }
        other => Err(format!("unsupported Content-Encoding {other:?}")),
    }
}

/// One item of a bulk body: its action line and, except for `delete`, the source line that follows it.
struct BulkItem<'a> {
    verb: String,
    index: Option<String>,
    id: Option<String>,
    action: &'a [u8],
    source: Option<&'a [u8]>,
}

impl BulkItem<'_> {
    fn write_to(&self, out: &mut Vec<u8>) {
        // Every line gets its newline back, including a last one the client did not end: the node requires it.
        for line in std::iter::once(self.action).chain(self.source) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
}

/// Splits a bulk NDJSON body into items the way the node does: blank lines between items are skipped, and the
/// line after an `index`, `create` or `update` action is its source whatever it holds.
fn parse_bulk(body: &[u8]) -> Result<Vec<BulkItem<'_>>, String> {
    let mut lines = body.split(|&b| b == b'\n');
    let mut items = Vec::new();
    while let Some(line) = lines.next() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let n = items.len();
        let action: serde_json::Map<String, Value> =
            serde_json::from_slice(line).map_err(|e| format!("item {n}: action line: {e}"))?;
        let mut entries = action.into_iter();
        let (verb, meta) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            _ => return Err(format!("item {n}: the action line must have exactly one key")),
        };
        let source = match verb.as_str() {
            "index" | "create" | "update" => Some(
                lines
                    .next()
                    .ok_or_else(|| format!("item {n}: no source line after the action"))?,
            ),
            "delete" => None,
            other => return Err(format!("item {n}: unknown action {other:?}")),
        };
        let meta_field = |key: &str| {
            meta.get(key).map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
        };
        items.push(BulkItem {
            index: meta_field("_index"),
            id: meta_field("_id"),
            verb,
            action: line,
            source,
        });
    }
    Ok(items)
}

/// A failed item shaped like the node's, keyed by the action's verb.
fn fake_item(item: &BulkItem<'_>, path_index: Option<&str>, status: u16, error_type: &str) -> String {
    let text = |s: &str| Value::from(s).to_string();
    let index = item.index.as_deref().or(path_index).unwrap_or("");
    // An action without `_id` asks the node to make one up; a rejected item never got one.
    let id = item
        .id
        .as_deref()
        .map(|id| format!(r#""_id":{},"#, text(id)))
        .unwrap_or_default();
    format!(
        r#"{{{}:{{"_index":{},{id}"status":{status},"error":{{"type":{},"reason":{}}}}}}}"#,
        text(&item.verb),
        text(index),
        text(error_type),
        text(FAKE_REASON),
    )
}

/// The node's bulk response with the fake items (the `Some`s of `fakes`, one entry per item of the original
/// request) put back at their positions and `"errors": true`. Everything else is kept byte for byte, in order.
fn splice(real: &[u8], fakes: &[Option<String>]) -> Result<Vec<u8>, String> {
    let top: OrderedObject = serde_json::from_slice(real).map_err(|e| format!("response is not a JSON object: {e}"))?;
    let mut out = String::with_capacity(real.len() + fakes.len() * 160);
    let mut has_items = false;
    let mut has_errors = false;
    out.push('{');
    for (n, (key, value)) in top.0.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key.as_str()).to_string());
        out.push(':');
        match key.as_str() {
            "errors" => {
                has_errors = true;
                out.push_str("true");
            }
            "items" => {
                has_items = true;
                let real_items: Vec<&RawValue> =
                    serde_json::from_str(value.get()).map_err(|e| format!("\"items\" is not an array: {e}"))?;
                let expected = fakes.iter().filter(|fake| fake.is_none()).count();
                if real_items.len() != expected {
                    return Err(format!(
                        "{} items in the response for {expected} sent",
                        real_items.len()
                    ));
                }
                let mut real_items = real_items.into_iter();
                let merged: Vec<&str> = fakes
                    .iter()
                    .filter_map(|fake| match fake {
                        Some(fake) => Some(fake.as_str()),
                        None => real_items.next().map(RawValue::get),
                    })
                    .collect();
                out.push('[');
                out.push_str(&merged.join(","));
                out.push(']');
            }
            _ => out.push_str(value.get()),
        }
    }
    if !has_items {
        return Err("no \"items\" in the response".to_string());
    }
    if !has_errors {
        out.push_str(r#","errors":true"#);
    }
    out.push('}');
    Ok(out.into_bytes())
}

/// A JSON object's members in document order, values unparsed (serde_json's `Map` would sort the keys).
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(OrderedObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A request line and headers (names lowercased).
struct Head {
    method: String,
    path: String,
    http10: bool,
    headers: Vec<(String, Vec<u8>)>,
}

/// How the request body is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

impl Head {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// The comma-separated tokens of all `Connection` headers, lowercased.
    fn connection_tokens(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(name, _)| name == "connection")
            .flat_map(|(_, value)| {
                String::from_utf8_lossy(value)
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .map(|token| token.trim().to_ascii_lowercase())
            .collect()
    }

    fn wants_close(&self) -> bool {
        let tokens = self.connection_tokens();
        tokens.iter().any(|t| t == "close") || (self.http10 && !tokens.iter().any(|t| t == "keep-alive"))
    }

    fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|value| value.eq_ignore_ascii_case(b"100-continue"))
    }

    fn framing(&self) -> Result<Framing, (u16, &'static str)> {
        if let Some(coding) = self.header("transfer-encoding") {
            let coding = String::from_utf8_lossy(coding).to_ascii_lowercase();
            return match coding.rsplit(',').next().map(str::trim) {
                Some("chunked") => Ok(Framing::Chunked),
                _ => Err((400, "unsupported Transfer-Encoding")),
            };
        }
        let Some(length) = self.header("content-length") else {
            return Ok(Framing::Empty);
        };
        match std::str::from_utf8(length)
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
        {
            Some(0) => Ok(Framing::Empty),
            Some(length) if length > MAX_BODY => Err((413, "body too large for the fault proxy")),
            Some(length) => Ok(Framing::Length(length)),
            None => Err((400, "invalid Content-Length")),
        }
    }
}

/// What `Conn::read_head` found.
enum Incoming {
    Request(Head),
    /// The client closed the connection between requests.
    Eof,
    /// Answer with this status and close.
    Malformed(u16, &'static str),
}

/// A client connection with the bytes read from it but not consumed yet.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into the buffer; 0 means the client closed its side.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(16 * 1024);
        self.stream.read_buf(&mut self.buf).await
    }

    async fn read_head(&mut self) -> io::Result<Incoming> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(&self.buf) {
                    Ok(httparse::Status::Complete(length)) => {
                        let head = Head {
                            method: request.method.unwrap_or_default().to_string(),
                            path: request.path.unwrap_or_default().to_string(),
                            http10: request.version == Some(0),
                            headers: request
                                .headers
                                .iter()
                                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                                .collect(),
                        };
                        self.buf.drain(..length);
                        return Ok(Incoming::Request(head));
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                        return Ok(Incoming::Malformed(431, "request head too large"));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Ok(Incoming::Malformed(431, "too many headers")),
                    Err(_) => return Ok(Incoming::Malformed(400, "malformed request head")),
                }
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(Incoming::Eof)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// Removes and returns the next `n` bytes, reading as needed.
    async fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Removes and returns the next line, without its CRLF (or LF).
    async fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.take(end + 1).await?;
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The whole body; errors of kind `InvalidData` mean a broken chunked encoding.
    async fn read_body(&mut self, framing: &Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(length) => self.take(*length).await,
            Framing::Chunked => self.read_chunked().await,
        }
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|line| line.split(';').next())
                .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
                .ok_or_else(|| invalid("invalid chunk size"))?;
            if size == 0 {
                // Trailer fields, if any, up to the empty line: nothing the node needs.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len().saturating_add(size) > MAX_BODY {
                return Err(invalid("body too large for the fault proxy"));
            }
            body.extend_from_slice(&self.take(size).await?);
            if !self.read_line().await?.is_empty() {
                return Err(invalid("no CRLF after a chunk"));
            }
        }
    }

    /// Reads about half of the body (whatever has arrived, if chunked) and returns how many bytes that was.
    async fn read_part_of_body(&mut self, framing: &Framing) -> usize {
        let target = match framing {
            Framing::Empty => return 0,
            Framing::Length(length) => length / 2,
            Framing::Chunked => 1,
        };
        while self.buf.len() < target {
            match self.fill().await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        match framing {
            Framing::Length(_) => self.buf.len().min(target),
            _ => self.buf.len(),
        }
    }

    /// Makes the coming close of the connection a TCP reset (linger 0) rather than a clean FIN: the client then
    /// fails at once whatever it is doing, even while it is still sending the body.
    fn reset(&self) {
        let _ = self.stream.set_zero_linger();
    }
}

/// A response to write to the client.
struct Reply {
    status: u16,
    /// Lowercased names; no Content-Length (the writer adds it) except to answer a HEAD request.
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_string(), content_type.as_bytes().to_vec())],
            body,
        }
    }

    fn text(status: u16, text: &str) -> Reply {
        Reply::new(status, "text/plain; charset=UTF-8", format!("{text}\n").into_bytes())
    }
}

async fn write_reply(stream: &mut TcpStream, reply: &Reply, head_request: bool, close: bool) -> io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Unknown");
    // These statuses have no body and must not announce one.
    let bodiless = reply.status < 200 || reply.status == 204 || reply.status == 304;
    let mut out = Vec::with_capacity(reply.body.len() + 512);
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", reply.status).as_bytes());
    let mut has_length = false;
    for (name, value) in &reply.headers {
        has_length |= name == "content-length";
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !bodiless && !has_length {
        out.extend_from_slice(format!("content-length: {}\r\n", reply.body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !bodiless && !head_request {
        out.extend_from_slice(&reply.body);
    }
    stream.write_all(&out).await?;
    stream.flush().await
}
