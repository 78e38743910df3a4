//! The HTTP client of the cluster: one reused HTTPS connection pool, request signing
//! ([`Auth`]: SigV4, basic or none) over the bytes actually sent, and gzip request bodies.
//! It sends bytes and reports answers; what to retry is decided elsewhere.

use std::io::Write as _;
use std::time::Duration;

use flate2::{Compression, write::GzEncoder};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::auth::{Auth, AuthError};
use crate::config::SinkConfig;

/// The response fields the sink reads; everything else stays on the server.
const BULK_FILTER: &str =
    "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by";

/// The cluster's HTTP client, built once at cold start.
#[derive(Debug)]
pub struct Client {
    client: reqwest::Client,
    endpoint: Url,
    bulk_url: Url,
    auth: Auth,
    gzip: bool,
}

impl Client {
    /// A client for `config`'s endpoint, signing with `auth`. Makes no network call.
    pub fn new(config: &SinkConfig, auth: Auth) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("cwl-indexer/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(50))
            .tcp_keepalive(Duration::from_secs(30))
            // Our retry loop is the only one, so every attempt is counted and bounded by the
            // deadline; reqwest would otherwise re-send some failed requests on its own.
            .retry(reqwest::retry::never())
            // https_only is not set: http is allowed for loopback only, by the config.
            .build()?;
        let mut bulk_url = config
            .endpoint
            .join("_bulk")
            .unwrap_or_else(|_| config.endpoint.clone());
        bulk_url.set_query(Some(BULK_FILTER));
        Ok(Self {
            client,
            endpoint: config.endpoint.clone(),
            bulk_url,
            auth,
            gzip: config.gzip,
        })
    }

    /// Sends one `_bulk` body (NDJSON, compressed if configured). Returns status, body and
    /// the number of bytes on the wire.
    pub(crate) async fn bulk(
        &self,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>, usize), RequestError> {
        self.send(
            Method::POST,
            self.bulk_url.clone(),
            "application/x-ndjson",
            body,
            timeout,
        )
        .await
    }

    /// The cluster's base URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends one request; returns status and body. `path` is relative to the endpoint.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), RequestError> {
        let url = self.endpoint.join(path).map_err(|e| RequestError::Url(e.to_string()))?;
        let (status, body, _) = self
            .send(method, url, "application/json", body.unwrap_or_default(), timeout)
            .await?;
        Ok((status, body))
    }

    /// Sends a request to any URL (OpenSearch Dashboards, say) with the same client and
    /// authentication, and extra headers; the body is sent as is.
    pub async fn request_url(
        &self,
        method: Method,
        url: Url,
        content_type: HeaderValue,
        extra: HeaderMap,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), RequestError> {
        let (status, body, _) = self
            .send_with(method, url, content_type, extra, body, false, timeout)
            .await?;
        Ok((status, body))
    }

    /// Sends `body` (gzip-compressed if configured and non-empty), signed over the bytes
    /// actually sent. Returns status, body and the number of bytes on the wire.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        content_type: &'static str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>, usize), RequestError> {
        let content_type = HeaderValue::from_static(content_type);
        self.send_with(method, url, content_type, HeaderMap::new(), body, self.gzip, timeout)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        method: Method,
        url: Url,
        content_type: HeaderValue,
        mut headers: HeaderMap,
        body: &[u8],
        gzip_body: bool,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>, usize), RequestError> {
        let payload = if gzip_body && !body.is_empty() {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip(body)
        } else {
            body.to_vec()
        };
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, content_type);
        }
        self.auth
            .apply(method.as_str(), url.as_str(), &mut headers, &payload)
            .await?;
        let wire = payload.len();
        let response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(payload)
            .timeout(timeout)
            .send()
            .await
            .map_err(RequestError::from_reqwest)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(RequestError::from_reqwest)?;
        Ok((status, bytes.to_vec(), wire))
    }
}

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Signing failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Connection refused or reset, DNS, TLS, timeout: no HTTP answer.
    #[error("{0}")]
    Transport(String),
    /// An HTTP answer that is an error.
    #[error("HTTP {status}: {reason}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Error type and reason.
        reason: String,
    },
    /// A URL could not be built.
    #[error("bad URL: {0}")]
    Url(String),
}

impl RequestError {
    /// The whole cause chain on one line: reqwest's own message is often just "error sending
    /// request", with the useful part (connection refused, certificate) in its sources.
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        let mut message = if e.is_timeout() {
            "timed out".to_owned()
        } else {
            e.to_string()
        };
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::Transport(message)
    }
}

/// Gzips a request body as the sink sends it (level 1). Public for the benches, which
/// report what compressing the body costs and saves.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    // Level 1: CloudTrail NDJSON still shrinks about 8x, at a fraction of level 6's CPU.
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 6), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}
