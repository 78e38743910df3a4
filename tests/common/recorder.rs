//! A loopback HTTP/1.1 server that records every request (method, path, headers, body) and
//! answers like an OpenSearch Serverless collection as far as its documentation describes it.
//! It is not Serverless: no real collection was reachable here, so what a real one answers
//! beyond that (error texts, `_meta` kept on templates, `filter_path`) is an assumption.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// The collection type the recorder plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Accepts custom `_id`s; `create` of a taken `_id` answers 409.
    Search,
    /// Refuses any custom `_id` (per item, 400), assigns its own.
    TimeSeries,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PUT`, `POST`, ...
    pub method: String,
    /// Path and query, as sent: `/_bulk?filter_path=...`.
    pub path: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body as received (compressed if it was sent compressed).
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body, gunzipped when `content-encoding: gzip`.
    pub fn decoded(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("gzip body");
            out
        } else {
            self.body.clone()
        }
    }

    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// What the collection holds: templates by name, documents by index.
#[derive(Debug, Default)]
pub struct Collection {
    /// Index templates as they were put.
    pub templates: BTreeMap<String, Value>,
    /// Documents per index, with the `_id` each got.
    pub documents: BTreeMap<String, Vec<(String, Value)>>,
    /// `(index, _id)` taken, for 409s on a search collection.
    taken: HashSet<(String, String)>,
    /// For the ids a time-series collection assigns.
    next_id: u64,
    /// Item positions (in the next bulk request) to refuse with a mapping error.
    pub refuse_next: Vec<usize>,
}

/// The running recorder; stops when dropped.
pub struct Recorder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Every request, in arrival order.
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// The collection's state.
    pub collection: Arc<Mutex<Collection>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    /// Listens on 127.0.0.1 (a free port), answering as a collection of `kind`.
    pub fn start(kind: Kind) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("recorder: bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let collection = Arc::new(Mutex::new(Collection::default()));
        let thread = std::thread::spawn({
            let (stop, requests, collection) = (stop.clone(), requests.clone(), collection.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (requests, collection) = (requests.clone(), collection.clone());
                    std::thread::spawn(move || serve(stream, kind, &requests, &collection));
                }
            }
        });
        Self {
            addr,
            stop,
            requests,
            collection,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far, and forgets them.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, kind: Kind, requests: &Mutex<Vec<Recorded>>, collection: &Mutex<Collection>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if !matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_))) {
            return;
        }
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Recorded {
            method: parsed.method.unwrap_or("").to_owned(),
            path: parsed.path.unwrap_or("").to_owned(),
            headers,
            body,
        };
        let (status, answer) = answer(kind, &request, &mut collection.lock().unwrap());
        requests.lock().unwrap().push(request);
        let answer = answer.to_string();
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn not_found(what: &str) -> (u16, Value) {
    (
        404,
        json!({"error": {"type": "resource_not_found_exception", "reason": what}, "status": 404}),
    )
}

/// The collection's answer: index templates (`aoss:*CollectionItems`) and `_bulk`
/// (`aoss:WriteDocument`); anything else 404.
fn answer(kind: Kind, request: &Recorded, collection: &mut Collection) -> (u16, Value) {
    let route = request.route().trim_start_matches('/');
    if let Some(name) = route.strip_prefix("_index_template/") {
        return match request.method.as_str() {
            "GET" => match collection.templates.get(name) {
                Some(t) => (200, json!({"index_templates": [{"name": name, "index_template": t}]})),
                None => not_found(&format!("index template matching [{name}] not found")),
            },
            "PUT" => {
                let body: Value = serde_json::from_slice(&request.decoded()).expect("template JSON");
                collection.templates.insert(name.to_owned(), body);
                (200, json!({"acknowledged": true}))
            }
            _ => not_found(route),
        };
    }
    if route == "_bulk" && request.method == "POST" {
        return (200, bulk(kind, &request.decoded(), collection));
    }
    not_found(&format!("no handler for {} /{route}", request.method))
}

fn bulk(kind: Kind, body: &[u8], collection: &mut Collection) -> Value {
    let text = std::str::from_utf8(body).expect("utf-8 NDJSON");
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert!(
        lines.len().is_multiple_of(2),
        "action and document lines in pairs: {text}"
    );
    let refuse = std::mem::take(&mut collection.refuse_next);
    let mut items = Vec::new();
    let mut errors = false;
    for (position, pair) in lines.chunks(2).enumerate() {
        let action: Value = serde_json::from_str(pair[0]).expect("action line");
        let document: Value = serde_json::from_str(pair[1]).expect("document line");
        let (verb, meta) = action.as_object().and_then(|o| o.iter().next()).expect("one action");
        let index = meta["_index"].as_str().expect("_index").to_owned();
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_owned);
        let item = |status: u16, error: Option<(&str, &str)>| {
            let mut item = json!({"_index": index, "status": status});
            if let Some((kind, reason)) = error {
                item["error"] = json!({"type": kind, "reason": reason});
            }
            json!({ verb.as_str(): item })
        };
        let outcome = if refuse.contains(&position) {
            item(400, Some(("mapper_parsing_exception", "refused by the recorder")))
        } else {
            match (kind, id) {
                (Kind::TimeSeries, Some(_)) => item(
                    400,
                    Some((
                        "illegal_argument_exception",
                        "Document ID is not supported in create/index operation request",
                    )),
                ),
                (Kind::Search, Some(id))
                    if verb == "create" && collection.taken.contains(&(index.clone(), id.clone())) =>
                {
                    item(
                        409,
                        Some(("version_conflict_engine_exception", "document already exists")),
                    )
                }
                (_, id) => {
                    let id = id.unwrap_or_else(|| {
                        collection.next_id += 1;
                        format!("assigned-{}", collection.next_id)
                    });
                    collection.taken.insert((index.clone(), id.clone()));
                    collection
                        .documents
                        .entry(index.clone())
                        .or_default()
                        .push((id, document));
                    item(201, None)
                }
            }
        };
        errors |= outcome[verb.as_str()]["status"].as_u64() != Some(201);
        items.push(outcome);
    }
    json!({"took": 1, "errors": errors, "items": items})
}
