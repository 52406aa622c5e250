//! HTTP transport for the device, with the server's error bodies mapped to
//! [`TransportError`]. Sync exchanges go through the [`SyncLink`] trait (bytes in, bytes
//! out): the sync logic in [`crate::sync`] knows nothing of HTTP, so other transports (and
//! the fault-injecting one in the tests) carry the same messages.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the server cannot be reached: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("the server's certificate is not accepted: {0:?}")]
    Certificate(crate::tls::CertificateProblem),
    #[error("the server answered {status}: {code}: {message}")]
    Http { status: u16, code: String, message: String },
    #[error("the server's answer could not be read: {0}")]
    BadResponse(String),
}

/// Bytes that crossed the wire in one exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// One sync exchange in flight: the answer's bytes and what crossed the wire.
pub type Exchange<'a> = Pin<Box<dyn Future<Output = Result<(Vec<u8>, Traffic), TransportError>> + Send + 'a>>;

/// Carries one sync request (the encoded bytes) to the server and brings back its answer.
pub trait SyncLink: Send + Sync {
    fn exchange<'a>(&'a self, token: &'a str, body: Vec<u8>) -> Exchange<'a>;
}

impl SyncLink for HttpTransport {
    fn exchange<'a>(&'a self, token: &'a str, body: Vec<u8>) -> Exchange<'a> {
        Box::pin(self.post_sync(token, body))
    }
}

#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base_url: String,
}

/// A request that did not get an answer: a certificate the phone refused, or no way through.
fn failed(e: reqwest::Error) -> TransportError {
    match crate::tls::certificate_problem(&e) {
        Some(problem) => TransportError::Certificate(problem),
        None => TransportError::Unreachable(e.to_string()),
    }
}

impl HttpTransport {
    /// HTTPS to `base_url` with the platform's trust store (plain HTTP only to this device).
    pub fn new(base_url: &str) -> Result<HttpTransport, TransportError> {
        HttpTransport::with_tls(base_url, &crate::tls::TlsSettings::default())
    }

    /// [`HttpTransport::new`], checking the server as `tls` says (pins, extra roots).
    pub fn with_tls(base_url: &str, tls: &crate::tls::TlsSettings) -> Result<HttpTransport, TransportError> {
        crate::tls::check_url(base_url)?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            crate::protocol::CLIENT_VERSION_HEADER,
            reqwest::header::HeaderValue::from_static(crate::protocol::CLIENT_VERSION),
        );
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config(tls)?)
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        Ok(HttpTransport { client, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    /// `GET` with a JSON answer.
    pub async fn get_json<Resp: DeserializeOwned>(&self, path: &str, token: &str) -> Result<Resp, TransportError> {
        let bytes = self.send(self.client.get(self.url(path)).bearer_auth(token)).await?;
        serde_json::from_slice(&bytes).map_err(|e| TransportError::BadResponse(e.to_string()))
    }

    /// `GET` raw bytes.
    pub async fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
        token: &str,
    ) -> Result<Vec<u8>, TransportError> {
        self.send(self.client.get(self.url(path)).query(query).bearer_auth(token)).await
    }

    /// `POST` with no body and no answer to read.
    pub async fn post_no_answer(&self, path: &str, token: &str) -> Result<(), TransportError> {
        self.send(self.client.post(self.url(path)).bearer_auth(token)).await.map(|_| ())
    }

    /// `PUT` raw bytes.
    pub async fn put_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
        token: &str,
        body: Vec<u8>,
    ) -> Result<(), TransportError> {
        self.send(self.client.put(self.url(path)).query(query).bearer_auth(token).body(body)).await?;
        Ok(())
    }

    /// The server's address, as given.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, TransportError> {
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(failed)?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .map_err(|_| TransportError::BadResponse(format!("status {status} without an error body")))?;
            return Err(TransportError::Http { status: status.as_u16(), code: detail.code, message: detail.message });
        }
        Ok(bytes.to_vec())
    }

    /// Waits (long poll) until the server has something after `cursor` for this device, or
    /// `wait_secs` pass; whether something is new.
    pub async fn watch(&self, token: &str, cursor: i64, reach: u64, wait_secs: u64) -> Result<bool, TransportError> {
        let query = [("cursor", cursor.to_string()), ("wait", wait_secs.to_string()), ("reach", reach.to_string())];
        let request = self
            .client
            .get(self.url(crate::protocol::WATCH_PATH))
            .query(&query)
            .timeout(Duration::from_secs(wait_secs + 30))
            .bearer_auth(token);
        let bytes = self.send(request).await?;
        let answer: crate::protocol::WatchResponse =
            serde_json::from_slice(&bytes).map_err(|e| TransportError::BadResponse(e.to_string()))?;
        Ok(answer.changed)
    }

    /// `POST`s an encoded sync request and returns the encoded answer.
    pub async fn post_sync(&self, token: &str, body: Vec<u8>) -> Result<(Vec<u8>, Traffic), TransportError> {
        let bytes_up = body.len() as u64;
        let request = self
            .client
            .post(self.url(crate::protocol::SYNC_PATH))
            .header(reqwest::header::CONTENT_TYPE, crate::protocol::SYNC_CONTENT_TYPE)
            .bearer_auth(token)
            .body(body);
        let answer = self.send(request).await?;
        let traffic = Traffic { bytes_up, bytes_down: answer.len() as u64 };
        Ok((answer, traffic))
    }

    /// Sends `body` as JSON to `path` and reads the JSON answer.
    pub async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Req,
    ) -> Result<(Resp, Traffic), TransportError> {
        let body = serde_json::to_vec(body).map_err(|e| TransportError::BadResponse(e.to_string()))?;
        let mut traffic = Traffic { bytes_up: body.len() as u64, bytes_down: 0 };
        let mut request = self
            .client
            .post(format!("{}{}", self.base_url, path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(failed)?;
        traffic.bytes_down = bytes.len() as u64;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error)
                .map_err(|_| TransportError::BadResponse(format!("status {status} without an error body")))?;
            return Err(TransportError::Http { status: status.as_u16(), code: detail.code, message: detail.message });
        }
        let parsed = serde_json::from_slice(&bytes).map_err(|e| TransportError::BadResponse(e.to_string()))?;
        Ok((parsed, traffic))
    }
}
